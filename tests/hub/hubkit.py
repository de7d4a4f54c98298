"""Helpers to drive a real course hub from tests: start/stop it, log in, spawn, run code.

Everything here talks to real components: the project's ``jupyterhub_config.py`` started by
``course-hub`` (``course_hub.launcher``) with a test settings file of its own (free ports, a
temporary state folder), configurable-http-proxy, PAM logins over HTTP, and kernels over their
websocket. The fixtures in ``conftest.py`` wrap these; other tests and the bench scripts import
this module as ``tests.hub.hubkit`` (the repository root is on ``sys.path`` under pytest and
with ``python -m``).
"""
import atexit
import json
import os
import pathlib
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from urllib.parse import parse_qs, urlencode, urljoin, urlparse

import requests
import websocket
import yaml
from course_hub import launcher, paths, repository, tls
from course_hub import settings as course_settings

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
CONFIG = REPO_ROOT / "jupyterhub_config.py"
PYTHON = pathlib.Path(sys.executable)
PROXY_COMMAND = paths.PROXY_COMMAND


class HubError(RuntimeError):
    """The hub did not do what a helper waited for."""


def free_port():
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(predicate, timeout, interval=0.25, what="a condition"):
    """Call ``predicate`` until it returns a true value, and return that value.

    Raises
    ------
    HubError
        If ``timeout`` seconds pass first.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise HubError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def pid_alive(pid):
    """Whether a process with this pid exists (and is not a zombie)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def stop_pid(pid, timeout=30):
    """SIGTERM ``pid``, then SIGKILL if it is still there after ``timeout`` s."""
    for number, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5)):
        try:
            os.kill(pid, number)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and pid_alive(pid):
            time.sleep(0.1)
        if not pid_alive(pid):
            return


def pids_of_uid(uid):
    """Pids of the processes whose real uid is ``uid``."""
    found = []
    for entry in pathlib.Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            match = re.search(r"^Uid:\s+(\d+)", status, re.MULTILINE)
            if match and int(match.group(1)) == uid:
                found.append(int(entry.name))
    return found


def server_pids(username):
    """Pids of ``username``'s Jupyter servers (``jupyterhub-singleuser``, executed or forked)."""
    uid = pwd.getpwnam(username).pw_uid
    return [pid for pid in pids_of_uid(uid) if "jupyterhub-singleuser" in _cmdline(pid)]


def server_pid(username):
    """The pid of ``username``'s one Jupyter server."""
    servers = server_pids(username)
    assert len(servers) == 1, f"{username} runs {len(servers)} servers: {servers}"
    return servers[0]


def write_settings(path, values):
    """Write a site settings file (only the keys that differ from the shared settings)."""
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path


