"""Run git and read trees: the one git helper of the hub's code (repository, gate, publish, take-back)."""
import io
import os
import subprocess
import tarfile

#: git's name for "no commit" in a pre-receive line (a created or deleted ref).
ZERO_SHA = "0" * 40
#: the empty tree's id: the "old" side of a diff for a branch that did not exist yet.
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


class GitError(RuntimeError):
    """A git command failed; the message carries git's own words."""


def git(*args, cwd=None, env=None, input=None, check=True):
    """Run ``git args...`` and return its standard output as text.

    Parameters
    ----------
    *args : str
        The git sub-command and its arguments.
    cwd : str or os.PathLike, optional
        The repository (or working copy) to run in.
    env : dict, optional
        Extra environment variables, added to the current environment.
    input : str, optional
        Text written to git's standard input.
    check : bool
        Raise :class:`GitError` when git exits non-zero.

    Returns
    -------
    str
        git's standard output, trailing newline removed.
    """
    full_env = dict(os.environ)
    # git's messages in English whatever the user's locale: the tools quote them.
    full_env["LC_ALL"] = "C"
    if env:
        full_env.update(env)
    proc = subprocess.run(
        ["git", *args], cwd=cwd, env=full_env, input=input,
        capture_output=True, text=True,
    )
    if check and proc.returncode != 0:
        raise GitError(f"git {' '.join(args)} failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout.rstrip("\n")


def changed_files(repo, old, new):
    """Return ``{path: status}`` for the files that differ between two commits.

    Parameters
    ----------
    repo : str or os.PathLike
        The repository holding both commits.
    old : str
        The commit before the change, or :data:`ZERO_SHA` for a new branch.
    new : str
        The commit after the change.

    Returns
    -------
    dict
        Path to one letter: ``A`` added, ``M`` modified, ``D`` deleted (renames are
        reported as a deletion and an addition, so the new file is always checked).
    """
    base = EMPTY_TREE if old == ZERO_SHA else old
    out = git("diff", "--name-status", "--no-renames", "-z", base, new, cwd=repo)
    fields = [f for f in out.split("\0") if f]
    return {fields[i + 1]: fields[i][0] for i in range(0, len(fields) - 1, 2)}


def read_blob(repo, commit, path):
    """Return the bytes of ``path`` at ``commit``, or ``None`` if it is not there."""
    proc = subprocess.run(
        ["git", "cat-file", "blob", f"{commit}:{path}"], cwd=repo, capture_output=True,
    )
    return proc.stdout if proc.returncode == 0 else None


def export_tree(repo, commit, destination):
    """Write the files of ``commit`` into the folder ``destination`` (no ``.git``).

    ``git archive`` reads objects the way the rest of git does, so this also works inside
    a ``pre-receive`` hook, where the pushed objects are still in quarantine.
    """
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit], cwd=repo, capture_output=True,
    )
    if archive.returncode != 0:
        raise GitError(f"git archive {commit} failed: {archive.stderr.decode(errors='replace').strip()}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(destination, filter="data")
        else:  # Python < 3.11.4; git never writes absolute or '..' paths into an archive
            tar.extractall(destination)
