"""A class on one machine: N real students log in at once and run a course cell.

The idea of JupyterHub's own load tool (hubtraf), for this hub: hubtraf assumes a dummy
authenticator and the classic UI, so this logs in real PAM accounts through the login form
and talks to Notebook 7's REST API and the kernel websocket, as a browser would. Each
simulated student, all starting together:

1. logs in (``/hub/login``, PAM),
2. starts their server and waits for it,
3. opens it as a browser does (OAuth, then nbgitpuller's git-pull page, which clones
   ``~/course``), starts a kernel and connects to its websocket,
4. runs a course cell: ``import course_lib`` and a ``SimpleCNN`` forward pass on 64 MNIST digits,
5. logs out (the server keeps running, as a student's does when they close the tab).

Reported: per-student time from the login request to the cell's result (median, p95, max),
errors (with the stage that failed), and the peak resident memory of the hub, the proxy and
all the students' processes together (psutil, sampled every 0.5 s while the class runs), and
the processor time of each group, the students' split by kind of process (server, kernel, ...).

Usage, as root, on a machine where ``deploy/install.sh`` has run, from the checkout's root with
the course virtualenv's Python (as a module: it uses ``tests/hub/hubkit.py`` and ``course_hub``)::

    python -m bench.load_test -n 10
    python -m bench.load_test -n 50 --json load-50.json

Everything it makes is its own and is removed at the end, also after a failure or Ctrl-C:
a hub on free ports with a temporary state folder (stopped by pid), accounts named
``load<random><n>`` (their processes killed by pid, then deleted with their homes), a
temporary course repository. The run is bounded: ``--timeout`` seconds for the whole class.
"""
import argparse
import json
import os
import pathlib
import pwd
import secrets
import shutil
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait

import psutil
import websocket
from course_hub import accounts, repository, roster

from tests.hub import hubkit  # the hub, login session and kernel helpers

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent

#: The course cell every student runs; its last line is the "first result".
COURSE_CELL = """\
import course_lib
from course_lib import SimpleCNN, load_mnist
X_train, y_train, X_test, y_test = load_mnist()
probabilities = SimpleCNN(seed=0).predict_proba(X_test[:64])
probabilities.shape, round(float(probabilities.sum()), 3)
"""
EXPECTED_RESULT = "((64, 10), 64.0)"
SAMPLE_SECONDS = 0.5


def percentile(values, fraction):
    """The ``fraction`` quantile of ``values`` (linear interpolation between ranks)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


class MemorySampler(threading.Thread):
    """Samples the hub, the proxy and the students' processes until stopped.

    Memory: the peak of the summed resident memory of each group. CPU: the processor time of
    each process (the last value seen per pid, since it only grows), summed per group, so that
    "CPU seconds per student" can size the cores of a server. A process's time includes that of
    the children it has reaped (``children_user``/``children_system``): the course sync and the
    git commands the hub or a server runs end between two samples, and only their parent's
    account keeps their time. A process whose parent is the hub and that is not a student's
    server (a command of a pre-spawn hook) is left out of the students' group: the hub reaps
    it, so its time is in the hub's.
    """

    def __init__(self, hub, student_uids):
        super().__init__(daemon=True)
        self.hub = hub
        self.uids = set(student_uids)
        self.peak = {"hub": 0, "proxy": 0, "warm starter": 0, "students": 0, "total": 0}
        self.cpu = {}  # (group, pid) -> seconds, own and reaped children's
        self.kinds = {}  # pid of a student's process -> its kind (process_kind)
        self.peak_processes = 0
        self.samples = 0
        self._halt = threading.Event()

    @staticmethod
    def _seconds(times):
        return times.user + times.system + times.children_user + times.children_system

    def _measure(self, group, pid, reaped=True):
        """Record the CPU seconds of ``pid`` (with those of the children it reaped, if ``reaped``); return its RSS."""
        if not pid:
            return 0
        try:
            proc = psutil.Process(pid)
            with proc.oneshot():
                times, rss = proc.cpu_times(), proc.memory_info().rss
        except psutil.Error:
            return 0
        self.cpu[(group, pid)] = self._seconds(times) if reaped else times.user + times.system
        return rss

    def sample(self):
        hub = self._measure("hub", self.hub.pid)
        proxy = self._measure("proxy", self.hub.proxy_pid())
        students, count, warm = 0, 0, 0
        for proc in psutil.process_iter(["uids", "memory_info", "cpu_times", "ppid", "cmdline"]):
            info = proc.info
            if info["ppid"] == self.hub.pid and "course_hub.warmstart" in " ".join(info["cmdline"] or ()):
                # The hub's warm starter: its imports serve every server it forks. The servers it
                # reaps are counted as students' processes, so its own time only.
                warm += self._measure("warm starter", proc.pid, reaped=False)
                continue
            uids, memory, times = info["uids"], info["memory_info"], info["cpu_times"]
            if not (uids and memory and uids.real in self.uids):
                continue
            students += memory.rss
            count += 1
            reaped_by_hub = info["ppid"] == self.hub.pid and not any(
                "jupyterhub-singleuser" in part for part in info["cmdline"] or ())
            if not reaped_by_hub:
                self.cpu[("students", proc.pid)] = self._seconds(times)
                # the last look wins: a server forked by the warm starter takes its title at once
                self.kinds[proc.pid] = process_kind(info["cmdline"])
        for key, value in (("hub", hub), ("proxy", proxy), ("warm starter", warm), ("students", students),
                           ("total", hub + proxy + warm + students)):
            self.peak[key] = max(self.peak[key], value)
        self.peak_processes = max(self.peak_processes, count)
        self.samples += 1

    def cpu_seconds(self, group):
        """Processor seconds used by one group's processes (``hub``, ``proxy``, ``students``)."""
        return sum(seconds for (name, _), seconds in self.cpu.items() if name == group)

    def students_cpu_by_kind(self):
        """Processor seconds of the students' processes, by kind (``server``, ``kernel``, ...)."""
        by_kind = {}
        for (group, pid), seconds in self.cpu.items():
            if group == "students":
                kind = self.kinds.get(pid, "other")
                by_kind[kind] = by_kind.get(kind, 0) + seconds
        return by_kind

    def run(self):
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(SAMPLE_SECONDS)

    def stop(self):
        self._halt.set()
        self.join(10)
        self.sample()


