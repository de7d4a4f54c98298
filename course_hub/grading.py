"""nbgrader on the course server: where its folders are, who may do what there, its configuration.

One course (``grading.course_id`` of the settings), laid out by :func:`setup` (``course-grade
setup``, run by ``deploy/install.sh`` as root; idempotent: it never touches what instructors
and students made):

========================================  =======================  ==========================================
folder (settings key, default in paths)   owner:group, mode        who does what
========================================  =======================  ==========================================
``server.exchange_dir``                   root:root 0755           nothing of anyone's but root's
``<exchange>/<course id>``                root:instructors 2775    instructors release (nbgrader's
                                                                   ``groupshared``, so any of them)
``.../outbound``                          root:instructors 2775    released assignments, readable by all
``.../inbound``                           root:instructors 3753    students submit (write, traverse, never
                                                                   list); the sticky bit keeps anyone from
                                                                   renaming or deleting another's entry;
                                                                   instructors list and read
a submission (the student's)              student:instructors      0750 and 0640 (course_hub.nbgrader_plugins
                                                                   .PrivateSubmit): nobody else's to read
``.../feedback``                          root:instructors 2771    instructors release; nobody can list it
a feedback file (an instructor's)         instructor:instructors   0640 and an ACL entry for its student
                                                                   (...PrivateReleaseFeedback); nbgrader
                                                                   names it by a secret of the submission
``server.grading_dir``                    root:root 0711           traverse only
``<grading>/course``                      root:instructors 2770    nbgrader's course directory: sources,
                                                                   releases, submissions, grades and
                                                                   ``gradebook.db`` (0660), the instructors'
``<grading>/sandbox``                     root:root 0711           the sandbox's scratch folders
========================================  =======================  ==========================================

The grading state (``server.grading_dir``) lives beside the hub's state folder, not inside it:
that folder is root's alone (cookie secret, the hub's database), while the instructors' group
must write the gradebook. Students' code is graded in the sandbox (:mod:`course_hub.sandbox`).

Each user's server gets ``JUPYTER_CONFIG_PATH`` pointing at their role's folder in the package
(:data:`course_hub.paths.ROLE_CONFIG`), and the locations in ``DLCOURSE_*`` variables
(:func:`server_environment`); the role's ``nbgrader_config.py`` calls
:func:`configure_nbgrader`. Students get only the Assignments list (``course_hub.assignment_list``,
loaded at first use); instructors get nbgrader's extensions, the formgrader among them.

Command line (``course-grade``)::

    course-grade setup [--seed DIR]        # root: the account, the folders, the gradebook
    course-grade check ASSIGNMENT          # instructors: the reference solution scores full
                                           # marks and the release version zero
"""
import argparse
import grp
import json
import os
import pathlib
import pwd
import shutil
import subprocess
import sys
import tempfile

from . import accounts, paths
from . import settings as course_settings

#: The variables the hub gives users' servers (their terminals and nbgrader inherit them).
ENV_COURSE_ID = "DLCOURSE_COURSE_ID"
ENV_EXCHANGE = "DLCOURSE_EXCHANGE"
ENV_GRADING_COURSE = "DLCOURSE_GRADING_COURSE"
ENV_GRADER_SOCKET = "DLCOURSE_GRADER_SOCKET"
#: The roles, each a folder of paths.ROLE_CONFIG.
STUDENT, INSTRUCTOR = "student", "instructor"
#: The sandbox service's name among the hub's services.
SANDBOX_SERVICE = "grading-sandbox"
#: An instructor's link to the course directory, in their home: the formgrader works only on a
#: course directory inside the server's root (the home), and opens notebooks relative to it.
COURSE_LINK = "course-grading"
#: nbgrader's folders in the exchange's course folder, and their modes (see the module's table).
EXCHANGE_MODES = {"": 0o2775, "outbound": 0o2775, "inbound": 0o3753, "feedback": 0o2771}
#: Modes in the course directory: what root seeds there, and the gradebook.
COURSE_DIR_MODE, COURSE_FILE_MODE = 0o2770, 0o660


class GradingError(RuntimeError):
    """A grading step could not be done; the message says what and why."""


# ---- where things are ----------------------------------------------------------------------------
def locations(settings):
    """The grading locations of these settings: ``course_id``, ``exchange``, ``course`` (nbgrader's
    course directory), ``gradebook``, ``scratch`` and ``socket``."""
    server = settings["server"]
    grading_dir = server["grading_dir"]
    return {
        "course_id": settings["grading"]["course_id"],
        "exchange": server["exchange_dir"],
        "course": grading_dir / paths.GRADING_COURSE,
        "gradebook": grading_dir / paths.GRADING_COURSE / paths.GRADEBOOK,
        "scratch": grading_dir / paths.SANDBOX_SCRATCH,
        "socket": server["grader_socket"],
    }


