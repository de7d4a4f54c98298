"""How long nbgrader takes to autograde one submission of each assignment.

For each assignment, in a temporary copy of ``assignments/``: the reference solution (the
source notebook) is submitted by one student and autograded ``--repeat`` times (``nbgrader
autograde --force``: a fresh kernel each time, the hidden tests restored, the gradebook
written). The peer, measured in the same run, is the same notebook executed top to bottom by
``jupyter nbconvert --execute``: what running the student's work costs without grading it.
Prints the median of each and the ratio.

``--threads 1`` limits the kernels' BLAS threads to one, a student's share of the server.
Run it with the interpreter of an environment that has nbgrader (the course virtualenv):

    /opt/dlcourse/venv/bin/python bench/autograde_time.py --repeat 3 --threads 1
"""
import argparse
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

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


def measure(assignment, repeat, env, workdir):
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
    autograde, execute = [], []
    for _ in range(repeat):  # alternate, so both see the same load on a shared machine
        autograde.append(timed(nbgrader + ["autograde", assignment, "--student", "reference", "--force"],
                               course, env))
        execute.append(timed([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
                              "--ExecutePreprocessor.timeout=600", "--output", "out.ipynb", notebook],
                             executed, env))
    return statistics.median(autograde), statistics.median(execute)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("assignments", nargs="*", help="default: every assignment in assignments/source")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each (default 3)")
    parser.add_argument("--threads", type=int, default=0, help="BLAS threads of the kernels (default: numpy's own)")
    args = parser.parse_args()
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
    print(f"{'assignment':<20} {'autograde s':>12} {'execute s':>10} {'ratio':>6}")
    with tempfile.TemporaryDirectory(prefix="autograde-bench-") as workdir:
        for assignment in args.assignments or available:
            autograde, execute = measure(assignment, args.repeat, env, pathlib.Path(workdir))
            print(f"{assignment:<20} {autograde:12.1f} {execute:10.1f} {autograde / execute:6.2f}", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
