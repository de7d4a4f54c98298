"""Where the course server keeps everything: every path, named once, here.

Everything else takes its paths from this module: ``jupyterhub_config.py`` and the rest of
``course_hub`` import it; ``deploy/install.sh`` reads it with the system Python before the
virtualenv exists (``python3 -m course_hub.paths`` prints the shell assignments it needs); the
systemd unit and ``rc.local`` name only :data:`COURSE_HUB`, which knows the rest, and the login
shells' profile script only :data:`VENV_BIN` (a test checks that they name these). A site
settings file (:data:`SITE_SETTINGS`) may move the state folder, the course repository, the log,
the pid files, the launcher's pid file and the grading folders (``server`` section); the install
location (:data:`PREFIX`) is fixed.

This module uses only the standard library: ``install.sh`` runs it before anything is installed.
"""
import pathlib
import shlex

# ---- the installation: one prefix --------------------------------------------------------------
#: Everything installed for the course: the virtualenv and the proxy.
PREFIX = pathlib.Path("/opt/dlcourse")
#: The course virtualenv (world-readable: students' servers run its interpreter).
VENV = PREFIX / "venv"
VENV_BIN = VENV / "bin"
#: The launcher the systemd unit and ``rc.local`` start (the console script ``course-hub``).
COURSE_HUB = VENV_BIN / "course-hub"
#: configurable-http-proxy, installed with npm into its own folder.
PROXY_DIR = PREFIX / "proxy"
PROXY_COMMAND = PROXY_DIR / "node_modules" / ".bin" / "configurable-http-proxy"
#: The pinned Node the proxy runs on (deploy/install.sh links it here; the hub puts it first on
#: its own PATH, never on the students').
PROXY_NODE_DIR = PROXY_DIR / "bin"

# ---- this server's data and settings (the defaults of the settings' ``server`` section) ---------
#: Database, cookie secret, the self-signed certificate, roster passwords, the enrolment ledger
#: (mode 0700).
STATE_DIR = pathlib.Path("/var/lib/dlcourse")
#: The pid files of the hub and its proxy: under /run, emptied at every boot, so that after a
#: power loss no pid file names a process that has since been given the same pid (the hub
#: signals the process its proxy pid file names).
RUN_DIR = pathlib.Path("/run/dlcourse")
#: The bare git repository students' copies sync from and instructors publish to.
COURSE_REPO = pathlib.Path("/srv/dlcourse/course.git")
#: The hub's log and the supervising launcher's pid file where it runs without systemd.
LOG = pathlib.Path("/var/log/jupyterhub.log")
PIDFILE = pathlib.Path("/run/dlcourse-hub.pid")
#: The operator's settings: only the keys that differ from the shared ones. Never written by
#: the install, so it survives every re-install.
SITE_SETTINGS = pathlib.Path("/etc/dlcourse/hub-settings.yaml")
#: Where ``course-roster remove-term`` archives the homes of the students it removes.
ARCHIVE_DIR = pathlib.Path("/var/backups/dlcourse")

# ---- grading (nbgrader; the defaults of the settings' ``server`` section, like the state) ------
#: The grading state, beside the hub's (whose folder is root's alone, while instructors must
#: reach the gradebook): nbgrader's course directory and the sandbox's scratch folders.
GRADING_DIR = pathlib.Path("/var/lib/dlcourse-grading")
#: nbgrader's exchange: released assignments, submissions, feedback (root's; see course_hub.grading).
EXCHANGE_DIR = pathlib.Path("/srv/dlcourse/exchange")
#: Where the grading sandbox (course_hub.sandbox, a service of the hub, root) listens for instructors.
GRADER_SOCKET = pathlib.Path("/run/dlcourse-grader/grader.sock")
#: The system's lock files: the sandbox's lock of its account (one notebook at a time, machine-wide).
LOCK_DIR = pathlib.Path("/run/lock")

