"""Tests of course_lib.rnn: the teacher's random stream, BPTT against centred differences,
the readable trainer against a hand-written loop in the original's momentum convention, the
fast stacked trainer against the readable one, and the checks made once per call."""
import numpy as np
import pytest

from course_lib import rnn
from course_lib.gradcheck import gradient_check
from course_lib.optim import clip_gradients, clip_scale, gradient_norm
from course_lib.rnn import (
    PARAM_NAMES,
    SIGMOID_GAMMA,
    RNNGenerator,
    VanillaRNN,
    jacobian_norms,
    sigmoid,
    train,
    train_many,
)


def random_student(seed=0, loss="last", n_in=3, n_hidden=2, n_out=1, scale=0.8):
    """A student with weights large enough for every gradient entry to matter."""
    model = VanillaRNN(n_in, n_hidden, n_out, loss=loss)
    rng = np.random.default_rng(seed)
    for name, value in model.params.items():
        model.params[name] = rng.normal(scale=scale, size=value.shape)
    return model


# -- the teacher ---------------------------------------------------------------------------------
def test_generator_draws_in_the_legacy_global_order_without_touching_global_state():
    np.random.seed(7)
    state_before = np.random.get_state()[1].copy()
    generator = RNNGenerator(n_in=3, n_out=2, n_hidden=4, seed=19910715)
    inputs, _ = generator.inputs_outputs(5, 6)
    # The global stream is untouched...
    assert np.array_equal(np.random.get_state()[1], state_before)
    # ...and the generator's numbers are those the legacy global RNG gives after seeding.
    np.random.seed(19910715)
    expected = {
        "W_hh": np.random.randn(4, 4),
        "b_hh": np.random.randn(4),
        "W_hi": np.random.randn(4, 3),
        "W_yh": np.random.randn(2, 4),
        "b_yh": np.random.randn(2),
    }
    expected_inputs = np.random.randn(5, 6, 3)
    weights = generator.weights()
    assert list(weights) == ["W_hh", "b_hh", "W_hi", "W_yh", "b_yh"]
    for name, value in expected.items():
        assert np.array_equal(weights[name], value), name
    assert np.array_equal(inputs, expected_inputs)


def test_generator_default_sizes_and_shapes():
    generator = RNNGenerator()
    weights = generator.weights()
    assert weights["W_hh"].shape == (2, 2) and weights["W_hi"].shape == (2, 3)
    assert weights["W_yh"].shape == (1, 2) and weights["b_yh"].shape == (1,)
    inputs, outputs = generator.inputs_outputs(7, 4)
    assert inputs.shape == (7, 4, 3) and outputs.shape == (7, 4, 1)
    assert inputs.dtype == np.float64 and outputs.dtype == np.float64


def test_generator_weights_are_copies():
    generator = RNNGenerator()
    generator.weights()["W_hh"][:] = 0.0
    assert np.any(generator.weights()["W_hh"] != 0.0)


def test_generator_runs_the_column_vector_recurrence():
    generator = RNNGenerator(n_in=3, n_out=2, n_hidden=3, sigma_max=2.5, seed=3)
    inputs, outputs = generator.inputs_outputs(4, 5)
    hidden, run_outputs = generator.run(inputs)
    assert hidden.shape == (4, 6, 3) and np.array_equal(run_outputs, outputs)
    assert np.array_equal(hidden[:, 0], np.zeros((4, 3)))  # h_0, as VanillaRNN.forward gives it
    w = generator.weights()
    for n in range(4):
        h = np.zeros(3)
        for t in range(5):
            h = 1.0 / (1.0 + np.exp(-(w["W_hh"] @ h + w["W_hi"] @ inputs[n, t] + w["b_hh"])))
            np.testing.assert_allclose(hidden[n, t + 1], h, rtol=1e-13)
            np.testing.assert_allclose(outputs[n, t], w["W_yh"] @ h + w["b_yh"], rtol=1e-13)


