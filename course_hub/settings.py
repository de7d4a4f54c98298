"""The hub's settings: the file every deployment shares, merged with this server's site file.

- :data:`course_hub.paths.SHARED_SETTINGS` (the checkout's ``deploy/hub-settings.yaml``):
  groups, port, culler, limits, roles, and the one-machine ``server`` section. The Kubernetes
  renderer reads it too, so the two deployments cannot drift apart.
- The site file: :data:`course_hub.paths.SITE_SETTINGS` when it exists, or the file the
  environment variable ``DLCOURSE_SETTINGS`` names (the tests' hubs use it). It holds only the
  keys that differ, merged over the shared ones (a ``null`` removes a key); a key the shared
  file does not know is refused, so a typo cannot be silently ignored.

Everything is checked when it is loaded (:class:`SettingsError` names the file and the key),
so a bad value stops the hub, or the tool, before anything starts.
"""
import copy
import os
import pathlib
import re

import yaml
from jupyterhub.traitlets import ByteSpecification
from traitlets import TraitError

from . import paths

#: The environment variable naming a site file to use instead of paths.SITE_SETTINGS.
SETTINGS_VARIABLE = "DLCOURSE_SETTINGS"
REQUIRED = {
    "groups": ("students", "instructors"),
    "hub": ("port", "default_url"),
    "idle_culler": ("name", "timeout_seconds", "every_seconds", "max_age_seconds", "scopes"),
    "limits": ("memory", "cpu"),
    "server": ("ip", "hub_api_port", "proxy_api_port", "spawner", "refused_login_seconds"),
    "grading": ("course_id", "sandbox_user", "time_limit_seconds", "memory"),
}
SPAWNERS = ("auto", "local", "systemd")
#: A course id or an account name: nbgrader puts the course id into paths, useradd the account.
_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
#: Paths of the ``server`` section: course_hub.paths' unless a site file moves them.
SERVER_PATHS = {
    "state_dir": paths.STATE_DIR,
    "run_dir": paths.RUN_DIR,
    "course_repo": paths.COURSE_REPO,
    "log": paths.LOG,
    "pidfile": paths.PIDFILE,
    "grading_dir": paths.GRADING_DIR,
    "exchange_dir": paths.EXCHANGE_DIR,
    "grader_socket": paths.GRADER_SOCKET,
}


class SettingsError(ValueError):
    """A settings file is missing, unreadable, or holds a wrong or unknown key."""


