"""The course repository: create it, publish into it, secure it, trust it; an instructor's copy.

The course repository (the settings' ``server.course_repo``) is a bare git repository; each
student's ``~/course`` is an nbgitpuller clone of it, so a commit published here reaches a
student at their next sync, merged with their edits. This module is its one owner.

Who may do what, by Unix permissions (the hub spawns every user's server as that user):

* the repository belongs to ``root:<instructors group>``, folders ``2775`` and
  ``core.sharedRepository=group``: instructors can push, students can only read (nbgitpuller
  clones it), nobody else can write;
* ``config``, ``HEAD`` and ``hooks/`` belong to root and are not group-writable, and the
  repository's folder has the sticky bit (mode ``3775``), so an instructor's push can neither
  switch the gate off (``core.hooksPath``) nor replace or rename the hook or the config;
* ``receive.autogc`` is off: a push never repacks (which would rewrite top-level files under
  the sticky folder); root may run ``git gc`` now and then;
* ``receive.denyNonFastForwards`` and ``receive.denyDeletes``: published history is never
  rewritten under the students' clones;
* the ``pre-receive`` hook runs :mod:`course_hub.hook` with the course's interpreter: every
  push passes the publish gate or is refused.

Command line (``course-repo``, as root; the repository and groups come from the settings)::

    course-repo setup [--seed SOURCE_DIR]   # the install step: groups, repository, gate, trust
    course-repo publish SOURCE_DIR [--message TEXT]

``setup`` is idempotent: it seeds the repository from ``SOURCE_DIR`` only while its branch has
no commit (afterwards the instructors publish into it, and a re-install must not put the
checkout's notebooks back over their fixes), and refreshes the hook and the permissions.
``publish`` commits the course files of a folder (notebooks and whatever else sits beside them,
without checkpoints, caches and the test-only ``sanitize.cfg``) if anything changed.
"""
import argparse
import grp
import os
import pathlib
import pwd
import shutil
import sys
import tempfile

from . import accounts, gitutil
from . import settings as course_settings

#: The branch students follow and instructors publish to.
BRANCH = "main"
#: Names in a source folder that are not course material.
EXCLUDED = {".ipynb_checkpoints", "__pycache__", "sanitize.cfg", ".pytest_cache", ".git"}
#: Shipped in the repository so that students' checkpoints never block a merge.
GITIGNORE = ".ipynb_checkpoints/\n__pycache__/\n"
AUTHOR = ("Course staff", "course-staff@localhost")
#: Top-level files only root may change (the rest of the repository is the group's to write).
ROOT_FILES = ("config", "HEAD", "description")
HOOK_TEMPLATE = """#!{python}
# Installed by course_hub.repository.install_hook: every push to the course repository must
# pass the course gate (changed notebooks run clean, course_lib's tests when it changed).
import sys

from course_hub.hook import main

sys.exit(main())
"""


def create(repo, branch=BRANCH):
    """Create the bare course repository if it does not exist yet; return its path."""
    repo = pathlib.Path(repo)
    if not (repo / "HEAD").exists():
        repo.mkdir(parents=True, exist_ok=True)
        gitutil.git("init", "--quiet", "--bare", "--shared=group", f"--initial-branch={branch}", str(repo))
    return repo


def has_commits(repo, branch=BRANCH):
    """Whether ``branch`` of the repository exists (holds a commit)."""
    if not (pathlib.Path(repo) / "HEAD").exists():
        return False
    return bool(gitutil.git("rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", cwd=repo, check=False))


def publish(source_dir, repo, branch=BRANCH, message=None):
    """Commit the course files of ``source_dir`` to ``branch`` of ``repo``.

    Parameters
    ----------
    source_dir : str or pathlib.Path
        Folder holding the course material (the checkout's ``notebooks/``).
    repo : str or pathlib.Path
        The bare course repository; created if missing.
    branch : str
        Branch to commit to.
    message : str or None
        Commit message (default: "Publish the course").

    Returns
    -------
    str or None
        The new commit's hash, or None when the repository already held exactly these files.

    Raises
    ------
    ValueError
        If ``source_dir`` is not a folder.
    """
    source_dir = pathlib.Path(source_dir)
    if not source_dir.is_dir():
        raise ValueError(f"source_dir: expected a folder of course material, got {str(source_dir)!r}")
    repo = create(repo, branch)
    old_umask = os.umask(0o022)  # everything in the repository readable by the students
    try:
        with tempfile.TemporaryDirectory(prefix="course-publish-") as scratch:
            tree = pathlib.Path(scratch) / "tree"
            shutil.copytree(source_dir, tree, ignore=lambda folder, names: EXCLUDED & set(names))
            (tree / ".gitignore").write_text(GITIGNORE)
            env = {
                "GIT_DIR": str(repo),
                "GIT_WORK_TREE": str(tree),
                "GIT_INDEX_FILE": str(pathlib.Path(scratch) / "index"),
                "GIT_AUTHOR_NAME": AUTHOR[0],
                "GIT_AUTHOR_EMAIL": AUTHOR[1],
                "GIT_COMMITTER_NAME": AUTHOR[0],
                "GIT_COMMITTER_EMAIL": AUTHOR[1],
            }
            parent = gitutil.git("rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", env=env, check=False)
            if parent:
                gitutil.git("read-tree", parent, env=env)
            gitutil.git("add", "--all", ".", env=env)
            tree_id = gitutil.git("write-tree", env=env)
            if parent and tree_id == gitutil.git("rev-parse", f"{parent}^{{tree}}", env=env):
                return None  # nothing changed since the last publication
            commit_args = ["commit-tree", tree_id, "-m", message or "Publish the course"]
            if parent:
                commit_args += ["-p", parent]
            commit = gitutil.git(*commit_args, env=env)
            gitutil.git("update-ref", f"refs/heads/{branch}", commit, *([parent] if parent else []), env=env)
            return commit
    finally:
        os.umask(old_umask)


