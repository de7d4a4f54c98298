"""A fresh Debian 12 machine inside this one: a ``debootstrap`` root, chrooted into.

The fresh-machine test (``test_freshroot.py``) runs the README's first command in such a root and
logs a student in; ``python -m tests.freshroot.freshroot readme ...`` runs any of the README's
commands there by hand. The pieces are meant for reuse (a later test boots such a root with
systemd-nspawn): the base cache, :class:`FreshRoot` (a pristine copy, the host's package-source
configuration, the mounts, commands run inside, and the clean-up by pid and by mount table).

Base cache
    ``debootstrap --variant=minbase bookworm`` from the Debian mirror the host's apt sources name,
    packed once into ``/var/cache/dlcourse-freshroot/bookworm-minbase.tar`` (with a ``.json``
    beside it: when, how long, which mirror as a hash). Every run unpacks a pristine copy. It is
    rebuilt when the mirror, suite or variant changes; refresh it by hand with
    ``python -m tests.freshroot.freshroot build-base --refresh`` (or delete the tarball).
Runs
    ``/var/tmp/dlcourse-freshroot/run-<time>-<pid>/``: ``root/`` and the logs. A run removes its
    folder at the end, also on failure or Ctrl-C; a run killed outright (SIGKILL) is cleaned by
    the next one (:func:`clean_stale_runs`), whose owner pid is gone.
Inside the root
    The committed tree (``git archive HEAD``) is at ``/usr/local/src/dl-course``; the host's apt
    sources and the keyrings they name, pip's configuration files (``pip config debug``), the constraints
    and local package folders they name (the folders bound read-only), npm's configuration files,
    the CA bundle and local CAs, ``/etc/hosts`` and ``/etc/resolv.conf`` are copied in, so the
    registries are reached exactly as from the host; the environment passes ``PIP_*``,
    ``NPM_CONFIG_*``, the CA and proxy variables. ``/proc``, ``/sys``, ``/dev``, ``/dev/pts`` are
    bind-mounted. Processes inside are those whose ``/proc/PID/root`` is the root: the clean-up
    stops them by pid, then unmounts everything below the run folder, deepest first, and removes
    the folder only when nothing is mounted there any more.
A machine of its own, as far as processes go
    Commands run in a PID namespace of the run (``unshare --pid --mount-proc``; each command joins
    it with ``nsenter``), whose ``/proc`` shows the root's processes only. Without it, code in the
    root that finds a user's processes by uid (the roster tool, the hub tests' clean-up) would
    see, and kill, this machine's processes of whichever user has the same uid number.

Everything needs root; the root shares the host's network (ports included).
"""
import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import pathlib
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid

import yaml
from course_hub import paths as course_paths
from course_hub import settings as course_settings
from course_hub import tls as course_tls
from tests.hub import hubkit  # waiting on a state, pids, the login form

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
SUITE = "bookworm"
VARIANT = "minbase"
CACHE_DIR = pathlib.Path("/var/cache/dlcourse-freshroot")
BASE_TARBALL = CACHE_DIR / f"{SUITE}-{VARIANT}.tar"
#: What a root that boots needs on top of the minimal base: systemd as PID 1 (systemd-sysv makes
#: it /sbin/init) and D-Bus, which systemctl talks through. Cached as a base of its own.
BOOT_PACKAGES = ("systemd", "systemd-sysv", "dbus")
RUNS_DIR = pathlib.Path("/var/tmp/dlcourse-freshroot")
#: Where the committed tree is put inside the root: "a checkout of this repository". Not under
#: /root (mode 0700): the instructors' hub tests run the checkout's deploy/ code as an instructor.
CHECKOUT = "/usr/local/src/dl-course"
#: The environment of a root shell on a fresh machine; the host's package-source variables are added.
BASE_ENVIRONMENT = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "USER": "root",
    "LOGNAME": "root",
    "SHELL": "/bin/bash",
    "LANG": "C.UTF-8",
    "TERM": "dumb",
}
#: Host variables that decide how the registries are reached (names, or prefixes ending in "_").
PASSED_VARIABLES = (
    "PIP_", "NPM_CONFIG_", "npm_config_", "NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE", "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY",
    "HTTPS_PROXY", "NO_PROXY",
)
APT_SOURCES = (pathlib.Path("/etc/apt/sources.list"), pathlib.Path("/etc/apt/sources.list.d"))
NPM_CONFIG_FILES = (pathlib.Path("/usr/etc/npmrc"), pathlib.Path("/etc/npmrc"), pathlib.Path("/root/.npmrc"))
CA_FILES = (
    pathlib.Path("/etc/ssl/certs/ca-certificates.crt"),
    # update-ca-certificates, run when a package brings ca-certificates, rebuilds the bundle
    # from these: without them the host's local CAs would vanish from the root's bundle.
    pathlib.Path("/usr/local/share/ca-certificates"),
)
NETWORK_FILES = (pathlib.Path("/etc/hosts"), pathlib.Path("/etc/resolv.conf"))
#: Bound in this order, unmounted in the reverse one (/dev/shm: a machine's tmpfs for everyone).
SYSTEM_MOUNTS = ("/proc", "/sys", "/dev", "/dev/pts", "/dev/shm")
#: The cap of an in-memory root (pages are used only as files are written).
TMPFS_SIZE = "8g"
#: A run folder without its owner file this old is a run that died while being made.
OWNERLESS_GRACE_SECONDS = 120
#: The first process of a run's PID namespace (a host process: it stays outside the root). It
#: reaps the orphans of the namespace, as an init does; when it dies, the kernel kills the rest.
NAMESPACE_INIT = '''
import os, signal, time
signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the test; the clean-up stops this
while True:
    try:
        os.wait()
    except ChildProcessError:
        time.sleep(0.5)
'''


