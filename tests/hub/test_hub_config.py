"""jupyterhub_config.py read without starting a hub: settings, site files, refusals; and the helpers."""
import subprocess
import types
import urllib.parse

import pytest
from course_hub import hooks, paths, repository
from course_hub import settings as course_settings
from course_hub.spawner import LocalStudentSpawner, SystemdStudentSpawner
from traitlets.config import Config

from tests.hub import hubkit


def load_config(monkeypatch, tmp_path, site):
    """Execute the project's config with the site settings ``site`` and return the resulting Config."""
    monkeypatch.setenv(course_settings.SETTINGS_VARIABLE,
                       str(hubkit.write_settings(tmp_path / "site-settings.yaml", site)))
    config = Config()
    namespace = {"get_config": lambda: config, "__file__": str(hubkit.CONFIG)}
    exec(compile(hubkit.CONFIG.read_text(), str(hubkit.CONFIG), "exec"), namespace)
    return config


def test_defaults_come_from_the_shared_settings(monkeypatch, tmp_path):
    settings = course_settings.load_settings()
    c = load_config(monkeypatch, tmp_path, {"server": {"spawner": "local"}})
    assert c.JupyterHub.port == settings["hub"]["port"] == 8788
    assert c.PAMAuthenticator.allowed_groups == {"dl-students", "dl-instructors"}
    assert c.PAMAuthenticator.admin_groups == {"dl-instructors"}
    assert c.JupyterHub.cleanup_servers is False
    # Every landing syncs the course through nbgitpuller's page, then opens hub.default_url.
    landing = urllib.parse.urlsplit(c.Spawner.default_url)
    assert landing.path == hooks.GIT_PULL_PATH
    assert urllib.parse.parse_qs(landing.query) == {
        "repo": [str(paths.COURSE_REPO)], "branch": [repository.BRANCH], "targetpath": ["course"],
        "urlpath": [settings["hub"]["default_url"].lstrip("/")]}
    assert hooks.landing_path(c.Spawner.default_url) == settings["hub"]["default_url"]
    assert c.Spawner.environment["NBGITPULLER_DEPTH"] == "0"
    # The config appends to the spawner's arguments section by section (memory, extensions); no
    # tornado_settings among them: one would replace the roles' (course_hub/jupyter/<role>).
    assert c.Spawner.args.get_value([]) == [
        "--ResourceUseDisplay.enable_prometheus_metrics=False",
        "--ServerApp.jpserver_extensions={'jupyter_lsp': False, 'jupyterlab': False, 'course_hub.lab_redirect': True}"]
    assert c.Spawner.mem_limit == settings["limits"]["memory"]
    assert c.JupyterHub.db_url == f"sqlite:///{paths.STATE_DIR / paths.DATABASE}"
    assert c.ConfigurableHTTPProxy.command == [str(paths.PROXY_COMMAND)]
    # Pid files in a folder emptied at boot, never in the state folder (which survives it).
    assert paths.RUN_DIR.parent == paths.pathlib.Path("/run")
    assert c.ConfigurableHTTPProxy.pid_file == str(paths.RUN_DIR / paths.PROXY_PIDFILE)
    assert c.JupyterHub.pid_file == str(paths.RUN_DIR / paths.HUB_PIDFILE)
    culler = c.JupyterHub.services[0]
    assert culler["name"] == "idle-culler"
    assert f"--timeout={settings['idle_culler']['timeout_seconds']}" in culler["command"]
    roles = {role["name"]: role for role in c.JupyterHub.load_roles}
    assert roles["idle-culler-role"]["services"] == ["idle-culler"]
    assert roles["instructor"]["groups"] == ["dl-instructors"]
    assert "access:servers!group=dl-students" in roles["instructor"]["scopes"]


