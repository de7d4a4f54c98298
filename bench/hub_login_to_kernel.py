"""How long a student waits from login to a ready kernel, and what the course server costs in memory.

Starts a real hub from the project's configuration (free ports, temporary state, the installed
virtualenv and proxy), makes one throw-away student with the roster script, and five times:
logs in over HTTP (PAM), starts the server (course sync included), goes through OAuth, starts a
kernel and runs ``1 + 1`` over its websocket; between runs the server is stopped, so every run
is a cold start, as after the idle culler. Then measures the resident memory (RSS, from /proc) of
the hub, the proxy, the student's server and their kernel after a ``SimpleCNN`` forward pass.

Run as root after ``deploy/install.sh --no-start``, from the checkout's root with the course
virtualenv's Python (as a module: it uses ``tests/hub/hubkit.py`` and ``course_hub``)::

    python -m bench.hub_login_to_kernel [--runs 5]

Everything it made is removed at the end (hub and proxy stopped by pid, the user deleted).
"""
import argparse
import pathlib
import secrets
import shutil
import statistics
import subprocess
import tempfile
import time

from course_hub import accounts, repository, roster

from tests.hub import hubkit

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]

KERNEL_WORK = (
    "import numpy as np, course_lib\n"
    "net = course_lib.SimpleCNN(seed=0)\n"
    "p = net.predict_proba(np.random.default_rng(0).random((64, 28, 28), dtype=np.float32))\n"
    "print(p.shape)"
)


def one_login_to_kernel(hub, username, password):
    """Seconds from the login POST to the first kernel reply, and the session used."""
    started = time.perf_counter()
    session = hubkit.HubSession(hub, username, password)
    session.start_server()
    session.open_server()
    kernel = session.start_kernel()
    result = kernel.execute("1 + 1")
    elapsed = time.perf_counter() - started
    if result["result"] != "2":
        raise hubkit.HubError(f"unexpected kernel answer: {result}")
    return elapsed, session, kernel


def memory_figures(hub, username):
    """RSS in MiB of the hub, proxy, the student's server and kernel."""
    uid = hubkit.home_of(username).stat().st_uid
    processes = {pid: hubkit._cmdline(pid) for pid in hubkit.pids_of_uid(uid)}
    server = [pid for pid, cmd in processes.items() if "jupyterhub-singleuser" in cmd]
    kernel = [pid for pid, cmd in processes.items() if "ipykernel" in cmd]
    mib = lambda pid: hubkit.rss_bytes(pid) / 2**20  # noqa: E731
    return {
        "hub": mib(hub.pid),
        "proxy": mib(hub.proxy_pid()),
        "student server": sum(map(mib, server)),
        "student kernel": sum(map(mib, kernel)),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    scratch = pathlib.Path(tempfile.mkdtemp(prefix="hubbench-"))
    scratch.chmod(0o755)
    username = "hubb" + secrets.token_hex(3)
    hub = None
    try:
        repo = scratch / "course.git"
        repository.publish(REPO_ROOT / "notebooks", repo)
        subprocess.run(["chmod", "-R", "a+rX", str(repo)], check=True)
        git_config = scratch / "gitconfig"
        git_config.write_text(f"[safe]\n\tdirectory = {repo}\n")
        git_config.chmod(0o644)
        password = roster.add_accounts(
            [roster.Person(username, "Bench Student", "student")], password_file=scratch / "pw.csv"
        )["created"][username]
        started = time.perf_counter()
        hub = hubkit.Hub(repo, git_config).start()
        hub_start = time.perf_counter() - started
        times = []
        for run in range(args.runs):
            elapsed, session, kernel = one_login_to_kernel(hub, username, password)
            times.append(elapsed)
            if run == args.runs - 1:
                kernel.execute(KERNEL_WORK)
                memory = memory_figures(hub, username)
            kernel.close()
            session.hub_api("DELETE", f"/users/{username}/server")
            hubkit.wait_for(lambda: session.server_model() is None, 60, what="the server to stop")
        print(f"hub start to healthy: {hub_start:.2f} s")
        print(f"login -> ready kernel, cold server each time ({args.runs} runs): median "
              f"{statistics.median(times):.2f} s, min {min(times):.2f} s, max {max(times):.2f} s")
        print("resident memory (RSS) after a SimpleCNN forward pass in the kernel:")
        for name, value in memory.items():
            print(f"  {name:15s} {value:7.1f} MiB")
    finally:
        if hub:
            hub.stop()
            shutil.rmtree(hub.workdir, ignore_errors=True)
        accounts.stop_processes_of(username)
        subprocess.run(["userdel", "--remove", username], check=False, capture_output=True)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
