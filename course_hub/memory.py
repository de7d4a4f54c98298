"""Memory per student: one limit on the sum of a student's processes (server, kernels, terminals).

Where the limit comes from, best first:

1. systemd as PID 1: SystemdSpawner runs each server in a unit of its own with ``MemoryMax``
   (jupyterhub_config.py chooses it; nothing here).
2. Otherwise a memory cgroup per student that the spawner makes before the server starts and
   removes when it stops (:class:`StudentCgroup`): cgroup v2 where its ``memory`` controller is
   available, else the v1 ``memory`` controller (this module finds both in the mount table).
3. Otherwise an address-space rlimit on each process (``course_hub.spawner``): the limit is then
   per process, and the README and ``course-status`` say so.

With a cgroup, the kernel's OOM killer ends the largest process of the student when their
processes together would pass the limit. That is a kernel (the server holds about 150 MB; a
kernel that takes a student to the limit holds more): Notebook 7 says the kernel died and
restarts it, the server lives on, and the top bar's memory indicator (jupyter-resource-usage)
shows the student's use against the limit. At times it ends a second kernel too, the one still
asking, when the first victim has left the process list before the kernel has taken back all its
memory; Notebook 7 restarts that one as well.

Standard library only: ``course-status`` calls :func:`limit_scope` as any user (the mount table
and the cgroup files it reads are world-readable).
"""
import os
import pathlib
import re
import signal
import time

from . import paths

#: How a student's memory is limited (what :func:`limit_scope` returns).
SYSTEMD, CGROUP_V2, CGROUP_V1, PER_PROCESS = "systemd MemoryMax", "memory cgroup v2", "memory cgroup v1", "rlimit"
MOUNTINFO = pathlib.Path("/proc/self/mountinfo")


def _unescape(field):
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def memory_hierarchy(mountinfo=None):
    """Where a writable memory controller is mounted: ``(version, mount point)``, or None.

    cgroup v2 counts only where its root lists ``memory`` among its controllers (on a hybrid
    machine v2 is mounted without any); v1 where a ``cgroup`` mount carries the ``memory``
    option. A read-only mount (as systemd-nspawn gives a container) counts as none.

    Parameters
    ----------
    mountinfo : str, optional
        The text of ``/proc/self/mountinfo`` (default: read it).
    """
    text = MOUNTINFO.read_text() if mountinfo is None else mountinfo
    found = {}
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        separator = fields.index("-")
        point, options = _unescape(fields[4]), fields[5].split(",")
        fstype, super_options = fields[separator + 1], fields[separator + 3].split(",")
        if "rw" not in options:
            continue
        if fstype == "cgroup2":
            try:
                controllers = (pathlib.Path(point) / "cgroup.controllers").read_text().split()
            except OSError:
                continue
            if "memory" in controllers:
                found.setdefault(2, pathlib.Path(point))
        elif fstype == "cgroup" and "memory" in super_options:
            found.setdefault(1, pathlib.Path(point))
    for version in (2, 1):
        if version in found:
            return version, found[version]
    return None


def limit_scope(spawner):
    """How the memory limit holds with ``spawner`` (``"systemd"`` or ``"local"``) on this machine:
    one of :data:`SYSTEMD`, :data:`CGROUP_V2`, :data:`CGROUP_V1`, :data:`PER_PROCESS`."""
    if spawner == "systemd":
        return SYSTEMD
    hierarchy = memory_hierarchy()
    if hierarchy is None:
        return PER_PROCESS
    return CGROUP_V2 if hierarchy[0] == 2 else CGROUP_V1


def describe_limit(limit_text, scope):
    """One line for people: what the memory limit covers, e.g. for ``course-status``."""
    if scope == PER_PROCESS:
        return (f"memory limit {limit_text} per process (no memory cgroup on this machine: each of a "
                f"student's processes may use {limit_text})")
    return f"memory limit {limit_text} per student: server and kernels together ({scope})"


