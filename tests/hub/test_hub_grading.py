"""Grading on a real hub: an instructor releases, students fetch and submit in the browser,
the instructor collects, autogrades in the sandbox and releases feedback, each student fetches
their own; and submissions that loop, eat memory, delete files, shadow modules or leave
processes behind harm nothing.

Real components throughout: the project's hub (course-hub, configurable-http-proxy) with its
grading sandbox service, PAM logins of roster accounts, Notebook 7's Assignments tab in Debian's
Chromium driven by Playwright, nbgrader run in the instructor's own server (a kernel there has
the environment the instructor's terminal has), the installed sandbox account. The grading
folders are this hub's own (``hubkit.Hub.grading_root``), set up by ``course-grade setup``.
Screenshots go to ``test-artifacts/grading-*.png``.
"""
import hashlib
import json
import re
import shutil
import subprocess
import sys
import textwrap
import time

import pytest
from course_hub import grading, paths, sandbox
from course_hub import settings as course_settings

from tests import test_assignments
from tests.hub import gradingkit, hubkit
from tests.hub.test_hub_browser import CHROMIUM, FLAGS

A1 = "a1-conv-pool"
SMALL = gradingkit.SMALL
#: The limit the instructor asks for when grading the harmful submissions (the server allows 300 s).
HARM_TIME_LIMIT = 30
#: Room for the kernel's start and the grading around the limit on a busy machine.
SLACK_SECONDS = 240

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")


@pytest.fixture(scope="module")
def grading_hub(start_hub, shared_tmp):
    """A hub whose grading is set up with the course's first assignment and the small one."""
    hub = start_hub()
    seed = shared_tmp / "grading-seed"
    shutil.copytree(test_assignments.ASSIGNMENTS_DIR / "source" / A1, seed / A1)
    gradingkit.write_small_assignment(seed)
    gradingkit.setup_grading(hub.env, seed)
    hub.settings = course_settings.load_settings(hub.settings_file)
    hub.where = grading.locations(hub.settings)
    return hub


@pytest.fixture(scope="module")
def people(make_user):
    """The instructor, a student who gets it right, one who does not, and five who misbehave."""
    roles = {"instructor": "instructor", "right": "student", "wrong": "student",
             **{name: "student" for name in ("loop", "memory", "deleter", "shadow", "probe")}}
    return {key: make_user(role) for key, role in roles.items()}


@pytest.fixture(scope="module")
def instructor(grading_hub, people):
    """``run(*command)``: a command run from a kernel of the instructor's server.

    Each command gets a kernel of its own, as a notebook would: a websocket left idle while
    other tests run (browsers logging the instructor in again, minutes of grading) may be
    closed under it."""
    session = hubkit.HubSession(grading_hub, *people["instructor"])

    def run(*command, timeout=1200):
        if not session.server_ready():
            session.start_server(timeout=300)
        session.open_server()
        kernel = session.start_kernel()
        code = (f"import json, subprocess\nr = subprocess.run({[str(c) for c in command]!r}, capture_output=True, "
                f"text=True)\nprint(json.dumps([r.returncode, r.stdout + r.stderr]))")
        try:
            out = kernel.execute(code, timeout=timeout)
        finally:
            kernel.close()
            session.server_api("DELETE", f"/kernels/{kernel.id}")
        assert out["error"] is None, out
        returncode, output = json.loads(out["stdout"].strip().splitlines()[-1])
        assert returncode == 0, f"{' '.join(map(str, command))} failed in the instructor's server:\n{output[-5000:]}"
        return output

    return run


def nbgrader_in_server(run, *args, **kwargs):
    return run(paths.VENV_BIN / "nbgrader", *args, **kwargs)


def reference_answers():
    return test_assignments.solution_sources(test_assignments.read_notebook(
        test_assignments.ASSIGNMENTS_DIR / "source" / A1 / f"{A1}.ipynb"))


# ---- the browser ----------------------------------------------------------------------------------------
class Browser:
    """Chromium logged in as one user, landed in their server."""

    def __init__(self, driver, hub, username, password):
        self.browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        self.page = self.browser.new_page(viewport={"width": 1280, "height": 900}, ignore_https_errors=True)
        self.page.set_default_timeout(180_000)
        self.page.goto(f"{hub.url}/hub/login")
        self.page.fill("#username_input", username)
        self.page.fill("#password_input", password)
        self.page.click("#login_submit")
        self.page.wait_for_url(f"**/user/{username}/tree/**", timeout=300_000)

    def open_assignments(self):
        """Nbgrader > Assignment List: the Assignments tab of Notebook 7's file browser."""
        from playwright.sync_api import expect

        self.page.get_by_role("menuitem", name="Nbgrader").click()
        self.page.get_by_text("Assignment List", exact=True).click()
        expect(self.page.get_by_role("tab", name="Assignments")).to_be_visible()
        return self.page

    def close(self):
        self.browser.close()


