"""Faults: a crashed hub, a killed proxy, an idle server (a kernel asking too much memory:
test_hub_memory.py).

Each test that breaks a hub starts its own (``start_hub``), so the shared one stays healthy.
"""
import os
import signal

import pytest
import requests

from tests.hub import hubkit


@pytest.fixture(scope="module")
def fault_hub(start_hub):
    """A hub of this module's own: the tests below kill its proxy and the hub itself."""
    return start_hub()


@pytest.fixture(scope="module")
def fault_session(fault_hub, make_user):
    """A student with a running server on ``fault_hub``."""
    session = hubkit.HubSession(fault_hub, *make_user("student"))
    session.start_server()
    session.open_server()
    return session


def _server_answers(session):
    try:
        return session.server_api("GET", "/status").status_code == 200
    except requests.RequestException:
        return False


def test_killed_proxy_is_restarted_with_its_routes(fault_hub, fault_session):
    old_proxy = fault_hub.proxy_pid()
    assert old_proxy and hubkit.pid_alive(old_proxy)
    os.kill(old_proxy, signal.SIGKILL)
    # The hub checks its proxy every few seconds, restarts it and puts the routes back.
    new_proxy = hubkit.wait_for(
        lambda: (pid := fault_hub.proxy_pid()) != old_proxy and pid and hubkit.pid_alive(pid) and pid,
        60, what="a new proxy",
    )
    assert new_proxy != old_proxy
    hubkit.wait_for(lambda: _server_answers(fault_session), 60, what="the student's route back")
    assert fault_session.server_ready()


def test_hub_crash_and_restart_keeps_the_students_server_and_kernel(fault_hub, fault_session):
    kernel = fault_session.start_kernel()
    try:
        assert kernel.execute("unsaved = 41; import os; print(os.getppid())")["error"] is None
        server_pid = int(kernel.execute("print(os.getppid())")["stdout"])
        fault_hub.kill()  # SIGKILL: a crash, no clean-up at all
        assert hubkit.pid_alive(server_pid)
        # While the hub is down, the proxy still carries the student's open notebook.
        assert kernel.execute("unsaved + 1")["result"] == "42"
    finally:
        kernel.close()
    fault_hub.start()  # what systemd's Restart=always (or the launcher's --supervise) does
    hubkit.wait_for(lambda: _server_answers(fault_session), 60, what="the student's server after the restart")
    assert fault_session.server_ready()
    # Same server process, same kernel, its unsaved state intact; routed with the same cookie.
    again = hubkit.Kernel(fault_session, fault_session.username, kernel.id)
    try:
        result = again.execute("print(os.getppid()); unsaved")
        assert result["error"] is None, result
        assert result["stdout"].strip() == str(server_pid)
        assert result["result"] == "41"
    finally:
        again.close()
    assert f"{fault_session.username} still running" in fault_hub.log_text()  # found, not respawned


def test_culler_stops_an_idle_server(start_hub, make_user):
    culling_hub = start_hub(settings={"idle_culler": {"timeout_seconds": 10, "every_seconds": 3}})
    session = hubkit.HubSession(culling_hub, *make_user("student"))
    session.start_server()
    server_pid = hubkit.server_pid(session.username)
    hubkit.wait_for(lambda: session.server_model() is None, 90, interval=1, what="the culler")
    hubkit.wait_for(lambda: not hubkit.pid_alive(server_pid), 30, what="the culled server to exit")
    assert "Culling server" in culling_hub.log_text()
