"""Accounts for a term: add a section, archive and remove last term's students, reset a password.

Built on :mod:`course_hub.roster`: accounts are made and removed by its functions, so the same
checks apply (valid names, no system accounts, only course accounts removed). What the term
workflow adds is a ledger of who was enrolled in which term and section (``enrolments.csv`` in
the state folder, root-only), so that "remove last term" removes exactly the students of that
term, and never one who is enrolled again this term.

Usage (as root; see :mod:`course_hub.roster_command`)::

    course-roster add-section ROSTER.csv --term 2026-autumn --section A
    course-roster remove-term 2026-spring [--archive-dir DIR]
    course-roster reset-password USERNAME

``remove-term`` writes every removed student's home into one tarball
(``<archive-dir>/<term>-homes-<time>.tar.gz``, mode 0600), checks that the tarball holds each
home, and only then deletes the accounts: a home is never deleted without its archive.
"""
import csv
import datetime
import os
import pathlib
import pwd
import re
import subprocess
import tarfile

from . import accounts, paths, roster
from . import settings as course_settings

LEDGER_FIELDS = ("username", "role", "term", "section", "added")
#: Term and section names: letters, digits, '-', '_' and '.', as they end up in file names.
LABEL_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")


def _label(value, name):
    if not isinstance(value, str) or not LABEL_PATTERN.match(value):
        raise roster.RosterError(
            f"{name} must be 1-40 letters, digits, '.', '-' or '_' (starting with a letter or digit), got {value!r}"
        )
    return value


def default_ledger():
    """The enrolment ledger of this server: ``enrolments.csv`` in the settings' state folder."""
    return course_settings.for_this_server()["server"]["state_dir"] / paths.ENROLMENTS


def read_ledger(ledger=None):
    """Return the enrolment rows (dicts with :data:`LEDGER_FIELDS`); none if there is no ledger."""
    ledger = pathlib.Path(ledger or default_ledger())
    if not ledger.exists():
        return []
    with ledger.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _write_ledger(rows, ledger):
    """Replace the ledger atomically (a crash leaves the old one or the new one, never half)."""
    ledger = pathlib.Path(ledger or default_ledger())
    ledger.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = ledger.with_name(ledger.name + ".new")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=LEDGER_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(temporary, ledger)


def add_section(people, term, section, ledger=None, password_file=None, groups=None):
    """Create the accounts of a section's roster and record them as enrolled in ``term``.

    Parameters
    ----------
    people : list of roster.Person
        The section's roster (``roster.read_roster``).
    term, section : str
        Labels such as ``"2026-autumn"`` and ``"A"``.
    ledger : str or pathlib.Path, optional
        The enrolment ledger (default: :func:`default_ledger`).
    password_file, groups
        Passed to ``roster.add_accounts``.

    Returns
    -------
    dict
        ``roster.add_accounts``'s result, plus ``"enrolled"``: the usernames recorded.

    Raises
    ------
    roster.RosterError
        On a bad term or section label, or anything ``roster.add_accounts`` refuses; the
        ledger is only written after the accounts exist.
    """
    _label(term, "term")
    _label(section, "section")
    result = roster.add_accounts(people, password_file=password_file, groups=groups)
    ledger = ledger or default_ledger()
    rows = read_ledger(ledger)
    known = {(r["username"], r["term"], r["section"]) for r in rows}
    stamp = datetime.datetime.now().isoformat(timespec="seconds")
    enrolled = []
    for person in people:
        if (person.username, term, section) not in known:
            rows.append({"username": person.username, "role": person.role, "term": term,
                         "section": section, "added": stamp})
        enrolled.append(person.username)
    _write_ledger(rows, ledger)
    return {**result, "enrolled": enrolled}


def students_to_remove(term, ledger=None):
    """Students enrolled in ``term`` and in no other term of the ledger (sorted usernames)."""
    rows = read_ledger(ledger)
    in_term = {r["username"] for r in rows if r["term"] == term and r["role"] == "student"}
    elsewhere = {r["username"] for r in rows if r["term"] != term}
    return sorted(in_term - elsewhere)


