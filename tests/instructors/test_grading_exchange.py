"""nbgrader's exchange and course directory as course-grade sets them up, with real accounts:
who may read, write, submit, collect and fetch what; and who may use the grading sandbox.

Everything here is made for this module and removed after it: an instructors' and a students'
group, an instructor, two students and a sandbox account of their own, the folders (named in a
site settings file, as a server's would be), and the sandbox service, started with the command
the hub starts it with. Commands run as those accounts with the environment the hub gives their
servers. The whole day on a real hub, with the browser, is tests/hub/test_hub_grading.py.
"""
import json
import os
import pathlib
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap

import pytest
import yaml
from course_hub import grading, sandbox
from course_hub import settings as course_settings

from tests.hub import gradingkit, hubkit

SMALL = gradingkit.SMALL
CHECKOUT = str(gradingkit.REPO_ROOT)


@pytest.fixture(scope="module")
def course(accounts):
    """The module's course: settings, set up by course-grade, the sandbox service running, the
    small assignment released by the instructor and fetched by both students."""
    instructors, students = accounts.group("gi"), accounts.group("gs")
    people = {"instructor": accounts.user("i", [instructors]), "amy": accounts.user("a", [students]),
              "bob": accounts.user("b", [students]), "sandbox": accounts.user("x")}
    root = pathlib.Path(tempfile.mkdtemp(prefix="grading-exchange-"))
    root.chmod(0o755)
    site = {"groups": {"students": students, "instructors": instructors},
            "grading": {"sandbox_user": people["sandbox"], "time_limit_seconds": 120},
            **hubkit.grading_settings(root)}
    settings_file = root / "settings.yaml"
    settings_file.write_text(yaml.safe_dump(site))
    settings_file.chmod(0o644)
    settings = course_settings.load_settings(settings_file)
    root_env = {**os.environ, course_settings.SETTINGS_VARIABLE: str(settings_file), "PYTHONPATH": CHECKOUT}
    gradingkit.setup_grading(root_env, gradingkit.write_small_assignment(root / "seed").parent)
    service = subprocess.Popen(grading.sandbox_service(settings)["command"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, env={"PATH": os.environ["PATH"], "PYTHONPATH": CHECKOUT})
    where = grading.locations(settings)
    try:
        hubkit.wait_for(lambda: where["socket"].exists() or service.poll() is not None, 60,
                        what="the sandbox service's socket")
        assert service.poll() is None, f"the sandbox service stopped: {service.stdout.read().decode()}"
        # the servers' environment, with this checkout's course_hub for what nbgrader imports
        env = {key: {**gradingkit.server_environment(settings_file, name), "PYTHONPATH": CHECKOUT}
               for key, name in people.items() if key != "sandbox"}
        for name in ("generate_assignment", "release_assignment"):
            gradingkit.nbgrader_as(people["instructor"], env["instructor"], name, SMALL)
        for student in ("amy", "bob"):
            gradingkit.nbgrader_as(people[student], env[student], "fetch_assignment", SMALL)
        yield {"people": people, "env": env, "where": where, "settings": settings, "root": root,
               "root_env": root_env, "seed": root / "seed"}
    finally:
        service.send_signal(signal.SIGTERM)
        service.wait(30)
        shutil.rmtree(root, ignore_errors=True)
        sandbox.lock_path(people["sandbox"]).unlink(missing_ok=True)


def as_user(course, who, code):
    """Run Python ``code`` as ``who``; return what it printed as JSON."""
    done = gradingkit.run_as(course["people"][who], [sys.executable, "-c", textwrap.dedent(code)], course["env"][who])
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def submit(course, who, answers):
    """Fill in ``who``'s fetched copy with ``answers`` (solution cells by id) and submit it."""
    env, account = course["env"][who], course["people"][who]
    release = json.loads((course["where"]["exchange"] / course["where"]["course_id"] / "outbound" / SMALL
                          / f"{SMALL}.ipynb").read_text())
    gradingkit.write_as(account, env, pathlib.Path(env["HOME"]) / SMALL / f"{SMALL}.ipynb",
                        json.dumps(gradingkit.answer(release, answers)))
    return gradingkit.nbgrader_as(account, env, "submit", SMALL)


def submissions_of(course, who):
    inbound = course["where"]["exchange"] / course["where"]["course_id"] / "inbound"
    return sorted(p for p in inbound.iterdir() if p.name.startswith(course["people"][who] + "+"))


def plant(course, who, named, timestamp, files=(), links=()):
    """Make a submission folder by hand, as ``who``, in the inbound folder (anyone may write
    there), named as ``named``'s submission made at ``timestamp``; ``files`` are copied in from
    ``who``'s own paths, ``links`` are (name, target) links. Returns its path."""
    folder = course["where"]["exchange"] / course["where"]["course_id"] / "inbound" / \
        f"{course['people'][named]}+{SMALL}+{timestamp}+planted"
    made = gradingkit.run_as(course["people"][who], [sys.executable, "-c", textwrap.dedent(f"""
        import os, pathlib, shutil
        folder = pathlib.Path({str(folder)!r})
        folder.mkdir()
        (folder / "timestamp.txt").write_text({timestamp!r})
        for source in {[str(f) for f in files]!r}:
            shutil.copy(source, folder)
        for name, target in {[(n, str(t)) for n, t in links]!r}:
            os.symlink(target, folder / name)
    """)], course["env"][who])
    assert made.returncode == 0, made.stderr
    return folder


def mode_and_group(path):
    info = path.stat()
    import grp

    return stat.S_IMODE(info.st_mode), grp.getgrgid(info.st_gid).gr_name, info.st_uid


# ---- the layout ---------------------------------------------------------------------------------------
def test_the_folders_have_the_documented_owners_and_modes(course):
    where, instructors = course["where"], course["settings"]["groups"]["instructors"]
    exchange_course = where["exchange"] / where["course_id"]
    assert mode_and_group(where["exchange"])[::2] == (0o755, 0)
    for name, mode in grading.EXCHANGE_MODES.items():
        assert mode_and_group(exchange_course / name) == (mode, instructors, 0), name
    assert mode_and_group(where["course"].parent)[::2] == (0o711, 0)
    assert mode_and_group(where["course"]) == (0o2770, instructors, 0)
    assert mode_and_group(where["gradebook"]) == (0o660, instructors, 0)
    assert (where["course"] / "source" / SMALL / f"{SMALL}.ipynb").is_file()
    assert mode_and_group(where["scratch"])[::2] == (0o711, 0)


def test_setup_again_keeps_what_instructors_made(course):
    env, instructor = course["env"]["instructor"], course["people"]["instructor"]
    source = course["where"]["course"] / "source" / SMALL / f"{SMALL}.ipynb"
    edited = gradingkit.run_as(instructor, ["sh", "-c", f"echo ' ' >> '{source}'"], env)
    assert edited.returncode == 0, edited.stderr
    gradingkit.nbgrader_as(instructor, env, "db", "student", "add", "kept-student", "--last-name=Kept")
    text = source.read_text()
    again = gradingkit.setup_grading(course["root_env"], course["seed"])
    assert "(created)" not in again and "added the assignment" not in again
    assert source.read_text() == text
    listed = gradingkit.nbgrader_as(instructor, env, "db", "student", "list")
    assert "kept-student" in listed
    assert mode_and_group(course["where"]["gradebook"])[0] == 0o660


# ---- submissions ------------------------------------------------------------------------------------
def test_a_student_can_neither_find_nor_read_nor_change_another_submission(course):
    submit(course, "amy", {"double": "def double(x):\n    return 2 * x"})
    (amy_submission,) = submissions_of(course, "amy")
    notebook = amy_submission / f"{SMALL}.ipynb"
    attempts = as_user(course, "bob", f"""
        import json, os
        results = {{}}
        def attempt(name, action):
            try:
                action()
                results[name] = "done"
            except OSError as exc:
                results[name] = type(exc).__name__
        attempt("list inbound", lambda: os.listdir({str(amy_submission.parent)!r}))
        attempt("list amy's submission", lambda: os.listdir({str(amy_submission)!r}))
        attempt("read amy's notebook", lambda: open({str(notebook)!r}).read())
        attempt("write into it", lambda: open({str(amy_submission / 'extra.py')!r}, "w"))
        attempt("overwrite her notebook", lambda: open({str(notebook)!r}, "w"))
        attempt("rename her submission", lambda: os.rename({str(amy_submission)!r}, {str(amy_submission) + '-x'!r}))
        attempt("remove her submission", lambda: os.rmdir({str(amy_submission)!r}))
        print(json.dumps(results))
    """)
    assert set(attempts.values()) == {"PermissionError"}, attempts
    assert mode_and_group(notebook)[:2] == (0o640, course["settings"]["groups"]["instructors"])


def test_a_submission_filed_under_another_students_name_is_not_collected(course):
    submit(course, "amy", {"double": "def double(x):\n    return 2 * x"})
    genuine = json.loads((submissions_of(course, "amy")[-1] / f"{SMALL}.ipynb").read_text())
    amy, bob = course["people"]["amy"], course["people"]["bob"]
    forged = plant(course, "bob", "amy", "2031-01-01 00:00:00.000000 UTC",
                   files=[pathlib.Path(course["env"]["bob"]["HOME"]) / SMALL / f"{SMALL}.ipynb"])
    log = gradingkit.nbgrader_as(course["people"]["instructor"], course["env"]["instructor"],
                                 "collect", "--update", SMALL)
    assert f"Not collected: {forged} names student {amy} but belongs to {bob}" in log
    collected = course["where"]["course"] / "submitted" / amy / SMALL / f"{SMALL}.ipynb"
    assert json.loads(collected.read_text())["cells"] == genuine["cells"]


def test_collect_follows_no_link_a_student_plants(course):
    bob, instructor = course["people"]["bob"], course["people"]["instructor"]
    private = pathlib.Path(course["env"]["instructor"]["HOME"]) / "solutions-draft.txt"
    wrote = gradingkit.run_as(instructor, ["sh", "-c", f"echo instructors-only > '{private}'; chmod 600 '{private}'"],
                              course["env"]["instructor"])
    assert wrote.returncode == 0
    planted = plant(course, "bob", "bob", "2030-06-01 00:00:00.000000 UTC",
                    links=[("notes.txt", private), ("home", private.parent)])
    collected = course["where"]["course"] / "submitted" / bob / SMALL
    try:
        log = gradingkit.nbgrader_as(instructor, course["env"]["instructor"], "collect", "--update", SMALL)
        assert sorted(p.name for p in collected.iterdir()) == ["timestamp.txt"]
        assert "notes.txt is a link or not a regular file" in log and "home is a link" in log
        assert not any("instructors-only" in p.read_text(errors="replace") for p in collected.rglob("*")
                       if p.is_file())
    finally:  # its date would make it bob's latest submission in the next tests
        shutil.rmtree(planted)
        shutil.rmtree(collected, ignore_errors=True)


# ---- feedback and grades ------------------------------------------------------------------------------
def test_feedback_reaches_its_student_alone_and_grades_export(course):
    people, env = course["people"], course["env"]
    submit(course, "amy", {"double": "def double(x):\n    return 2 * x"})
    submit(course, "bob", {"double": "def double(x):\n    return x + 2"})  # right only for 2
    instructor = people["instructor"]
    for step in (["collect", "--update"], ["autograde"], ["generate_feedback"], ["release_feedback"]):
        gradingkit.nbgrader_as(instructor, env["instructor"], *step, SMALL)
    assert gradingkit.scores(course["where"]["gradebook"], SMALL, people["amy"]) == {
        "test_double": (1, 1), "test_double_more": (1, 1)}
    assert gradingkit.scores(course["where"]["gradebook"], SMALL, people["bob"]) == {
        "test_double": (1, 1), "test_double_more": (0, 1)}
    released = sorted((course["where"]["exchange"] / course["where"]["course_id"] / "feedback").glob("*.html"))
    owners_of = {}
    for student in ("amy", "bob"):
        gradingkit.nbgrader_as(people[student], env[student], "fetch_feedback", SMALL)
        (feedback,) = (pathlib.Path(env[student]["HOME"]) / SMALL / "feedback").glob(f"*/{SMALL}.html")
        text = feedback.read_text()
        assert ("Score: 2.0 / 2.0" if student == "amy" else "Score: 1.0 / 2.0") in text
        owners_of[student] = [path for path in released if path.read_text() == text]
    amy_file = owners_of["amy"][0]
    readable = as_user(course, "bob", f"""
        import json, os
        out = {{}}
        for name, path in (("list", {str(amy_file.parent)!r}), ("read", {str(amy_file)!r})):
            try:
                os.listdir(path) if name == "list" else open(path).read()
                out[name] = "done"
            except OSError as exc:
                out[name] = type(exc).__name__
        print(json.dumps(out))
    """)
    assert readable == {"list": "PermissionError", "read": "PermissionError"}
    csv = pathlib.Path(env["instructor"]["HOME"]) / "grades.csv"
    gradingkit.nbgrader_as(instructor, env["instructor"], "export", "--to", csv)
    rows = {line.split(",")[3]: line.split(",") for line in csv.read_text().splitlines()[1:]}
    assert (rows[people["amy"]][9], rows[people["bob"]][9]) == ("2.0", "1.0")


def test_course_grade_check_passes_a_sound_assignment_and_names_what_fails(course):
    instructor, env = course["people"]["instructor"], course["env"]["instructor"]
    ok = gradingkit.run_as(instructor, [gradingkit.VENV_BIN / "course-grade", "check", SMALL], env)
    assert ok.returncode == 0 and f"course-grade check: {SMALL} passes" in ok.stdout, ok.stdout + ok.stderr
    broken = "t0-broken"
    cells = [(kind, grade_id, source.replace("return 2 * x", "return x + x if x != 10 else 0"), points)
             for kind, grade_id, source, points in gradingkit.SMALL_CELLS]
    gradingkit.write_small_assignment(course["root"] / "broken-seed", broken, cells)
    gradingkit.setup_grading(course["root_env"], course["root"] / "broken-seed")
    bad = gradingkit.run_as(instructor, [gradingkit.VENV_BIN / "course-grade", "check", broken], env)
    assert bad.returncode == 1
    assert "course-grade check: reference: test_double_more scored 0.0 of 1.0" in bad.stderr, bad.stdout + bad.stderr
    unknown = gradingkit.run_as(instructor, [gradingkit.VENV_BIN / "course-grade", "check", "nope"], env)
    assert unknown.returncode == 1 and "assignment: no folder" in unknown.stderr and SMALL in unknown.stderr


# ---- who may use the sandbox ----------------------------------------------------------------------------
def test_only_instructors_reach_the_sandbox(course):
    socket_path = course["where"]["socket"]
    empty = json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
    probe = f"""
        import json
        from course_hub import sandbox
        try:
            sandbox.execute_remotely({str(socket_path)!r}, {empty.encode()!r})
            print(json.dumps("ran"))
        except sandbox.SandboxError as exc:
            print(json.dumps(str(exc)))
    """
    assert "permission denied; only instructors may ask" in as_user(course, "amy", probe)
    # Were the socket reachable, the service itself still refuses by the caller's account.
    for path, mode in ((socket_path.parent, 0o755), (socket_path, 0o666)):
        path.chmod(mode)
    try:
        refused = as_user(course, "amy", probe)
    finally:
        socket_path.parent.chmod(0o750)
        socket_path.chmod(0o660)
    assert "the grading sandbox refused: uid" in refused and "is not root nor in group" in refused
    assert as_user(course, "instructor", probe) == "ran"


def test_autograde_runs_nothing_when_the_sandbox_is_missing(course):
    marker = course["root"] / "ran-as-the-instructor"
    amy, instructor = course["people"]["amy"], course["people"]["instructor"]
    course["root"].chmod(0o777)
    try:
        submit(course, "amy", {"double": f"open({str(marker)!r}, 'w').write('oops')\ndef double(x):\n    return 2 * x"})
        gradingkit.nbgrader_as(instructor, course["env"]["instructor"], "collect", "--update", SMALL)
        done = gradingkit.run_as(instructor, [gradingkit.VENV_BIN / "nbgrader", "autograde", SMALL, "--student", amy,
                                              "--force", f"--SandboxedExecute.socket={course['root']}/no.sock"],
                                 course["env"]["instructor"])
    finally:
        course["root"].chmod(0o755)
    assert done.returncode != 0
    assert "the grading sandbox does not answer" in done.stdout + done.stderr
    assert not marker.exists()


def test_instructors_get_a_link_to_the_course_directory_and_students_do_not(course):
    import asyncio
    import logging
    import types

    hook = grading.make_instructor_link_hook(course["where"]["course"], course["settings"]["groups"]["instructors"])
    for who in ("instructor", "amy"):
        spawner = types.SimpleNamespace(user=types.SimpleNamespace(name=course["people"][who]),
                                        log=logging.getLogger("test"))
        asyncio.run(hook(spawner))
        asyncio.run(hook(spawner))  # again: nothing changes
    instructor_link = pathlib.Path(course["env"]["instructor"]["HOME"]) / grading.COURSE_LINK
    assert instructor_link.is_symlink() and instructor_link.resolve() == course["where"]["course"].resolve()
    assert not os.path.lexists(pathlib.Path(course["env"]["amy"]["HOME"]) / grading.COURSE_LINK)
    # what the instructor's nbgrader then names the course directory by
    shown = gradingkit.run_as(course["people"]["instructor"], [
        sys.executable, "-c", "from course_hub import grading; from traitlets.config import Config; c = Config(); "
        "grading.configure_nbgrader(c, 'instructor'); print(c.CourseDirectory.root)"], course["env"]["instructor"])
    assert shown.stdout.strip() == str(instructor_link), shown.stdout + shown.stderr
