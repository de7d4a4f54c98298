"""The grading sandbox: students' code runs as an unprivileged account, one notebook at a time,
with a time and a memory limit, in a scratch copy of that one submission.

Who may switch users decides the shape. The hub runs as root; an instructor's server does not,
and under systemd its unit has ``NoNewPrivileges`` (no sudo, no setuid helper). So a small root
process, :func:`serve`, started by the hub as one of its services, listens on a Unix socket
(:data:`course_hub.paths.GRADER_SOCKET`) that only the instructors' group can reach, and checks
each caller's account (the socket's peer credentials). nbgrader, run by an instructor from their
terminal or the formgrader, grades as usual except that its ``Execute`` step is
:class:`course_hub.nbgrader_plugins.SandboxedExecute`: it sends the notebook, with hidden tests
restored, and the files of that submission's folder to the socket, and gets the executed
notebook back. The gradebook, the course directory and the other submissions stay with
nbgrader, as the instructor; the sandbox never sees a path of theirs.

For each notebook the service starts a worker (``python -m course_hub.sandbox run``, root),
which

* unpacks the files into a fresh scratch folder that belongs to the sandbox account
  (regular files only: no links, no absolute or ``..`` names, sizes bounded);
* runs the notebook with nbgrader's own ``Execute`` preprocessor, whose kernel is started
  through ``sandbox_enter.py``: as the sandbox account (no supplementary groups), in its own network
  namespace (no network at all: the kernel talks to the worker over Unix sockets in the scratch
  folder), with ``RLIMIT_AS`` (``grading.memory``: an allocation past it is a ``MemoryError``),
  ``RLIMIT_CPU``, ``RLIMIT_NPROC``, ``RLIMIT_FSIZE`` and no core files, and without the
  submission's folder on ``sys.path`` (a ``numpy.py`` or ``course_grading.py`` beside the
  notebook is not what the tests import);
* stops the notebook when its wall-clock limit (``grading.time_limit_seconds``, or less if the
  caller asks) runs out, and marks the cell that was running and every later code cell with an
  error, so that a test that never ran scores nothing (nbgrader gives full marks to a test
  cell without an error);
* kills every process of the sandbox account (``kill(-1)`` as that account) and deletes the
  scratch folder.

One notebook runs at a time per sandbox account (a lock file in
:data:`course_hub.paths.LOCK_DIR`), so a submission never meets another one's processes or
files. The service itself imports almost nothing; the worker, a fresh process per notebook,
imports nbgrader.

Command line (the hub starts ``serve``; ``run`` is its worker)::

    python -m course_hub.sandbox serve --socket PATH --scratch DIR --sandbox-user NAME
        --group INSTRUCTORS --time-limit SECONDS --memory SIZE
"""
import argparse
import fcntl
import grp
import io
import json
import os
import pathlib
import pwd
import secrets
import shutil
import signal
import socket
import socketserver
import stat
import struct
import subprocess
import sys
import tarfile
import threading
import time

from . import accounts, paths, sandbox_enter

# ---- limits that are not settings --------------------------------------------------------------
#: Largest notebook and largest folder of files one request may carry.
MAX_NOTEBOOK_BYTES = 64 * 2**20
MAX_FILES_BYTES = 256 * 2**20
#: Seconds of CPU a notebook may use beyond its wall-clock limit (a backstop: the wall clock
#: stops it first unless it runs several threads).
CPU_SLACK_SECONDS = 60
#: Seconds the service gives a worker beyond the notebook's limit before it kills it.
WORKER_GRACE_SECONDS = 120
#: Seconds a connection may take to send its request.
REQUEST_TIMEOUT_SECONDS = 120
#: The graded kernel's first step, as root: become the sandbox account, limited (a script of the
#: standard library alone, run with ``python -I`` in the submission's folder).
ENTER_SCRIPT = pathlib.Path(__file__).with_name("sandbox_enter.py")

_FRAME = struct.Struct("!Q")


class SandboxError(RuntimeError):
    """The sandbox refused a request or could not run it; the message says why."""


# ---- the wire: length-prefixed frames over the Unix socket ----------------------------------------
def send_frames(sock, *payloads):
    """Send each payload (bytes) as an 8-byte length and the bytes."""
    for payload in payloads:
        sock.sendall(_FRAME.pack(len(payload)) + payload)


