"""Take the published version of one notebook back, keeping the student's own copy beside it.

nbgitpuller merges the course into ``~/course`` with "ours": a cell the student edited keeps
the student's version, and a later fix to that cell never arrives. This command puts the
published notebook back in place and keeps the student's version under a new name, so
nothing is lost::

    course-take-back 02-cnn-forward-backward.ipynb
    # -> 02-cnn-forward-backward.ipynb             the published version
    #    02-cnn-forward-backward-mine-20261128-142501.ipynb   yours, as it was

Close the notebook's tab first (or reload it afterwards). The next login's sync keeps the
published version (both sides of the merge agree on it) and never touches the kept copy.
"""
import argparse
import datetime
import pathlib
import shutil
import sys

from . import gitutil

DEFAULT_COURSE = pathlib.Path("~/course")


def published_ref(course):
    """Return the ref of the published course in the student's clone (``origin/<branch>``)."""
    upstream = gitutil.git("rev-parse", "--abbrev-ref", "--symbolic-full-name", "@{upstream}",
                           cwd=course, check=False)
    if upstream:
        return upstream
    head = gitutil.git("symbolic-ref", "--quiet", "--short", "refs/remotes/origin/HEAD",
                       cwd=course, check=False)
    return head or "origin/main"


def kept_name(path, now=None):
    """Return a free name beside ``path`` for the student's copy: ``<stem>-mine-<time><suffix>``."""
    now = now or datetime.datetime.now()
    stamp = now.strftime("%Y%m%d-%H%M%S")
    candidate = path.with_name(f"{path.stem}-mine-{stamp}{path.suffix}")
    counter = 2
    while candidate.exists():
        candidate = path.with_name(f"{path.stem}-mine-{stamp}-{counter}{path.suffix}")
        counter += 1
    return candidate


def take_back(notebook, course=DEFAULT_COURSE, fetch=True):
    """Replace ``notebook`` by its published version; keep the student's file beside it.

    Parameters
    ----------
    notebook : str or os.PathLike
        The notebook, relative to ``course`` (or an absolute path inside it).
    course : str or os.PathLike
        The student's copy of the course (default ``~/course``).
    fetch : bool
        Fetch the latest published version first (if the fetch fails, the last one fetched
        is used and a note says so).

    Returns
    -------
    kept : pathlib.Path or None
        Where the student's version now is; ``None`` if there was nothing to keep (the file
        was missing or already the published version).

    Raises
    ------
    ValueError
        If ``course`` is not a clone of the course, or ``notebook`` is not a published file.
    """
    course = pathlib.Path(course).expanduser().resolve()
    if not (course / ".git").exists():
        raise ValueError(f"course must be your copy of the course (a git clone), got {str(course)!r}")
    path = pathlib.Path(notebook).expanduser()
    path = (path if path.is_absolute() else course / path).resolve()
    try:
        relative = path.relative_to(course).as_posix()
    except ValueError:
        raise ValueError(f"notebook must be inside {course}, got {str(notebook)!r}") from None
    if fetch:
        try:
            gitutil.git("fetch", "--quiet", "origin", cwd=course)
        except gitutil.GitError as exc:
            print(f"note: could not fetch the latest course ({exc}); using the last one fetched",
                  file=sys.stderr)
    ref = published_ref(course)
    published = gitutil.read_blob(course, ref, relative)
    if published is None:
        raise ValueError(f"notebook must be a published file of the course, got {relative!r}")
    kept = None
    if path.exists():
        if path.read_bytes() == published:
            return None
        kept = kept_name(path)
        shutil.copy2(path, kept)  # a copy, then overwrite: the student's file is never removed
    path.write_bytes(published)
    return kept


def main(argv=None):
    """Command-line entry point (``course-take-back``)."""
    parser = argparse.ArgumentParser(prog="course-take-back", description=__doc__.split("\n\n")[0])
    parser.add_argument("notebook", help="the notebook, e.g. 02-cnn-forward-backward.ipynb")
    parser.add_argument("--course", default=str(DEFAULT_COURSE), help="your copy (default ~/course)")
    args = parser.parse_args(argv)
    try:
        kept = take_back(args.notebook, args.course)
    except (ValueError, gitutil.GitError) as exc:
        print(f"course-take-back: {exc}", file=sys.stderr)
        return 1
    if kept is None:
        print(f"{args.notebook} is now the published version (nothing of yours to keep)")
    else:
        print(f"{args.notebook} is now the published version; yours is kept as {kept.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
