"""The deploy files: the systemd unit verifies cleanly, shell scripts pass shellcheck, rc.local
starts a hub in the background exactly once, and the launcher brings a crashed hub back."""
import os
import pathlib
import shutil
import signal
import subprocess
import time

import pytest
import requests

import hubkit

DEPLOY = hubkit.REPO_ROOT / "deploy"
UNIT = DEPLOY / "systemd" / "jupyterhub.service"


def shell_scripts():
    """rc.local and every shell script of the repository (by extension or shebang)."""
    found = {DEPLOY / "rc.local"}
    for path in hubkit.REPO_ROOT.rglob("*"):
        if not path.is_file() or any(part in {".git", "node_modules", "test-artifacts"} for part in path.parts):
            continue
        if path.suffix in {".sh", ".bash"}:
            found.add(path)
        elif path.suffix == "" and path.stat().st_size < 1_000_000:
            with path.open("rb") as handle:
                first = handle.readline(200)
            words = first[2:].decode(errors="replace").split() if first.startswith(b"#!") else []
            if words and words[0].endswith("/env"):
                words = words[1:]
            if words and pathlib.Path(words[0]).name in {"sh", "bash", "dash"}:
                found.add(path)
    return sorted(found)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_unit_verifies_without_any_message():
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(UNIT)], capture_output=True, text=True, timeout=60
    )
    # It exits 0 on warnings: any output at all is a failure.
    assert result.returncode == 0 and result.stdout == "" and result.stderr == "", result.stdout + result.stderr


def test_systemd_unit_restarts_and_spares_students_servers():
    text = UNIT.read_text()
    for line in ("Restart=always", "KillMode=process", "WorkingDirectory=/var/lib/dlcourse",
                 "After=network-online.target", "PrivateTmp=yes", "ProtectKernelTunables=yes",
                 "ProtectKernelModules=yes", "WantedBy=multi-user.target"):
        assert line in text.splitlines(), line


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
@pytest.mark.parametrize("script", shell_scripts(), ids=lambda p: str(p.relative_to(hubkit.REPO_ROOT)))
def test_shell_script_passes_shellcheck(script):
    result = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def rc_env(course_repo_path, git_config_system, tmp_path):
    """Environment for running deploy/rc.local against a hub of the test's own."""
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    port = hubkit.free_port()
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.update(
        DLCOURSE_PYTHON=str(hubkit.PYTHON),
        DLCOURSE_LAUNCHER=str(hubkit.LAUNCHER),
        DLCOURSE_HUB_CONFIG=str(hubkit.CONFIG),
        DLCOURSE_HUB_LOG=str(tmp_path / "log" / "jupyterhub.log"),
        DLCOURSE_HUB_PIDFILE=str(tmp_path / "run" / "dlcourse-hub.pid"),
        DLCOURSE_STATE_DIR=str(state),
        DLCOURSE_HUB_IP="127.0.0.1",
        DLCOURSE_HUB_PORT=str(port),
        DLCOURSE_HUB_API_PORT=str(hubkit.free_port()),
        DLCOURSE_PROXY_API_PORT=str(hubkit.free_port()),
        DLCOURSE_COURSE_REPO=str(course_repo_path),
        DLCOURSE_SPAWNER="local",
        GIT_CONFIG_SYSTEM=str(git_config_system),
    )
    launched = []
    yield env, f"http://127.0.0.1:{port}", launched
    for pid in launched:  # the supervisor stops its hub, which stops its proxy
        hubkit.stop_pid(pid, timeout=40)
    proxy_pidfile = state / "jupyterhub-proxy.pid"
    if proxy_pidfile.exists():
        proxy = int(proxy_pidfile.read_text())
        if "configurable-http-proxy" in hubkit._cmdline(proxy):
            hubkit.stop_pid(proxy, timeout=10)


