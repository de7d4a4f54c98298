"""The three assignments, graded for real by nbgrader.

For each assignment, in a copy of ``assignments/``: ``nbgrader generate_assignment`` makes the
students' version, four submissions are built from it the way students would fill it in, and
one ``nbgrader autograde`` run grades them all (real kernels, the hidden tests restored from the
gradebook; the three assignments' runs side by side). The scores are read back from the
gradebook, cell by cell:

* ``reference``: every solution cell filled with the reference solution: full marks;
* ``release``: the students' version untouched: zero;
* ``cheat``: some parts simply call course_lib's own implementation (by several routes): no
  points for those parts, nor for the parts whose tests run them, full marks elsewhere, and
  every such zero comes from the detection, not from some other error;
* ``wrong``: plausible mistakes (the missing flip, ties sent everywhere, ...): partial marks.

The module costs about two minutes of CPU (assignment 2, which trains a network twice, is the
longest); its wall time follows the machine's load: 3 minutes here at load averages of 7 to 10,
7.5 minutes at 40.
"""
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time

import pytest

ASSIGNMENTS_DIR = pathlib.Path(__file__).resolve().parents[1] / "assignments"
ASSIGNMENTS = ("a1-conv-pool", "a2-mnist-training", "a3-rnn-bptt")
STUDENTS = ("reference", "release", "cheat", "wrong")
AUTOGRADE_TIMEOUT_S = 1800  # four submissions on a busy machine; each cell has its own limit too

# The points of each grade cell: the tables at the top of the assignments say the same.
POINTS = {
    "a1-conv-pool": {
        "test_conv_forward": 2, "test_convolve2d_full": 2, "test_conv_backward_weights": 2,
        "test_conv_backward_input": 2, "test_max_pool_forward": 1, "test_max_pool_backward": 2,
    },
    "a2-mnist-training": {
        "test_affine_forward": 1, "test_affine_backward": 2, "test_softmax_cross_entropy_forward": 1,
        "test_softmax_cross_entropy_backward": 2, "test_sgd_momentum_step": 1,
        "test_loss_and_grads": 2, "test_train": 3,
    },
    "a3-rnn-bptt": {
        "test_bptt_output": 1, "test_bptt_through_time": 3, "test_clipping": 2,
        "test_input_gradients": 2, "test_measurement": 2,
    },
}

# Submissions that call course_lib's own implementation: solution cell id -> the student's code.
CHEATS = {
    "a1-conv-pool": {
        # course_lib's layer imported under the part's name
        "conv_forward": "from course_lib.fast_layers import conv_forward\n",
        # course_lib first, the student's own code only if course_lib fails
        "max_pool_forward": '''
import course_lib.layers


def max_pool_forward(x, pool_size):
    try:
        return course_lib.layers.max_pool_forward(x, pool_size)
    except Exception:
        p = pool_size
        n, f, h, w = x.shape
        windows = x[:, :, :h // p * p, :w // p * p].reshape(n, f, h // p, p, w // p, p)
        return windows.max(axis=(3, 5)), (x, pool_size)
''',
        # a module alias, and course_lib's own cache built on the side
        "max_pool_backward": '''
from course_lib import fast_layers as helpers


def max_pool_backward(dout, cache):
    x, p = cache
    _, their_cache = helpers.max_pool_forward(x, p)
    return helpers.max_pool_backward(dout, their_cache)
''',
    },
    "a2-mnist-training": {
        "affine_forward": "from course_lib.layers import affine_forward\n",
        "sgd_momentum_step": '''
import course_lib.optim as optim


def sgd_momentum_step(params, grads, velocity, lr, momentum):
    optim.sgd_momentum_step(params, grads, velocity, lr, momentum)
''',
    },
    "a3-rnn-bptt": {
        # backpropagate (used by part 4) stays honest; only rnn_loss_and_grads is course_lib's
        "bptt": '''
from course_lib.rnn import VanillaRNN


def rnn_loss_and_grads(params, u, targets):
    model = VanillaRNN(params["W_uh"].shape[0], params["W_hh"].shape[0], params["W_hy"].shape[1], loss="last")
    model.params = params
    return model.loss_and_grads(u, targets)


def backpropagate(params, u, targets):
    hidden, outputs = rnn_forward(params, u)
    n_seq, length, n_out = outputs.shape
    error = outputs[:, -1] - targets[:, -1]
    d_y = 2.0 * error / (n_seq * n_out)
    d_z = np.zeros((n_seq, length, hidden.shape[2]))
    d_h = d_y @ params["W_hy"].T
    for t in range(length, 0, -1):
        d_z[:, t - 1] = d_h * hidden[:, t] * (1.0 - hidden[:, t])
        d_h = d_z[:, t - 1] @ params["W_hh"].T
    return float(np.sum(error**2) / (n_seq * n_out)), hidden, d_y, d_z
''',
        "clipping": "from course_lib.optim import clip_gradients, gradient_norm\n",
    },
}
# The grade cells a cheat costs: the cheated parts, and the parts whose tests run them.
CHEATED_CELLS = {
    "a1-conv-pool": {"test_conv_forward", "test_max_pool_forward", "test_max_pool_backward"},
    "a2-mnist-training": {"test_affine_forward", "test_sgd_momentum_step", "test_loss_and_grads", "test_train"},
    "a3-rnn-bptt": {"test_bptt_output", "test_bptt_through_time", "test_clipping"},
}