def hub_environment(settings_file):
    """The environment of a process that runs this checkout's course_hub with ``settings_file``.

    ``PYTHONPATH`` puts this checkout first (the hub, the launcher and the tools run the code
    under test); the hub gives students' servers an environment of its own, without it.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT)
    env[course_settings.SETTINGS_VARIABLE] = str(settings_file)
    return env


def rss_bytes(pid):
    """Resident memory of one process, in bytes (from /proc)."""
    with open(f"/proc/{pid}/status") as handle:
        match = re.search(r"^VmRSS:\s+(\d+) kB", handle.read(), re.MULTILINE)
    return int(match.group(1)) * 1024 if match else 0


class Hub:
    """One hub started from the project's config, with its own ports and state folder.

    Its settings file (``DLCOURSE_SETTINGS``) names everything that differs from the shared
    settings: the ports, the state folder, the course repository, the local spawner, and the
    grading folders and sandbox socket (:attr:`grading_root`), so that no test hub's grading
    sandbox takes the server's socket.

    Parameters
    ----------
    course_repo : str
        The course repository students' copies sync from.
    git_config_system : str or None
        A git system configuration marking ``course_repo`` as a safe directory.
    settings : dict, optional
        More site settings, merged over the test's (e.g. a short culler timeout).
    """

    def __init__(self, course_repo, git_config_system=None, settings=None):
        self.workdir = pathlib.Path(tempfile.mkdtemp(prefix="hubtest-"))
        self.state_dir = self.workdir / "state"
        self.state_dir.mkdir(mode=0o700)
        self.run_dir = run_dir_beside(self.state_dir)
        self.port = free_port()
        self.api_port = free_port()
        self.log_path = self.workdir / "hub.log"
        # Grading's folders must be reachable by users and the sandbox account (the workdir is
        # root's alone); removed when the test process ends, after its hubs have stopped.
        self.grading_root = pathlib.Path(tempfile.mkdtemp(prefix="hubtest-grading-"))
        self.grading_root.chmod(0o755)
        atexit.register(shutil.rmtree, self.grading_root, True)
        self.settings_file = write_settings(self.workdir / "settings.yaml", hub_settings(
            self.port, self.api_port, self.state_dir, course_repo,
            course_settings.deep_merge(grading_settings(self.grading_root), settings or {})))
        #: The hub's address, and what its certificate is checked against (see hub_address).
        self.url, self.verify = hub_address(course_settings.load_settings(self.settings_file)["server"], self.port)
        self.env = hub_environment(self.settings_file)
        if git_config_system:
            self.env["GIT_CONFIG_SYSTEM"] = str(git_config_system)
        self.process = None

    @property
    def pid(self):
        """The hub's pid (the launcher execs the hub, so they are the same)."""
        return self.process.pid if self.process else None

    def proxy_pid(self):
        """The pid of the proxy the hub started, from its pid file, or None."""
        try:
            return int((self.run_dir / paths.PROXY_PIDFILE).read_text().strip())
        except (OSError, ValueError):
            return None

    def start(self, timeout=90):
        """Start the hub and wait until it answers its health check."""
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [str(PYTHON), "-m", launcher.LAUNCHER_MODULE, "--config", str(CONFIG)],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        try:
            wait_for(self._healthy, timeout, what=f"the hub on port {self.port} (log: {self.log_path})")
        except HubError:
            self.stop()
            raise HubError(f"the hub did not start; its log ends with:\n{self.log_tail()}") from None
        return self

    def _healthy(self):
        if self.process.poll() is not None:
            raise HubError(f"the hub exited with {self.process.returncode}:\n{self.log_tail()}")
        return answers_health(self.url, self.verify)

    def kill(self):
        """Crash the hub: SIGKILL, no clean-up (its proxy and the students' servers stay)."""
        os.kill(self.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self):
        """Stop the hub (SIGTERM, by pid), then its proxy if a crash left one behind."""
        if self.process and self.process.poll() is None:
            stop_pid(self.process.pid)
            self.process.wait(10)
        proxy = self.proxy_pid()
        if proxy and pid_alive(proxy) and "configurable-http-proxy" in _cmdline(proxy):
            stop_pid(proxy, timeout=10)
        # A hub that was killed (a crash test) cannot stop its managed services: the idle
        # culler would outlive the test. course-hub finds them by this hub's API address.
        launcher.stop_pids(launcher.orphaned_services(self.api_port))

    def log_tail(self, lines=40):
        """The last lines of the hub's log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def log_text(self):
        """The hub's whole log."""
        return self.log_path.read_text(errors="replace")


class HubAddress:
    """What :class:`HubSession` needs of a hub that is not a :class:`Hub` (started by rc.local, an
    install, or inside a fresh root): its address and what its certificate is checked against."""

    def __init__(self, url, verify=True):
        self.url, self.verify = url, verify


def hub_address(server, port, host="127.0.0.1"):
    """A hub's base URL and what requests should check its certificate against: ``(url, verify)``.

    HTTPS with the hub's own certificate file (the self-signed one is made by the hub when it
    starts, in its state folder), or plain HTTP behind a TLS front end (``verify`` True).
    """
    files = tls.certificate_files(server)
    if files is None:
        return f"http://{host}:{port}", True
    return f"https://{host}:{port}", str(files[0])


def answers_health(url, verify=True, timeout=2):
    """Whether the hub at ``url`` answers its health check (200), its certificate checked."""
    try:
        return requests.get(f"{url}/hub/health", timeout=timeout, verify=verify).status_code == 200
    except OSError:  # requests' errors, and a certificate file the starting hub has not made yet
        return False


def websocket_url(http_url):
    """The websocket address of a page address (``wss://`` for ``https://``)."""
    return "ws" + http_url[len("http"):] if http_url.startswith("http") else http_url


