"""JupyterHub configuration of the course server.

Students log in with their Unix account (PAM) and land in ``~/course``, their own copy of the
course notebooks, synced from the course repository by nbgitpuller's git-pull page at every landing.

This file is a list of decisions; the code it wires in is the installed package ``course_hub``.
Where things are comes from ``course_hub.paths``; everything else from the settings
(``course_hub.settings``): ``deploy/hub-settings.yaml``, shared with the Kubernetes deployment,
under this server's site file (``paths.SITE_SETTINGS``, or the file ``DLCOURSE_SETTINGS`` names).
``GIT_CONFIG_SYSTEM``, git's own variable, is passed on to the students' servers when it is set.
"""
import os
import sys

from course_hub import grading, hooks, lab_redirect, paths, repository, tls
from course_hub import settings as course_settings
from course_hub.auth import CoursePAMAuthenticator
from course_hub.spawner import LocalStudentSpawner, SystemdStudentSpawner

c = get_config()  # noqa: F821  (provided by JupyterHub when it loads this file)

settings = course_settings.for_this_server()
server = settings["server"]
STUDENTS = settings["groups"]["students"]
INSTRUCTORS = settings["groups"]["instructors"]
STATE_DIR = server["state_dir"]
RUN_DIR = server["run_dir"]  # pid files: emptied at boot (course_hub.paths.RUN_DIR)
COURSE_REPO = str(server["course_repo"])
COURSE_FOLDER = "course"  # ~/course; the landing syncs it and opens hub.default_url in it

# ---- The hub and its proxy ----------------------------------------------------------------
# Students type their Unix password into the login form: HTTPS on the course port, with the
# institution's certificate or a self-signed one (course-hub makes it), or behind a TLS front
# end, and then on localhost only (course_hub.tls).
HTTPS = tls.https_mode(server)
c.JupyterHub.ip = "127.0.0.1" if HTTPS == "front-end" else server["ip"]
c.JupyterHub.port = settings["hub"]["port"]
if HTTPS != "front-end":
    c.JupyterHub.ssl_cert, c.JupyterHub.ssl_key = map(str, tls.certificate_files(server))
# Cookies travel over HTTPS only (behind a front end too: the browser speaks HTTPS to it): the
# hub's, and the users' servers' (the hub passes cookie_options on to them, for their login
# cookie; their _xsrf cookie is set in their role's Jupyter configuration, course_hub/jupyter/,
# because a tornado_settings argument here would replace the instructors' settings there).
c.JupyterHub.tornado_settings = {"cookie_options": {"secure": True}}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = server["hub_api_port"]
c.JupyterHub.db_url = f"sqlite:///{STATE_DIR / paths.DATABASE}"
c.JupyterHub.cookie_secret_file = str(STATE_DIR / paths.COOKIE_SECRET)
c.JupyterHub.pid_file = str(RUN_DIR / paths.HUB_PIDFILE)
c.ConfigurableHTTPProxy.command = [str(paths.PROXY_COMMAND)]
# The proxy's launcher runs `/usr/bin/env node` and the proxy inherits the hub's environment: its
# Node must be the pinned one, not the machine's (often older than the proxy supports). Students
# do not get it: their PATH is set below.
if str(paths.PROXY_NODE_DIR) not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = os.pathsep.join([str(paths.PROXY_NODE_DIR), os.environ.get("PATH", os.defpath)])
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{server['proxy_api_port']}"
c.ConfigurableHTTPProxy.pid_file = str(RUN_DIR / paths.PROXY_PIDFILE)
# A hub restart (an upgrade, a crash brought back by systemd) leaves students' servers and
# their unsaved kernels running; the restarted hub finds them again from its database.
c.JupyterHub.cleanup_servers = False