def process_kind(cmdline):
    """What a student's process is, from its command line: ``server`` (jupyterhub-singleuser,
    with the git commands of its course sync, which it reaps), ``kernel`` (ipykernel), or the
    program's name (a terminal's shell, ...)."""
    words = list(cmdline or ())
    if any("jupyterhub-singleuser" in word for word in words):
        return "server"
    if any("ipykernel" in word for word in words):
        return "kernel"
    return pathlib.Path(words[0]).name if words else "other"


def start_and_follow(session, timeout):
    """Start the user's server and follow the hub's progress stream until it is ready.

    This is what the browser's "server starting" page does (one event stream per student),
    rather than polling the hub's API, which would add N requests a second to the hub.
    """
    response = session.hub_api("POST", f"/users/{session.username}/server")
    if response.status_code not in (201, 202):
        raise hubkit.HubError(f"server start: HTTP {response.status_code} {response.text[:200]}")
    if response.status_code == 201:
        return  # started at once
    url = f"{session.hub.url}/hub/api/users/{session.username}/server/progress"
    with session.http.get(url, headers={"X-XSRFToken": session.hub_xsrf}, stream=True,
                          timeout=(30, timeout)) as events:
        for line in events.iter_lines(decode_unicode=True):
            if not line or not line.startswith("data:"):
                continue
            event = json.loads(line[len("data:"):])
            if event.get("failed"):
                raise hubkit.HubError(f"spawn failed: {event.get('message')}")
            if event.get("ready"):
                return
    raise hubkit.HubError("the progress stream ended before the server was ready")


def execute_with_reconnect(session, kernel, code, deadline, attempts=3):
    """Run ``code``; if the websocket drops before the answer, reconnect and run it again.

    JupyterLab does the same: on a busy machine the server closes a kernel's websocket when
    the new kernel does not answer within ``kernel_info_timeout`` (60 s), and the page
    reconnects. Returns ``(output, kernel, reconnects)``.
    """
    for attempt in range(attempts):
        try:
            return kernel.execute(code, timeout=max(1.0, deadline - time.monotonic())), kernel, attempt
        except (websocket.WebSocketConnectionClosedException, ConnectionError):
            if attempt == attempts - 1:
                raise
            kernel.close()
            kernel = hubkit.Kernel(session, session.username, kernel.id)
    raise AssertionError("unreachable")


