"""Create and secure the course repository, and give an instructor a working copy of it.

Who may do what, by Unix permissions (the hub spawns every user's server as that user):

* the repository (bare) belongs to ``root:<instructors group>``, folders ``2775`` and
  ``core.sharedRepository=group``: instructors can push, students can only read (nbgitpuller
  clones it), nobody else can write;
* ``config``, ``HEAD`` and ``hooks/`` belong to root and are not group-writable, and the
  repository's folder has the sticky bit (mode ``3775``), so an instructor's push can neither
  switch the gate off (``core.hooksPath``) nor replace or rename the hook or the config;
* ``receive.autogc`` is off: a push never repacks (which would rewrite top-level files under
  the sticky folder); root may run ``git gc`` now and then;
* ``receive.denyNonFastForwards`` and ``receive.denyDeletes``: published history is never
  rewritten under the students' clones.

The ``pre-receive`` hook runs :mod:`course_admin.hook` with the course's interpreter.
"""
import os
import pathlib
import grp
import pwd
import sys

from . import gitutil

#: Top-level files only root may change (the rest of the repository is the group's to write).
ROOT_FILES = ("config", "HEAD", "description")
PACKAGE_PARENT = pathlib.Path(__file__).resolve().parent.parent
HOOK_TEMPLATE = """#!{python}
# Installed by course_admin.repository.install_hook: every push to the course repository must
# pass the course gate (changed notebooks run clean, course_lib's tests when it changed).
import sys
sys.path.insert(0, {parent!r})
from course_admin.hook import main
sys.exit(main())
"""


def _group_id(group):
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise ValueError(f"group must be an existing Unix group, got {group!r}") from None


def install_hook(repo, python=sys.executable, package_parent=PACKAGE_PARENT):
    """Write the repository's ``pre-receive`` hook (root-owned, not writable by the group).

    Parameters
    ----------
    repo : str or os.PathLike
        The bare course repository.
    python : str
        The interpreter the hook runs with: it must have nbval, pytest and the course's
        packages (the course virtualenv's ``bin/python``).
    package_parent : str or os.PathLike
        The folder holding the ``course_admin`` package; instructors must be able to read it.
    """
    hooks = pathlib.Path(repo) / "hooks"
    hooks.mkdir(exist_ok=True)
    hook = hooks / "pre-receive"
    hook.write_text(HOOK_TEMPLATE.format(python=python, parent=str(package_parent)))
    for path, mode in ((hooks, 0o755), (hook, 0o755)):
        os.chown(path, 0, 0)
        os.chmod(path, mode)
    return hook


def secure_repository(repo, group, python=sys.executable, package_parent=PACKAGE_PARENT):
    """Create the bare course repository if needed and apply the rules in the module docstring.

    Idempotent: run it again after an upgrade to refresh the hook and the permissions.

    Parameters
    ----------
    repo : str or os.PathLike
        Where the bare repository is (or is to be created).
    group : str
        The instructors' Unix group: its members may push.
    python, package_parent
        Passed to :func:`install_hook`.

    Returns
    -------
    pathlib.Path
        The repository's path.
    """
    gid = _group_id(group)
    repo = pathlib.Path(repo)
    if not (repo / "HEAD").exists():
        repo.mkdir(parents=True, exist_ok=True)
        gitutil.git("init", "--quiet", "--bare", "--shared=group", "--initial-branch=main", str(repo))
    for key, value in (
        ("core.sharedRepository", "group"),
        ("receive.denyNonFastForwards", "true"),
        ("receive.denyDeletes", "true"),
        ("receive.autogc", "false"),
    ):
        gitutil.git("config", key, value, cwd=repo)
    for root, dirs, files in os.walk(repo):
        if pathlib.Path(root) == repo:
            dirs[:] = [d for d in dirs if d != "hooks"]  # root's alone, below
            files[:] = [f for f in files if f not in ROOT_FILES]
        for name in dirs:
            path = os.path.join(root, name)
            os.chown(path, 0, gid)
            os.chmod(path, 0o2775)
        for name in files:
            path = os.path.join(root, name)
            os.chown(path, 0, gid)
            # Objects are read-only by design; refs and logs must stay writable by the group.
            mode = os.stat(path).st_mode & 0o777
            os.chmod(path, (mode | 0o044 | (0o020 if mode & 0o200 else 0)) & ~0o002)
    os.chown(repo, 0, gid)
    os.chmod(repo, 0o3775)
    for name in ROOT_FILES:
        if (repo / name).exists():
            os.chown(repo / name, 0, 0)
            os.chmod(repo / name, 0o644)
    for sample in (repo / "hooks").glob("*"):
        os.chown(sample, 0, 0)
        os.chmod(sample, sample.stat().st_mode & 0o755)
    install_hook(repo, python=python, package_parent=package_parent)
    return repo


def ensure_workspace(username, repo, target):
    """Give an instructor a working copy of the course repository at ``target``, once.

    An existing working copy is left exactly as it is (it holds the instructor's unpublished
    work). Called by the hub before an instructor's server starts.

    Parameters
    ----------
    username : str
        The instructor's Unix account (the copy is made theirs).
    repo : str or os.PathLike
        The bare course repository.
    target : str or os.PathLike
        Where the working copy goes, e.g. ``~/course-edit``.

    Returns
    -------
    bool
        True if a copy was made, False if one was already there.
    """
    try:
        account = pwd.getpwnam(username)
    except KeyError:
        raise ValueError(f"username must be an existing Unix account, got {username!r}") from None
    target = pathlib.Path(target)
    if (target / ".git").exists():
        return False
    if target.exists() and any(target.iterdir()):
        raise ValueError(f"target must be empty or a working copy, got non-empty {str(target)!r}")
    gitutil.git("clone", "--quiet", str(repo), str(target))
    for root, dirs, files in os.walk(target):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), account.pw_uid, account.pw_gid)
    os.chown(target, account.pw_uid, account.pw_gid)
    return True