# ---- Who may log in -------------------------------------------------------------------------
# PAM, with every refusal taking the same time (course_hub.auth): no password oracle.
c.JupyterHub.authenticator_class = CoursePAMAuthenticator
c.CoursePAMAuthenticator.refused_login_seconds = float(server["refused_login_seconds"])
# JupyterHub 5+ lets nobody in without an allow rule: the course's two Unix groups.
c.PAMAuthenticator.allowed_groups = {STUDENTS, INSTRUCTORS}
c.PAMAuthenticator.admin_groups = {INSTRUCTORS}
# Mirror the course's Unix groups into hub groups, so roles granted to a group apply.
c.PAMAuthenticator.manage_groups = True
c.PAMAuthenticator.post_auth_hook = hooks.make_course_groups_hook([STUDENTS, INSTRUCTORS])
# Authorization (who may open whose server) is RBAC: the roles of the shared settings.
ROLES = list(settings["roles"])

# ---- The students' servers --------------------------------------------------------------------
SPAWNER = course_settings.chosen_spawner(settings)  # "auto": SystemdSpawner where systemd is PID 1
if SPAWNER == "systemd":
    c.JupyterHub.spawner_class = SystemdStudentSpawner
    # systemd enforces mem_limit (MemoryMax) and cpu_limit (CPUQuota) on the whole unit.
    c.SystemdSpawner.isolate_tmp = True
    c.SystemdSpawner.isolate_devices = True
    c.SystemdSpawner.disable_user_sudo = True
else:
    # mem_limit holds for the sum of a student's processes: a memory cgroup per student, or an
    # RLIMIT_AS per process where no cgroup can be made (course_hub.spawner, course_hub.memory).
    c.JupyterHub.spawner_class = LocalStudentSpawner
    # Servers forked from a process that imported their code once (course_hub.warmstart).
    c.LocalStudentSpawner.warm_start = server["warm_start"]
c.Spawner.mem_limit = settings["limits"]["memory"]
c.Spawner.cpu_limit = float(settings["limits"]["cpu"])  # enforced by SystemdSpawner only
# Each student sees their memory against mem_limit in Notebook 7's top bar (jupyter-resource-usage,
# switched on by the labconfig override in the virtualenv's etc/jupyter). Its Prometheus gauges
# are off: nobody scrapes them, and they cost every server a scan of its processes each second.
c.Spawner.args.append("--ResourceUseDisplay.enable_prometheus_metrics=False")
# The world-readable course virtualenv, whatever the hub's own PATH holds.
c.Spawner.cmd = [str(paths.VENV_BIN / "jupyterhub-singleuser")]
c.Spawner.env_keep = ["LANG", "LC_ALL"]
# BLAS threads match the student's share of the machine, and few malloc arenas: a BLAS with a
# thread (and buffers) per core of a big server would otherwise reserve gigabytes of address
# space and hit the memory rlimit while importing numpy.
THREADS = str(max(1, int(c.Spawner.cpu_limit)))
c.Spawner.environment = {
    "PATH": f"{paths.VENV_BIN}:/usr/local/bin:/usr/bin:/bin",
    "OMP_NUM_THREADS": THREADS,
    "OPENBLAS_NUM_THREADS": THREADS,
    "MKL_NUM_THREADS": THREADS,
    "MALLOC_ARENA_MAX": "2",
    "NBGITPULLER_DEPTH": "0",  # full clones of the course: later merges need the history
}
# Students use Notebook 7, nbgitpuller, ipywidgets and terminals. The language-server proxy
# (jupyter_lsp; no language server is installed) and JupyterLab's own server extension serve
# none of them, and each server start paid for them: importing JupyterLab's runs `node yarn.js
# config` (bench/login_cpu.py). Without it /lab would answer 500: course_hub.lab_redirect
# sends /lab to Notebook 7's /tree instead.
SERVER_EXTENSIONS = {"jupyter_lsp": False, "jupyterlab": False, lab_redirect.EXTENSION: True}
c.Spawner.args.append(f"--ServerApp.jpserver_extensions={SERVER_EXTENSIONS!r}")
c.Spawner.notebook_dir = "~"


def course_landing(open_path):
    """nbgitpuller's git-pull link: merge the published course into ~/course, then open_path."""
    return hooks.landing_url(COURSE_REPO, repository.BRANCH, COURSE_FOLDER, open_path)


