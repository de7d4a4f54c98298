"""Publishing: the gate, the pre-receive hook, the warning about changed cells, take-back.

Real Unix accounts (an instructor in the repository's group, students outside it), a real
bare repository secured as on the server, real git pushes, nbval running the notebooks,
and nbgitpuller syncing the students' copies exactly as the hub does before a server starts.
"""
import json
import subprocess
import sys

import nbformat
import pytest
from course_hub import gate, gitutil, hook, repository, take_back
from inst_helpers import head_of, make_notebook, publish_as, run_as, sync_student


def cell_sources(path):
    return [cell.source for cell in nbformat.read(str(path), as_version=4).cells]


def edit_cell(path, index, source):
    nb = nbformat.read(str(path), as_version=4)
    nb.cells[index].source = source
    nbformat.write(nb, str(path))


def add_cell(path, source):
    nb = nbformat.read(str(path), as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(source))
    nbformat.write(nb, str(path))


def as_owner(path, user):
    subprocess.run(["chown", "-R", f"{user}:{user}", str(path)], check=True)


# ---- the whole path, with real accounts ----------------------------------------------------

def test_good_change_reaches_a_student_and_their_edits_survive(course, people, workspace):
    student = people["student"]
    copy = sync_student(student, course)
    # The student edits cell 1 of the first notebook and writes a file of their own.
    edit_cell(copy / "01-first.ipynb", 0, "a = 100  # my experiment")
    (copy / "notes.txt").write_text("my notes")
    as_owner(copy, student)
    before = head_of(course)

    # The instructor fixes cell 3 and adds a cell; publishes with the one command.
    edit_cell(workspace / "01-first.ipynb", 2, "print('the answer is', 2 * b)")
    add_cell(workspace / "01-first.ipynb", "c = b - 1")
    as_owner(workspace, people["instructor"])
    proc = publish_as(people["instructor"], workspace, course, "-m", "Clearer answer")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "published" in proc.stdout and "all clean" in proc.stdout
    # The warning names the changed published cell (cell 3), not the added one.
    assert "01-first.ipynb: cell 3" in proc.stdout and "changed" in proc.stdout
    after = head_of(course)
    assert after != before
    # The instructor's branch now is the published commit, and their copy is clean.
    local = run_as(people["instructor"], ["git", "rev-parse", "HEAD"], cwd=workspace, env=course["env"])
    assert local.stdout.strip() == after
    status = run_as(people["instructor"], ["git", "status", "--porcelain"], cwd=workspace, env=course["env"])
    assert status.stdout == ""

    # Next login: the student gets the fix and the new cell, and keeps their edit and file.
    sync_student(student, course)
    sources = cell_sources(copy / "01-first.ipynb")
    assert sources == ["a = 100  # my experiment", "b = a + 1", "print('the answer is', 2 * b)", "c = b - 1"]
    assert (copy / "notes.txt").read_text() == "my notes"


def test_failing_notebook_is_refused_and_nothing_is_published(course, people, workspace):
    before = head_of(course)
    edit_cell(workspace / "02-second.ipynb", 1, "double(21)\nraise ValueError('deliberately broken cell')")
    as_owner(workspace, people["instructor"])
    proc = publish_as(people["instructor"], workspace, course)
    assert proc.returncode == 1
    output = proc.stdout + proc.stderr
    # The failing cell's source and its error are shown, and the refusal is explicit.
    assert "02-second.ipynb" in output and "Cell 1" in output
    assert "raise ValueError('deliberately broken cell')" in output
    assert "ValueError: deliberately broken cell" in output
    assert "nothing was published" in output
    assert head_of(course) == before
    local = run_as(people["instructor"], ["git", "rev-parse", "HEAD"], cwd=workspace, env=course["env"])
    assert local.stdout.strip() == before  # the instructor's branch did not move either
    # The edit is still in the working copy, to be fixed.
    assert "deliberately broken" in (workspace / "02-second.ipynb").read_text()


def test_plain_git_push_cannot_skip_the_gate(course, people, workspace):
    before = head_of(course)
    add_cell(workspace / "01-first.ipynb", "1 / 0")
    as_owner(workspace, people["instructor"])
    user, env = people["instructor"], {**course["env"], "GIT_AUTHOR_NAME": "I", "GIT_AUTHOR_EMAIL": "i@x",
                                       "GIT_COMMITTER_NAME": "I", "GIT_COMMITTER_EMAIL": "i@x"}
    assert run_as(user, ["git", "commit", "-qam", "oops"], cwd=workspace, env=env).returncode == 0
    push = run_as(user, ["git", "push", "--no-verify", "origin", "HEAD:main"], cwd=workspace, env=env)
    assert push.returncode != 0
    assert "ZeroDivisionError" in push.stderr and "REFUSED" in push.stderr
    assert head_of(course) == before