def http_session(verify=True):
    """A requests session that checks a hub's certificate against ``verify`` (a self-signed one).

    Not the environment's settings: REQUESTS_CA_BUNDLE would replace the session's certificate,
    and a proxy variable would send the hub's localhost traffic elsewhere.
    """
    session = requests.Session()
    session.verify = verify
    session.trust_env = False
    return session


def websocket_options(verify):
    """``websocket.create_connection`` options that check the certificate as requests does."""
    return {"sslopt": {"ca_certs": verify}} if isinstance(verify, str) else {}


def run_dir_beside(state_dir):
    """A test hub's folder of pid files (the settings' ``server.run_dir``): beside its state folder."""
    return pathlib.Path(state_dir).parent / "run"


def hub_settings(port, api_port, state_dir, course_repo, overrides=None):
    """The site settings of a test hub: free ports, its own state and run folders and course repository
    (its own grading folders and sandbox socket come from :func:`grading_settings`)."""
    values = {
        "hub": {"port": port},
        "server": {
            "ip": "127.0.0.1",
            "hub_api_port": api_port,
            "proxy_api_port": free_port(),
            "spawner": "local",
            "state_dir": str(state_dir),
            "run_dir": str(run_dir_beside(state_dir)),
            "course_repo": str(course_repo),
            **grading_settings(pathlib.Path(state_dir).parent / "grading-root")["server"],
        },
    }
    return course_settings.deep_merge(values, overrides or {})


def grading_settings(root):
    """Site settings putting a hub's grading folders and sandbox socket under ``root``."""
    return {"server": {"grading_dir": str(root / "grading"), "exchange_dir": str(root / "exchange"),
                       "grader_socket": str(root / "run" / "grader.sock")}}


def _cmdline(pid):
    try:
        return pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


class LoginFailed(HubError):
    """The hub refused a login."""

    def __init__(self, status, text):
        super().__init__(f"login refused with HTTP {status}")
        self.status = status
        self.text = text