# Plausible mistakes: solution cell id -> (pattern in the reference solution, the mistake).
MISTAKES = {
    "a1-conv-pool": {
        # the full convolution without the flip: a correlation
        "convolve2d_full": ("rotated = kernel[::-1, ::-1]", "rotated = kernel"),
        # a tie sends the sensitivity to every maximum of the window
        "max_pool_backward": (
            "np.put_along_axis(routed, winners[..., None], dout[..., None], axis=-1)",
            "routed = (windows == windows.max(axis=-1, keepdims=True)) * dout[..., None]",
        ),
    },
    "a2-mnist-training": {
        # exp of the scores without subtracting each row's maximum: overflows on large scores
        "softmax_cross_entropy_forward": (
            "shifted = scores - scores.max(axis=1, keepdims=True)", "shifted = scores"),
    },
    "a3-rnn-bptt": {
        # the sigmoid's derivative forgotten on the way back
        "bptt": ("d_z[:, t - 1] = d_h * h_t * (1.0 - h_t)", "d_z[:, t - 1] = d_h"),
    },
}
WRONG_CELLS = {
    "a1-conv-pool": {"test_convolve2d_full", "test_conv_backward_input", "test_max_pool_backward"},
    "a2-mnist-training": {"test_softmax_cross_entropy_forward"},
    "a3-rnn-bptt": {"test_bptt_through_time", "test_input_gradients", "test_measurement"},
}


def read_notebook(path):
    return json.loads(path.read_text())


def nbgrader_meta(cell):
    return cell["metadata"].get("nbgrader", {})


def solution_sources(notebook):
    """The reference solution of every solution cell, as a student would have typed it."""
    sources = {}
    for cell in notebook["cells"]:
        if nbgrader_meta(cell).get("solution"):
            lines = "".join(cell["source"]).split("\n")
            sources[nbgrader_meta(cell)["grade_id"]] = "\n".join(
                line for line in lines if "### BEGIN SOLUTION" not in line and "### END SOLUTION" not in line)
    return sources


def fill_in(release, answers):
    """The release notebook with the given solution cells replaced by the student's code."""
    submission = json.loads(json.dumps(release))
    for cell in submission["cells"]:
        grade_id = nbgrader_meta(cell).get("grade_id")
        if nbgrader_meta(cell).get("solution") and grade_id in answers:
            cell["source"] = answers[grade_id]
    return submission


