"""Students' servers forked by the hub's warm starter (course_hub.warmstart), on a real hub.

Real hub and proxy, PAM students, a kernel over its websocket, a terminal through the server's
API. What an executed server would be, the forked one is: the student's ids and groups, its own
session at the students' priority, the home folder, only its own files open, the environment the
hub gives it (a kernel started from it shows it), its cookie path; and what only a forked one
could get wrong: no student can read its memory, and the warm starter's death or a second one
changes nothing for servers.
"""
import json
import os
import pathlib
import pwd
import signal
import subprocess

import pytest
from course_hub import launcher, serverprocess

from tests.hub import hubkit

WARM_STARTER = "course_hub.warmstart"


@pytest.fixture(scope="module")
def warm_hub(start_hub):
    return start_hub()


def _status(pid):
    fields = {}
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.split()
    return fields


def _warm_starters(hub):
    """The hub's children that are warm starters (the hub starts them from its event loop's thread)."""
    children = pathlib.Path(f"/proc/{hub.pid}/task/{hub.pid}/children").read_text().split()
    return [int(pid) for pid in children if WARM_STARTER in hubkit._cmdline(int(pid))]


def _fd_targets(pid):
    targets = {}
    for fd in pathlib.Path(f"/proc/{pid}/fd").iterdir():
        try:
            targets[int(fd.name)] = os.readlink(fd)
        except OSError:
            continue
    return targets


def test_a_forked_server_is_set_up_as_an_executed_one(warm_hub, make_user):
    session = hubkit.logged_in(warm_hub, make_user("student"))
    name = session.username
    user = pwd.getpwnam(name)
    server = hubkit.server_pid(name)

    # Forked by this hub's warm starter, a root process started by the hub.
    [starter] = _warm_starters(warm_hub)
    assert launcher._parent(server) == starter
    assert _status(starter)["Uid"][0] == "0"
    assert f"{name}'s server forked by the warm starter: pid {server}" in warm_hub.log_text()

    # ps shows the command it stands for, with the student's values the warm starter's imports
    # could not know: its URL (the path of its _xsrf cookie) and the user name of its kernels'
    # messages.
    command = hubkit._cmdline(server)
    assert "jupyterhub-singleuser" in command and f"--HubAuth.base_url=/user/{name}/" in command
    assert f"--Session.username={name}" in command
    assert [c.path for c in session.http.cookies if c.name == "_xsrf" and c.path.startswith("/user/")] == [
        f"/user/{name}/"]

    # The student's ids (real, effective, saved, filesystem) and groups; its own session; nice 10.
    status = _status(server)
    assert status["Uid"] == [str(user.pw_uid)] * 4 and status["Gid"] == [str(user.pw_gid)] * 4
    assert sorted(map(int, status["Groups"])) == sorted(set(os.getgrouplist(name, user.pw_gid)))
    assert os.getsid(server) == server
    assert os.getpriority(os.PRIO_PROCESS, server) == serverprocess.SERVER_NICE
    assert os.readlink(f"/proc/{server}/cwd") == user.pw_dir

    # Standard input from /dev/null, output to the hub's log, nothing of the warm starter's.
    fds = _fd_targets(server)
    assert fds[0] == "/dev/null"
    assert fds[1] == fds[2] == str(warm_hub.log_path)
    starter_pipes = {target for number, target in _fd_targets(starter).items() if number in (0, 1)}
    assert starter_pipes and not starter_pipes & set(fds.values()), "the server holds the warm starter's pipe"

    # A kernel it starts has the server's environment: the hub's for this server, no other.
    kernel = session.start_kernel()
    try:
        out = kernel.execute("import os, json; print(json.dumps(dict(os.environ)))")
    finally:
        kernel.close()
    environment = json.loads(out["stdout"])
    assert environment["JUPYTERHUB_SERVICE_PREFIX"] == f"/user/{name}/"
    assert environment["USER"] == name and environment["HOME"] == user.pw_dir
    hubs_own = {"PYTHONPATH", "DLCOURSE_SETTINGS"}
    assert hubs_own <= set(warm_hub.env)
    assert not hubs_own & set(environment), f"the hub's variables reached the server: {hubs_own & set(environment)}"


