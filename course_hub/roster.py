"""Course accounts from a roster: add students and instructors, remove them.

A roster is a CSV file with a header row ``username,full_name,role`` and one row per person;
``role`` is ``student`` or ``instructor``.

:func:`add_accounts` creates each missing account with a private home (mode 0700: Debian's
``useradd -m`` makes 0755 homes, which would let students read each other's work), puts it in
the course group of its role, gives it a generated password, and writes the new passwords once
to a root-only file (mode 0600). Accounts that already exist are left as they are. The whole
roster is checked before anything changes: a bad username, an unknown role, a duplicate row, or
a row that clashes with the machine's accounts (:func:`account_problems`: an existing account
outside the group of its role, a new name taken by a group) stops the run with a message
naming the line, and no account is touched. ``course-roster check`` runs the same checks.

The term workflow (:mod:`course_hub.term`) is built on these functions; the command line of
both is ``course-roster`` (:mod:`course_hub.roster_command`).
"""
import csv
import datetime
import os
import pathlib
import pwd
import re
import secrets
import subprocess
from dataclasses import dataclass

from . import accounts
from . import settings as course_settings

ROLES = ("student", "instructor")
HEADER = ("username", "full_name", "role")
#: Debian's default NAME_REGEX, at most 32 characters (the utmp limit).
USERNAME_PATTERN = re.compile(r"^[a-z][-a-z0-9_]{0,31}$")
#: Accounts below this uid belong to the system; the roster never touches them.
FIRST_REGULAR_UID = 1000
PASSWORD_ALPHABET = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/l/I
PASSWORD_LENGTH = 14


class RosterError(ValueError):
    """The roster (or a request to change accounts) is invalid; nothing was changed."""


@dataclass(frozen=True)
class Person:
    """One roster row."""

    username: str
    full_name: str
    role: str
    line: int = 0


def course_groups(settings=None):
    """Return ``{"student": group, "instructor": group}`` from the hub settings.

    Parameters
    ----------
    settings : dict or None
        Loaded hub settings (default: this server's, ``course_hub.settings.for_this_server``).

    Returns
    -------
    dict
        Unix group name for each role.
    """
    settings = settings or course_settings.for_this_server()
    return {"student": settings["groups"]["students"], "instructor": settings["groups"]["instructors"]}