def role_of(username, instructors_group):
    """``"instructor"`` for a member of the instructors' group, else ``"student"``."""
    return INSTRUCTOR if accounts.is_member(username, instructors_group) else STUDENT


def server_environment(settings):
    """Variables for ``Spawner.environment``: the role's configuration folder (a callable of the
    spawner, which JupyterHub calls for each server) and where the grading folders are."""
    where = locations(settings)
    instructors = settings["groups"]["instructors"]

    def jupyter_config_path(spawner):
        return str(paths.ROLE_CONFIG / role_of(spawner.user.name, instructors))

    return {
        "JUPYTER_CONFIG_PATH": jupyter_config_path,
        ENV_COURSE_ID: where["course_id"],
        ENV_EXCHANGE: str(where["exchange"]),
        ENV_GRADING_COURSE: str(where["course"]),
        ENV_GRADER_SOCKET: str(where["socket"]),
    }


def sandbox_service(settings, python=sys.executable):
    """The hub's service that runs the grading sandbox (root, like the hub)."""
    where = locations(settings)
    grading = settings["grading"]
    return {
        "name": SANDBOX_SERVICE,
        "command": [
            python, "-m", "course_hub.sandbox", "serve",
            "--socket", str(where["socket"]), "--group", settings["groups"]["instructors"],
            "--scratch", str(where["scratch"]), "--sandbox-user", grading["sandbox_user"],
            "--time-limit", str(grading["time_limit_seconds"]), "--memory", str(grading["memory"]),
        ],
    }


def make_instructor_link_hook(course, instructors_group, name=COURSE_LINK):
    """Build a pre-spawn hook that gives an instructor ``~/<name>``, a link to the course
    directory, unless something of that name is there already (it is left alone)."""
    course = str(course)

    async def link_course_directory(spawner):
        username = spawner.user.name
        if not accounts.is_member(username, instructors_group):
            return
        link = pathlib.Path(pwd.getpwnam(username).pw_dir) / name
        if not os.path.lexists(link):
            os.symlink(course, link)  # a link's owner does not matter: the home's owner may remove it
            spawner.log.info("linked %s to the course directory %s", link, course)

    return link_course_directory


def course_root(course, home):
    """The course directory as the instructor's nbgrader should name it: through ``~/course-grading``
    when that links to it (the formgrader needs it inside the home), else the folder itself."""
    link = pathlib.Path(home) / COURSE_LINK
    if link.is_symlink() and os.path.realpath(link) == os.path.realpath(course):
        return str(link)
    return str(course)


# ---- nbgrader's configuration ----------------------------------------------------------------------
def configure_nbgrader(c, role, environ=os.environ):
    """Fill nbgrader's config ``c`` for ``role``: what a role's ``nbgrader_config.py`` does.

    The locations come from the variables the hub sets (:func:`server_environment`), or, outside
    a hub's server (root's shell), from this server's settings.
    """
    if role not in (STUDENT, INSTRUCTOR):
        raise ValueError(f"role: expected {STUDENT!r} or {INSTRUCTOR!r}, got {role!r}")
    if ENV_EXCHANGE in environ:
        where = {"course_id": environ[ENV_COURSE_ID], "exchange": environ[ENV_EXCHANGE],
                 "course": environ.get(ENV_GRADING_COURSE, ""), "socket": environ.get(ENV_GRADER_SOCKET, "")}
    else:
        where = locations(course_settings.for_this_server())
    c.CourseDirectory.course_id = where["course_id"]
    c.Exchange.root = str(where["exchange"])
    # Several instructors share the course directory and the exchange's folders, which belong
    # to root and their group; nbgrader's groupshared mode keeps what it writes group-writable
    # and does not insist that each user own the folders (or that the exchange be world-writable).
    c.CourseDirectory.groupshared = True
    c.ExchangeFactory.submit = "course_hub.nbgrader_plugins.PrivateSubmit"
    c.ExchangeFactory.collect = "course_hub.nbgrader_plugins.CheckedCollect"
    c.ExchangeFactory.release_feedback = "course_hub.nbgrader_plugins.PrivateReleaseFeedback"
    if role == INSTRUCTOR:
        from nbgrader.converters import Autograde
        from nbgrader.preprocessors import Execute

        from .nbgrader_plugins import SandboxedExecute

        c.CourseDirectory.root = course_root(where["course"], environ.get("HOME", os.path.expanduser("~")))
        c.Autograde.autograde_preprocessors = [
            SandboxedExecute if step is Execute else step
            for step in Autograde.class_traits()["autograde_preprocessors"].default()]
        c.SandboxedExecute.socket = str(where["socket"])
        # No limit per cell of nbgrader's own (30 s): the sandbox's limit per notebook
        # (grading.time_limit_seconds) bounds every cell.
        c.Execute.timeout = None
        # Submissions' outputs are shown in the formgrader and in feedback: no scripts of theirs.
        c.HTMLExporter.sanitize_html = True