def test_teacher_states_feed_jacobian_norms_as_the_students_do():
    # A student with the teacher's weights (row convention) has the teacher's states.
    teacher = RNNGenerator(sigma_max=6.0)
    w = teacher.weights()
    student = VanillaRNN(3, 2, 1)
    student.params = {"W_uh": w["W_hi"].T, "W_hh": w["W_hh"].T, "W_hy": w["W_yh"].T,
                      "b_hh": w["b_hh"], "b_hy": w["b_yh"]}
    inputs, _ = teacher.inputs_outputs(3, 7)
    teacher_hidden, teacher_outputs = teacher.run(inputs)
    student_hidden, student_outputs = student.forward(inputs)
    np.testing.assert_allclose(teacher_hidden, student_hidden, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(teacher_outputs, student_outputs, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(jacobian_norms(w["W_hh"].T, teacher_hidden),
                               jacobian_norms(w["W_hh"].T, student_hidden), rtol=1e-12)


def test_generator_run_rejects_bad_inputs():
    with pytest.raises(ValueError, match=r"inputs must have shape \(N, N, 3\), got \(2, 4, 2\)"):
        RNNGenerator().run(np.zeros((2, 4, 2)))


@pytest.mark.parametrize("sigma_max", [1.5, 4.0, 12.0])
def test_sigma_max_replaces_only_the_largest_singular_value(sigma_max):
    original = RNNGenerator(n_hidden=3).weights()["W_hh"]
    crafted = RNNGenerator(n_hidden=3, sigma_max=sigma_max).weights()["W_hh"]
    U0, s0, Vt0 = np.linalg.svd(original)
    U1, s1, Vt1 = np.linalg.svd(crafted)
    np.testing.assert_allclose(s1, np.sort(np.r_[sigma_max, s0[1:]])[::-1], rtol=1e-12)
    # The singular vectors of the largest value are kept (up to sign).
    np.testing.assert_allclose(np.abs(U1[:, 0] @ U0[:, 0]), 1.0, rtol=1e-12)
    np.testing.assert_allclose(np.abs(Vt1[0] @ Vt0[0]), 1.0, rtol=1e-12)


def test_other_weights_do_not_depend_on_sigma_max():
    plain, crafted = RNNGenerator().weights(), RNNGenerator(sigma_max=10.0).weights()
    for name in ("b_hh", "W_hi", "W_yh", "b_yh"):
        assert np.array_equal(plain[name], crafted[name])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"sigma_max": -1.0}, "sigma_max must be > 0"),
        ({"sigma_max": 0.0}, "sigma_max must be > 0"),
        ({"sigma_max": float("nan")}, "sigma_max must be a finite number"),
        ({"sigma_max": 0.01}, r"sigma_max must be >= the second singular value"),
        ({"n_hidden": 0}, "n_hidden must be an integer >= 1, got 0"),
        ({"n_in": 2.5}, "n_in must be an integer >= 1"),
        ({"seed": -1}, "seed must be an integer >= 0, got -1"),
    ],
)
def test_generator_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RNNGenerator(**kwargs)


@pytest.mark.parametrize(
    "n_seq, seq_len, message",
    [(0, 5, "n_seq must be an integer >= 1, got 0"), (3, 0, "seq_len must be an integer >= 1, got 0"),
     (3, -2, "seq_len must be an integer >= 1, got -2")],
)
def test_generator_rejects_bad_sizes(n_seq, seq_len, message):
    with pytest.raises(ValueError, match=message):
        RNNGenerator().inputs_outputs(n_seq, seq_len)


# -- the student -----------------------------------------------------------------------------------
def test_student_initial_weights_follow_the_seeded_order():
    model = VanillaRNN(3, 4, 2, seed=99)
    rng = np.random.RandomState(99)
    for name, shape in (("W_uh", (3, 4)), ("W_hh", (4, 4)), ("W_hy", (4, 2))):
        assert np.array_equal(model.params[name], rng.normal(scale=0.01, size=shape)), name
    assert np.array_equal(model.params["b_hh"], np.zeros(4))
    assert np.array_equal(model.params["b_hy"], np.zeros(2))
    assert tuple(model.params) == PARAM_NAMES