# ---- The hub's layout, as course_hub.paths names it --------------------------------------------
#: The roster tool, run inside the root.
ROSTER_COMMAND = (str(course_paths.VENV_BIN / "course-roster"),)
#: The log of the hub that the README's first command starts (rc.local's, without systemd).
HUB_LOG = str(course_paths.LOG)
#: The Node the install brings for the proxy, and the proxy's packages.
COURSE_NODE = str(course_paths.PROXY_NODE_DIR / "node")
PROXY_MODULES = str(course_paths.PROXY_DIR / "node_modules")


def write_site_settings(root, ports, more=None):
    """Make the hub of ``root`` listen on ``ports``, not the machine's own ports.

    The way an operator would: the server's site settings file (``course_hub.paths.SITE_SETTINGS``),
    which the install never writes, so the README's first command runs exactly as written.

    Parameters
    ----------
    root : FreshRoot
    ports : HubPorts
    more : dict, optional
        More site settings (e.g. smaller limits), merged over the ports.
    """
    site = root.path(str(course_paths.SITE_SETTINGS))
    site.parent.mkdir(parents=True, exist_ok=True)
    values = {"hub": {"port": ports.hub},
              "server": {"ip": "127.0.0.1", "hub_api_port": ports.hub_api, "proxy_api_port": ports.proxy_api}}
    site.write_text(yaml.safe_dump(course_settings.deep_merge(values, more or {}), sort_keys=False))


def hub_url(root, ports):
    """The address of the hub in ``root`` (HTTPS, as the install serves it) and the file of its
    self-signed certificate on this machine, for checking it: ``(url, verify)``."""
    certificate = course_tls.self_signed_files(course_paths.STATE_DIR)[0]
    return f"https://127.0.0.1:{ports.hub}", str(root.path(certificate))


# ---- Errors, time, small helpers -----------------------------------------------------------------
class FreshRootError(RuntimeError):
    """Building, entering or cleaning a fresh root failed."""


class HubPorts:
    """Three free TCP ports of this machine: students' port, hub API, proxy API."""

    def __init__(self):
        self.hub, self.hub_api, self.proxy_api = free_ports(3)

    def __repr__(self):
        return f"HubPorts(hub={self.hub}, hub_api={self.hub_api}, proxy_api={self.proxy_api})"


def free_ports(count):
    """``count`` distinct TCP ports nothing listens on right now (held open together while picked)."""
    with contextlib.ExitStack() as stack:
        probes = [stack.enter_context(socket.socket()) for _ in range(count)]
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]


def tail(path, lines=60):
    """The last ``lines`` lines of a text file, or a note saying it is missing."""
    try:
        text = pathlib.Path(path).read_text(errors="replace")
    except OSError as error:
        return f"({path}: {error.strerror})"
    return "\n".join(text.splitlines()[-lines:])


def _run(command, **kwargs):
    """Run a host command; raise :class:`FreshRootError` with its output when it fails."""
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise FreshRootError(
            f"{shlex.join(map(str, command))} exited with {result.returncode}:\n{result.stdout}{result.stderr}"
        )
    return result.stdout


def prerequisites_missing(boot=False):
    """Why a fresh root (that boots, with ``boot``) cannot be made here (a list of reasons; empty
    when it can)."""
    reasons = []
    if boot and shutil.which("systemd-nspawn") is None:
        reasons.append("systemd-nspawn missing (Debian package systemd-container; deploy/install.sh "
                       "--test-tools installs it)")
    if boot and not all((CGROUP_ROOT / name).is_dir() for name in ("systemd", "memory")):
        reasons.append(f"no name=systemd and memory cgroup hierarchies under {CGROUP_ROOT}")
    if os.geteuid() != 0:
        reasons.append("needs root (debootstrap, chroot, mount)")
    for tool in ("debootstrap", "chroot", "mount", "umount", "tar", "git", "unshare", "nsenter"):
        if shutil.which(tool) is None:
            reasons.append(f"{tool} missing (Debian package {'debootstrap' if tool == 'debootstrap' else tool}; "
                           "deploy/install.sh --test-tools installs debootstrap)")
    if not (REPO_ROOT / ".git").exists():
        reasons.append(f"{REPO_ROOT} is not a git checkout: the test puts `git archive HEAD` into the root")
    return reasons


# ---- The host's package sources -------------------------------------------------------------------
def apt_source_files():
    """The host's apt source files (the ones apt reads: sources.list, *.list, *.sources)."""
    listing, folder = APT_SOURCES
    found = [listing] if listing.is_file() else []
    if folder.is_dir():
        found += sorted(p for p in folder.iterdir() if p.suffix in (".list", ".sources") and p.is_file())
    return found


