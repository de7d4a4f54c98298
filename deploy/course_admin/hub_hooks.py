"""What ``jupyterhub_config.py`` wires in for instructors.

- :func:`make_instructor_spawn_hook`: before an instructor's server starts, make sure they
  have a working copy of the course repository (``~/course-edit``) and open it, instead of
  the students' ``~/course``.
- :func:`make_server_token_scopes`: the ``$JUPYTERHUB_API_TOKEN`` of an instructor's server
  may also list students and read their activity and servers (what ``course-status`` needs);
  students' servers keep JupyterHub's default ("post activity only").
- :func:`chain_hooks`: run several pre-spawn hooks in order.
"""
import asyncio
import grp
import inspect
import os
import pwd

from . import repository

#: JupyterHub's default scopes for a server's own token (its built-in ``server`` role).
SERVER_DEFAULT_SCOPES = ("users:activity!user", "access:servers!server")


def is_member(username, group):
    """Whether Unix user ``username`` is in Unix group ``group`` (False if either is unknown)."""
    try:
        gid = grp.getgrnam(group).gr_gid
        account = pwd.getpwnam(username)
    except KeyError:
        return False
    return gid in os.getgrouplist(username, account.pw_gid)


def make_instructor_spawn_hook(course_repo, instructors_group, folder="course-edit"):
    """Build a pre-spawn hook giving instructors their working copy and opening it.

    Parameters
    ----------
    course_repo : str
        The bare course repository instructors publish to.
    instructors_group : str
        The instructors' Unix group.
    folder : str
        The working copy's folder in the instructor's home.

    Returns
    -------
    callable
        ``async hook(spawner)``; does nothing for students.
    """

    async def instructor_workspace(spawner):
        name = spawner.user.name
        if not is_member(name, instructors_group):
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
        spawner.default_url = f"/tree/{folder}"

    return instructor_workspace


def make_server_token_scopes(instructors_group, instructor_scopes):
    """Build ``Spawner.server_token_scopes``: more scopes for instructors' servers only.

    The hub grants a token only the subset of these scopes its owner holds, so this never
    gives anyone more than their roles do.
    """
    extra = tuple(instructor_scopes)

    def server_token_scopes(spawner):
        scopes = list(SERVER_DEFAULT_SCOPES)
        if is_member(spawner.user.name, instructors_group):
            scopes.extend(extra)
        return scopes

    return server_token_scopes


def chain_hooks(*hooks):
    """Return one pre-spawn hook that runs ``hooks`` in order (each sync or async)."""

    async def chained(spawner):
        for hook in hooks:
            result = hook(spawner)
            if inspect.isawaitable(result):
                await result

    return chained