def one_student(hub, username, password, start_gate, deadline):
    """Run one student's visit; return a dict with timings (s from the login) or the error."""
    start_gate.wait()
    t0 = time.monotonic()
    marks, stage = {}, "login"
    kernel = None
    reconnects = 0
    try:
        session = hubkit.HubSession(hub, username, password)
        marks["login"] = time.monotonic() - t0
        stage = "server start"
        start_and_follow(session, timeout=max(1.0, deadline - time.monotonic()))
        marks["server"] = time.monotonic() - t0
        stage = "open server"
        opened = session.open_server()
        if opened.status_code != 200:
            raise hubkit.HubError(f"opening the server gave HTTP {opened.status_code}")
        stage = "kernel start"
        kernel = session.start_kernel()
        marks["kernel"] = time.monotonic() - t0
        stage = "course cell"
        out, kernel, reconnects = execute_with_reconnect(session, kernel, COURSE_CELL, deadline)
        if out["error"] or out["result"] != EXPECTED_RESULT:
            raise hubkit.HubError(f"unexpected cell output: {out}")
        marks["result"] = time.monotonic() - t0
        stage = "logout"
        session.http.get(f"{hub.url}/hub/logout", timeout=60)
        return {"user": username, "ok": True, "reconnects": reconnects, **marks}
    except Exception as exc:  # every failure is a data point of the load test, not a crash
        return {"user": username, "ok": False, "stage": stage, "error": f"{type(exc).__name__}: {exc}"[:300],
                "reconnects": reconnects, **marks}
    finally:
        if kernel is not None:
            try:
                kernel.close()
            except Exception:
                pass


def run(n, timeout, keep_log=None):
    """Run the load test with ``n`` students; return the report dict (see ``summarise``)."""
    if os.geteuid() != 0:
        raise SystemExit("load_test.py: run as root (it makes Unix accounts and a root hub)")
    if not hubkit.PROXY_COMMAND.exists():
        raise SystemExit(f"load_test.py: {hubkit.PROXY_COMMAND} missing: run deploy/install.sh --no-start")
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="loadtest-"))
    workdir.chmod(0o755)  # students clone the course repository from here
    prefix = "load" + secrets.token_hex(2)
    users, hub, sampler = {}, None, None
    try:
        repo = workdir / "course.git"
        repository.publish(REPO_ROOT / "notebooks", repo)
        gitconfig = workdir / "gitconfig"
        gitconfig.write_text(f"[safe]\n\tdirectory = {repo}\n")
        gitconfig.chmod(0o644)
        people = [roster.Person(f"{prefix}{i:03d}", f"Load Student {i}", "student") for i in range(n)]
        created = roster.add_accounts(people, password_file=workdir / "passwords.csv")["created"]
        users.update(created)
        hub = hubkit.Hub(repo, gitconfig)
        hub.start()
        uids = [pwd.getpwnam(name).pw_uid for name in users]
        sampler = MemorySampler(hub, uids)
        sampler.sample()
        idle = dict(sampler.peak)
        idle_cpu = {group: sampler.cpu_seconds(group) for group in ("hub", "proxy")}
        sampler.start()
        gate = threading.Barrier(n)
        load_before = os.getloadavg()
        started = time.monotonic()
        deadline = started + timeout
        pool = ThreadPoolExecutor(max_workers=n)
        futures = [pool.submit(one_student, hub, name, pw, gate, deadline) for name, pw in users.items()]
        done, not_done = wait(futures, timeout=timeout + 60)
        # A student still stuck past the class's time is reported, not waited for.
        pool.shutdown(wait=False, cancel_futures=True)
        results = [f.result() for f in done]
        results += [{"user": "?", "ok": False, "stage": "whole run", "error": "did not finish in time"}
                    for _ in not_done]
        wall = time.monotonic() - started
        sampler.stop()
        report = summarise(n, results, sampler, idle, wall, idle_cpu)
        report["account_prefix"] = prefix
        report["load_average_before"] = [round(x, 2) for x in load_before]
        if keep_log:
            shutil.copy(hub.log_path, keep_log)
        return report
    finally:
        # Each step on its own: one failing must not leave a hub or accounts behind.
        _quietly(lambda: sampler and sampler.stop())
        _quietly(lambda: hub and hub.stop())
        _quietly(lambda: stop_everyones_processes(users))
        _quietly(lambda: users and roster.remove_accounts(list(users)))
        _quietly(lambda: hub and shutil.rmtree(hub.workdir, ignore_errors=True))
        shutil.rmtree(workdir, ignore_errors=True)


def stop_everyones_processes(usernames, grace=15):
    """Stop the processes of every user at once (one by one, 100 students took minutes)."""
    with ThreadPoolExecutor(max_workers=32) as pool:
        return list(pool.map(lambda name: accounts.stop_processes_of(name, grace=grace), usernames))


