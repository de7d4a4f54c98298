"""Fixtures for the instructors' tests: real Unix accounts, a real course repository, real git.

Everything is made with a name unique to this run (prefix ``inst`` + random suffix) and
removed afterwards: accounts with their homes, the test's own Unix group, the temporary
folders. The course's shared groups are never created or deleted here.
"""
import os
import pathlib
import pwd
import secrets
import shutil
import sys
import tempfile

import pytest
from course_hub import repository
from inst_helpers import CHECKOUT_ENV, Accounts, make_notebook, write_notebook


def pytest_collection_modifyitems(config, items):
    if os.geteuid() != 0:
        for item in items:
            if "tests/instructors" in str(item.fspath):
                item.add_marker(pytest.mark.skip(reason="needs root: makes Unix accounts"))


@pytest.fixture(scope="module")
def accounts():
    made = Accounts("inst" + secrets.token_hex(3))
    try:
        yield made
    finally:
        made.cleanup()


@pytest.fixture(scope="module")
def people(accounts):
    """An instructors' group of this run, one instructor in it, two students outside it."""
    staff = accounts.group("g")
    return {
        "group": staff,
        "instructor": accounts.user("i", [staff]),
        "student": accounts.user("s"),
        "other": accounts.user("t"),
    }


@pytest.fixture
def scratch():
    """A world-traversable temporary folder (pytest's tmp_path is root-only)."""
    path = pathlib.Path(tempfile.mkdtemp(prefix="inst-test-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def course(scratch, people):
    """A secured course repository with two published notebooks and a tiny ``course_lib``.

    Returns a dict: ``repo`` (bare repository), ``env`` (environment for git/tools: a system
    git config marking every repository safe, and this checkout's ``course_hub``), ``source``.
    """
    gitconfig = scratch / "gitconfig"
    gitconfig.write_text("[safe]\n\tdirectory = *\n")
    gitconfig.chmod(0o644)
    env = {"GIT_CONFIG_SYSTEM": str(gitconfig), **CHECKOUT_ENV}
    source = scratch / "source"
    (source / "course_lib").mkdir(parents=True)
    (source / "tests").mkdir()
    (source / "course_lib" / "__init__.py").write_text("def double(x):\n    return 2 * x\n")
    (source / "tests" / "test_double.py").write_text(
        "from course_lib import double\n\ndef test_double():\n    assert double(3) == 6\n")
    (source / ".gitignore").write_text(".ipynb_checkpoints/\n__pycache__/\n")
    write_notebook(source / "01-first.ipynb",
                   make_notebook("a = 20", "b = a + 1", "print('answer', 2 * b)"))
    write_notebook(source / "02-second.ipynb",
                   make_notebook("from course_lib import double", "double(21)"))
    repo = scratch / "course.git"
    repository.secure_repository(repo, people["group"], python=sys.executable)
    repository.publish(source, repo, message="First publication")
    return {"repo": repo, "env": env, "source": source, "folder": f"course-{secrets.token_hex(3)}"}


@pytest.fixture
def workspace(course, people):
    """The instructor's working copy, made as the hub makes it."""
    home = pathlib.Path(pwd.getpwnam(people["instructor"]).pw_dir)
    target = home / f"course-edit-{secrets.token_hex(2)}"
    assert repository.ensure_workspace(people["instructor"], course["repo"], target)
    return target