def archive_homes(usernames, archive):
    """Write the homes of ``usernames`` into a new gzipped tarball ``archive`` (mode 0600).

    Each home is stored under the username (``alice/...``), with owners and modes. The
    tarball is read back and must list every home before this returns.

    Raises
    ------
    roster.RosterError
        If ``archive`` exists already, or a home is missing from it after writing.
    """
    archive = pathlib.Path(archive)
    archive.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        descriptor = os.open(archive, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise roster.RosterError(f"archive must be a new file, got the existing {str(archive)!r}") from None
    with os.fdopen(descriptor, "wb") as handle, tarfile.open(fileobj=handle, mode="w:gz") as tar:
        for name in usernames:
            tar.add(pwd.getpwnam(name).pw_dir, arcname=name)
    with tarfile.open(archive, "r:gz") as tar:
        stored = {member.name.split("/", 1)[0] for member in tar.getmembers()}
    missing = sorted(set(usernames) - stored)
    if missing:
        raise roster.RosterError(f"archive {str(archive)!r} lacks the homes of {missing}; nothing removed")
    return archive


def remove_term(term, ledger=None, archive_dir=paths.ARCHIVE_DIR, groups=None):
    """Archive the homes of ``term``'s students, then remove their accounts.

    Students also enrolled in another term are kept; instructors are never removed by this.

    Parameters
    ----------
    term : str
        The term whose students leave.
    ledger : str or pathlib.Path, optional
        The enrolment ledger (default: :func:`default_ledger`).
    archive_dir : str or pathlib.Path
        Where the tarball goes (created 0700 if missing).
    groups : dict, optional
        Passed to ``roster.remove_accounts``.

    Returns
    -------
    dict
        ``{"archive": path or None, "removed": [...], "missing": [...]}``.
    """
    _label(term, "term")
    ledger = ledger or default_ledger()
    names = students_to_remove(term, ledger)
    existing = []
    for name in names:
        try:
            pwd.getpwnam(name)
            existing.append(name)
        except KeyError:
            continue
    archive = None
    if existing:
        archive = archive_homes(existing, pathlib.Path(archive_dir) / f"{term}-homes-{roster.timestamp()}.tar.gz")
    result = roster.remove_accounts(existing, groups=groups)
    gone = set(result["removed"]) | (set(names) - set(existing))
    _write_ledger([r for r in read_ledger(ledger) if not (r["term"] == term and r["username"] in gone)], ledger)
    return {"archive": archive, "removed": result["removed"], "missing": sorted(set(names) - set(existing))}


def reset_password(username, password_file=None, groups=None):
    """Give a course account a new generated password, written once to a new root-only file.

    Raises
    ------
    roster.RosterError
        If ``username`` is not an account in one of the course groups, or the file exists.
    """
    groups = groups or roster.course_groups()
    try:
        account = pwd.getpwnam(username)
    except KeyError:
        raise roster.RosterError(f"username must be an existing course account, got {username!r}") from None
    if account.pw_uid < roster.FIRST_REGULAR_UID or not accounts.member_groups(username, groups.values()):
        raise roster.RosterError(
            f"username must be in the course groups {sorted(groups.values())}, got {username!r}; refused"
        )
    if password_file is None:
        folder, name = None, f"password-{username}-{roster.timestamp()}.csv"
    else:
        folder, name = pathlib.Path(password_file).parent, pathlib.Path(password_file).name
    try:
        password_file, handle = roster.new_secret_file(folder, name)
    except FileExistsError as exc:
        raise roster.RosterError(f"password_file must be a new file, got the existing {exc.filename!r}") from None
    password = roster.generate_password()
    with handle:
        subprocess.run(["chpasswd"], input=f"{username}:{password}\n", text=True, check=True, capture_output=True)
        handle.write(f"username,password\n{username},{password}\n")
    return {"password": password, "password_file": password_file}