def test_site_settings_override_every_path_and_port(monkeypatch, tmp_path):
    c = load_config(monkeypatch, tmp_path, {
        "hub": {"port": 9100},
        "server": {"spawner": "local", "hub_api_port": 9101, "proxy_api_port": 9102, "ip": "127.0.0.1",
                   "state_dir": str(tmp_path), "course_repo": str(tmp_path / "c.git")},
        "limits": {"memory": "1G"},
        "idle_culler": {"timeout_seconds": 10},
    })
    assert (c.JupyterHub.port, c.JupyterHub.hub_port, c.JupyterHub.ip) == (9100, 9101, "127.0.0.1")
    assert c.ConfigurableHTTPProxy.api_url == "http://127.0.0.1:9102"
    assert c.JupyterHub.cookie_secret_file == str(tmp_path / paths.COOKIE_SECRET)
    assert c.Spawner.cmd == [str(paths.VENV_BIN / "jupyterhub-singleuser")]
    assert c.Spawner.mem_limit == "1G"
    assert "--timeout=10" in c.JupyterHub.services[0]["command"]
    assert "--cull-every=300" in c.JupyterHub.services[0]["command"]  # the rest stays shared


def test_spawner_choice(monkeypatch, tmp_path):
    assert load_config(monkeypatch, tmp_path, {"server": {"spawner": "systemd"}}).JupyterHub.spawner_class is (
        SystemdStudentSpawner)
    assert load_config(monkeypatch, tmp_path, {"server": {"spawner": "local"}}).JupyterHub.spawner_class is (
        LocalStudentSpawner)
    with pytest.raises(ValueError, match="server.spawner: expected 'auto', 'local' or 'systemd', got 'docker'"):
        load_config(monkeypatch, tmp_path, {"server": {"spawner": "docker"}})


def test_https_needs_both_files(monkeypatch, tmp_path):
    with pytest.raises(ValueError, match="server.ssl_key: expected the key file of server.ssl_cert"):
        load_config(monkeypatch, tmp_path, {"server": {"ssl_cert": "/etc/ssl/cert.pem"}})
    c = load_config(monkeypatch, tmp_path, {"server": {"spawner": "local", "ssl_cert": "/c.pem", "ssl_key": "/k.pem"}})
    assert (c.JupyterHub.ssl_cert, c.JupyterHub.ssl_key) == ("/c.pem", "/k.pem")


@pytest.mark.parametrize("site, message", [
    ({"idle_culler": {"timeout": 60}}, "unknown key 'idle_culler.timeout'; expected one of every_seconds"),
    ({"sever": {"ip": ""}}, "unknown key 'sever'"),
    ({"hub": {"port": "eighty"}}, "hub.port: expected a port number (1-65535), got 'eighty'"),
    ({"server": {"hub_api_port": 70000}}, "server.hub_api_port: expected a port number"),
    ({"server": {"state_dir": "relative/state"}}, "server.state_dir: expected an absolute path, got 'relative/state'"),
    ({"limits": {"memory": "2 gigabytes"}}, "limits.memory: expected a size such as '2G'"),
    ({"limits": {"cpu": 0}}, "limits.cpu: expected a positive number of cores, got 0"),
    ({"idle_culler": {"every_seconds": -5}}, "idle_culler.every_seconds: expected a whole number of seconds"),
    ({"groups": None}, "missing section 'groups'"),
    ({"server": {"log_max_size": "huge"}}, "server.log_max_size: expected a size such as '2G'"),
    ({"server": {"log_backups": 0}}, "server.log_backups: expected a whole number of old logs (1 or more), got 0"),
    ({"server": {"tls_front_end": "yes"}}, "server.tls_front_end: expected true or false, got 'yes'"),
    ({"server": {"warm_start": "no"}}, "server.warm_start: expected true or false, got 'no'"),
    ({"server": {"refused_login_seconds": 0}}, "server.refused_login_seconds: expected a positive number of seconds"),
])
def test_bad_site_settings_are_refused_naming_the_file_and_key(tmp_path, site, message):
    path = hubkit.write_settings(tmp_path / "site.yaml", site)
    with pytest.raises(course_settings.SettingsError) as refused:
        course_settings.load_settings(path)
    assert message in str(refused.value) and str(path) in str(refused.value)


