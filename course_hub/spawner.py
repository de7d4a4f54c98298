"""The course's spawners: a memory limit per student, and ports that cannot clash.

:class:`LocalStudentSpawner` is JupyterHub's ``LocalProcessSpawner`` with the per-student
memory limit (``Spawner.mem_limit``, which the plain spawner ignores) enforced on the sum of
the student's processes by a memory cgroup of their own (``course_hub.memory``), or, where this
machine has no writable memory controller, as an address-space rlimit on each process; and with
servers on ports below the kernels' ephemeral range (:data:`SERVER_PORTS`), at a lower CPU
priority than the hub and the proxy (:data:`SERVER_NICE`).
:class:`SystemdStudentSpawner`, where systemd is PID 1, is SystemdSpawner (a unit per server,
``MemoryMax`` and ``CPUQuota``) passing the server's arguments on as configured.
"""
import asyncio
import os
import random
import resource
import socket

from jupyterhub.spawner import LocalProcessSpawner
from systemdspawner import SystemdSpawner

from . import memory

#: Students' servers listen on ports from this range, below Linux's ephemeral ports (32768-60999).
#: Kernels bind their ZMQ sockets to ephemeral ports; with JupyterHub's own choice (an ephemeral
#: port, free when picked) a kernel starting during a class-sized login took the port the hub had
#: picked for a server still starting, and the hub waited for a server that could not bind
#: (bench/load_test.py, 25 students at once).
SERVER_PORTS = range(20000, 32000)
#: The nice value of students' servers and their kernels, equal for every student. The hub and
#: the proxy serve everyone: with 100 servers starting at once, at the same priority, the hub
#: answered a server start only after 49-60 s and six logins failed (bench/load_test.py -n 100).
SERVER_NICE = 10
#: Linux schedules each session as one group (autogroup); a server starts its own session, so
#: its group's nice value, not only its own, decides its share against the hub's. (Kernels
#: start sessions of their own, jupyter_client's choice: they inherit the nice value only.)
AUTOGROUP = "/proc/self/autogroup"


def lower_priority(nice=SERVER_NICE):
    """Give this process, and the session it leads, the nice value ``nice`` (children inherit it).

    The session's scheduling group is changed only by a session leader (a spawned server), never
    the group of a caller that shares its session with others; a kernel without autogroup
    scheduling has no such file, and then the process's own nice value is all there is.
    """
    os.setpriority(os.PRIO_PROCESS, 0, nice)
    if os.getsid(0) == os.getpid() and os.path.exists(AUTOGROUP):
        with open(AUTOGROUP, "w") as group:
            group.write(str(nice))


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
        switch_user = super().make_preexec_fn(name)
        # mem_limit is a ByteSpecification: JupyterHub has already turned "2G" into bytes.
        limit = self.mem_limit or None
        cgroup = self._cgroup()

        def preexec():
            if cgroup is not None:
                cgroup.add(os.getpid())  # this child, about to become the server
            elif limit is not None:
                resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            lower_priority()
            switch_user()

        return preexec

    #: Ports handed to servers of this hub that are starting or running (see SERVER_PORTS).
    _ports_in_use = set()

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
        return await super().start()

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
