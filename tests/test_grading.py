"""The grading pieces that need neither root nor a hub: the careful copy of submissions,
nbgrader's configuration per role, the grading settings, the hub's grading service and
environment, the students' lazy Assignments extension. (The sandbox's own pieces:
tests/test_grading_sandbox.py.)

The exchange's permissions with real accounts, and the whole instructors' day on a real hub,
are in ``tests/instructors/test_grading_exchange.py`` and ``tests/hub/test_hub_grading.py``.
"""
import json
import os
import pathlib
import stat
import types

import nbformat
import pytest
from course_hub import assignment_list, grading, nbgrader_plugins, paths, sandbox
from course_hub import settings as course_settings
from traitlets.config import Config

ROLE_CONFIG = paths.ROLE_CONFIG


# ---- the careful copy of submissions ---------------------------------------------------------------
def test_copy_regular_tree_leaves_links_out_and_sets_modes(tmp_path):
    source = tmp_path / "submission"
    (source / "sub").mkdir(parents=True)
    (source / "a.ipynb").write_text("{}")
    (source / "sub" / "b.txt").write_text("b")
    (source / "secret").symlink_to("/etc/hostname")
    (source / "sub" / "up").symlink_to(source)
    os.mkfifo(source / "pipe")
    target = tmp_path / "copy"
    skipped = nbgrader_plugins.copy_regular_tree(str(source), str(target), file_mode=0o640, dir_mode=0o750)
    assert sorted(skipped) == ["pipe", "secret", "sub/up"]
    assert sorted(str(p.relative_to(target)) for p in target.rglob("*")) == ["a.ipynb", "sub", "sub/b.txt"]
    assert stat.S_IMODE((target / "a.ipynb").stat().st_mode) == 0o640
    assert stat.S_IMODE((target / "sub").stat().st_mode) == 0o750


def test_copy_regular_tree_follows_links_once_when_asked(tmp_path):
    source = tmp_path / "work"
    source.mkdir()
    (tmp_path / "data.csv").write_text("1,2\n")
    (source / "data.csv").symlink_to(tmp_path / "data.csv")
    (source / "loop").symlink_to(source)
    (source / "dangling").symlink_to(tmp_path / "missing")
    skipped = nbgrader_plugins.copy_regular_tree(str(source), str(tmp_path / "copy"), follow_links=True)
    assert (tmp_path / "copy" / "data.csv").read_text() == "1,2\n"
    assert sorted(skipped) == ["dangling", "loop"]


def test_copy_regular_tree_refuses_a_linked_top_folder_and_a_size_past_the_limit(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "f").write_bytes(b"12345")
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    with pytest.raises(OSError):
        nbgrader_plugins.copy_regular_tree(str(tmp_path / "alias"), str(tmp_path / "c1"))
    with pytest.raises(RuntimeError, match="more than 4 bytes"):
        nbgrader_plugins.copy_regular_tree(str(tmp_path / "real"), str(tmp_path / "c2"), limit=4)


def test_sandboxed_execute_never_runs_a_notebook_without_the_sandbox(tmp_path):
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("open('ran', 'w')")])
    step = nbgrader_plugins.SandboxedExecute()
    with pytest.raises(sandbox.SandboxError, match="students' code never runs outside it"):
        step.preprocess(notebook, {"metadata": {"path": str(tmp_path)}})
    step = nbgrader_plugins.SandboxedExecute(socket=str(tmp_path / "missing.sock"))
    with pytest.raises(sandbox.SandboxError, match="does not answer at .*missing.sock"):
        step.preprocess(notebook, {"metadata": {"path": str(tmp_path)}})
    assert not (tmp_path / "ran").exists()


# ---- nbgrader's configuration, per role -----------------------------------------------------------
ENVIRONMENT = {grading.ENV_COURSE_ID: "dlcourse", grading.ENV_EXCHANGE: "/x/exchange",
               grading.ENV_GRADING_COURSE: "/x/grading/course", grading.ENV_GRADER_SOCKET: "/x/run/grader.sock"}


def test_students_get_the_course_and_the_private_exchange():
    c = Config()
    grading.configure_nbgrader(c, grading.STUDENT, ENVIRONMENT)
    assert c.CourseDirectory.course_id == "dlcourse" and c.Exchange.root == "/x/exchange"
    assert c.CourseDirectory.groupshared is True
    assert c.ExchangeFactory.submit == "course_hub.nbgrader_plugins.PrivateSubmit"
    assert "root" not in c.CourseDirectory and "Autograde" not in c and "SandboxedExecute" not in c