def test_course_lib_change_runs_its_tests(course, people, workspace):
    before = head_of(course)
    (workspace / "course_lib" / "__init__.py").write_text("def double(x):\n    return 3 * x\n")
    as_owner(workspace, people["instructor"])
    proc = publish_as(people["instructor"], workspace, course)
    assert proc.returncode == 1
    assert "test_double" in proc.stdout and "course_lib's tests" in proc.stdout
    assert head_of(course) == before


def test_students_cannot_push_or_write_the_repository(course, people):
    before = head_of(course)
    student = people["student"]
    copy = sync_student(student, course)
    add_cell(copy / "01-first.ipynb", "print('student was here')")
    as_owner(copy, student)
    env = {**course["env"], "GIT_AUTHOR_NAME": "S", "GIT_AUTHOR_EMAIL": "s@x",
           "GIT_COMMITTER_NAME": "S", "GIT_COMMITTER_EMAIL": "s@x"}
    assert run_as(student, ["git", "commit", "-qam", "mine"], cwd=copy, env=env).returncode == 0
    push = run_as(student, ["git", "push", "origin", "HEAD:main"], cwd=copy, env=env)
    assert push.returncode != 0
    assert "unable to create temporary object directory" in push.stderr  # no write permission
    touch = run_as(student, ["touch", str(course["repo"] / "refs" / "heads" / "sneaky")])
    assert touch.returncode != 0
    # An instructor cannot switch the gate off: config and hook are root's, the folder is sticky.
    for target in ("config", "hooks/pre-receive"):
        moved = run_as(people["instructor"], ["mv", str(course["repo"] / target), str(course["repo"] / "x")])
        assert moved.returncode != 0, target
        written = run_as(people["instructor"], ["sh", "-c", f"echo >> {course['repo'] / target}"])
        assert written.returncode != 0, target
    assert head_of(course) == before


def test_history_cannot_be_rewritten_or_deleted(course, people, workspace):
    user, env = people["instructor"], course["env"]
    delete = run_as(user, ["git", "push", "origin", ":main"], cwd=workspace, env=env)
    assert delete.returncode != 0
    rewind = run_as(user, ["git", "push", "--force", "origin", "HEAD~0:main"], cwd=workspace, env=env)
    assert rewind.returncode == 0  # same commit: nothing to refuse
    orphan = run_as(user, ["git", "commit-tree", "HEAD^{tree}", "-m", "rewritten"], cwd=workspace,
                    env={**env, "GIT_AUTHOR_NAME": "I", "GIT_AUTHOR_EMAIL": "i@x",
                         "GIT_COMMITTER_NAME": "I", "GIT_COMMITTER_EMAIL": "i@x"})
    force = run_as(user, ["git", "push", "--force", "origin", f"{orphan.stdout.strip()}:main"],
                   cwd=workspace, env=env)
    assert force.returncode != 0 and "non-fast-forward" in force.stderr


def test_take_back_restores_the_fix_and_keeps_the_students_copy(course, people, workspace):
    student = people["student"]
    copy = sync_student(student, course, folder=course["folder"] + "-tb")
    edit_cell(copy / "01-first.ipynb", 1, "b = a + 2  # mine")
    as_owner(copy, student)
    mine = (copy / "01-first.ipynb").read_text()
    # The instructor fixes the very cell the student edited: the warning names it.
    edit_cell(workspace / "01-first.ipynb", 1, "b = a + 1  # fixed upstream")
    as_owner(workspace, people["instructor"])
    proc = publish_as(people["instructor"], workspace, course)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "01-first.ipynb: cell 2" in proc.stdout and "WARNING" in proc.stdout
    # nbgitpuller keeps the student's version of that cell: the fix is silently missed.
    sync_student(student, course, folder=course["folder"] + "-tb")
    assert cell_sources(copy / "01-first.ipynb")[1] == "b = a + 2  # mine"

    taken = run_as(student, [sys.executable, "-m", "course_hub.take_back", "--course", str(copy),
                             "01-first.ipynb"], env=course["env"])
    assert taken.returncode == 0, taken.stdout + taken.stderr
    kept = sorted(copy.glob("01-first-mine-*.ipynb"))
    assert len(kept) == 1 and kept[0].name in taken.stdout
    assert cell_sources(kept[0])[1] == "b = a + 2  # mine"
    assert cell_sources(copy / "01-first.ipynb")[1] == "b = a + 1  # fixed upstream"
    # The next login's sync keeps both: the published version and the student's copy.
    sync_student(student, course, folder=course["folder"] + "-tb")
    assert cell_sources(copy / "01-first.ipynb")[1] == "b = a + 1  # fixed upstream"
    assert json.loads(kept[0].read_text()) == json.loads(mine)


