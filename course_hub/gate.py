"""The publish gate: what a change must pass before students can pull it.

A change is the difference between two commits of the course repository. It passes when

* every notebook it adds or modifies runs top to bottom without an exception
  (nbval in lax mode: outputs are not compared, errors are), and
* ``course_lib``'s unit tests pass, when the change touches ``course_lib/``.

The same code runs in the instructor's ``publish`` command (to refuse early) and in the
repository's ``pre-receive`` hook (so that a plain ``git push`` cannot skip it).

The gate also lists the cells of already-published notebooks whose source changed:
nbgitpuller merges with "ours", so a student who edited such a cell keeps their version
and silently misses the fix.
"""
import dataclasses
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

from . import gitutil

#: seconds one notebook cell may run in the gate before it counts as failed.
CELL_TIMEOUT = 600
#: seconds the whole check may take before the change is refused.
TOTAL_TIMEOUT = 1800
# Colour codes in IPython's tracebacks; the JUnit report writes the escape byte as "#x1B".
_ANSI = re.compile(r"(?:\x1b|#x1B)\[[0-9;?]*[A-Za-z]")


@dataclasses.dataclass
class Failure:
    """One failed item: a notebook cell, a unit test, or the check itself."""

    where: str
    message: str

    def __str__(self):
        return f"{self.where}\n{self.message}"


@dataclasses.dataclass
class GateResult:
    """The outcome of a check: which notebooks ran, whether tests ran, what failed."""

    notebooks: list
    ran_library_tests: bool
    failures: list

    @property
    def ok(self):
        """True when nothing failed."""
        return not self.failures

    def report(self, limit=4000):
        """Return a human-readable report, the failures' text cut to ``limit`` characters each."""
        lines = []
        checked = ", ".join(self.notebooks) if self.notebooks else "no notebooks"
        lines.append(f"checked: {checked}" + ("; course_lib's tests" if self.ran_library_tests else ""))
        if self.ok:
            lines.append("all clean")
        for failure in self.failures:
            text = failure.message
            if len(text) > limit:
                text = text[:limit] + f"\n... ({len(text) - limit} more characters)"
            lines.append(f"FAILED {failure.where}\n{text}")
        return "\n".join(lines)


@dataclasses.dataclass
class CellChange:
    """A cell of a published notebook whose source differs in the new version."""

    notebook: str
    index: int          # position in the published version (1-based, as Jupyter shows it)
    cell_id: str
    kind: str           # "changed" or "removed"
    first_line: str

    def __str__(self):
        ident = f" (id {self.cell_id})" if self.cell_id else ""
        return f"{self.notebook}: cell {self.index}{ident} {self.kind}: {self.first_line!r}"


def plan(changes):
    """Decide what to run for a change.

    Parameters
    ----------
    changes : dict
        ``{path: status}`` as returned by :func:`gitutil.changed_files`.

    Returns
    -------
    notebooks : list of str
        Added or modified notebooks, sorted (checkpoints are never published, so skipped).
    library_changed : bool
        Whether anything under ``course_lib/`` changed.
    """
    notebooks = sorted(
        path for path, status in changes.items()
        if status != "D" and path.endswith(".ipynb") and ".ipynb_checkpoints/" not in path
    )
    library_changed = any(path.startswith("course_lib/") for path in changes)
    return notebooks, library_changed


def _strip_ansi(text):
    return _ANSI.sub("", text or "")


def _failures_from_junit(xml_path, fallback_output):
    """Read pytest's JUnit XML report and return one :class:`Failure` per failed test."""
    try:
        root = ET.parse(xml_path).getroot()
    except (OSError, ET.ParseError):
        return [Failure("the check", _strip_ansi(fallback_output)[-4000:])]
    failures = []
    for case in root.iter("testcase"):
        for tag in ("failure", "error"):
            node = case.find(tag)
            if node is not None:
                # nbval names a notebook's items "<notebook>::Cell N" (classname holds the file).
                where = f"{case.get('classname', '')}::{case.get('name', '')}".strip(":")
                failures.append(Failure(where, _strip_ansi(node.text or node.get("message", ""))))
    return failures


def _pytest(tree, args, timeout):
    """Run pytest in ``tree`` with the course's interpreter; return (returncode, output, failures)."""
    with tempfile.TemporaryDirectory(prefix="gate-junit-") as scratch:
        junit = os.path.join(scratch, "report.xml")
        env = dict(os.environ)
        # Kernels and tests import the course_lib of the change being checked, not the installed one.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(tree), env.get("PYTHONPATH", "")) if p)
        # A hook runs with GIT_DIR, GIT_OBJECT_DIRECTORY, GIT_QUARANTINE_PATH...: none of that
        # is the notebooks' business (a notebook calling git would act on the course repository).
        for key in [k for k in env if k.startswith("GIT_")]:
            del env[key]
        env.setdefault("MPLBACKEND", "Agg")
        cmd = [
            sys.executable, "-m", "pytest",
            # The checked-out project's own pytest settings (strict nbval, its conftest) are
            # for its CI; the gate's rules are these, whatever the tree says.
            "-o", "addopts=", "-o", f"timeout={CELL_TIMEOUT}", "--noconftest",
            "-p", "no:cacheprovider", "--color=no", "-q", f"--rootdir={tree}",
            f"--junitxml={junit}", *args,
        ]
        try:
            proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return None, "", [Failure("the check", f"did not finish within {timeout} s")]
        output = proc.stdout + proc.stderr
        # 0: passed, 5: nothing collected; anything else is a failure to report.
        if proc.returncode in (0, 5):
            return proc.returncode, output, []
        failures = _failures_from_junit(junit, output)
        return proc.returncode, output, failures or [Failure("the check", _strip_ansi(output)[-4000:])]