def test_instructors_grade_in_the_sandbox_and_nothing_else_changes():
    from nbgrader.converters import Autograde
    from nbgrader.preprocessors import Execute

    c = Config()
    grading.configure_nbgrader(c, grading.INSTRUCTOR, ENVIRONMENT)
    assert c.CourseDirectory.root == "/x/grading/course"
    assert c.SandboxedExecute.socket == "/x/run/grader.sock"
    default = Autograde.class_traits()["autograde_preprocessors"].default()
    configured = c.Autograde.autograde_preprocessors
    assert configured[default.index(Execute)] is nbgrader_plugins.SandboxedExecute
    assert [step for step in configured if step is not nbgrader_plugins.SandboxedExecute] == \
        [step for step in default if step is not Execute]
    assert c.ExchangeFactory.collect == "course_hub.nbgrader_plugins.CheckedCollect"
    assert c.ExchangeFactory.release_feedback == "course_hub.nbgrader_plugins.PrivateReleaseFeedback"
    assert c.HTMLExporter.sanitize_html is True


def test_an_unknown_role_is_refused():
    with pytest.raises(ValueError, match="role: expected 'student' or 'instructor', got 'ta'"):
        grading.configure_nbgrader(Config(), "ta", ENVIRONMENT)


def test_each_roles_nbgrader_config_file_configures_its_role():
    for role in (grading.STUDENT, grading.INSTRUCTOR):
        c = Config()
        path = ROLE_CONFIG / role / "nbgrader_config.py"
        old = dict(os.environ)
        os.environ.update(ENVIRONMENT)
        try:
            exec(compile(path.read_text(), str(path), "exec"), {"get_config": lambda: c})
        finally:
            os.environ.clear()
            os.environ.update(old)
        assert c.Exchange.root == "/x/exchange"
        assert ("SandboxedExecute" in c) == (role == grading.INSTRUCTOR)


def _server_extensions(role):
    (path,) = (ROLE_CONFIG / role / "jupyter_server_config.d").glob("*.json")
    return json.loads(path.read_text())["ServerApp"]["jpserver_extensions"]


def test_students_load_no_nbgrader_extension_at_start_and_see_only_the_assignments():
    import nbgrader

    nbgrader_extensions = {f"nbgrader.server_extensions.{name}" for name in
                           ("formgrader", "course_list", "validate_assignment", "assignment_list")}
    student = _server_extensions(grading.STUDENT)
    assert {name for name, on in student.items() if on} == {"course_hub.assignment_list"}
    assert nbgrader_extensions <= set(student)
    # every extension nbgrader enables for everyone is switched off for students
    installed = pathlib.Path(nbgrader.__file__).parents[3] / "etc" / "jupyter" / "jupyter_server_config.d"
    if (installed / "nbgrader.json").exists():
        enabled = json.loads((installed / "nbgrader.json").read_text())["ServerApp"]["jpserver_extensions"]
        assert set(enabled) <= set(student)
    instructor = _server_extensions(grading.INSTRUCTOR)
    assert {name for name, on in instructor.items() if on} == nbgrader_extensions
    hidden = json.loads((ROLE_CONFIG / "student" / "labconfig" / "page_config.json").read_text())["disabledExtensions"]
    assert "@jupyter/nbgrader:formgrader" in hidden and "@jupyter/nbgrader:assignment-list" not in hidden


def test_the_lazy_extension_serves_what_nbgraders_assignment_list_serves():
    from nbgrader.server_extensions.assignment_list import handlers

    assert set(assignment_list.PATTERNS) == {pattern for pattern, _ in handlers.default_handlers}
    calls = []
    fake_app = types.SimpleNamespace(web_app=types.SimpleNamespace(
        settings={"base_url": "/user/amy/"}, add_handlers=lambda host, rules: calls.append(rules)),
        log=types.SimpleNamespace(info=lambda *a: None))
    assignment_list._load_jupyter_server_extension(fake_app)
    (rules,) = calls
    assert [rule[0] for rule in rules] == [f"/user/amy{p}" for p in assignment_list.PATTERNS]


