"""A student's terminal (File > New > Terminal), opened through the server's API and typed into
over its websocket: the course virtualenv comes first, as in the notebooks, and the README's
commands work there.

Real hub, proxy, PAM login and server; the terminal is the server's own (``bash -l`` of the
student, through Debian's ``/etc/profile``, then ``/etc/profile.d``), so these tests also check
what ``deploy/install.sh`` put in place (``course_hub.paths.PROFILE_SCRIPT``).
"""
import pwd

import pytest
from course_hub import paths

from tests.hub import hubkit


@pytest.fixture(scope="module")
def terminal(student_session):
    """A terminal of the shared student's server."""
    if not paths.PROFILE_SCRIPT.exists():
        pytest.fail(f"{paths.PROFILE_SCRIPT} missing: run deploy/install.sh --no-start")
    opened = hubkit.Terminal(student_session)
    yield opened
    opened.close()


def test_a_terminal_is_a_login_shell_of_the_student(terminal, student):
    status, output = terminal.run('shopt -q login_shell && echo "login $(id -un) $PWD"')
    assert status == 0, output
    assert output.split() == ["login", student[0], pwd.getpwnam(student[0]).pw_dir]


def test_the_course_virtualenv_comes_first_for_python3_pip_and_the_commands(terminal):
    status, output = terminal.run("command -v python3 python pip pip3 course-take-back course-status course-publish")
    assert status == 0, output
    assert output.split() == [str(paths.VENV_BIN / name) for name in (
        "python3", "python", "pip", "pip3", "course-take-back", "course-status", "course-publish")]
    status, output = terminal.run('printf "%s\\n" "$PATH"')
    assert output.strip().split(":")[0] == str(paths.VENV_BIN), output


def test_a_script_run_in_the_terminal_imports_what_the_notebooks_import(terminal):
    status, output = terminal.run(
        "python3 -c 'import course_lib, numpy, scipy, matplotlib; print(course_lib.__file__, numpy.__version__)'")
    assert status == 0, output
    where, _version = output.split()
    assert where.startswith(str(paths.VENV) + "/"), where  # the installed course, not a checkout
    status, output = terminal.run("pip --version")
    assert status == 0 and f"from {paths.VENV}/" in output, output


def test_course_take_back_works_as_the_readme_shows(terminal, student_session):
    # The student edits a published notebook, then takes the published version back.
    model = student_session.server_api("GET", "/contents/course/hub-check.ipynb").json()
    published = model["content"]["cells"][1]["source"]
    model["content"]["cells"][1]["source"] = "x = 'my own attempt'"
    saved = student_session.server_api("PUT", "/contents/course/hub-check.ipynb", json={
        "type": "notebook", "format": "json", "content": model["content"]})
    assert saved.status_code == 200, saved.text
    status, output = terminal.run("cd ~/course && course-take-back hub-check.ipynb && cd")
    assert status == 0, output
    listing = {item["name"] for item in student_session.server_api("GET", "/contents/course").json()["content"]}
    kept = [name for name in listing if name.startswith("hub-check-mine-") and name.endswith(".ipynb")]
    assert len(kept) == 1, (listing, output)
    restored = student_session.server_api("GET", "/contents/course/hub-check.ipynb").json()["content"]
    mine = student_session.server_api("GET", f"/contents/course/{kept[0]}").json()["content"]
    assert restored["cells"][1]["source"] == published
    assert mine["cells"][1]["source"] == "x = 'my own attempt'"
