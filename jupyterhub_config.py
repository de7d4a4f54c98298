"""JupyterHub configuration of the course server.

Students log in with their Unix account (PAM) and land in ``~/course``, their own copy of the
course notebooks, synced from the course repository by nbgitpuller before their server starts.

Group names, the port, the culler, the limits and the RBAC roles come from
``deploy/hub-settings.yaml`` (shared with the Kubernetes deployment). Every path and port is
named once below, with an environment variable to override it (the tests start hubs on free
ports with temporary state):

==========================  ===================================  ===============================
variable                    default                              what
==========================  ===================================  ===============================
DLCOURSE_SETTINGS           deploy/hub-settings.yaml beside this the shared settings file
DLCOURSE_PREFIX             /opt/dlcourse                        venv/ and proxy/ live here
DLCOURSE_STATE_DIR          /var/lib/dlcourse                    database, cookie secret, pids
DLCOURSE_HUB_IP             (all interfaces)                     address students connect to
DLCOURSE_HUB_PORT           hub.port of the settings (8788)      port students connect to
DLCOURSE_HUB_API_PORT       8081                                 hub API, for servers/proxy
DLCOURSE_PROXY_API_PORT     8001                                 proxy's REST API (localhost)
DLCOURSE_COURSE_REPO        /srv/dlcourse/course.git             the course's git repository
DLCOURSE_COURSE_BRANCH      main                                 its branch
DLCOURSE_SPAWNER            auto                                 local, systemd or auto
DLCOURSE_MEMORY_LIMIT       limits.memory of the settings        per-student memory
DLCOURSE_CULL_TIMEOUT       idle_culler.timeout_seconds          idle time before a stop
DLCOURSE_CULL_EVERY         idle_culler.every_seconds            how often the culler looks
DLCOURSE_SSL_CERT/_KEY      (none: plain HTTP)                   serve HTTPS with these files
GIT_CONFIG_SYSTEM           (git's /etc/gitconfig)               passed to the course sync
==========================  ===================================  ===============================
"""
import os
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "deploy"))
import course_hub  # noqa: E402  (deploy/course_hub.py, found through the line above)
import hub_settings  # noqa: E402
from course_admin import hub_hooks  # noqa: E402  (deploy/course_admin: instructors' tools)

c = get_config()  # noqa: F821  (provided by JupyterHub when it loads this file)


def env(name, default):
    """Return the environment's value for ``name``, or ``default`` when unset or empty."""
    return os.environ.get(name) or default


settings = hub_settings.load_settings(env("DLCOURSE_SETTINGS", hub_settings.DEFAULT_PATH))
STUDENTS = settings["groups"]["students"]
INSTRUCTORS = settings["groups"]["instructors"]

# ---- Where things are -------------------------------------------------------------------
PREFIX = pathlib.Path(env("DLCOURSE_PREFIX", "/opt/dlcourse"))
VENV_BIN = PREFIX / "venv" / "bin"
PROXY_COMMAND = PREFIX / "proxy" / "node_modules" / ".bin" / "configurable-http-proxy"
PROXY_NODE_DIR = PREFIX / "proxy" / "bin"  # the pinned Node the proxy runs on (deploy/install.sh)
STATE_DIR = pathlib.Path(env("DLCOURSE_STATE_DIR", "/var/lib/dlcourse"))
HUB_IP = env("DLCOURSE_HUB_IP", "")
HUB_PORT = int(env("DLCOURSE_HUB_PORT", settings["hub"]["port"]))
HUB_API_PORT = int(env("DLCOURSE_HUB_API_PORT", 8081))
PROXY_API_PORT = int(env("DLCOURSE_PROXY_API_PORT", 8001))
COURSE_REPO = env("DLCOURSE_COURSE_REPO", "/srv/dlcourse/course.git")
COURSE_BRANCH = env("DLCOURSE_COURSE_BRANCH", "main")
COURSE_FOLDER = "course"  # ~/course; hub.default_url opens it

# ---- The hub and its proxy ----------------------------------------------------------------
c.JupyterHub.ip = HUB_IP
c.JupyterHub.port = HUB_PORT
# Students type their Unix password into the login form: serve HTTPS when a certificate is
# given (or put the hub behind a TLS-terminating front end).
if os.environ.get("DLCOURSE_SSL_CERT"):
    if not os.environ.get("DLCOURSE_SSL_KEY"):
        raise ValueError("DLCOURSE_SSL_KEY: expected the key file of DLCOURSE_SSL_CERT, got nothing")
    c.JupyterHub.ssl_cert = os.environ["DLCOURSE_SSL_CERT"]
    c.JupyterHub.ssl_key = os.environ["DLCOURSE_SSL_KEY"]
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = HUB_API_PORT
c.JupyterHub.db_url = f"sqlite:///{STATE_DIR / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(STATE_DIR / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(STATE_DIR / "jupyterhub.pid")
c.ConfigurableHTTPProxy.command = [str(PROXY_COMMAND)]
# The proxy's launcher runs `/usr/bin/env node` and the proxy inherits the hub's environment: its
# Node must be the pinned one, not the machine's (often older than the proxy supports). Students
# do not get it: their PATH is set below.
if str(PROXY_NODE_DIR) not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = os.pathsep.join([str(PROXY_NODE_DIR), os.environ.get("PATH", os.defpath)])
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{PROXY_API_PORT}"
c.ConfigurableHTTPProxy.pid_file = str(STATE_DIR / "jupyterhub-proxy.pid")
# A hub restart (an upgrade, a crash brought back by systemd) leaves students' servers and
# their unsaved kernels running; the restarted hub finds them again from its database.
c.JupyterHub.cleanup_servers = False

