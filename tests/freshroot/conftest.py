"""Fixtures of the fresh-machine tests: a fresh root per test, cleaned up whatever happens.

Every test here carries the ``freshroot`` marker: ``pytest -m "not freshroot"`` skips them on a
developer's machine; those that boot a root with systemd also carry ``boot`` (``-m "not boot"``
skips only them). CI (``CI=true``) never skips them: a missing prerequisite fails them.
"""
import json
import os
import pathlib
import time

import pytest

from tests.freshroot import freshroot

HERE = pathlib.Path(__file__).resolve().parent

ARTIFACTS = freshroot.REPO_ROOT / "test-artifacts"
#: Filled by the tests, printed at the end of the session and kept in test-artifacts/.
TIMINGS = {}


def pytest_collection_modifyitems(config, items):
    """Mark every test of this folder ``freshroot``, and those that boot a root also ``boot``."""
    for item in items:
        if HERE in pathlib.Path(item.fspath).resolve().parents:
            item.add_marker(pytest.mark.freshroot)
            if "booted_root" in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.boot)


def _require(missing, what):
    """Skip (fail in CI) when something the test needs is missing here."""
    if not missing:
        return
    reason = f"{what}: " + "; ".join(missing)
    if os.environ.get("CI") == "true":
        pytest.fail(reason + " (CI=true: a missing prerequisite is a failure)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def freshroot_prerequisites():
    """Skip (fail in CI) when a fresh root cannot be made on this machine."""
    _require(freshroot.prerequisites_missing(), "fresh-machine test")


@pytest.fixture
def booted_root(request):
    """A :class:`freshroot.BootedRoot`: a fresh root booted with systemd as PID 1, removed at the end."""
    _require(freshroot.prerequisites_missing(boot=True), "systemd boot test")
    yield from _timed(request, freshroot.BootedRoot(log=print, in_memory=True))


@pytest.fixture
def fresh_root(request, freshroot_prerequisites):
    """A :class:`freshroot.FreshRoot`, made pristine, removed at the end (also after Ctrl-C)."""
    dirty = freshroot._run(["git", "-C", str(freshroot.REPO_ROOT), "status", "--porcelain",
                            "--untracked-files=no"]).strip()
    if dirty:
        print(f"freshroot: the root gets the committed tree (HEAD); uncommitted changes are not in it:\n{dirty}")
    yield from _timed(request, freshroot.FreshRoot(log=print, in_memory=True))


def _timed(request, root):
    """Make ``root``, yield it, remove it; keep its timings for the session's summary."""
    # The generator's `with` is closed by pytest's teardown, which also runs when the session
    # ends through a KeyboardInterrupt.
    started = time.monotonic()
    try:
        with root:
            yield root
    finally:
        root.timings["whole test with set-up and clean-up s"] = round(time.monotonic() - started, 1)
        TIMINGS[request.node.name] = {**root.base_timings(), **root.timings}


def pytest_terminal_summary(terminalreporter):
    """Print the fresh-root timings (and keep them in test-artifacts/freshroot-timings.json)."""
    if not TIMINGS:
        return
    terminalreporter.section("fresh-machine timings (seconds)")
    for test, timings in TIMINGS.items():
        terminalreporter.write_line(f"{test}: " + ", ".join(f"{k} {v}" for k, v in timings.items()))
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "freshroot-timings.json").write_text(json.dumps(TIMINGS, indent=1) + "\n")
