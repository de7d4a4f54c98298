"""The term workflow on real Unix accounts: add sections, archive and remove a term, reset a password.

Accounts go into groups of this test run (not the course's shared groups), so nothing here
can touch a real student; every account and group made is removed at the end.
"""
import grp
import os
import pathlib
import pwd
import stat
import tarfile

import pamela
import pytest
from course_hub import roster, roster_command, term


@pytest.fixture
def term_setup(accounts, scratch):
    """Two sections of last term, one of this term, a repeater in both; their own groups."""
    groups = {"student": f"{accounts.prefix}ts", "instructor": f"{accounts.prefix}ti"}
    accounts.groups.extend(groups.values())  # roster creates them; the fixture removes them
    ledger = scratch / "enrolments.csv"
    p = accounts.prefix

    def people(*names, role="student"):
        return [roster.Person(f"{p}{n}", f"Student {n}", role) for n in names]

    last_a = people("a1", "a2")
    last_b = people("b1", "rep")
    this = people("c1", "rep")
    teacher = people("prof", role="instructor")
    made = []
    for section, rows, when in (("A", last_a, "2026-spring"), ("B", last_b, "2026-spring"),
                                ("A", this, "2026-autumn"), ("staff", teacher, "2026-spring")):
        result = term.add_section(rows, when, section, ledger=ledger, groups=groups,
                                  password_file=scratch / f"pw-{when}-{section}.csv")
        made.extend(result["created"])
    accounts.users.extend(made)
    for name in made:  # something in every home, to find in the archive
        home = pathlib.Path(pwd.getpwnam(name).pw_dir)
        (home / "work.txt").write_text(f"work of {name}")
    return {"groups": groups, "ledger": ledger, "prefix": p, "scratch": scratch}


def exists(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def test_remove_term_archives_then_removes_only_that_terms_students(term_setup):
    p, scratch = term_setup["prefix"], term_setup["scratch"]
    leaving = [f"{p}a1", f"{p}a2", f"{p}b1"]
    staying = [f"{p}c1", f"{p}rep", f"{p}prof"]
    homes = {name: pathlib.Path(pwd.getpwnam(name).pw_dir) for name in leaving + staying}
    before = {name: (homes[name] / "work.txt").read_text() for name in staying}
    assert term.students_to_remove("2026-spring", term_setup["ledger"]) == sorted(leaving)

    result = term.remove_term("2026-spring", ledger=term_setup["ledger"],
                              archive_dir=scratch / "archive", groups=term_setup["groups"])
    assert result["removed"] == sorted(leaving)
    archive = result["archive"]
    assert stat.S_IMODE(os.stat(archive).st_mode) == 0o600
    with tarfile.open(archive, "r:gz") as tar:
        for name in leaving:
            assert tar.extractfile(f"{name}/work.txt").read().decode() == f"work of {name}"
    for name in leaving:
        assert not exists(name) and not homes[name].exists()
    # Nothing else touched: this term's students, the repeater, the instructor, the groups.
    for name in staying:
        assert exists(name) and (homes[name] / "work.txt").read_text() == before[name]
    for group in term_setup["groups"].values():
        grp.getgrnam(group)
    remaining = {(r["username"], r["term"]) for r in term.read_ledger(term_setup["ledger"])}
    assert (f"{p}rep", "2026-autumn") in remaining and (f"{p}rep", "2026-spring") in remaining
    assert not any(name in {u for u, _ in remaining} for name in leaving)
    # Running it again finds nobody left to remove and writes no empty archive.
    again = term.remove_term("2026-spring", ledger=term_setup["ledger"],
                             archive_dir=scratch / "archive", groups=term_setup["groups"])
    assert again == {"archive": None, "removed": [], "missing": []}


def test_reset_password_changes_only_that_account(term_setup):
    p, scratch = term_setup["prefix"], term_setup["scratch"]
    result = term.reset_password(f"{p}c1", password_file=scratch / "reset.csv", groups=term_setup["groups"])
    assert stat.S_IMODE(os.stat(result["password_file"]).st_mode) == 0o600
    assert result["password"] in result["password_file"].read_text()
    pamela.authenticate(f"{p}c1", result["password"], service="login")  # raises if refused
    with pytest.raises(roster.RosterError, match="password_file must be a new file"):
        term.reset_password(f"{p}c1", password_file=scratch / "reset.csv", groups=term_setup["groups"])


def test_refusals_name_the_argument(term_setup, accounts):
    scratch, groups = term_setup["scratch"], term_setup["groups"]
    with pytest.raises(roster.RosterError, match="term must be 1-40 letters.*got '../etc'"):
        term.remove_term("../etc", ledger=term_setup["ledger"], archive_dir=scratch, groups=groups)
    with pytest.raises(roster.RosterError, match="section must be 1-40 letters.*got 'a b'"):
        term.add_section([], "2026-autumn", "a b", ledger=term_setup["ledger"], groups=groups)
    with pytest.raises(roster.RosterError, match="username must be an existing course account, got 'nobody-x1'"):
        term.reset_password("nobody-x1", groups=groups)
    with pytest.raises(roster.RosterError, match="username must be in the course groups"):
        term.reset_password("root", groups=groups)
    outsider = accounts.user("out")  # a Unix user in neither group
    with pytest.raises(roster.RosterError, match=f"got '{outsider}'; refused"):
        term.reset_password(outsider, groups=groups)
    (scratch / "taken.tar.gz").write_text("")
    with pytest.raises(roster.RosterError, match="archive must be a new file"):
        term.archive_homes([outsider], scratch / "taken.tar.gz")


def test_roster_command_runs_the_term_commands(capsys):
    # course-roster runs add-section, remove-term and reset-password through the term workflow.
    assert roster_command.main(["reset-password", "nobody-x1"]) == 1
    assert "course-roster: username must be an existing course account, got 'nobody-x1'" in capsys.readouterr().err
    assert roster_command.main(["remove-term", "../etc"]) == 1
    assert "term must be 1-40 letters" in capsys.readouterr().err