def read_roster(path):
    """Read and validate a roster CSV file.

    Parameters
    ----------
    path : str or pathlib.Path
        The CSV file: header ``username,full_name,role``, then one row per person.

    Returns
    -------
    list of Person
        The rows, in file order.

    Raises
    ------
    RosterError
        If the file cannot be read, its header differs, or any row is invalid (every problem
        is listed in the message, with its line number).
    """
    path = pathlib.Path(path)
    try:
        # utf-8-sig: a spreadsheet's "CSV UTF-8" starts with a byte-order mark, read as nothing.
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except OSError as exc:
        raise RosterError(f"roster: cannot read {str(path)!r} ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise RosterError(f"roster: {str(path)!r} is not UTF-8 text") from exc
    if not rows:
        raise RosterError(f"roster: {str(path)!r} is empty; expected the header {','.join(HEADER)}")
    header = tuple(cell.strip().lower() for cell in rows[0])
    if header != HEADER:
        raise RosterError(
            f"roster: {str(path)!r} line 1: expected the header {','.join(HEADER)!r}, got {','.join(rows[0])!r}"
        )
    people, problems = [], []
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue  # blank lines are allowed
        if len(row) != len(HEADER):
            problems.append(f"line {line}: expected {len(HEADER)} fields ({','.join(HEADER)}), got {len(row)}")
            continue
        username, full_name, role = (cell.strip() for cell in row)
        people.append(Person(username, full_name, role.lower(), line))
    try:
        validate_roster(people)
    except RosterError as exc:
        problems.extend(str(exc).split("\n")[1:])
    if problems:
        raise RosterError(f"roster: {str(path)!r} has {len(problems)} problem(s), nothing changed:\n" + "\n".join(problems))
    return people


def validate_roster(people):
    """Check usernames, names, roles and duplicates of roster rows.

    Parameters
    ----------
    people : list of Person
        Rows to check.

    Raises
    ------
    RosterError
        Listing every problem, one a line after a summary line.
    """
    problems, seen = [], {}
    for person in people:
        where = f"line {person.line}" if person.line else f"user {person.username!r}"
        if not USERNAME_PATTERN.match(person.username):
            problems.append(
                f"{where}: username {person.username!r} is not valid: expected a lowercase letter, then up"
                " to 31 lowercase letters, digits, '-' or '_'"
            )
        if person.role not in ROLES:
            problems.append(f"{where}: role expected one of {', '.join(ROLES)}, got {person.role!r}")
        if any(char in person.full_name for char in ":,\n") or not person.full_name:
            problems.append(
                f"{where}: full_name expected a non-empty name without ':' or ',', got {person.full_name!r}"
            )
        if person.username in seen:
            problems.append(f"{where}: username {person.username!r} duplicates {seen[person.username]}")
        else:
            seen[person.username] = where
        try:
            existing = pwd.getpwnam(person.username)
        except KeyError:
            continue
        if existing.pw_uid < FIRST_REGULAR_UID:
            problems.append(
                f"{where}: username {person.username!r} is a system account (uid {existing.pw_uid}); refused"
            )
    if problems:
        raise RosterError(f"{len(problems)} problem(s), nothing changed:\n" + "\n".join(problems))


def account_exists(username):
    """Whether a Unix account called ``username`` exists."""
    try:
        pwd.getpwnam(username)
    except KeyError:
        return False
    return True


def account_problems(people, groups):
    """What ``add`` would refuse about ``people`` on this machine, beyond the roster's own rows.

    Parameters
    ----------
    people : list of Person
        Roster rows (already valid by :func:`validate_roster`).
    groups : dict
        Unix group of each role (:func:`course_groups`).

    Returns
    -------
    list of str
        One line per problem: an existing account that is not in the group of its role (a
        student listed as an instructor, or an unrelated account of the same name), or a new
        username that a Unix group already has (``useradd`` would refuse to make its group).
    """
    problems = []
    for person in people:
        where = f"line {person.line}" if person.line else f"user {person.username!r}"
        group = groups.get(person.role)
        if group is None:
            continue  # an unknown role: validate_roster reports it
        if account_exists(person.username):
            if not accounts.is_member(person.username, group):
                held = accounts.member_groups(person.username, groups.values())
                problems.append(
                    f"{where}: user {person.username!r} exists and is not in group {group!r} of role "
                    f"{person.role!r} (" + (f"it is in {', '.join(held)}" if held else "an account outside the course")
                    + "); refused")
        elif accounts.group_exists(person.username):
            problems.append(
                f"{where}: username {person.username!r} is free but a group of that name exists, so "
                "useradd cannot make the account's own group; refused")
    return problems


def check_roster(people, groups=None):
    """Everything ``add`` checks before it changes anything: the rows, then the machine's accounts.

    Raises
    ------
    RosterError
        Listing every problem, one a line after a summary line.
    """
    validate_roster(people)
    problems = account_problems(people, groups or course_groups())
    if problems:
        raise RosterError(f"{len(problems)} problem(s), nothing changed:\n" + "\n".join(problems))


def generate_password(length=PASSWORD_LENGTH):
    """Return a random password of ``length`` unambiguous letters and digits."""
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(length))


def new_secret_file(folder, name):
    """Open a new file for passwords in ``folder`` (made 0700 if missing), mode 0600, never reused.

    ``folder`` None means this server's state folder. Returns ``(path, writable file)``.

    Raises
    ------
    FileExistsError
        If the file exists already.
    """
    folder = pathlib.Path(folder) if folder else course_settings.for_this_server()["server"]["state_dir"]
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / name
    # Created 0600 before any password is in it; O_EXCL so an existing file is never reused.
    return path, os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w")


