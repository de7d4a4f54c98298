"""``course-roster``: the course's accounts from the command line (as root).

::

    course-roster check  ROSTER.csv        # everything add checks, nothing changed
    course-roster add    ROSTER.csv [--password-file PATH]
    course-roster remove ROSTER.csv        # or: remove --user NAME [--user NAME ...]
    course-roster add-section ROSTER.csv --term T --section S
    course-roster remove-term T            # homes archived, then the term's students removed
    course-roster reset-password NAME      # a new password, in a new root-only file

The first three are :mod:`course_hub.roster`, the term workflow is :mod:`course_hub.term`; this
module only parses the command line and reports. Defaults (groups, the state folder for the
password files and the enrolment ledger) come from the hub settings.
"""
import argparse
import os
import sys

from . import paths, roster, term
from . import settings as course_settings


def build_parser():
    """The argument parser of ``course-roster``."""
    parser = argparse.ArgumentParser(
        prog="course-roster", description="Course accounts from a roster CSV (username,full_name,role).")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="validate a roster, change nothing")
    check.add_argument("roster")
    add = commands.add_parser("add", help="create the roster's missing accounts")
    add.add_argument("roster")
    add.add_argument("--password-file", default=None, help="new file for the passwords (mode 0600)")
    remove = commands.add_parser("remove", help="delete accounts and their homes")
    remove.add_argument("roster", nargs="?")
    remove.add_argument("--user", action="append", default=[], help="an account to remove (repeatable)")
    section = commands.add_parser("add-section", help="create a section's accounts, enrolled in a term")
    section.add_argument("roster")
    section.add_argument("--term", required=True)
    section.add_argument("--section", required=True)
    section.add_argument("--password-file", default=None)
    section.add_argument("--ledger", default=None, help="the enrolment ledger (default: in the state folder)")
    leave = commands.add_parser("remove-term", help="archive the homes of a term's students, then remove them")
    leave.add_argument("term")
    leave.add_argument("--archive-dir", default=str(paths.ARCHIVE_DIR))
    leave.add_argument("--ledger", default=None, help="the enrolment ledger (default: in the state folder)")
    reset = commands.add_parser("reset-password", help="give one account a new password")
    reset.add_argument("username")
    reset.add_argument("--password-file", default=None)
    return parser


def run(args):
    """Carry out one parsed command; return the lines to print."""
    if args.command == "check":
        people = roster.read_roster(args.roster)
        try:
            roster.check_roster(people)
        except roster.RosterError as exc:
            raise roster.RosterError(f"roster: {args.roster!r}: {exc}") from None
        return [f"{args.roster}: {len(people)} valid row(s); `add` would create "
                f"{sum(1 for person in people if not roster.account_exists(person.username))} account(s)"]
    if os.geteuid() != 0:
        raise roster.RosterError("run as root: changing accounts needs it")
    if args.command == "add":
        result = roster.add_accounts(roster.read_roster(args.roster), args.password_file)
        lines = [f"created {len(result['created'])} account(s), {len(result['existing'])} already existed"]
        if result["password_file"]:
            lines.append(f"passwords of the new accounts: {result['password_file']} "
                         "(root only; hand them out, then delete it)")
        return lines
    if args.command == "remove":
        names = list(args.user)
        if args.roster:
            names += [person.username for person in roster.read_roster(args.roster)]
        if not names:
            raise roster.RosterError("remove: expected a roster file or --user NAME, got neither")
        result = roster.remove_accounts(names)
        return [f"removed {len(result['removed'])} account(s); {len(result['missing'])} did not exist"]
    if args.command == "add-section":
        result = term.add_section(roster.read_roster(args.roster), args.term, args.section,
                                  ledger=args.ledger, password_file=args.password_file)
        lines = [f"{args.term}/{args.section}: {len(result['enrolled'])} enrolled, "
                 f"{len(result['created'])} account(s) created"]
        if result["password_file"]:
            lines.append(f"passwords of the new accounts: {result['password_file']} (root only)")
        return lines
    if args.command == "remove-term":
        result = term.remove_term(args.term, ledger=args.ledger, archive_dir=args.archive_dir)
        return [f"{args.term}: removed {len(result['removed'])} student(s)"
                + (f"; their homes are in {result['archive']}" if result["archive"] else "")]
    result = term.reset_password(args.username, password_file=args.password_file)
    return [f"new password for {args.username} in {result['password_file']} (root only)"]


def main(argv=None):
    """Command-line entry point (``course-roster``); returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        lines = run(args)
    except (roster.RosterError, course_settings.SettingsError) as exc:
        print(f"course-roster: {exc}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
