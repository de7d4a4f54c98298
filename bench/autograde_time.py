"""How long nbgrader takes to autograde one submission of each assignment.

For each assignment, in a temporary copy of ``assignments/``: the reference solution (the
source notebook) is submitted by one student and autograded ``--repeat`` times (``nbgrader
autograde --force``: a fresh kernel each time, the hidden tests restored, the gradebook
written). The peer, measured in the same run, is the same notebook executed top to bottom by
``jupyter nbconvert --execute``: what running the student's work costs without grading it.
Prints the median of each and the ratio.

``--threads 1`` limits the kernels' BLAS threads to one, a student's share of the server.

``--sandbox`` (as root) also autogrades as the hub does: through the grading sandbox
(course_hub.sandbox), started here with the command the hub starts it with and this server's
settings (its sandbox account, limits), in folders of its own, with nbgrader configured by the
instructors' configuration (``course_hub/jupyter/instructor``). Its kernels run with one BLAS
thread, so compare it with ``--threads 1``.

Run it with the interpreter of an environment that has nbgrader (the course virtualenv):

    /opt/dlcourse/venv/bin/python -m bench.autograde_time --repeat 3 --threads 1 --sandbox
"""
import argparse
import contextlib
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import yaml
from course_hub import grading, paths
from course_hub import settings as course_settings

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
ASSIGNMENTS_DIR = REPO_ROOT / "assignments"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def environment(threads):
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])  # alembic
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    if threads:
        env.update(dict.fromkeys(THREAD_VARIABLES, str(threads)))
    return env


def timed(command, cwd, env):
    started = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
    return seconds


@contextlib.contextmanager
def sandbox_service(workdir):
    """The hub's grading sandbox, in folders under ``workdir``; yields the environment an
    instructor's server has (the instructors' nbgrader configuration, these folders)."""
    workdir.chmod(0o711)  # the sandbox account reaches its scratch folder through it
    site = workdir / "site.yaml"
    site.write_text(yaml.safe_dump({"server": {
        "grading_dir": str(workdir / "grading"), "exchange_dir": str(workdir / "exchange"),
        "grader_socket": str(workdir / "run" / "grader.sock")}}))
    settings = course_settings.load_settings(site)
    where = grading.locations(settings)
    service = subprocess.Popen(grading.sandbox_service(settings)["command"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, env=environment(0))
    try:
        deadline = time.monotonic() + 120
        while not where["socket"].exists():
            if service.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"the sandbox service did not start: {service.stdout.read().decode()}")
            time.sleep(0.2)
        yield {grading.ENV_COURSE_ID: where["course_id"], grading.ENV_EXCHANGE: str(where["exchange"]),
               grading.ENV_GRADER_SOCKET: str(where["socket"]),
               "JUPYTER_CONFIG_PATH": str(paths.ROLE_CONFIG / grading.INSTRUCTOR)}
    finally:
        service.terminate()
        service.wait(60)


def measure(assignment, repeat, env, workdir, sandbox_env=None):
    course = workdir / assignment
    (course / "source").mkdir(parents=True)
    shutil.copy(ASSIGNMENTS_DIR / "nbgrader_config.py", course)
    shutil.copytree(ASSIGNMENTS_DIR / "source" / assignment, course / "source" / assignment)
    nbgrader = [sys.executable, "-m", "nbgrader"]
    timed(nbgrader + ["generate_assignment", assignment], course, env)
    notebook = f"{assignment}.ipynb"
    submitted = course / "submitted" / "reference" / assignment
    submitted.mkdir(parents=True)
    shutil.copy(course / "source" / assignment / notebook, submitted)
    executed = course / "executed"
    executed.mkdir()
    shutil.copy(course / "source" / assignment / notebook, executed)
    autograde, execute, sandboxed = [], [], []
    grade = nbgrader + ["autograde", assignment, "--student", "reference", "--force"]
    for _ in range(repeat):  # alternate, so all see the same load on a shared machine
        autograde.append(timed(grade, course, env))
        if sandbox_env:
            sandboxed.append(timed(grade + [f"--CourseDirectory.root={course}"], course,
                                   {**env, **sandbox_env, grading.ENV_GRADING_COURSE: str(course)}))
        execute.append(timed([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
                              "--ExecutePreprocessor.timeout=600", "--output", "out.ipynb", notebook],
                             executed, env))
    return (statistics.median(autograde), statistics.median(execute),
            statistics.median(sandboxed) if sandboxed else None)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("assignments", nargs="*", help="default: every assignment in assignments/source")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each (default 3)")
    parser.add_argument("--threads", type=int, default=0, help="BLAS threads of the kernels (default: numpy's own)")
    parser.add_argument("--sandbox", action="store_true",
                        help="also autograde through the hub's grading sandbox (as root)")
    args = parser.parse_args()
    if args.sandbox and os.geteuid() != 0:
        parser.error("--sandbox: run as root (the sandbox switches to its account)")
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1, got {args.repeat}")
    if args.threads < 0:
        parser.error(f"--threads must be 0 (numpy's default) or more, got {args.threads}")
    available = sorted(path.name for path in (ASSIGNMENTS_DIR / "source").iterdir() if path.is_dir())
    unknown = sorted(set(args.assignments) - set(available))
    if unknown:
        parser.error(f"unknown assignment(s) {unknown}; the assignments are {available}")
    env = environment(args.threads)
    threads = args.threads or "default"
    print(f"autograde of one submission (the reference solution) vs executing it, median of {args.repeat}, "
          f"BLAS threads: {threads}, load average before: {os.getloadavg()[0]:.1f}")
    sandbox_columns = f" {'in sandbox s':>13} {'vs autograde':>12}" if args.sandbox else ""
    print(f"{'assignment':<20} {'autograde s':>12} {'execute s':>10} {'ratio':>6}{sandbox_columns}")
    with tempfile.TemporaryDirectory(prefix="autograde-bench-") as workdir:
        workdir = pathlib.Path(workdir)
        with sandbox_service(workdir) if args.sandbox else contextlib.nullcontext() as sandbox_env:
            for assignment in args.assignments or available:
                autograde, execute, sandboxed = measure(assignment, args.repeat, env, workdir, sandbox_env)
                row = f"{assignment:<20} {autograde:12.1f} {execute:10.1f} {autograde / execute:6.2f}"
                if sandboxed is not None:
                    row += f" {sandboxed:13.1f} {sandboxed / autograde:12.2f}"
                print(row, flush=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
