"""The course's spawners: a memory limit per student, and ports that cannot clash.

:class:`LocalStudentSpawner` is JupyterHub's ``LocalProcessSpawner`` with the per-student
memory limit (``Spawner.mem_limit``, which the plain spawner ignores) enforced on the sum of
the student's processes by a memory cgroup of their own (``course_hub.memory``), or, where this
machine has no writable memory controller, as an address-space rlimit on each process; and with
servers on ports below the kernels' ephemeral range (:data:`SERVER_PORTS`), at a lower CPU
priority than the hub and the proxy (:mod:`course_hub.serverprocess`); each server is forked,
already set up, from a process that has imported the server's code once
(:mod:`course_hub.warmstart`), and executed as usual where that cannot be done.
:class:`SystemdStudentSpawner`, where systemd is PID 1, is SystemdSpawner (a unit per server,
``MemoryMax`` and ``CPUQuota``) passing the server's arguments on as configured.
"""
import asyncio
import random
import socket

from jupyterhub.spawner import LocalProcessSpawner
from systemdspawner import SystemdSpawner
from traitlets import Bool

from . import memory, serverprocess, warmstart
from .serverprocess import SERVER_NICE

#: Students' servers listen on ports from this range, below Linux's ephemeral ports (32768-60999).
#: Kernels bind their ZMQ sockets to ephemeral ports; with JupyterHub's own choice (an ephemeral
#: port, free when picked) a kernel starting during a class-sized login took the port the hub had
#: picked for a server still starting, and the hub waited for a server that could not bind
#: (bench/load_test.py, 25 students at once).
SERVER_PORTS = range(20000, 32000)
def pick_server_port(ports=SERVER_PORTS, taken=(), attempts=200):
    """Return a port of ``ports`` that is not in ``taken`` and that nothing listens on now.

    Raises
    ------
    RuntimeError
        If no such port turns up in ``attempts`` random tries.
    """
    for _ in range(attempts):
        port = random.choice(ports)
        if port in taken:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("", port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free port for a student server in {ports.start}-{ports.stop - 1}")


class LocalStudentSpawner(LocalProcessSpawner):
    """Local process spawner that holds each student to ``mem_limit``, all processes together, at nice 10.

    Before the server starts, the student's memory cgroup is made with the limit
    (:class:`course_hub.memory.StudentCgroup`); the server enters it between ``fork`` and
    ``exec``, before the switch to the student's user, and its kernels and terminals inherit
    it. When the server stops (or is found dead), the cgroup is removed with whatever still
    runs in it. Without a writable memory controller, the limit becomes an ``RLIMIT_AS`` on the
    server and on each kernel (inherited, and the student cannot raise it): an allocation past
    it fails with ``MemoryError`` in that process only; the limit is then per process.
    """

    def _cgroup(self):
        """The student's cgroup, or None where the limit is an rlimit (or there is no limit)."""
        if not self.mem_limit or memory.memory_hierarchy() is None:
            return None
        return memory.StudentCgroup(self.user.name)

    def make_preexec_fn(self, name):
        """Return the child set-up: into the memory cgroup (or under the rlimit), then user ``name``."""
        # mem_limit is a ByteSpecification: JupyterHub has already turned "2G" into bytes.
        return serverprocess.set_up(name, self._cgroup(), self.mem_limit or None)

    warm_start = Bool(
        True, config=True,
        help="Fork servers from a process that has imported the server's code (course_hub.warmstart); "
             "a server it cannot start is executed as usual.")

    #: Ports handed to servers of this hub that are starting or running (see SERVER_PORTS).
    _ports_in_use = set()
    #: This hub's warm starter (one for every spawner of the hub), made at the first start.
    _warm_starter = None

    def _warm_start_request(self, cgroup=None):
        """The warm starter's request for this server (whose memory cgroup is ``cgroup``, or
        None), or None when the server must be executed."""
        if not self.warm_start or self.shell_cmd or self.popen_kwargs:
            return None
        if list(self.cmd) != [str(warmstart.SINGLEUSER)]:
            return None
        in_cgroup = cgroup is not None
        return {"argv": [*self.cmd, *self.get_args()], "env": self.get_env(), "user": self.user.name,
                "cgroup": in_cgroup, "rlimit_as": None if in_cgroup else (self.mem_limit or None),
                "nice": SERVER_NICE}

    async def _warm_start(self, request):
        """Fork the server from the warm starter; return its pid, or None (then it is executed)."""
        cls = LocalStudentSpawner
        if cls._warm_starter is None:
            cls._warm_starter = warmstart.WarmStarter(self.log)
        try:
            return await cls._warm_starter.start_server(**request)
        except warmstart.WarmStartError as exc:
            self.log.warning("no warm start for %s's server (%s): executing it", self.user.name, exc)
        except Exception:  # a fault of the warm start must not cost the student their server
            self.log.exception("the warm start of %s's server failed: executing it", self.user.name)
        return None

    async def start(self):
        """Make the student's memory cgroup; start the server on a port outside the kernels' range."""
        cgroup = self._cgroup()
        if cgroup is not None:
            await asyncio.to_thread(cgroup.create, self.mem_limit)  # may stop leftovers: not in the loop
            self.log.info("%s's processes share %s bytes of memory in %s", self.user.name, self.mem_limit, cgroup.path)
        elif self.mem_limit:
            self.log.warning("no writable memory cgroup here: %s's limit of %s bytes holds per process",
                             self.user.name, self.mem_limit)
        # A fresh port at every start: the one of a previous run may be anybody's by now.
        self.port = pick_server_port(taken=self._ports_in_use)
        self._ports_in_use.add(self.port)
        request = self._warm_start_request(cgroup)
        pid = await self._warm_start(request) if request else None
        if pid is None:
            return await super().start()
        # Not our child: the hub follows it by its pid, as it does after a restart (poll, stop).
        self.pid = pid
        self.log.info("%s's server forked by the warm starter: pid %s", self.user.name, pid)
        return (self.ip or "127.0.0.1", self.port)

    async def stop(self, now=False):
        """Stop the server and give its port back."""
        try:
            return await super().stop(now=now)
        finally:
            self._ports_in_use.discard(self.port)

    async def run_post_stop_hook(self):
        """Remove the student's cgroup, with anything left in it, then run the configured hook.

        The hub calls this after every stop, also for a server it found dead (when it does not
        call :meth:`stop`).
        """
        cgroup = self._cgroup()
        if cgroup is not None:
            try:
                left = await asyncio.to_thread(cgroup.remove)
            except OSError as exc:
                self.log.warning("could not remove %s's memory cgroup %s: %s", self.user.name, cgroup.path, exc)
            else:
                if left:
                    self.log.info("stopped %s's processes left after their server: %s", self.user.name, left)
        return super().run_post_stop_hook()


class SystemdStudentSpawner(SystemdSpawner):
    """SystemdSpawner that passes the server's arguments on exactly as configured.

    SystemdSpawner runs every argument through ``str.format`` to expand ``{USERNAME}`` and
    ``{USERID}``, so an argument with a JSON value (``--ServerApp.tornado_settings={...}``) made
    every server start fail with ``KeyError``. The course's arguments name no user: their braces
    are doubled here, and the formatting gives them back unchanged.
    """

    def get_args(self):
        return [arg.replace("{", "{{").replace("}", "}}") for arg in super().get_args()]
