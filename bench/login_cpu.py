"""Where the CPU of one student's login goes: server start, each server extension, the kernel,
the course cell, the course sync, and the imports that dominate them.

``bench/load_test.py`` measures the CPU seconds a whole class costs; this splits one login into
its parts, each measured by the processor time (user + system, children included) of the
process that does it, so a busy machine changes the figures little (unlike wall time):

- **server start**: a Jupyter server from the course virtualenv, with the hub configuration's
  arguments (``Spawner.args``), until it has answered Notebook 7's file browser; then once with
  every installed server extension enabled (the peer: what a start cost before), and once
  with each extension left out, so each extension's share shows. (``jupyterhub-singleuser`` is
  this server plus the hub's own extension; it cannot run without a hub.) This is the cost of an
  executed server; the hub's local spawner forks servers from its warm starter
  (``course_hub.warmstart``), which has imported all this once: what a forked server still
  costs is in ``bench/load_test.py``'s split of the students' CPU by process.
- **kernel start** and **course cell**: a python3 kernel (ipykernel), then ``bench/load_test.py``'s
  course cell in it.
- **course sync**: ``python -m nbgitpuller.pull`` cloning the course, then pulling it again
  (nbgitpuller's git commands; a landing on a server runs them from the server's own process,
  without this interpreter's start).
- **imports**: ``python -c "import X"`` for the modules that dominate the above.

Run with the course virtualenv's Python, from the checkout's root (no hub, no lock needed)::

    python -m bench.login_cpu [--runs 3]

Everything runs in a temporary folder, removed at the end; every server and kernel is stopped.
"""
import argparse
import contextlib
import os
import pathlib
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import psutil
from course_hub import grading, paths

from bench.load_test import COURSE_CELL, EXPECTED_RESULT

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
#: A student's Jupyter configuration, as the hub points their server at it (course_hub.grading).
STUDENT_CONFIG = paths.ROLE_CONFIG / grading.STUDENT
VENV_BIN = pathlib.Path(sys.executable).parent
IMPORTS = ("jupyterhub.singleuser", "jupyter_server.serverapp", "jsonschema", "rfc3987_syntax", "jupyter_events", "notebook.app",
           "jupyterlab", "jupyter_lsp", "ipykernel.kernelapp", "course_lib", "nbgitpuller.pull")


def spawner_args(home):
    """The arguments the hub gives a server whose user's home is ``home``.

    ``c.Spawner.args`` of the checkout's jupyterhub_config.py (run as the hub runs it, with the
    shared settings), and the kernels' transport that its pre-spawn hook adds.
    """
    from course_hub import hooks
    from traitlets.config import Config

    config_file = REPO_ROOT / "jupyterhub_config.py"
    config = Config()
    exec(compile(config_file.read_text(), str(config_file), "exec"),
         {"get_config": lambda: config, "__file__": str(config_file)})
    args = config.Spawner.args
    # ``c.Spawner.args.append(...)`` leaves a lazy value until a Spawner reads it
    args = list(args.get_value([]) if hasattr(args, "get_value") else args)
    if hooks.kernel_sockets_fit(str(home)):
        args.append(hooks.KERNEL_IPC_ARG)
    return args


def installed_extensions():
    """Names of the server extensions the virtualenv enables (``jupyter server extension list``)."""
    listing = subprocess.run([str(VENV_BIN / "jupyter"), "server", "extension", "list"],
                             capture_output=True, text=True, timeout=300)
    names = []
    for line in (listing.stdout + listing.stderr).splitlines():
        words = line.split()
        if len(words) >= 2 and "enabled" in words[1]:
            names.append(words[0])
    return names


