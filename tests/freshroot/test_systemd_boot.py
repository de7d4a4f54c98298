"""The systemd path, for real: a fresh Debian 12 booted with systemd as PID 1 runs the README's
first command, and the hub lives as a systemd service should.

A root from the cached base (with systemd) booted by ``systemd-nspawn --boot``
(:class:`freshroot.BootedRoot`), whose hostname resolves nowhere; the committed tree; the
README's command read from the README, run as written; the hub it starts (the unit
``jupyterhub.service``, SystemdSpawner, real configurable-http-proxy, PAM against the root's
accounts), a student made by the roster tool, the login form, kernels over their websocket. The
container shares this machine's network: its hub listens on free ports, not the machine's own.

In order: the unit is enabled and active, its log in the journal; the student's server runs in a
unit of its own with the memory and CPU limits of the settings; two kernels over the memory
limit: one is killed, the server lives, the kernel comes back; a killed hub is back with exactly
one idle culler; ``systemctl restart`` and a re-install of a changed tree (an upgrade) keep the
student's server and kernel; a reboot brings the hub back and the student in again.
"""
import re
import secrets
import time

import pytest
from course_hub import paths as course_paths
from course_hub import settings as course_settings

from tests.freshroot import freshroot
from tests.hub import hubkit

INSTALL_TIMEOUT = 1500
HUB_TIMEOUT = 180
SPAWN_TIMEOUT = 300
#: Small limits, so that two kernels pass the memory limit quickly and the quota is visible.
LIMITS = {"memory": "1G", "cpu": 0.5}
UNIT = "jupyterhub.service"


def explain(root, install_log):
    """What a failure report needs: the end of the install log and of the hub's journal."""
    try:
        journal = root.output(f"journalctl -u {UNIT} --no-pager -n 60", cwd="/")
    except freshroot.FreshRootError as error:
        journal = str(error)
    return (f"\n---- install log ({install_log}), last lines ----\n{freshroot.tail(install_log)}"
            f"\n---- journal of {UNIT}, last lines ----\n{journal}")


def systemctl_show(root, unit, *properties):
    """``systemctl show`` of ``unit`` inside the root, as a dict."""
    text = root.output(f"systemctl show {unit} " + " ".join(f"-p {p}" for p in properties), cwd="/")
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def cullers(root):
    """Pids (this machine's numbers) of the idle cullers running in the container."""
    return [pid for pid in root.processes() if "jupyterhub_idle_culler" in hubkit._cmdline(pid)]


def hub_main_pid(root):
    return int(systemctl_show(root, UNIT, "MainPID")["MainPID"])


def wait_for_hub(root, url, verify, what):
    hubkit.wait_for(lambda: systemctl_show(root, UNIT, "ActiveState")["ActiveState"] == "active"
                    and hubkit.answers_health(url, verify, timeout=5), HUB_TIMEOUT, interval=1, what=what)