def receive_frame(sock, limit, what):
    """Receive one frame of at most ``limit`` bytes; ``what`` names it in errors."""
    header = _receive_exactly(sock, _FRAME.size, what)
    (size,) = _FRAME.unpack(header)
    if size > limit:
        raise SandboxError(f"{what}: {size} bytes is more than the {limit} allowed")
    return _receive_exactly(sock, size, what)


def _receive_exactly(sock, size, what):
    chunks, received = [], 0
    while received < size:
        chunk = sock.recv(min(size - received, 2**20))
        if not chunk:
            raise SandboxError(f"{what}: the connection closed after {received} of {size} bytes")
        chunks.append(chunk)
        received += len(chunk)
    return b"".join(chunks)


# ---- the client: what SandboxedExecute calls -----------------------------------------------------
def pack_folder(folder, limit=MAX_FILES_BYTES):
    """A tar archive (bytes) of the regular files under ``folder``; links and special files are
    left out, and so is anything past ``limit`` bytes in all (with a SandboxError)."""
    folder = pathlib.Path(folder)
    buffer = io.BytesIO()
    total = 0
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for root, dirs, files in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if not os.path.islink(os.path.join(root, d)))
            for name in sorted(files):
                path = pathlib.Path(root) / name
                info = os.lstat(path)
                if not stat.S_ISREG(info.st_mode):
                    continue
                total += info.st_size
                if total > limit:
                    raise SandboxError(f"the files beside the notebook in {folder} exceed {limit} bytes")
                archive.add(path, arcname=str(path.relative_to(folder)), recursive=False)
    return buffer.getvalue()


def execute_remotely(socket_path, notebook_bytes, folder=None, cell_timeout=None, time_limit=None,
                     timeout=None):
    """Ask the sandbox service at ``socket_path`` to execute a notebook.

    Parameters
    ----------
    socket_path : str or pathlib.Path
        The service's socket.
    notebook_bytes : bytes
        The notebook (nbformat JSON).
    folder : str or pathlib.Path, optional
        The folder whose regular files the notebook may read (it runs in a copy of it).
    cell_timeout : int, optional
        Seconds one cell may run (nbgrader's ``Execute.timeout``).
    time_limit : int, optional
        Seconds the whole notebook may run; the service's own limit if larger or None.
    timeout : float, optional
        Seconds to wait for the answer (default: no limit; the service bounds each run, and
        a notebook may wait behind others).

    Returns
    -------
    (dict, bytes)
        The service's report (``seconds``, ``time_limit``, ``stopped``, ``account``, ...) and
        the executed notebook.

    Raises
    ------
    SandboxError
        If the service cannot be reached, refuses the caller, or fails to run the notebook.
    """
    request = {"cell_timeout": cell_timeout, "time_limit": time_limit}
    files = pack_folder(folder) if folder else b""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(socket_path))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise SandboxError(
                f"the grading sandbox does not answer at {socket_path} ({exc.strerror}): it runs as a "
                f"service of the hub; ask the server's administrator to restart the hub") from None
        except PermissionError:
            raise SandboxError(f"{socket_path}: permission denied; only instructors may ask the "
                               f"grading sandbox to run notebooks") from None
        greeting = json.loads(receive_frame(sock, 2**16, "the sandbox's greeting"))
        if greeting.get("status") != "ready":
            raise SandboxError(f"the grading sandbox refused: {greeting.get('message')}")
        try:
            send_frames(sock, json.dumps(request).encode(), notebook_bytes, files)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the sandbox stopped reading (a request too large): its report says why
        try:
            report = json.loads(receive_frame(sock, 2**20, "the sandbox's report"))
        except (OSError, ValueError) as exc:
            raise SandboxError(f"the grading sandbox closed the connection without a report ({exc})") from None
        if report.get("status") != "ok":
            raise SandboxError(f"the grading sandbox did not run the notebook: {report.get('message')}")
        return report, receive_frame(sock, MAX_NOTEBOOK_BYTES * 2, "the executed notebook")


# ---- the service ---------------------------------------------------------------------------------
def peer_uid(sock):
    """The uid of the process at the other end of a Unix socket (SO_PEERCRED)."""
    credentials = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", credentials)
    return uid


