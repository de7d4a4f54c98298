"""The instructor status table, the install step of the course repository, and the hub hooks,
without a hub."""
import datetime
import grp
import os
import stat
import sys
import types

import pytest
from course_hub import accounts, gitutil, hooks, repository, spawner, status

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
    # Running means ready; the memory of a server still starting is counted apart.
    assert table.splitlines()[-1] == ("1 of 4 user(s) with a running server, 1 starting or stopping; 300 MB in "
                                      "their processes, 300 MB per running server; 150 MB in other users' processes")
    assert status.summary_line(status.build_rows([user_model("amy", [])], {}, now=NOW)) == (
        "0 of 1 user(s) with a running server; 0 MB in their processes")


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
    monkeypatch.setattr(accounts, "is_member", lambda user, group: user == "prof")
    scopes = hooks.make_server_token_scopes("staff", ["list:users"])
    server = lambda name: types.SimpleNamespace(user=types.SimpleNamespace(name=name))  # noqa: E731
    assert scopes(server("prof")) == ["users:activity!user", "access:servers!server", "list:users"]
    assert scopes(server("amy")) == ["users:activity!user", "access:servers!server"]


def test_group_membership_counts_primary_and_supplementary_groups(people):
    assert accounts.is_member("root", "no-such-group-x1") is False
    assert accounts.is_member("no-such-user-x1", "root") is False
    assert accounts.is_member("root", grp.getgrgid(0).gr_name) is True  # root's primary group
    assert accounts.is_member(people["instructor"], people["group"]) is True  # a supplementary one
    assert accounts.member_groups(people["instructor"], ["no-such-group-x1", people["group"]]) == [people["group"]]
    assert accounts.member_groups(people["student"], [people["group"]]) == []


def test_chain_hooks_runs_sync_and_async_in_order():
    import asyncio

    seen = []

    async def first(spawner):
        seen.append(("async", spawner))

    chained = hooks.chain_hooks(first, lambda spawner: seen.append(("sync", spawner)))
    asyncio.run(chained("s"))
    assert seen == [("async", "s"), ("sync", "s")]


def test_setup_seeds_once_secures_and_trusts_the_repository(scratch, people, monkeypatch):
    # git's system configuration of this test only: setup marks the repository safe there.
    gitconfig = scratch / "gitconfig"
    monkeypatch.setenv("GIT_CONFIG_SYSTEM", str(gitconfig))
    seed = scratch / "seed"
    seed.mkdir()
    (seed / "a.ipynb").write_text("{}")
    repo = scratch / "course.git"
    groups = {"students": people["group"], "instructors": people["group"]}
    with pytest.raises(ValueError, match="seed: expected a folder of course material, got"):
        repository.setup(repo, groups, seed=scratch / "missing")
    assert not repo.exists()  # refused before anything changed
    done = repository.setup(repo, groups, seed=seed)
    assert done["seeded"] and done["trusted"] and done["groups_created"] == []
    hook = (repo / "hooks" / "pre-receive").read_text()
    assert hook.startswith(f"#!{sys.executable}\n") and "from course_hub.hook import main" in hook
    assert "sys.path" not in hook
    assert (repo / "config").stat().st_uid == 0 and stat.S_IMODE((repo / "config").stat().st_mode) == 0o644
    assert stat.S_IMODE(repo.stat().st_mode) == 0o3775 and repo.stat().st_gid == grp.getgrnam(people["group"]).gr_gid
    assert str(repo) in gitutil.git("config", "--system", "--get-all", "safe.directory").splitlines()
    # Again, with other material: nothing seeded over what is published, nothing trusted twice.
    (seed / "b.ipynb").write_text("{}")
    again = repository.setup(repo, groups, seed=seed)
    assert again == {"groups_created": [], "seeded": None, "trusted": False}
    assert gitutil.git("ls-tree", "--name-only", "main", cwd=repo).split() == [".gitignore", "a.ipynb"]


def test_server_ports_avoid_the_kernels_ephemeral_range():
    # Found by the load test: a kernel's ZMQ socket took the port picked for a starting server.
    import socket

    low, high = (int(x) for x in open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
    assert spawner.SERVER_PORTS.stop <= low
    port = spawner.pick_server_port()
    assert port in spawner.SERVER_PORTS
    with socket.socket() as busy:
        busy.bind(("", 0))
        taken = busy.getsockname()[1]
        tiny = range(taken, taken + 1)
        with pytest.raises(RuntimeError, match=f"no free port for a student server in {taken}-{taken}"):
            spawner.pick_server_port(tiny, attempts=5)
    free = spawner.pick_server_port(range(20000, 20002), taken={20000})
    assert free == 20001


def test_stopping_a_users_processes_ends_them_all_by_pid(people, scratch):
    import pwd
    import subprocess
    import time

    import psutil

    account = pwd.getpwnam(people["other"])
    folder = scratch / "signals"
    folder.mkdir()
    os.chown(folder, account.pw_uid, account.pw_gid)
    as_other = {"user": account.pw_uid, "group": account.pw_gid}
    # One leaves on SIGTERM and says so; the other ignores SIGTERM: only SIGKILL ends it. Each
    # says when its trap is set, so the signals cannot arrive before.
    polite = subprocess.Popen(["sh", "-c", f"trap 'echo TERM > {folder}/polite; exit 0' TERM; "
                               f": > {folder}/polite-ready; sleep 600 & wait"], **as_other)
    stubborn = subprocess.Popen(["sh", "-c", f"trap '' TERM; : > {folder}/stubborn-ready; sleep 600 & wait"],
                                **as_other)
    try:
        deadline = time.monotonic() + 60
        while not ((folder / "polite-ready").exists() and (folder / "stubborn-ready").exists()):
            assert time.monotonic() < deadline, "the two shells did not start within 60 s"
            time.sleep(0.1)
        stopped = accounts.stop_processes_of(people["other"], grace=1)
        assert {polite.pid, stubborn.pid} <= set(stopped)
        assert (folder / "polite").read_text() == "TERM\n"  # SIGTERM first
        assert not any(psutil.pid_exists(pid) for pid in stopped)  # the stubborn one too: SIGKILL
        assert accounts.stop_processes_of(people["other"]) == []
        assert accounts.stop_processes_of("no-such-user-x1") == []
        with pytest.raises(ValueError, match="user: expected a user's account, got root"):
            accounts.stop_processes_of(0)
    finally:
        for process in (polite, stubborn):
            if process.poll() is None:
                process.kill()
