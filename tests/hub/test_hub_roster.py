"""The roster tool (course-roster): real accounts from a CSV, private homes, groups, passwords; refusals."""
import grp
import os
import pwd
import secrets
import subprocess
import sys

import pamela
import pytest
from course_hub import roster, roster_command


@pytest.fixture
def names():
    """Three fresh usernames; whatever accounts the test made with them are deleted after."""
    prefix = "hubtr" + secrets.token_hex(2)
    made = [f"{prefix}s1", f"{prefix}s2", f"{prefix}i1"]
    yield made
    for name in made:
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        subprocess.run(["userdel", "--remove", name], check=False, capture_output=True)


def write_roster(path, rows, header="username,full_name,role"):
    path.write_text(header + "\n" + "".join(",".join(row) + "\n" for row in rows))
    return path


account_exists = roster.account_exists


def test_add_creates_private_homes_groups_and_working_passwords(tmp_path, names):
    student_a, student_b, teacher = names
    csv = write_roster(tmp_path / "roster.csv", [
        (student_a, "Ada Lovelace", "student"),
        (student_b, "Alan Turing", "Student"),
        (teacher, "Grace Hopper", "instructor"),
    ])
    password_file = tmp_path / "secret" / "passwords.csv"
    result = roster.add_accounts(roster.read_roster(csv), password_file=password_file)
    assert sorted(result["created"]) == sorted(names)
    groups = roster.course_groups()
    for name in names:
        entry = pwd.getpwnam(name)
        assert os.stat(entry.pw_dir).st_mode & 0o777 == 0o700
        assert os.stat(entry.pw_dir).st_uid == entry.pw_uid
    assert student_a in grp.getgrnam(groups["student"]).gr_mem
    assert student_b in grp.getgrnam(groups["student"]).gr_mem
    assert teacher in grp.getgrnam(groups["instructor"]).gr_mem
    assert teacher not in grp.getgrnam(groups["student"]).gr_mem
    assert pwd.getpwnam(student_a).pw_gecos == "Ada Lovelace"
    # The passwords, written once, root only; each one opens its account through PAM.
    assert password_file.stat().st_mode & 0o777 == 0o600
    lines = password_file.read_text().splitlines()
    assert lines[0] == "username,password"
    written = dict(line.split(",") for line in lines[1:])
    assert written == result["created"]
    pamela.authenticate(student_a, written[student_a], service="login")
    with pytest.raises(pamela.PAMError):
        pamela.authenticate(student_a, written[student_b], service="login")

    # Again: nothing new, no password file, existing accounts untouched.
    again = roster.add_accounts(roster.read_roster(csv), password_file=tmp_path / "second.csv")
    assert again["created"] == {} and sorted(again["existing"]) == sorted(names)
    assert not (tmp_path / "second.csv").exists()

    home_a = pwd.getpwnam(student_a).pw_dir
    removed = roster.remove_accounts([student_a, teacher, "hubtnosuchuser"])
    assert removed == {"removed": [student_a, teacher], "missing": ["hubtnosuchuser"]}
    assert not account_exists(student_a) and not account_exists(teacher)
    assert not os.path.exists(home_a)


@pytest.mark.parametrize("rows, message", [
    ([("Bad Name", "X", "student")], "username 'Bad Name' is not valid"),
    ([("9lives", "X", "student")], "username '9lives' is not valid"),
    ([("{0}", "X", "teacher")], "role expected one of student, instructor, got 'teacher'"),
    ([("{0}", "A, B", "student")], None),  # 4 fields: reported as a field count
    ([("{0}", "X", "student"), ("{0}", "Y", "student")], "line 4: username '{0}' duplicates line 3"),
    ([("root", "Root", "instructor")], "is a system account"),
    ([("{0}", "", "student")], "full_name expected a non-empty name"),
])
def test_bad_rosters_are_refused_and_change_nothing(tmp_path, names, rows, message):
    good = (names[1], "Good Row", "student")
    rows = [good] + [tuple(cell.format(names[0]) for cell in row) for row in rows]
    csv = write_roster(tmp_path / "roster.csv", rows)
    with pytest.raises(roster.RosterError) as refused:
        roster.add_accounts(roster.read_roster(csv), password_file=tmp_path / "p.csv")
    assert "nothing changed" in str(refused.value)
    assert message is None or message.format(names[0]) in str(refused.value)
    if message is None:
        assert "expected 3 fields" in str(refused.value)
    assert not account_exists(names[0]) and not account_exists(names[1])
    assert not (tmp_path / "p.csv").exists()


def run_roster_command(*args):
    """``course-roster ARGS`` from this checkout (the console script runs this module's main)."""
    return subprocess.run([sys.executable, "-m", roster_command.__name__, *args],
                          capture_output=True, text=True, timeout=60)