def check_tree(tree, notebooks, library_changed, timeout=TOTAL_TIMEOUT):
    """Run the gate on a folder holding the new version of the course.

    Parameters
    ----------
    tree : str or os.PathLike
        The folder (an export of the commit being checked).
    notebooks : list of str
        Notebook paths relative to ``tree`` to run under nbval (lax).
    library_changed : bool
        Also run ``course_lib``'s unit tests (``tests/test_*.py`` of the tree).
    timeout : float
        Seconds for each of the two runs before the change is refused.

    Returns
    -------
    GateResult
    """
    tree = pathlib.Path(tree)
    failures = []
    if notebooks:
        _, _, found = _pytest(tree, ["--nbval-lax", *notebooks], timeout)
        failures.extend(found)
    ran_tests = False
    if library_changed:
        unit_tests = sorted(str(p.relative_to(tree)) for p in (tree / "tests").glob("test_*.py"))
        if unit_tests:
            ran_tests = True
            _, _, found = _pytest(tree, unit_tests, timeout)
            failures.extend(found)
    return GateResult(list(notebooks), ran_tests, failures)


def check_commits(repo, old, new, timeout=TOTAL_TIMEOUT):
    """Run the gate on the change ``old..new`` of ``repo`` (a bare repository or a clone)."""
    notebooks, library_changed = plan(gitutil.changed_files(repo, old, new))
    if not notebooks and not library_changed:
        return GateResult([], False, [])
    with tempfile.TemporaryDirectory(prefix="course-gate-") as tree:
        gitutil.export_tree(repo, new, tree)
        return check_tree(tree, notebooks, library_changed, timeout)


def _cell_source(cell):
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def changed_cells(name, published, proposed):
    """List the cells of a published notebook whose source the new version changes or removes.

    Cells are matched by their ``id`` (nbformat 4.5); notebooks without ids are matched by
    position. Outputs and metadata are ignored: only what a student could have edited counts.

    Parameters
    ----------
    name : str
        The notebook's path, used in the result.
    published, proposed : bytes or str
        The notebook's JSON before and after the change.

    Returns
    -------
    list of CellChange
    """
    old_cells = json.loads(published).get("cells", [])
    new_cells = json.loads(proposed).get("cells", [])
    with_ids = all(c.get("id") for c in old_cells + new_cells)
    new_by_key = {
        (c["id"] if with_ids else i): c for i, c in enumerate(new_cells)
    }
    found = []
    for i, cell in enumerate(old_cells):
        key = cell["id"] if with_ids else i
        source = _cell_source(cell)
        first = next((ln for ln in source.splitlines() if ln.strip()), "")[:70]
        match = new_by_key.get(key)
        if match is None:
            found.append(CellChange(name, i + 1, cell.get("id", ""), "removed", first))
        elif _cell_source(match) != source:
            found.append(CellChange(name, i + 1, cell.get("id", ""), "changed", first))
    return found


def published_cell_changes(repo, old, new):
    """List changed or removed cells across every notebook already published at ``old``."""
    if old == gitutil.ZERO_SHA:
        return []
    changes = gitutil.changed_files(repo, old, new)
    found = []
    for path, status in sorted(changes.items()):
        if status != "M" or not path.endswith(".ipynb"):
            continue
        before = gitutil.read_blob(repo, old, path)
        after = gitutil.read_blob(repo, new, path)
        try:
            found.extend(changed_cells(path, before, after))
        except (ValueError, AttributeError) as exc:
            # A notebook that is not valid JSON will fail the gate anyway; say so here too.
            found.append(CellChange(path, 0, "", f"unreadable ({exc})", ""))
    return found


def warning_text(cell_changes):
    """Return the publish warning about changed published cells ('' when there are none)."""
    if not cell_changes:
        return ""
    lines = [
        "WARNING: these cells were already published and their source changed.",
        "Students who edited one of them keep their own version and will NOT get this change",
        "(nbgitpuller merges with 'ours'). To reach everyone, add a new cell instead, or tell",
        "students to run `course-take-back NOTEBOOK` (their copy is kept beside it).",
    ]
    lines.extend(f"  - {change}" for change in cell_changes)
    return "\n".join(lines)
