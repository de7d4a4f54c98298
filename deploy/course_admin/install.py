"""Install the instructor tools on the course server (called by ``deploy/install.sh``, as root).

::

    /opt/dlcourse/venv/bin/python deploy/course_admin/install.py \\
        --prefix /opt/dlcourse --repo /srv/dlcourse/course.git [--group dl-instructors]

1. copies this package to ``<prefix>/etc/deploy/course_admin``, beside the hub's other
   modules (the installed ``jupyterhub_config.py`` imports it from there), world-readable:
   the hook runs as the pushing instructor, the commands as whoever calls them;
2. writes the commands ``course-publish``, ``course-status`` and ``course-take-back`` into
   ``<prefix>/venv/bin``, which is on every hub user's ``PATH``;
3. secures the course repository and installs its ``pre-receive`` hook
   (:func:`course_admin.repository.secure_repository`).

Idempotent: run it again after an upgrade.
"""
import argparse
import os
import pathlib
import shutil
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from course_admin import repository  # noqa: E402

COMMANDS = {
    "course-publish": "course_admin.publish",
    "course-status": "course_admin.status",
    "course-take-back": "course_admin.take_back",
}
WRAPPER = """#!/bin/sh
# Installed by deploy/course_admin/install.py.
PYTHONPATH={admin}${{PYTHONPATH:+:$PYTHONPATH}} exec {python} -m {module} "$@"
"""


def install(prefix, repo, group=None):
    """Copy the package, write the commands, secure the repository; return the package's parent.

    ``group`` defaults to the instructors' group of ``deploy/hub-settings.yaml``.
    """
    if group is None:
        import hub_settings  # deploy/hub_settings.py, beside this package

        group = hub_settings.load_settings()["groups"]["instructors"]
    prefix = pathlib.Path(prefix)
    python = prefix / "venv" / "bin" / "python"
    if not python.exists():
        raise ValueError(f"prefix must hold the course virtualenv (venv/bin/python), got {str(prefix)!r}")
    admin = prefix / "etc" / "deploy"
    target = admin / "course_admin"
    admin.mkdir(mode=0o755, parents=True, exist_ok=True)
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(HERE, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for root, dirs, files in os.walk(target):
        os.chmod(root, 0o755)
        for name in files:
            os.chmod(os.path.join(root, name), 0o644)
    for command, module in COMMANDS.items():
        path = prefix / "venv" / "bin" / command
        path.write_text(WRAPPER.format(admin=admin, python=python, module=module))
        path.chmod(0o755)
    repository.secure_repository(repo, group, python=str(python), package_parent=admin)
    return admin


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prefix", default="/opt/dlcourse")
    parser.add_argument("--repo", default="/srv/dlcourse/course.git")
    parser.add_argument("--group", default=None, help="who may publish (default: the settings' instructors)")
    args = parser.parse_args(argv)
    try:
        admin = install(args.prefix, args.repo, args.group)
    except ValueError as exc:
        print(f"course_admin/install.py: {exc}", file=sys.stderr)
        return 1
    print(f"instructor tools in {admin}; commands in {args.prefix}/venv/bin; {args.repo} secured")
    return 0


if __name__ == "__main__":
    sys.exit(main())