def test_check_finds_what_add_would_refuse_and_changes_nothing(tmp_path, names):
    student, newcomer, clash = names
    assert roster_command.main(["add", str(write_roster(tmp_path / "first.csv", [(student, "Ada", "student")])),
                                "--password-file", str(tmp_path / "pw1.csv")]) == 0
    subprocess.run(["groupadd", clash], check=True)  # a group, no account, of a roster name
    try:
        promoted = write_roster(tmp_path / "promoted.csv", [
            (newcomer, "New Person", "student"),
            (student, "Ada", "instructor"),  # an existing student listed as an instructor
            (clash, "Clash", "student"),
        ])
        groups = roster.course_groups()
        checked = run_roster_command("check", str(promoted))
        assert checked.returncode == 1, checked.stdout
        assert (f"line 3: user {student!r} exists and is not in group {groups['instructor']!r} of role "
                f"'instructor' (it is in {groups['student']})") in checked.stderr
        assert f"line 4: username {clash!r} is free but a group of that name exists" in checked.stderr
        assert "2 problem(s), nothing changed" in checked.stderr
        # add refuses the same roster for the same reasons, before any account is made
        with pytest.raises(roster.RosterError) as refused:
            roster.add_accounts(roster.read_roster(promoted), password_file=tmp_path / "pw2.csv")
        assert f"user {student!r} exists and is not in group" in str(refused.value)
        assert not account_exists(newcomer) and not (tmp_path / "pw2.csv").exists()
        # and a roster check passes is one add accepts
        fine = write_roster(tmp_path / "fine.csv", [(newcomer, "New Person", "student"), (student, "Ada", "student")])
        checked = run_roster_command("check", str(fine))
        assert checked.returncode == 0, checked.stderr
        assert "2 valid row(s); `add` would create 1 account(s)" in checked.stdout
        assert roster.add_accounts(roster.read_roster(fine), password_file=tmp_path / "pw3.csv")["existing"] == [student]
    finally:
        subprocess.run(["groupdel", clash], check=False, capture_output=True)


def test_a_spreadsheets_csv_utf8_with_a_byte_order_mark_is_read(tmp_path, names):
    # What "CSV UTF-8" of a spreadsheet writes: a byte-order mark, CRLF line ends, accents.
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffusername,full_name,role\r\n".encode("utf-8")
                     + f"{names[0]},Zoë Ångström,student\r\n".encode("utf-8"))
    [person] = roster.read_roster(path)
    assert (person.username, person.full_name, person.role) == (names[0], "Zoë Ångström", "student")
    checked = run_roster_command("check", str(path))
    assert checked.returncode == 0 and "1 valid row(s)" in checked.stdout, checked.stderr


def test_bad_header_and_missing_file_are_refused(tmp_path):
    csv = write_roster(tmp_path / "roster.csv", [("x", "y", "student")], header="login,name,kind")
    with pytest.raises(roster.RosterError, match="expected the header 'username,full_name,role'"):
        roster.read_roster(csv)
    with pytest.raises(roster.RosterError, match="cannot read"):
        roster.read_roster(tmp_path / "missing.csv")


def test_existing_password_file_is_never_overwritten(tmp_path, names):
    csv = write_roster(tmp_path / "roster.csv", [(names[0], "Ada", "student")])
    taken = tmp_path / "passwords.csv"
    taken.write_text("old secrets\n")
    with pytest.raises(roster.RosterError, match="password_file: expected a new file"):
        roster.add_accounts(roster.read_roster(csv), password_file=taken)
    assert taken.read_text() == "old secrets\n"
    assert not account_exists(names[0])


def test_remove_refuses_accounts_outside_the_course(names):
    subprocess.run(["useradd", names[0]], check=True)
    with pytest.raises(roster.RosterError, match="not in the course groups"):
        roster.remove_accounts([names[0]])
    assert account_exists(names[0])


def test_command_line_check_add_remove(tmp_path, names):
    csv = write_roster(tmp_path / "roster.csv", [(names[0], "Ada", "student")])
    # The console script course-roster runs this module's main (pyproject.toml); PYTHONPATH
    # (the repository's conftest.py) makes it this checkout's.
    run = run_roster_command
    checked = run("check", str(csv))
    assert checked.returncode == 0 and "1 valid row" in checked.stdout
    added = run("add", str(csv), "--password-file", str(tmp_path / "pw.csv"))
    assert added.returncode == 0, added.stderr
    assert account_exists(names[0])
    bad = write_roster(tmp_path / "bad.csv", [("x y", "Z", "student")])
    refused = run("add", str(bad))
    assert refused.returncode == 1 and "username 'x y' is not valid" in refused.stderr
    removed = run("remove", "--user", names[0])
    assert removed.returncode == 0, removed.stderr
    assert not account_exists(names[0])