def _group_id(group):
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise ValueError(f"group must be an existing Unix group, got {group!r}") from None


def install_hook(repo, python=sys.executable):
    """Write the repository's ``pre-receive`` hook (root-owned, not writable by the group).

    Parameters
    ----------
    repo : str or os.PathLike
        The bare course repository.
    python : str
        The interpreter the hook runs with: it must have ``course_hub``, nbval, pytest and the
        course's packages (the course virtualenv's, which instructors can read).
    """
    hooks = pathlib.Path(repo) / "hooks"
    hooks.mkdir(exist_ok=True)
    hook = hooks / "pre-receive"
    hook.write_text(HOOK_TEMPLATE.format(python=python))
    for path, mode in ((hooks, 0o755), (hook, 0o755)):
        os.chown(path, 0, 0)
        os.chmod(path, mode)
    return hook


def secure_repository(repo, group, python=sys.executable):
    """Create the bare course repository if needed and apply the rules in the module docstring.

    Idempotent: run it again after an upgrade to refresh the hook and the permissions.

    Parameters
    ----------
    repo : str or os.PathLike
        Where the bare repository is (or is to be created).
    group : str
        The instructors' Unix group: its members may push.
    python : str
        Passed to :func:`install_hook`.

    Returns
    -------
    pathlib.Path
        The repository's path.
    """
    gid = _group_id(group)
    repo = create(repo)
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
    install_hook(repo, python=python)
    return repo


def trust(repo):
    """Mark ``repo`` as a ``safe.directory`` in git's system configuration, once.

    Students clone a repository owned by root: git refuses that ("dubious ownership") unless
    the system configuration trusts it. Returns True if the entry was added.
    """
    repo = str(repo)
    trusted = gitutil.git("config", "--system", "--get-all", "safe.directory", check=False).splitlines()
    if repo in trusted:
        return False
    gitutil.git("config", "--system", "--add", "safe.directory", repo)
    return True


def setup(repo, groups, seed=None, python=sys.executable):
    """The install step: the course's groups, the repository (seeded once), its gate, git's trust.

    Parameters
    ----------
    repo : str or os.PathLike
        The course repository.
    groups : dict
        ``{"students": name, "instructors": name}`` (the settings' ``groups``); both are
        created if missing, and the instructors' group may push.
    seed : str or os.PathLike, optional
        Course material to publish while the repository has no commit yet.
    python : str
        The interpreter of the ``pre-receive`` hook.

    Returns
    -------
    dict
        ``groups_created`` (names), ``seeded`` (commit or None), ``trusted`` (bool).

    Raises
    ------
    ValueError
        If ``seed`` is given but is not a folder (nothing is changed then).
    """
    if seed is not None and not pathlib.Path(seed).is_dir():
        raise ValueError(f"seed: expected a folder of course material, got {str(seed)!r}")
    created = accounts.ensure_groups([groups["students"], groups["instructors"]])
    seeded = None
    if seed is not None and not has_commits(repo):
        seeded = publish(seed, repo)
    secure_repository(repo, groups["instructors"], python=python)
    return {"groups_created": created, "seeded": seeded, "trusted": trust(repo)}


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


def main(argv=None):
    """Command line (``course-repo``): ``setup`` and ``publish``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="course-repo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", default=None, help="the course repository (default: the settings')")
    commands = parser.add_subparsers(dest="command", required=True)
    setup_parser = commands.add_parser("setup", help="groups, repository, publish gate, git's trust (idempotent)")
    setup_parser.add_argument("--seed", default=None, help="course material for a repository without commits")
    publish_parser = commands.add_parser("publish", help="commit a folder of course material")
    publish_parser.add_argument("source_dir")
    publish_parser.add_argument("--message", default=None)
    args = parser.parse_args(argv)
    try:
        settings = course_settings.for_this_server()
        repo = pathlib.Path(args.repo) if args.repo else settings["server"]["course_repo"]
        if os.geteuid() != 0:
            raise ValueError("run as root: the course repository belongs to root")
        if args.command == "setup":
            done = setup(repo, settings["groups"], seed=args.seed)
            for name in done["groups_created"]:
                print(f"course-repo: created group {name}")
            if done["seeded"]:
                print(f"course-repo: seeded {repo} from {args.seed} ({BRANCH} at {done['seeded'][:12]})")
            print(f"course-repo: {repo} secured for {settings['groups']['instructors']}, its publish gate installed"
                  + ("; trusted in git's system configuration" if done["trusted"] else ""))
        else:
            commit = publish(args.source_dir, repo, message=args.message)
            print(f"course-repo: published {args.source_dir} to {repo} ({BRANCH} at {commit[:12]})" if commit
                  else f"course-repo: {repo} already holds {args.source_dir}: nothing to publish")
    except (ValueError, gitutil.GitError) as exc:  # SettingsError is a ValueError
        print(f"course-repo: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
