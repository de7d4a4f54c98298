"""Instructors on a real hub: roles, the working copy, publishing to a class, the status command.

A hub started from the project's ``jupyterhub_config.py`` (free ports, temporary state, by
``tests/hub/hubkit.py``), real PAM accounts made by the roster tool (names ``inst<random>...``
in the course's groups; deleted at the end, the groups never), a course repository secured
for the instructors' group with its pre-receive hook, and code run in the users' kernels.
"""
import ast
import json
import pathlib
import pwd
import secrets
import shutil
import sys
import tempfile

import pytest
from course_hub import accounts, hooks, paths, publish, repository, roster
from inst_helpers import CHECKOUT_ENV, make_notebook, write_notebook

from tests.hub import hubkit

pytestmark = pytest.mark.skipif(not hubkit.PROXY_COMMAND.exists(),
                                reason="configurable-http-proxy missing: run deploy/install.sh --no-start")
PREFIX = "inst" + secrets.token_hex(2) + "h"


@pytest.fixture(scope="module")
def course_on_hub():
    """A course repository for the course's instructors group, and a git config trusting it."""
    groups = roster.course_groups()
    accounts.ensure_groups(groups.values())  # creates the shared groups only if missing; never deletes them
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="inst-hub-"))
    workdir.chmod(0o755)
    source = workdir / "source"
    source.mkdir()
    (source / ".gitignore").write_text(".ipynb_checkpoints/\n")
    write_notebook(source / "01-first.ipynb", make_notebook("a = 20", "print('answer', 2 * a + 2)"))
    repo = workdir / "course.git"
    repository.secure_repository(repo, groups["instructor"], python=sys.executable)
    repository.publish(source, repo)
    gitconfig = workdir / "gitconfig"
    gitconfig.write_text("[safe]\n\tdirectory = *\n")
    gitconfig.chmod(0o644)
    yield {"repo": repo, "gitconfig": gitconfig}
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def people():
    """Two students and an instructor, made by the roster tool; removed at the end."""
    rows = [roster.Person(f"{PREFIX}s1", "Student One", "student"),
            roster.Person(f"{PREFIX}s2", "Student Two", "student"),
            roster.Person(f"{PREFIX}i", "Instructor", "instructor")]
    scratch = pathlib.Path(tempfile.mkdtemp(prefix="inst-pw-"))
    created = roster.add_accounts(rows, password_file=scratch / "pw.csv")["created"]
    try:
        yield {"s1": (rows[0].username, created[rows[0].username]),
               "s2": (rows[1].username, created[rows[1].username]),
               "i": (rows[2].username, created[rows[2].username])}
    finally:
        roster.remove_accounts(list(created))  # stops their processes first
        shutil.rmtree(scratch, ignore_errors=True)