def test_hyperparameters_rebuild_an_identical_model():
    model = random_student(seed=5, loss="all")
    copy = VanillaRNN(**model.hyperparameters)
    assert copy.hyperparameters == model.hyperparameters == {
        "n_in": 3, "n_hidden": 2, "n_out": 1, "seed": 1234, "loss": "all"}
    for name, value in model.params.items():
        copy.params[name] = value.copy()
    inputs = np.random.default_rng(0).normal(size=(4, 6, 3))
    assert np.array_equal(copy.predict(inputs), model.predict(inputs))


def test_student_forward_is_the_row_vector_recurrence():
    model = random_student(seed=1, n_hidden=3, n_out=2)
    inputs = np.random.default_rng(1).normal(size=(2, 4, 3))
    hidden, outputs = model.forward(inputs)
    p = model.params
    assert hidden.shape == (2, 5, 3) and outputs.shape == (2, 4, 2)
    for n in range(2):
        h = np.zeros(3)
        for t in range(4):
            h = 1.0 / (1.0 + np.exp(-(h @ p["W_hh"] + inputs[n, t] @ p["W_uh"] + p["b_hh"])))
            np.testing.assert_allclose(hidden[n, t + 1], h, rtol=1e-13)
            np.testing.assert_allclose(outputs[n, t], h @ p["W_hy"] + p["b_hy"], rtol=1e-13)


def test_cost_is_the_mean_squared_error_of_the_last_step_or_of_all_steps():
    rng = np.random.default_rng(2)
    inputs, targets = rng.normal(size=(5, 3, 3)), rng.normal(size=(5, 3, 1))
    last, every = random_student(loss="last"), random_student(loss="all")
    outputs = last.predict(inputs)
    assert last.cost(inputs, targets) == pytest.approx(np.mean((outputs[:, -1] - targets[:, -1]) ** 2))
    assert every.cost(inputs, targets) == pytest.approx(np.mean((outputs - targets) ** 2))


@pytest.mark.parametrize("loss", ["last", "all"])
@pytest.mark.parametrize("length", [1, 2, 10, 100])
def test_bptt_matches_centred_differences(length, loss):
    model = random_student(seed=length, loss=loss, n_hidden=3, n_out=2)
    rng = np.random.default_rng(length)
    inputs, targets = rng.normal(size=(4, length, 3)), rng.normal(size=(4, length, 2))
    cost, grads = model.loss_and_grads(inputs, targets)
    assert cost == pytest.approx(model.cost(inputs, targets), rel=1e-15)
    assert set(grads) == set(PARAM_NAMES)
    for name in PARAM_NAMES:
        assert grads[name].shape == model.params[name].shape
        error = gradient_check(lambda _: model.cost(inputs, targets), model.params[name], grads[name])
        assert error < 1e-7, (name, error)


def test_bptt_reaches_the_first_step_of_a_long_sequence():
    # A gradient check where late steps dominate would not notice a truncated BPTT. Here
    # only the first input is non-zero and the recurrence sits at the fixed point h = 1/2
    # with W_hh = 4 I, b_hh = -2, where dh_t/dh_{t-1} = diag(1/4) 4 I = I: the first step's
    # influence reaches the last output undamped, and it is the only way W_uh matters.
    model = VanillaRNN(3, 2, 1, seed=3)
    model.params["W_hh"] = 4.0 * np.eye(2)
    model.params["b_hh"] = np.full(2, -2.0)
    model.params["W_hy"] = np.array([[1.0], [-2.0]])
    rng = np.random.default_rng(3)
    inputs = np.zeros((3, 30, 3))
    inputs[:, 0] = rng.normal(size=(3, 3))
    targets = rng.normal(size=(3, 30, 1))
    cost, grads = model.loss_and_grads(inputs, targets)
    assert np.abs(grads["W_uh"]).max() > 1e-4
    error = gradient_check(lambda _: model.cost(inputs, targets), model.params["W_uh"], grads["W_uh"])
    assert error < 1e-7


