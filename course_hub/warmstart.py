"""Warm starts of students' servers: one process imports the server's code once, then forks a server per login.

Most of a student's server start is Python importing its code: Jupyter Server, Notebook 7, the
server extensions, and JupyterHub's single-user module, which pulls in the hub's database layer
(SQLAlchemy, Alembic) and an HTTP client (aiohttp) at import. That is about 0.9 CPU-s of the
1.3 CPU-s a server costs a login (``bench/load_test.py`` splits a login's CPU by process), paid
again by every student. Here one process, started by the hub beside it (the *warm starter*),
imports that code once and forks each student's server from itself: the copy starts with
everything imported.

A forked server is set up as :class:`course_hub.spawner.LocalStudentSpawner` sets up a server
it executes: a session of its own, the student's memory cgroup (or the per-process rlimit),
the lower CPU priority, then the student's groups and user, the home folder as working folder,
exactly the environment the hub gives the server (nothing of the warm starter's), standard
input from ``/dev/null``, output to the hub's log, no other open file, and the process title
of the command it stands for (``ps`` shows ``.../jupyterhub-singleuser --HubAuth.base_url=...``,
cut at the end where longer than the room of the warm starter's own command line). Then it runs
JupyterHub's ``jupyterhub-singleuser`` entry point with the server's arguments.

What differs from an executed server, and why it is safe:

- The copy's memory is the warm starter's: modules only. The warm starter is started with an
  environment of ``PATH`` and the locale only and reads no secret before it forks; the server
  gets its token from the environment it is handed.
- A process that gave up root without executing a program stays *undumpable* (Linux): the
  student cannot attach a debugger to their server or read its memory, nor its ``/proc``
  files other than the public ones. Nothing needs that (the memory indicator reads the public
  ``statm``; kernels and terminals are executed programs, dumpable as before).
- Every server shares the warm starter's string-hash seed; undumpable, no student can read it.
- Modules that read a variable at import time read the warm starter's environment. The trait
  defaults among them (the path of the server's ``_xsrf`` cookie, the user name in kernel
  messages: :data:`IMPORT_TIME_TRAITS`) are given to the server as configuration from its own
  environment; a server whose environment gives one of the others
  (:data:`IMPORT_TIME_VARIABLES`) a value the warm starter lacks is executed instead.
  ``tests/test_warmstart.py`` finds every such read in the preloaded code, so an upgrade that
  adds one fails there until it is handled here.

The hub talks to the warm starter over its standard input and output (a private pipe, no
socket anyone else could reach): one JSON request per line, one JSON answer per line. The warm
starter exits with its hub (parent-death signal, and the end of its input); the servers it
forked live on in their own sessions, as servers the hub executes do, and it reaps those that
end while it runs. If it cannot start, dies, or refuses a request, the spawner logs why and
starts that server the usual way.
"""
import asyncio
import ctypes
import json
import os
import pathlib
import pwd
import select
import signal
import sys
import threading
import time

#: The command a warm-started server stands for: JupyterHub's single-user script beside this
#: interpreter. Any other ``Spawner.cmd`` is executed as configured.
SINGLEUSER = pathlib.Path(sys.executable).parent / "jupyterhub-singleuser"
#: Trait defaults that JupyterHub's service authentication and jupyter_client's session take
#: from the environment when their class is defined (at import): ``(Class.trait, variable,
#: value when unset or empty)``. A forked server gets each as configuration on its command line,
#: from its own environment, as an executed server would have it (the cookie path of the
#: server's ``_xsrf`` cookie is HubAuth.base_url).
IMPORT_TIME_TRAITS = (("HubAuth.base_url", "JUPYTERHUB_SERVICE_PREFIX", "/"),
                      ("HubAuth.keyfile", "JUPYTERHUB_SSL_KEYFILE", ""),
                      ("HubAuth.certfile", "JUPYTERHUB_SSL_CERTFILE", ""),
                      ("HubAuth.client_ca", "JUPYTERHUB_SSL_CLIENT_CA", ""),
                      ("Session.username", "USER", "username"))
