"""The hooks ``jupyterhub_config.py`` wires in: who is in which course group, where a server
lands (through the course sync), what an instructor's server may do.

- :func:`make_course_groups_hook`: a post-authentication hook that copies the user's course
  Unix groups into the hub's groups, so RBAC roles granted to a group apply.
- :func:`landing_url`: where a server opens: nbgitpuller's ``git-pull`` page, which syncs
  ``~/course`` from the course repository, as the student, at every landing (a login, the
  hub's home page, a bookmark of the hub), also while the server keeps running, then opens
  the course.
- :func:`make_instructor_spawn_hook`: before an instructor's server starts, make sure they
  have a working copy of the course repository (``~/course-edit``) and open it.
- :func:`make_server_token_scopes`: the ``$JUPYTERHUB_API_TOKEN`` of an instructor's server
  may also list students and read their activity and servers (what ``course-status`` needs);
  students' servers keep JupyterHub's default ("post activity only").
- :func:`kernel_transport_hook`: kernels on Unix sockets in the user's runtime folder where
  the sockets' paths fit, TCP ports on localhost otherwise.
- :func:`chain_hooks`: run several pre-spawn hooks in order.
"""
import asyncio
import inspect
import os
import pwd
from urllib.parse import parse_qs, urlencode, urlsplit

from . import accounts, repository

#: JupyterHub's default scopes for a server's own token (its built-in ``server`` role).
SERVER_DEFAULT_SCOPES = ("users:activity!user", "access:servers!server")
#: nbgitpuller's page (a server extension): it syncs a folder, showing git's progress, then
#: opens a path of the server; a failed sync stays on the page with git's message.
GIT_PULL_PATH = "/git-pull"
#: The server's option that puts its kernels on Unix sockets (ZeroMQ's ipc transport).
KERNEL_IPC_ARG = "--KernelManager.transport=ipc"
#: The longest path a Unix socket may have on Linux (``sun_path`` is 108 bytes with its NUL).
UNIX_SOCKET_PATH_MAX = 107
#: What jupyter_client appends to the runtime folder for a kernel's socket: ``/kernel-<uuid4>``
#: (jupyter_server's kernel id) ``-ipc-<n>`` (n counts the kernel's channels, two digits to spare).
KERNEL_SOCKET_SUFFIX = len("/kernel-") + 36 + len("-ipc-") + 2


def landing_url(repository_path, branch, target_name, open_path):
    """The URL a student's server opens first: sync ``~/<target_name>``, then open ``open_path``.

    It is nbgitpuller's own ``git-pull`` link, the way nbgitpuller is meant to be used: the
    server's default URL, so every landing on the server (after the login form, from the hub's
    home page, from a bookmark of the hub) clones the course the first time and later merges
    what was published since, even when the server kept running. The sync runs in the
    student's server, as the student; its progress, or git's error, shows on the page.

    Parameters
    ----------
    repository_path : str or os.PathLike
        The course repository (as the server's user reads it).
    branch : str
        Branch to follow.
    target_name : str
        Folder in the home (``course`` gives ``~/course``).
    open_path : str
        What to open afterwards, as the settings' ``hub.default_url`` (``/tree/course``).

    Returns
    -------
    str
        ``/git-pull?repo=...&branch=...&targetpath=...&urlpath=...``, for ``Spawner.default_url``.
    """
    query = urlencode({"repo": str(repository_path), "branch": branch, "targetpath": target_name,
                       "urlpath": open_path.lstrip("/")})
    return f"{GIT_PULL_PATH}?{query}"


def landing_path(url):
    """The path a server's default URL ends on: ``urlpath`` of a :func:`landing_url`, else ``url``."""
    parts = urlsplit(url)
    if parts.path != GIT_PULL_PATH:
        return url
    return "/" + parse_qs(parts.query)["urlpath"][0]


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
        auth_model["groups"] = accounts.member_groups(auth_model["name"], course_groups)
        return auth_model

    return course_groups_hook


def make_instructor_spawn_hook(course_repo, instructors_group, folder="course-edit", landing=None):
    """Build a pre-spawn hook giving instructors their working copy and opening it.

    Parameters
    ----------
    course_repo : str
        The bare course repository instructors publish to.
    instructors_group : str
        The instructors' Unix group.
    folder : str
        The working copy's folder in the instructor's home.
    landing : callable, optional
        ``landing(open_path) -> default URL`` (e.g. through :func:`landing_url`, so that the
        instructor's ``~/course`` is synced like a student's); None opens the folder directly.

    Returns
    -------
    callable
        ``async hook(spawner)``; does nothing for students.
    """

    async def instructor_workspace(spawner):
        name = spawner.user.name
        if not accounts.is_member(name, instructors_group):
            return
        home = pwd.getpwnam(name).pw_dir
        target = os.path.join(home, folder)
        try:
            made = await asyncio.get_running_loop().run_in_executor(
                None, repository.ensure_workspace, name, course_repo, target)
        except Exception as exc:  # the server must still start: the instructor can clone by hand
            spawner.log.warning("working copy for instructor %s not made: %s", name, exc)
            return
        if made:
            spawner.log.info("made the working copy %s for instructor %s", target, name)
        spawner.default_url = landing(f"/tree/{folder}") if landing else f"/tree/{folder}"

    return instructor_workspace


def make_server_token_scopes(instructors_group, instructor_scopes):
    """Build ``Spawner.server_token_scopes``: more scopes for instructors' servers only.

    The hub grants a token only the subset of these scopes its owner holds, so this never
    gives anyone more than their roles do.
    """
    extra = tuple(instructor_scopes)

    def server_token_scopes(spawner):
        scopes = list(SERVER_DEFAULT_SCOPES)
        if accounts.is_member(spawner.user.name, instructors_group):
            scopes.extend(extra)
        return scopes

    return server_token_scopes


def kernel_sockets_fit(home):
    """Whether a kernel's Unix sockets fit the path limit for a user whose home is ``home``.

    They live in Jupyter's runtime folder, ``~/.local/share/jupyter/runtime`` for a server
    the hub starts (its environment sets neither ``JUPYTER_RUNTIME_DIR`` nor ``XDG_DATA_HOME``).
    """
    runtime = os.path.join(home, ".local", "share", "jupyter", "runtime")
    return len(os.fsencode(runtime)) + KERNEL_SOCKET_SUFFIX <= UNIX_SOCKET_PATH_MAX


def kernel_transport_hook(spawner):
    """Pre-spawn hook: the user's kernels on Unix sockets (:data:`KERNEL_IPC_ARG`) if they fit.

    Unix sockets in the user's own runtime folder (mode 0700) cannot be taken by another kernel
    starting at the same moment, as TCP ports can when a class logs in at once, and no other
    user of the machine can connect to them. A home too long for the sockets' paths (user names
    may have 32 characters) keeps TCP ports on localhost: a kernel that cannot bind never starts.
    """
    home = pwd.getpwnam(spawner.user.name).pw_dir
    args = [arg for arg in spawner.args if arg != KERNEL_IPC_ARG]
    if kernel_sockets_fit(home):
        args.append(KERNEL_IPC_ARG)
    else:
        spawner.log.info("kernels of %s on TCP ports: Unix sockets under %s would be too long",
                         spawner.user.name, home)
    spawner.args = args


def chain_hooks(*hooks):
    """Return one pre-spawn hook that runs ``hooks`` in order (each sync or async)."""

    async def chained(spawner):
        for hook in hooks:
            result = hook(spawner)
            if inspect.isawaitable(result):
                await result

    return chained