def _quietly(step):
    """Run one clean-up step; report (not raise) its failure so the next steps still run."""
    try:
        step()
    except Exception as exc:
        print(f"load_test.py: clean-up step failed: {type(exc).__name__}: {exc}", file=sys.stderr)


def summarise(n, results, sampler, idle, wall, idle_cpu):
    """Turn per-student results and memory peaks into the report dict."""
    ok = [r for r in results if r["ok"]]
    firsts = [r["result"] for r in ok]
    mb = 2 ** 20
    errors = [r for r in results if not r["ok"]]
    cpu = {group: round(sampler.cpu_seconds(group) - idle_cpu.get(group, 0), 1)
           for group in ("hub", "proxy", "warm starter", "students")}
    return {
        "students": n,
        "errors": len(errors),
        "error_samples": errors[:5],
        "first_result_s": {
            "median": statistics.median(firsts) if firsts else None,
            "p95": percentile(firsts, 0.95) if firsts else None,
            "max": max(firsts) if firsts else None,
        },
        "stages_median_s": {
            stage: statistics.median([r[stage] for r in ok]) if ok else None
            for stage in ("login", "server", "kernel", "result")
        },
        "peak_mb": {key: round(value / mb) for key, value in sampler.peak.items()},
        "idle_mb": {key: round(value / mb) for key, value in idle.items()},
        "student_mb_each": round(sampler.peak["students"] / mb / n) if n else None,
        "peak_student_processes": sampler.peak_processes,
        "cpu_s": cpu,
        "cpu_s_per_login": round(sum(cpu.values()) / n, 2) if n else None,
        "students_cpu_s_per_login_by_kind": {kind: round(seconds / n, 2) for kind, seconds in
                                             sorted(sampler.students_cpu_by_kind().items())} if n else {},
        "websocket_reconnects": sum(r.get("reconnects", 0) for r in results),
        "wall_s": round(wall, 1),
        "cpus": os.cpu_count(),
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }


def format_report(report):
    """The report as a few readable lines (and one markdown table row for the README)."""
    first, peak = report["first_result_s"], report["peak_mb"]

    def s(value):
        return "-" if value is None else f"{value:.1f}"

    lines = [
        f"students: {report['students']}   errors: {report['errors']}   "
        f"websocket reconnects: {report['websocket_reconnects']}   wall: {report['wall_s']} s   "
        f"load average before: {report.get('load_average_before')} after: {report['load_average_after']}",
        f"time to first result (s): median {s(first['median'])}  p95 {s(first['p95'])}  max {s(first['max'])}",
        "median stage ends (s from login): " + "  ".join(
            f"{k} {s(v)}" for k, v in report["stages_median_s"].items()),
        f"peak memory (MB): hub {peak['hub']}  proxy {peak['proxy']}  students {peak['students']} "
        f"({report['student_mb_each']} per student, {report['peak_student_processes']} processes)  "
        f"warm starter {peak['warm starter']}  "
        f"total {peak['total']}",
        f"CPU seconds during the run: hub {report['cpu_s']['hub']}  proxy {report['cpu_s']['proxy']}  "
        f"warm starter {report['cpu_s']['warm starter']}  "
        f"students {report['cpu_s']['students']} ({report['cpu_s']['students'] / report['students']:.1f} "
        f"per student; {report['cpu_s_per_login']} per login, hub, proxy and warm starter included; {report['cpus']} cores)",
        "students' CPU seconds per login, by process: " + "  ".join(
            f"{kind} {seconds:.2f}" for kind, seconds in report["students_cpu_s_per_login_by_kind"].items()),
        "| N | median s | p95 s | max s | errors | hub MB | proxy MB | students MB | MB/student |",
        f"| {report['students']} | {s(first['median'])} | {s(first['p95'])} | {s(first['max'])} | "
        f"{report['errors']} | {peak['hub']} | {peak['proxy']} | {peak['students']} | {report['student_mb_each']} |",
    ]
    for sample in report["error_samples"]:
        lines.append(f"error: {sample['user']} at {sample['stage']}: {sample['error']}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--students", type=int, default=10, help="students at once (default 10)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds for the whole class (default 600)")
    parser.add_argument("--json", help="also write the report to this JSON file")
    parser.add_argument("--hub-log", help="keep a copy of the hub's log here")
    args = parser.parse_args(argv)
    if args.students < 1:
        parser.error(f"--students must be at least 1, got {args.students}")
    if args.timeout <= 0:
        parser.error(f"--timeout must be positive, got {args.timeout}")
    report = run(args.students, args.timeout, keep_log=args.hub_log)
    print(format_report(report))
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(report, indent=1))
    return 0 if report["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