def may_ask(uid, group):
    """Whether the account ``uid`` may have notebooks run: root, or a member of ``group``."""
    if uid == 0:
        return True
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        return False
    return accounts.is_member(name, group)


class Sandbox:
    """The service's settings and its one-at-a-time runner.

    Parameters
    ----------
    scratch : pathlib.Path
        Root-owned folder for the requests and the scratch folders.
    user : str
        The sandbox account.
    group : str
        The group whose members may ask (the instructors').
    time_limit : int
        Seconds a notebook may run at most.
    memory : int
        Bytes of address space each of the kernel's processes may use.
    """

    def __init__(self, scratch, user, group, time_limit, memory):
        self.scratch = pathlib.Path(scratch)
        self.user = user
        self.group = group
        self.time_limit = int(time_limit)
        self.memory = int(memory)
        self._lock = threading.Lock()
        account(user)  # fail at the start, not at the first request

    def run(self, request, notebook_bytes, files):
        """Run one notebook in a worker; return ``(report, executed notebook bytes)``."""
        time_limit = min(self.time_limit, int(request.get("time_limit") or self.time_limit))
        cell_timeout = min(time_limit, int(request.get("cell_timeout") or time_limit))
        with self._lock:
            work = self.scratch / f"request-{secrets.token_hex(8)}"
            work.mkdir(mode=0o700)
            try:
                (work / "notebook.ipynb").write_bytes(notebook_bytes)
                (work / "files.tar").write_bytes(files)
                command = [sys.executable, "-m", "course_hub.sandbox", "run", str(work),
                           "--scratch", str(self.scratch), "--sandbox-user", self.user,
                           "--time-limit", str(time_limit), "--cell-timeout", str(cell_timeout),
                           "--memory", str(self.memory)]
                started = time.monotonic()
                try:
                    worker = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, cwd="/",
                                            env=worker_environment(), timeout=time_limit + WORKER_GRACE_SECONDS)
                except subprocess.TimeoutExpired:
                    raise SandboxError(f"the worker did not finish within {time_limit + WORKER_GRACE_SECONDS} s")
                finally:
                    # A worker that was killed left its notebook's processes: stop them, unless
                    # another worker (of another hub) holds the account, having stopped them first.
                    with machine_lock(self.user, blocking=False) as lock:
                        if lock.acquired:
                            kill_all_processes_of(self.user)
                if worker.returncode != 0:
                    tail = worker.stderr.decode(errors="replace").strip().splitlines()[-8:]
                    raise SandboxError(f"the worker failed (exit {worker.returncode}): " + " | ".join(tail))
                report = json.loads((work / "report.json").read_text())
                report.update(status="ok", seconds=round(time.monotonic() - started, 2))
                return report, (work / "executed.ipynb").read_bytes()
            finally:
                shutil.rmtree(work, ignore_errors=True)


def worker_environment(environ=os.environ):
    """The worker's environment: the service's interpreter setup, and nothing of the hub's (a
    process with the hub's service variables would count as a service a crashed hub left)."""
    return {key: environ[key] for key in ("PATH", "PYTHONPATH", "LANG") if key in environ}