def apt_keyrings(source_files):
    """Keyring files the apt sources name (``Signed-By:`` fields and ``[signed-by=...]`` options)."""
    keyrings = []
    for source in source_files:
        text = source.read_text()
        named = re.findall(r"^Signed-By:\s*(/\S+)\s*$", text, re.MULTILINE | re.IGNORECASE)
        named += re.findall(r"signed-by=(/[^\s\]]+)", text, re.IGNORECASE)
        keyrings += [pathlib.Path(path) for path in named if pathlib.Path(path).is_file()]
    return sorted(set(keyrings))


def debian_mirror(source_files=None):
    """The URI of the host's Debian archive for ``bookworm`` (what debootstrap fetches from).

    Raises
    ------
    FreshRootError
        If no apt source of the host names a ``bookworm`` suite.
    """
    source_files = apt_source_files() if source_files is None else source_files
    for source in source_files:
        text = source.read_text()
        if source.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.*)$", stanza, re.MULTILINE))
                if "deb" in fields.get("Types", "").split() and SUITE in fields.get("Suites", "").split():
                    return fields["URIs"].split()[0]
        else:
            for line in text.splitlines():
                match = re.match(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line.strip())
                if match and match.group(2) == SUITE:
                    return match.group(1)
    raise FreshRootError(
        f"no apt source of this machine names the suite {SUITE!r} "
        f"(looked in {', '.join(map(str, source_files)) or 'nothing: no apt sources'})"
    )


def pip_configuration(python=sys.executable):
    """pip's configuration files, and the files and folders they name, as pip itself reports them.

    Returns
    -------
    tuple of (list of pathlib.Path, list of pathlib.Path, list of pathlib.Path)
        Configuration files that exist; files they name (constraints, requirements, certificates);
        local folders they name as package sources (``find-links``, ``file://`` indexes).
    """
    debug = _run([python, "-m", "pip", "config", "debug"])
    files = [pathlib.Path(p) for p in re.findall(r"^\s+(/\S+), exists: True$", debug, re.MULTILINE)]
    values = re.findall(r"^[^=]*\.([a-z-]+)='(.*)'$", _run([python, "-m", "pip", "config", "list"]), re.MULTILINE)
    values += [(name[4:].lower().replace("_", "-"), value) for name, value in os.environ.items()
               if name.startswith("PIP_")]
    named_files, folders = [], []
    for key, value in values:
        for token in value.split():
            path = pathlib.Path(urllib.parse.urlparse(token).path if token.startswith("file:") else token)
            if not path.is_absolute() or not path.exists():
                continue
            if key == "find-links" and path.is_dir():
                folders.append(path)
            elif key in ("index-url", "extra-index-url") and path.is_dir():
                # A local index's pages link to its files relatively (``../../files/``, beside
                # ``simple/``): its parent folder is the registry.
                folders.append(path.parent if path.name == "simple" else path)
            elif path.is_file():
                named_files.append(path)
    return sorted(set(files)), sorted(set(named_files)), sorted(set(folders))


def npm_configuration():
    """npm's configuration files that exist, and the CA files they name (``cafile=``)."""
    files = [p for p in NPM_CONFIG_FILES if p.is_file()]
    for variable in ("NPM_CONFIG_USERCONFIG", "NPM_CONFIG_GLOBALCONFIG"):
        if os.environ.get(variable) and pathlib.Path(os.environ[variable]).is_file():
            files.append(pathlib.Path(os.environ[variable]))
    named = []
    for path in files:
        try:
            text = path.read_text()
        except OSError:
            continue
        named += [pathlib.Path(p) for p in re.findall(r"^\s*cafile\s*=\s*(/\S+)", text, re.MULTILINE)]
    return sorted(set(files)), sorted(p for p in set(named) if p.is_file())


def passed_environment(environ=None):
    """The host's variables that decide how the registries are reached."""
    environ = os.environ if environ is None else environ
    return {name: value for name, value in environ.items()
            if any(name == p or (p.endswith("_") and name.startswith(p)) for p in PASSED_VARIABLES)}


# ---- The base: debootstrap once, a tarball reused ---------------------------------------------
def _mirror_digest(mirror):
    # The cache records which mirror it came from without writing its name into a file.
    return hashlib.sha256(mirror.encode()).hexdigest()[:16]


def base_tarball(include=()):
    """The cached base of ``debootstrap --include`` these packages (the minimal base for none)."""
    return BASE_TARBALL if not include else CACHE_DIR / f"{SUITE}-{VARIANT}+{'+'.join(sorted(include))}.tar"


def base_metadata(include=()):
    """The cached base's metadata (a dict), or None when there is no usable cache."""
    tarball = base_tarball(include)
    try:
        return json.loads(tarball.with_suffix(".json").read_text()) if tarball.is_file() else None
    except (OSError, ValueError):
        return None