def timestamp():
    """Now, for file names: ``20261128-142501``."""
    return datetime.datetime.now().strftime("%Y%m%d-%H%M%S")


def add_accounts(people, password_file=None, groups=None):
    """Create the accounts of ``people`` that do not exist yet.

    Parameters
    ----------
    people : list of Person
        Validated or not: they are validated again before any change.
    password_file : str or pathlib.Path or None
        Where to write the new accounts' passwords (``username,password`` lines). It must not
        exist; it is created with mode 0600. Default: a time-stamped file in the state
        folder (the settings' ``server.state_dir``). Not written when no account is new.
    groups : dict or None
        Unix group of each role (default: from the hub settings).

    Returns
    -------
    dict
        ``{"created": {username: password}, "existing": [usernames], "password_file": path or None}``.

    Raises
    ------
    RosterError
        If the rows are invalid or clash with the machine's accounts (:func:`check_roster`), or
        the password file exists.
    """
    groups = groups or course_groups()
    check_roster(people, groups)
    existing = [person.username for person in people if account_exists(person.username)]
    new = [person for person in people if person.username not in existing]
    if password_file is None:
        folder, name = None, f"passwords-{timestamp()}.csv"
    else:
        folder, name = pathlib.Path(password_file).parent, pathlib.Path(password_file).name
    created = {}
    if new:
        try:
            password_file, handle = new_secret_file(folder, name)
        except FileExistsError as exc:
            raise RosterError(f"password_file: expected a new file, got the existing {exc.filename!r}") from None
        accounts.ensure_groups(groups.values())
        with handle:
            handle.write("username,password\n")
            for person in new:
                password = generate_password()
                _create_account(person, groups[person.role], password)
                handle.write(f"{person.username},{password}\n")
                handle.flush()
                created[person.username] = password
    return {"created": created, "existing": existing, "password_file": password_file if new else None}


def _create_account(person, group, password):
    """Create one account with a 0700 home, in ``group``, with ``password``."""
    subprocess.run(
        [
            "useradd", "--create-home", "--key", "HOME_MODE=0700", "--shell", "/bin/bash",
            "--comment", person.full_name, "--groups", group, person.username,
        ],
        check=True,
        capture_output=True,
    )
    # Older useradd ignores HOME_MODE: make sure, whatever the login.defs says.
    os.chmod(pwd.getpwnam(person.username).pw_dir, 0o700)
    subprocess.run(["chpasswd"], input=f"{person.username}:{password}\n", text=True, check=True, capture_output=True)


def remove_accounts(usernames, groups=None):
    """Delete course accounts and their homes.

    Parameters
    ----------
    usernames : iterable of str
        Accounts to remove. Names with no account are skipped.
    groups : dict or None
        Unix group of each role (default: from the hub settings).

    Returns
    -------
    dict
        ``{"removed": [usernames], "missing": [usernames]}``.

    Raises
    ------
    RosterError
        If any named account exists but is in none of the course groups (only course accounts
        are ever removed); nothing is removed then.
    """
    groups = groups or course_groups()
    usernames = list(dict.fromkeys(usernames))
    present, missing = [], []
    for name in usernames:
        try:
            pwd.getpwnam(name)
        except KeyError:
            missing.append(name)
            continue
        if not accounts.member_groups(name, groups.values()):
            raise RosterError(
                f"usernames: {name!r} is not in the course groups {sorted(groups.values())}; refused (nothing removed)"
            )
        present.append(name)
    for name in present:
        # A logged-in user's processes would make userdel refuse: stop them first.
        accounts.stop_processes_of(name)
        subprocess.run(["userdel", "--remove", name], check=True, capture_output=True)
    return {"removed": present, "missing": missing}