class StudentCgroup:
    """One student's memory cgroup: ``<mount>/<paths.CGROUP_NAME>/<username>``.

    Made (or reused) before the student's server starts, with the limit on RAM and swap
    together; the server is put in it between ``fork`` and ``exec`` and every process it starts
    inherits it; the student cannot leave it (its files belong to root). Removed when the
    server stops, with any process still in it.

    Parameters
    ----------
    username : str
    hierarchy : tuple, optional
        ``(version, mount point)`` as from :func:`memory_hierarchy` (default: this machine's).

    Raises
    ------
    RuntimeError
        If this machine has no writable memory controller.
    """

    def __init__(self, username, hierarchy=None):
        hierarchy = hierarchy or memory_hierarchy()
        if hierarchy is None:
            raise RuntimeError("no writable memory cgroup controller is mounted on this machine")
        self.version, self.mount = hierarchy
        self.parent = self.mount / paths.CGROUP_NAME
        self.path = self.parent / username

    def __repr__(self):
        return f"StudentCgroup({str(self.path)!r}, v{self.version})"

    def _write(self, name, value, folder=None):
        (folder or self.path).joinpath(name).write_text(f"{value}\n")

    def _read(self, name):
        return (self.path / name).read_text()

    def create(self, limit):
        """Make the cgroup (and its parent) with ``limit`` bytes for RAM and swap together.

        Processes found in it (left by a server the hub lost track of) are stopped first: the
        limit is for the server about to start.
        """
        if self.version == 2:
            # v2 distributes a controller only where every ancestor enables it for its children.
            self._enable_memory(self.mount)
            self.parent.mkdir(exist_ok=True)
            self._enable_memory(self.parent)
        else:
            self.parent.mkdir(exist_ok=True)
        self.path.mkdir(exist_ok=True)
        self.stop_processes()
        if self.version == 2:
            self._write("memory.max", limit)
            if (self.path / "memory.swap.max").exists():
                self._write("memory.swap.max", 0)  # RAM and swap together: no swap beyond RAM
        else:
            # The RAM + swap limit (memsw) may never be below the RAM limit: going down, lower
            # the RAM limit first; going up, raise memsw first.
            order = ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]
            if limit > int(self._read("memory.limit_in_bytes")):
                order.reverse()
            for name in order:
                if (self.path / name).exists():
                    self._write(name, limit)
        return self

    def _enable_memory(self, folder):
        control = folder / "cgroup.subtree_control"
        if "memory" not in control.read_text().split():
            self._write("cgroup.subtree_control", "+memory", folder)

    def add(self, pid):
        """Put process ``pid`` in the cgroup (its children follow it)."""
        self._write("cgroup.procs", pid)

    def pids(self):
        """The processes in the cgroup (none when it does not exist)."""
        try:
            return [int(pid) for pid in self._read("cgroup.procs").split()]
        except FileNotFoundError:
            return []

    def limit(self):
        """The limit in bytes."""
        return int(self._read("memory.max" if self.version == 2 else "memory.limit_in_bytes"))

    def usage(self):
        """What the student's processes hold now, in bytes (page cache included)."""
        return int(self._read("memory.current" if self.version == 2 else "memory.usage_in_bytes"))

    def peak(self):
        """The most they held together since the cgroup was made, in bytes."""
        return int(self._read("memory.peak" if self.version == 2 else "memory.max_usage_in_bytes"))

    def oom_kills(self):
        """How many of the student's processes the OOM killer ended in this cgroup."""
        text = self._read("memory.events" if self.version == 2 else "memory.oom_control")
        match = re.search(r"^oom_kill (\d+)$", text, re.MULTILINE)
        return int(match.group(1)) if match else 0

    def stop_processes(self, grace=5.0):
        """SIGTERM every process in the cgroup, SIGKILL those left after ``grace`` s; return them."""
        signalled = []
        for number, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            pids = self.pids()
            for pid in pids:
                try:
                    os.kill(pid, number)
                except ProcessLookupError:
                    continue
            signalled += [pid for pid in pids if pid not in signalled]
            deadline = time.monotonic() + wait
            while self.pids() and time.monotonic() < deadline:
                time.sleep(0.1)
            if not self.pids():
                break
        return signalled

    def remove(self, timeout=15.0):
        """Stop what is left in the cgroup and remove it; return the pids that had to be stopped.

        Raises
        ------
        OSError
            If the cgroup is still busy after ``timeout`` s (a process that cannot die).
        """
        if not self.path.exists():
            return []
        stopped = self.stop_processes()
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.path.rmdir()
                return stopped
            except FileNotFoundError:
                return stopped
            except OSError:
                # An exiting process leaves the cgroup a moment after it is gone from /proc.
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