class HubSession:
    """A logged-in browser-like session of one user on a hub.

    Parameters
    ----------
    hub : Hub
    username, password : str
    """

    def __init__(self, hub, username, password):
        self.hub = hub
        self.username = username
        self.http = http_session(getattr(hub, "verify", True))
        self.login(password)

    def login(self, password):
        """Log in through the login form (``_xsrf`` cookie, sent back as a form field)."""
        self.http.get(f"{self.hub.url}/hub/login", timeout=30)
        xsrf = self.http.cookies.get("_xsrf", path="/hub/")
        response = self.http.post(
            f"{self.hub.url}/hub/login",
            data={"username": self.username, "password": password, "_xsrf": xsrf},
            allow_redirects=False,
            timeout=60,
        )
        if response.status_code != 302:
            raise LoginFailed(response.status_code, response.text)
        self.hub_xsrf = self.http.cookies.get("_xsrf", path="/hub/")
        #: Where the hub sends the browser after the login form.
        self.after_login = urljoin(self.hub.url, response.headers["Location"])

    def hub_api(self, method, path, **kwargs):
        """Call the hub's REST API with this session's cookie (and its XSRF header)."""
        headers = {"X-XSRFToken": self.hub_xsrf, **kwargs.pop("headers", {})}
        return self.http.request(method, f"{self.hub.url}/hub/api{path}", headers=headers, timeout=60, **kwargs)

    def start_server(self, timeout=120):
        """Ask the hub to start this user's server and wait until it is ready."""
        response = self.hub_api("POST", f"/users/{self.username}/server")
        if response.status_code not in (201, 202, 400):  # 400: already running
            raise HubError(f"start of {self.username}'s server: HTTP {response.status_code} {response.text}")
        wait_for(self.server_ready, timeout, interval=0.5, what=f"{self.username}'s server")
        return self

    def server_ready(self):
        """Whether the hub reports this user's server as ready."""
        model = self.hub_api("GET", f"/users/{self.username}").json()
        return model.get("servers", {}).get("", {}).get("ready", False)

    def server_model(self):
        """The hub's model of this user's default server, or None when it does not run."""
        return self.hub_api("GET", f"/users/{self.username}").json().get("servers", {}).get("")

    def open_server(self, owner=None, timeout=300):
        """Land on ``owner``'s server (default: one's own) as a browser does; return the last response.

        Through OAuth (a user opening someone else's server is asked to authorize access on a
        hub page; this answers it like a person clicking "Authorize"), then through the
        server's landing page: nbgitpuller's ``git-pull`` page, whose script syncs the course
        over an event stream and then opens the course (:meth:`follow_course_sync`).
        """
        owner = owner or self.username
        # A page, not an API path: only pages redirect through the hub's OAuth.
        return self.land(self.http.get(f"{self.hub.url}/user/{owner}/", timeout=60), owner, timeout)

    def land(self, response, owner=None, timeout=300):
        """Carry on from ``response`` (a page on the way to ``owner``'s server) as a browser does:
        authorize OAuth when asked, run the course sync of nbgitpuller's page; return the last
        response (see :meth:`open_server`)."""
        owner = owner or self.username
        if response.status_code == 200 and "/hub/api/oauth2/authorize" in response.url:
            response = self._confirm_oauth(response)
        if response.status_code == 200 and urlparse(response.url).path == f"/user/{owner}/git-pull":
            self.sync_events = self.follow_course_sync(response.url, owner, timeout)
            if self.sync_events[-1].get("phase") != "finished":
                raise HubError(f"the course sync on {owner}'s server failed: {self.sync_events[-1]}")
            opened = parse_qs(urlparse(response.url).query)["urlpath"][0]
            response = self.http.get(f"{self.hub.url}/user/{owner}/{opened}", timeout=60)
        return response

    def follow_course_sync(self, page_url, owner=None, timeout=300):
        """Do what nbgitpuller's ``git-pull`` page does in a browser; return its events.

        The page's script (nbgitpuller's ``gitsync.js``) opens ``git-pull/api`` with the page's
        query and the ``_xsrf`` token as an event stream, shows each event's output, and stops
        at the phase ``finished`` or ``error``.
        """
        owner = owner or self.username
        query = {key: values[0] for key, values in parse_qs(urlparse(page_url).query).items()
                 if key in ("repo", "branch", "targetpath", "depth", "backup")}
        query["_xsrf"] = self.server_xsrf(owner)
        events = []
        with self.http.get(f"{self.hub.url}/user/{owner}/git-pull/api?{urlencode(query)}", stream=True,
                           headers={"Accept": "text/event-stream"}, timeout=(30, timeout)) as stream:
            if stream.status_code != 200:
                raise HubError(f"git-pull/api on {owner}'s server: HTTP {stream.status_code} {stream.text[:300]}")
            for line in stream.iter_lines(decode_unicode=True):
                if line and line.startswith("data:"):
                    events.append(json.loads(line[len("data:"):]))
                    if events[-1].get("phase") in ("finished", "error"):
                        break
        if not events:
            raise HubError(f"git-pull/api on {owner}'s server ended without an event")
        return events

    def _confirm_oauth(self, page):
        """Submit the "Authorize access" form shown at ``page``."""
        form = re.search(r'<form[^>]*action="([^"]*)"', page.text)
        if not form:
            return page
        fields = dict(re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', page.text))
        fields.setdefault("_xsrf", self.hub_xsrf)
        scopes = re.findall(r'<input[^>]*name="scopes"[^>]*value="([^"]*)"', page.text)
        action = form.group(1).replace("&amp;", "&")
        target = action if action.startswith("http") else f"{self.hub.url}{action}" if action.startswith("/") else page.url
        data = [(key, value) for key, value in fields.items() if key != "scopes"] + [("scopes", s) for s in scopes]
        return self.http.post(target, data=data, timeout=60)

    def server_xsrf(self, owner=None):
        """The ``_xsrf`` cookie the single-user server set for this session."""
        owner = owner or self.username
        for cookie in self.http.cookies:
            if cookie.name == "_xsrf" and cookie.path.startswith(f"/user/{owner}"):
                return cookie.value
        return self.hub_xsrf

    def server_api(self, method, path, owner=None, **kwargs):
        """Call ``owner``'s single-user server REST API (``/user/<owner>/api<path>``)."""
        owner = owner or self.username
        headers = {"X-XSRFToken": self.server_xsrf(owner), **kwargs.pop("headers", {})}
        return self.http.request(
            method, f"{self.hub.url}/user/{owner}/api{path}", headers=headers, timeout=60, **kwargs
        )

    def start_kernel(self, owner=None):
        """Start a Python kernel on ``owner``'s server and return a connected :class:`Kernel`."""
        owner = owner or self.username
        response = self.server_api("POST", "/kernels", owner=owner, json={"name": "python3"})
        if response.status_code != 201:
            raise HubError(f"kernel start on {owner}'s server: HTTP {response.status_code} {response.text}")
        return Kernel(self, owner, response.json()["id"])


class Kernel:
    """A kernel reached over its websocket (``/api/kernels/<id>/channels``), like a notebook."""

    def __init__(self, session, owner, kernel_id, timeout=120):
        self.session = session
        self.owner = owner
        self.id = kernel_id
        query = urlencode({"session_id": uuid.uuid4().hex, "_xsrf": session.server_xsrf(owner)})
        url = websocket_url(f"{session.hub.url}/user/{owner}/api/kernels/{kernel_id}/channels?{query}")
        cookies = "; ".join(f"{c.name}={c.value}" for c in session.http.cookies if _cookie_applies(c, owner))
        self.socket = websocket.create_connection(
            url, header=[f"Cookie: {cookies}"], origin=session.hub.url, timeout=timeout,
            **websocket_options(session.http.verify),
        )
        self.session_id = uuid.uuid4().hex

    def send(self, code):
        """Ask the kernel to run ``code`` without waiting for it; return the request's id."""
        msg_id = uuid.uuid4().hex
        message = {
            "header": {
                "msg_id": msg_id, "username": self.owner, "session": self.session_id,
                "msg_type": "execute_request", "version": "5.3", "date": "",
            },
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": True,
                        "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
        }
        self.socket.send(json.dumps(message))
        return msg_id

    def execute(self, code, timeout=120):
        """Run ``code`` and collect what a notebook would show.

        Returns
        -------
        dict
            ``stdout``, ``stderr`` (text), ``result`` (``text/plain`` of the value, or None),
            ``error`` (``{"ename", "evalue"}`` or None), ``status`` of the reply.
        """
        msg_id = self.send(code)
        out = {"stdout": "", "stderr": "", "result": None, "error": None, "status": None, "displays": []}
        idle = replied = False
        deadline = time.monotonic() + timeout
        while not (idle and replied):
            if time.monotonic() > deadline:  # messages of other requests can keep recv() busy
                raise HubError(f"no answer from the kernel within {timeout} s; so far: {out}")
            self.socket.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                incoming = json.loads(self.socket.recv())
            except websocket.WebSocketTimeoutException:
                raise HubError(f"no answer from the kernel within {timeout} s; so far: {out}") from None
            if incoming.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = incoming["header"]["msg_type"], incoming["content"]
            if kind == "stream":
                out[content["name"]] += content["text"]
            elif kind == "execute_result":
                out["result"] = content["data"].get("text/plain")
            elif kind == "display_data":
                out["displays"].append(content["data"])
            elif kind == "error":
                out["error"] = {"ename": content["ename"], "evalue": content["evalue"]}
            elif kind == "status" and content["execution_state"] == "idle":
                idle = True
            elif kind == "execute_reply":
                replied = True
                out["status"] = content["status"]
        return out

    def next_message(self, timeout):
        """The next message the websocket carries, or None after ``timeout`` seconds."""
        self.socket.settimeout(timeout)
        try:
            return json.loads(self.socket.recv())
        except websocket.WebSocketTimeoutException:
            return None

    def close(self):
        """Close the websocket (the kernel keeps running)."""
        self.socket.close()


def restarted_kernel(session, owner, kernel_id, timeout=120):
    """Wait until ``owner``'s server has restarted the killed kernel ``kernel_id`` and it answers
    over a new websocket, as Notebook 7 finds it; return that connected :class:`Kernel`.

    Not the server's model's ``execution_state`` alone: a kernel killed while busy keeps "busy"
    there after its restart when its Unix sockets keep their paths (jupyter_server resets the
    state only when the ports change), although the restarted kernel is idle.
    """
    last = {}

    def back():
        last.update(session.server_api("GET", f"/kernels/{kernel_id}", owner=owner).json())
        return last.get("execution_state") not in (None, "restarting", "dead", "autorestarting")

    try:
        wait_for(back, timeout, interval=0.5, what=f"the server to restart kernel {kernel_id}")
    except HubError as exc:
        raise HubError(f"{exc}; the server's last model of it: {last}") from None
    kernel = Kernel(session, owner, kernel_id)
    answer = kernel.execute("6 * 7", timeout=timeout)
    if answer["result"] != "42":
        kernel.close()
        raise HubError(f"the restarted kernel {kernel_id} did not answer 6 * 7: {answer}")
    return kernel


def crowd_out_a_kernel(session, limit, share=0.45, timeout=300):
    """Two kernels of the session's user each ask for ``share`` of ``limit`` bytes; return
    ``(killed, survivor)`` once the memory limit has ended one of them.

    The first gets its block (with the server and the kernels' own numpy, one block fits); the
    second's request takes the student past the limit, and the kernel's OOM killer ends the
    largest of the student's processes: usually the first kernel, whereupon the second gets its
    block. The server tells the ended kernel's websocket it is ``restarting``. The blocks are
    written (``np.ones``), so they are really held, not only reserved.

    Raises
    ------
    HubError
        If the second kernel gets its block too (nothing held the limit), or nothing happens
        within ``timeout`` s.
    """
    first, second = session.start_kernel(), session.start_kernel()
    for kernel in (first, second):
        kernel.execute("import numpy as np")
    ask = f"block = np.ones({int(share * limit) // 8}); print(block.nbytes)"
    held = first.execute(ask)
    if held["error"] is not None:
        raise HubError(f"the first kernel could not hold {share:.0%} of the limit: {held['error']}")
    request = second.send(ask)
    deadline = time.monotonic() + timeout
    answered = None
    while time.monotonic() < deadline:
        for kernel, other in ((first, second), (second, first)):
            message = kernel.next_message(0.25)
            if message is None:
                continue
            kind, content = message["header"]["msg_type"], message["content"]
            if kind == "status" and content.get("execution_state") in ("restarting", "dead"):
                return kernel, other
            if kind == "execute_reply" and message["parent_header"].get("msg_id") == request:
                # When the first kernel (the largest) was the one ended, the second gets its block;
                # the news of the first one's end may come a moment after this answer.
                answered = content["status"]
                deadline = min(deadline, time.monotonic() + 60)
    if answered:
        raise HubError(f"the second kernel's request ended with {answered} and the first kernel lives on: "
                       f"the two kernels held {2 * share:.0%} of the limit and more")
    raise HubError(f"neither kernel was stopped within {timeout} s")


def restarted_after_crowding(session, owner, killed, survivor, kills, timeout=120):
    """The kernels that :func:`crowd_out_a_kernel` ended, once the server has restarted them.

    ``kills`` is how many processes the OOM killer ended meanwhile (the cgroup's count). Usually
    one: ``killed``, while ``survivor`` got its block and keeps its state. At times two: the
    first victim has left the process list but its memory is not returned yet while the other
    kernel keeps asking (seen here with numpy's huge pages), so the OOM killer ends that one too.
    Both are then restarted like any killed kernel.

    Returns
    -------
    tuple
        ``(restarted, survivor)``: the restarted kernels, connected anew, in the order
        ``killed``, ``survivor``; and ``survivor`` (its websocket as before) or ``None`` when it
        was ended too.

    Raises
    ------
    HubError
        If ``kills`` is neither 1 nor 2: then something other than these two kernels was ended,
        or nothing was.
    """
    if kills not in (1, 2):
        raise HubError(f"the OOM killer ended {kills} processes; the two kernels account for 1 or 2")
    ended = [killed] if kills == 1 else [killed, survivor]
    restarted = []
    try:
        for kernel in ended:
            kernel.close()
            restarted.append(restarted_kernel(session, owner, kernel.id, timeout))
    except BaseException:
        for kernel in restarted:
            kernel.close()
        raise
    return restarted, (survivor if kills == 1 else None)


def browser_login(page, hub_url, username, password, timeout_ms=180_000):
    """Log in through the login form in a Playwright ``page``; wait until the hub has sent the
    browser to the user's server (spawned first, when it was not running)."""
    page.goto(f"{hub_url}/hub/login")
    page.fill("#username_input", username)
    page.fill("#password_input", password)
    page.click("#login_submit")
    page.wait_for_url(f"**/user/{username}/**", timeout=timeout_ms)


class Terminal:
    """A terminal of a user's server, opened through its API and driven over its websocket.

    What File > New > Terminal does: ``POST /user/<owner>/api/terminals`` names a new terminal
    (a login shell, ``bash -l``, of the server's user), and ``/user/<owner>/terminals/websocket/
    <name>`` carries its keystrokes and output (terminado's messages: ``["stdin", text]`` in,
    ``["stdout", text]`` out).
    """

    ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")

    def __init__(self, session, owner=None, timeout=120):
        self.session = session
        self.owner = owner or session.username
        response = session.server_api("POST", "/terminals", owner=self.owner)
        if response.status_code != 200:
            raise HubError(f"terminal on {self.owner}'s server: HTTP {response.status_code} {response.text[:300]}")
        self.name = response.json()["name"]
        query = urlencode({"_xsrf": session.server_xsrf(self.owner)})
        cookies = "; ".join(f"{c.name}={c.value}" for c in session.http.cookies if _cookie_applies(c, self.owner))
        self.socket = websocket.create_connection(
            websocket_url(f"{session.hub.url}/user/{self.owner}/terminals/websocket/{self.name}?{query}"),
            header=[f"Cookie: {cookies}"], origin=session.hub.url, timeout=timeout,
            **websocket_options(session.hub.verify))
        self.socket.send(json.dumps(["set_size", 50, 250, 1000, 1000]))

    def run(self, command, timeout=300):
        """Type ``command`` and Enter; return ``(exit status, output)`` once it has finished.

        The output is what the command printed, without the echo of the typed line or the
        prompts: it lies between two markers that the shell prints, written so that the echo
        of the typed line does not contain them.
        """
        marker = uuid.uuid4().hex[:12]
        self.socket.send(json.dumps(["stdin", f"echo {marker}''BEGIN; {command}\necho {marker}''END $?\n"]))
        finished = re.compile(rf"{marker}BEGIN\n(.*?){marker}END (\d+)\n", re.DOTALL)
        text, deadline = "", time.monotonic() + timeout
        while not (found := finished.search(self.ESCAPES.sub("", text))):
            self.socket.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                message = json.loads(self.socket.recv())
            except websocket.WebSocketTimeoutException:
                raise HubError(f"{command!r} did not finish within {timeout} s in {self.owner}'s terminal; "
                               f"it showed: {self.ESCAPES.sub('', text)[-2000:]}") from None
            if message[0] == "stdout":
                text += message[1]
            elif message[0] == "disconnect":
                raise HubError(f"{self.owner}'s terminal closed; it showed: {self.ESCAPES.sub('', text)[-2000:]}")
        output = found.group(1)
        # The typed line's echo may come after the BEGIN marker (the shell echoes as it reads).
        output = "\n".join(line for line in output.split("\n") if f"{marker}''END" not in line)
        return int(found.group(2)), output

    def close(self):
        """Close the websocket and end the terminal."""
        self.socket.close()
        self.session.server_api("DELETE", f"/terminals/{self.name}", owner=self.owner)


def _cookie_applies(cookie, owner):
    return cookie.path in ("/", "/hub/") or cookie.path.startswith(f"/user/{owner}")


def publish_course(source, repo, message=None):
    """Publish ``source`` into the course repository ``repo`` (a commit only if something
    changed), readable by everyone; return the commit or None."""
    commit = repository.publish(source, repo, **({"message": message} if message else {}))
    subprocess.run(["chmod", "-R", "a+rX", str(repo)], check=True)
    return commit


def write_probe_notebook(path, code):
    """Write a small notebook: a markdown cell, then one code cell holding ``code``."""
    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_markdown_cell("# Hub check"), nbformat.v4.new_code_cell(code)]
    # As every course notebook: Notebook 7 then starts its kernel without asking which.
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                       "language": "python"}
    nbformat.write(notebook, str(path))


def home_of(username):
    """The home folder of a Unix user."""
    return pathlib.Path(pwd.getpwnam(username).pw_dir)


def logged_in(hub, user):
    """A :class:`HubSession` of ``user`` (``(username, password)``) with a running server it has opened."""
    session = HubSession(hub, *user)
    session.start_server()
    session.open_server()
    return session
