"""``course-hub``: start the course hub with sane signals, from its state folder, optionally supervised.

::

    course-hub                  # run the hub in the foreground (what the systemd unit starts)
    course-hub --background     # start a supervised hub and return at once (what rc.local runs)
    course-hub --stop           # stop the hub --background started
    course-hub --restart        # stop it (if it runs) and start it again: what an upgrade does
    course-hub --supervise      # run the hub, restarting it after a crash

Options ``--config FILE`` (default: the installed ``jupyterhub_config.py``) and
``--pidfile FILE`` (default: the settings' ``server.pidfile``). The log of ``--background``
is the settings' ``server.log``: mode 0640, readable by root and the ``adm`` group (Debian's
group for reading system logs), not by students; the supervisor rotates it (copy, then
truncate: every process that writes to it, students' servers included, goes on appending)
when it passes ``server.log_max_size``, keeping ``server.log_backups`` old ones. Machines
without systemd often run no cron either, so no logrotate: the supervisor does it.

Why a launcher: a process put in the background by a non-interactive shell (``rc.local``, a test)
starts with SIGINT and SIGQUIT ignored, and its children inherit that; the hub then cannot be
interrupted and its idle culler stops slowly. This resets them, leaves the caller's session
(so the end of the boot script does not hang up the hub), runs the hub from its state folder
(made mode 0700) with the virtualenv's ``bin`` first on ``PATH``, stops the managed services
(the idle culler) a crashed hub left running, and
with ``--supervise`` restarts the hub when it dies abnormally, which is what systemd's
``Restart=always`` does where systemd runs.

SIGTERM or SIGINT to the launcher stops the hub (students' servers keep running:
``cleanup_servers = False``) and then the launcher, which removes its pid file.
"""
import argparse
import grp
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

from . import paths
from . import settings as course_settings
from . import tls

#: Restart delays grow from the first to the last after crashes in a row.
FIRST_DELAY_SECONDS, LAST_DELAY_SECONDS = 1, 30
#: A hub that ran this long before dying counts as healthy: the delay starts over.
HEALTHY_RUN_SECONDS = 60
#: How long ``--stop`` waits for the hub to stop before it says so.
STOP_TIMEOUT_SECONDS = 60
#: What marks a supervising launcher in its command line (see :func:`running_launcher`).
LAUNCHER_MODULE = "course_hub.launcher"
#: Who may read the hub's log besides root: Debian's group for reading system logs.
LOG_GROUP = "adm"
LOG_MODE = 0o640
#: How often the supervisor checks the log's size.
LOG_CHECK_SECONDS = 5


def reset_signals():
    """Give SIGINT, SIGQUIT, SIGTERM and SIGHUP their default actions (not 'ignored')."""
    for number in (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, signal.SIG_DFL)


def _read_proc(pid, name):
    try:
        return pathlib.Path(f"/proc/{pid}/{name}").read_bytes()
    except OSError:
        return b""


def _parent(pid):
    """The parent pid of ``pid`` (/proc/PID/stat, field 4), or 0."""
    stat = _read_proc(pid, "stat")
    return int(stat.rsplit(b")", 1)[1].split()[1]) if stat else 0


def managed_services(hub_api_port):
    """Pids of the managed services (the idle culler) of the hub whose API is on ``hub_api_port``.

    Such a service carries ``JUPYTERHUB_SERVICE_NAME`` and that hub's API address in its
    environment (whatever interpreter runs it: the unit's old ``pkill`` pattern named
    ``python3`` while the culler ran as ``python``).
    """
    marker = f"JUPYTERHUB_API_URL=http://127.0.0.1:{hub_api_port}/".encode()
    found = []
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        environ = b"\0" + _read_proc(entry.name, "environ")
        if b"\0JUPYTERHUB_SERVICE_NAME=" in environ and b"\0" + marker in environ:
            found.append(int(entry.name))
    return found