#: The other variables the preloaded modules read at import (JupyterHub's choice of application
#: class and of extensions, its metrics and anonymous-XSRF settings, traitlets, tornado, pyzmq,
#: Jupyter's paths and gateway client, the pure-Python switches of aiohttp and its helpers,
#: debugging switches) and the interpreter's own: a server whose environment gives one a value
#: the warm starter does not have is executed, so that it imports its code with it.
IMPORT_TIME_VARIABLES = ("JUPYTERHUB_SINGLEUSER_EXTENSION", "JUPYTERHUB_SINGLEUSER_APP",
                         "JUPYTERHUB_SINGLEUSER_LOAD_OTHER_EXTENSIONS", "JUPYTERHUB_METRICS_PREFIX",
                         "JUPYTERHUB_SERVER_SPAWN_DURATION_SECONDS_BUCKETS",
                         "JUPYTERHUB_SERVER_STOP_DURATION_SECONDS_BUCKETS",
                         "JUPYTERHUB_XSRF_ANONYMOUS_IP_CIDRS", "JUPYTERHUB_XSRF_ANONYMOUS_ID_HEADERS",
                         "TRAITLETS_APPLICATION_RAISE_CONFIG_FILE_ERROR", "TORNADO_EXTENSION",
                         "TORNADO_NO_EXTENSION", "PYZMQ_BACKEND", "JUPYTER_ALLOW_INSECURE_WRITES",
                         "PROGRAMDATA", "KERNEL_LAUNCH_TIMEOUT", "JUPYTER_GATEWAY_MAX_REQUEST_RETRIES",
                         "GATEWAY_WS_PING_INTERVAL_SECS", "AIOHTTP_NO_EXTENSIONS", "FROZENLIST_NO_EXTENSIONS",
                         "MULTIDICT_NO_EXTENSIONS", "PROPCACHE_NO_EXTENSIONS", "YARL_NO_EXTENSIONS",
                         "PYTHONASYNCIODEBUG", "PSUTIL_DEBUG", "SPT_DEBUG", "_PYTHON_PROJECT_BASE",
                         "PYTHONPATH", "PYTHONHOME")
#: Variables read at import whose value a server never uses, with the reason.
IMPORT_TIME_READS_WITHOUT_EFFECT = {
    "JUPYTERHUB_API_URL": "HubAuth.api_url has a dynamic default that reads it again when a server needs it",
    "SHELL": "SystemdSpawner.default_shell, a setting of the hub's other spawner",
}
#: What a server imports as it starts (JupyterHub's single-user module, Jupyter Server, Notebook
#: 7, the students' server extensions, the kernels' client); a module missing here is imported
#: by the server itself.
PRELOAD = ("setproctitle", "course_hub.serverprocess", "course_hub.memory", "jupyterhub.singleuser",
           "jupyter_server.serverapp", "notebook.app", "notebook_shim.shim", "jupyter_server_terminals.app",
           "terminado", "nbgitpuller", "jupyter_resource_usage.server_extension", "jupyter_resource_usage.api",
           "course_hub.lab_redirect", "course_hub.assignment_list",
           "jupyter_server.services.contents.largefilemanager",
           "jupyter_server.services.kernels.connection.channels", "tornado.websocket")
#: Seconds a forked server may take to set itself up (cgroup, priority, user) before it is killed.
SETUP_SECONDS = 30
#: Seconds the hub waits for the warm starter to import the server's code (busy machine).
READY_SECONDS = 180
#: Seconds the hub waits for the answer to one request.
ANSWER_SECONDS = 60
#: After the warm starter failed to start, servers are executed for this many seconds before
#: the hub tries again (a class logging in meanwhile does not wait for it each time).
RETRY_SECONDS = 300

_PR_SET_PDEATHSIG = 1


class WarmStartError(RuntimeError):
    """A warm start could not be made; the server is then started the usual way."""


# ---- the warm starter (its own process) --------------------------------------------------------
def _die_with_parent():
    """Have the kernel send SIGTERM to this process when its parent (the hub) ends."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _reap(signum=None, frame=None):
    """Collect every forked server that has ended (a zombie would look alive to the hub)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def preload(modules=PRELOAD):
    """Import ``modules``; return the names that could not be imported (the server imports those)."""
    import importlib

    missing = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # a module not installed here is imported (or not) by the server itself
            missing.append(name)
    return missing


def check_request(request):
    """Return the request's parts, or raise :class:`WarmStartError` naming what is wrong.

    A request: ``argv`` (the single-user script, then its arguments), ``env`` (all of the
    server's environment), ``user`` (a user other than root), ``cgroup`` (true: enter the
    user's memory cgroup), ``rlimit_as`` (bytes, or null), ``nice``.
    """
    argv, env, user = request.get("argv"), request.get("env"), request.get("user")
    if not (isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv)):
        raise WarmStartError(f"argv must be a list of strings, got {argv!r}")
    if argv[0] != str(SINGLEUSER):
        raise WarmStartError(f"only {SINGLEUSER} is warm-started, not {argv[0]}")
    if not (isinstance(env, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())):
        raise WarmStartError("env must map strings to strings")
    imported = sorted(name for name in IMPORT_TIME_VARIABLES if env.get(name, "") != os.environ.get(name, ""))
    if imported:
        raise WarmStartError(f"the server's environment sets {', '.join(imported)}, read when its code is imported")
    try:
        entry = pwd.getpwnam(user)
    except (KeyError, TypeError):
        raise WarmStartError(f"no such user: {user!r}") from None
    if entry.pw_uid == 0:
        raise WarmStartError("a server is never warm-started as root")
    rlimit_as, nice = request.get("rlimit_as"), request.get("nice", 0)
    if rlimit_as is not None and not (isinstance(rlimit_as, int) and rlimit_as > 0):
        raise WarmStartError(f"rlimit_as must be a positive number of bytes or null, got {rlimit_as!r}")
    if not isinstance(nice, int):
        raise WarmStartError(f"nice must be a whole number, got {nice!r}")
    return argv, env, user, bool(request.get("cgroup")), rlimit_as, nice