#: Files inside the state folder, wherever the settings put it.
DATABASE = "jupyterhub.sqlite"
COOKIE_SECRET = "jupyterhub_cookie_secret"
ENROLMENTS = "enrolments.csv"
#: The self-signed certificate the hub makes when no other is given (course_hub.tls), in a
#: folder (mode 0700) of the state folder; the key is mode 0600.
TLS_DIR = "tls"
SELF_SIGNED_CERT = "self-signed.crt"
SELF_SIGNED_KEY = "self-signed.key"
#: Files inside the run folder (RUN_DIR, or the settings' ``server.run_dir``). Earlier versions
#: kept them in the state folder, where the launcher removes them (course_hub.launcher).
HUB_PIDFILE = "jupyterhub.pid"
PROXY_PIDFILE = "jupyterhub-proxy.pid"

#: Inside the grading folder: nbgrader's course directory (sources, releases, submissions,
#: grades, ``gradebook.db``) and the sandbox's scratch folders (one per notebook being graded).
GRADING_COURSE = "course"
GRADEBOOK = "gradebook.db"
SANDBOX_SCRATCH = "sandbox"

# ---- the system ------------------------------------------------------------------------------
#: Exists only where systemd is PID 1 (then the hub uses SystemdSpawner and the unit below).
SYSTEMD_RUNTIME = pathlib.Path("/run/systemd/system")
SYSTEMD_UNIT = pathlib.Path("/etc/systemd/system/jupyterhub.service")
#: Without systemd, each student's memory cgroup is ``<memory controller>/CGROUP_NAME/<user>``
#: (course_hub.memory), wherever the machine mounts its memory controller.
CGROUP_NAME = "dlcourse"
RC_LOCAL = pathlib.Path("/etc/rc.local")
#: Puts VENV_BIN first on PATH in users' login shells (Jupyter's terminals run ``bash -l``).
PROFILE_SCRIPT = pathlib.Path("/etc/profile.d/dlcourse.sh")

# ---- files the package ships ------------------------------------------------------------------
_PACKAGE = pathlib.Path(__file__).resolve().parent


def _shipped(name, in_checkout):
    """A file the wheel carries inside this package (pyproject.toml's force-include), or, when
    this is a checkout rather than an installed package, the file where the checkout keeps it."""
    installed = _PACKAGE / name
    return installed if installed.exists() else _PACKAGE.parent / in_checkout


#: The hub's configuration (the checkout's top-level ``jupyterhub_config.py``).
HUB_CONFIG = _shipped("jupyterhub_config.py", "jupyterhub_config.py")
#: The settings every deployment shares (the checkout's ``deploy/hub-settings.yaml``).
SHARED_SETTINGS = _shipped("hub-settings.yaml", "deploy/hub-settings.yaml")
#: Jupyter configuration of users' servers, a folder per role (``student``, ``instructor``):
#: which of nbgrader's extensions load, and nbgrader's settings. The hub points each server's
#: ``JUPYTER_CONFIG_PATH`` at its user's folder (course_hub.grading).
ROLE_CONFIG = _PACKAGE / "jupyter"

#: What ``deploy/install.sh`` needs, as shell variables (see :func:`shell_assignments`).
FOR_INSTALL_SH = {
    "PREFIX": PREFIX,
    "VENV": VENV,
    "PROXY_DIR": PROXY_DIR,
    "PROXY_NODE_DIR": PROXY_NODE_DIR,
    "SYSTEMD_RUNTIME": SYSTEMD_RUNTIME,
    "SYSTEMD_UNIT": SYSTEMD_UNIT,
    "RC_LOCAL": RC_LOCAL,
    "PROFILE_SCRIPT": PROFILE_SCRIPT,
}


def shell_assignments(variables=None):
    """Return ``NAME=value`` lines, quoted for the shell, for ``eval`` in ``install.sh``."""
    variables = FOR_INSTALL_SH if variables is None else variables
    return "\n".join(f"{name}={shlex.quote(str(value))}" for name, value in variables.items())


if __name__ == "__main__":
    print(shell_assignments())