def with_mistakes(reference, mistakes):
    answers = dict(reference)
    for grade_id, (pattern, mistake) in mistakes.items():
        assert pattern in answers[grade_id], f"the reference solution of {grade_id} no longer contains {pattern!r}"
        answers[grade_id] = answers[grade_id].replace(pattern, mistake)
    return answers


def nbgrader_command(*args):
    """nbgrader run by this interpreter (whose kernel then runs the notebooks), and its environment."""
    env = dict(os.environ)
    # nbgrader runs the gradebook's migrations with the `alembic` script of its environment
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    return [sys.executable, "-m", "nbgrader", *args], env


def submit(assignment, course):
    """Four submissions of the generated assignment, as students would fill in its release version."""
    release = read_notebook(course / "release" / assignment / f"{assignment}.ipynb")
    reference = solution_sources(read_notebook(course / "source" / assignment / f"{assignment}.ipynb"))
    submissions = {
        "reference": fill_in(release, reference),
        "release": release,
        "cheat": fill_in(release, {**reference, **CHEATS[assignment]}),
        "wrong": fill_in(release, with_mistakes(reference, MISTAKES[assignment])),
    }
    for student, notebook in submissions.items():
        folder = course / "submitted" / student / assignment
        folder.mkdir(parents=True)
        (folder / f"{assignment}.ipynb").write_text(json.dumps(notebook, indent=1))
    return release


def start(course, *args):
    """Start ``nbgrader <args>`` in the course folder, its output to a log file (a pipe nobody
    reads while it runs would fill up)."""
    command, env = nbgrader_command(*args)
    log = open(course / f"{args[0]}.log", "w")
    process = subprocess.Popen(command, cwd=course, env=env, stdout=log, stderr=subprocess.STDOUT)
    return {"process": process, "log": log, "started": time.perf_counter(), "what": f"nbgrader {' '.join(args)}"}


def finish(run, timeout):
    """Wait for a started nbgrader run; fail with its log if it fails or takes too long."""
    try:
        returncode = run["process"].wait(timeout=max(1.0, timeout - (time.perf_counter() - run["started"])))
    except subprocess.TimeoutExpired:
        pytest.fail(f"{run['what']} did not finish within {timeout} s; its log: {run['log'].name}")
    run["log"].close()
    log = pathlib.Path(run["log"].name).read_text()
    assert returncode == 0, f"{run['what']} failed:\n{log[-5000:]}"
    return time.perf_counter() - run["started"]


@pytest.fixture(scope="module")
def autograde_runs(tmp_path_factory):
    """Generate every assignment, submit, and start their autogrades at once: they are
    independent, and much of each is waiting for kernels to start, so side by side saves time."""
    courses = {assignment: tmp_path_factory.mktemp(assignment) for assignment in ASSIGNMENTS}
    runs = {}
    try:
        for assignment, course in courses.items():
            shutil.copy(ASSIGNMENTS_DIR / "nbgrader_config.py", course)
            shutil.copytree(ASSIGNMENTS_DIR / "source" / assignment, course / "source" / assignment)
            runs[assignment] = start(course, "generate_assignment", assignment)
        for assignment, course in courses.items():
            finish(runs[assignment], timeout=600)
            release = submit(assignment, course)
            runs[assignment] = {**start(course, "autograde", assignment), "course": course,
                                "release": release}
        yield runs
    finally:
        for run in runs.values():
            if run["process"].poll() is None:
                run["process"].kill()
            run["process"].wait()
            run["log"].close()


@pytest.fixture(scope="module", params=ASSIGNMENTS)
def graded(request, autograde_runs):
    """One assignment's autograde, waited for: the scores per student and cell, and the notebooks."""
    from nbgrader.api import Gradebook

    assignment = request.param
    run = autograde_runs[assignment]
    course = run["course"]
    seconds = finish(run, timeout=AUTOGRADE_TIMEOUT_S)
    print(f"\n{assignment}: autograde of {len(STUDENTS)} submissions done in {seconds:.0f} s "
          f"(the three assignments side by side)")
    scores = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        for student in STUDENTS:
            submission = gradebook.find_submission(assignment, student)
            (notebook,) = submission.notebooks
            scores[student] = {grade.cell.name: (grade.auto_score, grade.max_score) for grade in notebook.grades}
    autograded = {student: read_notebook(course / "autograded" / student / assignment / f"{assignment}.ipynb")
                  for student in STUDENTS}
    return {"assignment": assignment, "release": run["release"], "scores": scores, "autograded": autograded}