def import_time_trait_arguments(env):
    """Command-line configuration giving :data:`IMPORT_TIME_TRAITS` the values ``env`` implies.

    The warm starter's environment sets none of these variables, so its classes hold the
    fallbacks: only the traits whose value differs are given.
    """
    return [f"--{trait}={env[variable]}" for trait, variable, fallback in IMPORT_TIME_TRAITS
            if env.get(variable) and env[variable] != fallback]


def _become_server(argv, env, user, cgroup, rlimit_as, nice):
    """In the forked child: turn this copy into the student's server process (see the module)."""
    from . import memory, serverprocess

    for number in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.setsid()  # as the spawner's start_new_session, before the set-up it shares with it
    serverprocess.set_up(user, memory.StudentCgroup(user) if cgroup else None, rlimit_as, nice)()
    # The student's own values first: a long title is cut at the end (the warm starter's
    # command line and environment are all the room it has).
    sys.argv = [argv[0], *import_time_trait_arguments(env), *argv[1:]]
    try:
        import setproctitle
    except ImportError:  # the title stays the warm starter's; the server works the same
        pass
    else:
        # Before the environment changes: the title takes the memory of the original one.
        setproctitle.setproctitle(" ".join(sys.argv))
    os.environ.clear()
    os.environ.update(env)


def _redirect_standard_streams():
    """Standard input from /dev/null, output to the hub's log (this process's standard error)."""
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)


def fork_server(request):
    """Fork a server for ``request``.

    Returns ``(pid, None)`` in the warm starter, ``(0, argv)`` in the forked server once it is
    set up (the caller then runs it). Raises :class:`WarmStartError` in the warm starter when
    the request is wrong or the child could not set itself up (the child is gone then).
    """
    argv, env, user, cgroup, rlimit_as, nice = check_request(request)
    status_read, status_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the server-to-be
        try:
            os.close(status_read)
            _redirect_standard_streams()
            os.closerange(3, status_write)
            os.closerange(status_write + 1, os.sysconf("SC_OPEN_MAX"))
            _become_server(argv, env, user, cgroup, rlimit_as, nice)
            os.write(status_write, b"ok")
            os.close(status_write)
        except BaseException as exc:  # noqa: B036 - anything here must end this copy, never return
            try:
                os.write(status_write, f"{type(exc).__name__}: {exc}".encode()[:4000])
            finally:
                os._exit(127)
        return 0, argv
    os.close(status_write)
    try:
        message = b""
        while True:
            ready, _, _ = select.select([status_read], [], [], SETUP_SECONDS)
            if not ready:
                os.kill(pid, signal.SIGKILL)
                raise WarmStartError(f"the forked server did not set itself up in {SETUP_SECONDS} s")
            chunk = os.read(status_read, 4096)
            if not chunk:
                break
            message += chunk
    finally:
        os.close(status_read)
    if message != b"ok":
        raise WarmStartError(f"the forked server failed to set itself up: {message.decode(errors='replace') or 'it died'}")
    return pid, None


def serve(requests, answers):
    """Answer requests (JSON lines from ``requests``) until the input ends.

    Returns None in the warm starter at the end of the input, or a forked server's ``argv``
    in that server.
    """
    for line in requests:
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise WarmStartError("a request must be a JSON object")
            pid, argv = fork_server(request)
        except (WarmStartError, ValueError, OSError) as exc:
            answer = {"error": f"{type(exc).__name__}: {exc}" if not isinstance(exc, WarmStartError) else str(exc)}
        else:
            if pid == 0:
                return argv
            answer = {"pid": pid}
        answers.write(json.dumps(answer).encode() + b"\n")
        answers.flush()
    return None


