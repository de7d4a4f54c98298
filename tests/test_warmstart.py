"""The warm starter of students' servers (course_hub.warmstart): what it refuses, what it hands on.

The servers it forks for real students, through a real hub, are tested in
``tests/hub/test_hub_warmstart.py``; here: its checks, the configuration standing in for the
import-time environment, the scan that keeps that list complete, and a fork as another user.
"""
import ast
import asyncio
import contextlib
import json
import logging
import os
import pathlib
import subprocess
import sys
import time

import pytest
from course_hub import spawner, warmstart

VENV_PYTHON = pathlib.Path(sys.executable)


@pytest.fixture
def starter_environment(monkeypatch):
    """This process's environment as the warm starter's: none of the import-time variables
    (the repository's conftest sets PYTHONPATH for the notebooks' kernels)."""
    for name in warmstart.IMPORT_TIME_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def good_request(**changes):
    request = {"argv": [str(warmstart.SINGLEUSER), "--version"], "env": {"PATH": "/usr/bin:/bin"},
               "user": "nobody", "cgroup": False, "rlimit_as": None, "nice": 10}
    return {**request, **changes}


@pytest.mark.parametrize("changes, message", [
    ({"argv": []}, "argv must be a list of strings"),
    ({"argv": "jupyterhub-singleuser"}, "argv must be a list of strings"),
    ({"argv": ["/bin/sh", "-c", "id"]}, "only"),
    ({"env": {"PATH": 1}}, "env must map strings to strings"),
    ({"env": {"JUPYTERHUB_SINGLEUSER_APP": "notebook"}}, "JUPYTERHUB_SINGLEUSER_APP"),
    ({"env": {"PYTHONPATH": "/tmp"}}, "PYTHONPATH"),
    ({"user": "root"}, "never warm-started as root"),
    ({"user": "no-such-user-here"}, "no such user"),
    ({"user": None}, "no such user"),
    ({"rlimit_as": -5}, "rlimit_as"),
    ({"rlimit_as": "2G"}, "rlimit_as"),
    ({"nice": "10"}, "nice"),
])
def test_a_wrong_request_is_refused_with_the_reason(changes, message, starter_environment):
    with pytest.raises(warmstart.WarmStartError, match=message):
        warmstart.check_request(good_request(**changes))


def test_a_good_request_passes(starter_environment):
    argv, env, user, cgroup, rlimit_as, nice = warmstart.check_request(good_request(rlimit_as=2**31))
    assert (argv[0], user, cgroup, rlimit_as, nice) == (str(warmstart.SINGLEUSER), "nobody", False, 2**31, 10)


def test_the_import_time_traits_reach_their_classes_as_configuration():
    """The arguments name real traits: HubOAuth (the server's cookie path) and the kernels' Session see them."""
    from jupyter_client.session import Session
    from jupyterhub.services.auth import HubOAuth
    from traitlets.config import Application

    env = {"JUPYTERHUB_SERVICE_PREFIX": "/user/alice/", "USER": "alice", "JUPYTERHUB_SSL_KEYFILE": ""}
    arguments = warmstart.import_time_trait_arguments(env)
    assert arguments == ["--HubAuth.base_url=/user/alice/", "--Session.username=alice"]
    app = Application()
    app.parse_command_line(arguments)
    assert HubOAuth(config=app.config).base_url == "/user/alice/"
    assert Session(config=app.config).username == "alice"
    assert warmstart.import_time_trait_arguments({"PATH": "/bin"}) == []


# ---- every variable the preloaded code reads at import is handled --------------------------------
_PRELOADED_FILES = """\
import json, sys
from course_hub import warmstart
warmstart.preload()
print(json.dumps(sorted({m.__file__ for m in list(sys.modules.values())
                         if (getattr(m, "__file__", None) or "").endswith(".py")})))
"""
_READERS = {"os.environ.get", "os.getenv", "environ.get", "getenv", "os.environ.setdefault"}


