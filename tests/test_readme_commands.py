"""The README's two marked commands, as .ci/run and the fresh-machine test read them."""
import pathlib
import subprocess

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
READ_COMMAND = REPO_ROOT / ".ci" / "readme-command"


def read_command(name, readme):
    return subprocess.run(["bash", str(READ_COMMAND), name, str(readme)], capture_output=True, text=True)


def test_the_readme_marks_its_two_commands():
    readme = REPO_ROOT / "README.md"
    install, tests = read_command("install-command", readme), read_command("test-command", readme)
    assert (install.returncode, install.stdout) == (0, "bash deploy/install.sh\n"), install.stderr
    assert tests.returncode == 0, tests.stderr
    assert tests.stdout.startswith("bash deploy/install.sh --no-start --test-tools && ")
    # CI runs the fresh-machine test: the README's test command must not deselect it.
    assert "freshroot" not in tests.stdout


def test_an_indented_block_gives_its_lines_without_the_indentation(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("1. Do it:\n\n   <!-- go -->\n\n   ```\n   echo one\n\n   echo two\n   ```\n")
    result = read_command("go", readme)
    assert (result.returncode, result.stdout) == (0, "echo one\necho two\n")


@pytest.mark.parametrize("text, message", [
    ("no marker here\n", "no <!-- go --> marker"),
    ("<!-- go -->\nsome prose\n```\necho\n```\n", "expected a ``` code block after <!-- go -->, got: some prose"),
    ("<!-- go -->\n", "no code block after <!-- go -->"),
    ("<!-- go -->\n```\necho\n", "the code block after <!-- go --> is not closed"),
    ("<!-- go -->\n```\n\n```\n", "the code block after <!-- go --> is empty"),
])
def test_a_readme_without_the_command_is_refused_by_name(tmp_path, text, message):
    readme = tmp_path / "README.md"
    readme.write_text(text)
    result = read_command("go", readme)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip() == f".ci/readme-command: {readme}: {message}"


def test_a_missing_readme_and_a_wrong_call_are_refused(tmp_path):
    missing = read_command("go", tmp_path / "nothing.md")
    assert missing.returncode == 1
    assert f"README: expected a readable file, got '{tmp_path / 'nothing.md'}'" in missing.stderr
    usage = subprocess.run(["bash", str(READ_COMMAND)], capture_output=True, text=True)
    assert usage.returncode == 2 and "usage: .ci/readme-command NAME [README]" in usage.stderr
