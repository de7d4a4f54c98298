"""Pieces of the course hub that are code rather than settings.

``jupyterhub_config.py`` wires these in; they live here so the configuration file reads as a
list of decisions, and so tests can import them.

- :class:`RlimitLocalProcessSpawner`: the local process spawner with the per-student memory
  limit (``Spawner.mem_limit``) enforced as an address-space rlimit on the student's server and
  every kernel it starts (the plain ``LocalProcessSpawner`` ignores ``mem_limit``).
- :func:`course_groups_hook`: a post-authentication hook that copies the user's course Unix
  groups into the hub's groups, so RBAC roles granted to a group apply.
- :func:`make_course_sync_hook`: a pre-spawn hook that syncs ``~/course`` from the course
  repository with nbgitpuller, as the student, before their server starts.
"""
import asyncio
import grp
import os
import pwd
import random
import resource
import socket
import sys

from jupyterhub.spawner import LocalProcessSpawner, set_user_setuid

#: How long a course sync may take before the server starts without it.
SYNC_TIMEOUT_SECONDS = 120


def parse_byte_size(text):
    """Turn a size such as ``"2G"``, ``"512M"`` or ``"1073741824"`` into bytes.

    Parameters
    ----------
    text : str or int
        A whole number of bytes, or a number followed by K, M, G or T (powers of 1024), the
        notation of ``Spawner.mem_limit`` and systemd's ``MemoryMax``.

    Returns
    -------
    int
        The size in bytes.

    Raises
    ------
    ValueError
        If ``text`` is not such a size.
    """
    if isinstance(text, int) and not isinstance(text, bool):
        if text <= 0:
            raise ValueError(f"size: expected a positive number of bytes, got {text!r}")
        return text
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    value = str(text).strip().upper()
    factor = units.get(value[-1:], 1)
    number = value[:-1] if value[-1:] in units else value
    try:
        size = int(float(number) * factor)
    except ValueError:
        size = 0
    if size <= 0:
        raise ValueError(
            f"size: expected a positive size such as '2G', '512M' or a number of bytes, got {text!r}"
        )
    return size


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


class RlimitLocalProcessSpawner(LocalProcessSpawner):
    """Local process spawner that enforces ``mem_limit`` with ``RLIMIT_AS``.

    The limit is set in the child between ``fork`` and ``exec``, before the switch to the
    student's user, so the student cannot raise it again; kernels inherit it. It bounds each
    process's address space: an allocation past it fails with ``MemoryError`` in that process
    only, instead of the kernel's OOM killer picking a victim on the shared machine.
    """

    def make_preexec_fn(self, name):
        """Return the child set-up: the memory rlimit, then the switch to user ``name``."""
        switch_user = super().make_preexec_fn(name)
        limit = parse_byte_size(self.mem_limit) if self.mem_limit else None

        def preexec():
            if limit is not None:
                resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
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


def make_course_groups_hook(course_groups):
    """Build a post-authentication hook that reports the user's course groups to the hub.

    With ``Authenticator.manage_groups = True`` the hub sets its group membership from the
    ``groups`` field of the authentication model; PAM does not fill that field, so this hook
    does, from the Unix groups (only the course's groups, not ``sudo`` or ``users``).

    Parameters
    ----------
    course_groups : iterable of str
        Unix group names that have a meaning on the hub.

    Returns
    -------
    callable
        ``hook(authenticator, handler, auth_model) -> auth_model``.
    """
    course_groups = tuple(course_groups)

    def course_groups_hook(authenticator, handler, auth_model):
        auth_model["groups"] = unix_course_groups(auth_model["name"], course_groups)
        return auth_model

    return course_groups_hook


def unix_course_groups(username, course_groups):
    """Return which of ``course_groups`` the Unix user ``username`` belongs to.

    Parameters
    ----------
    username : str
        An existing Unix user.
    course_groups : iterable of str
        Group names to look for; names that do not exist on the machine are skipped.

    Returns
    -------
    list of str
        The groups from ``course_groups`` that include the user, in the given order.
    """
    user = pwd.getpwnam(username)
    gids = set(os.getgrouplist(username, user.pw_gid))
    found = []
    for name in course_groups:
        try:
            if grp.getgrnam(name).gr_gid in gids:
                found.append(name)
        except KeyError:
            continue
    return found


def make_course_sync_hook(repository, branch, target_name, git_config_system=None):
    """Build a pre-spawn hook that syncs the student's copy of the course.

    The hook runs nbgitpuller (``python -m nbgitpuller.pull``) as the student, with the
    student's home and groups, so every file it writes belongs to them. nbgitpuller clones on
    the first login and afterwards merges upstream changes, keeping the student's edits.
    A failed sync is logged and the server starts anyway, with the copy the student has.

    Parameters
    ----------
    repository : str
        Path of the course's git repository on this machine.
    branch : str
        Branch to follow.
    target_name : str
        Folder inside the student's home (``course`` gives ``~/course``).
    git_config_system : str or None
        A git system configuration file to use instead of ``/etc/gitconfig`` (tests set one
        that marks their repository as a ``safe.directory``).

    Returns
    -------
    callable
        ``async hook(spawner)``, for ``Spawner.pre_spawn_hook``.
    """

    async def sync_course(spawner):
        username = spawner.user.name
        home = pwd.getpwnam(username).pw_dir
        target = os.path.join(home, target_name)
        env = {
            "HOME": home,
            "USER": username,
            "LOGNAME": username,
            "PATH": f"{os.path.dirname(sys.executable)}:/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            # A full clone: later merges need the history, and a local path ignores depth.
            "NBGITPULLER_DEPTH": "0",
        }
        if git_config_system:
            env["GIT_CONFIG_SYSTEM"] = git_config_system
        command = [sys.executable, "-m", "nbgitpuller.pull", repository, branch, target]
        try:
            process = await asyncio.create_subprocess_exec(
                *command,
                env=env,
                cwd=home,
                preexec_fn=set_user_setuid(username),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
        except OSError as exc:
            spawner.log.warning("course sync for %s could not start: %s", username, exc)
            return
        try:
            output, _ = await asyncio.wait_for(process.communicate(), SYNC_TIMEOUT_SECONDS)
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()
            spawner.log.warning(
                "course sync for %s took over %s s; starting without it", username, SYNC_TIMEOUT_SECONDS
            )
            return
        if process.returncode == 0:
            spawner.log.info("course synced into %s", target)
        else:
            tail = output.decode(errors="replace").strip().splitlines()[-5:]
            spawner.log.warning(
                "course sync for %s failed (exit %s): %s", username, process.returncode, " | ".join(tail)
            )

    return sync_course