def test_no_student_can_read_a_forked_servers_memory(warm_hub, make_user):
    """The server gave up root without executing a program: the kernel keeps it undumpable, so
    even its own student cannot read its memory or environment (it holds the warm starter's
    copy, the hash seed every server shares among it)."""
    session = hubkit.logged_in(warm_hub, make_user("student"))
    server = hubkit.server_pid(session.username)
    user = pwd.getpwnam(session.username)
    as_student = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups", "cat"]
    for private in ("mem", "environ"):
        read = subprocess.run([*as_student, f"/proc/{server}/{private}"], capture_output=True, timeout=60)
        assert read.returncode != 0 and b"Permission denied" in read.stderr, (private, read)
    # What the memory indicator reads stays public.
    public = subprocess.run([*as_student, f"/proc/{server}/statm"], capture_output=True, timeout=60)
    assert public.returncode == 0 and public.stdout.split(), public


def test_servers_outlive_the_warm_starter_and_the_next_start_makes_a_new_one(warm_hub, make_user):
    first = hubkit.logged_in(warm_hub, make_user("student"))
    server = hubkit.server_pid(first.username)
    [starter] = _warm_starters(warm_hub)
    os.kill(starter, signal.SIGKILL)
    hubkit.wait_for(lambda: launcher._read_proc(starter, "stat").rsplit(b")", 1)[-1].split()[:1] in ([], [b"Z"]),
                    60, what="the warm starter's end (gone, or a zombie the hub has yet to reap)")

    # The server it forked lives on and serves its student.
    assert hubkit.pid_alive(server)
    assert first.server_api("GET", "/status").status_code == 200

    # The next login gets a server from a new warm starter.
    second = hubkit.logged_in(warm_hub, make_user("student"))
    [new_starter] = _warm_starters(warm_hub)
    assert new_starter != starter and launcher._parent(hubkit.server_pid(second.username)) == new_starter
    assert second.server_api("GET", "/status").status_code == 200


def test_a_stopped_server_is_gone_not_a_zombie(warm_hub, make_user):
    """The hub follows a forked server by its pid; the warm starter reaps it when it ends, so
    the hub sees it stop (a zombie would look alive to it)."""
    session = hubkit.logged_in(warm_hub, make_user("student"))
    server = hubkit.server_pid(session.username)
    response = session.hub_api("DELETE", f"/users/{session.username}/server")
    assert response.status_code in (202, 204), response.text
    hubkit.wait_for(lambda: not pathlib.Path(f"/proc/{server}").exists(), 120, what=f"server {server} gone")
    hubkit.wait_for(lambda: session.hub_api("GET", f"/users/{session.username}").json()["servers"] == {},
                    120, what="the hub seeing the server stopped")


def test_with_warm_starts_off_servers_are_executed_by_the_hub(start_hub, make_user):
    """``server.warm_start: false``: each server is executed as JupyterHub's local spawner does,
    with the same set-up (the path a server also takes when the warm starter cannot start it)."""
    cold_hub = start_hub(settings={"server": {"warm_start": False}})
    session = hubkit.logged_in(cold_hub, make_user("student"))
    name = session.username
    server = hubkit.server_pid(name)
    assert launcher._parent(server) == cold_hub.pid and not _warm_starters(cold_hub)
    assert "forked by the warm starter" not in cold_hub.log_text()
    user = pwd.getpwnam(name)
    status = _status(server)
    assert status["Uid"] == [str(user.pw_uid)] * 4
    assert os.getsid(server) == server and os.getpriority(os.PRIO_PROCESS, server) == serverprocess.SERVER_NICE
    kernel = session.start_kernel()
    try:
        assert kernel.execute("6 * 7")["result"] == "42"
    finally:
        kernel.close()

