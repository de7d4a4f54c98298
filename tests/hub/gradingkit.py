"""Helpers for the grading tests: a small nbgrader assignment, a user's server environment,
nbgrader run as a user, the gradebook's scores.

Everything is real: the assignment is an nbgrader source notebook that ``generate_assignment``
turns into a release; commands run as real Unix accounts with the environment the hub gives
that user's server (``course_hub.grading.server_environment``); scores are read from the
gradebook nbgrader wrote.
"""
import json
import os
import pathlib
import pwd
import subprocess
import sys
import types

import nbformat
from course_hub import grading
from course_hub import settings as course_settings

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
#: The virtualenv's bin: nbgrader, alembic and the course's commands.
VENV_BIN = pathlib.Path(sys.executable).parent

#: A small assignment that grades in seconds: a function to write (and room for more code),
#: a visible test and a test with a hidden part, one point each.
SMALL = "t0-double"
SMALL_CELLS = [
    ("markdown", None, "# Double it\n\nWrite `double(x)`, which returns twice `x`.", 0),
    ("solution", "double", "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION", 0),
    ("test", "test_double", "assert double(2) == 4, 'double(2) should be 4'", 1),
    ("solution", "more_code", "# anything else you want to run\n### BEGIN SOLUTION\npass\n### END SOLUTION", 0),
    ("test", "test_double_more",
     "assert double(-3) == -6\n### BEGIN HIDDEN TESTS\nassert double(10) == 20\n### END HIDDEN TESTS", 1),
]


def write_small_assignment(folder, name=SMALL, cells=SMALL_CELLS):
    """Write an nbgrader source assignment ``folder/<name>/<name>.ipynb``; return its folder."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for kind, grade_id, source, points in cells:
        if kind == "markdown":
            notebook.cells.append(nbformat.v4.new_markdown_cell(source))
            continue
        cell = nbformat.v4.new_code_cell(source)
        meta = {"grade_id": grade_id, "schema_version": 3, "solution": kind == "solution",
                "grade": kind == "test", "locked": kind == "test"}
        if kind == "test":
            meta["points"] = points
        cell.metadata["nbgrader"] = meta
        notebook.cells.append(cell)
    target = pathlib.Path(folder) / name
    target.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, str(target / f"{name}.ipynb"))
    return target


def answer(release_notebook, answers):
    """The release notebook with solution cells (by grade id) replaced by ``answers``."""
    submission = nbformat.reads(json.dumps(release_notebook), as_version=4)
    for cell in submission.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.metadata.get("nbgrader", {}).get("solution") and grade_id in answers:
            cell.source = answers[grade_id]
    return submission


def server_environment(settings_file, username):
    """The environment the hub gives ``username``'s server (and so their terminal and nbgrader):
    their account's basics, the course virtualenv on PATH, and course_hub.grading's variables."""
    account = pwd.getpwnam(username)
    settings = course_settings.load_settings(settings_file)
    spawner = types.SimpleNamespace(user=types.SimpleNamespace(name=username))
    env = {"HOME": account.pw_dir, "USER": username, "LOGNAME": username, "LANG": "C.UTF-8",
           "PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin"}
    for key, value in grading.server_environment(settings).items():
        env[key] = value(spawner) if callable(value) else value
    return env


def run_as(username, args, env, cwd=None, timeout=900, input=None):
    """Run ``args`` as ``username`` (their uid, groups and home) with ``env``; the CompletedProcess."""
    account = pwd.getpwnam(username)
    return subprocess.run(
        [str(a) for a in args], cwd=cwd or account.pw_dir, env=env, capture_output=True, text=True, input=input,
        timeout=timeout, user=account.pw_uid, group=account.pw_gid,
        extra_groups=os.getgrouplist(username, account.pw_gid))


def write_as(username, env, path, text):
    """Write ``text`` to ``path`` as ``username`` (so the file is theirs, as their editor makes it)."""
    done = run_as(username, [sys.executable, "-c", "import sys; open(sys.argv[1], 'w').write(sys.stdin.read())",
                             path], env, input=text)
    assert done.returncode == 0, done.stderr


def nbgrader_as(username, env, *args, timeout=900):
    """``nbgrader ARGS`` as ``username``; fails the caller with nbgrader's output if it fails."""
    done = run_as(username, [VENV_BIN / "nbgrader", *args], env, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"nbgrader {' '.join(map(str, args))} as {username} failed:\n"
                             f"{(done.stdout + done.stderr)[-5000:]}")
    return done.stdout + done.stderr


def scores(gradebook, assignment, student):
    """``{grade cell: (score, max)}`` of a student's submission, read from the gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{gradebook}") as book:
        submission = book.find_submission(assignment, student)
        return {grade.cell.name: (grade.score, grade.max_score) for nb in submission.notebooks for grade in nb.grades}


def student_names(gradebook):
    """``{student id: (first name, last name)}`` of every student in the gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{gradebook}") as book:
        return {student.id: (student.first_name, student.last_name) for student in book.students}


def setup_grading(env, seed):
    """``course-grade setup --seed SEED`` as root for the hub whose environment is ``env``."""
    done = subprocess.run([sys.executable, "-m", "course_hub.grading", "setup", "--seed", str(seed)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout
