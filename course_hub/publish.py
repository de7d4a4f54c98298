"""Publish the instructor's changes to the whole class, in one command.

Run it in the working copy (``~/course-edit``, opened from the hub's terminal)::

    course-publish -m "Fix the stride in notebook 02"
    course-publish --check            # run the gate here, publish nothing

What it does:

1. fetches the course repository and refuses if another instructor published something
   this copy does not have yet (``git pull`` first: nothing is overwritten);
2. builds the commit of everything changed in the working copy (new files included,
   ``.gitignore`` respected) without touching the branch or the index;
3. lists the cells of already-published notebooks whose source changed (students who
   edited such a cell will not get the change);
4. pushes that commit. The repository's ``pre-receive`` hook runs every changed notebook
   (nbval, lax) and, when ``course_lib`` changed, its tests; a failure is shown with the
   failing cell and its error and nothing is published;
5. only when the push was accepted, moves the local branch to the published commit.
"""
import argparse
import os
import pwd
import socket
import subprocess
import sys
import tempfile

from . import accounts, gate, gitutil


#: When a published change reaches students (the landing sync, course_hub.hooks.landing_url);
#: the README says the same.
WHEN_STUDENTS_GET_IT = (
    "students get it the next time they open the course from the hub (logging in, the hub's home "
    "page, a bookmark of the hub); a notebook already open in a tab shows the change once it is "
    "reopened")


class PublishError(RuntimeError):
    """Publishing was refused; the message says why and what to do."""


def _identity(workspace):
    """Author name and e-mail: git's configured ones, else the Unix account's."""
    name = gitutil.git("config", "user.name", cwd=workspace, check=False)
    email = gitutil.git("config", "user.email", cwd=workspace, check=False)
    account = pwd.getpwuid(os.getuid())
    name = name or accounts.full_name(account) or account.pw_name
    email = email or f"{account.pw_name}@{socket.gethostname()}"
    return {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email,
            "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email}


def working_tree_id(workspace):
    """Return the id of a tree object holding the working copy as it is now.

    A private index is used, so the instructor's staging area is not changed; new files are
    included and ``.gitignore`` is respected.
    """
    with tempfile.TemporaryDirectory(prefix="course-publish-") as scratch:
        env = {"GIT_INDEX_FILE": os.path.join(scratch, "index")}
        gitutil.git("read-tree", "HEAD", cwd=workspace, env=env)
        gitutil.git("add", "--all", ".", cwd=workspace, env=env)
        return gitutil.git("write-tree", cwd=workspace, env=env)


def publish(workspace=".", message=None, remote="origin", branch="main", check_only=False, out=None):
    """Check and publish the working copy; see the module docstring.

    Parameters
    ----------
    workspace : str or os.PathLike
        Any folder inside the instructor's working copy.
    message : str, optional
        The commit message (default: lists the changed files).
    remote, branch : str
        Where the class pulls from.
    check_only : bool
        Run the gate locally and publish nothing.
    out : file, optional
        Where progress goes (default: standard output).

    Returns
    -------
    str or None
        The published commit's id (``None`` with ``check_only`` or when nothing changed).

    Raises
    ------
    PublishError
        When the copy is behind the published course, or the gate refuses the change.
    """
    out = out or sys.stdout
    try:
        workspace = gitutil.git("rev-parse", "--show-toplevel", cwd=workspace)
    except (gitutil.GitError, FileNotFoundError):
        raise PublishError(f"workspace must be a working copy of the course, got {str(workspace)!r}") from None
    upstream = f"{remote}/{branch}"
    gitutil.git("fetch", "--quiet", remote, cwd=workspace)
    ahead = gitutil.git("rev-list", "--count", f"HEAD..{upstream}", cwd=workspace)
    if int(ahead):
        raise PublishError(
            f"the published course has {ahead} commit(s) this copy does not have (another "
            f"instructor published): run `git pull {remote} {branch}` in {workspace}, then publish again")
    tree = working_tree_id(workspace)
    if tree == gitutil.git("rev-parse", f"{upstream}^{{tree}}", cwd=workspace):
        print("nothing to publish: the working copy is the published course", file=out)
        return None
    changes = gitutil.changed_files(workspace, upstream, tree)
    if tree == gitutil.git("rev-parse", "HEAD^{tree}", cwd=workspace):
        candidate = gitutil.git("rev-parse", "HEAD", cwd=workspace)  # committed, not yet published
    else:
        message = message or "Publish " + ", ".join(sorted(changes))[:200]
        candidate = gitutil.git("commit-tree", tree, "-p", "HEAD", "-m", message,
                                cwd=workspace, env=_identity(workspace))
    print("changes: " + ", ".join(f"{status} {path}" for path, status in sorted(changes.items())), file=out)
    warning = gate.warning_text(gate.published_cell_changes(workspace, upstream, candidate))
    if warning:
        print(warning, file=out)
    if check_only:
        result = gate.check_commits(workspace, upstream, candidate)
        print(result.report(), file=out)
        if not result.ok:
            raise PublishError("the gate refused this change (see above); nothing was published")
        print("check passed; nothing published (--check)", file=out)
        return None
    print(f"publishing to {remote}/{branch}; the repository runs the changed notebooks ...", file=out, flush=True)
    proc = subprocess.run(
        ["git", "push", "--porcelain", remote, f"{candidate}:refs/heads/{branch}"],
        cwd=workspace, capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"},
    )
    # The hook's report comes back on stderr, each line prefixed "remote: ".
    for line in proc.stderr.splitlines():
        print(line.removeprefix("remote: ").rstrip(), file=out)
    if proc.returncode != 0:
        raise PublishError("the course repository refused the change (see above); nothing was published")
    gitutil.git("update-ref", "-m", "course-publish", "HEAD", candidate, cwd=workspace)
    gitutil.git("reset", "--quiet", cwd=workspace)  # index follows the new HEAD; files untouched
    print(f"published {candidate[:10]}: {WHEN_STUDENTS_GET_IT}", file=out)
    return candidate


def main(argv=None):
    """Command-line entry point (``course-publish``)."""
    parser = argparse.ArgumentParser(prog="course-publish", description=__doc__.split("\n\n")[0])
    parser.add_argument("-m", "--message", help="commit message (default: the changed files)")
    parser.add_argument("-C", "--workspace", default=".", help="the working copy (default: here)")
    parser.add_argument("--check", action="store_true", help="run the gate locally; publish nothing")
    parser.add_argument("--remote", default="origin")
    parser.add_argument("--branch", default="main")
    args = parser.parse_args(argv)
    try:
        publish(args.workspace, args.message, args.remote, args.branch, check_only=args.check)
    except (PublishError, gitutil.GitError) as exc:
        print(f"course-publish: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