def main():
    """The warm starter: import the server's code, say so, then fork servers on request."""
    _die_with_parent()
    if os.getppid() == 1:  # the hub was gone before the death signal was armed
        return 0
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C at the hub's terminal is the hub's
    missing = preload()
    # A process with a second thread cannot be forked safely: the copy has only this one.
    if threading.active_count() != 1:
        threads = ", ".join(t.name for t in threading.enumerate())
        print(f"course_hub.warmstart: threads after the imports ({threads}): no warm starts", file=sys.stderr)
        return 1
    signal.signal(signal.SIGCHLD, _reap)
    answers = sys.stdout.buffer
    answers.write(json.dumps({"ready": True, "not_preloaded": missing}).encode() + b"\n")
    answers.flush()
    argv = serve(sys.stdin.buffer, answers)
    if argv is None:
        return 0
    from jupyterhub.singleuser import main as singleuser_main

    return singleuser_main()


# ---- the hub's side ----------------------------------------------------------------------------
class WarmStarter:
    """The hub's handle on its warm starter: started at the first server start, restarted if it died."""

    def __init__(self, log, python=sys.executable):
        self.log = log
        self.python = python
        self._process = None
        self._lock = asyncio.Lock()
        self._failed_at = None  # time.monotonic() of the last failed start

    @staticmethod
    def environment():
        """The warm starter's environment: the search path and the locale, nothing else."""
        env = {"PATH": f"{pathlib.Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin"}
        env.update({name: os.environ[name] for name in ("LANG", "LC_ALL") if name in os.environ})
        return env

    async def _started(self):
        if self._process is not None and self._process.returncode is None:
            return self._process
        if self._failed_at is not None and time.monotonic() - self._failed_at < RETRY_SECONDS:
            raise WarmStartError(f"the warm starter failed to start {time.monotonic() - self._failed_at:.0f} s ago; "
                                 f"the next try is {RETRY_SECONDS} s after that")
        self._failed_at = time.monotonic()  # until it says it is ready
        # -P: no working folder on the module path (the hub's could hold anything)
        try:
            process = await asyncio.create_subprocess_exec(
                self.python, "-P", "-m", "course_hub.warmstart", stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, env=self.environment(), cwd="/")
        except OSError as exc:
            raise WarmStartError(f"the warm starter did not start: {exc}") from None
        try:
            line = await asyncio.wait_for(process.stdout.readline(), READY_SECONDS)
            hello = json.loads(line or b"null")
            if not (isinstance(hello, dict) and hello.get("ready")):
                raise WarmStartError(f"the warm starter did not start (it said {line!r})")
        except (asyncio.TimeoutError, ValueError, WarmStartError) as exc:
            await self._kill(process)
            raise WarmStartError(f"the warm starter did not start: {exc or type(exc).__name__}") from None
        if hello.get("not_preloaded"):
            self.log.info("warm starter: not preloaded (servers import them): %s", ", ".join(hello["not_preloaded"]))
        self.log.info("warm starter ready (pid %s): servers start from its imported code", process.pid)
        self._process, self._failed_at = process, None
        return process

    @staticmethod
    async def _kill(process):
        if process.returncode is None:
            process.kill()
        await process.wait()

    async def start_server(self, argv, env, user, cgroup, rlimit_as, nice):
        """Fork a server for ``user``; return its pid. Raises :class:`WarmStartError`."""
        request = json.dumps({"argv": argv, "env": env, "user": user, "cgroup": cgroup,
                              "rlimit_as": rlimit_as, "nice": nice}).encode() + b"\n"
        async with self._lock:  # one request at a time on the pipe
            for attempt in (1, 2):
                process = await self._started()
                try:
                    process.stdin.write(request)
                    await process.stdin.drain()
                except ConnectionError:
                    # It had ended before the request (killed, say): replace it once, at once.
                    # (Not after the request was taken: a server may have been forked by then.)
                    await self._kill(process)
                    if attempt == 2:
                        raise WarmStartError("the warm starter ended as it was asked") from None
                    self.log.warning("the warm starter (pid %s) had ended: starting a new one", process.pid)
                    continue
                try:
                    line = await asyncio.wait_for(process.stdout.readline(), ANSWER_SECONDS)
                except asyncio.TimeoutError:
                    line = b""
                if not line:  # ended or hangs: not trusted again, the next start makes a new one
                    await self._kill(process)
                    raise WarmStartError(f"the warm starter ended or did not answer within {ANSWER_SECONDS} s")
                break
        try:
            answer = json.loads(line)
        except ValueError:
            answer = None
        if not isinstance(answer, dict) or not isinstance(answer.get("pid"), int):
            raise WarmStartError((answer or {}).get("error") or f"unexpected answer {line!r}")
        return answer["pid"]

    async def stop(self):
        """End the warm starter (the servers it forked keep running)."""
        if self._process is not None:
            await self._kill(self._process)
            self._process = None


if __name__ == "__main__":
    sys.exit(main())