@pytest.fixture(scope="module")
def driver():
    from playwright.sync_api import expect, sync_playwright

    # what the pages wait for comes from a hub that nbgrader and kernels keep busy: wait on the
    # page's state, as long as a loaded machine may need
    expect.set_options(timeout=180_000)
    try:
        with sync_playwright() as playwright:
            yield playwright
    finally:
        expect.set_options(timeout=5_000)  # Playwright's default, for the other modules


# ---- the configuration, read without a hub ----------------------------------------------------------------
def test_the_hub_starts_the_sandbox_and_gives_each_server_its_roles_configuration(monkeypatch, tmp_path):
    from tests.hub.test_hub_config import load_config

    c = load_config(monkeypatch, tmp_path, {"server": {"spawner": "local", "grader_socket": str(tmp_path / "g.sock")},
                                           "grading": {"time_limit_seconds": 60}})
    (service,) = [s for s in c.JupyterHub.services if s["name"] == grading.SANDBOX_SERVICE]
    command = service["command"]
    assert command[command.index("--socket") + 1] == str(tmp_path / "g.sock")
    assert command[command.index("--time-limit") + 1] == "60" and "url" not in service  # root, no web address
    assert callable(c.Spawner.environment["JUPYTER_CONFIG_PATH"])
    assert c.Spawner.environment[grading.ENV_GRADER_SOCKET] == str(tmp_path / "g.sock")
    # the variables every server had before are still there
    assert c.Spawner.environment["PATH"].startswith(str(paths.VENV_BIN))


# ---- the day, in order ----------------------------------------------------------------------------------
def test_the_instructor_releases_from_their_server(grading_hub, instructor):
    for assignment in (A1, SMALL):
        nbgrader_in_server(instructor, "generate_assignment", assignment)
        nbgrader_in_server(instructor, "release_assignment", assignment)
    outbound = grading_hub.where["exchange"] / grading_hub.where["course_id"] / "outbound"
    assert sorted(p.name for p in outbound.iterdir()) == sorted([A1, SMALL])
    release = json.loads((outbound / A1 / f"{A1}.ipynb").read_text())
    assert "BEGIN SOLUTION" not in json.dumps(release) and "BEGIN HIDDEN TESTS" not in json.dumps(release)