def ensure_base(refresh=False, log=print, include=()):
    """Return the cached base tarball, building it first when missing, stale or ``refresh``.

    Concurrent callers wait on a lock; one builds, the others reuse its tarball.

    Parameters
    ----------
    refresh : bool
        Rebuild even when the cache is fresh.
    log : callable
        Where progress messages go.
    include : tuple of str
        Debian packages debootstrap adds to the minimal base (e.g. :data:`BOOT_PACKAGES`); each
        set is a base of its own beside the minimal one.

    Returns
    -------
    tuple of (pathlib.Path, dict)
        The tarball and its metadata (``built_now`` tells whether this call built it).
    """
    mirror = debian_mirror()
    include = tuple(sorted(include))
    tarball = base_tarball(include)
    wanted = {"suite": SUITE, "variant": VARIANT, "mirror_sha256": _mirror_digest(mirror)}
    if include:
        wanted["include"] = list(include)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(CACHE_DIR / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        metadata = base_metadata(include)
        if not refresh and metadata and all(metadata.get(k) == v for k, v in wanted.items()):
            return tarball, {**metadata, "built_now": False}
        log(f"freshroot: building the base root ({VARIANT} {SUITE}{' + ' + ', '.join(include) if include else ''}) "
            f"into {tarball}")
        started = time.monotonic()
        build = pathlib.Path(tempfile.mkdtemp(prefix="build-", dir=CACHE_DIR))
        try:
            _run(["debootstrap", f"--variant={VARIANT}", *([f"--include={','.join(include)}"] if include else []),
                  SUITE, str(build / "root"), mirror])
            partial = tarball.with_suffix(".tar.partial")
            _run(["tar", "--numeric-owner", "-C", str(build / "root"), "-cf", str(partial), "."])
            metadata = {
                **wanted,
                "built": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "build_seconds": round(time.monotonic() - started, 1),
                "debootstrap": _run(["debootstrap", "--version"]).strip(),
            }
            partial.replace(tarball)
            tarball.with_suffix(".json").write_text(json.dumps(metadata, indent=1) + "\n")
        finally:
            # The build root has no mounts (debootstrap unmounts its own /proc and /sys).
            _remove_tree(build)
        return tarball, {**metadata, "built_now": True}


# ---- Mounts and processes -------------------------------------------------------------------------
def mounts_under(path):
    """Mount points at or below ``path`` (from /proc/self/mountinfo), deepest last."""
    prefix = str(pathlib.Path(path).resolve())
    found = []
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return found


def processes_in(root):
    """Pids of the processes whose root directory is ``root`` (or a folder inside it)."""
    prefix = str(pathlib.Path(root).resolve())
    found = []
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            where = os.readlink(entry / "root")
        except OSError:
            continue
        if where == prefix or where.startswith(prefix + "/"):
            found.append(int(entry.name))
    return found


def stop_processes(root, grace=15, rounds=4):
    """Stop every process inside ``root``: SIGTERM, ``grace`` s, then SIGKILL; repeat for newcomers.

    Returns
    -------
    list of int
        Every pid that was signalled.

    Raises
    ------
    FreshRootError
        If processes are still there after ``rounds`` rounds.
    """
    signalled = []
    for _ in range(rounds):
        pids = processes_in(root)
        if not pids:
            return signalled
        signalled += pids
        for number, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10)):
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, number)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and any(hubkit.pid_alive(pid) for pid in pids):
                time.sleep(0.2)
            pids = [pid for pid in pids if hubkit.pid_alive(pid)]
            if not pids:
                break
    left = processes_in(root)
    if left:
        raise FreshRootError(f"processes still running in {root} after SIGKILL: {left}")
    return signalled


def unmount_all(path):
    """Unmount everything at or below ``path``, deepest first (lazily if busy).

    Raises
    ------
    FreshRootError
        If something stays mounted.
    """
    for point in sorted(mounts_under(path), key=lambda p: p.count("/"), reverse=True):
        if subprocess.run(["umount", point], capture_output=True).returncode != 0:
            subprocess.run(["umount", "--lazy", point], capture_output=True)
    left = mounts_under(path)
    if left:
        raise FreshRootError(f"still mounted below {path}: {left}")


def _remove_tree(path):
    """Remove ``path`` only when nothing is mounted below it (never through a bind of /dev)."""
    if mounts_under(path):
        raise FreshRootError(f"not removing {path}: mounts below it: {mounts_under(path)}")
    # rm rather than shutil.rmtree: several times faster on a root of 100,000 files, and
    # --one-file-system would still stop at a mount that appeared since the check.
    _run(["rm", "-rf", "--one-file-system", str(path)])


def _stop_namespace(run_dir):
    """Kill the first process of a run's PID namespace (the kernel then kills whatever is left)."""
    try:
        init = json.loads((pathlib.Path(run_dir) / "namespace.json").read_text())
    except (OSError, ValueError):
        return
    if not hubkit.pid_alive(init["pid"]) or _start_ticks(init["pid"]) != init["start_ticks"]:
        return  # gone already (its pid may be another process's by now)
    # A namespace's first process gets from outside only the signals it handles, and SIGKILL.
    with contextlib.suppress(ProcessLookupError):
        os.kill(init["pid"], signal.SIGKILL)
    hubkit.wait_for(lambda: not hubkit.pid_alive(init["pid"]), 30, what="the end of the run's PID namespace")


