"""Accounts for a term: add a section, archive and remove last term's students, reset a password.

Built on the roster script (``deploy/roster.py``): accounts are made and removed by its
functions, so the same checks apply (valid names, no system accounts, only course accounts
removed). What the term workflow adds is a ledger of who was enrolled in which term and
section (``/var/lib/dlcourse/enrolments.csv``, root-only), so that "remove last term" removes
exactly the students of that term, and never one who is enrolled again this term.

Usage (as root)::

    python deploy/roster.py add-section ROSTER.csv --term 2026-autumn --section A
    python deploy/roster.py remove-term 2026-spring [--archive-dir /var/backups/dlcourse]
    python deploy/roster.py reset-password USERNAME

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
import sys
import tarfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import roster  # noqa: E402  (deploy/roster.py)

DEFAULT_LEDGER = pathlib.Path("/var/lib/dlcourse/enrolments.csv")
DEFAULT_ARCHIVE_DIR = pathlib.Path("/var/backups/dlcourse")
LEDGER_FIELDS = ("username", "role", "term", "section", "added")
#: Term and section names: letters, digits, '-', '_' and '.', as they end up in file names.
LABEL_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")


def _label(value, name):
    if not isinstance(value, str) or not LABEL_PATTERN.match(value):
        raise roster.RosterError(
            f"{name} must be 1-40 letters, digits, '.', '-' or '_' (starting with a letter or digit), got {value!r}"
        )
    return value


def read_ledger(ledger=DEFAULT_LEDGER):
    """Return the enrolment rows (dicts with :data:`LEDGER_FIELDS`); none if there is no ledger."""
    ledger = pathlib.Path(ledger)
    if not ledger.exists():
        return []
    with ledger.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _write_ledger(rows, ledger):
    """Replace the ledger atomically (a crash leaves the old one or the new one, never half)."""
    ledger = pathlib.Path(ledger)
    ledger.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = ledger.with_name(ledger.name + ".new")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=LEDGER_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(temporary, ledger)


def add_section(people, term, section, ledger=DEFAULT_LEDGER, password_file=None, groups=None):
    """Create the accounts of a section's roster and record them as enrolled in ``term``.

    Parameters
    ----------
    people : list of roster.Person
        The section's roster (``roster.read_roster``).
    term, section : str
        Labels such as ``"2026-autumn"`` and ``"A"``.
    ledger : str or pathlib.Path
        The enrolment ledger.
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


def students_to_remove(term, ledger=DEFAULT_LEDGER):
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


def remove_term(term, ledger=DEFAULT_LEDGER, archive_dir=DEFAULT_ARCHIVE_DIR, groups=None):
    """Archive the homes of ``term``'s students, then remove their accounts.

    Students also enrolled in another term are kept; instructors are never removed by this.

    Parameters
    ----------
    term : str
        The term whose students leave.
    ledger : str or pathlib.Path
        The enrolment ledger.
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
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        archive = archive_homes(existing, pathlib.Path(archive_dir) / f"{term}-homes-{stamp}.tar.gz")
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
    if account.pw_uid < roster.FIRST_REGULAR_UID or not any(
        roster._in_group(username, group) for group in groups.values()
    ):
        raise roster.RosterError(
            f"username must be in the course groups {sorted(groups.values())}, got {username!r}; refused"
        )
    if password_file is None:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        password_file = roster.DEFAULT_PASSWORD_DIR / f"password-{username}-{stamp}.csv"
    password_file = pathlib.Path(password_file)
    password_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        descriptor = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise roster.RosterError(
            f"password_file must be a new file, got the existing {str(password_file)!r}") from None
    password = roster.generate_password()
    subprocess.run(["chpasswd"], input=f"{username}:{password}\n", text=True, check=True, capture_output=True)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(f"username,password\n{username},{password}\n")
    return {"password": password, "password_file": password_file}


def main(argv=None):
    """Command line: ``add-section``, ``remove-term``, ``reset-password`` (as root)."""
    import argparse

    parser = argparse.ArgumentParser(prog="roster.py", description="Course accounts for a term.")
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add-section", help="create a section's accounts, enrolled in a term")
    add.add_argument("roster")
    add.add_argument("--term", required=True)
    add.add_argument("--section", required=True)
    add.add_argument("--password-file", default=None)
    add.add_argument("--ledger", default=str(DEFAULT_LEDGER))
    remove = commands.add_parser("remove-term", help="archive the homes of a term's students, then remove them")
    remove.add_argument("term")
    remove.add_argument("--archive-dir", default=str(DEFAULT_ARCHIVE_DIR))
    remove.add_argument("--ledger", default=str(DEFAULT_LEDGER))
    reset = commands.add_parser("reset-password", help="give one account a new password")
    reset.add_argument("username")
    reset.add_argument("--password-file", default=None)
    args = parser.parse_args(argv)
    try:
        if os.geteuid() != 0:
            raise roster.RosterError("run as root: changing accounts needs it")
        if args.command == "add-section":
            result = add_section(roster.read_roster(args.roster), args.term, args.section,
                                 ledger=args.ledger, password_file=args.password_file)
            print(f"{args.term}/{args.section}: {len(result['enrolled'])} enrolled, "
                  f"{len(result['created'])} account(s) created")
            if result["password_file"]:
                print(f"passwords of the new accounts: {result['password_file']} (root only)")
        elif args.command == "remove-term":
            result = remove_term(args.term, ledger=args.ledger, archive_dir=args.archive_dir)
            print(f"{args.term}: removed {len(result['removed'])} student(s)"
                  + (f"; their homes are in {result['archive']}" if result["archive"] else ""))
        else:
            result = reset_password(args.username, password_file=args.password_file)
            print(f"new password for {args.username} in {result['password_file']} (root only)")
    except roster.RosterError as exc:
        print(f"roster.py: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
