"""The deploy files: the systemd unit verifies cleanly and starts course-hub, shell scripts pass
shellcheck, rc.local starts a hub in the background exactly once (from its state folder), the
launcher brings a crashed hub back, and ``course-hub --stop`` stops it."""
import grp
import json
import os
import pathlib
import re
import uuid
import shutil
import signal
import subprocess
import tempfile
import time

import pytest
from course_hub import launcher, paths
from course_hub import settings as course_settings

from tests.hub import hubkit

DEPLOY = hubkit.REPO_ROOT / "deploy"
LOG_MAX_KIB, LOG_BACKUPS = 16, 2
#: The log test requests pages at most this fast; each logs one line, well under LOG_BYTES_PER_REQUEST.
REQUESTS_PER_SECOND, LOG_BYTES_PER_REQUEST = 20, 2000
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
    for line in ("Restart=always", "KillMode=process", f"ExecStart={paths.COURSE_HUB}",
                 "After=network-online.target", "PrivateTmp=yes", "ProtectKernelTunables=yes",
                 "ProtectKernelModules=yes", "WantedBy=multi-user.target"):
        assert line in text.splitlines(), line
    # course-hub runs the hub from the state folder (WorkingDirectory used to name it: see the
    # rc.local test, which checks the running hub's folder) and knows every other path.
    assert not re.search(r"^(WorkingDirectory|StateDirectory|Environment|ExecStartPre)=", text, re.MULTILINE)


def test_unit_and_rc_local_start_the_installed_course_hub():
    # Both name only the entry point, and the same one as course_hub/paths.py.
    assert f"ExecStart={paths.COURSE_HUB}\n" in UNIT.read_text()
    assert re.search(rf"^COURSE_HUB={re.escape(str(paths.COURSE_HUB))}$", (DEPLOY / "rc.local").read_text(), re.MULTILINE)
    assert paths.COURSE_HUB.exists(), f"{paths.COURSE_HUB} missing: run deploy/install.sh --no-start"


PROFILE = DEPLOY / "profile.d" / "dlcourse.sh"


def test_profile_script_names_the_virtualenv_of_course_hub_paths():
    assert re.search(rf"^COURSE_VENV_BIN={re.escape(str(paths.VENV_BIN))}$", PROFILE.read_text(), re.MULTILINE)
    assert paths.PROFILE_SCRIPT.parent == pathlib.Path("/etc/profile.d") and paths.PROFILE_SCRIPT.suffix == ".sh"


@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_profile_script_puts_the_virtualenv_first_for_users_not_root(shell):
    # A copy nobody can read (the checkout may sit in root's home).
    folder = pathlib.Path(tempfile.mkdtemp(prefix="profile-test-"))
    folder.chmod(0o755)
    profile = shutil.copy(PROFILE, folder / PROFILE.name)
    # As Debian's /etc/profile leaves it: PATH reset, then profile.d read (twice: a nested login).
    script = f'PATH=/usr/local/bin:/usr/bin:/bin; . {profile}; . {profile}; printf "%s\\n" "$PATH"'
    nobody = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", shell, "-c", script],
                            capture_output=True, text=True, timeout=30, cwd="/")
    assert nobody.returncode == 0, nobody.stderr
    assert nobody.stdout.strip() == f"{paths.VENV_BIN}:/usr/local/bin:/usr/bin:/bin"
    root = subprocess.run([shell, "-c", script], capture_output=True, text=True, timeout=30)
    shutil.rmtree(folder)
    assert root.stdout.strip() == "/usr/local/bin:/usr/bin:/bin"  # root keeps the system's python3


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
@pytest.mark.parametrize("script", shell_scripts(), ids=lambda p: str(p.relative_to(hubkit.REPO_ROOT)))
def test_shell_script_passes_shellcheck(script):
    result = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def rc_env(course_repo_path, git_config_system, tmp_path):
    """Environment for running deploy/rc.local against a hub of the test's own.

    rc.local runs the installed ``course-hub``; ``PYTHONPATH`` makes it run this checkout's
    ``course_hub``, and ``DLCOURSE_SETTINGS`` gives it the test's ports and files.
    """
    state = tmp_path / "state"
    port = hubkit.free_port()
    site = hubkit.hub_settings(port, hubkit.free_port(), state, course_repo_path, {"server": {
        "log": str(tmp_path / "log" / "jupyterhub.log"),
        "pidfile": str(tmp_path / "run" / "dlcourse-hub.pid"),
        # Small, so that the log test sees it rotate after a few hundred requests.
        "log_max_size": f"{LOG_MAX_KIB}K", "log_backups": LOG_BACKUPS,
    }})
    env = hubkit.hub_environment(hubkit.write_settings(tmp_path / "settings.yaml", site))
    url, verify = hubkit.hub_address(course_settings.load_settings(tmp_path / "settings.yaml")["server"], port)
    env["GIT_CONFIG_SYSTEM"] = str(git_config_system)
    files = {"state": state, "log": pathlib.Path(site["server"]["log"]), "verify": verify,
             "pidfile": pathlib.Path(site["server"]["pidfile"]), "api_port": site["server"]["hub_api_port"]}
    launched = []
    yield env, url, files, launched
    for pid in launched:  # the supervisor stops its hub, which stops its proxy
        hubkit.stop_pid(pid, timeout=40)
    proxy_pidfile = hubkit.run_dir_beside(state) / paths.PROXY_PIDFILE
    if proxy_pidfile.exists():
        proxy = int(proxy_pidfile.read_text())
        if "configurable-http-proxy" in hubkit._cmdline(proxy):
            hubkit.stop_pid(proxy, timeout=10)
    launcher.stop_pids(launcher.orphaned_services(files["api_port"]))




