"""What jupyter-resource-usage (the memory indicator in Notebook 7's top bar) costs a server's start.

Starts a Jupyter server of the course virtualenv (the server a student's ``jupyterhub-singleuser``
is, with Notebook 7) again and again, alternately with the extension as the course runs it (its
Prometheus gauges off, as jupyterhub_config.py starts students' servers) and without it (its
server extension switched off, the peer), and measures, from the start to the first answer of
``/api/status``: the CPU seconds of the server process and the wall time; then the CPU the
server spends idle over ``--idle`` seconds (a server left open while its student reads); then,
with the extension, what one answer of the indicator's endpoint (``/api/metrics/v1``) costs, as
the top bar asks it every 5 s. Prints medians and the ratio with/without.

Run with the course virtualenv's Python, from the checkout's root::

    /opt/dlcourse/venv/bin/python bench/server_start_cost.py [--runs 7]
"""
import argparse
import json
import os
import pathlib
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

import psutil

EXTENSION = "jupyter_resource_usage"
# As jupyterhub_config.py starts the students' servers: without the extension's Prometheus gauges.
COURSE_SETTING = "--ResourceUseDisplay.enable_prometheus_metrics=False"


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(url, token, timeout=2):
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, response.read()


def one_start(with_extension, folder, idle_seconds):
    """CPU seconds and wall seconds to a ready server, its idle CPU seconds over ``idle_seconds``,
    and the CPU seconds of one metrics answer."""
    port, token = free_port(), secrets.token_hex(16)
    command = [str(pathlib.Path(sys.executable).parent / "jupyter-server"), "--no-browser", "--allow-root",
               f"--port={port}", "--ip=127.0.0.1", f"--ServerApp.token={token}", f"--ServerApp.root_dir={folder}"]
    if with_extension:
        command.append(COURSE_SETTING)
    else:
        command.append(f'--ServerApp.jpserver_extensions={{"{EXTENSION}": False}}')
    started = time.perf_counter()
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "MEM_LIMIT": str(2 * 2**30)})
    process = psutil.Process(server.pid)
    try:
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"the server exited with {server.returncode}")
            try:
                if get(f"http://127.0.0.1:{port}/api/status", token)[0] == 200:
                    break
            except OSError:
                time.sleep(0.05)
        wall = time.perf_counter() - started
        cpu = sum(process.cpu_times()[:2])
        time.sleep(idle_seconds)
        idle = sum(process.cpu_times()[:2]) - cpu
        metrics = None
        if with_extension:
            before = sum(process.cpu_times()[:2])
            status, body = get(f"http://127.0.0.1:{port}/api/metrics/v1", token, timeout=30)
            answer = json.loads(body)
            assert status == 200 and answer["limits"]["memory"]["rss"] == 2 * 2**30, answer
            metrics = sum(process.cpu_times()[:2]) - before
        return cpu, wall, idle, metrics
    finally:
        server.terminate()
        server.wait(30)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="starts of each kind (default: %(default)s)")
    parser.add_argument("--idle", type=float, default=10, help="seconds idle after the start (default: %(default)s)")
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="server-start-")
    results = {True: [], False: []}
    one_start(True, folder, 0)  # warm the page cache for both kinds
    for _ in range(args.runs):
        for kind in (True, False):  # alternately, so that the machine's load hits both alike
            results[kind].append(one_start(kind, folder, args.idle))
    print(f"load average at the end: {os.getloadavg()[0]:.1f}; {args.runs} starts of each kind")
    for kind, label in ((True, "with jupyter-resource-usage"), (False, "without (peer)")):
        cpu = statistics.median(r[0] for r in results[kind])
        wall = statistics.median(r[1] for r in results[kind])
        idle = statistics.median(r[2] for r in results[kind])
        print(f"{label:30s} median CPU to ready {cpu:.2f} s, median wall {wall:.2f} s, "
              f"idle CPU {1000 * idle:.0f} ms in {args.idle:g} s")
    cpu_ratio = statistics.median(r[0] for r in results[True]) / statistics.median(r[0] for r in results[False])
    wall_ratio = statistics.median(r[1] for r in results[True]) / statistics.median(r[1] for r in results[False])
    metrics = statistics.median(r[3] for r in results[True])
    print(f"ratio with/without: CPU {cpu_ratio:.2f}, wall {wall_ratio:.2f}; one /api/metrics/v1 answer "
          f"(what the top bar asks every 5 s): median {1000 * metrics:.0f} ms CPU")


if __name__ == "__main__":
    main()
