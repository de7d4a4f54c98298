"""Load ``deploy/hub-settings.yaml``: the hub settings shared by every deployment.

``jupyterhub_config.py`` (one machine) and the Kubernetes values renderer both read the
settings through :func:`load_settings`, so groups, roles, culler and limits are defined once.
"""
import copy
import pathlib

import yaml

DEFAULT_PATH = pathlib.Path(__file__).resolve().parent / "hub-settings.yaml"
REQUIRED = {
    "groups": ("students", "instructors"),
    "hub": ("port", "default_url"),
    "idle_culler": ("timeout_seconds", "every_seconds", "max_age_seconds"),
    "limits": ("memory", "cpu"),
    "services": ("idle_culler",),
}


class SettingsError(ValueError):
    """The settings file is missing, unreadable, or lacks a required key."""


def load_settings(path=DEFAULT_PATH):
    """Read the settings file and return it as a dict with group names filled into roles.

    Parameters
    ----------
    path : str or pathlib.Path
        The YAML file (default: ``hub-settings.yaml`` beside this module).

    Returns
    -------
    dict
        The settings; in ``roles``, ``{students}`` and ``{instructors}`` are replaced by the
        configured group names.

    Raises
    ------
    SettingsError
        If the file cannot be read or parsed, or a required key is missing.
    """
    path = pathlib.Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read hub settings ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise SettingsError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(raw, dict):
        raise SettingsError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    for section, keys in REQUIRED.items():
        if not isinstance(raw.get(section), dict):
            raise SettingsError(f"{path}: missing section '{section}'")
        for key in keys:
            if key not in raw[section]:
                raise SettingsError(f"{path}: missing key '{section}.{key}'")
    settings = copy.deepcopy(raw)
    names = settings["groups"]
    settings["roles"] = [_fill_groups(role, names) for role in settings.get("roles", [])]
    return settings


def _fill_groups(value, names):
    """Replace ``{students}``/``{instructors}`` in every string inside ``value``."""
    if isinstance(value, str):
        return value.format(**names)
    if isinstance(value, list):
        return [_fill_groups(v, names) for v in value]
    if isinstance(value, dict):
        return {k: _fill_groups(v, names) for k, v in value.items()}
    return value