class _Handler(socketserver.BaseRequestHandler):
    def handle(self):
        sandbox = self.server.sandbox
        sock = self.request
        uid = peer_uid(sock)
        # The caller reads this answer before it sends anything: a refusal cannot meet a request
        # half sent.
        if not may_ask(uid, sandbox.group):
            self._reply({"status": "refused", "message": f"uid {uid} is not root nor in group {sandbox.group}"})
            return
        try:
            send_frames(sock, json.dumps({"status": "ready"}).encode())
            sock.settimeout(REQUEST_TIMEOUT_SECONDS)
            request = json.loads(receive_frame(sock, 2**16, "the request"))
            notebook = receive_frame(sock, MAX_NOTEBOOK_BYTES, "the notebook")
            files = receive_frame(sock, MAX_FILES_BYTES, "the submission's files")
            sock.settimeout(None)
            report, executed = sandbox.run(request, notebook, files)
        except (SandboxError, ValueError, OSError) as exc:
            self._reply({"status": "error", "message": str(exc)})
            return
        self._reply(report, executed)

    def _reply(self, report, executed=None):
        try:
            send_frames(self.request, json.dumps(report).encode(), *([executed] if executed is not None else []))
        except OSError:
            pass  # the caller went away; nothing to tell


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def serve(socket_path, sandbox):
    """Listen on ``socket_path`` (made reachable for ``sandbox.group`` only) until SIGTERM."""
    socket_path = pathlib.Path(socket_path)
    gid = group_id(sandbox.group)
    socket_path.parent.mkdir(parents=True, exist_ok=True)
    os.chown(socket_path.parent, 0, gid)
    os.chmod(socket_path.parent, 0o750)
    socket_path.unlink(missing_ok=True)  # a stopped service's socket
    server = _Server(str(socket_path), _Handler)
    server.sandbox = sandbox
    os.chown(socket_path, 0, gid)
    os.chmod(socket_path, 0o660)

    def stop(_number, _frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"course-grader: listening on {socket_path} for {sandbox.group}; notebooks run as "
          f"{sandbox.user}, {sandbox.time_limit} s and {sandbox.memory // 2**20} MiB each", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        socket_path.unlink(missing_ok=True)


# ---- the account and its processes --------------------------------------------------------------
def account(name):
    """The sandbox account's passwd entry; SandboxError if it is missing or root."""
    try:
        return sandbox_enter.sandbox_account(name)
    except ValueError as exc:
        raise SandboxError(f"{exc} (`course-grade setup`, as root, creates it)") from None


def group_id(name):
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise SandboxError(f"group {name!r} does not exist") from None


def machine_lock(user, blocking=True):
    """An exclusive lock, machine-wide, on the processes of the sandbox account ``user``: the
    worker holding it is the only one running notebooks as ``user`` (several hubs, the tests'
    among them, may share one account). A context manager; ``.acquired`` says whether a
    non-blocking attempt got it."""
    return _FileLock(lock_path(user), blocking)


def lock_path(user):
    """The lock file of the sandbox account ``user``."""
    return paths.LOCK_DIR / f"dlcourse-sandbox-{user}.lock"


class _FileLock:
    def __init__(self, path, blocking):
        self.path = path
        self.blocking = blocking
        self.acquired = False

    def __enter__(self):
        self.handle = open(self.path, "a")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | (0 if self.blocking else fcntl.LOCK_NB))
            self.acquired = True
        except BlockingIOError:
            pass
        return self

    def __exit__(self, *exc):
        if self.acquired:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


def pids_of(uid):
    """Pids of the processes whose real uid is ``uid``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/status") as status:
                    for line in status:
                        if line.startswith("Uid:"):
                            if int(line.split()[1]) == uid:
                                found.append(int(entry))
                            break
            except OSError:
                continue
    return found


def kill_all_processes_of(user, attempts=20):
    """SIGKILL every process of the sandbox account: ``kill(-1)`` run as that account reaches
    all of them at once, a fork bomb's children too. Returns how many were left over (0)."""
    entry = account(user)
    for _ in range(attempts):
        if not pids_of(entry.pw_uid):
            return 0
        subprocess.run([sys.executable, "-c", "import os, signal; os.kill(-1, signal.SIGKILL)"],
                       user=entry.pw_uid, group=entry.pw_gid, extra_groups=[], env={}, cwd="/",
                       stdin=subprocess.DEVNULL, capture_output=True, check=False)
        time.sleep(0.1)
    return len(pids_of(entry.pw_uid))


# ---- the worker: one notebook ---------------------------------------------------------------------
def unpack(archive_bytes, destination, limit=MAX_FILES_BYTES):
    """Write the regular files of a tar archive under ``destination`` (which must be empty).

    Only regular files and folders are written, at names inside ``destination``; anything else
    (links, devices, absolute names, ``..``) is skipped. Returns the names written.
    """
    destination = pathlib.Path(destination)
    written, total = [], 0
    if not archive_bytes:
        return written
    with tarfile.open(fileobj=io.BytesIO(archive_bytes), mode="r:") as archive:
        for member in archive:
            parts = pathlib.PurePosixPath(member.name).parts
            if not member.isfile() or not parts or member.name.startswith("/") or ".." in parts:
                continue
            total += member.size
            if total > limit:
                raise SandboxError(f"the submission's files exceed {limit} bytes")
            target = destination.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(descriptor, "wb") as handle:
                shutil.copyfileobj(archive.extractfile(member), handle)
            written.append("/".join(parts))
    return written


