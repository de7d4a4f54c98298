"""Helpers for the instructors' tests: real Unix accounts, notebooks, running as a user, git.

Code run as another user (the publish command, the pre-receive hook, a kernel's subprocess)
gets ``PYTHONPATH`` set to this checkout (:data:`CHECKOUT_ENV`), so it runs the
``course_hub`` under test rather than the installed copy.
"""
import os
import pathlib
import pwd
import subprocess
import sys

import nbformat
from course_hub import accounts

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
#: Environment that makes a process import this checkout's course_hub.
CHECKOUT_ENV = {"PYTHONPATH": str(REPO_ROOT)}


def make_notebook(*sources):
    """Return a notebook (nbformat 4.5, with cell ids) holding one code cell per source."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in sources]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def write_notebook(path, nb):
    """Write ``nb`` to ``path`` (a pathlib.Path) as nbformat 4 JSON."""
    path.write_text(nbformat.writes(nb))


class Accounts:
    """Creates Unix accounts and groups for one test run and removes exactly those."""

    def __init__(self, prefix):
        self.prefix = prefix
        self.users = []
        self.groups = []

    def group(self, suffix):
        name = f"{self.prefix}{suffix}"
        subprocess.run(["groupadd", name], check=True)
        self.groups.append(name)
        return name

    def user(self, suffix, groups=()):
        name = f"{self.prefix}{suffix}"
        cmd = ["useradd", "-m", "-K", "HOME_MODE=0700", "-s", "/bin/bash"]
        if groups:
            cmd += ["-G", ",".join(groups)]
        subprocess.run(cmd + [name], check=True)
        self.users.append(name)
        return name

    def cleanup(self):
        for name in self.users:
            accounts.stop_processes_of(name)
            subprocess.run(["userdel", "-r", name], check=False, capture_output=True)
        for name in self.groups:
            subprocess.run(["groupdel", name], check=False, capture_output=True)


def run_as(user, args, cwd=None, env=None, timeout=600):
    """Run ``args`` as Unix user ``user`` (with their groups and home); return the CompletedProcess."""
    account = pwd.getpwnam(user)
    full_env = {
        "HOME": account.pw_dir, "USER": user, "LOGNAME": user, "LANG": "C.UTF-8",
        "PATH": f"{os.path.dirname(sys.executable)}:/usr/local/bin:/usr/bin:/bin",
    }
    full_env.update(env or {})
    return subprocess.run(
        args, cwd=cwd or account.pw_dir, env=full_env, capture_output=True, text=True, timeout=timeout,
        user=account.pw_uid, group=account.pw_gid,
        extra_groups=os.getgrouplist(user, account.pw_gid),
    )


def sync_student(user, course, folder=None):
    """Sync the student's copy with nbgitpuller, as the hub does before their server starts.

    The copy goes to ``~/<folder>``, by default a folder unique to the test's repository
    (the accounts outlive one test's repository).
    """
    folder = folder or course["folder"]
    home = pathlib.Path(pwd.getpwnam(user).pw_dir)
    proc = run_as(user, [sys.executable, "-m", "nbgitpuller.pull", str(course["repo"]), "main",
                         str(home / folder)], env={**course["env"], "NBGITPULLER_DEPTH": "0"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return home / folder


def publish_as(user, workspace, course, *extra):
    """Run ``course-publish`` as ``user`` in ``workspace``; return the CompletedProcess."""
    return run_as(user, [sys.executable, "-m", "course_hub.publish", "-C", str(workspace), *extra],
                  env=course["env"])


def head_of(course):
    """The published commit (the bare repository's main)."""
    return subprocess.run(["git", "rev-parse", "refs/heads/main"], cwd=course["repo"],
                          capture_output=True, text=True, check=True).stdout.strip()