# ---- setting up (root) ------------------------------------------------------------------------------
def ensure_sandbox_account(name, course_groups):
    """Create the sandbox account (system, no home, no shell, no password) if missing.

    Raises
    ------
    GradingError
        If an account of that name exists and is root or in a course group.
    """
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
                        "--shell", "/usr/sbin/nologin", "--comment", "runs students' code while it is graded", name],
                       check=True, capture_output=True)
        return True
    if entry.pw_uid == 0 or accounts.member_groups(name, course_groups):
        raise GradingError(f"grading.sandbox_user: {name!r} is root or in a course group; the sandbox "
                           f"account must be an account of its own")
    return False


def _place(path, mode, gid, uid=0):
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, uid, gid)
    os.chmod(path, mode)


def seed_sources(seed, course, gid):
    """Copy the assignments of ``seed`` (``<name>/`` folders) that the course does not have yet
    into ``<course>/source``; instructors' edits are never overwritten. Returns the names copied."""
    seed = pathlib.Path(seed)
    if not seed.is_dir():
        raise GradingError(f"seed: expected a folder of assignments (<name>/<name>.ipynb), got {str(seed)!r}")
    source = course / "source"
    _place(source, COURSE_DIR_MODE, gid)
    copied = []
    for assignment in sorted(p for p in seed.iterdir() if p.is_dir() and not p.name.startswith(".")):
        target = source / assignment.name
        if target.exists():
            continue
        shutil.copytree(assignment, target, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        for root, dirs, files in os.walk(target):
            os.chown(root, 0, gid)
            os.chmod(root, COURSE_DIR_MODE)
            for name in files:
                os.chown(os.path.join(root, name), 0, gid)
                os.chmod(os.path.join(root, name), COURSE_FILE_MODE)
        copied.append(assignment.name)
    return copied


def setup(settings, seed=None):
    """The install step: the sandbox account, the exchange, the course directory, the gradebook.

    Parameters
    ----------
    settings : dict
        This server's settings (course_hub.settings).
    seed : str or pathlib.Path, optional
        A folder of assignments in nbgrader's source layout, copied in where missing.

    Returns
    -------
    dict
        ``account_created`` (bool), ``seeded`` (assignment names), ``gradebook_created`` (bool).
    """
    groups = settings["groups"]
    accounts.ensure_groups([groups["students"], groups["instructors"]])
    gid = grp.getgrnam(groups["instructors"]).gr_gid
    where = locations(settings)
    made = ensure_sandbox_account(settings["grading"]["sandbox_user"], [groups["students"], groups["instructors"]])
    _place(where["exchange"], 0o755, 0)
    for name, mode in EXCHANGE_MODES.items():
        _place(where["exchange"] / where["course_id"] / name, mode, gid)
    _place(where["course"].parent, 0o711, 0)
    _place(where["course"], COURSE_DIR_MODE, gid)
    _place(where["scratch"], 0o711, 0)
    seeded = seed_sources(seed, where["course"], gid) if seed is not None else []
    created = not where["gradebook"].exists()
    if created:
        from nbgrader.api import Gradebook

        with_alembic_on_path(os.environ)
        with Gradebook(f"sqlite:///{where['gradebook']}", where["course_id"]):
            pass
    os.chown(where["gradebook"], 0, gid)
    os.chmod(where["gradebook"], COURSE_FILE_MODE)
    return {"account_created": made, "seeded": seeded, "gradebook_created": created}


# ---- checking an assignment (instructors) ----------------------------------------------------------
def with_alembic_on_path(env):
    """Put this interpreter's ``bin`` first on ``env["PATH"]`` and return ``env``: nbgrader runs
    the gradebook's migrations with the ``alembic`` script of its environment, found on PATH."""
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    return env


def nbgrader(*args, cwd=None):
    """Run ``nbgrader ARGS`` with this interpreter; return the CompletedProcess (output captured)."""
    env = with_alembic_on_path(dict(os.environ))
    return subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=cwd, env=env, capture_output=True, text=True)