def cpu_seconds(process):
    """User + system seconds of a psutil process and the children it has reaped."""
    times = process.cpu_times()
    return times.user + times.system + times.children_user + times.children_system


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_start_cpu(workdir, args, config_path=STUDENT_CONFIG, timeout=300):
    """CPU seconds of a Jupyter server from its start until it has served Notebook 7's tree page.

    ``config_path``: the folder of ``JUPYTER_CONFIG_PATH`` (a student's, as the hub gives it), or None.
    """
    port = free_port()
    command = [str(VENV_BIN / "jupyter-server"), "--no-browser", f"--port={port}", "--ServerApp.token=bench",
               f"--ServerApp.root_dir={workdir}", *args]
    if os.geteuid() == 0:
        command.append("--allow-root")
    env = {**os.environ, "HOME": str(workdir)}
    if config_path is not None:
        env["JUPYTER_CONFIG_PATH"] = str(config_path)
    server = subprocess.Popen(command, env=env, cwd=workdir,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"the server exited with {server.returncode}: {' '.join(command)}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/tree?token=bench", timeout=60).read()
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the server did not answer within {timeout} s") from None
                time.sleep(0.2)
        return cpu_seconds(psutil.Process(server.pid))
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def kernel_cpu():
    """CPU seconds of a kernel's start and of the course cell in it: ``(start, cell)``."""
    from jupyter_client.manager import start_new_kernel

    manager, client = start_new_kernel(kernel_name="python3")
    try:
        process = psutil.Process(manager.provisioner.process.pid)
        started = cpu_seconds(process)
        results = []
        reply = client.execute_interactive(
            COURSE_CELL, timeout=300,
            output_hook=lambda msg: results.append(msg["content"]["data"]["text/plain"])
            if msg["msg_type"] == "execute_result" else None)
        if reply["content"]["status"] != "ok" or results != [EXPECTED_RESULT]:
            raise RuntimeError(f"the course cell gave {results} ({reply['content']['status']})")
        return started, cpu_seconds(process) - started
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def run_cpu(command, **kwargs):
    """CPU seconds of a command run to its end (its children included)."""
    before = psutil.Process().cpu_times()
    subprocess.run(command, check=True, capture_output=True, timeout=600, **kwargs)
    after = psutil.Process().cpu_times()
    return (after.children_user + after.children_system) - (before.children_user + before.children_system)


def sync_cpu(workdir):
    """CPU seconds of the course sync: ``(clone, pull again)`` of the checkout's notebooks."""
    from course_hub import repository

    repo = workdir / "course.git"
    if not repo.exists():
        repository.publish(REPO_ROOT / "notebooks", repo)
    target = workdir / "course"
    shutil.rmtree(target, ignore_errors=True)
    env = {**os.environ, "NBGITPULLER_DEPTH": "0", "GIT_CONFIG_NOSYSTEM": "1"}
    command = [sys.executable, "-m", "nbgitpuller.pull", str(repo), "main", str(target)]
    return run_cpu(command, env=env), run_cpu(command, env=env)


def median_of(runs, measure):
    return statistics.median(measure() for _ in range(runs))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each measurement (median shown)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error(f"--runs must be at least 1, got {args.runs}")
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="login-cpu-"))
    try:
        print(f"CPU seconds (user + system), median of {args.runs}; load average {os.getloadavg()[0]:.1f}")
        course_args = spawner_args(workdir)
        extensions = installed_extensions()
        every = [f"--ServerApp.jpserver_extensions={ {name: True for name in extensions} }"]
        ours = median_of(args.runs, lambda: server_start_cpu(workdir, course_args))
        peer = median_of(args.runs, lambda: server_start_cpu(workdir, every, config_path=None))
        print(f"server start, executed, a student's configuration and the hub's arguments {course_args}: {ours:.2f}")
        print(f"server start, every installed extension {extensions}: {peer:.2f} (ratio {ours / peer:.2f})")
        for name in extensions:
            if name in ("notebook", "jupyter_server_terminals", "nbgitpuller", "notebook_shim"):
                continue  # what students use: Notebook 7, terminals, the course sync
            without = median_of(args.runs, lambda: server_start_cpu(
                workdir, [f"--ServerApp.jpserver_extensions={ {other: other != name for other in extensions} }"],
                config_path=None))
            print(f"  without {name}: {without:.2f} (its share {peer - without:+.2f})")
        kernels = [kernel_cpu() for _ in range(args.runs)]
        start = statistics.median(k[0] for k in kernels)
        cell = statistics.median(k[1] for k in kernels)
        print(f"kernel start: {start:.2f}")
        print(f"course cell: {cell:.2f}")
        syncs = [sync_cpu(workdir) for _ in range(args.runs)]
        clone = statistics.median(s[0] for s in syncs)
        pull = statistics.median(s[1] for s in syncs)
        print(f"course sync (nbgitpuller, own process): first login (clone) {clone:.2f}, "
              f"later logins (pull) {pull:.2f}")
        print(f"one login, server side: {ours + start + cell + clone:.2f} first, "
              f"{ours + start + cell + pull:.2f} later (the hub's and the proxy's share: bench/load_test.py)")
        print("imports, each in a fresh interpreter:")
        for module in IMPORTS:
            with contextlib.suppress(subprocess.CalledProcessError):
                seconds = median_of(args.runs, lambda: run_cpu([sys.executable, "-c", f"import {module}"]))
                print(f"  import {module}: {seconds:.2f}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
