"""The course repository's ``pre-receive`` hook: every push passes the gate or is refused.

git runs the hook in the bare repository with one line per updated ref on standard input
(``<old> <new> <ref>``); a non-zero exit refuses the whole push, and git tells the pusher
everything the hook wrote (prefixed ``remote:``). The pushed objects sit in quarantine until
then, so a refused push leaves the repository exactly as it was.

The installed hook (see :func:`course_hub.repository.install_hook`) is a three-line
script that imports this module with the course's interpreter.
"""
import os
import sys

from . import gate, gitutil


def parse_updates(lines):
    """Return ``[(old, new, ref), ...]`` from the hook's standard-input lines.

    Raises
    ------
    ValueError
        If a line is not three fields.
    """
    updates = []
    for line in lines:
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 3:
            raise ValueError(f"pre-receive input must be '<old> <new> <ref>' lines, got {line!r}")
        updates.append(tuple(fields))
    return updates


def main(stdin=None, repo=None, out=None):
    """Check every ref update; return the exit status git expects (0 accept, 1 refuse)."""
    stdin = sys.stdin if stdin is None else stdin
    out = sys.stderr if out is None else out
    repo = repo or os.getcwd()
    try:
        updates = parse_updates(stdin.read().splitlines())
    except ValueError as exc:
        print(f"course gate: {exc}", file=out)
        return 1
    refused = False
    for old, new, ref in updates:
        if new == gitutil.ZERO_SHA:
            print(f"course gate: refusing to delete {ref}: students pull from it", file=out)
            refused = True
            continue
        print(f"course gate: checking {ref} ({old[:8]}..{new[:8]}); notebooks run under nbval ...",
              file=out, flush=True)
        try:
            result = gate.check_commits(repo, old, new)
        except gitutil.GitError as exc:
            print(f"course gate: cannot read the pushed commits: {exc}", file=out)
            refused = True
            continue
        print(result.report(), file=out)
        if not result.ok:
            print(f"course gate: REFUSED {ref}: fix the failures above; nothing was published.", file=out)
            refused = True
            continue
        warning = gate.warning_text(gate.published_cell_changes(repo, old, new))
        if warning:
            print(warning, file=out)
    out.flush()
    return 1 if refused else 0
