"""An upgrade without systemd: the README's first command, run again, restarts the hub that
rc.local started, on what was just installed and with the settings as they now are, and the
students' servers and kernels live on.

The hub is this test's own (its site settings name free ports, a state folder, a course
repository and the log of its own, given to the install through ``DLCOURSE_SETTINGS``), started
the way a machine boots (``deploy/rc.local``); it runs the installed package, as after an install.
Under systemd the same is checked in a booted root (tests/freshroot/test_systemd_boot.py).
"""
import subprocess

import pytest
from course_hub import launcher, paths
from course_hub import settings as course_settings

from tests.hub import hubkit

DEPLOY = hubkit.REPO_ROOT / "deploy"


@pytest.fixture
def installed_hub(tmp_path, make_course):
    """Environment and files of a hub of this test, run from the installed package."""
    # A course repository of its own where students can clone it from (pytest's tmp_path is
    # root's alone), and a git system configuration trusting it (the install's is /etc/gitconfig).
    _, repo, gitconfig = make_course(f"upgrade-{tmp_path.name}")
    port = hubkit.free_port()
    site = hubkit.hub_settings(port, hubkit.free_port(), tmp_path / "state", repo, {"server": {
        "log": str(tmp_path / "log" / "jupyterhub.log"), "pidfile": str(tmp_path / "run" / "hub.pid")}})
    settings_file = hubkit.write_settings(tmp_path / "settings.yaml", site)
    env = {name: value for name, value in hubkit.hub_environment(settings_file).items() if name != "PYTHONPATH"}
    env["GIT_CONFIG_SYSTEM"] = str(gitconfig)
    url, verify = hubkit.hub_address(course_settings.load_settings(settings_file)["server"], port)
    hub = {"env": env, "url": url, "verify": verify, "settings": settings_file, "site": site,
           "pidfile": tmp_path / "run" / "hub.pid", "log": tmp_path / "log" / "jupyterhub.log"}
    yield hub
    subprocess.run([str(paths.COURSE_HUB), "--stop"], env=env, capture_output=True, timeout=120)
    launcher.stop_pids(launcher.orphaned_services(site["server"]["hub_api_port"]))


def _culler_arguments(api_port):
    """The command lines of the idle cullers of the hub whose API listens on ``api_port``."""
    lines = [hubkit._cmdline(pid) for pid in launcher.managed_services(api_port)]
    return [line for line in lines if "jupyterhub_idle_culler" in line]  # not the grading sandbox


def test_rerunning_the_install_restarts_the_hub_and_keeps_students_working(installed_hub, make_user):
    env, url = installed_hub["env"], installed_hub["url"]
    boot = subprocess.run(["sh", str(DEPLOY / "rc.local")], env=env, capture_output=True, text=True, timeout=60)
    assert boot.returncode == 0, boot.stderr
    old_launcher = int(installed_hub["pidfile"].read_text())
    hub = hubkit.HubAddress(url, installed_hub["verify"])
    hubkit.wait_for(lambda: hubkit.answers_health(url, hub.verify), 120, what="the hub rc.local started")
    session = hubkit.HubSession(hub, *make_user("student"))
    session.start_server()
    session.open_server()
    kernel = session.start_kernel()
    try:
        server_pid = int(kernel.execute("unsaved = 41; import os; print(os.getppid())")["stdout"])
    finally:
        kernel.close()
    api_port = installed_hub["site"]["server"]["hub_api_port"]
    assert [("--cull-every=300" in line) for line in _culler_arguments(api_port)] == [True]

    # The operator changes a setting; the README's first command installs and restarts.
    settings = installed_hub["settings"]
    settings.write_text(settings.read_text() + "idle_culler:\n  every_seconds: 299\n")
    command = subprocess.run(["bash", ".ci/readme-command", "install-command", "README.md"], cwd=hubkit.REPO_ROOT,
                             capture_output=True, text=True, check=True).stdout.strip()
    assert command == "bash deploy/install.sh"
    install = subprocess.run(["bash", "-c", command], cwd=hubkit.REPO_ROOT, env=env, capture_output=True,
                             text=True, timeout=1500)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    assert f"stopped the course hub (pid {old_launcher})" in install.stdout, install.stdout[-2000:]
    new_launcher = int(installed_hub["pidfile"].read_text())
    assert new_launcher != old_launcher and not hubkit.pid_alive(old_launcher)
    hubkit.wait_for(lambda: hubkit.answers_health(url, hub.verify), 120, what="the restarted hub")
    # The new hub reads the settings as they are now.
    hubkit.wait_for(lambda: [("--cull-every=299" in line) for line in _culler_arguments(api_port)] == [True], 60,
                    what="one idle culler, of the new configuration")
    # The student's server and the kernel's unsaved state survived; the new hub found the server.
    assert hubkit.pid_alive(server_pid)
    assert session.server_ready()
    again = hubkit.Kernel(session, session.username, kernel.id)
    try:
        result = again.execute("print(os.getppid()); unsaved + 1")
        assert result["result"] == "42" and int(result["stdout"]) == server_pid, result
    finally:
        again.close()
    assert f"{session.username} still running" in installed_hub["log"].read_text()
