"""A student logs in, lands in their own copy of the course, and runs code; others are refused.

Real hub (the project's config), real proxy, real Unix users made by the roster script, real
PAM logins over HTTP, kernels reached over their websocket.
"""
import pwd
import statistics
import subprocess
import time

import pytest

from course_hub import settings as course_settings
from course_hub.serverprocess import SERVER_NICE

from tests.hub import hubkit

CNN_FORWARD = """
import numpy as np
import course_lib
net = course_lib.SimpleCNN(seed=0)
images = np.random.default_rng(0).random((4, 28, 28), dtype=np.float32)
probabilities = net.predict_proba(images)
print(probabilities.shape, bool(np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)))
"""


def test_student_runs_course_code_in_own_kernel_as_own_uid(student_session, student):
    username, _ = student
    kernel = student_session.start_kernel()
    try:
        identity = kernel.execute("import os; print(os.getuid(), os.getgid(), os.path.expanduser('~'))")
        entry = pwd.getpwnam(username)
        assert identity["error"] is None, identity
        assert identity["stdout"].split() == [str(entry.pw_uid), str(entry.pw_gid), entry.pw_dir]
        # The BLAS uses the student's share of the machine (limits.cpu), not every core.
        threads = kernel.execute("print(os.environ.get('OPENBLAS_NUM_THREADS'), os.environ.get('PYTHONPATH'))")
        assert threads["stdout"].split() == ["1", "None"]
        forward = kernel.execute(CNN_FORWARD)
        assert forward["error"] is None, forward
        assert forward["stdout"].strip() == "(4, 10) True"
        # The kernel listens on Unix sockets in the student's own runtime folder, no TCP port.
        transport = kernel.execute("import json, ipykernel.connect as c; "
                                   "print(json.load(open(c.get_connection_file()))['transport'])")
        assert transport["stdout"].strip() == "ipc", transport
        # The student's server yields to the hub and the proxy, its whole session (Linux's
        # scheduling group) included; the kernel inherits the server's nice value.
        priority = kernel.execute("import os; print(os.getpriority(os.PRIO_PROCESS, 0)); "
                                  "print(open(f'/proc/{os.getppid()}/autogroup').read().split()[-1])")
        assert priority["stdout"].split() == [str(SERVER_NICE)] * 2, priority
    finally:
        kernel.close()


def test_the_server_process_runs_as_the_student(student_session, student):
    username, _ = student
    model = student_session.server_model()
    assert model and model["ready"]
    assert hubkit.server_pids(username), f"no jupyterhub-singleuser process of {username}"


def test_login_lands_in_the_synced_course(student_session, student, course_source):
    username, _ = student
    # The server's landing page is nbgitpuller's: it syncs ~/course, then opens it.
    first = student_session.http.get(f"{student_session.hub.url}/user/{username}/", timeout=60)
    assert first.status_code == 200 and f"/user/{username}/git-pull?" in first.url, first.url
    landing = student_session.open_server()
    assert student_session.sync_events[-1]["phase"] == "finished", student_session.sync_events
    assert landing.status_code == 200
    assert landing.url.endswith(f"/user/{username}/tree/course")  # Notebook 7's file browser
    listing = student_session.server_api("GET", "/contents/course")
    assert listing.status_code == 200
    names = {item["name"] for item in listing.json()["content"]}
    published = {path.name for path in course_source.glob("*.ipynb")}
    assert published and published <= names
    course = hubkit.home_of(username) / "course"
    assert (course / ".git").is_dir()
    assert course.stat().st_uid == pwd.getpwnam(username).pw_uid


def test_landing_page_is_the_notebook_7_ui(student_session, student):
    username, _ = student
    page = student_session.http.get(f"{student_session.hub.url}/user/{username}/tree/course", timeout=60)
    assert page.status_code == 200
    assert '"appName": "Jupyter Notebook"' in page.text or "Jupyter Notebook" in page.text
    # The servers run without JupyterLab's server extension: /lab (Notebook 7's "Open
    # JupyterLab") opens the same file browser, and Notebook 7's own /lab/api is still served.
    lab = student_session.http.get(f"{student_session.hub.url}/user/{username}/lab/tree/course", timeout=60)
    assert lab.status_code == 200 and lab.url.endswith(f"/user/{username}/tree/course"), lab.url
    settings = student_session.http.get(f"{student_session.hub.url}/user/{username}/lab/api/settings", timeout=60)
    assert settings.status_code == 200 and settings.json()["settings"], settings.text[:300]


def test_wrong_password_is_refused(hub, student):
    username, password = student
    with pytest.raises(hubkit.LoginFailed) as refused:
        hubkit.HubSession(hub, username, password + "x")
    assert refused.value.status == 403
    assert "Invalid username or password" in refused.value.text


def test_unknown_user_is_refused(hub):
    with pytest.raises(hubkit.LoginFailed) as refused:
        hubkit.HubSession(hub, "hubtnobody" + "zz", "whatever-password")
    assert refused.value.status == 403


def test_unix_user_in_neither_course_group_is_refused(hub, make_user):
    username, password = make_user(None)
    with pytest.raises(hubkit.LoginFailed) as refused:
        hubkit.HubSession(hub, username, password)
    assert refused.value.status == 403


