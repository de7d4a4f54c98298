"""A fix published to the course repository reaches a student, whose own edits are kept.

The student's ``~/course`` is synced by nbgitpuller before each server start (the hub's
pre-spawn hook), so "the next sync" is the next start of their server.
"""
import shutil
import subprocess

import nbformat
import pytest
from course_hub import repository

from tests.hub import hubkit

UPSTREAM_FIX = "x = 2  # fixed upstream"
STUDENT_NOTE = "# Hub check\n\nMy own note: x is the answer."


@pytest.fixture(scope="module")
def update_setup(shared_tmp, course_source):
    """A course repository of this module's own (it gets a new commit) and git's trust in it."""
    source = shared_tmp / "update-source"
    shutil.copytree(course_source, source)
    repo = shared_tmp / "update-course.git"
    repository.publish(source, repo)
    subprocess.run(["chmod", "-R", "a+rX", str(repo)], check=True)
    git_config = shared_tmp / "update-gitconfig"
    git_config.write_text(f"[safe]\n\tdirectory = {repo}\n")
    git_config.chmod(0o644)
    return source, repo, git_config


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
    assert repository.publish(source, repo, message="Fix x, add a lesson") is not None
    subprocess.run(["chmod", "-R", "a+rX", str(repo)], check=True)

    # Next sync: the student's next server start.
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