def test_loss_and_grads_rejects_bad_input():
    model = VanillaRNN(3, 2, 1)
    good_x, good_y = np.zeros((2, 4, 3)), np.zeros((2, 4, 1))
    cases = [
        (np.zeros((2, 4)), good_y, r"inputs must have shape \(N, N, 3\), got \(2, 4\)"),
        (np.zeros((2, 4, 2)), good_y, r"inputs must have shape \(N, N, 3\), got \(2, 4, 2\)"),
        (good_x, np.zeros((2, 4, 2)), r"targets must have shape \(2, 4, 1\), got \(2, 4, 2\)"),
        (good_x, np.zeros((2, 3, 1)), r"targets must have shape \(2, 4, 1\), got \(2, 3, 1\)"),
        (np.zeros((2, 0, 3)), np.zeros((2, 0, 1)), r"inputs must have a sequence length >= 1, got shape \(2, 0, 3\)"),
        (np.zeros((0, 4, 3)), np.zeros((0, 4, 1)), r"inputs must hold at least 1 sequence"),
        (np.full((2, 4, 3), np.nan), good_y, "inputs contains NaN or infinite values"),
        (good_x, np.full((2, 4, 1), np.inf), "targets contains NaN or infinite values"),
        (np.full((2, 4, 3), "a"), good_y, "inputs must be a numeric array"),
    ]
    for inputs, targets, message in cases:
        with pytest.raises(ValueError, match=message):
            model.loss_and_grads(inputs, targets)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"n_in": 0, "n_hidden": 2, "n_out": 1}, "n_in must be an integer >= 1, got 0"),
     ({"n_in": 3, "n_hidden": 2, "n_out": 1, "loss": "mean"}, r"loss must be one of \['all', 'last'\], got 'mean'"),
     ({"n_in": 3, "n_hidden": 2, "n_out": 1, "seed": "x"}, "seed must be an integer >= 0")],
)
def test_student_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        VanillaRNN(**kwargs)


# -- the shared clipping rule, in the stacked layout of train_many ---------------------------------
def test_stacked_gradient_norms_are_each_models_norm():
    # train_many's layout: K models' gradients stacked along the first axis of every array.
    rng = np.random.default_rng(4)
    per_model = [{"W": rng.normal(size=(3, 2)), "b": rng.normal(size=3)} for _ in range(4)]
    stacked = {name: np.concatenate([g[name] for g in per_model]) for name in ("W", "b")}
    norms = gradient_norm(stacked, n_stacked=4)
    assert norms.shape == (4,)
    for k, grads in enumerate(per_model):
        assert norms[k] == pytest.approx(gradient_norm(grads), rel=1e-15)


def test_clip_scale_is_the_rule_of_clip_gradients_elementwise():
    grads = {"a": np.array([3.0, 4.0])}  # norm 5
    for threshold in (1.0, 5.0, 7.0):
        clipped, norm = clip_gradients(grads, threshold)
        np.testing.assert_array_equal(clipped["a"], grads["a"] * clip_scale(norm, threshold))
    np.testing.assert_array_equal(clip_scale(np.array([0.0, 1.0, 5.0, 10.0]), 5.0),
                                  [1.0, 1.0, 1.0, 0.5])
    assert isinstance(clip_scale(10.0, 5.0), float)


# -- Jacobians ----------------------------------------------------------------------------------------


def test_jacobian_norms_match_the_explicit_product_and_the_bound():
    model = random_student(seed=6, n_hidden=3, scale=1.5)
    inputs = np.random.default_rng(6).normal(size=(2, 8, 3))
    hidden, _ = model.forward(inputs)
    W = model.params["W_hh"]
    norms = jacobian_norms(W, hidden)
    assert norms.shape == (2, 9)
    for n in range(2):
        product = np.eye(3)
        for t in range(8, 0, -1):
            h = hidden[n, t]
            product = product @ (np.diag(h * (1 - h)) @ W.T)
            np.testing.assert_allclose(norms[n, t - 1], np.linalg.norm(product, 2), rtol=1e-12)
    bound = (np.linalg.norm(W, 2) * SIGMOID_GAMMA) ** np.arange(8, -1, -1)
    assert np.all(norms <= bound * (1 + 1e-12))


