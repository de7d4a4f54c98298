"""The fresh root leaves nothing behind: not after Ctrl-C, and not (after the next run) a SIGKILL.

Each test runs ``interrupt_probe.py`` in a pytest of its own: it makes a fresh root, starts a
process inside that leaves its session (as the hub does), and waits. Then the probe's pytest is
interrupted (SIGINT to its process group, what Ctrl-C sends) or killed (SIGKILL).
"""
import json
import os
import pathlib
import signal
import subprocess
import sys

from tests.freshroot import freshroot
from tests.hub import hubkit

HERE = pathlib.Path(__file__).resolve().parent
PROBE_TIMEOUT = 600  # unpacking the base and mounting take seconds; building it, a few minutes


def start_probe(state):
    """Start the probe's pytest; wait until its root is mounted with a process inside; return both."""
    probe = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(HERE / "interrupt_probe.py")],
        cwd=freshroot.REPO_ROOT, env={**os.environ, "FRESHROOT_PROBE_STATE": str(state)},
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        hubkit.wait_for(lambda: state.exists() or probe.poll() is not None, PROBE_TIMEOUT, what="the probe's root")
    except hubkit.HubError:
        os.killpg(probe.pid, signal.SIGINT)
        raise
    if not state.exists():
        raise AssertionError(f"the probe ended with {probe.returncode} before its root was ready:\n"
                             f"{probe.stdout.read().decode(errors='replace')}")
    info = json.loads(state.read_text())
    run_dir, root = pathlib.Path(info["run_dir"]), pathlib.Path(info["root"])
    assert freshroot.mounts_under(run_dir), "the probe's root has no mounts: nothing to test"
    assert freshroot.processes_in(root), "no process inside the probe's root: nothing to test"
    return probe, run_dir, root


def test_ctrl_c_stops_unmounts_and_removes_everything(tmp_path, freshroot_prerequisites):
    probe, run_dir, root = start_probe(tmp_path / "state.json")
    os.killpg(probe.pid, signal.SIGINT)
    output, _ = probe.communicate(timeout=180)
    output = output.decode(errors="replace")
    assert "KeyboardInterrupt" in output, f"the probe was not interrupted:\n{output}"
    assert not freshroot.processes_in(root), f"processes left in {root}:\n{output}"
    assert not freshroot.mounts_under(run_dir), f"mounts left below {run_dir}:\n{output}"
    assert not run_dir.exists(), f"{run_dir} left behind:\n{output}"


def test_a_killed_run_is_cleaned_by_the_next_one(tmp_path, freshroot_prerequisites):
    probe, run_dir, root = start_probe(tmp_path / "state.json")
    os.killpg(probe.pid, signal.SIGKILL)
    probe.communicate(timeout=60)
    # SIGKILL leaves no chance to clean up: the root is still mounted, its process still runs.
    assert freshroot.mounts_under(run_dir) and freshroot.processes_in(root)
    cleaned = freshroot.clean_stale_runs(log=print)
    assert run_dir in cleaned
    assert not freshroot.processes_in(root)
    assert not freshroot.mounts_under(run_dir)
    assert not run_dir.exists()