def check_assignment(assignment, course, log=print):
    """Grade the reference solution and the release version of ``assignment`` in a scratch copy
    of the course (the gradebook is not touched), through the sandbox as autograding does.

    Returns
    -------
    dict
        ``{"reference": {cell: (score, max)}, "release": {...}}``.

    Raises
    ------
    GradingError
        If the assignment is missing or nbgrader fails.
    """
    from nbgrader.api import Gradebook

    source = pathlib.Path(course) / "source" / assignment
    if not source.is_dir():
        known = sorted(p.name for p in (pathlib.Path(course) / "source").glob("*") if p.is_dir())
        raise GradingError(f"assignment: no folder {source}; the course's assignments are {known}")
    with tempfile.TemporaryDirectory(prefix=f"course-grade-check-{assignment}-") as scratch:
        root = pathlib.Path(scratch)
        shutil.copytree(source, root / "source" / assignment)
        on_root = [f"--CourseDirectory.root={root}"]
        _nbgrader_or_fail(["generate_assignment", assignment, "--force", *on_root], "generate_assignment")
        versions = {"reference": root / "source" / assignment, "release": root / "release" / assignment}
        for student, folder in versions.items():
            shutil.copytree(folder, root / "submitted" / student / assignment)
        log(f"course-grade check: autograding the reference solution and the release version of {assignment} "
            f"in the sandbox")
        _nbgrader_or_fail(["autograde", assignment, *on_root], "autograde")
        scores = {}
        with Gradebook(f"sqlite:///{root / paths.GRADEBOOK}") as gradebook:
            for student in versions:
                submission = gradebook.find_submission(assignment, student)
                scores[student] = {grade.cell.name: (grade.auto_score, grade.max_score)
                                   for notebook in submission.notebooks for grade in notebook.grades}
    return scores


def _nbgrader_or_fail(args, what):
    result = nbgrader(*args)
    if result.returncode != 0:
        raise GradingError(f"nbgrader {what} failed:\n{(result.stdout + result.stderr)[-4000:]}")
    return result


def verdict(scores):
    """Problems of a check: reference cells short of full marks, release cells above zero."""
    problems = [f"reference: {cell} scored {score} of {top}" for cell, (score, top) in scores["reference"].items()
                if score != top]
    problems += [f"release: {cell} scored {score} of {top}" for cell, (score, top) in scores["release"].items()
                 if score]
    return problems


def main(argv=None):
    """Command line ``course-grade``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="course-grade", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    setup_parser = commands.add_parser("setup", help="root: the sandbox account, the folders, the gradebook")
    setup_parser.add_argument("--seed", default=None, help="assignments (nbgrader's source layout) to add if missing")
    check_parser = commands.add_parser("check", help="reference solution full marks, release version zero")
    check_parser.add_argument("assignment")
    check_parser.add_argument("--json", action="store_true", help="print the scores as JSON")
    args = parser.parse_args(argv)
    try:
        settings = course_settings.for_this_server()
        if args.command == "setup":
            if os.geteuid() != 0:
                raise GradingError("setup: run as root (it creates an account and root-owned folders)")
            done = setup(settings, seed=args.seed)
            where = locations(settings)
            print(f"course-grade: exchange {where['exchange']}, course directory {where['course']}, "
                  f"gradebook {where['gradebook']}" + (" (created)" if done["gradebook_created"] else "")
                  + f"; sandbox account {settings['grading']['sandbox_user']}"
                  + (" (created)" if done["account_created"] else ""))
            for name in done["seeded"]:
                print(f"course-grade: added the assignment {name} to the course's sources")
            return 0
        course = os.environ.get(ENV_GRADING_COURSE) or str(locations(settings)["course"])
        scores = check_assignment(args.assignment, course)
    except (GradingError, course_settings.SettingsError, OSError, subprocess.CalledProcessError) as exc:
        print(f"course-grade: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(scores))
    else:
        for student, cells in scores.items():
            total = sum(score for score, _ in cells.values())
            print(f"{student:<10} {total:g} of {sum(top for _, top in cells.values()):g} points: "
                  + ", ".join(f"{cell} {score:g}/{top:g}" for cell, (score, top) in sorted(cells.items())))
    problems = verdict(scores)
    for problem in problems:
        print(f"course-grade check: {problem}", file=sys.stderr)
    print(f"course-grade check: {args.assignment} " + ("passes" if not problems else "FAILS"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