def test_jacobian_norms_equal_finite_differences_of_the_state():
    # ||dh_T/dh_t|| seen from outside: perturb h_t and run the remaining steps.
    model = random_student(seed=8, n_hidden=2, scale=2.0)
    p = model.params
    inputs = np.random.default_rng(8).normal(size=(1, 6, 3))
    hidden, _ = model.forward(inputs)
    norms = jacobian_norms(p["W_hh"], hidden)

    def run_from(h, t):
        for s in range(t, 6):
            h = sigmoid(h @ p["W_hh"] + inputs[0, s] @ p["W_uh"] + p["b_hh"])
        return h

    t, eps = 2, 1e-6
    jac = np.column_stack([
        (run_from(hidden[0, t] + eps * e, t) - run_from(hidden[0, t] - eps * e, t)) / (2 * eps)
        for e in np.eye(2)])
    assert norms[0, t] == pytest.approx(np.linalg.norm(jac, 2), rel=1e-7)


def test_jacobian_norms_reject_bad_shapes():
    with pytest.raises(ValueError, match=r"W_hh must be square, got shape \(2, 3\)"):
        jacobian_norms(np.ones((2, 3)), np.zeros((1, 3, 2)))
    with pytest.raises(ValueError, match=r"hidden must have shape \(N, N, 2\), got \(1, 3, 3\)"):
        jacobian_norms(np.ones((2, 2)), np.zeros((1, 3, 3)))


# -- training ----------------------------------------------------------------------------------------
def test_train_is_momentum_sgd_with_the_schedule_and_per_sequence_updates():
    generator = RNNGenerator(sigma_max=2.0)
    inputs, targets = generator.inputs_outputs(6, 5)
    model = VanillaRNN(3, 2, 1)
    history = train(model, inputs, targets, epochs=3, batch_size=1, momentum_switch_epoch=2,
                    initial_momentum=0.5, momentum=0.9, lr=0.01)
    # The same thing by hand: one update per sequence, in order, in the original's
    # convention (v <- mu v - lr g, theta <- theta + v): the same steps at constant lr.
    reference = VanillaRNN(3, 2, 1)
    velocity = {k: np.zeros_like(v) for k, v in reference.params.items()}
    expected = []
    for epoch in range(3):
        mu = 0.5 if epoch < 2 else 0.9
        costs = []
        for n in range(6):
            cost, grads = reference.loss_and_grads(inputs[n:n + 1], targets[n:n + 1])
            for k in velocity:
                velocity[k] = mu * velocity[k] - 0.01 * grads[k]
                reference.params[k] = reference.params[k] + velocity[k]
            costs.append(cost)
        expected.append(np.mean(costs))
    np.testing.assert_allclose(history, expected, rtol=1e-13)
    for k in PARAM_NAMES:
        np.testing.assert_allclose(model.params[k], reference.params[k], rtol=1e-12, atol=1e-16)


def test_a_mini_batch_step_sums_its_sequences_gradients():
    generator = RNNGenerator(sigma_max=2.0)
    inputs, targets = generator.inputs_outputs(4, 3)
    model, reference = VanillaRNN(3, 2, 1), VanillaRNN(3, 2, 1)
    train(model, inputs, targets, epochs=1, batch_size=4, lr=0.1)
    summed = {k: sum(reference.loss_and_grads(inputs[n:n + 1], targets[n:n + 1])[1][k]
                     for n in range(4)) for k in PARAM_NAMES}
    for k in PARAM_NAMES:
        np.testing.assert_allclose(model.params[k], reference.params[k] - 0.1 * summed[k],
                                   rtol=1e-12, atol=1e-16)


def test_training_on_teacher_data_lowers_the_cost():
    generator = RNNGenerator(sigma_max=1.0)
    inputs, targets = generator.inputs_outputs(100, 5)
    history = train(VanillaRNN(3, 2, 1), inputs, targets, epochs=30, batch_size=10)
    assert history[-1] < 0.2 * history[0]


def test_clipped_training_never_steps_further_than_the_threshold_allows():
    generator = RNNGenerator(sigma_max=10.0)
    inputs, targets = generator.inputs_outputs(10, 20)
    model = random_student(seed=9, scale=3.0)
    before = {k: v.copy() for k, v in model.params.items()}
    # No momentum, one update: the step length is exactly lr * min(||g||, threshold).
    train(model, inputs, targets, epochs=1, batch_size=10, lr=0.1, initial_momentum=0.0,
          clip_norm=1e-3)
    step = np.sqrt(sum(np.sum((model.params[k] - before[k]) ** 2) for k in PARAM_NAMES))
    assert step == pytest.approx(0.1 * 1e-3, rel=1e-10)


