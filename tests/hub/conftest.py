"""Fixtures for the hub tests: a course repository, roster users, hubs, logged-in sessions.

These tests need root (they make Unix users and a root hub that switches to them), the course
virtualenv and configurable-http-proxy installed by ``deploy/install.sh``. Every hub runs on
free ports with a temporary state folder and is stopped by pid; every user is named
``hubt<random>...`` and deleted at the end, with their processes (stopped by pid).

Reusable pieces (see ``hubkit.py`` for the classes):

- ``course_repo``: a course repository published from the checkout's ``notebooks/``;
- ``make_user(role)``: a roster user (``"student"``/``"instructor"``) or, with ``role=None``,
  a Unix user in neither course group; returns ``(username, password)``;
- ``hub``: one hub for the session; ``start_hub(...)``: a hub of one's own;
- ``login(hub, username, password)``: a :class:`hubkit.HubSession`.
"""
import os
import pathlib
import secrets
import shutil
import subprocess
import tempfile

import pytest
from course_hub import accounts, roster

from tests.hub import hubkit

ARTIFACTS = hubkit.REPO_ROOT / "test-artifacts"
#: Unique to one test run, so concurrent runs never touch each other's users.
USER_PREFIX = "hubt" + secrets.token_hex(3)


def pytest_collection_modifyitems(config, items):
    """Skip the hub tests with a reason where they cannot run at all."""
    reason = None
    if os.geteuid() != 0:
        reason = "the hub tests make Unix users and run a root hub: run them as root"
    elif not hubkit.PROXY_COMMAND.exists():
        reason = f"{hubkit.PROXY_COMMAND} missing: run deploy/install.sh --no-start first"
    if reason:
        here = pathlib.Path(__file__).resolve().parent
        for item in items:
            if here in pathlib.Path(item.fspath).resolve().parents:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def shared_tmp():
    """A folder every user may read (students clone the course repository from it)."""
    folder = pathlib.Path(tempfile.mkdtemp(prefix="hubtests-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def course_source(shared_tmp):
    """The course material: the checkout's notebooks, plus a small notebook the tests rely on."""
    source = shared_tmp / "course-source"
    shutil.copytree(hubkit.REPO_ROOT / "notebooks", source, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    hubkit.write_probe_notebook(source / "hub-check.ipynb", "x = 1")
    return source


@pytest.fixture(scope="session")
def course_repo_path(shared_tmp, course_source):
    """A bare course repository published from ``course_source``, readable by everyone."""
    repo = shared_tmp / "course.git"
    hubkit.publish_course(course_source, repo)
    return repo


@pytest.fixture(scope="session")
def make_course(shared_tmp, course_source):
    """Factory of course repositories of a test's own, for tests that publish into them:
    ``make_course(name, notebooks=None)`` -> ``(source, repo, git_config)``.

    ``source`` is a copy of ``course_source`` (only the named ``notebooks`` if given), ``repo``
    the bare repository published from it (readable by everyone), ``git_config`` a git system
    configuration that trusts it. Publish a change with :func:`hubkit.publish_course`.
    """

    def make(name, notebooks=None):
        source = shared_tmp / f"{name}-source"
        if notebooks is None:
            shutil.copytree(course_source, source)
        else:
            source.mkdir()
            for notebook in notebooks:
                shutil.copy(course_source / notebook, source / notebook)
        repo = shared_tmp / f"{name}-course.git"
        hubkit.publish_course(source, repo)
        git_config = shared_tmp / f"{name}-gitconfig"
        git_config.write_text(f"[safe]\n\tdirectory = {repo}\n")
        git_config.chmod(0o644)
        return source, repo, git_config

    return make


@pytest.fixture(scope="session")
def git_config_system(shared_tmp, course_repo_path):
    """A git system configuration that trusts the test repository (like install.sh's)."""
    path = shared_tmp / "gitconfig"
    path.write_text(f"[safe]\n\tdirectory = {course_repo_path}\n")
    path.chmod(0o644)
    return path


@pytest.fixture(scope="session")
def make_user(shared_tmp):
    """Factory of Unix users: ``make_user("student")`` -> ``(username, password)``.

    ``"student"``/``"instructor"`` go through the roster script (groups, 0700 home, generated
    password); ``None`` makes a user in neither course group. All are deleted at the end.
    """
    made = []
    groups = roster.course_groups()

    def make(role="student"):
        name = f"{USER_PREFIX}{len(made):02d}"
        if role is None:
            password = roster.generate_password()
            subprocess.run(["useradd", "--create-home", "--key", "HOME_MODE=0700", name], check=True)
            subprocess.run(["chpasswd"], input=f"{name}:{password}\n", text=True, check=True)
        else:
            result = roster.add_accounts(
                [roster.Person(name, f"Hub Test {len(made)}", role)],
                password_file=shared_tmp / f"passwords-{name}.csv",
                groups=groups,
            )
            password = result["created"][name]
        made.append(name)
        return name, password

    yield make
    for name in made:
        delete_user(name)


def delete_user(name):
    """Stop the user's processes (by pid) and delete the account with its home."""
    accounts.stop_processes_of(name)
    subprocess.run(["userdel", "--remove", name], check=False, capture_output=True)


@pytest.fixture(scope="session")
def start_hub(course_repo_path, git_config_system):
    """Factory: ``start_hub(course_repo=..., git_config_system=..., settings={...})`` starts a hub
    (stopped at the end of the session); ``settings`` are more site settings for it."""
    started = []

    def start(course_repo=course_repo_path, git_config_system=git_config_system, settings=None):
        hub = hubkit.Hub(course_repo, git_config_system, settings)
        started.append(hub)
        return hub.start()

    yield start
    for hub in started:
        hub.stop()
        shutil.rmtree(hub.workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def hub(start_hub):
    """The session's shared hub (tests that kill or reconfigure a hub start their own)."""
    return start_hub()


@pytest.fixture(scope="session")
def login():
    """``login(hub, username, password)`` -> a logged-in :class:`hubkit.HubSession`."""
    return hubkit.HubSession


@pytest.fixture(scope="session")
def student(make_user):
    """A student account: ``(username, password)``."""
    return make_user("student")


@pytest.fixture(scope="session")
def other_student(make_user):
    """A second student account."""
    return make_user("student")


@pytest.fixture(scope="session")
def instructor(make_user):
    """An instructor account."""
    return make_user("instructor")


@pytest.fixture(scope="session")
def student_session(hub, student):
    """The first student, logged in, with a running server."""
    session = hubkit.HubSession(hub, *student)
    session.start_server()
    session.open_server()
    return session


@pytest.fixture(scope="session")
def artifacts():
    """The folder for screenshots and other test artifacts (``test-artifacts/``)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