# Every landing on a server (the login form, the hub's home page, a bookmark of the hub) goes
# through nbgitpuller's page, which clones or merges ~/course in the student's server, also one
# that kept running, then opens Notebook 7's UI in ~/course (hub.default_url). It is the one
# course sync: a sync before each spawn as well cost 0.2 CPU-s a login and delayed every start.
c.Spawner.default_url = course_landing(settings["hub"]["default_url"])
if os.environ.get("GIT_CONFIG_SYSTEM"):  # the servers' git (landing sync, terminals) trusts the same
    c.Spawner.environment["GIT_CONFIG_SYSTEM"] = os.environ["GIT_CONFIG_SYSTEM"]
# A whole class logging in at once is CPU-bound (about 5 CPU-seconds a student): with 50 students
# on 2 cores, spawns took up to 138 s (bench/load_test.py); 300 s leaves room on a busy machine.
c.Spawner.start_timeout = 300
c.Spawner.http_timeout = 300
# Before a server starts: an instructor gets ~/course-edit, a working copy of the course
# repository, and lands there (through the course sync): they publish from it (course-publish).
# Kernels talk to their server over Unix sockets in the user's private runtime folder, not TCP
# ports: 100 kernels starting at once picked ports that another kernel bound first ("Address
# already in use"), and the restarts cost CPU and failed logins (bench/load_test.py -n 100); a
# TCP port on localhost is also reachable by every other user of the machine. (Homes too long
# for a socket's path keep TCP: hooks.kernel_transport_hook.)
c.Spawner.pre_spawn_hook = hooks.chain_hooks(
    hooks.kernel_transport_hook,
    hooks.make_instructor_spawn_hook(COURSE_REPO, INSTRUCTORS, landing=course_landing),
)
# An instructor's $JUPYTERHUB_API_TOKEN may also list the students and read their activity
# (what `course-status` shows), and read the instructors' own servers too (instructors are
# admins, so they hold these scopes; without them an instructor's running server would show as
# stopped); students' servers keep the default "post activity only".
INSTRUCTOR_SCOPES = [scope for role in settings["roles"] if role["name"] == "instructor"
                     for scope in role["scopes"]]
INSTRUCTOR_SCOPES += [f"{scope}!group={INSTRUCTORS}" for scope in ("read:users", "read:users:activity", "read:servers")]
c.Spawner.server_token_scopes = hooks.make_server_token_scopes(INSTRUCTORS, INSTRUCTOR_SCOPES)

# ---- Services: stop servers nobody uses ---------------------------------------------------------
culler = settings["idle_culler"]
c.JupyterHub.services = [
    {
        "name": culler["name"],
        "command": [
            sys.executable,
            "-m",
            "jupyterhub_idle_culler",
            f"--timeout={culler['timeout_seconds']}",
            f"--cull-every={culler['every_seconds']}",
            f"--max-age={culler['max_age_seconds']}",
        ],
    }
]
ROLES.append({"name": f"{culler['name']}-role", "scopes": culler["scopes"], "services": [culler["name"]]})
c.JupyterHub.load_roles = ROLES

# ---- Grading: nbgrader for the course groups, students' code graded in a sandbox ------------------
# Each server reads its role's Jupyter configuration (course_hub/jupyter/<role>: students get the
# Assignments list, loaded at its first use; instructors nbgrader's extensions and the formgrader)
# and learns where the exchange, the course directory and the grading sandbox are.
c.Spawner.environment.update(grading.server_environment(settings))
# An instructor gets ~/course-grading, a link to the course directory: the formgrader only works
# on a course directory inside the server's root (their home).
c.Spawner.pre_spawn_hook = hooks.chain_hooks(
    c.Spawner.pre_spawn_hook,
    grading.make_instructor_link_hook(grading.locations(settings)["course"], INSTRUCTORS),
)
# The sandbox runs as root, so it is the hub's to start (instructors' servers cannot switch users):
# it runs each submitted notebook as the sandbox account, with the settings' limits.
c.JupyterHub.services.append(grading.sandbox_service(settings))