@pytest.mark.parametrize("loss", ["last", "all"])
@pytest.mark.parametrize("clip_norm", [None, 0.05])
def test_train_many_equals_train_on_each_model(loss, clip_norm):
    # Different lengths (padded and reset inside train_many), a batch size that does not
    # divide the number of sequences, and one teacher per configuration.
    configs = [(1.0, 2), (8.0, 9), (3.0, 1), (12.0, 6)]
    data = [RNNGenerator(sigma_max=s).inputs_outputs(13, L) for s, L in configs]
    fast = [VanillaRNN(3, 2, 1, seed=i, loss=loss) for i in range(4)]
    slow = [VanillaRNN(3, 2, 1, seed=i, loss=loss) for i in range(4)]
    options = dict(epochs=4, batch_size=5, lr=0.05, momentum_switch_epoch=2,
                   clip_norm=clip_norm)
    histories = train_many(fast, [u for u, _ in data], [y for _, y in data], **options)
    assert histories.shape == (4, 4)
    for k, (model, (u, y)) in enumerate(zip(slow, data)):
        np.testing.assert_allclose(histories[k], train(model, u, y, **options), rtol=1e-10)
        for name in PARAM_NAMES:
            assert fast[k].params[name].shape == model.params[name].shape
            np.testing.assert_allclose(fast[k].params[name], model.params[name], rtol=1e-9, atol=1e-14)


def test_train_many_per_sequence_mode_equals_train():
    data = [RNNGenerator(sigma_max=s).inputs_outputs(5, L) for s, L in [(2.0, 3), (6.0, 7)]]
    fast, slow = [VanillaRNN(3, 2, 1) for _ in data], [VanillaRNN(3, 2, 1) for _ in data]
    histories = train_many(fast, [u for u, _ in data], [y for _, y in data], epochs=2, batch_size=1)
    for k, (model, (u, y)) in enumerate(zip(slow, data)):
        np.testing.assert_allclose(histories[k], train(model, u, y, epochs=2, batch_size=1), rtol=1e-10)


def test_training_rejects_bad_options():
    u, y = RNNGenerator().inputs_outputs(4, 3)
    model = VanillaRNN(3, 2, 1)
    cases = [
        (dict(epochs=0), "epochs must be an integer >= 1, got 0"),
        (dict(epochs=1, batch_size=5), r"batch_size must be <= the number of sequences \(4\), got 5"),
        (dict(epochs=1, batch_size=0), "batch_size must be an integer >= 1, got 0"),
        (dict(epochs=1, lr=-0.1), "lr must be > 0, got -0.1"),
        (dict(epochs=1, lr="0.1"), "lr must be a finite number, got '0.1'"),
        (dict(epochs=1, momentum=1.5), r"^momentum must be in \[0, 1\), got 1.5"),
        (dict(epochs=1, initial_momentum=1.0), r"^initial_momentum must be in \[0, 1\), got 1.0"),
        (dict(epochs=1, initial_momentum=-0.5), "^initial_momentum must be >= 0, got -0.5"),
        (dict(epochs=1, momentum_switch_epoch=-1), "momentum_switch_epoch must be an integer >= 0"),
        (dict(epochs=1, clip_norm=0.0), "clip_norm must be > 0"),
    ]
    for options, message in cases:
        with pytest.raises(ValueError, match=message):
            train(model, u, y, **{"batch_size": 2, **options})
        with pytest.raises(ValueError, match=message):
            train_many([model], [u], [y], **{"batch_size": 2, **options})


