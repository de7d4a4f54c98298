"""A fix published to the course repository reaches a student, whose own edits are kept; a sync
that fails is shown to the student and logged for the operator.

The student's ``~/course`` is synced by nbgitpuller at every landing on their server (its
default URL is nbgitpuller's git-pull page): here after a restart of the server;
tests/instructors/test_hub_instructors.py publishes to a student whose server keeps running,
tests/hub/test_hub_browser.py does it in Chromium.
"""
import shutil

import nbformat
import pytest

from tests.hub import hubkit

UPSTREAM_FIX = "x = 2  # fixed upstream"
STUDENT_NOTE = "# Hub check\n\nMy own note: x is the answer."


@pytest.fixture(scope="module")
def update_setup(make_course):
    """A course repository of this module's own (it gets a new commit) and git's trust in it."""
    return make_course("update")


def test_published_fix_reaches_student_and_keeps_their_edits(start_hub, make_user, update_setup):
    source, repo, git_config = update_setup
    hub = start_hub(course_repo=repo, git_config_system=git_config)
    session = hubkit.HubSession(hub, *make_user("student"))
    session.start_server()
    session.open_server()

    # The student edits the markdown cell of a course notebook and adds a file of their own.
    model = session.server_api("GET", "/contents/course/hub-check.ipynb").json()
    assert model["content"]["cells"][1]["source"] == "x = 1"
    model["content"]["cells"][0]["source"] = STUDENT_NOTE
    saved = session.server_api("PUT", "/contents/course/hub-check.ipynb", json={
        "type": "notebook", "format": "json", "content": model["content"]})
    assert saved.status_code == 200, saved.text
    notes = session.server_api("PUT", "/contents/course/my-notes.txt", json={
        "type": "file", "format": "text", "content": "kept?\n"})
    assert notes.status_code == 201, notes.text

    # The instructors fix the code cell and add a lesson, and publish.
    hubkit.write_probe_notebook(source / "hub-check.ipynb", UPSTREAM_FIX)
    shutil.copy(source / "hub-check.ipynb", source / "new-lesson.ipynb")
    assert hubkit.publish_course(source, repo, message="Fix x, add a lesson") is not None

    # Next sync: the student's next landing, here after their server was stopped and started.
    assert session.hub_api("DELETE", f"/users/{session.username}/server").status_code in (202, 204)
    hubkit.wait_for(lambda: session.server_model() is None, 60, what="the server to stop")
    session.start_server()
    session.open_server()

    merged = session.server_api("GET", "/contents/course/hub-check.ipynb").json()["content"]
    assert merged["cells"][0]["source"] == STUDENT_NOTE  # the student's edit
    assert merged["cells"][1]["source"] == UPSTREAM_FIX  # the upstream fix
    own = session.server_api("GET", "/contents/course/my-notes.txt")
    assert own.status_code == 200 and own.json()["content"] == "kept?\n"
    lesson = session.server_api("GET", "/contents/course/new-lesson.ipynb")
    assert lesson.status_code == 200
    nbformat.validate(nbformat.from_dict(merged))


def test_a_failed_sync_is_shown_to_the_student_and_logged_for_the_operator(start_hub, make_user, shared_tmp):
    missing = shared_tmp / "no-such-course.git"
    hub = start_hub(course_repo=missing)
    session = hubkit.HubSession(hub, *make_user("student"))
    session.start_server()  # the server starts all the same, with what the student has
    with pytest.raises(hubkit.HubError, match="the course sync on .* failed"):
        session.open_server()
    # What nbgitpuller's landing page shows the student: the error, with git's own message.
    [error] = [event for event in session.sync_events if event.get("phase") == "error"]
    shown = f"{error.get('message', '')}\n{error.get('output', '')}"
    assert str(missing) in shown, session.sync_events
    # The operator: the server's log, which the hub's log carries (the local spawner's servers
    # write to the hub's output), has the same lines.
    assert str(missing) in hub.log_text(), hub.log_tail()
    # The student still works in their server.
    assert session.server_api("GET", "/contents").status_code == 200