@pytest.mark.timeout(INSTALL_TIMEOUT + 4 * HUB_TIMEOUT + 2 * SPAWN_TIMEOUT + 900)
def test_systemd_runs_the_course_hub_as_a_service(booted_root):
    root = booted_root
    whole = time.monotonic()
    install_log = root.run_dir / "install.log"
    ports = freshroot.HubPorts()
    try:
        assert root.state in ("running", "degraded"), root.state
        # The machine's own name resolves nowhere (as after debootstrap): the hub must not need it.
        assert root.output("hostname", cwd="/").strip() == root.machine
        assert root.output(f"getent hosts {root.machine} || echo unresolved", cwd="/").strip() == "unresolved"

        command = root.readme_command("install-command")
        assert command == "bash deploy/install.sh", f"the README's first command changed: {command!r}"
        freshroot.write_site_settings(root, ports, {"limits": LIMITS})
        started = time.monotonic()
        root.run(command, install_log, timeout=INSTALL_TIMEOUT)
        root.timings["install s"] = round(time.monotonic() - started, 1)
        url, verify = freshroot.hub_url(root, ports)
        started = time.monotonic()
        wait_for_hub(root, url, verify, "the hub's unit to be active and answer over HTTPS")
        root.timings["hub ready s"] = round(time.monotonic() - started, 1)

        # ---- the unit: enabled (so it starts at boot), active, its log in the journal
        assert root.output(f"systemctl is-enabled {UNIT}", cwd="/").strip() == "enabled"
        journal = root.output(f"journalctl -u {UNIT} --no-pager", cwd="/")
        assert "JupyterHub is now running" in journal, journal[-2000:]
        assert not root.path(course_paths.LOG).exists(), "under systemd the hub logs to the journal, not a file"
        assert len(cullers(root)) == 1, f"idle cullers: {cullers(root)}"
        # Pid files under /run (the container's own tmpfs), which a reboot empties; none in the
        # state folder, which survives it.
        proxy = root.output(f"cat {course_paths.RUN_DIR / course_paths.PROXY_PIDFILE}", cwd="/").strip()
        assert "configurable-http-proxy" in root.output(f"cat /proc/{proxy}/cmdline", cwd="/")
        assert not list(root.path(course_paths.STATE_DIR).glob("*.pid"))

        # ---- a student's server in a unit of its own, with the limits of the settings
        username = "boot" + secrets.token_hex(3)
        password = root.add_student(username)
        started = time.monotonic()
        session = hubkit.HubSession(hubkit.HubAddress(url, verify), username, password)
        session.start_server(timeout=SPAWN_TIMEOUT)
        session.open_server()
        root.timings["login to running server s"] = round(time.monotonic() - started, 1)
        server_unit = f"jupyter-{username}-singleuser"
        shown = systemctl_show(root, server_unit, "ActiveState", "MemoryMax", "CPUQuotaPerSecUSec", "MainPID",
                               "ControlGroup")
        limit = course_settings.parse_byte_size(LIMITS["memory"])
        assert shown["ActiveState"] == "active", shown
        assert int(shown["MemoryMax"]) == limit, shown
        assert shown["CPUQuotaPerSecUSec"] == f"{int(LIMITS['cpu'] * 1000)}ms", shown
        # Enforced, not only recorded: the memory controller of the unit's cgroup holds the limit.
        cgroup = f"/sys/fs/cgroup/memory{shown['ControlGroup']}"
        assert int(root.output(f"cat {cgroup}/memory.limit_in_bytes", cwd="/")) == limit
        server_pid = int(shown["MainPID"])

        # ---- over the limit: a kernel is killed, the server lives, the kernel comes back
        started = time.monotonic()
        killed, survivor = hubkit.crowd_out_a_kernel(session, limit)
        oom = root.output(f"cat {cgroup}/memory.oom_control", cwd="/")
        kills = re.search(r"^oom_kill (\d+)$", oom, re.MULTILINE)
        assert kills, oom
        assert int(root.output(f"cat {cgroup}/memory.max_usage_in_bytes", cwd="/")) <= limit
        after = systemctl_show(root, server_unit, "ActiveState", "MainPID")
        assert after == {"ActiveState": "active", "MainPID": str(server_pid)}, after
        restarted, kept = hubkit.restarted_after_crowding(session, username, killed, survivor, int(kills.group(1)))
        # The kernel whose state the hub's restarts below must keep: the survivor, or its restart.
        survivor = kept or restarted[-1]
        for kernel in restarted:
            if kernel is not survivor:
                kernel.close()
        assert survivor.execute("unsaved = 41")["error"] is None
        survivor.close()
        root.timings["memory limit s"] = round(time.monotonic() - started, 1)

        def kernel_kept_its_state():
            # A hub restart restarts the proxy too: the browser (and this test) reconnects.
            kernel = hubkit.Kernel(session, username, survivor.id)
            try:
                return kernel.execute("unsaved + 1")["result"] == "42"
            finally:
                kernel.close()

        # ---- a killed hub comes back (Restart=always) with exactly one idle culler
        started = time.monotonic()
        old_hub, old_cullers = hub_main_pid(root), cullers(root)
        root.output(f"kill -KILL {old_hub}", cwd="/")
        hubkit.wait_for(lambda: hub_main_pid(root) not in (0, old_hub), HUB_TIMEOUT, interval=0.5,
                        what="systemd to start the hub again")
        wait_for_hub(root, url, verify, "the restarted hub")
        hubkit.wait_for(lambda: len(cullers(root)) == 1 and not set(cullers(root)) & set(old_cullers), 60,
                        what=f"one idle culler, not the crashed hub's {old_cullers} (now {cullers(root)})")
        root.timings["killed hub back s"] = round(time.monotonic() - started, 1)

        # ---- systemctl restart keeps the student's server and kernel
        root.output(f"systemctl restart {UNIT}", cwd="/")
        wait_for_hub(root, url, verify, "the hub after systemctl restart")
        assert systemctl_show(root, server_unit, "MainPID")["MainPID"] == str(server_pid)
        assert kernel_kept_its_state()
        assert len(cullers(root)) == 1

        # ---- an upgrade: the README's command again, on a changed tree, restarts the hub on it
        started = time.monotonic()
        shared = root.path(f"{freshroot.CHECKOUT}/deploy/hub-settings.yaml")
        shared.write_text(shared.read_text().replace("every_seconds: 300", "every_seconds: 299"))
        before = hub_main_pid(root)
        root.run(command, install_log, timeout=INSTALL_TIMEOUT)
        wait_for_hub(root, url, verify, "the upgraded hub")
        assert hub_main_pid(root) != before, "the re-install left the old hub running"
        assert ["--cull-every=299" in hubkit._cmdline(pid) for pid in cullers(root)] == [True]
        assert systemctl_show(root, server_unit, "MainPID")["MainPID"] == str(server_pid)
        assert kernel_kept_its_state()
        root.timings["upgrade s"] = round(time.monotonic() - started, 1)

        # ---- a reboot: the hub is back (enabled at boot), the student gets in again
        started = time.monotonic()
        root.output("systemctl reboot", cwd="/")
        assert root.wait_for_power_off() == freshroot.REBOOT_STATUS
        root.boot()
        wait_for_hub(root, url, verify, "the hub after a reboot")
        session = hubkit.HubSession(hubkit.HubAddress(url, verify), username, password)
        session.start_server(timeout=SPAWN_TIMEOUT)
        assert systemctl_show(root, server_unit, "ActiveState")["ActiveState"] == "active"
        assert len(cullers(root)) == 1
        root.timings["reboot to running server s"] = round(time.monotonic() - started, 1)
    except BaseException as error:
        error.add_note(explain(root, install_log))
        raise
    finally:
        root.timings["test s"] = round(time.monotonic() - whole, 1)