# ---- Who may log in -------------------------------------------------------------------------
c.JupyterHub.authenticator_class = "pam"
# JupyterHub 5+ lets nobody in without an allow rule: the course's two Unix groups.
c.PAMAuthenticator.allowed_groups = {STUDENTS, INSTRUCTORS}
c.PAMAuthenticator.admin_groups = {INSTRUCTORS}
# Mirror the course's Unix groups into hub groups, so roles granted to a group apply.
c.PAMAuthenticator.manage_groups = True
c.PAMAuthenticator.post_auth_hook = course_hub.make_course_groups_hook([STUDENTS, INSTRUCTORS])
# Authorization (who may open whose server) is RBAC: the roles of the shared settings.
ROLES = list(settings["roles"])

# ---- The students' servers --------------------------------------------------------------------
SPAWNER = env("DLCOURSE_SPAWNER", "auto")
if SPAWNER == "auto":
    # SystemdSpawner needs systemd as PID 1 (it runs each server as a transient unit).
    SPAWNER = "systemd" if os.path.isdir("/run/systemd/system") else "local"
if SPAWNER == "systemd":
    c.JupyterHub.spawner_class = "systemdspawner.SystemdSpawner"
    # systemd enforces mem_limit (MemoryMax) and cpu_limit (CPUQuota) on the whole unit.
    c.SystemdSpawner.isolate_tmp = True
    c.SystemdSpawner.isolate_devices = True
    c.SystemdSpawner.disable_user_sudo = True
elif SPAWNER == "local":
    # mem_limit becomes an RLIMIT_AS on the server and each kernel (see deploy/course_hub.py).
    c.JupyterHub.spawner_class = course_hub.RlimitLocalProcessSpawner
else:
    raise ValueError(f"DLCOURSE_SPAWNER: expected 'auto', 'local' or 'systemd', got {SPAWNER!r}")
c.Spawner.mem_limit = env("DLCOURSE_MEMORY_LIMIT", str(settings["limits"]["memory"]))
c.Spawner.cpu_limit = float(settings["limits"]["cpu"])  # enforced by SystemdSpawner only
# The world-readable course virtualenv, whatever the hub's own PATH holds.
c.Spawner.cmd = [str(VENV_BIN / "jupyterhub-singleuser")]
c.Spawner.env_keep = ["LANG", "LC_ALL"]
# BLAS threads match the student's share of the machine, and few malloc arenas: a BLAS with a
# thread (and buffers) per core of a big server would otherwise reserve gigabytes of address
# space and hit the memory rlimit while importing numpy.
THREADS = str(max(1, int(c.Spawner.cpu_limit)))
c.Spawner.environment = {
    "PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin",
    "OMP_NUM_THREADS": THREADS,
    "OPENBLAS_NUM_THREADS": THREADS,
    "MKL_NUM_THREADS": THREADS,
    "MALLOC_ARENA_MAX": "2",
}
c.Spawner.notebook_dir = "~"
c.Spawner.default_url = settings["hub"]["default_url"]  # Notebook 7's UI, in ~/course
# A whole class logging in at once is CPU-bound (about 5 CPU-seconds a student): with 50 students
# on 2 cores, spawns took up to 138 s (bench/load_test.py); 300 s leaves room on a busy machine.
c.Spawner.start_timeout = 300
c.Spawner.http_timeout = 300
# Everyone's ~/course is synced; an instructor also gets ~/course-edit, a working copy of the
# course repository, and opens it: they publish from there (deploy/course_admin/publish.py).
c.Spawner.pre_spawn_hook = hub_hooks.chain_hooks(
    course_hub.make_course_sync_hook(
        COURSE_REPO, COURSE_BRANCH, COURSE_FOLDER, git_config_system=os.environ.get("GIT_CONFIG_SYSTEM")
    ),
    hub_hooks.make_instructor_spawn_hook(COURSE_REPO, INSTRUCTORS),
)
# An instructor's $JUPYTERHUB_API_TOKEN may also list the students and read their activity
# (what `course-status` shows); students' servers keep the default "post activity only".
INSTRUCTOR_SCOPES = [scope for role in settings["roles"] if role["name"] == "instructor"
                     for scope in role["scopes"]]
c.Spawner.server_token_scopes = hub_hooks.make_server_token_scopes(INSTRUCTORS, INSTRUCTOR_SCOPES)

# ---- Services: stop servers nobody uses ---------------------------------------------------------
culler = settings["services"]["idle_culler"]
c.JupyterHub.services = [
    {
        "name": culler["name"],
        "command": [
            sys.executable,
            "-m",
            "jupyterhub_idle_culler",
            f"--timeout={env('DLCOURSE_CULL_TIMEOUT', settings['idle_culler']['timeout_seconds'])}",
            f"--cull-every={env('DLCOURSE_CULL_EVERY', settings['idle_culler']['every_seconds'])}",
            f"--max-age={settings['idle_culler']['max_age_seconds']}",
        ],
    }
]
ROLES.append({"name": f"{culler['name']}-role", "scopes": culler["scopes"], "services": [culler["name"]]})
c.JupyterHub.load_roles = ROLES