def test_site_file_must_exist_be_yaml_and_a_mapping(tmp_path, monkeypatch):
    monkeypatch.setenv(course_settings.SETTINGS_VARIABLE, str(tmp_path / "missing.yaml"))
    with pytest.raises(course_settings.SettingsError, match="missing.yaml: cannot read hub settings"):
        course_settings.for_this_server()
    (tmp_path / "bad.yaml").write_text("hub: [unclosed\n")
    with pytest.raises(course_settings.SettingsError, match="bad.yaml: not valid YAML"):
        course_settings.load_settings(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(course_settings.SettingsError, match="expected a mapping at the top level, got list"):
        course_settings.load_settings(tmp_path / "list.yaml")
    (tmp_path / "empty.yaml").write_text("")
    assert course_settings.load_settings(tmp_path / "empty.yaml") == course_settings.load_settings()


def test_site_file_changes_only_what_it_names(tmp_path):
    shared = course_settings.load_settings()
    site = course_settings.load_settings(hubkit.write_settings(tmp_path / "site.yaml", {
        "groups": {"students": "ml-101"}, "server": {"course_repo": "/srv/other/course.git"}}))
    assert site["groups"] == {"students": "ml-101", "instructors": shared["groups"]["instructors"]}
    assert "access:servers!group=ml-101" in site["roles"][0]["scopes"]  # roles follow the groups
    assert site["server"]["course_repo"] == paths.COURSE_REPO.parent.parent / "other" / "course.git"
    assert site["server"]["state_dir"] == paths.STATE_DIR
    assert {k: v for k, v in site.items() if k not in ("groups", "roles", "server")} == {
        k: v for k, v in shared.items() if k not in ("groups", "roles", "server")}


@pytest.mark.parametrize("text, size", [("2G", 2 * 2**30), ("512M", 512 * 2**20), ("1.5K", 1536), (4096, 4096)])
def test_parse_byte_size(text, size):
    assert course_settings.parse_byte_size(text) == size


# Lower-case units and bare digit strings are refused as JupyterHub's ByteSpecification refuses
# them (Spawner.mem_limit and KubeSpawner read the same setting): the one parser agrees with it.
@pytest.mark.parametrize("text", ["", "lots", "-1G", "0", 0, "G", "1.5k", "1073741824", True, None])
def test_parse_byte_size_refuses_nonsense(text):
    with pytest.raises(ValueError, match=r"size: expected a size such as '2G' or '512M' .* got "):
        course_settings.parse_byte_size(text)


def test_publish_commits_once_and_refuses_a_missing_folder(tmp_path):
    source = tmp_path / "notebooks"
    source.mkdir()
    hubkit.write_probe_notebook(source / "a.ipynb", "x = 1")
    (source / "sanitize.cfg").write_text("[x]\n")
    repo = tmp_path / "course.git"
    first = repository.publish(source, repo)
    assert first and repository.publish(source, repo) is None  # nothing changed: no commit
    files = subprocess.run(["git", "--git-dir", str(repo), "ls-tree", "--name-only", "main"],
                           capture_output=True, text=True, check=True).stdout.split()
    assert files == [".gitignore", "a.ipynb"]  # the test-only sanitize.cfg stays out
    with pytest.raises(ValueError, match="source_dir: expected a folder of course material"):
        repository.publish(tmp_path / "missing", repo)


def test_systemd_spawner_passes_the_servers_arguments_as_configured(monkeypatch, tmp_path):
    # SystemdSpawner formats each argument ({USERNAME}); a JSON-valued one made every start fail
    # with KeyError (found by tests/freshroot/test_systemd_boot.py).
    c = load_config(monkeypatch, tmp_path, {"server": {"spawner": "systemd"}})
    spawner = SystemdStudentSpawner(config=c, user=types.SimpleNamespace(name="amy", id=7))
    assert any("{" in arg for arg in spawner.args), spawner.args  # the case that broke
    # As SystemdSpawner.start passes them to its unit.
    passed = [spawner._expand_user_vars(arg) for arg in spawner.get_args()]
    for arg in spawner.args:
        assert arg in passed, (arg, passed)


def test_kernel_sockets_fit_exactly_what_linux_and_jupyter_client_allow(tmp_path):
    import uuid

    import zmq
    from jupyter_client.connect import ConnectionFileMixin

    # Linux's limit, with real sockets: the longest path binds, one byte more does not.
    folder = tmp_path / "s"
    folder.mkdir()
    longest = str(folder / ("x" * (hooks.UNIX_SOCKET_PATH_MAX - len(str(folder)) - 1)))
    assert len(longest) == hooks.UNIX_SOCKET_PATH_MAX
    context = zmq.Context()
    try:
        for path, binds in ((longest, True), (longest + "y", False)):
            socket = context.socket(zmq.ROUTER)
            try:
                if binds:
                    socket.bind(f"ipc://{path}")
                else:
                    with pytest.raises(zmq.ZMQError):
                        socket.bind(f"ipc://{path}")
            finally:
                socket.close(linger=0)
    finally:
        context.term()
    # jupyter_client's socket paths for a kernel of jupyter_server (runtime/kernel-<uuid4>.json).
    runtime = "/home/a-student/.local/share/jupyter/runtime"
    mixin = ConnectionFileMixin(transport="ipc", connection_file=f"{runtime}/kernel-{uuid.uuid4()}.json")
    assert len(f"{mixin.ip}-99") == len(runtime) + hooks.KERNEL_SOCKET_SUFFIX
    # Homes of names up to 21 characters under /home fit; a 32-character name does not.
    assert hooks.kernel_sockets_fit("/home/" + "a" * 21)
    assert not hooks.kernel_sockets_fit("/home/" + "a" * 22)
    assert not hooks.kernel_sockets_fit("/home/" + "a" * 32)


def test_kernel_transport_hook_sets_the_option_once_and_keeps_tcp_for_long_homes(monkeypatch):
    import logging
    import pwd
    from types import SimpleNamespace

    other = "--ServerApp.jpserver_extensions={}"
    spawner = SimpleNamespace(user=SimpleNamespace(name="root"), args=[other], log=logging.getLogger("t"))
    hooks.kernel_transport_hook(spawner)
    hooks.kernel_transport_hook(spawner)  # a server started again: still once
    assert spawner.args == [other, hooks.KERNEL_IPC_ARG]
    # No account here has a home that long (names may have 32 characters): the lookup is faked.
    real_getpwnam = pwd.getpwnam
    monkeypatch.setattr(hooks.pwd, "getpwnam",
                        lambda name: SimpleNamespace(pw_dir="/home/" + "a" * 32) if name == "long" else real_getpwnam(name))
    spawner.user.name = "long"
    hooks.kernel_transport_hook(spawner)
    assert spawner.args == [other]


def test_every_role_sets_the_servers_xsrf_cookie_secure_and_only_instructors_allow_framing():
    """The users' servers' _xsrf cookie is Secure for both roles; the instructors' servers may be
    framed by their own pages (the formgrader's tab), the students' keep JupyterHub's 'none'."""
    import json

    for role in ("student", "instructor"):
        settings = json.loads((paths.ROLE_CONFIG / role / "jupyter_server_config.json").read_text())
        tornado = settings["ServerApp"]["tornado_settings"]
        assert tornado["xsrf_cookie_kwargs"] == {"secure": True}, role
        assert ("headers" in tornado) == (role == "instructor"), role