def test_students_fetch_and_submit_in_the_browser(grading_hub, people, driver, artifacts):
    from playwright.sync_api import expect

    reference = reference_answers()
    answers = {"right": reference,
               "wrong": test_assignments.with_mistakes(reference, test_assignments.MISTAKES[A1])}
    for who, answer in answers.items():
        name, password = people[who]
        browser = Browser(driver, grading_hub, name, password)
        try:
            page = browser.open_assignments()
            released = page.locator("#released_assignments_list")
            expect(released.get_by_text(A1)).to_be_visible()
            expect(released.get_by_text(SMALL)).to_be_visible()
            if who == "right":
                page.screenshot(path=str(artifacts / "grading-student-released.png"))
            released.locator(".list_item", has_text=A1).get_by_role("button", name="Fetch").click()
            fetched = page.locator("#fetched_assignments_list")
            expect(fetched.locator(".list_item", has_text=A1).get_by_role("button", name="Submit")).to_be_visible()
            # The student's work: the release version with their code in its solution cells.
            env = gradingkit.server_environment(grading_hub.settings_file, name)
            notebook = hubkit.home_of(name) / A1 / f"{A1}.ipynb"
            release = json.loads(notebook.read_text())
            gradingkit.write_as(name, env, notebook, json.dumps(gradingkit.answer(release, answer)))
            fetched.locator(".list_item", has_text=A1).get_by_role("button", name="Submit").click()
            submitted = page.locator("#submitted_assignments_list")
            expect(submitted.get_by_role("button", name="Fetch Feedback")).to_be_visible()
            expect(submitted.get_by_text(re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"))).to_be_visible()
            if who == "right":
                page.screenshot(path=str(artifacts / "grading-student-submitted.png"))
        finally:
            browser.close()
    inbound = grading_hub.where["exchange"] / grading_hub.where["course_id"] / "inbound"
    owners = sorted(p.name.split("+")[0] for p in inbound.iterdir())
    assert owners == sorted([people["right"][0], people["wrong"][0]])


def test_the_instructor_collects_autogrades_and_releases_feedback(grading_hub, people, instructor):
    # The roster gives accounts their full names; the formgrader shows them (not "None, None").
    subprocess.run(["usermod", "--comment", "Ada King Lovelace", people["right"][0]], check=True)
    nbgrader_in_server(instructor, "collect", A1)
    names = gradingkit.student_names(grading_hub.where["gradebook"])
    assert names[people["right"][0]] == ("Ada King", "Lovelace"), names
    log = nbgrader_in_server(instructor, "autograde", A1)
    account = grading_hub.settings["grading"]["sandbox_user"]
    seconds = [float(s) for s in re.findall(rf"Executed in the grading sandbox as {account} in ([\d.]+) s", log)]
    assert len(seconds) == 2, log[-3000:]
    print(f"\nautograde of one {A1} submission in the hub's sandbox: {', '.join(f'{s:.1f} s' for s in seconds)}")
    points = test_assignments.POINTS[A1]
    gradebook = grading_hub.where["gradebook"]
    assert gradingkit.scores(gradebook, A1, people["right"][0]) == {cell: (p, p) for cell, p in points.items()}
    wrong_cells = test_assignments.WRONG_CELLS[A1]
    assert gradingkit.scores(gradebook, A1, people["wrong"][0]) == {
        cell: (0 if cell in wrong_cells else p, p) for cell, p in points.items()}
    nbgrader_in_server(instructor, "generate_feedback", A1)
    nbgrader_in_server(instructor, "release_feedback", A1)
    released = list((grading_hub.where["exchange"] / grading_hub.where["course_id"] / "feedback").glob("*.html"))
    assert len(released) == 2


def test_each_student_fetches_their_own_feedback_in_the_browser(grading_hub, people, driver, artifacts):
    from playwright.sync_api import expect

    points = test_assignments.POINTS[A1]
    total, lost = sum(points.values()), sum(points[cell] for cell in test_assignments.WRONG_CELLS[A1])
    expected = {"right": f"Score: {total:.1f} / {total:.1f}", "wrong": f"Score: {total - lost:.1f}"}
    for who in ("right", "wrong"):
        name, password = people[who]
        browser = Browser(driver, grading_hub, name, password)
        try:
            page = browser.open_assignments()
            submitted = page.locator("#submitted_assignments_list")
            expect(submitted.get_by_text("(feedback available to fetch)").first).to_be_visible()
            submitted.locator(".list_item", has_text=A1).get_by_role("button", name="Fetch Feedback").click()
            expect(submitted.get_by_text("(view feedback)").first).to_be_visible()
            if who == "right":
                page.screenshot(path=str(artifacts / "grading-student-feedback-fetched.png"))
            (feedback,) = (hubkit.home_of(name) / A1 / "feedback").glob(f"*/{A1}.html")
            relative = feedback.relative_to(hubkit.home_of(name))
            page.goto(f"{grading_hub.url}/user/{name}/files/{relative}")
            expect(page.get_by_text(expected[who]).first).to_be_visible()
            if who == "right":
                page.screenshot(path=str(artifacts / "grading-student-feedback.png"))
        finally:
            browser.close()
    # Only the student's own feedback reached them, and the other's stays out of their reach.
    right, wrong = people["right"][0], people["wrong"][0]
    right_feedback = next((hubkit.home_of(right) / A1 / "feedback").glob(f"*/{A1}.html")).read_text()
    assert expected["right"] in right_feedback and expected["wrong"] not in right_feedback
    released = (grading_hub.where["exchange"] / grading_hub.where["course_id"] / "feedback").glob("*.html")
    (theirs,) = [p for p in released if p.read_text() == right_feedback]
    attempt = gradingkit.run_as(wrong, [sys.executable, "-c", f"open({str(theirs)!r}).read()"],
                                gradingkit.server_environment(grading_hub.settings_file, wrong))
    assert attempt.returncode != 0 and "PermissionError" in attempt.stderr


def test_the_instructor_grades_in_the_formgrader(grading_hub, people, driver, artifacts):
    from playwright.sync_api import expect

    name, password = people["instructor"]
    link = hubkit.home_of(name) / grading.COURSE_LINK
    assert link.is_symlink() and link.resolve() == grading_hub.where["course"].resolve(), \
        f"{link} does not link to the course directory: the formgrader cannot work"
    browser = Browser(driver, grading_hub, name, password)
    try:
        page = browser.page
        page.get_by_role("menuitem", name="Nbgrader").click()
        page.get_by_text("Formgrader", exact=True).click()
        formgrader = page.frame_locator("iframe").first
        try:
            expect(formgrader.get_by_text("Manage Assignments").first).to_be_visible()
            expect(formgrader.get_by_text(A1).first).to_be_visible()
            expect(formgrader.get_by_text(SMALL).first).to_be_visible()
        except AssertionError:
            page.screenshot(path=str(artifacts / "grading-instructor-formgrader-failed.png"))
            shown = [frame.url for frame in page.frames]
            raise AssertionError(f"the formgrader did not list the assignments; frames {shown}; the frame shows "
                                 f"{formgrader.locator('body').inner_text()[:1500]!r}; hub log:\n"
                                 f"{grading_hub.log_tail(60)}") from None
        page.screenshot(path=str(artifacts / "grading-instructor-formgrader.png"))
        page.goto(f"{grading_hub.url}/user/{name}/formgrader/manage_submissions/{A1}")
        for who in ("right", "wrong"):
            expect(page.get_by_text(people[who][0]).first).to_be_visible()
        total = sum(test_assignments.POINTS[A1].values())  # the formgrader shows "11 / 11"
        expect(page.get_by_text(f"{total} / {total}").first).to_be_visible()
        page.screenshot(path=str(artifacts / "grading-instructor-submissions.png"))
    finally:
        browser.close()
    student = hubkit.HubSession(grading_hub, *people["right"])
    opened = student.open_server()
    assert opened.status_code == 200
    # only the instructors' servers let their own pages frame them (the formgrader's tab)
    assert opened.headers["Content-Security-Policy"].startswith("frame-ancestors 'none'"), opened.headers
    assert student.http.get(f"{grading_hub.url}/user/{people['right'][0]}/formgrader", timeout=60).status_code == 404


def _server_rss(username):
    """Resident memory of the user's jupyterhub-singleuser process."""
    return hubkit.rss_bytes(hubkit.server_pid(username))


def test_a_students_server_loads_nbgrader_only_when_the_assignments_open(grading_hub, people):
    name, password = people["probe"]
    session = hubkit.HubSession(grading_hub, name, password)
    session.start_server(timeout=300)
    session.open_server()
    before = _server_rss(name)
    listed = session.http.get(f"{grading_hub.url}/user/{name}/assignments",
                              params={"course_id": grading_hub.where["course_id"]}, timeout=300)
    assert listed.status_code == 200 and listed.json()["success"], listed.text[:2000]
    assert {a["assignment_id"] for a in listed.json()["value"]} == {A1, SMALL}
    after = _server_rss(name)
    # nbgrader (with its formgrader's imports) is tens of MB: it was not there at the start
    assert after - before > 20 * 2**20, (before, after)
    session.hub_api("DELETE", f"/users/{name}/server")


# ---- submissions that misbehave ---------------------------------------------------------------------------
def protected_paths(hub, people):
    """What a submission's code must not harm: the gradebook, other submissions (in the course
    directory and in the exchange), the sources, releases and feedback, the instructor's files,
    the sandbox's own socket and scratch folder."""
    where = hub.where
    course, exchange = where["course"], where["exchange"] / where["course_id"]
    right, instructor = people["right"][0], people["instructor"][0]
    notes = hubkit.home_of(instructor) / "grading-notes.txt"
    if not notes.exists():
        gradingkit.write_as(instructor, gradingkit.server_environment(hub.settings_file, instructor), notes, "mine\n")
    return {
        "gradebook": where["gradebook"],
        "a submission": course / "submitted" / right / A1 / f"{A1}.ipynb",
        "its grading": course / "autograded" / right / A1 / f"{A1}.ipynb",
        "the source": course / "source" / A1 / f"{A1}.ipynb",
        "the release": exchange / "outbound" / A1 / f"{A1}.ipynb",
        "the submission in the exchange": next((exchange / "inbound").glob(f"{right}+{A1}+*")) / f"{A1}.ipynb",
        "feedback": next((exchange / "feedback").glob("*.html")),
        "the instructor's file": notes,
        "the instructor's home": notes.parent,
        "the sandbox's socket": where["socket"],
        "the sandbox's scratch folder": where["scratch"],
    }


def digest(path):
    """What must stay the same: a file's content, a folder's names, a socket's being there. (The
    gradebook changes as the graders write it: its scores are compared instead.)"""
    if path.is_socket():
        return "socket"
    if path.is_dir():
        return sorted(p.name for p in path.iterdir())
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(hub, people):
    return {name: digest(path) for name, path in protected_paths(hub, people).items()
            if name not in ("gradebook", "the instructor's home")}


def deleter_code(targets):
    return textwrap.dedent(f"""
        import json, os, shutil
        targets = {json.dumps({name: str(path) for name, path in targets.items()})}
        results = {{}}
        for name, path in targets.items():
            try:
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                else:
                    os.remove(path)
                results[name] = "deleted"
            except OSError as exc:
                results[name] = type(exc).__name__
            try:
                with open(path, "w") as handle:
                    handle.write("overwritten")
                results[name] += ", overwritten"
            except OSError as exc:
                results[name] += ", " + type(exc).__name__
        print("ATTEMPTS", json.dumps(results))
        def double(x):
            return 2 * x
    """)


PROBE_CODE = textwrap.dedent("""
    import getpass, json, os, socket, subprocess, sys
    try:
        socket.create_connection(("127.0.0.1", 22), timeout=5)
        network = "reached"
    except OSError as exc:
        network = type(exc).__name__ + ": " + str(exc)
    subprocess.Popen(["sleep", "600"], start_new_session=True)
    subprocess.Popen(["sh", "-c", "sleep 600 &"], start_new_session=True)
    print("PROBE", json.dumps({"user": getpass.getuser(), "uid": os.getuid(), "groups": os.getgroups(),
                               "network": network, "cwd_on_path": os.getcwd() in sys.path or "" in sys.path}))
    def double(x):
        return 2 * x
""")

NUMPY_STANDIN = "raise ImportError('the numpy.py of the submission was imported')\n"
COURSE_GRADING_STANDIN = "def own_code(*args, **kwargs):\n    return None\n"


@pytest.fixture(scope="module")
def harms(grading_hub, people, instructor):
    """Each misbehaving student submits the small assignment; the instructor grades each
    submission on its own, asking for a 30 s limit. Returns what happened, per student."""
    plans = {
        "loop": {"double": "def double(x):\n    return 2 * x", "more_code": "while True:\n    pass"},
        "memory": {"double": "def double(x):\n    return 2 * x",
                   "more_code": "try:\n    hoard = bytearray(64 * 2**30)\n"
                                "except MemoryError:\n    print('MEMORY ERROR')\n    raise"},
        "deleter": {"double": "def double(x):\n    return 2 * x",
                    "more_code": deleter_code(protected_paths(grading_hub, people))},
        "shadow": {"double": "import numpy as np\n\ndef double(x):\n    return int(np.multiply(x, 2))",
                   "more_code": "import numpy, course_grading\nprint('NUMPY', numpy.__file__)\n"
                                "print('COURSE_GRADING', course_grading.__file__)"},
        "probe": {"double": "def double(x):\n    return 2 * x", "more_code": PROBE_CODE},
    }
    before = snapshot(grading_hub, people)
    right_scores = gradingkit.scores(grading_hub.where["gradebook"], A1, people["right"][0])
    for who, answers in plans.items():
        name = people[who][0]
        env = gradingkit.server_environment(grading_hub.settings_file, name)
        gradingkit.nbgrader_as(name, env, "fetch_assignment", SMALL)
        folder = hubkit.home_of(name) / SMALL
        release = json.loads((folder / f"{SMALL}.ipynb").read_text())
        gradingkit.write_as(name, env, folder / f"{SMALL}.ipynb", json.dumps(gradingkit.answer(release, answers)))
        if who == "shadow":
            gradingkit.write_as(name, env, folder / "numpy.py", NUMPY_STANDIN)
            gradingkit.write_as(name, env, folder / "course_grading.py", COURSE_GRADING_STANDIN)
        gradingkit.nbgrader_as(name, env, "submit", SMALL)
    nbgrader_in_server(instructor, "collect", SMALL)
    results = {}
    for who in plans:
        name = people[who][0]
        started = time.monotonic()
        log = nbgrader_in_server(instructor, "autograde", SMALL, "--student", name,
                                 f"--SandboxedExecute.time_limit={HARM_TIME_LIMIT}")
        seconds = time.monotonic() - started
        graded = grading_hub.where["course"] / "autograded" / name / SMALL / f"{SMALL}.ipynb"
        notebook = json.loads(graded.read_text())
        outputs = {cell["metadata"].get("nbgrader", {}).get("grade_id"): cell.get("outputs", [])
                   for cell in notebook["cells"] if cell["cell_type"] == "code"}
        results[who] = {"seconds": seconds, "log": log, "outputs": outputs,
                        "scores": gradingkit.scores(grading_hub.where["gradebook"], SMALL, name)}
    with sandbox.machine_lock(grading_hub.settings["grading"]["sandbox_user"]):
        leftover = sandbox.pids_of(sandbox.account(grading_hub.settings["grading"]["sandbox_user"]).pw_uid)
    after = snapshot(grading_hub, people)
    return {"results": results, "before": before, "after": after, "leftover": leftover,
            "right_scores": (right_scores, gradingkit.scores(grading_hub.where["gradebook"], A1, people["right"][0]))}


def text_of(outputs):
    """What the stream outputs printed (a notebook file may keep each text as a list of lines)."""
    texts = [o.get("text", "") for o in outputs if o["output_type"] == "stream"]
    return "".join(text if isinstance(text, str) else "".join(text) for text in texts)


def errors_of(outputs):
    return [(o["ename"], o["evalue"]) for o in outputs if o["output_type"] == "error"]


def test_an_infinite_loop_is_stopped_at_its_time_limit(harms):
    loop = harms["results"]["loop"]
    assert loop["seconds"] < HARM_TIME_LIMIT + SLACK_SECONDS, f"graded in {loop['seconds']:.0f} s"
    assert f"limit {HARM_TIME_LIMIT} s); stopped: time limit" in loop["log"]
    (stopped,) = errors_of(loop["outputs"]["more_code"])
    assert stopped[0] == "GradingStopped" and f"time limit ({HARM_TIME_LIMIT} s)" in stopped[1]
    assert errors_of(loop["outputs"]["test_double_more"])[0][0] == "NotRun"
    # the part that ran before the loop keeps its point; the test that never ran gets none
    assert loop["scores"] == {"test_double": (1, 1), "test_double_more": (0, 1)}


def test_too_much_memory_is_a_memory_error_and_grading_goes_on(harms):
    memory = harms["results"]["memory"]
    assert "MEMORY ERROR" in text_of(memory["outputs"]["more_code"])
    assert errors_of(memory["outputs"]["more_code"])[0][0] == "MemoryError"
    assert "stopped:" not in memory["log"]
    assert memory["scores"] == {"test_double": (1, 1), "test_double_more": (1, 1)}


def test_deleting_files_harms_neither_grader_nor_gradebook_nor_other_submissions(harms):
    deleter = harms["results"]["deleter"]
    (line,) = [l for l in text_of(deleter["outputs"]["more_code"]).splitlines() if l.startswith("ATTEMPTS")]
    attempts = json.loads(line.removeprefix("ATTEMPTS "))
    assert attempts and all("deleted" not in r and "overwritten" not in r for r in attempts.values()), attempts
    assert harms["after"] == harms["before"]
    before, after = harms["right_scores"]
    assert after == before
    assert deleter["scores"] == {"test_double": (1, 1), "test_double_more": (1, 1)}


def test_a_submissions_own_modules_do_not_stand_in_for_the_real_ones(harms):
    shadow = harms["results"]["shadow"]
    printed = dict(line.split(" ", 1) for line in text_of(shadow["outputs"]["more_code"]).splitlines()
                   if line.startswith(("NUMPY", "COURSE_GRADING")))
    assert set(printed) == {"NUMPY", "COURSE_GRADING"}, text_of(shadow["outputs"]["more_code"])
    assert all("site-packages" in path for path in printed.values()), printed
    assert shadow["scores"] == {"test_double": (1, 1), "test_double_more": (1, 1)}


def test_code_runs_as_the_sandbox_account_without_network_and_leaves_no_process(harms, grading_hub):
    probe = harms["results"]["probe"]
    (line,) = [l for l in text_of(probe["outputs"]["more_code"]).splitlines() if l.startswith("PROBE")]
    seen = json.loads(line.removeprefix("PROBE "))
    sandbox_user = grading_hub.settings["grading"]["sandbox_user"]
    assert seen["user"] == sandbox_user and seen["uid"] != 0 and seen["groups"] == []
    assert "Network is unreachable" in seen["network"], seen
    assert seen["cwd_on_path"] is False
    assert harms["leftover"] == [], f"processes of {sandbox_user} left after grading: {harms['leftover']}"
    assert probe["scores"] == {"test_double": (1, 1), "test_double_more": (1, 1)}
