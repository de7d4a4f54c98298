"""Memory per student: one limit for the sum of a student's server and kernels, on real hubs.

Real hub, proxy, PAM students, kernels over their websocket. On this machine the v1 memory
controller is writable, so the local spawner gives each student a memory cgroup
(``course_hub.memory``); the limit here is small (``LIMIT``) so that two kernels of one student
cannot both hold what they ask for.
"""
import re

import pytest
from course_hub import memory
from course_hub import settings as course_settings

from tests.hub import hubkit
from tests.hub.test_hub_browser import CHROMIUM, FLAGS

LIMIT = "1G"
#: Each of the two kernels asks for this share of the limit: one alone fits beside the server
#: (about 150 MB) and two kernels with numpy (about 70 MB each); both together do not.
SHARE = 0.45


@pytest.fixture(scope="module")
def memory_hub(start_hub):
    """A hub whose students have ``LIMIT`` of memory each."""
    return start_hub(settings={"limits": {"memory": LIMIT}})


@pytest.fixture(scope="module")
def cgroup_scope():
    """The cgroup version of this machine; this machine has one, so its absence is a failure."""
    scope = memory.limit_scope("local")
    assert scope in (memory.CGROUP_V1, memory.CGROUP_V2), (
        f"no writable memory cgroup found (scope {scope!r}); this machine mounts the v1 memory "
        "controller read-write, so the local spawner must use it")
    return scope


def test_two_kernels_of_a_student_together_cannot_pass_the_limit(memory_hub, make_user, cgroup_scope):
    student = hubkit.logged_in(memory_hub, make_user("student"))
    other = hubkit.logged_in(memory_hub, make_user("student"))
    cgroup = memory.StudentCgroup(student.username)
    limit = course_settings.parse_byte_size(LIMIT)
    assert cgroup.limit() == limit
    server = hubkit.server_pid(student.username)
    assert server in cgroup.pids()

    neighbour = other.start_kernel()
    try:
        neighbour_pid = int(neighbour.execute("kept = 'mine'; import os; print(os.getpid())")["stdout"])
        kills_before = cgroup.oom_kills()
        killed, survivor = hubkit.crowd_out_a_kernel(student, limit, SHARE)
        kills = cgroup.oom_kills() - kills_before
        # The student's processes never held more than the limit together.
        assert cgroup.peak() <= limit, f"peak {cgroup.peak()} over the limit {limit}"

        # The server lives on (same process) and restarts the killed kernel (both, at times).
        assert hubkit.pid_alive(server) and hubkit.server_pid(student.username) == server
        assert student.server_ready()
        assert student.server_api("GET", "/status").status_code == 200
        restarted, survivor = hubkit.restarted_after_crowding(student, student.username, killed, survivor, kills)
        try:
            for again in restarted:
                answer = again.execute("'block' in dir(), 6 * 7")
                assert answer["result"] == "(False, 42)", answer  # a new kernel, its state gone
        finally:
            for again in restarted:
                again.close()
        if survivor is not None:
            kept = survivor.execute("print(block.nbytes)")
            assert kept["error"] is None and int(kept["stdout"]) == int(SHARE * limit) // 8 * 8
        assert set(cgroup.pids()) >= {server}

        # The other student noticed nothing.
        assert neighbour.execute("kept")["result"] == "'mine'"
        assert hubkit.pid_alive(neighbour_pid) and other.server_ready()
        assert hubkit.answers_health(memory_hub.url, memory_hub.verify, timeout=10)
        # What the top bar's indicator shows (jupyter-resource-usage): use against the limit.
        metrics = student.server_api("GET", "/metrics/v1")
        assert metrics.status_code == 200, metrics.text
        assert metrics.json()["limits"]["memory"]["rss"] == limit
        assert 0 < metrics.json()["rss"] < limit
        # ... without its Prometheus gauges, which nobody scrapes and which cost a scan a second.
        prometheus = student.http.get(f"{memory_hub.url}/user/{student.username}/metrics", timeout=60)
        assert prometheus.status_code == 200, prometheus.text
        assert "# HELP" in prometheus.text, prometheus.text[:500]  # the server's Prometheus page
        assert "total_memory_usage" not in prometheus.text, "jupyter-resource-usage's gauges are on"
    finally:
        neighbour.close()


def test_the_cgroup_goes_with_the_server_and_takes_leftovers(memory_hub, make_user, cgroup_scope):
    student = hubkit.logged_in(memory_hub, make_user("student"))
    cgroup = memory.StudentCgroup(student.username)
    kernel = student.start_kernel()
    try:
        # A process that leaves the kernel's session, as `nohup ... &` in a terminal would.
        started = kernel.execute("import subprocess; p = subprocess.Popen(['sleep', '600'], "
                                 "start_new_session=True); print(p.pid)")
        leftover = int(started["stdout"])
    finally:
        kernel.close()
    assert leftover in cgroup.pids()
    response = student.hub_api("DELETE", f"/users/{student.username}/server")
    assert response.status_code in (202, 204), response.text
    hubkit.wait_for(lambda: student.server_model() is None, 120, what="the server to stop")
    hubkit.wait_for(lambda: not cgroup.path.exists(), 60, what=f"{cgroup.path} to be removed")
    assert not hubkit.pid_alive(leftover)
    # A new start makes it again, with the limit.
    student.start_server()
    assert cgroup.limit() == course_settings.parse_byte_size(LIMIT)
    assert hubkit.server_pid(student.username) in cgroup.pids()


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")
def test_the_student_sees_the_limit_and_why_a_kernel_died(memory_hub, make_user, cgroup_scope, artifacts):
    """In a real browser: the top bar shows the student's memory against the limit; a cell that
    asks for more than the limit kills the kernel, and Notebook 7 says so and restarts it."""
    from playwright.sync_api import expect, sync_playwright

    username, password = make_user("student")
    session = hubkit.logged_in(memory_hub, (username, password))
    limit = course_settings.parse_byte_size(LIMIT)
    notebook = {"type": "notebook", "content": {
        "cells": [{"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
                   "source": f"import numpy as np\nhog = np.ones({limit // 8})  # all of the limit, on top of the rest"}],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4, "nbformat_minor": 5}}
    assert session.server_api("PUT", "/contents/too-much.ipynb", json=notebook).status_code in (200, 201)
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, ignore_https_errors=True)
            page.set_default_timeout(120_000)
            hubkit.browser_login(page, memory_hub.url, username, password)
            page.goto(f"{memory_hub.url}/user/{username}/notebooks/too-much.ipynb")
            # The top bar: "Mem: <use> / <limit> <unit>" (jupyter-resource-usage).
            indicator = page.locator(".jp-IndicatorText").filter(has_text="/").first
            expect(indicator).to_be_visible(timeout=120_000)
            shown = indicator.inner_text()
            assert re.fullmatch(r"\d+(\.\d+)? / 1(\.0+)? GB|\d+(\.\d+)? / 1024(\.0+)? MB", shown.strip()), shown
            expect(page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")).to_be_attached(timeout=120_000)
            page.screenshot(path=str(artifacts / "hub-memory-indicator.png"))
            page.get_by_role("menuitem", name="Run").first.click()
            page.get_by_text("Run All Cells", exact=True).click()
            # The OOM killer ends the kernel; Notebook 7 says it died and restarts it.
            dialog = page.get_by_text("appears to have died", exact=False)
            expect(dialog).to_be_visible(timeout=180_000)
            page.screenshot(path=str(artifacts / "hub-memory-kernel-died.png"))
            assert memory.StudentCgroup(username).oom_kills() >= 1
            expect(indicator).to_be_visible()
        finally:
            browser.close()