def _healthy(url):
    try:
        return requests.get(f"{url}/hub/health", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _hub_child(supervisor):
    """The pid of the hub the supervising launcher runs."""
    children = pathlib.Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    hubs = [int(pid) for pid in children if "jupyterhub" in hubkit._cmdline(int(pid))]
    return hubs[0] if hubs else None


def _culler_of(hub):
    """The pid of the idle culler that ``hub`` runs as a managed service, or None."""
    children = pathlib.Path(f"/proc/{hub}/task/{hub}/children").read_text().split()
    cullers = [int(pid) for pid in children if "jupyterhub_idle_culler" in hubkit._cmdline(int(pid))]
    return cullers[0] if cullers else None


def test_rc_local_starts_one_background_hub_and_returns_at_once(rc_env):
    env, url, launched = rc_env
    started = time.monotonic()
    first = subprocess.run(["sh", str(DEPLOY / "rc.local")], env=env, capture_output=True, text=True, timeout=30)
    elapsed = time.monotonic() - started
    assert first.returncode == 0, first.stderr
    assert elapsed < 5, f"rc.local blocked boot for {elapsed:.1f} s"
    pid = int(pathlib.Path(env["DLCOURSE_HUB_PIDFILE"]).read_text())
    launched.append(pid)
    assert "dlcourse-hub" in hubkit._cmdline(pid)
    hubkit.wait_for(lambda: _healthy(url), 90, what="the hub started by rc.local")
    log = pathlib.Path(env["DLCOURSE_HUB_LOG"]).read_text()
    assert "JupyterHub is now running" in log

    second = subprocess.run(["sh", str(DEPLOY / "rc.local")], env=env, capture_output=True, text=True, timeout=30)
    assert second.returncode == 0
    assert "already runs" in second.stdout
    assert int(pathlib.Path(env["DLCOURSE_HUB_PIDFILE"]).read_text()) == pid
    launchers = [p for p in map(int, filter(str.isdigit, os.listdir("/proc")))
                 if env["DLCOURSE_HUB_PIDFILE"] in hubkit._cmdline(p)]
    assert launchers == [pid]

    # SIGINT and SIGQUIT work again in the hub (a background shell job starts with them ignored).
    hub = _hub_child(pid)
    with open(f"/proc/{hub}/status") as handle:
        ignored = int(next(line for line in handle if line.startswith("SigIgn:")).split()[1], 16)
    assert not ignored & (1 << (signal.SIGINT - 1)) and not ignored & (1 << (signal.SIGQUIT - 1))

    # Stopping by pid: the launcher stops its hub and removes its pid file.
    hubkit.stop_pid(pid, timeout=40)
    assert not hubkit.pid_alive(hub)
    assert not pathlib.Path(env["DLCOURSE_HUB_PIDFILE"]).exists()


def test_launcher_brings_a_crashed_hub_back(rc_env):
    env, url, launched = rc_env
    subprocess.run(["sh", str(DEPLOY / "rc.local")], env=env, check=True, capture_output=True, timeout=30)
    supervisor = int(pathlib.Path(env["DLCOURSE_HUB_PIDFILE"]).read_text())
    launched.append(supervisor)
    hubkit.wait_for(lambda: _healthy(url), 90, what="the first hub")
    crashed = _hub_child(supervisor)
    crashed_culler = hubkit.wait_for(lambda: _culler_of(crashed), 30, what="the first hub's idle culler")
    os.kill(crashed, signal.SIGKILL)
    replacement = hubkit.wait_for(
        lambda: (pid := _hub_child(supervisor)) and pid != crashed and pid, 30, what="a new hub process"
    )
    assert replacement != crashed
    hubkit.wait_for(lambda: _healthy(url), 90, what="the restarted hub")
    assert "restarting" in pathlib.Path(env["DLCOURSE_HUB_LOG"]).read_text()
    # The crashed hub could not stop its culler: the launcher did, so only the new hub's runs.
    assert not hubkit.pid_alive(crashed_culler)
    assert f"stopped services the crashed hub left running: [{crashed_culler}]" in (
        pathlib.Path(env["DLCOURSE_HUB_LOG"]).read_text())
