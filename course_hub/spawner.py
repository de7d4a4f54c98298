"""The local process spawner of the course: a memory limit that holds, and ports that cannot clash.

:class:`RlimitLocalProcessSpawner` is JupyterHub's ``LocalProcessSpawner`` with the
per-student memory limit (``Spawner.mem_limit``) enforced as an address-space rlimit on the
student's server and every kernel it starts (the plain spawner ignores ``mem_limit``), with
servers on ports below the kernels' ephemeral range (:data:`SERVER_PORTS`), and at a lower
CPU priority than the hub and the proxy (:data:`SERVER_NICE`).
"""
import os
import random
import resource
import socket

from jupyterhub.spawner import LocalProcessSpawner

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


class RlimitLocalProcessSpawner(LocalProcessSpawner):
    """Local process spawner that enforces ``mem_limit`` with ``RLIMIT_AS``, servers at nice 10.

    The limit is set in the child between ``fork`` and ``exec``, before the switch to the
    student's user, so the student cannot raise it again; kernels inherit it. It bounds each
    process's address space: an allocation past it fails with ``MemoryError`` in that process
    only, instead of the kernel's OOM killer picking a victim on the shared machine.
    """

    def make_preexec_fn(self, name):
        """Return the child set-up: the memory rlimit, then the switch to user ``name``."""
        switch_user = super().make_preexec_fn(name)
        # mem_limit is a ByteSpecification: JupyterHub has already turned "2G" into bytes.
        limit = self.mem_limit or None

        def preexec():
            if limit is not None:
                resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            lower_priority()
            switch_user()

        return preexec

    #: Ports handed to servers of this hub that are starting or running (see SERVER_PORTS).
    _ports_in_use = set()

    async def start(self):
        """Start the server on a port outside the kernels' ephemeral range."""
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
