"""jupyterhub_config.py read without starting a hub: settings, overrides, refusals; and the helpers."""
import os
import subprocess

import pytest
from traitlets.config import Config

import course_hub
import course_repo
import hub_settings
import hubkit


def load_config(monkeypatch, **environment):
    """Execute the project's config with ``environment`` set and return the resulting Config."""
    for name in [key for key in os.environ if key.startswith("DLCOURSE_")]:
        monkeypatch.delenv(name)
    for name, value in environment.items():
        monkeypatch.setenv(name, str(value))
    config = Config()
    namespace = {"get_config": lambda: config, "__file__": str(hubkit.CONFIG)}
    exec(compile(hubkit.CONFIG.read_text(), str(hubkit.CONFIG), "exec"), namespace)
    return config


def test_defaults_come_from_the_shared_settings(monkeypatch):
    settings = hub_settings.load_settings()
    c = load_config(monkeypatch, DLCOURSE_SPAWNER="local")
    assert c.JupyterHub.port == settings["hub"]["port"] == 8788
    assert c.PAMAuthenticator.allowed_groups == {"dl-students", "dl-instructors"}
    assert c.PAMAuthenticator.admin_groups == {"dl-instructors"}
    assert c.JupyterHub.cleanup_servers is False
    assert c.Spawner.default_url == settings["hub"]["default_url"]
    assert c.Spawner.mem_limit == settings["limits"]["memory"]
    assert c.JupyterHub.db_url == "sqlite:////var/lib/dlcourse/jupyterhub.sqlite"
    assert c.ConfigurableHTTPProxy.command == ["/opt/dlcourse/proxy/node_modules/.bin/configurable-http-proxy"]
    culler = c.JupyterHub.services[0]
    assert culler["name"] == "idle-culler"
    assert f"--timeout={settings['idle_culler']['timeout_seconds']}" in culler["command"]
    roles = {role["name"]: role for role in c.JupyterHub.load_roles}
    assert roles["idle-culler-role"]["services"] == ["idle-culler"]
    assert roles["instructor"]["groups"] == ["dl-instructors"]
    assert "access:servers!group=dl-students" in roles["instructor"]["scopes"]


def test_environment_overrides_every_path_and_port(monkeypatch, tmp_path):
    c = load_config(
        monkeypatch, DLCOURSE_SPAWNER="local", DLCOURSE_HUB_PORT=9100, DLCOURSE_HUB_API_PORT=9101,
        DLCOURSE_PROXY_API_PORT=9102, DLCOURSE_STATE_DIR=tmp_path, DLCOURSE_PREFIX="/x",
        DLCOURSE_MEMORY_LIMIT="1G", DLCOURSE_CULL_TIMEOUT=10, DLCOURSE_HUB_IP="127.0.0.1",
    )
    assert (c.JupyterHub.port, c.JupyterHub.hub_port, c.JupyterHub.ip) == (9100, 9101, "127.0.0.1")
    assert c.ConfigurableHTTPProxy.api_url == "http://127.0.0.1:9102"
    assert c.JupyterHub.cookie_secret_file == str(tmp_path / "jupyterhub_cookie_secret")
    assert c.Spawner.cmd == ["/x/venv/bin/jupyterhub-singleuser"]
    assert c.Spawner.mem_limit == "1G"
    assert "--timeout=10" in c.JupyterHub.services[0]["command"]


def test_spawner_choice(monkeypatch):
    assert load_config(monkeypatch, DLCOURSE_SPAWNER="systemd").JupyterHub.spawner_class == (
        "systemdspawner.SystemdSpawner")
    assert load_config(monkeypatch, DLCOURSE_SPAWNER="local").JupyterHub.spawner_class is (
        course_hub.RlimitLocalProcessSpawner)
    with pytest.raises(ValueError, match="DLCOURSE_SPAWNER: expected 'auto', 'local' or 'systemd', got 'docker'"):
        load_config(monkeypatch, DLCOURSE_SPAWNER="docker")


def test_https_needs_both_files(monkeypatch):
    with pytest.raises(ValueError, match="DLCOURSE_SSL_KEY: expected the key file"):
        load_config(monkeypatch, DLCOURSE_SSL_CERT="/etc/ssl/cert.pem")
    c = load_config(monkeypatch, DLCOURSE_SSL_CERT="/c.pem", DLCOURSE_SSL_KEY="/k.pem")
    assert (c.JupyterHub.ssl_cert, c.JupyterHub.ssl_key) == ("/c.pem", "/k.pem")


@pytest.mark.parametrize("text, size", [("2G", 2 * 2**30), ("512M", 512 * 2**20), ("1.5k", 1536), (4096, 4096)])
def test_parse_byte_size(text, size):
    assert course_hub.parse_byte_size(text) == size


@pytest.mark.parametrize("text", ["", "lots", "-1G", "0", 0, "G"])
def test_parse_byte_size_refuses_nonsense(text):
    with pytest.raises(ValueError, match="size: expected a positive size|size: expected a positive number"):
        course_hub.parse_byte_size(text)


def test_publish_commits_once_and_refuses_a_missing_folder(tmp_path):
    source = tmp_path / "notebooks"
    source.mkdir()
    hubkit.write_probe_notebook(source / "a.ipynb", "x = 1")
    (source / "sanitize.cfg").write_text("[x]\n")
    repository = tmp_path / "course.git"
    first = course_repo.publish(source, repository)
    assert first and course_repo.publish(source, repository) is None  # nothing changed: no commit
    files = subprocess.run(["git", "--git-dir", str(repository), "ls-tree", "--name-only", "main"],
                           capture_output=True, text=True, check=True).stdout.split()
    assert files == [".gitignore", "a.ipynb"]  # the test-only sanitize.cfg stays out
    with pytest.raises(ValueError, match="source_dir: expected a folder of course material"):
        course_repo.publish(tmp_path / "missing", repository)