def _hub_child(supervisor):
    """The pid of the hub the supervising launcher runs."""
    children = pathlib.Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    hubs = [int(pid) for pid in children if "jupyterhub" in hubkit._cmdline(int(pid))]
    return hubs[0] if hubs else None


def _service_of(hub, marker):
    """The pid of the managed service of ``hub`` whose command line holds ``marker``, or None."""
    children = pathlib.Path(f"/proc/{hub}/task/{hub}/children").read_text().split()
    services = [int(pid) for pid in children if marker in hubkit._cmdline(int(pid))]
    return services[0] if services else None


def _culler_of(hub):
    """The pid of the idle culler that ``hub`` runs as a managed service, or None."""
    return _service_of(hub, "jupyterhub_idle_culler")


def test_rc_local_starts_one_background_hub_and_returns_at_once(rc_env):
    env, url, files, launched = rc_env
    started = time.monotonic()
    first = subprocess.run(["sh", str(DEPLOY / "rc.local")], env=env, capture_output=True, text=True, timeout=30)
    elapsed = time.monotonic() - started
    assert first.returncode == 0, first.stderr
    assert elapsed < 5, f"rc.local blocked boot for {elapsed:.1f} s"
    pid = int(files["pidfile"].read_text())
    launched.append(pid)
    assert launcher.LAUNCHER_MODULE in hubkit._cmdline(pid)
    assert f"started the course hub (pid {pid}), log in {files['log']}" in first.stdout
    hubkit.wait_for(lambda: hubkit.answers_health(url, files["verify"]), 90, what="the hub started by rc.local")
    log = files["log"].read_text()
    assert "JupyterHub is now running" in log

    second = subprocess.run(["sh", str(DEPLOY / "rc.local")], env=env, capture_output=True, text=True, timeout=30)
    assert second.returncode == 0
    assert "already runs" in second.stdout
    assert int(files["pidfile"].read_text()) == pid
    launchers = [p for p in map(int, filter(str.isdigit, os.listdir("/proc")))
                 if str(files["pidfile"]) in hubkit._cmdline(p)]
    assert launchers == [pid]

    # The hub runs from its state folder (made 0700), as the systemd unit's hub does.
    hub = _hub_child(pid)
    assert pathlib.Path(os.readlink(f"/proc/{hub}/cwd")) == files["state"]
    assert files["state"].stat().st_mode & 0o777 == 0o700
    # The virtualenv's bin comes first on its PATH (the unit used to set it; the proxy needs it).
    environ = pathlib.Path(f"/proc/{hub}/environ").read_bytes().split(b"\0")
    path = next(entry for entry in environ if entry.startswith(b"PATH=")).decode()[len("PATH="):]
    assert path.split(":")[0] == str(hubkit.PYTHON.parent)
    # SIGINT and SIGQUIT work again in the hub (a background shell job starts with them ignored).
    with open(f"/proc/{hub}/status") as handle:
        ignored = int(next(line for line in handle if line.startswith("SigIgn:")).split()[1], 16)
    assert not ignored & (1 << (signal.SIGINT - 1)) and not ignored & (1 << (signal.SIGQUIT - 1))

    # Stopping by pid: the launcher stops its hub and removes its pid file.
    hubkit.stop_pid(pid, timeout=40)
    assert not hubkit.pid_alive(hub)
    assert not files["pidfile"].exists()