# ---- the grading settings ---------------------------------------------------------------------------
def test_grading_settings_have_defaults_and_move_with_the_site_file(tmp_path):
    settings = course_settings.load_settings()
    where = grading.locations(settings)
    assert where["exchange"] == paths.EXCHANGE_DIR and where["socket"] == paths.GRADER_SOCKET
    assert where["gradebook"] == paths.GRADING_DIR / paths.GRADING_COURSE / paths.GRADEBOOK
    site = tmp_path / "site.yaml"
    site.write_text(f"server:\n  grading_dir: {tmp_path}/g\n  exchange_dir: {tmp_path}/e\n")
    moved = grading.locations(course_settings.load_settings(site))
    assert moved["course"] == tmp_path / "g" / paths.GRADING_COURSE and moved["exchange"] == tmp_path / "e"


@pytest.mark.parametrize("grading_site, message", [
    ("time_limit_seconds: 0", "grading.time_limit_seconds: expected a positive whole number of seconds, got 0"),
    ("time_limit_seconds: '5m'", "grading.time_limit_seconds: expected a positive whole number of seconds, got '5m'"),
    ("memory: lots", "grading.memory: expected a size such as '2G'"),
    ("sandbox_user: root; rm", "grading.sandbox_user: expected a name of lower-case letters"),
    ("course_id: ../x", "grading.course_id: expected a name of lower-case letters"),
    ("sandboxuser: x", "unknown key 'grading.sandboxuser'"),
])
def test_bad_grading_settings_are_refused_by_name(tmp_path, grading_site, message):
    site = tmp_path / "site.yaml"
    site.write_text(f"grading:\n  {grading_site}\n")
    with pytest.raises(course_settings.SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        course_settings.load_settings(site)


def test_the_hubs_sandbox_service_carries_the_settings():
    settings = course_settings.load_settings()
    service = grading.sandbox_service(settings, python="/venv/bin/python")
    command = service["command"]
    assert command[:4] == ["/venv/bin/python", "-m", "course_hub.sandbox", "serve"]
    options = dict(zip(command[4::2], command[5::2]))
    assert options == {
        "--socket": str(paths.GRADER_SOCKET), "--group": settings["groups"]["instructors"],
        "--scratch": str(paths.GRADING_DIR / paths.SANDBOX_SCRATCH), "--sandbox-user": "dl-sandbox",
        "--time-limit": "300", "--memory": "2G"}


def test_each_server_reads_its_roles_configuration():
    settings = course_settings.load_settings()
    environment = grading.server_environment(settings)
    spawner = types.SimpleNamespace(user=types.SimpleNamespace(name="no-such-user-here"))
    assert environment["JUPYTER_CONFIG_PATH"](spawner) == str(ROLE_CONFIG / grading.STUDENT)
    assert environment[grading.ENV_EXCHANGE] == str(paths.EXCHANGE_DIR)
    assert environment[grading.ENV_GRADER_SOCKET] == str(paths.GRADER_SOCKET)


def test_verdict_names_every_cell_that_misses():
    assert grading.verdict({"reference": {"a": (2, 2)}, "release": {"a": (0, 2)}}) == []
    assert grading.verdict({"reference": {"a": (1, 2)}, "release": {"a": (2, 2)}}) == [
        "reference: a scored 1 of 2", "release: a scored 2 of 2"]


def test_the_courses_id_is_the_assignments_one():
    assignments_config = Config()
    path = pathlib.Path(__file__).resolve().parents[1] / "assignments" / "nbgrader_config.py"
    exec(compile(path.read_text(), str(path), "exec"), {"get_config": lambda: assignments_config})
    assert assignments_config.CourseDirectory.course_id == course_settings.load_settings()["grading"]["course_id"]


def test_an_instructors_nbgrader_names_the_course_through_their_link(tmp_path):
    course = tmp_path / "grading" / "course"
    course.mkdir(parents=True)
    home = tmp_path / "home"
    home.mkdir()
    assert grading.course_root(course, home) == str(course)
    (home / grading.COURSE_LINK).symlink_to(tmp_path)  # a link somewhere else is not used
    assert grading.course_root(course, home) == str(course)
    (home / grading.COURSE_LINK).unlink()
    (home / grading.COURSE_LINK).symlink_to(course)
    assert grading.course_root(course, home) == str(home / grading.COURSE_LINK)
    c = Config()
    grading.configure_nbgrader(c, grading.INSTRUCTOR, {**ENVIRONMENT, grading.ENV_GRADING_COURSE: str(course),
                                                       "HOME": str(home)})
    assert c.CourseDirectory.root == str(home / grading.COURSE_LINK)