def chown_tree(folder, uid, gid):
    """Give ``folder`` and everything in it to ``uid:gid`` (no link is followed)."""
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), uid, gid)
    os.chown(folder, uid, gid)


def kernel_environment(home, user):
    """The graded kernel's whole environment: nothing of root's or of the instructor's."""
    return {
        "HOME": str(home), "USER": user, "LOGNAME": user, "LANG": "C.UTF-8",
        "PATH": f"{pathlib.Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "TMPDIR": str(home / "tmp"), "MPLCONFIGDIR": str(home / ".matplotlib"), "IPYTHONDIR": str(home / ".ipython"),
        "JUPYTER_RUNTIME_DIR": str(home / ".jupyter-runtime"), "JUPYTER_CONFIG_DIR": str(home / ".jupyter"),
        # One BLAS thread and few malloc arenas, as a student's server has (jupyterhub_config.py).
        "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2",
        # The folder of the notebook is not on sys.path: PYTHONSAFEPATH for the interpreter,
        # the kernel's ignore_cwd (below) for IPython.
        "PYTHONSAFEPATH": "1", "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1",
        "NBGRADER_EXECUTION": "autograde",
    }


def run_notebook(work, scratch_root, user, time_limit, cell_timeout, memory):
    """The worker: execute ``work/notebook.ipynb`` in the sandbox; write the executed notebook
    and a report into ``work`` (root's folder)."""
    entry = account(user)
    with machine_lock(user):
        kill_all_processes_of(user)  # what a worker that was killed left behind
        _run_locked(pathlib.Path(work), pathlib.Path(scratch_root), entry, time_limit, cell_timeout, memory)


def _run_locked(work, scratch_root, entry, time_limit, cell_timeout, memory):
    """run_notebook's body, while the worker holds the sandbox account."""
    import nbformat
    from jupyter_client.manager import AsyncKernelManager
    from nbclient.exceptions import DeadKernelError
    from nbclient.util import run_sync
    from nbgrader.preprocessors import Execute

    user = entry.pw_name
    home = scratch_root / f"run-{secrets.token_hex(8)}"
    home.mkdir(mode=0o700)
    try:
        folder = home / "submission"
        folder.mkdir()
        for name in ("tmp", ".matplotlib", ".ipython", ".jupyter-runtime", ".jupyter"):
            (home / name).mkdir()
        unpack((work / "files.tar").read_bytes(), folder)
        chown_tree(home, entry.pw_uid, entry.pw_gid)
        notebook = nbformat.reads((work / "notebook.ipynb").read_text(), as_version=4)

        # -I: run as root in the submission's folder, the interpreter must not import from it.
        enter_command = [sys.executable, "-I", str(ENTER_SCRIPT), "--user", user,
                         "--memory", str(memory), "--cpu", str(time_limit + CPU_SLACK_SECONDS)]

        class SandboxKernelManager(AsyncKernelManager):
            """The kernel as the sandbox account, through ENTER_SCRIPT, on Unix sockets."""

            def format_kernel_cmd(self, extra_arguments=None):
                return enter_command + [
                    "--chown", self.connection_file, "--", sys.executable, "-m", "ipykernel_launcher",
                    "-f", self.connection_file, "--IPKernelApp.ignore_cwd=True", *(extra_arguments or [])]

        class SandboxExecute(Execute):
            """nbgrader's Execute with the kernel in the sandbox; records the running cell."""

            running = -1

            async def async_start_new_kernel(self, **kwargs):
                self.km.transport = "ipc"  # no network in the kernel's namespace
                self.km.ip = str(home / "kernel")
                self.km.connection_file = str(home / "kernel.json")
                kwargs.update(cwd=str(folder), env=kernel_environment(home, user))
                return await super().async_start_new_kernel(**kwargs)

            # nbclient's synchronous path (preprocess) wraps the method of its own class
            start_new_kernel = run_sync(async_start_new_kernel)

            def preprocess_cell(self, cell, resources, index):
                self.running = index
                return super().preprocess_cell(cell, resources, index)

        executor = SandboxExecute(timeout=cell_timeout, kernel_name="python3", shutdown_kernel="immediate",
                                  kernel_manager_class=SandboxKernelManager, startup_timeout=min(120, time_limit))
        stopped = _Stopwatch(time_limit, user)
        stop_reason = None
        with stopped:
            try:
                executor.preprocess(notebook, {"metadata": {"path": str(folder)}})
            except DeadKernelError:
                stop_reason = "time limit" if stopped.expired else "kernel died"
            except Exception as exc:  # the kernel never started, or nbclient gave up
                stop_reason = "time limit" if stopped.expired else f"error: {type(exc).__name__}: {exc}"
        if stop_reason:
            mark_unfinished(notebook, max(executor.running, 0), stop_reason, time_limit)
        (work / "executed.ipynb").write_text(nbformat.writes(notebook))
        (work / "report.json").write_text(json.dumps({
            "account": user, "time_limit": time_limit, "cell_timeout": cell_timeout,
            "memory": memory, "stopped": stop_reason}))
    finally:
        kill_all_processes_of(user)
        shutil.rmtree(home, ignore_errors=True)