def test_train_many_rejects_mismatched_models_and_data():
    u, y = RNNGenerator().inputs_outputs(4, 3)
    u5, y5 = RNNGenerator().inputs_outputs(5, 3)
    with pytest.raises(ValueError, match="models must share n_in, n_hidden, n_out and loss"):
        train_many([VanillaRNN(3, 2, 1), VanillaRNN(3, 3, 1)], [u, u], [y, y], epochs=1)
    with pytest.raises(ValueError, match="models must share"):
        train_many([VanillaRNN(3, 2, 1), VanillaRNN(3, 2, 1, loss="all")], [u, u], [y, y], epochs=1)
    with pytest.raises(ValueError, match=r"one data set per model \(2\), got 1 and 2"):
        train_many([VanillaRNN(3, 2, 1)] * 2, [u], [y, y], epochs=1)
    with pytest.raises(ValueError, match=r"inputs\[1\] must hold as many sequences as inputs\[0\] \(4\)"):
        train_many([VanillaRNN(3, 2, 1), VanillaRNN(3, 2, 1)], [u, u5], [y, y5], epochs=1, batch_size=2)
    with pytest.raises(ValueError, match="models must be a non-empty sequence of VanillaRNN"):
        train_many([], [], [], epochs=1)
    with pytest.raises(ValueError, match="model must be a VanillaRNN, got dict"):
        train({}, u, y, epochs=1)
    with pytest.raises(ValueError, match=r"targets\[1\] must have shape \(4, 3, 1\), got \(4, 2, 1\)"):
        train_many([VanillaRNN(3, 2, 1)] * 2, [u, u], [y, y[:, :2]], epochs=1)
    with pytest.raises(ValueError, match=r"inputs\[0\] contains NaN"):
        train_many([VanillaRNN(3, 2, 1)], [np.full_like(u, np.nan)], [y], epochs=1)


@pytest.mark.parametrize("trainer", ["train", "train_many"])
def test_data_are_checked_once_per_call_not_at_every_update(monkeypatch, trainer):
    # A spy around the real check: it still runs, and counts its calls.
    calls = []
    real_check = rnn._check_sequences

    def counting_check(*args, **kwargs):
        calls.append(args[1])
        return real_check(*args, **kwargs)

    monkeypatch.setattr(rnn, "_check_sequences", counting_check)
    u, y = RNNGenerator().inputs_outputs(12, 3)
    if trainer == "train":
        train(VanillaRNN(3, 2, 1), u, y, epochs=3, batch_size=2)  # 18 updates
        assert calls == ["inputs", "targets"]
    else:
        train_many([VanillaRNN(3, 2, 1) for _ in range(2)], [u, u], [y, y], epochs=3, batch_size=2)
        assert calls == ["inputs[0]", "targets[0]", "inputs[1]", "targets[1]"]


def test_both_trainers_report_the_largest_gradient_norm_of_each_epoch():
    u, y = RNNGenerator(sigma_max=10.0).inputs_outputs(6, 4)
    model, fast = VanillaRNN(3, 2, 1), VanillaRNN(3, 2, 1)
    history, norms = train(model, u, y, epochs=2, batch_size=3, return_grad_norms=True)
    fast_history, fast_norms = train_many([fast], [u], [y], epochs=2, batch_size=3,
                                          return_grad_norms=True)
    # By hand: the first update's gradient (batch error = sum over its 3 sequences).
    first = VanillaRNN(3, 2, 1).loss_and_grads(u[:3], y[:3])[1]
    first_norm = 3 * np.sqrt(sum(np.sum(g**2) for g in first.values()))
    assert norms.shape == (2,) and norms[0] >= first_norm * (1 - 1e-12)
    np.testing.assert_allclose(fast_norms[0], norms, rtol=1e-10)
    np.testing.assert_allclose(fast_history[0], history, rtol=1e-10)


def test_default_batch_size_is_a_hundred_or_all_sequences():
    u, y = RNNGenerator().inputs_outputs(250, 2)
    by_default, explicit = VanillaRNN(3, 2, 1), VanillaRNN(3, 2, 1)
    np.testing.assert_array_equal(train(by_default, u, y, epochs=1), train(explicit, u, y, epochs=1, batch_size=100))
    small, whole = VanillaRNN(3, 2, 1), VanillaRNN(3, 2, 1)
    np.testing.assert_array_equal(train_many([small], [u[:7]], [y[:7]], epochs=2),
                                  train_many([whole], [u[:7]], [y[:7]], epochs=2, batch_size=7))


def test_train_many_wants_a_list_of_models():
    u, y = RNNGenerator().inputs_outputs(4, 3)
    with pytest.raises(ValueError, match="models must be a non-empty sequence of VanillaRNN"):
        train_many(VanillaRNN(3, 2, 1), [u], [y], epochs=1)
