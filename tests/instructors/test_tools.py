"""The instructor status table, the installer of the commands, and the hub hooks, without a hub."""
import datetime
import os
import stat
import subprocess
import sys
import types

import pytest

import inst_helpers  # noqa: F401  (makes deploy/ importable)
from course_admin import hub_hooks, install, status

NOW = datetime.datetime(2026, 11, 28, 14, 0, tzinfo=datetime.timezone.utc)


def user_model(name, groups, server=None, activity=None):
    return {"name": name, "groups": groups, "last_activity": activity,
            "servers": {"": server} if server else {}}


def test_rows_order_running_first_and_show_memory_and_activity():
    users = [
        user_model("amy", ["dl-students"]),
        user_model("bob", ["dl-students"], {"ready": True, "last_activity": "2026-11-28T13:55:00Z"}),
        user_model("cid", ["dl-students"], {"ready": False, "pending": "spawn", "last_activity": None},
                   activity="2026-11-28T13:59:30Z"),
        user_model("dee", ["dl-students"], activity="2026-11-26T09:00:00Z"),
    ]
    memory = {"bob": (300 * 2**20, 3), "cid": (150 * 2**20, 1)}
    rows = status.build_rows(users, memory, now=NOW)
    assert [r["name"] for r in rows] == ["cid", "bob", "dee", "amy"]
    by_name = {r["name"]: r for r in rows}
    assert by_name["bob"]["server"] == "ready" and by_name["bob"]["ago"] == "5 min ago"
    assert by_name["bob"]["memory_mb"] == 300.0 and by_name["bob"]["processes"] == 3
    assert by_name["cid"]["server"] == "spawn" and by_name["cid"]["ago"] == "30 s ago"
    assert by_name["dee"]["ago"] == "2 days ago" and by_name["amy"]["ago"] == "never"
    table = status.format_table(rows)
    assert table.splitlines()[0].split() == ["user", "groups", "server", "last", "active", "memory", "MB", "procs"]
    assert table.splitlines()[-1] == "2 of 4 server(s) running; 450 MB in users' processes, 225 MB per running server"


def test_memory_by_user_sees_this_process():
    me = status.pwd.getpwuid(os.getuid()).pw_name
    rss, count = status.memory_by_user()[me]
    assert rss > 10 * 2**20 and count >= 1


def test_status_refusals():
    with pytest.raises(status.StatusError, match="token must be a hub API token"):
        status.fetch_users("http://127.0.0.1:9/hub/api", "")
    with pytest.raises(status.StatusError, match="cannot reach the hub at http://127.0.0.1:9/hub/api"):
        status.fetch_users("http://127.0.0.1:9/hub/api", "abc", timeout=2)


def test_server_token_scopes_only_widen_for_instructors(monkeypatch):
    monkeypatch.setattr(hub_hooks, "is_member", lambda user, group: user == "prof")
    scopes = hub_hooks.make_server_token_scopes("staff", ["list:users"])
    spawner = lambda name: types.SimpleNamespace(user=types.SimpleNamespace(name=name))  # noqa: E731
    assert scopes(spawner("prof")) == ["users:activity!user", "access:servers!server", "list:users"]
    assert scopes(spawner("amy")) == ["users:activity!user", "access:servers!server"]
    assert hub_hooks.is_member("root", "no-such-group-x1") is False


def test_chain_hooks_runs_sync_and_async_in_order():
    import asyncio

    seen = []

    async def first(spawner):
        seen.append(("async", spawner))

    chained = hub_hooks.chain_hooks(first, lambda spawner: seen.append(("sync", spawner)))
    asyncio.run(chained("s"))
    assert seen == [("async", "s"), ("sync", "s")]


def test_install_writes_commands_and_secures_the_repository(scratch, people):
    prefix = scratch / "prefix"
    (prefix / "venv" / "bin").mkdir(parents=True)
    (prefix / "venv" / "bin" / "python").symlink_to(sys.executable)
    repo = scratch / "course.git"
    admin = install.install(prefix, repo, people["group"])
    assert (admin / "course_admin" / "publish.py").exists()
    for command in install.COMMANDS:
        path = prefix / "venv" / "bin" / command
        assert stat.S_IMODE(path.stat().st_mode) == 0o755
        shown = subprocess.run([str(path), "--help"], capture_output=True, text=True, timeout=60)
        assert shown.returncode == 0 and f"usage: {command}" in shown.stdout
    hook = (repo / "hooks" / "pre-receive").read_text()
    assert str(admin) in hook and str(prefix / "venv" / "bin" / "python") in hook
    assert (repo / "config").stat().st_uid == 0 and stat.S_IMODE((repo / "config").stat().st_mode) == 0o644
    with pytest.raises(ValueError, match="prefix must hold the course virtualenv"):
        install.install(scratch / "nowhere", repo, people["group"])


def test_server_ports_avoid_the_kernels_ephemeral_range():
    # Found by the load test: a kernel's ZMQ socket took the port picked for a starting server.
    import socket

    import course_hub

    low, high = (int(x) for x in open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
    assert course_hub.SERVER_PORTS.stop <= low
    port = course_hub.pick_server_port()
    assert port in course_hub.SERVER_PORTS
    with socket.socket() as busy:
        busy.bind(("", 0))
        taken = busy.getsockname()[1]
        tiny = range(taken, taken + 1)
        with pytest.raises(RuntimeError, match=f"no free port for a student server in {taken}-{taken}"):
            course_hub.pick_server_port(tiny, attempts=5)
    free = course_hub.pick_server_port(range(20000, 20002), taken={20000})
    assert free == 20001
