"""The hub's code is one installed package: no sys.path edits, every path named once, console
scripts from pyproject.toml, the configuration shipped inside the package, no import circle."""
import ast
import pathlib
import subprocess
import tomllib

import pytest
from course_hub import paths

from tests.hub import hubkit

ROOT = hubkit.REPO_ROOT
PACKAGE = ROOT / "course_hub"
#: The hub's code and what deploys and tests it (course_lib's bench scripts are not the hub's).
HUB_FILES = sorted(
    [ROOT / "jupyterhub_config.py", ROOT / "bench" / "hub_login_to_kernel.py", ROOT / "bench" / "load_test.py"]
    + [p for folder in ("course_hub", "deploy", "tests/hub", "tests/instructors") for p in (ROOT / folder).rglob("*")
       if p.is_file() and p.suffix not in (".md", ".pyc") and "__pycache__" not in p.parts]
)
#: Deployment files that must name one path of course_hub.paths themselves (systemd and a boot
#: script cannot import Python; the image is built without the package): each is checked
#: against paths.py by a test (here, or tests/test_kubernetes.py for the Dockerfile).
MAY_NAME = {
    ROOT / "deploy" / "systemd" / "jupyterhub.service": paths.COURSE_HUB,
    ROOT / "deploy" / "rc.local": paths.COURSE_HUB,
    ROOT / "deploy" / "profile.d" / "dlcourse.sh": paths.VENV_BIN,
    ROOT / "deploy" / "kubernetes" / "Dockerfile": paths.VENV,
}
PATHS = {name: value for name, value in vars(paths).items()
         if isinstance(value, pathlib.PurePath) and not name.startswith("_") and value.is_absolute()
         and name not in ("HUB_CONFIG", "SHARED_SETTINGS", "ROLE_CONFIG")}  # shipped: where the package is


def _python_files():
    return [p for p in HUB_FILES if p.suffix == ".py"]


def _sys_path_edits(tree):
    """Lines where ``sys.path`` is changed: a call of one of its methods, or an assignment to it."""
    for node in ast.walk(tree):
        target = None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            target = node.func.value
        elif isinstance(node, (ast.Assign, ast.AugAssign)):
            for candidate in getattr(node, "targets", [getattr(node, "target", None)]):
                target = candidate.value if isinstance(candidate, ast.Subscript) else candidate
        if (isinstance(target, ast.Attribute) and target.attr == "path"
                and isinstance(target.value, ast.Name) and target.value.id == "sys"):
            yield node.lineno


@pytest.mark.parametrize("path", _python_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_sys_path_edits(path):
    edits = list(_sys_path_edits(ast.parse(path.read_text(), str(path))))
    assert not edits, f"{path.relative_to(ROOT)} edits sys.path at line(s) {edits}: import the package instead"


def test_the_sys_path_check_finds_an_edit():
    tree = ast.parse("import sys\nsys.path.insert(0, 'x')\nsys.path = []\nsys.path[0:0] = ['y']\nsys.pathx = 1\n")
    assert sorted(_sys_path_edits(tree)) == [2, 3, 4]


def test_every_path_is_named_once():
    found = []
    for path in HUB_FILES:
        if path == PACKAGE / "paths.py":
            continue
        text = path.read_text(errors="replace")
        allowed = MAY_NAME.get(path)
        if allowed is not None:
            text = text.replace(str(allowed), "")
        found += [f"{path.relative_to(ROOT)}: {name} ({value})" for name, value in PATHS.items()
                  if str(value) in text]
    assert not found, "paths written outside course_hub/paths.py:\n" + "\n".join(found)


def test_paths_are_documented_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    missing = [f"{name} ({value})" for name, value in PATHS.items() if f"`{value}`" not in readme]
    assert not missing, f"README.md does not name these paths of course_hub/paths.py: {missing}"


def test_install_sh_reads_its_paths_from_the_package():
    assignments = subprocess.run(["/usr/bin/python3", "-m", "course_hub.paths"], cwd=ROOT,
                                 capture_output=True, text=True, check=True, timeout=60).stdout
    variables = dict(line.split("=", 1) for line in assignments.splitlines())
    assert variables == {name: str(value) for name, value in paths.FOR_INSTALL_SH.items()}
    install_sh = (ROOT / "deploy" / "install.sh").read_text()
    for name in variables:
        assert f"${name}" in install_sh or f"${{{name}" in install_sh or f'"${name}' in install_sh, name


def _imports(module_path):
    """The course_hub modules a module imports (``from . import x``, ``from course_hub import x``...)."""
    names = set()
    for node in ast.walk(ast.parse(module_path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level == 1 or base.startswith("course_hub"):
                base = base.removeprefix("course_hub").lstrip(".")
                if base:
                    names.add(base.split(".")[0])
                else:
                    names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name.split(".")[1] for a in node.names if a.name.startswith("course_hub."))
    return names


def test_no_import_circle_in_the_package():
    modules = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    graph = {name: _imports(PACKAGE / f"{name}.py") & modules for name in modules}
    assert graph["term"] >= {"roster"} and "term" not in graph["roster"]  # the old circle, gone

    def visit(name, trail):
        if name in trail:
            raise AssertionError(f"import circle: {' -> '.join(trail[trail.index(name):] + [name])}")
        for other in sorted(graph[name]):
            visit(other, trail + [name])

    for name in sorted(modules):
        visit(name, [])


def test_console_scripts_are_installed_and_answer():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert {"course-hub", "course-roster", "course-repo", "course-publish", "course-status",
            "course-take-back"} <= set(scripts)
    for name, target in scripts.items():
        module = target.split(":")[0]
        assert (ROOT / (module.replace(".", "/") + ".py")).is_file(), target
        command = paths.VENV_BIN / name
        assert command.is_file(), f"{command} missing: run deploy/install.sh --no-start"
        shown = subprocess.run([str(command), "--help"], capture_output=True, text=True, timeout=120)
        assert shown.returncode == 0 and f"usage: {name}" in shown.stdout, shown.stdout + shown.stderr


def test_the_installed_package_carries_the_config_and_the_shared_settings():
    # The hub started by systemd or rc.local reads these from the installed package.
    found = subprocess.run(
        [str(paths.VENV_BIN / "python"), "-I", "-c",
         "from course_hub import paths; print(paths.HUB_CONFIG); print(paths.SHARED_SETTINGS)"],
        capture_output=True, text=True, check=True, timeout=60, cwd="/").stdout.split()
    installed_config, installed_settings = map(pathlib.Path, found)
    assert installed_config.parent == installed_settings.parent != PACKAGE
    assert installed_config.read_text() == (ROOT / "jupyterhub_config.py").read_text(), (
        "the installed jupyterhub_config.py differs from this checkout's: run deploy/install.sh --no-start")
    assert installed_settings.read_text() == (ROOT / "deploy" / "hub-settings.yaml").read_text(), (
        "the installed hub-settings.yaml differs from this checkout's: run deploy/install.sh --no-start")


def test_a_students_server_does_not_build_a_grammar_at_start():
    # jsonschema 4.24+ imports rfc3987-syntax, which builds a Lark grammar at import: 1.4 CPU-s
    # at every start of a student's server (bench/login_cpu.py). requirements.txt pins a
    # jsonschema that checks the same schemas without it.
    imported = subprocess.run(
        [str(paths.VENV_BIN / "python"), "-I", "-c",
         "import sys, jupyter_server.serverapp, jupyter_events.logger; print('rfc3987_syntax' in sys.modules)"],
        capture_output=True, text=True, timeout=300, cwd="/")
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip() == "False", "a server start imports rfc3987_syntax again: see requirements.txt"
