"""Who is on the course server: servers, last activity, memory per student.

Run by an instructor in a terminal of their hub server (the hub gives instructors' servers a
token that may list students, see ``course_hub.hooks``)::

    course-status                 # a table
    course-status --json          # for scripts

Names, servers and activity come from the hub's REST API; memory is the resident memory of
every process the student's Unix account runs on this machine (server, kernels, terminals),
read from ``/proc`` with psutil (``/proc/<pid>/statm`` is readable by every user).
"""
import argparse
import datetime
import json
import os
import pwd
import sys
import urllib.error
import urllib.request

import psutil

from . import memory
from . import settings as course_settings

PAGE = 200


class StatusError(RuntimeError):
    """The hub could not be asked (wrong address, missing token, or not allowed)."""


def fetch_users(api_url, token, timeout=30):
    """Return every user model the token may list, following the hub's pagination.

    Parameters
    ----------
    api_url : str
        The hub's API base, e.g. ``http://127.0.0.1:8081/hub/api`` (``$JUPYTERHUB_API_URL``).
    token : str
        An API token with ``list:users`` and ``read:users:activity`` / ``read:servers``.

    Raises
    ------
    StatusError
        On a connection failure or an HTTP error (403 names the missing permission).
    """
    if not token:
        raise StatusError("token must be a hub API token (set JUPYTERHUB_API_TOKEN or --token), got none")
    users, offset = [], 0
    while True:
        request = urllib.request.Request(
            f"{api_url.rstrip('/')}/users?offset={offset}&limit={PAGE}",
            headers={"Authorization": f"token {token}",
                     "Accept": "application/jupyterhub-pagination+json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                body = json.load(response)
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:300]
            if exc.code == 403:
                raise StatusError(f"the hub refused to list users (403): this account is not an instructor "
                                  f"({detail})") from None
            raise StatusError(f"the hub answered HTTP {exc.code}: {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise StatusError(f"cannot reach the hub at {api_url}: {exc}") from None
        items = body["items"] if isinstance(body, dict) else body
        users.extend(items)
        nxt = body.get("_pagination", {}).get("next") if isinstance(body, dict) else None
        if not nxt:
            return users
        offset = nxt["offset"]


def default_api_url():
    """``$JUPYTERHUB_API_URL`` (set in every server the hub starts), else this server's hub API."""
    url = os.environ.get("JUPYTERHUB_API_URL")
    if url:
        return url
    return f"http://127.0.0.1:{course_settings.for_this_server()['server']['hub_api_port']}/hub/api"


def memory_by_user():
    """Return ``{username: (resident bytes, process count)}`` over this machine's processes."""
    totals = {}
    names = {}
    for proc in psutil.process_iter(["uids", "memory_info"]):
        info = proc.info
        if not info["uids"] or info["memory_info"] is None:
            continue
        uid = info["uids"].real
        if uid not in names:
            try:
                names[uid] = pwd.getpwuid(uid).pw_name
            except KeyError:
                names[uid] = str(uid)
        rss, count = totals.get(names[uid], (0, 0))
        totals[names[uid]] = (rss + info["memory_info"].rss, count + 1)
    return totals


def _parse_time(text):
    if not text:
        return None
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _ago(when, now):
    if when is None:
        return "never"
    seconds = int((now - when).total_seconds())
    if seconds < 90:
        return f"{max(seconds, 0)} s ago"
    if seconds < 5400:
        return f"{seconds // 60} min ago"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"


def build_rows(users, memory, now=None):
    """Combine hub user models and per-user memory into status rows, most recently active first.

    Parameters
    ----------
    users : list of dict
        User models from the hub API.
    memory : dict
        ``{username: (bytes, processes)}`` as from :func:`memory_by_user`.
    now : datetime, optional
        The time "ago" is measured from (timezone-aware; default: now).

    Returns
    -------
    list of dict
        ``name``, ``groups``, ``server`` (``ready``/``starting``/``stopping``/``stopped``),
        ``last_activity`` (ISO text or None), ``ago``, ``memory_mb``, ``processes``.
    """
    now = now or datetime.datetime.now(datetime.timezone.utc)
    rows = []
    for user in users:
        server = (user.get("servers") or {}).get("")
        if server is None:
            state = "stopped"
        elif server.get("ready"):
            state = "ready"
        else:
            state = server.get("pending") or "starting"
        activity = _parse_time((server or {}).get("last_activity")) or _parse_time(user.get("last_activity"))
        rss, count = memory.get(user["name"], (0, 0))
        rows.append({
            "name": user["name"],
            "groups": ",".join(user.get("groups") or []),
            "server": state,
            "last_activity": activity.isoformat() if activity else None,
            "ago": _ago(activity, now),
            "memory_mb": round(rss / 2**20, 1),
            "processes": count,
        })
    epoch = datetime.datetime.min.replace(tzinfo=datetime.timezone.utc)
    rows.sort(key=lambda r: (r["server"] == "stopped", -(_parse_time(r["last_activity"]) or epoch).timestamp()))
    return rows


def summary_line(rows):
    """The totals under the table: running servers and the memory of their users' processes.

    Memory of users whose server is not running (a server still starting or stopping, processes
    left in a terminal session) is counted apart, so that "per running server" is the memory of
    running servers only.
    """
    running = [r for r in rows if r["server"] == "ready"]
    changing = [r for r in rows if r["server"] not in ("ready", "stopped")]
    running_mb = sum(r["memory_mb"] for r in running)
    other_mb = sum(r["memory_mb"] for r in rows) - running_mb
    line = f"{len(running)} of {len(rows)} user(s) with a running server"
    if changing:
        line += f", {len(changing)} starting or stopping"
    line += f"; {running_mb:.0f} MB in their processes"
    if running:
        line += f", {running_mb / len(running):.0f} MB per running server"
    if round(other_mb):
        line += f"; {other_mb:.0f} MB in other users' processes"
    return line


def format_table(rows):
    """Return the rows as an aligned text table with a totals line (:func:`summary_line`)."""
    header = ("user", "groups", "server", "last active", "memory MB", "procs")
    body = [(r["name"], r["groups"], r["server"], r["ago"], f"{r['memory_mb']:.0f}", str(r["processes"]))
            for r in rows]
    widths = [max(len(str(x)) for x in column) for column in zip(header, *body)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip() for line in [header, *body]]
    lines.append(summary_line(rows))
    return "\n".join(lines)


def main(argv=None):
    """Command-line entry point (``course-status``)."""
    parser = argparse.ArgumentParser(prog="course-status", description=__doc__.split("\n\n")[0])
    parser.add_argument("--api-url", default=None,
                        help="the hub's API (default: $JUPYTERHUB_API_URL, else this server's hub)")
    parser.add_argument("--token", default=os.environ.get("JUPYTERHUB_API_TOKEN"))
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args(argv)
    try:
        rows = build_rows(fetch_users(args.api_url or default_api_url(), args.token), memory_by_user())
    except (StatusError, course_settings.SettingsError) as exc:
        print(f"course-status: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(rows, indent=1) if args.json else format_table(rows))
    if not args.json:
        print(memory_limit_line())
    return 0


def memory_limit_line():
    """What the memory limit covers on this server (per student, or per process as a last resort)."""
    try:
        settings = course_settings.for_this_server()
    except course_settings.SettingsError as exc:
        return f"memory limit: unknown ({exc})"
    scope = memory.limit_scope(course_settings.chosen_spawner(settings))
    return memory.describe_limit(settings["limits"]["memory"], scope)


if __name__ == "__main__":
    sys.exit(main())