def orphaned_services(hub_api_port):
    """Pids of managed services of the hub on ``hub_api_port`` whose hub is gone.

    A hub stops its services when it shuts down; a hub that crashed cannot, and its culler
    would live on beside the next hub's. Such a service's parent is no longer a hub.
    """
    return [pid for pid in managed_services(hub_api_port)
            if b"jupyterhub" not in _read_proc(_parent(pid), "cmdline")]


def stop_pids(pids, grace=10):
    """SIGTERM ``pids``, then SIGKILL those still there after ``grace`` seconds."""
    for number in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, number)
            except ProcessLookupError:
                continue
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(pathlib.Path(f"/proc/{pid}").exists() for pid in pids):
            time.sleep(0.2)
    return pids


def stop_orphaned_services(hub_api_port, log=print):
    """Stop the services a crashed hub on ``hub_api_port`` left running; return their pids."""
    stopped = stop_pids(orphaned_services(hub_api_port))
    if stopped:
        log(f"course-hub: stopped services the crashed hub left running: {stopped}", flush=True)
    return stopped


def hub_command(config):
    """The command that runs JupyterHub with ``config``, from this interpreter's virtualenv."""
    return [str(pathlib.Path(sys.executable).parent / "jupyterhub"), "-f", str(config)]


def put_virtualenv_first_on_path(environ=os.environ):
    """Put this interpreter's virtualenv ``bin`` first on ``PATH`` for the hub and what it starts
    (the proxy's launcher finds its interpreter through ``PATH``); return the new value."""
    first = str(pathlib.Path(sys.executable).parent)
    rest = [entry for entry in environ.get("PATH", "/usr/local/bin:/usr/bin:/bin").split(os.pathsep)
            if entry and entry != first]
    environ["PATH"] = os.pathsep.join([first, *rest])
    return environ["PATH"]


def protect_log(path):
    """Give the log file (and its rotated copies) mode 0640, owner root, group :data:`LOG_GROUP`
    (root's group where that group does not exist)."""
    try:
        group = grp.getgrnam(LOG_GROUP).gr_gid
    except KeyError:
        group = 0
    os.chown(path, 0, group)
    os.chmod(path, LOG_MODE)