def refusal_seconds(hub, username, password):
    """Seconds the hub takes to answer a login form that it refuses (the POST alone)."""
    browser = hubkit.http_session(hub.verify)
    browser.get(f"{hub.url}/hub/login", timeout=30)
    started = time.monotonic()
    response = browser.post(f"{hub.url}/hub/login", allow_redirects=False, timeout=60, data={
        "username": username, "password": password, "_xsrf": browser.cookies.get("_xsrf", path="/hub/")})
    elapsed = time.monotonic() - started
    assert response.status_code == 403, f"{username}: expected a refusal, got HTTP {response.status_code}"
    return elapsed


def test_a_refusal_takes_the_same_time_whatever_its_reason(hub, student, make_user):
    # Real PAM accounts: a wrong password is held by pam_faildelay; an account outside the
    # course groups with its right password, and an unknown name, must not answer sooner.
    username, password = student
    outsider, outsider_password = make_user(None)
    cases = {"wrong password": (username, password + "x"),
             "outside the course groups, right password": (outsider, outsider_password),
             "unknown user": ("hubtnobody" + "zz", "whatever-password")}
    timings = {reason: [] for reason in cases}
    for _round in range(3):  # interleaved, so a busy moment of the machine hits every case
        for reason, (name, secret) in cases.items():
            timings[reason].append(refusal_seconds(hub, name, secret))
    medians = {reason: statistics.median(values) for reason, values in timings.items()}
    floor = course_settings.load_settings()["server"]["refused_login_seconds"]
    assert max(medians.values()) - min(medians.values()) < 1.0, timings
    assert min(medians.values()) >= floor, (floor, timings)


def test_login_without_xsrf_is_refused(hub, student):
    username, password = student
    browser = hubkit.http_session(hub.verify)
    browser.get(f"{hub.url}/hub/login", timeout=30)
    response = browser.post(
        f"{hub.url}/hub/login", data={"username": username, "password": password}, allow_redirects=False, timeout=30
    )
    assert response.status_code == 403
    assert "jupyterhub-hub-login" not in browser.cookies


def test_student_cannot_reach_another_students_server_or_api(hub, student_session, other_student):
    other_name, other_password = other_student
    other = hubkit.HubSession(hub, other_name, other_password)
    other.start_server()
    # The other student's server: the hub refuses the OAuth authorization.
    response = student_session.http.get(f"{hub.url}/user/{other_name}/tree/", timeout=60)
    assert response.status_code == 403
    # Their files through their server's API: no session there, forbidden.
    response = student_session.server_api("GET", "/contents", owner=other_name)
    assert response.status_code == 403
    # The hub's API about them, starting or stopping their server: refused, and with 404 rather
    # than 403 (JupyterHub's choice, so that a student cannot probe which accounts exist).
    assert student_session.hub_api("GET", f"/users/{other_name}").status_code == 404
    assert student_session.hub_api("POST", f"/users/{other_name}/server").status_code == 404
    assert student_session.hub_api("DELETE", f"/users/{other_name}/server").status_code == 404
    assert student_session.hub_api("GET", "/users/hubtnosuchuser").status_code == 404
    assert other.server_ready()


def test_student_cannot_read_another_students_home(student_session, student, other_student):
    username, _ = student
    other_home = hubkit.home_of(other_student[0])
    assert other_home.stat().st_mode & 0o777 == 0o700
    result = subprocess.run(
        ["setpriv", f"--reuid={username}", f"--regid={username}", "--init-groups", "ls", str(other_home)],
        capture_output=True, text=True,
    )
    assert result.returncode != 0
    assert "Permission denied" in result.stderr
    kernel = student_session.start_kernel()
    try:
        attempt = kernel.execute(f"import os; os.listdir({str(other_home)!r})")
        assert attempt["error"] and attempt["error"]["ename"] == "PermissionError"
    finally:
        kernel.close()


def test_student_cannot_open_the_admin_page(hub, student_session):
    assert student_session.http.get(f"{hub.url}/hub/admin", timeout=30).status_code == 403
    assert student_session.hub_api("GET", "/users").status_code == 403


def test_instructor_is_admin_and_can_open_a_students_server(hub, student_session, student, instructor):
    username, _ = student
    teacher = hubkit.HubSession(hub, *instructor)
    assert teacher.http.get(f"{hub.url}/hub/admin", timeout=30).status_code == 200
    model = teacher.hub_api("GET", f"/users/{username}").json()
    assert model["servers"][""]["ready"]
    landing = teacher.open_server(owner=username)
    assert landing.status_code == 200
    assert landing.url.endswith(f"/user/{username}/tree/course")
    listing = teacher.server_api("GET", "/contents/course", owner=username)
    assert listing.status_code == 200
    kernel = teacher.start_kernel(owner=username)
    try:
        # The instructor's code runs in the student's server, as the student.
        result = kernel.execute("import os; print(os.getuid())")
        assert result["stdout"].strip() == str(pwd.getpwnam(username).pw_uid)
    finally:
        kernel.close()