def _variables_read(node):
    """Names of the environment variables an expression reads ("?..." for a name not written out)."""
    found = []
    for part in ast.walk(node):
        key = None
        if isinstance(part, ast.Call) and ast.unparse(part.func) in _READERS and part.args:
            key = part.args[0]
        elif isinstance(part, ast.Subscript) and ast.unparse(part.value) in ("os.environ", "environ"):
            key = part.slice
        elif isinstance(part, ast.Compare) and any(ast.unparse(c) in ("os.environ", "environ")
                                                   for c in part.comparators):
            key = part.left
        elif isinstance(part, ast.Attribute) and ast.unparse(part) in ("os.environ.copy", "os.environ.items"):
            found.append("?" + ast.unparse(part))
        if key is not None:
            found.append(key.value if isinstance(key, ast.Constant) else "?" + ast.unparse(key))
    return found


def import_time_reads(path):
    """``{variable: line}`` for the environment reads in ``path`` that run when it is imported:
    at module level and in class bodies, decorators and default values (not in function bodies)."""
    reads = {}

    def visit(node):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                evaluated_now = [*getattr(child, "decorator_list", []), *child.args.defaults,
                                 *(d for d in child.args.kw_defaults if d is not None)]
                for expression in evaluated_now:
                    for name in _variables_read(expression):
                        reads.setdefault(name, expression.lineno)
            elif isinstance(child, (ast.Call, ast.Subscript, ast.Compare, ast.Attribute)):
                for name in _variables_read(child):
                    reads.setdefault(name, child.lineno)
            else:
                visit(child)

    try:
        visit(ast.parse(pathlib.Path(path).read_text(encoding="utf-8")))
    except (SyntaxError, UnicodeDecodeError):  # a file Python could not have imported either
        pass
    return reads


def test_the_scan_finds_import_time_reads_and_not_function_ones(tmp_path):
    module = tmp_path / "sample.py"
    module.write_text(
        "import os\n"
        "A = os.environ.get('AT_IMPORT')\n"
        "class C:\n"
        "    b = os.getenv('IN_CLASS_BODY', 'x')\n"
        "    def f(self, d=os.environ['IN_DEFAULT']):\n"
        "        return os.environ.get('AT_CALL')\n"
        "if 'IN_CONDITION' in os.environ:\n"
        "    pass\n")
    assert set(import_time_reads(module)) == {"AT_IMPORT", "IN_CLASS_BODY", "IN_DEFAULT", "IN_CONDITION"}


def test_every_variable_the_preloaded_code_reads_at_import_is_handled():
    """A new read (after an upgrade) must join IMPORT_TIME_TRAITS, IMPORT_TIME_VARIABLES or the
    reads without effect, or forked servers could run with the warm starter's value."""
    listing = subprocess.run([str(VENV_PYTHON), "-P", "-c", _PRELOADED_FILES], capture_output=True, text=True,
                             env={"PATH": "/usr/bin:/bin"}, cwd="/", timeout=300)
    assert listing.returncode == 0, listing.stderr
    files = json.loads(listing.stdout)
    assert any(f.endswith("jupyterhub/services/auth.py") for f in files), "the preload did not import JupyterHub"
    handled = ({variable for _, variable, _ in warmstart.IMPORT_TIME_TRAITS}
               | set(warmstart.IMPORT_TIME_VARIABLES) | set(warmstart.IMPORT_TIME_READS_WITHOUT_EFFECT))
    unhandled = {}
    for path in files:
        for variable, line in import_time_reads(path).items():
            if variable not in handled:
                unhandled[variable] = f"{path}:{line}"
    assert not unhandled, f"read at import by the preloaded code, not handled in course_hub.warmstart: {unhandled}"


# ---- the spawner's choice -----------------------------------------------------------------------
@pytest.mark.parametrize("settings", [
    {"warm_start": False},
    {"cmd": ["/usr/local/bin/my-server"]},
    {"shell_cmd": ["bash", "-l", "-c"]},
    {"popen_kwargs": {"close_fds": False}},
])
def test_a_server_configured_otherwise_is_executed(settings):
    configured = spawner.LocalStudentSpawner(cmd=[str(warmstart.SINGLEUSER)])
    for name, value in settings.items():
        setattr(configured, name, value)
    assert configured._warm_start_request() is None