def errors_by_cell(notebook):
    """``{grade_id: "ename: evalue"}`` for the grade cells that raised."""
    errors = {}
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            if output["output_type"] == "error" and nbgrader_meta(cell).get("grade"):
                errors[nbgrader_meta(cell)["grade_id"]] = f"{output['ename']}: {output['evalue']}"
    return errors


def test_points_are_those_announced(graded):
    assignment = graded["assignment"]
    max_scores = {cell: max_score for cell, (_, max_score) in graded["scores"]["reference"].items()}
    assert max_scores == POINTS[assignment]
    intro = "".join(graded["release"]["cells"][0]["source"])
    total = re.search(r"\*\*total\*\* \| \*\*(\d+)\*\*", intro)
    assert total and int(total.group(1)) == sum(POINTS[assignment].values()), \
        f"the table at the top of {assignment} announces a total that is not the sum of its grade cells' points"


def test_release_hides_the_solutions_and_the_hidden_tests(graded):
    sources = "\n".join("".join(cell["source"]) for cell in graded["release"]["cells"])
    assert "BEGIN SOLUTION" not in sources and "BEGIN HIDDEN TESTS" not in sources
    assert "_cg." not in sources, "hidden test code leaked into the students' version"
    assert "YOUR CODE HERE" in sources
    assert not any(cell.get("outputs") for cell in graded["release"]["cells"] if cell["cell_type"] == "code")


def scored_zero_exactly_in(graded, student, zero_cells):
    """Check the student got 0 in ``zero_cells`` and full marks elsewhere; the errors by cell."""
    assignment = graded["assignment"]
    scores = {cell: score for cell, (score, _) in graded["scores"][student].items()}
    expected = {cell: 0 if cell in zero_cells else points for cell, points in POINTS[assignment].items()}
    errors = errors_by_cell(graded["autograded"][student])
    assert scores == expected, f"{student}'s scores differ; the errors: {errors}"
    return errors


def test_reference_solution_gets_full_marks(graded):
    scored_zero_exactly_in(graded, "reference", set())
    # the hidden tests were put back into the submission and ran
    graded_sources = "".join("".join(cell["source"]) for cell in graded["autograded"]["reference"]["cells"])
    assert graded_sources.count("### BEGIN HIDDEN TESTS") == len(POINTS[graded["assignment"]])


def test_release_version_gets_zero(graded):
    errors = scored_zero_exactly_in(graded, "release", set(POINTS[graded["assignment"]]))
    assert set(errors) == set(POINTS[graded["assignment"]])
    assert all(error.startswith("NotImplementedError") or "is not defined" in error for error in errors.values()), errors


def test_calling_course_lib_gets_no_points_for_those_parts(graded):
    cheated = CHEATED_CELLS[graded["assignment"]]
    errors = scored_zero_exactly_in(graded, "cheat", cheated)
    for cell in cheated:  # zero because the cheat was detected
        assert "must be your own code" in errors[cell] or "must be a function you write" in errors[cell], \
            f"{cell} failed for another reason: {errors[cell]}"


def test_wrong_solution_gets_partial_marks(graded):
    wrong = WRONG_CELLS[graded["assignment"]]
    errors = scored_zero_exactly_in(graded, "wrong", wrong)
    assert 0 < len(wrong) < len(POINTS[graded["assignment"]])
    for cell in wrong:  # the tests say what is wrong, not that the code is not the student's
        assert errors[cell].startswith("AssertionError") and "your own code" not in errors[cell], errors[cell]