# ---- A run: one pristine root --------------------------------------------------------------------
def _start_ticks(pid):
    with open(f"/proc/{pid}/stat") as handle:
        return int(handle.read().rsplit(")", 1)[1].split()[19])


def clean_stale_runs(log=print):
    """Clean the runs whose owner is gone (killed before it could clean up); return their folders."""
    cleaned = []
    if not RUNS_DIR.is_dir():
        return cleaned
    for run in sorted(RUNS_DIR.glob("run-*")):
        try:
            owner = json.loads((run / "owner.json").read_text())
            alive = hubkit.pid_alive(owner["pid"]) and _start_ticks(owner["pid"]) == owner["start_ticks"]
        except (OSError, ValueError, KeyError):
            # No owner file yet: a run being made right now, unless it is old.
            alive = time.time() - run.stat().st_mtime < OWNERLESS_GRACE_SECONDS
        if alive:
            continue
        log(f"freshroot: cleaning the stale run {run}")
        stop_processes(run / "root")
        _stop_namespace(run)
        _remove_cgroups(run)
        unmount_all(run)
        _remove_tree(run)
        cleaned.append(run)
    return cleaned


class FreshRoot:
    """A pristine copy of the base root with the host's package sources, mounted and ready to chroot.

    Use it as a context manager: leaving the block (also through an exception or Ctrl-C) stops the
    processes inside by pid, unmounts, and removes the run folder.

    Parameters
    ----------
    repo : pathlib.Path
        The checkout whose committed tree (``git archive HEAD``) goes into the root.
    log : callable
        Where progress messages go.
    in_memory : bool
        Make the root a tmpfs (at most ``TMPFS_SIZE``): unpacking and installing skip the disk,
        and the clean-up unmounts it instead of deleting about 100,000 files (three minutes on
        a busy disk here). The installed course takes about 2 GB; the whole test suite's tools
        (Chromium, Octave) more: run that on disk.
    """

    #: Debian packages the cached base brings on top of the minimal one (see :func:`ensure_base`).
    BASE_PACKAGES = ()

    def __init__(self, repo=REPO_ROOT, log=print, in_memory=False):
        self.repo = pathlib.Path(repo)
        self.log = log
        self.in_memory = in_memory
        self.timings = {}
        self.base_metadata = None
        self.run_dir = None
        self.root = None
        self.namespace_init = None
        self._unshare = None

    # -- setting up
    def __enter__(self):
        try:
            self.create()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(self, *exc_info):
        self.cleanup()

    def create(self):
        """Unpack the base, put the tree and the host's package sources in, mount; time each step."""
        missing = prerequisites_missing()
        if missing:
            raise FreshRootError("cannot make a fresh root here: " + "; ".join(missing))
        clean_stale_runs(self.log)
        started = time.monotonic()
        tarball, self.base_metadata = ensure_base(log=self.log, include=self.BASE_PACKAGES)
        if self.base_metadata["built_now"]:
            self.timings["base build s"] = round(time.monotonic() - started, 1)
        started = time.monotonic()
        RUNS_DIR.mkdir(parents=True, exist_ok=True)
        self.run_dir = pathlib.Path(tempfile.mkdtemp(prefix=time.strftime("run-%Y%m%d-%H%M%S-"), dir=RUNS_DIR))
        (self.run_dir / "owner.json").write_text(
            json.dumps({"pid": os.getpid(), "start_ticks": _start_ticks(os.getpid())}))
        self.root = self.run_dir / "root"
        self.root.mkdir()
        if self.in_memory:
            _run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0755", "freshroot", str(self.root)])
        _run(["tar", "--numeric-owner", "-C", str(self.root), "-xpf", str(tarball)])
        self._put_tree()
        self._copy_package_sources()
        self.timings["copy s"] = round(time.monotonic() - started, 1)
        self._start()
        return self

    def _start(self):
        """Make the root a place to run commands in: the mounts and the run's PID namespace."""
        self._mount()
        self._start_namespace()

    def base_timings(self):
        """The cached base's own build time when this run did not build it (timings has it otherwise)."""
        if not self.base_metadata or self.base_metadata["built_now"]:
            return {}
        return {f"base build s (cached {self.base_metadata['built']})": self.base_metadata["build_seconds"]}

    def path(self, inside):
        """The host path of a path inside the root."""
        return self.root / str(inside).lstrip("/")

    def _copy_in(self, host_path):
        target = self.path(host_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        if host_path.is_dir():
            shutil.copytree(host_path, target, symlinks=True, dirs_exist_ok=True)
        else:
            shutil.copy2(host_path, target)

    def _put_tree(self):
        checkout = self.path(CHECKOUT)
        checkout.mkdir(parents=True)
        archive = subprocess.Popen(["git", "-C", str(self.repo), "archive", "--format=tar", "HEAD"],
                                   stdout=subprocess.PIPE)
        unpack = subprocess.run(["tar", "-C", str(checkout), "-xf", "-"], stdin=archive.stdout, capture_output=True)
        archive.stdout.close()
        if archive.wait() != 0 or unpack.returncode != 0:
            raise FreshRootError(f"git archive HEAD of {self.repo} into the root failed: {unpack.stderr!r}")

    def _copy_package_sources(self):
        # The base's own sources.list names only the main suite: the host's replace it.
        for existing in [self.path("/etc/apt/sources.list"), *self.path("/etc/apt/sources.list.d").glob("*")]:
            existing.unlink(missing_ok=True)
        sources = apt_source_files()
        pip_files, pip_named, self.package_folders = pip_configuration()
        npm_files, npm_named = npm_configuration()
        environment = passed_environment()
        # Files the variables name (a CA bundle); folders such as SSL_CERT_DIR hold links into
        # the host's own certificate store, which the bundle already carries.
        named_by_variables = [pathlib.Path(v) for v in environment.values() if pathlib.Path(v).is_file()]
        for host_path in [*sources, *apt_keyrings(sources), *pip_files, *pip_named, *npm_files, *npm_named,
                          *CA_FILES, *NETWORK_FILES, *named_by_variables]:
            if host_path.exists() and not any(host_path == f or f in host_path.parents
                                              for f in self.package_folders):
                self._copy_in(host_path)

    def _mount(self):
        for point in filter(os.path.isdir, SYSTEM_MOUNTS):
            self.path(point).mkdir(parents=True, exist_ok=True)
            _run(["mount", "--bind", point, str(self.path(point))])
        for folder in self.package_folders:
            target = self.path(folder)
            target.mkdir(parents=True, exist_ok=True)
            _run(["mount", "--bind", str(folder), str(target)])
            _run(["mount", "-o", "remount,bind,ro", str(target)])

    def _start_namespace(self):
        # Its own session: Ctrl-C reaches the test, not the namespace (the clean-up ends it).
        unshare = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--mount", "--propagation", "private",
             f"--mount-proc={self.path('/proc')}", sys.executable, "-c", NAMESPACE_INIT],
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        self._unshare = unshare
        children = pathlib.Path(f"/proc/{unshare.pid}/task/{unshare.pid}/children")

        def first_process():
            if unshare.poll() is not None:
                raise FreshRootError(f"unshare exited with {unshare.returncode} before its PID namespace started")
            return children.read_text().split()[:1]

        self.namespace_init = int(hubkit.wait_for(first_process, 30, interval=0.05, what="the run's PID namespace")[0])
        (self.run_dir / "namespace.json").write_text(
            json.dumps({"pid": self.namespace_init, "start_ticks": _start_ticks(self.namespace_init)}))

    def _end_namespace(self):
        _stop_namespace(self.run_dir)
        if self._unshare is not None:
            self._unshare.wait(30)  # unshare ends with its namespace; reap it

    # -- working inside
    def environment(self, extra=None):
        """A fresh machine's root environment, the host's package-source variables, and ``extra``."""
        return {**BASE_ENVIRONMENT, **passed_environment(), **(extra or {})}

    def command(self, script, extra_env=None, cwd=CHECKOUT):
        """The host command line that runs the shell ``script`` inside the root, in ``cwd``."""
        variables = [f"{k}={v}" for k, v in self.environment(extra_env).items()]
        return ["nsenter", "--target", str(self.namespace_init), "--pid", "--mount", "--",
                "chroot", str(self.root), "/usr/bin/env", "-i", *variables,
                "/bin/bash", "-c", f"cd {shlex.quote(cwd)} && {script}"]

    def run(self, script, log_path, extra_env=None, timeout=1800):
        """Run ``script`` inside the root with its output in ``log_path``; raise if it fails.

        Raises
        ------
        FreshRootError
            On a non-zero exit or after ``timeout`` s, with the end of the log.
        """
        with open(log_path, "ab") as log:
            log.write(f"+ {script}\n".encode())
            log.flush()
            process = subprocess.Popen(self.command(script, extra_env), stdin=subprocess.DEVNULL,
                                       stdout=log, stderr=subprocess.STDOUT)
            try:
                status = process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                raise FreshRootError(f"`{script}` still ran after {timeout} s; {log_path} ends with:\n"
                                     f"{tail(log_path)}") from None
        if status != 0:
            raise FreshRootError(f"`{script}` exited with {status}; {log_path} ends with:\n{tail(log_path)}")

    def output(self, script, extra_env=None, timeout=300):
        """Run ``script`` inside the root and return its standard output (raise if it fails)."""
        return _run(self.command(script, extra_env), timeout=timeout)

    def readme_command(self, name):
        """The README's command marked ``<!-- name -->``, read from the tree inside the root."""
        checkout = self.path(CHECKOUT)
        return _run(["bash", str(checkout / ".ci" / "readme-command"), name, str(checkout / "README.md")]).strip()

    def add_student(self, username, full_name="Fresh Student"):
        """Make a student with the roster tool inside the root; return the generated password."""
        roster = self.path(f"/root/roster-{username}.csv")
        roster.write_text(f"username,full_name,role\n{username},{full_name},student\n")
        passwords = f"/root/passwords-{username}.csv"
        self.output(shlex.join([*ROSTER_COMMAND, "add", f"/root/{roster.name}", "--password-file", passwords]))
        for line in self.path(passwords).read_text().splitlines()[1:]:
            name, password = line.split(",", 1)
            if name == username:
                return password
        raise FreshRootError(f"the roster tool wrote no password for {username} into {passwords}")

    # -- cleaning up
    def _stop_steps(self):
        """The clean-up's steps before unmounting: ``(name, callable)`` pairs."""
        return (("stop", lambda: stop_processes(self.root)), ("namespace", self._end_namespace))

    def cleanup(self):
        """Stop the processes inside by pid, unmount, remove the run folder; report what failed."""
        if self.run_dir is None:
            return
        problems = []
        for name, step in (*self._stop_steps(), ("unmount", lambda: unmount_all(self.run_dir)),
                           ("remove", lambda: _remove_tree(self.run_dir))):
            started = time.monotonic()
            try:
                step()
            except FreshRootError as error:
                problems.append(str(error))
            self.timings[f"clean-up: {name} s"] = round(time.monotonic() - started, 1)
        if problems:
            raise FreshRootError("fresh root clean-up: " + "; ".join(problems))
        self.run_dir = None