def test_launcher_brings_a_crashed_hub_back_and_stops_on_request(rc_env):
    env, url, files, launched = rc_env
    subprocess.run(["sh", str(DEPLOY / "rc.local")], env=env, check=True, capture_output=True, timeout=30)
    supervisor = int(files["pidfile"].read_text())
    launched.append(supervisor)
    hubkit.wait_for(lambda: hubkit.answers_health(url, files["verify"]), 90, what="the first hub")
    crashed = _hub_child(supervisor)
    crashed_culler = hubkit.wait_for(lambda: _culler_of(crashed), 30, what="the first hub's idle culler")
    crashed_sandbox = hubkit.wait_for(lambda: _service_of(crashed, "course_hub.sandbox"), 30,
                                      what="the first hub's grading sandbox")
    os.kill(crashed, signal.SIGKILL)
    replacement = hubkit.wait_for(
        lambda: (pid := _hub_child(supervisor)) and pid != crashed and pid, 30, what="a new hub process"
    )
    assert replacement != crashed
    hubkit.wait_for(lambda: hubkit.answers_health(url, files["verify"]), 90, what="the restarted hub")
    assert "restarting" in files["log"].read_text()
    # The crashed hub could not stop its services (the culler, the grading sandbox): the launcher
    # did, so only the new hub's run (and the new sandbox could take the socket).
    assert not hubkit.pid_alive(crashed_culler) and not hubkit.pid_alive(crashed_sandbox)
    (line,) = [l for l in files["log"].read_text().splitlines() if "stopped services the crashed hub left" in l]
    assert sorted(json.loads(line.rsplit(": ", 1)[1])) == sorted([crashed_culler, crashed_sandbox]), line
    hubkit.wait_for(lambda: _service_of(replacement, "course_hub.sandbox"), 60, what="the new hub's grading sandbox")

    # course-hub --stop (the command rc.local runs, with --stop) stops the launcher and its hub.
    stop = subprocess.run([str(paths.COURSE_HUB), "--stop"], env=env, capture_output=True, text=True, timeout=120)
    assert stop.returncode == 0, stop.stderr
    assert f"stopped the course hub (pid {supervisor})" in stop.stdout
    assert not hubkit.pid_alive(supervisor) and not hubkit.pid_alive(replacement)
    assert not files["pidfile"].exists()
    again = subprocess.run([str(paths.COURSE_HUB), "--stop"], env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "no course hub runs" in again.stdout


def test_pid_files_live_in_the_run_folder_and_old_ones_are_retired(rc_env):
    env, url, files, launched = rc_env
    # Earlier versions kept the pid files in the state folder, which survives a reboot: after a
    # power loss they may name any process, here pid 1. The launcher retires them unread.
    files["state"].mkdir(mode=0o700, parents=True)
    for name in (paths.HUB_PIDFILE, paths.PROXY_PIDFILE):
        (files["state"] / name).write_text("1\n")
    subprocess.run(["sh", str(DEPLOY / "rc.local")], env=env, check=True, capture_output=True, timeout=30)
    supervisor = int(files["pidfile"].read_text())
    launched.append(supervisor)
    hubkit.wait_for(lambda: hubkit.answers_health(url, files["verify"]), 90, what="the hub started by rc.local")
    assert not (files["state"] / paths.HUB_PIDFILE).exists() and not (files["state"] / paths.PROXY_PIDFILE).exists()
    run_dir = hubkit.run_dir_beside(files["state"])
    assert run_dir.stat().st_mode & 0o777 == 0o700
    hub = _hub_child(supervisor)
    assert int((run_dir / paths.HUB_PIDFILE).read_text()) == hub
    proxy = int((run_dir / paths.PROXY_PIDFILE).read_text())
    assert "configurable-http-proxy" in hubkit._cmdline(proxy)
    assert hubkit.pid_alive(1)


def test_a_running_proxys_old_pid_file_moves_to_the_run_folder(tmp_path):
    other = subprocess.Popen(["sleep", "120"])
    try:
        # A stand-in whose command line names the proxy, as a crashed old hub's proxy's does.
        fake = subprocess.Popen(["bash", "-c", "exec -a configurable-http-proxy sleep 120"])  # dash has no -a
        state, run = tmp_path / "state", tmp_path / "run"
        state.mkdir()
        (state / paths.PROXY_PIDFILE).write_text(f"{fake.pid}\n")
        (state / paths.HUB_PIDFILE).write_text(f"{other.pid}\n")
        hubkit.wait_for(lambda: "configurable-http-proxy" in hubkit._cmdline(fake.pid), 60, what="the stand-in")
        messages = []
        launcher.prepare_run_dir(run, state, log=lambda text, **_: messages.append(text))
        assert int((run / paths.PROXY_PIDFILE).read_text()) == fake.pid
        assert not (state / paths.PROXY_PIDFILE).exists() and not (state / paths.HUB_PIDFILE).exists()
        assert not (run / paths.HUB_PIDFILE).exists()  # the hub writes its own at start
        assert messages and "moved the running proxy's pid file" in messages[0]
    finally:
        for process in (other, fake):
            process.kill()
            process.wait()


def test_the_log_is_private_and_rotated_while_the_hub_keeps_logging(rc_env, make_user):
    env, url, files, launched = rc_env
    subprocess.run(["sh", str(DEPLOY / "rc.local")], env=env, check=True, capture_output=True, timeout=30)
    launched.append(int(files["pidfile"].read_text()))
    hubkit.wait_for(lambda: hubkit.answers_health(url, files["verify"]), 90, what="the hub started by rc.local")
    log = files["log"]
    # Root and the adm group only: students cannot read who opens which notebook.
    assert log.stat().st_mode & 0o777 == launcher.LOG_MODE == 0o640
    assert (log.stat().st_uid, log.stat().st_gid) == (0, grp.getgrnam(launcher.LOG_GROUP).gr_gid)
    student, _ = make_user("student")
    read = subprocess.run(["setpriv", f"--reuid={student}", f"--regid={student}", "--init-groups", "cat", str(log)],
                          capture_output=True, text=True)
    assert read.returncode != 0 and "Permission denied" in read.stderr

    backups = [log.with_name(f"{log.name}.{number}") for number in range(1, LOG_BACKUPS + 2)]
    http = hubkit.http_session(files["verify"])

    def log_a_request():
        marker = uuid.uuid4().hex
        assert http.get(f"{url}/hub/login?marker={marker}", timeout=30).status_code == 200
        return marker

    # The hub logs every page it serves: enough pages fill the log past its size several times.
    # At most REQUESTS_PER_SECOND: the supervisor checks the size every LOG_CHECK_SECONDS, so a
    # backup holds the rotation size plus what one check interval adds, at the rate of requests.
    hubkit.wait_for(lambda: log_a_request() and backups[LOG_BACKUPS - 1].exists(), 300,
                    interval=1 / REQUESTS_PER_SECOND, what=f"{log} to be rotated {LOG_BACKUPS} times")
    for _ in range(50):
        log_a_request()
    assert not backups[LOG_BACKUPS].exists(), f"more than {LOG_BACKUPS} old logs are kept"
    for backup in backups[:LOG_BACKUPS]:
        assert backup.stat().st_mode & 0o777 == 0o640 and backup.stat().st_gid == log.stat().st_gid
        # Bounded: the size at which it rotates, plus what one check interval of requests adds
        # (twice over, for slack; a request logs well under LOG_BYTES_PER_REQUEST).
        bound = LOG_MAX_KIB * 1024 + 2 * launcher.LOG_CHECK_SECONDS * REQUESTS_PER_SECOND * LOG_BYTES_PER_REQUEST
        assert backup.stat().st_size < bound, (backup, backup.stat().st_size, bound)
    assert "rotated" in log.read_text() + backups[0].read_text()
    # The hub goes on writing into the log after the rotations.
    marker = log_a_request()
    hubkit.wait_for(lambda: marker in log.read_text(), 30, what="the hub's next line in the rotated log")