def open_log(path):
    """Open the log for appending, made or made private first; return the file object."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, LOG_MODE)
    protect_log(path)
    return os.fdopen(descriptor, "ab")


def rotate_log(path, max_bytes, backups):
    """Rotate ``path`` when it holds ``max_bytes`` or more; return whether it did.

    ``path.1`` ... ``path.N`` (N = ``backups``) move up one, the oldest goes, and the log is
    copied to ``path.1`` and truncated in place: the processes that write to it keep their open
    file and go on appending at its new end (the hub, its proxy, students' servers started by
    earlier hubs). What lands between the copy and the truncation is lost (milliseconds).
    """
    path = pathlib.Path(path)
    try:
        if path.stat().st_size < max_bytes:
            return False
    except FileNotFoundError:
        return False
    rotated = [path.with_name(f"{path.name}.{number}") for number in range(1, backups + 1)]
    rotated[-1].unlink(missing_ok=True)
    for older, newer in zip(reversed(rotated[:-1]), reversed(rotated[1:])):
        if older.exists():
            older.replace(newer)
    descriptor = os.open(rotated[0], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, LOG_MODE)
    with os.fdopen(descriptor, "wb") as copy, open(path, "rb") as original:
        shutil.copyfileobj(original, copy)
    protect_log(rotated[0])
    os.truncate(path, 0)
    return True


def supervise(command, hub_api_port, log=print, log_file=None, log_max_bytes=None, log_backups=None):
    """Run ``command`` until it exits cleanly or the launcher is told to stop.

    Parameters
    ----------
    command : list of str
        The hub's command line.
    hub_api_port : int
        The hub's API port, which tells its services from other hubs'.
    log : callable
        Where progress messages go.
    log_file : pathlib.Path, optional
        The log the hub writes to (its standard output), rotated at ``log_max_bytes`` with
        ``log_backups`` old copies (:func:`rotate_log`), checked every :data:`LOG_CHECK_SECONDS`.

    Returns
    -------
    int
        The hub's last exit status.
    """
    stopping = False
    child = None

    def forward(number, _frame):
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(number)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    delay = FIRST_DELAY_SECONDS
    while True:
        started = time.monotonic()
        # Handlers installed above become SIG_DFL in the child at exec: the hub gets defaults.
        child = subprocess.Popen(command)
        status = None
        while status is None:
            if log_file is not None and rotate_log(log_file, log_max_bytes, log_backups):
                log(f"course-hub: rotated {log_file} ({log_backups} kept)", flush=True)
            try:
                status = child.wait(LOG_CHECK_SECONDS)
            except subprocess.TimeoutExpired:
                pass
        if stopping or status == 0:
            return status
        stop_orphaned_services(hub_api_port, log)
        if time.monotonic() - started > HEALTHY_RUN_SECONDS:
            delay = FIRST_DELAY_SECONDS
        log(f"course-hub: the hub exited with status {status}; restarting in {delay} s", flush=True)
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline and not stopping:
            time.sleep(0.2)
        if stopping:
            return status
        delay = min(2 * delay, LAST_DELAY_SECONDS)


def running_launcher(pidfile):
    """The pid in ``pidfile`` if it is a live supervising launcher (a stale file may name a
    recycled pid), else None."""
    try:
        pid = int(pathlib.Path(pidfile).read_text().strip())
    except (OSError, ValueError):
        return None
    cmdline = _read_proc(pid, "cmdline")
    stat = _read_proc(pid, "stat")
    if LAUNCHER_MODULE.encode() not in cmdline or not stat or stat.rsplit(b")", 1)[1].split()[0] == b"Z":
        return None
    return pid


def start_in_background(config, pidfile, log_path):
    """Start a supervised hub detached from the caller, unless one runs; return at once.

    Returns
    -------
    tuple
        ``(pid, started)``: the launcher's pid, and whether this call started it.
    """
    running = running_launcher(pidfile)
    if running:
        return running, False
    pidfile, log_path = pathlib.Path(pidfile), pathlib.Path(log_path)
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    with open_log(log_path) as log:
        child = subprocess.Popen(
            [sys.executable, "-m", LAUNCHER_MODULE, "--supervise", "--config", str(config), "--pidfile", str(pidfile),
             "--log", str(log_path)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd="/", start_new_session=True,
        )
    pidfile.write_text(f"{child.pid}\n")
    return child.pid, True


def stop_background(pidfile, timeout=STOP_TIMEOUT_SECONDS):
    """Stop the supervised hub whose launcher ``pidfile`` names; return its pid, or None if none ran.

    Raises
    ------
    TimeoutError
        If the launcher is still there after ``timeout`` seconds.
    """
    pid = running_launcher(pidfile)
    if pid is None:
        return None
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while running_launcher(pidfile) == pid:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the course hub (pid {pid}) did not stop within {timeout} s")
        time.sleep(0.2)
    return pid


def prepare_state_dir(state_dir):
    """Create the state folder (mode 0700) if needed, make it the working folder; return it."""
    state_dir = pathlib.Path(state_dir)
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    state_dir.chmod(0o700)
    os.chdir(state_dir)
    return state_dir


def prepare_run_dir(run_dir, state_dir, log=print):
    """Create the folder of the pid files (mode 0700); retire those earlier versions kept in the
    state folder; return the run folder.

    A pid file that survives a reboot (the state folder does; /run does not) may name a process
    that has since been given that pid, and the hub signals the process its proxy pid file names.
    A proxy pid file of the state folder that names a live configurable-http-proxy is moved to
    the run folder (an upgrade while a crashed hub's proxy still runs: the new hub stops it, as
    it stops any proxy its pid file names); every other one is removed.
    """
    run_dir, state_dir = pathlib.Path(run_dir), pathlib.Path(state_dir)
    run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    run_dir.chmod(0o700)
    for name in (paths.HUB_PIDFILE, paths.PROXY_PIDFILE):
        legacy = state_dir / name
        if legacy == run_dir / name or not legacy.exists():
            continue
        try:
            pid = int(legacy.read_text().strip())
        except (OSError, ValueError):
            pid = 0
        if name == paths.PROXY_PIDFILE and pid and b"configurable-http-proxy" in _read_proc(pid, "cmdline"):
            legacy.replace(run_dir / name)
            log(f"course-hub: moved the running proxy's pid file {legacy} to {run_dir}", flush=True)
        else:
            legacy.unlink()
    return run_dir


def main(argv=None):
    """Parse the options and do what they say; returns the exit status."""
    parser = argparse.ArgumentParser(prog="course-hub", description="Start the course hub.")
    parser.add_argument("--config", default=str(paths.HUB_CONFIG), help="jupyterhub_config.py to use")
    parser.add_argument("--pidfile", default=None, help="the launcher's pid file (default: the settings')")
    parser.add_argument("--log", default=None, help="with --supervise: the log the hub writes to, to rotate")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--supervise", action="store_true", help="restart the hub after a crash")
    mode.add_argument("--background", action="store_true", help="start a supervised hub, return at once")
    mode.add_argument("--stop", action="store_true", help="stop the hub --background started")
    mode.add_argument("--restart", action="store_true",
                      help="stop the hub --background started (if it runs), then start it again")
    args = parser.parse_args(argv)
    try:
        server = course_settings.for_this_server()["server"]
    except course_settings.SettingsError as exc:
        print(f"course-hub: {exc}", file=sys.stderr)
        return 2
    pidfile = pathlib.Path(args.pidfile) if args.pidfile else server["pidfile"]
    if args.stop or args.restart:
        try:
            pid = stop_background(pidfile)
        except TimeoutError as exc:
            print(f"course-hub: {exc}", file=sys.stderr)
            return 1
        if pid or args.stop:
            print(f"course-hub: stopped the course hub (pid {pid})" if pid
                  else f"course-hub: no course hub runs ({pidfile} names none)")
        if args.stop:
            return 0
        # A restart (an upgrade): the running hub went (students' servers stay: cleanup_servers
        # = False); one of the version just installed starts, reading the settings afresh.
        args.background = True
    if args.background:
        pid, started = start_in_background(args.config, pidfile, server["log"])
        print(f"course-hub: started the course hub (pid {pid}), log in {server['log']}" if started
              else f"course-hub: the course hub already runs (pid {pid}); not starting another")
        return 0
    reset_signals()
    try:
        os.setsid()  # leave the caller's session: a hang-up at the end of boot is not ours
    except PermissionError:
        pass  # already a session or group leader (e.g. started by systemd): nothing to leave
    prepare_state_dir(server["state_dir"])
    prepare_run_dir(server["run_dir"], server["state_dir"])
    if tls.https_mode(server) == "self-signed":
        tls.ensure_self_signed(server["state_dir"], server["ip"])  # made, or made again before it expires
    put_virtualenv_first_on_path()
    stop_orphaned_services(server["hub_api_port"])
    command = hub_command(args.config)
    if not args.supervise:
        os.execv(command[0], command)
    if args.pidfile:
        pidfile.write_text(f"{os.getpid()}\n")
    try:
        if args.log:
            return supervise(command, server["hub_api_port"], log_file=pathlib.Path(args.log),
                             log_max_bytes=server["log_max_size"], log_backups=server["log_backups"])
        return supervise(command, server["hub_api_port"])
    finally:
        if args.pidfile and pidfile.exists() and pidfile.read_text().strip() == str(os.getpid()):
            pidfile.unlink()


if __name__ == "__main__":
    sys.exit(main())