def parse_byte_size(value, name="size"):
    """Turn a size such as ``"2G"`` or ``"512M"`` into bytes, as JupyterHub reads it.

    The one parser of sizes: JupyterHub's own ``ByteSpecification`` (the type of
    ``Spawner.mem_limit``, also KubeSpawner's), which reads K, M, G and T (upper case) as powers
    of 1024 and a plain integer as bytes; a size must also be positive.

    Parameters
    ----------
    value : str or int
        The size.
    name : str
        What the size is, for the error message (e.g. ``"limits.memory"``).

    Returns
    -------
    int
        The size in bytes.

    Raises
    ------
    ValueError
        If ``value`` is not a positive size.
    """
    problem = ValueError(
        f"{name}: expected a size such as '2G' or '512M' (K, M, G, T: powers of 1024) or a "
        f"positive number of bytes, got {value!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise problem
    try:
        size = ByteSpecification().validate(None, value)
    except TraitError:
        raise problem from None
    if size <= 0:
        raise problem
    return size


def deep_merge(base, override):
    """Merge ``override`` over ``base`` the way Helm merges values files.

    Mappings merge key by key, recursively; any other value (a list included) replaces the
    base's; a ``None`` in ``override`` deletes the key. Neither input is modified.
    """
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def chosen_spawner(settings):
    """``"systemd"`` or ``"local"``: the settings' ``server.spawner``, where ``auto`` means
    SystemdSpawner wherever systemd is PID 1 (it runs each server as a transient unit)."""
    spawner = settings["server"]["spawner"]
    if spawner == "auto":
        return "systemd" if paths.SYSTEMD_RUNTIME.is_dir() else "local"
    return spawner


def site_path():
    """The site file this server uses: ``$DLCOURSE_SETTINGS``, else paths.SITE_SETTINGS if it
    exists, else None (the shared settings alone)."""
    named = os.environ.get(SETTINGS_VARIABLE)
    if named:
        return pathlib.Path(named)
    return paths.SITE_SETTINGS if paths.SITE_SETTINGS.exists() else None


def for_this_server():
    """The settings of this server: the shared file merged with the site file (:func:`site_path`)."""
    return load_settings(site_path())


def load_settings(site=None, shared=None):
    """Read the shared settings, merge a site file over them, check them and fill them in.

    Parameters
    ----------
    site : str or pathlib.Path, optional
        A site file (only the keys that differ). None: the shared settings alone.
    shared : str or pathlib.Path, optional
        The shared file (default: paths.SHARED_SETTINGS).

    Returns
    -------
    dict
        The settings. In ``roles``, ``{students}`` and ``{instructors}`` are replaced by the
        group names; ``server`` holds every key of :data:`SERVER_PATHS` as a pathlib.Path,
        ``ssl_cert`` and ``ssl_key`` (None: a self-signed certificate) and ``tls_front_end``
        (see course_hub.tls).

    Raises
    ------
    SettingsError
        If a file cannot be read or parsed, the site file names a key the shared file does not
        know, or a value is missing or wrong; the message names the file and the key.
    """
    shared = pathlib.Path(shared or paths.SHARED_SETTINGS)
    settings = _read(shared)
    where = str(shared)
    if site is not None:
        site = pathlib.Path(site)
        overlay = _read(site)
        known = deep_merge(settings, {"server": {key: "" for key in SERVER_PATHS}})
        _refuse_unknown(overlay, known, site)
        settings = deep_merge(settings, overlay)
        where = f"{shared} with {site}"
    _check(settings, where)
    server = settings["server"]
    for key, default in SERVER_PATHS.items():
        server[key] = pathlib.Path(server.get(key) or default)
        if not server[key].is_absolute():
            raise SettingsError(f"{where}: server.{key}: expected an absolute path, got {str(server[key])!r}")
    server.setdefault("ssl_cert", None)
    server.setdefault("ssl_key", None)
    server.setdefault("tls_front_end", False)
    if server["ssl_cert"] and not server["ssl_key"]:
        raise SettingsError(f"{where}: server.ssl_key: expected the key file of server.ssl_cert, got nothing")
    if server["ssl_key"] and not server["ssl_cert"]:
        raise SettingsError(f"{where}: server.ssl_cert: expected the certificate of server.ssl_key, got nothing")
    for key in ("ssl_cert", "ssl_key"):
        if server[key] and not (isinstance(server[key], str) and pathlib.Path(server[key]).is_absolute()):
            raise SettingsError(f"{where}: server.{key}: expected an absolute path, got {server[key]!r}")
    server.setdefault("warm_start", True)
    if not isinstance(server["warm_start"], bool):
        raise SettingsError(f"{where}: server.warm_start: expected true or false, got {server['warm_start']!r}")
    if not isinstance(server["tls_front_end"], bool):
        raise SettingsError(f"{where}: server.tls_front_end: expected true or false, got {server['tls_front_end']!r}")
    if server["tls_front_end"] and server["ssl_cert"]:
        raise SettingsError(f"{where}: server.tls_front_end: expected false when server.ssl_cert is set (the "
                            "hub serves that certificate itself), got true")
    settings["roles"] = [_fill_groups(role, settings["groups"]) for role in settings.get("roles", [])]
    return settings


def _read(path):
    """The mapping in the YAML file ``path``."""
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read hub settings ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise SettingsError(f"{path}: not valid YAML ({exc})") from exc
    if raw is None:
        return {}  # an empty site file changes nothing
    if not isinstance(raw, dict):
        raise SettingsError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    return raw


def _refuse_unknown(overlay, known, path, prefix=""):
    """Refuse keys of ``overlay`` that ``known`` lacks (a typo would otherwise be ignored)."""
    for key, value in overlay.items():
        if key not in known:
            raise SettingsError(
                f"{path}: unknown key '{prefix}{key}'; expected one of {', '.join(sorted(map(str, known)))}")
        if isinstance(value, dict) and isinstance(known[key], dict):
            _refuse_unknown(value, known[key], path, f"{prefix}{key}.")


def _check(settings, where):
    """Check required keys and the values that must have a type or a range."""
    for section, keys in REQUIRED.items():
        if not isinstance(settings.get(section), dict):
            raise SettingsError(f"{where}: missing section '{section}'")
        for key in keys:
            if key not in settings[section]:
                raise SettingsError(f"{where}: missing key '{section}.{key}'")
    for section, key in (("hub", "port"), ("server", "hub_api_port"), ("server", "proxy_api_port")):
        port = settings[section][key]
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise SettingsError(f"{where}: {section}.{key}: expected a port number (1-65535), got {port!r}")
    spawner = settings["server"]["spawner"]
    if spawner not in SPAWNERS:
        raise SettingsError(
            f"{where}: server.spawner: expected {', '.join(map(repr, SPAWNERS[:-1]))} or "
            f"{SPAWNERS[-1]!r}, got {spawner!r}")
    if not isinstance(settings["server"]["ip"], str):
        raise SettingsError(f"{where}: server.ip: expected an address (\"\" for every interface), "
                            f"got {settings['server']['ip']!r}")
    for section in ("limits", "grading"):
        try:
            parse_byte_size(settings[section]["memory"], f"{section}.memory")
        except ValueError as exc:
            raise SettingsError(f"{where}: {exc}") from None
    server = settings["server"]
    try:
        server["log_max_size"] = parse_byte_size(server.get("log_max_size", "10M"), "server.log_max_size")
    except ValueError as exc:
        raise SettingsError(f"{where}: {exc}") from None
    backups = server.setdefault("log_backups", 5)
    if isinstance(backups, bool) or not isinstance(backups, int) or backups < 1:
        raise SettingsError(f"{where}: server.log_backups: expected a whole number of old logs (1 or more), "
                            f"got {backups!r}")
    refusal = settings["server"]["refused_login_seconds"]
    if isinstance(refusal, bool) or not isinstance(refusal, (int, float)) or refusal <= 0:
        raise SettingsError(f"{where}: server.refused_login_seconds: expected a positive number of seconds, "
                            f"got {refusal!r}")
    cpu = settings["limits"]["cpu"]
    if isinstance(cpu, bool) or not isinstance(cpu, (int, float)) or cpu <= 0:
        raise SettingsError(f"{where}: limits.cpu: expected a positive number of cores, got {cpu!r}")
    for key in ("timeout_seconds", "every_seconds", "max_age_seconds"):
        value = settings["idle_culler"][key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise SettingsError(f"{where}: idle_culler.{key}: expected a whole number of seconds, got {value!r}")
    grading = settings["grading"]
    limit = grading["time_limit_seconds"]
    if isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0:
        raise SettingsError(f"{where}: grading.time_limit_seconds: expected a positive whole number of "
                            f"seconds, got {limit!r}")
    for key in ("course_id", "sandbox_user"):
        if not isinstance(grading[key], str) or not _NAME.fullmatch(grading[key]):
            raise SettingsError(f"{where}: grading.{key}: expected a name of lower-case letters, digits, "
                                f"'-' and '_', starting with a letter, at most 32 long, got {grading[key]!r}")


def _fill_groups(value, names):
    """Replace ``{students}``/``{instructors}`` in every string inside ``value``."""
    if isinstance(value, str):
        return value.format(**names)
    if isinstance(value, list):
        return [_fill_groups(v, names) for v in value]
    if isinstance(value, dict):
        return {k: _fill_groups(v, names) for k, v in value.items()}
    return value