class _Stopwatch:
    """Kills the sandbox account's processes when ``seconds`` have passed (a context manager)."""

    def __init__(self, seconds, user):
        self.seconds = seconds
        self.user = user
        self.expired = False
        self._done = threading.Event()

    def __enter__(self):
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self):
        if not self._done.wait(self.seconds):
            self.expired = True
            kill_all_processes_of(self.user)

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join()


def mark_unfinished(notebook, running, reason, time_limit):
    """Give the cell that was running and every later code cell an error output.

    nbgrader scores a test cell without an error as passed: a test that never ran must fail.
    """
    import nbformat

    if reason == "time limit":
        what = f"the notebook ran out of its time limit ({time_limit} s) while this cell ran"
    elif reason == "kernel died":
        what = "the kernel died while this cell ran (it crashed, or ended itself)"
    else:
        what = f"the notebook could not be run: {reason}"
    for index, cell in enumerate(notebook.cells):
        if index < running or cell.cell_type != "code":
            continue
        message = what if index == running else f"not run: an earlier cell stopped the notebook ({reason})"
        ename = "GradingStopped" if index == running else "NotRun"
        cell.setdefault("outputs", []).append(nbformat.v4.new_output(
            "error", ename=ename, evalue=message, traceback=[f"{ename}: {message}"]))


def main(argv=None):
    """Command line: ``serve`` (the hub's service) and ``run`` (one notebook, the service's worker)."""
    from . import settings as course_settings

    parser = argparse.ArgumentParser(prog="python -m course_hub.sandbox", description=__doc__.split("\n\n")[0])
    steps = parser.add_subparsers(dest="step", required=True)
    serve_parser = steps.add_parser("serve", help="listen for instructors' notebooks (root)")
    serve_parser.add_argument("--socket", required=True)
    serve_parser.add_argument("--group", required=True, help="who may ask: the instructors' group")
    run_parser = steps.add_parser("run", help="run one notebook of a request folder (root)")
    run_parser.add_argument("work")
    run_parser.add_argument("--cell-timeout", type=int, required=True)
    for step in (serve_parser, run_parser):
        step.add_argument("--scratch", required=True)
        step.add_argument("--sandbox-user", required=True)
        step.add_argument("--time-limit", type=int, required=True)
        step.add_argument("--memory", required=True)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print(f"course_hub.sandbox {args.step}: run as root (it switches to the sandbox account)", file=sys.stderr)
        return 2
    try:
        memory = course_settings.parse_byte_size(int(args.memory) if args.memory.isdigit() else args.memory,
                                                 "--memory")
        scratch = pathlib.Path(args.scratch)
        if args.step == "serve":
            scratch.mkdir(mode=0o711, parents=True, exist_ok=True)
            os.chown(scratch, 0, 0)
            os.chmod(scratch, 0o711)
            serve(args.socket, Sandbox(scratch, args.sandbox_user, args.group, args.time_limit, memory))
        else:
            run_notebook(args.work, scratch, args.sandbox_user, args.time_limit, args.cell_timeout, memory)
    except (SandboxError, ValueError) as exc:
        print(f"course_hub.sandbox {args.step}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