# ---- A fresh machine that boots: systemd as PID 1 under systemd-nspawn -----------------------------
#: The cgroup hierarchies a booted root is started in (one folder per run in each): name=systemd
#: and the unified one, which systemd-nspawn and the systemd inside use, and the v1 controllers
#: whose limits the test checks. Those that this machine does not mount are left out.
BOOT_CGROUPS = ("systemd", "unified", "memory", "cpu", "cpuacct", "pids")
CGROUP_ROOT = pathlib.Path("/sys/fs/cgroup")
#: systemd-nspawn's exit status after ``systemctl reboot`` inside: boot again.
REBOOT_STATUS = 133
BOOT_TIMEOUT = 180


def _cgroup_pids(folder):
    """Pids in a cgroup folder and every folder below it."""
    pids = set()
    for procs in pathlib.Path(folder).rglob("cgroup.procs"):
        with contextlib.suppress(OSError, ValueError):
            pids.update(int(pid) for pid in procs.read_text().split())
    return pids


def _remove_cgroups(run_dir):
    """Remove the cgroups a booted run was started in (``cgroups.json``), deepest first, once empty.

    Raises
    ------
    FreshRootError
        If one still holds processes after 30 s.
    """
    try:
        folders = [pathlib.Path(p) for p in json.loads((pathlib.Path(run_dir) / "cgroups.json").read_text())]
    except (OSError, ValueError):
        return
    for folder in folders:
        if not folder.is_dir():
            continue
        hubkit.wait_for(lambda: not _cgroup_pids(folder), 30, what=f"the processes of {folder} to end")
        for inner in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            inner.rmdir()
        folder.rmdir()