@pytest.fixture(scope="module")
def hub(course_on_hub, people):
    hub = hubkit.Hub(course_on_hub["repo"], course_on_hub["gitconfig"])
    hub.start()
    try:
        yield hub
    finally:
        hub.stop()
        shutil.rmtree(hub.workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def sessions(hub, people):
    """Everyone logged in with a running server (the instructor's opened in their working copy)."""
    out = {}
    for key in ("s1", "s2", "i"):
        out[key] = hubkit.HubSession(hub, *people[key]).start_server()
        assert out[key].open_server().status_code == 200
    return out


def run_in_kernel(session, code, owner=None, timeout=300):
    kernel = session.start_kernel(owner)
    try:
        return kernel.execute(code, timeout=timeout)
    finally:
        kernel.close()


def test_instructor_opens_a_students_server_and_students_cannot(sessions, people):
    student, other = people["s1"][0], people["s2"][0]
    instructor = sessions["i"]
    page = instructor.open_server(owner=student)
    assert page.status_code == 200 and f"/user/{student}/" in page.url
    assert instructor.server_api("GET", "/status", owner=student).status_code == 200
    # In the student's server, the instructor's kernel runs as the student.
    out = run_in_kernel(instructor, "import getpass; getpass.getuser()", owner=student)
    assert out["result"] == repr(student)
    # A student gets 403 from the hub for another student's server and for the user list.
    refused = sessions["s2"].http.get(f"{instructor.hub.url}/user/{student}/", timeout=60)
    assert refused.status_code == 403
    assert sessions["s2"].hub_api("GET", "/users").status_code == 403
    assert sessions["s2"].hub_api("GET", f"/users/{student}").status_code == 404  # not even visible
    listing = instructor.hub_api("GET", "/users")
    assert listing.status_code == 200 and {student, other} <= {u["name"] for u in listing.json()}


def test_instructor_lands_in_a_working_copy(sessions, people):
    out = run_in_kernel(sessions["i"], "import os, subprocess\n"
                        "(os.environ.get('JUPYTERHUB_DEFAULT_URL'), "
                        "subprocess.run(['git', '-C', os.path.expanduser('~/course-edit'), 'remote', 'get-url', "
                        "'origin'], capture_output=True, text=True).stdout.strip().endswith('course.git'))")
    assert out["error"] is None, out
    default_url, is_a_clone = ast.literal_eval(out["result"])
    assert is_a_clone
    # Through the course sync's landing page (their ~/course too), into the working copy.
    assert default_url.startswith(hooks.GIT_PULL_PATH + "?") and hooks.landing_path(default_url) == "/tree/course-edit"
    assert sessions["i"].open_server().url.endswith(f"/user/{people['i'][0]}/tree/course-edit")
    # Students land in their synced copy as before, and get no working copy.
    home = pathlib.Path(pwd.getpwnam(people["s1"][0]).pw_dir)
    assert (home / "course" / "01-first.ipynb").exists() and not (home / "course-edit").exists()
    # ... and cannot touch the instructor's working copy.
    instructor_home = pathlib.Path(pwd.getpwnam(people["i"][0]).pw_dir)
    out = run_in_kernel(sessions["s1"], f"open({str(instructor_home / 'course-edit' / '01-first.ipynb')!r}, 'a')")
    assert out["error"]["ename"] == "PermissionError"


def server_pid(username):
    """The pid of the user's running jupyterhub-singleuser."""
    uid = pwd.getpwnam(username).pw_uid
    [pid] = [pid for pid in hubkit.pids_of_uid(uid) if "jupyterhub-singleuser" in hubkit._cmdline(pid)]
    return pid


def test_publish_in_a_terminal_reaches_a_running_student_at_the_next_login(hub, sessions, people):
    """The README's workflow in File > New > Terminal, and a student whose server keeps running."""
    student = sessions["s1"]
    running = server_pid(student.username)
    # The student's own edit of a published cell, saved.
    model = student.server_api("GET", "/contents/course/01-first.ipynb").json()
    model["content"]["cells"][0]["source"] = "a = 20  # my own note"
    saved = student.server_api("PUT", "/contents/course/01-first.ipynb", json={
        "type": "notebook", "format": "json", "content": model["content"]})
    assert saved.status_code == 200, saved.text

    # The instructor adds a cell in the notebook UI of their working copy (its contents API) ...
    teacher = sessions["i"]
    edited = teacher.server_api("GET", "/contents/course-edit/01-first.ipynb").json()
    edited["content"]["cells"].append({"cell_type": "code", "execution_count": None, "id": "new-cell-1",
                                       "metadata": {}, "outputs": [],
                                       "source": 'print("published from the terminal")'})
    saved = teacher.server_api("PUT", "/contents/course-edit/01-first.ipynb", json={
        "type": "notebook", "format": "json", "content": edited["content"]})
    assert saved.status_code == 200, saved.text
    # ... and publishes in File > New > Terminal, as the README shows.
    terminal = hubkit.Terminal(teacher)
    try:
        status, output = terminal.run("command -v course-publish course-status course-take-back python3")
        assert status == 0 and output.split() == [str(paths.VENV_BIN / name) for name in (
            "course-publish", "course-status", "course-take-back", "python3")], output
        status, output = terminal.run("cd ~/course-edit && course-publish -m 'A new cell'", timeout=600)
        assert status == 0, output
        assert f"{publish.WHEN_STUDENTS_GET_IT}" in " ".join(output.split()), output
    finally:
        terminal.close()

    # The student logs out and in again through the form; the server kept running throughout.
    assert student.http.get(f"{hub.url}/hub/logout", timeout=60).status_code == 200
    again = hubkit.HubSession(hub, *people["s1"])
    landing = again.land(again.http.get(again.after_login, timeout=120))
    assert landing.status_code == 200 and landing.url.endswith(f"/user/{again.username}/tree/course"), landing.url
    assert again.sync_events[-1]["phase"] == "finished"
    assert server_pid(again.username) == running  # no restart: the landing synced it
    notebook = json.loads((pathlib.Path(pwd.getpwnam(again.username).pw_dir) / "course" / "01-first.ipynb").read_text())
    sources = ["".join(cell["source"]) for cell in notebook["cells"]]
    assert sources[0] == "a = 20  # my own note"  # the student's edit survives
    assert 'print("published from the terminal")' in sources  # the new cell is there
    sessions["s1"] = again


def test_status_command_for_instructors_only(sessions, people):
    code = ("import json, os, subprocess, sys\n"
            "p = subprocess.run([sys.executable, '-m', 'course_hub.status', '--json'], capture_output=True,"
            f" text=True, env=dict(os.environ, **{CHECKOUT_ENV!r}))\n"
            "print(json.dumps([p.returncode, p.stdout, p.stderr]))")
    out = run_in_kernel(sessions["i"], code)
    returncode, stdout, stderr = json.loads(out["stdout"])
    assert returncode == 0, stderr
    rows = {row["name"]: row for row in json.loads(stdout)}
    student = people["s2"][0]
    assert rows[student]["server"] == "ready"
    assert rows[student]["memory_mb"] > 50 and rows[student]["last_activity"]
    # The instructor's own server (the one running this very command) is running too.
    teacher = people["i"][0]
    assert rows[teacher]["server"] == "ready" and rows[teacher]["memory_mb"] > 50, rows[teacher]
    # The summary line (after the table, before what the memory limit covers) counts exactly the
    # running servers and their memory.
    table = json.loads(run_in_kernel(sessions["i"], code.replace("'--json'", "'--api-url', os.environ['JUPYTERHUB_API_URL']"))["stdout"])
    assert table[0] == 0, table[2]
    listed = json.loads(stdout)
    running = [row for row in listed if row["server"] == "ready"]
    assert {people[key][0] for key in ("s1", "s2", "i")} <= {row["name"] for row in running}
    summary, limit = table[1].splitlines()[-2:]
    assert summary.startswith(f"{len(running)} of {len(listed)} user(s) with a running server"), table[1]
    assert limit.startswith("memory limit"), table[1]
    # In the instructor's terminal, exactly as the README shows it.
    terminal = hubkit.Terminal(sessions["i"])
    try:
        status, output = terminal.run("course-status")
    finally:
        terminal.close()
    assert status == 0, output
    shown = {line.split()[0]: line.split() for line in output.strip().splitlines()[1:-1]}
    assert shown[teacher][2] == "ready" and shown[student][2] == "ready", output
    # A student's server token may not list users: the command says so and fails.
    returncode, stdout, stderr = json.loads(run_in_kernel(sessions["s2"], code)["stdout"])
    assert returncode == 1 and "not an instructor" in stderr