# ---- the pieces, and their refusals ------------------------------------------------------------

def _nb_json(*sources, ids=True):
    nb = make_notebook(*sources)
    if not ids:
        for cell in nb.cells:
            cell.pop("id", None)
        nb.nbformat_minor = 4
    return nbformat.writes(nb)


def test_changed_cells_matches_by_id_and_ignores_added_cells():
    old = make_notebook("x = 1", "y = 2", "z = 3")
    new = nbformat.from_dict(json.loads(nbformat.writes(old)))
    new.cells[1].source = "y = 20"
    del new.cells[2]
    new.cells.insert(0, nbformat.v4.new_code_cell("w = 0"))  # shifts positions: ids still match
    found = gate.changed_cells("nb.ipynb", nbformat.writes(old), nbformat.writes(new))
    assert [(c.index, c.kind, c.first_line) for c in found] == [(2, "changed", "y = 2"), (3, "removed", "z = 3")]
    assert "nb.ipynb: cell 2 (id " in str(found[0])


def test_changed_cells_without_ids_matches_by_position():
    found = gate.changed_cells("nb.ipynb", _nb_json("x = 1", "y = 2", ids=False),
                               _nb_json("x = 1", "y = 3", "z = 4", ids=False))
    assert [(c.index, c.kind) for c in found] == [(2, "changed")]
    assert gate.warning_text([]) == ""
    assert "add a new cell instead" in gate.warning_text(found)


def test_plan_picks_changed_notebooks_and_library():
    notebooks, library = gate.plan({"a.ipynb": "M", "b.ipynb": "D", "c.ipynb": "A", "README.md": "M",
                                    ".ipynb_checkpoints/a-checkpoint.ipynb": "A"})
    assert notebooks == ["a.ipynb", "c.ipynb"] and library is False
    assert gate.plan({"course_lib/cnn.py": "M"}) == ([], True)


def test_hook_input_must_be_three_fields():
    with pytest.raises(ValueError, match="'<old> <new> <ref>' lines, got 'abc def'"):
        hook.parse_updates(["abc def"])
    assert hook.parse_updates(["", "a b refs/heads/main"]) == [("a", "b", "refs/heads/main")]


def test_refusals_name_the_argument(scratch, people):
    with pytest.raises(ValueError, match="group must be an existing Unix group, got 'no-such-group-x1'"):
        repository.secure_repository(scratch / "r.git", "no-such-group-x1")
    with pytest.raises(ValueError, match="username must be an existing Unix account, got 'nobody-x1'"):
        repository.ensure_workspace("nobody-x1", scratch / "r.git", scratch / "w")
    (scratch / "full").mkdir()
    (scratch / "full" / "f").write_text("x")
    with pytest.raises(ValueError, match="target must be empty or a working copy"):
        repository.ensure_workspace(people["instructor"], scratch / "r.git", scratch / "full")


def test_take_back_refusals(course, people, scratch):
    with pytest.raises(ValueError, match="course must be your copy of the course"):
        take_back.take_back("01-first.ipynb", course=scratch)
    copy = scratch / "clone"
    gitutil.git("clone", "--quiet", str(course["repo"]), str(copy))
    with pytest.raises(ValueError, match="notebook must be a published file of the course, got 'nope.ipynb'"):
        take_back.take_back("nope.ipynb", course=copy, fetch=False)
    with pytest.raises(ValueError, match="notebook must be inside"):
        take_back.take_back("/etc/passwd", course=copy, fetch=False)
    # Unchanged notebook: nothing to keep; a deleted one comes back.
    assert take_back.take_back("01-first.ipynb", course=copy, fetch=False) is None
    (copy / "02-second.ipynb").unlink()
    assert take_back.take_back("02-second.ipynb", course=copy, fetch=False) is None
    assert (copy / "02-second.ipynb").exists()


def test_kept_name_never_overwrites(scratch):
    import datetime
    path = scratch / "nb.ipynb"
    when = datetime.datetime(2026, 11, 28, 14, 25, 1)
    first = take_back.kept_name(path, when)
    assert first.name == "nb-mine-20261128-142501.ipynb"
    first.write_text("{}")
    assert take_back.kept_name(path, when).name == "nb-mine-20261128-142501-2.ipynb"