class BootedRoot(FreshRoot):
    """A fresh root booted with systemd as PID 1 (``systemd-nspawn --boot``): a machine with systemd.

    On top of :class:`FreshRoot`: the base brings systemd (:data:`BOOT_PACKAGES`); the root gets
    a hostname of its own that resolves nowhere (debootstrap writes no ``127.0.1.1`` line for it,
    and the host's ``/etc/hosts`` copied in does not name it); it is booted from cgroups this run
    makes (``--register=no --keep-unit``: this machine has no systemd to register with), then the
    v1 controllers nspawn mounts read-only inside are remounted read-write and systemd re-executed,
    so that MemoryMax and CPUQuota are enforced. Commands run in the container's namespaces
    (``nsenter``). The container shares this machine's network: its hub must use other ports.
    Clean-up: SIGKILL to the container's PID 1 ends its PID namespace, then the cgroups are
    removed and the root unmounted.
    """

    BASE_PACKAGES = BOOT_PACKAGES

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.machine = "dlboot" + uuid.uuid4().hex[:6]
        self.nspawn = None
        self.cgroups = []
        self.boots = 0

    def _start(self):
        self.path("/etc/hostname").write_text(f"{self.machine}\n")
        self.cgroups = [CGROUP_ROOT / name / self.machine for name in BOOT_CGROUPS if (CGROUP_ROOT / name).is_dir()]
        (self.run_dir / "cgroups.json").write_text(json.dumps([str(p) for p in self.cgroups]))
        for folder in self.cgroups:
            folder.mkdir()
        self.boot()

    def boot(self, timeout=BOOT_TIMEOUT):
        """Boot the root (again) and wait until systemd reports the system up; limits enforced."""
        started = time.monotonic()
        enter = "".join(f"echo $$ > {folder}/cgroup.procs; " for folder in self.cgroups)
        binds = [f"--bind-ro={folder}" for folder in self.package_folders]
        command = ["systemd-nspawn", "--boot", f"--directory={self.root}", f"--machine={self.machine}",
                   "--register=no", "--keep-unit", "--console=read-only", *binds]
        log = open(self.run_dir / f"boot-{self.boots}.log", "ab")
        # Its own session: Ctrl-C reaches the test, not the container (the clean-up ends it).
        self.nspawn = subprocess.Popen(["/bin/sh", "-c", enter + 'exec "$@"', "nspawn", *command],
                                       stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        log.close()
        self.boots += 1

        def leader():
            if self.nspawn.poll() is not None:
                raise FreshRootError(f"systemd-nspawn exited with {self.nspawn.returncode}:\n"
                                     f"{tail(self.run_dir / f'boot-{self.boots - 1}.log')}")
            children = pathlib.Path(f"/proc/{self.nspawn.pid}/task/{self.nspawn.pid}/children")
            found = children.read_text().split() if children.exists() else []
            return int(found[0]) if found and "systemd" in hubkit._cmdline(int(found[0])) else None

        self.namespace_init = hubkit.wait_for(leader, timeout, interval=0.2, what="the container's systemd")
        (self.run_dir / "namespace.json").write_text(
            json.dumps({"pid": self.namespace_init, "start_ticks": _start_ticks(self.namespace_init)}))

        def up():
            state = subprocess.run(self.command("systemctl is-system-running", cwd="/"), capture_output=True,
                                   text=True).stdout.strip()
            return state in ("running", "degraded") and state
        self.state = hubkit.wait_for(up, timeout, interval=0.5, what="systemd to finish booting the container")
        self.output("for c in memory cpu cpuacct pids; do mount -o remount,bind,rw /sys/fs/cgroup/$c; done; "
                    "systemctl daemon-reexec", cwd="/")
        hubkit.wait_for(up, timeout, interval=0.5, what="systemd after its re-execution")
        self.timings[f"boot {self.boots} s"] = round(time.monotonic() - started, 1)
        return self

    def wait_for_power_off(self, timeout=120):
        """Wait for the container to stop (after ``systemctl reboot`` or ``poweroff``); return
        systemd-nspawn's exit status (:data:`REBOOT_STATUS` for a reboot)."""
        try:
            return self.nspawn.wait(timeout)
        except subprocess.TimeoutExpired:
            raise FreshRootError(f"the container still runs {timeout} s after it was told to stop") from None

    def command(self, script, extra_env=None, cwd=CHECKOUT):
        """The host command line that runs the shell ``script`` in the container, in ``cwd``."""
        variables = [f"{k}={v}" for k, v in self.environment(extra_env).items()]
        return ["nsenter", "--target", str(self.namespace_init), "--all", "--",
                "/usr/bin/env", "-i", *variables, "/bin/bash", "-c", f"cd {shlex.quote(cwd)} && {script}"]

    def output(self, script, extra_env=None, timeout=300, cwd=CHECKOUT):
        """Run ``script`` in the container and return its standard output (raise if it fails)."""
        return _run(self.command(script, extra_env, cwd), timeout=timeout)

    def processes(self):
        """Pids (as this machine numbers them) of every process of the container."""
        return sorted(set().union(*(_cgroup_pids(folder) for folder in self.cgroups)))

    def _power_off(self):
        if self.namespace_init is not None and hubkit.pid_alive(self.namespace_init):
            _stop_namespace(self.run_dir)  # SIGKILL to its PID 1: the kernel ends the rest
        if self.nspawn is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.nspawn.wait(30)

    def _stop_steps(self):
        return (("power off", self._power_off), ("cgroups", lambda: _remove_cgroups(self.run_dir)))


# ---- By hand: build the base, or run README commands in a fresh root -------------------------------
def main(argv=None):
    """``build-base [--refresh]``, or ``readme NAME [NAME ...]`` (e.g. install-command test-command)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="action", required=True)
    build = commands.add_parser("build-base", help="build the cached base root (once; --refresh rebuilds it)")
    build.add_argument("--refresh", action="store_true")
    readme = commands.add_parser("readme", help="run README commands, in order, in one fresh root")
    readme.add_argument("names", nargs="+", help="README markers, e.g. install-command test-command")
    readme.add_argument("--log-dir", default=str(REPO_ROOT / "test-artifacts" / "freshroot"),
                        help="where the logs and timings go (default: %(default)s)")
    readme.add_argument("--shared", default=None,
                        help="a folder copied beside the checkout as ../shared, as CI lays it out")
    commands.add_parser("clean", help="clean runs left by a killed test")
    args = parser.parse_args(argv)
    if args.action == "build-base":
        tarball, metadata = ensure_base(refresh=args.refresh)
        print(f"{tarball}: {json.dumps(metadata)}")
        return 0
    if args.action == "clean":
        print(f"cleaned: {[str(p) for p in clean_stale_runs()]}")
        return 0
    log_dir = pathlib.Path(args.log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    whole = time.monotonic()
    with FreshRoot() as root:
        ports = HubPorts()
        write_site_settings(root, ports)  # the hub the install starts must not take this machine's ports
        print(f"freshroot: {root.root}; hub ports {ports}", flush=True)
        if args.shared:
            shutil.copytree(args.shared, root.path(CHECKOUT).parent / "shared", symlinks=True)
        for name in args.names:
            command = root.readme_command(name)
            log_path = log_dir / f"{name}.log"
            log_path.unlink(missing_ok=True)
            print(f"freshroot: running the README's {name}: {command} (log: {log_path})", flush=True)
            started = time.monotonic()
            try:
                root.run(command, log_path, timeout=4 * 3600)
            finally:
                root.timings[f"{name} s"] = round(time.monotonic() - started, 1)
                print(f"freshroot: {name} took {root.timings[f'{name} s']} s", flush=True)
        root.timings["whole s"] = round(time.monotonic() - whole, 1)
        (log_dir / "timings.json").write_text(json.dumps(root.timings, indent=1) + "\n")
        print(f"freshroot: timings {json.dumps(root.timings)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