# ---- a fork, as another user --------------------------------------------------------------------
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="forking a server as another user needs root")


@contextlib.contextmanager
def standard_error_to(log):
    """This process's standard error (the warm starter's and its forks', as the hub's log is
    theirs) goes to the file ``log`` meanwhile."""
    with open(log, "ab") as hub_log:
        saved = os.dup(2)
        try:
            os.dup2(hub_log.fileno(), 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


@needs_root
def test_a_forked_command_writes_to_the_hub_log_and_is_reaped_and_root_is_refused(tmp_path):
    """``jupyterhub-singleuser --version`` forked for ``nobody`` prints JupyterHub's version to the
    hub's log (the starter's standard error) and, once ended, is reaped by the starter. (A real
    student's server, its ids, session, priority and files: tests/hub/test_hub_warmstart.py.)"""
    log = tmp_path / "hub.log"

    async def scenario():
        starter = warmstart.WarmStarter(logging.getLogger("test"))
        try:
            pid = await starter.start_server(
                [str(warmstart.SINGLEUSER), "--version"], {"PATH": "/usr/bin:/bin", "HOME": "/"},
                "nobody", False, None, 7)
            with pytest.raises(warmstart.WarmStartError, match="never warm-started as root"):
                await starter.start_server([str(warmstart.SINGLEUSER)], {}, "root", False, None, 0)
            return pid, starter._process.pid
        finally:
            await starter.stop()

    with standard_error_to(log):
        pid, starter_pid = asyncio.run(scenario())
    assert pid != starter_pid
    from jupyterhub._version import __version__
    deadline = time.monotonic() + 120
    while __version__ not in log.read_text(errors="replace") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert __version__ in log.read_text(errors="replace"), f"no version in the log: {log.read_text()[-2000:]}"
    # Gone (reaped, not a zombie that would look alive to the hub), and the starter with it.
    deadline = time.monotonic() + 60
    while pathlib.Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not pathlib.Path(f"/proc/{pid}").exists(), f"the forked server {pid} was not reaped"


@needs_root
def test_a_warm_starter_that_died_is_replaced_at_the_next_start(tmp_path):
    async def scenario():
        starter = warmstart.WarmStarter(logging.getLogger("test"))
        try:
            await starter.start_server([str(warmstart.SINGLEUSER), "--version"], {"PATH": "/usr/bin:/bin"},
                                       "nobody", False, None, 10)
            first = starter._process
            first.kill()
            await first.wait()
            await starter.start_server([str(warmstart.SINGLEUSER), "--version"], {"PATH": "/usr/bin:/bin"},
                                       "nobody", False, None, 10)
            return first.pid, starter._process.pid
        finally:
            await starter.stop()

    with standard_error_to(tmp_path / "hub.log"):
        first, second = asyncio.run(scenario())
    assert first != second


def test_a_warm_starter_that_cannot_start_is_not_tried_again_at_every_login():
    """Servers are executed meanwhile (the spawner's fallback); the next try waits RETRY_SECONDS."""
    async def scenario():
        starter = warmstart.WarmStarter(logging.getLogger("test"), python="/bin/false")
        with pytest.raises(warmstart.WarmStartError, match="did not start"):
            await starter.start_server([str(warmstart.SINGLEUSER)], {}, "nobody", False, None, 10)
        started = time.monotonic()
        with pytest.raises(warmstart.WarmStartError, match="failed to start"):
            await starter.start_server([str(warmstart.SINGLEUSER)], {}, "nobody", False, None, 10)
        return time.monotonic() - started

    assert asyncio.run(scenario()) < warmstart.RETRY_SECONDS


def test_a_warm_starter_whose_interpreter_is_missing_is_a_refusal_not_a_crash(tmp_path):
    async def scenario():
        starter = warmstart.WarmStarter(logging.getLogger("test"), python=str(tmp_path / "no-python"))
        with pytest.raises(warmstart.WarmStartError, match="did not start.*no-python"):
            await starter.start_server([str(warmstart.SINGLEUSER)], {}, "nobody", False, None, 10)

    asyncio.run(scenario())

