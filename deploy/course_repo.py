"""Publish the course notebooks into the git repository that students' copies sync from.

The course repository (``/srv/dlcourse/course.git`` by default) is a bare git repository owned
by root and readable by everyone. Each student's ``~/course`` is an nbgitpuller clone of it:
publishing a new commit here reaches a student at their next sync, merged with their edits.

Usage (as root)::

    python deploy/course_repo.py publish SOURCE_DIR [REPOSITORY] [--branch main] [--message TEXT]

Publishing copies the course files of ``SOURCE_DIR`` (notebooks and whatever else sits beside
them, without checkpoints, caches and the test-only ``sanitize.cfg``), commits them if anything
changed, and leaves the repository untouched otherwise: running it again is harmless.
"""
import argparse
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

DEFAULT_REPOSITORY = "/srv/dlcourse/course.git"
DEFAULT_BRANCH = "main"
#: Names in the source folder that are not course material.
EXCLUDED = {".ipynb_checkpoints", "__pycache__", "sanitize.cfg", ".pytest_cache", ".git"}
#: Shipped in the repository so that students' checkpoints never block a merge.
GITIGNORE = ".ipynb_checkpoints/\n__pycache__/\n"
AUTHOR = ("Course staff", "course-staff@localhost")


def _git(*args, env=None, check=True):
    """Run git with ``args`` and return its standard output (stripped)."""
    result = subprocess.run(
        ["git", *args], env=env, check=False, capture_output=True, text=True
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout.strip() if result.returncode == 0 else None


def ensure_repository(repository, branch=DEFAULT_BRANCH):
    """Create the bare course repository if it does not exist yet.

    Parameters
    ----------
    repository : str or pathlib.Path
        Path of the bare repository.
    branch : str
        Name of its main branch.

    Returns
    -------
    pathlib.Path
        The repository's path.
    """
    repository = pathlib.Path(repository)
    if not (repository / "HEAD").exists():
        repository.parent.mkdir(parents=True, exist_ok=True)
        _git("init", "--quiet", "--bare", f"--initial-branch={branch}", str(repository))
    return repository


def publish(source_dir, repository=DEFAULT_REPOSITORY, branch=DEFAULT_BRANCH, message=None):
    """Commit the course files of ``source_dir`` to ``branch`` of ``repository``.

    Parameters
    ----------
    source_dir : str or pathlib.Path
        Folder holding the course material (the checkout's ``notebooks/``).
    repository : str or pathlib.Path
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
    repository = ensure_repository(repository, branch)
    old_umask = os.umask(0o022)  # everything in the repository readable by the students
    try:
        with tempfile.TemporaryDirectory(prefix="course-publish-") as scratch:
            tree = pathlib.Path(scratch) / "tree"
            shutil.copytree(source_dir, tree, ignore=lambda folder, names: EXCLUDED & set(names))
            (tree / ".gitignore").write_text(GITIGNORE)
            git_env = dict(
                os.environ,
                GIT_DIR=str(repository),
                GIT_WORK_TREE=str(tree),
                GIT_INDEX_FILE=str(pathlib.Path(scratch) / "index"),
                GIT_AUTHOR_NAME=AUTHOR[0],
                GIT_AUTHOR_EMAIL=AUTHOR[1],
                GIT_COMMITTER_NAME=AUTHOR[0],
                GIT_COMMITTER_EMAIL=AUTHOR[1],
            )
            parent = _git("rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", env=git_env, check=False)
            if parent:
                _git("read-tree", parent, env=git_env)
            _git("add", "--all", ".", env=git_env)
            if parent and _git("diff", "--cached", "--quiet", env=git_env, check=False) is not None:
                return None  # nothing changed since the last publication
            tree_id = _git("write-tree", env=git_env)
            commit_args = ["commit-tree", tree_id, "-m", message or "Publish the course"]
            if parent:
                commit_args += ["-p", parent]
            commit = _git(*commit_args, env=git_env)
            _git("update-ref", f"refs/heads/{branch}", commit, *([parent] if parent else []), env=git_env)
            return commit
    finally:
        os.umask(old_umask)


def main(argv=None):
    """Command line: ``publish SOURCE_DIR [REPOSITORY]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    publish_parser = commands.add_parser("publish", help="commit the course material to the repository")
    publish_parser.add_argument("source_dir")
    publish_parser.add_argument("repository", nargs="?", default=DEFAULT_REPOSITORY)
    publish_parser.add_argument("--branch", default=DEFAULT_BRANCH)
    publish_parser.add_argument("--message", default=None)
    args = parser.parse_args(argv)
    try:
        commit = publish(args.source_dir, args.repository, args.branch, args.message)
    except (ValueError, RuntimeError) as exc:
        print(f"course_repo: {exc}", file=sys.stderr)
        return 1
    if commit:
        print(f"published {args.source_dir} to {args.repository} ({args.branch} at {commit[:12]})")
    else:
        print(f"{args.repository} already holds {args.source_dir}: nothing to publish")
    return 0


if __name__ == "__main__":
    sys.exit(main())
