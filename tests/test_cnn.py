"""course_lib.cnn: convolve2d/correlate2d against scipy, and SimpleCNN end to end.

SimpleCNN's gradients are checked in float64 against centred differences (stated tolerance:
relative error below 1e-7), against the same network built from the reference layers, and with
the fused convolution block switched on and off. tests/test_cnn_golden.py checks them against
PyTorch.
"""
import numpy as np
import pytest
import scipy.signal

import course_lib
from course_lib import fast_layers as F
from course_lib import layers as L
from course_lib.cnn import SimpleCNN, convolve2d, correlate2d
from course_lib.gradcheck import gradient_check

GRAD_TOLERANCE = 1e-7


# ---------------------------------------------------------------------------------- 2-D ops
@pytest.mark.parametrize("seed", range(12))
def test_convolve_and_correlate_match_scipy_on_random_shapes(seed):
    rng = np.random.default_rng(seed)
    height, width = rng.integers(1, 13, size=2)
    kh, kw = rng.integers(1, height + 1), rng.integers(1, width + 1)
    image, kernel = rng.normal(size=(height, width)), rng.normal(size=(kh, kw))
    np.testing.assert_allclose(convolve2d(image, kernel), scipy.signal.convolve2d(image, kernel, mode="valid"),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(correlate2d(image, kernel), scipy.signal.correlate2d(image, kernel, mode="valid"),
                               rtol=1e-12, atol=1e-12)


def test_convolution_is_correlation_with_the_kernel_rotated():
    rng = np.random.default_rng(20)
    image, kernel = rng.normal(size=(7, 6)), rng.normal(size=(3, 2))
    np.testing.assert_allclose(convolve2d(image, kernel), correlate2d(image, np.rot90(kernel, 2)))
    # a symmetric kernel cannot tell them apart
    symmetric = np.array([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]])
    np.testing.assert_allclose(convolve2d(image, symmetric), correlate2d(image, symmetric))


def test_2d_ops_on_integers_and_float32():
    image = np.arange(12).reshape(3, 4)
    kernel = np.array([[1, 0], [0, -1]])
    np.testing.assert_array_equal(correlate2d(image, kernel), [[-5.0] * 3] * 2)
    np.testing.assert_array_equal(convolve2d(image, kernel), [[5.0] * 3] * 2)
    assert correlate2d(image, kernel).dtype == np.float64
    assert correlate2d(image.astype(np.float32), kernel.astype(np.float32)).dtype == np.float32
    assert course_lib.convolve2d is convolve2d and course_lib.correlate2d is correlate2d


@pytest.mark.parametrize("function", [convolve2d, correlate2d])
@pytest.mark.parametrize(
    "image, kernel, message",
    [
        (np.zeros(5), np.zeros((2, 2)), r"image must have 2 dimensions, got shape \(5,\)"),
        (np.zeros((5, 5)), np.zeros((2, 2, 1)), r"kernel must have 2 dimensions, got shape \(2, 2, 1\)"),
        (np.zeros((3, 5)), np.zeros((4, 2)),
         r"kernel must be no larger than image in each dimension .*got kernel shape \(4, 2\) and image shape \(3, 5\)"),
        (np.zeros((3, 5)), np.zeros((0, 2)), r"kernel must not be empty, got shape \(0, 2\)"),
        (np.array([[0.0, np.inf]]), np.zeros((1, 1)), "image contains NaN or infinite values"),
        (np.zeros((3, 3)), np.array([["a"]]), "kernel must be a numeric array, got dtype <U1"),
    ],
)
def test_2d_ops_reject_bad_input(function, image, kernel, message):
    with pytest.raises(ValueError, match=message):
        function(image, kernel)


# ---------------------------------------------------------------------------------- SimpleCNN
SMALL = dict(n_filters=3, filter_size=3, pool_size=2, n_classes=4, image_size=8, weight_decay=0.01)


def small_batch(n=5, seed=0, size=8, n_classes=4):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, size, size)), rng.integers(0, n_classes, n)


def test_default_net_is_the_classic_one():
    net = SimpleCNN()
    shapes = {name: value.shape for name, value in net.params.items()}
    assert shapes == {"W_conv": (20, 9, 9), "b_conv": (20,), "W_sm": (10, 2000), "b_sm": (10,)}
    assert all(value.dtype == np.float32 for value in net.params.values())
    assert net.hyperparameters["pool"] == "max" and net.hyperparameters["activation"] == "sigmoid"
    X = np.random.default_rng(1).random((3, 28, 28))
    loss, grads = net.loss_and_grads(X, [0, 5, 9])
    assert np.isfinite(loss)
    assert {name: g.shape for name, g in grads.items()} == shapes
    assert all(g.dtype == np.float32 for g in grads.values())


def test_hyperparameters_rebuild_the_same_net():
    net = SimpleCNN(n_filters=4, filter_size=5, pool_size=3, pool="mean", n_classes=3, image_size=14,
                    weight_decay=0.5, activation="relu", dtype=np.float64, seed=7)
    twin = SimpleCNN(**net.hyperparameters)
    assert twin.hyperparameters == net.hyperparameters
    assert net.hyperparameters["dtype"] == "float64"
    for name in net.params:
        np.testing.assert_array_equal(twin.params[name], net.params[name])
    assert repr(net).startswith("SimpleCNN(n_filters=4, filter_size=5, pool_size=3, pool='mean'")
    assert SimpleCNN(seed=1).params["W_conv"].tolist() != SimpleCNN(seed=2).params["W_conv"].tolist()


@pytest.mark.parametrize("pool", ["max", "mean"])
@pytest.mark.parametrize("activation", ["sigmoid", "relu"])
def test_loss_and_grads_match_numerical_gradient(pool, activation):
    net = SimpleCNN(**SMALL, pool=pool, activation=activation, dtype=np.float64, seed=3)
    X, y = small_batch()
    _, grads = net.loss_and_grads(X, y)
    for name, value in net.params.items():
        error = gradient_check(lambda _: net.loss_and_grads(X, y)[0], value, grads[name])
        assert error < GRAD_TOLERANCE, (name, error)


def reference_loss_and_grads(net, X, y):
    """The same network from the reference layers (loops), in the order the course draws it."""
    p = net.params
    activation_forward, activation_backward = (getattr(L, f"{net.activation}_{d}") for d in ("forward", "backward"))
    pool_forward, pool_backward = (getattr(L, f"{net.pool}_pool_{d}") for d in ("forward", "backward"))
    z, conv_cache = L.conv_forward(X, p["W_conv"], p["b_conv"])
    a, activation_cache = activation_forward(z)
    maps, pool_cache = pool_forward(a, net.pool_size)
    scores, affine_cache = L.affine_forward(maps.reshape(len(X), -1), p["W_sm"], p["b_sm"])
    loss, softmax_cache = L.softmax_cross_entropy_forward(scores, y)
    loss += net.weight_decay * (np.sum(p["W_conv"] ** 2) + np.sum(p["W_sm"] ** 2))
    dscores = L.softmax_cross_entropy_backward(1.0, softmax_cache)
    dfeatures, dW_sm, db_sm = L.affine_backward(dscores, affine_cache)
    da = pool_backward(dfeatures.reshape(maps.shape), pool_cache)
    _, dW_conv, db_conv = L.conv_backward(activation_backward(da, activation_cache), conv_cache, input_grad=False)
    return loss, {"W_conv": dW_conv + 2 * net.weight_decay * p["W_conv"], "b_conv": db_conv,
                  "W_sm": dW_sm + 2 * net.weight_decay * p["W_sm"], "b_sm": db_sm}


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("pool", ["max", "mean"])
@pytest.mark.parametrize("activation", ["sigmoid", "relu"])
def test_loss_and_grads_match_the_reference_layers(pool, activation, fused):
    net = SimpleCNN(n_filters=4, filter_size=5, pool_size=2, n_classes=10, image_size=14, weight_decay=1e-3,
                    pool=pool, activation=activation, dtype=np.float64, seed=4)
    net.fused_conv_block = fused
    X, y = small_batch(n=3, seed=5, size=14, n_classes=10)
    loss, grads = net.loss_and_grads(X, y)
    loss_reference, grads_reference = reference_loss_and_grads(net, X, y)
    assert loss == pytest.approx(loss_reference, rel=1e-12)
    for name in grads:
        np.testing.assert_allclose(grads[name], grads_reference[name], rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("pool", ["max", "mean"])
@pytest.mark.parametrize("activation", ["sigmoid", "relu"])
def test_the_fused_block_changes_no_number_of_a_training_run(pool, activation):
    # float64, real digits with blank borders (ties in max pooling): the same weights after
    # training with the fused block and with the three layers one after another
    from course_lib import load_mnist

    X_train, y_train, _, _ = load_mnist()
    X, y = X_train[:64], y_train[:64]
    nets = []
    for fused in (True, False):
        net = SimpleCNN(n_filters=4, pool=pool, activation=activation, dtype=np.float64, seed=21)
        net.fused_conv_block = fused
        history = net.fit(X, y, epochs=2, batch_size=16, progress=False, X_val=X[:16], y_val=y[:16])
        nets.append((net, history))
    (fused_net, fused_history), (composed_net, composed_history) = nets
    for name in fused_net.params:
        np.testing.assert_allclose(fused_net.params[name], composed_net.params[name], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fused_history["loss"], composed_history["loss"], rtol=1e-10)
    np.testing.assert_array_equal(fused_net.predict(X), composed_net.predict(X))
    assert SimpleCNN.fused_conv_block is True  # the default


def test_a_batch_is_checked_once_where_the_user_hands_it_in(monkeypatch):
    # followed through fit, predict and accuracy: the arrays are checked by SimpleCNN's public
    # methods only, never again by a layer on the training path
    import course_lib._layer_checks
    import course_lib.cnn

    calls = {"SimpleCNN": [], "layers": []}

    def spy(function, record):
        def spied(value, name, *args, **kwargs):
            record.append(name)
            return function(value, name, *args, **kwargs)
        return spied

    for module, record in ((course_lib.cnn, calls["SimpleCNN"]), (course_lib._layer_checks, calls["layers"])):
        monkeypatch.setattr(module, "as_float_array", spy(module.as_float_array, record))
        monkeypatch.setattr(module, "as_labels", spy(module.as_labels, record))
    X, y = quadrant_batch(40, seed=22)
    for fused in (True, False):
        net = SimpleCNN(**SMALL)
        net.fused_conv_block = fused
        calls["SimpleCNN"].clear()
        net.fit(X, y, epochs=2, batch_size=8, X_val=X[:10], y_val=y[:10], progress=False)  # 10 steps
        assert sorted(calls["SimpleCNN"]) == ["X", "X_val", "y", "y_val"]
        calls["SimpleCNN"].clear()
        net.train_step(X, y)
        net.loss_and_grads(X, y)
        net.accuracy(X, y)
        assert sorted(calls["SimpleCNN"]) == ["X", "X", "X", "y", "y", "y"]
        net.predict(X)
        assert calls["layers"] == []
    # a layer called directly checks its arguments: the spy sees that
    F.conv_forward(X, net.params["W_conv"], net.params["b_conv"])
    assert calls["layers"] == ["x", "w", "b"]


def test_float32_net_agrees_with_float64():
    net64 = SimpleCNN(dtype=np.float64, seed=6)
    net32 = SimpleCNN(**{**net64.hyperparameters, "dtype": "float32"})
    X = np.random.default_rng(7).random((4, 28, 28))
    y = np.array([1, 2, 3, 4])
    loss64, grads64 = net64.loss_and_grads(X, y)
    loss32, grads32 = net32.loss_and_grads(X, y)
    assert loss32 == pytest.approx(loss64, rel=1e-5)
    for name in grads64:
        scale = np.abs(grads64[name]).max()
        np.testing.assert_allclose(grads32[name], grads64[name], atol=1e-4 * scale)


def test_predict_proba_and_predict():
    net = SimpleCNN(**SMALL, seed=8)
    X, _ = small_batch(n=7, seed=9)
    probabilities = net.predict_proba(X)
    assert probabilities.shape == (7, 4) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(net.predict_proba(X, batch_size=3), probabilities, rtol=1e-6)
    np.testing.assert_array_equal(net.predict(X), probabilities.argmax(axis=1))
    # the probabilities are those of the loss: -mean log P[y] is the data part of the cost
    y = net.predict(X)
    data_loss = SimpleCNN(**{**net.hyperparameters, "weight_decay": 0.0})
    data_loss.params = net.params
    assert data_loss.loss_and_grads(X, y)[0] == pytest.approx(-np.mean(np.log(probabilities.max(axis=1))), rel=1e-5)
    assert net.accuracy(X, y) == 1.0


def quadrant_batch(n, seed, size=8):
    """Learnable data for a 4-class net: the class is the quadrant that is bright."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    X = 0.3 * rng.random((n, size, size))
    half = size // 2
    for label, (rows, cols) in enumerate([(0, 0), (0, half), (half, 0), (half, half)]):
        X[y == label, rows:rows + half, cols:cols + half] += 0.7
    return X, y


def test_train_step_lowers_the_loss():
    net = SimpleCNN(**SMALL, seed=10)
    X, y = quadrant_batch(32, seed=11)
    first = net.loss_and_grads(X, y)[0]
    losses = [net.train_step(X, y, lr=0.05, momentum=0.9) for _ in range(60)]
    assert losses[0] == pytest.approx(first)  # the loss before the first step
    assert net.loss_and_grads(X, y)[0] < 0.5 * first
    # one small plain gradient step already lowers it
    fresh = SimpleCNN(**SMALL, seed=10)
    fresh.train_step(X, y, lr=1e-3, momentum=0.0)
    assert fresh.loss_and_grads(X, y)[0] < first


def test_train_step_is_sgd_with_momentum():
    net = SimpleCNN(**SMALL, dtype=np.float64, seed=12)
    X, y = small_batch(seed=13)
    start = {name: value.copy() for name, value in net.params.items()}
    _, grads1 = net.loss_and_grads(X, y)
    net.train_step(X, y, lr=0.1, momentum=0.5)
    for name in start:  # first step: v = g, w -= lr v
        np.testing.assert_allclose(net.params[name], start[name] - 0.1 * grads1[name], rtol=1e-12)
    _, grads2 = net.loss_and_grads(X, y)
    after_one = {name: value.copy() for name, value in net.params.items()}
    net.train_step(X, y, lr=0.1, momentum=0.5)
    for name in start:  # second step: v = 0.5 g1 + g2
        expected = after_one[name] - 0.1 * (0.5 * grads1[name] + grads2[name])
        np.testing.assert_allclose(net.params[name], expected, rtol=1e-12, atol=1e-15)


def fit_small(seed, **kwargs):
    net = SimpleCNN(**SMALL, seed=seed)
    X, y = small_batch(n=40, seed=14)
    X_val, y_val = small_batch(n=10, seed=15)
    history = net.fit(X, y, epochs=3, batch_size=16, lr=0.05, momentum=0.9, X_val=X_val, y_val=y_val,
                      progress=False, **kwargs)
    return net, history


def test_fit_is_reproducible_with_a_seed():
    net_a, history_a = fit_small(seed=1)
    net_b, history_b = fit_small(seed=1)
    net_c, history_c = fit_small(seed=2)
    assert history_a == history_b
    for name in net_a.params:
        np.testing.assert_array_equal(net_a.params[name], net_b.params[name])
    assert history_c != history_a


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_fit_is_shuffled_minibatch_sgd(schedule):
    # fit is exactly a loop of train_step over batches of a permutation drawn from a generator
    # seeded with [seed, 1], with the learning rate of the schedule
    X, y = quadrant_batch(20, seed=20)
    net = SimpleCNN(**SMALL, dtype=np.float64, seed=5)
    net.fit(X, y, epochs=2, batch_size=8, lr=0.1, momentum=0.5, progress=False, lr_schedule=schedule)
    manual = SimpleCNN(**SMALL, dtype=np.float64, seed=5)
    rng = np.random.default_rng([5, 1])
    step, n_steps = 0, 2 * 3
    for _ in range(2):
        order = rng.permutation(20)
        for start in range(0, 20, 8):
            lr = 0.1 if schedule == "constant" else 0.1 * 0.5 * (1 + np.cos(np.pi * step / n_steps))
            manual.train_step(X[order[start:start + 8]], y[order[start:start + 8]], lr=lr, momentum=0.5)
            step += 1
    for name in net.params:
        np.testing.assert_allclose(net.params[name], manual.params[name], rtol=1e-12, atol=1e-15)


def test_fit_history():
    _, history = fit_small(seed=3)
    assert set(history) == {"loss", "train_accuracy", "val_loss", "val_accuracy"}
    assert all(len(values) == 3 for values in history.values())
    assert history["loss"][-1] < history["loss"][0]
    assert all(0.0 <= a <= 1.0 for a in history["train_accuracy"] + history["val_accuracy"])
    net = SimpleCNN(**SMALL)
    X, y = small_batch(n=20, seed=16)
    assert set(net.fit(X, y, epochs=1, batch_size=8, progress=False)) == {"loss", "train_accuracy"}


def test_fit_progress_bar_only_when_asked(capsys):
    net = SimpleCNN(**SMALL)
    X, y = small_batch(n=8, seed=17)
    net.fit(X, y, epochs=1, batch_size=4, progress=False)
    assert capsys.readouterr().err == ""
    net.fit(X, y, epochs=1, batch_size=4, progress=True)
    assert "training" in capsys.readouterr().err


def test_fit_default_recipe_learns_separable_classes():
    # the default net and fit recipe, on 4 classes told apart by their bright quadrant
    X, y = quadrant_batch(256, seed=18, size=28)
    X_test, y_test = quadrant_batch(64, seed=19, size=28)
    net = SimpleCNN(n_classes=4)
    history = net.fit(X, y, epochs=2, X_val=X_test, y_val=y_test, progress=False)
    assert history["val_accuracy"][-1] == 1.0


# ---------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_filters": 0}, "n_filters must be an integer >= 1, got 0"),
        ({"n_filters": 2.5}, "n_filters must be an integer >= 1, got 2.5"),
        ({"filter_size": 29}, r"filter_size must be <= image_size \(28\), got 29"),
        ({"pool_size": 21}, r"pool_size must be <= the feature-map side .* \(20\), got 21"),
        ({"pool": "min"}, r"pool must be one of \['max', 'mean'\], got 'min'"),
        ({"n_classes": 1}, "n_classes must be an integer >= 2, got 1"),
        ({"image_size": 0}, "image_size must be an integer >= 1, got 0"),
        ({"weight_decay": -1e-3}, "weight_decay must be >= 0, got -0.001"),
        ({"weight_decay": float("nan")}, "weight_decay must be a finite number, got nan"),
        ({"activation": "tanh"}, r"activation must be one of \['relu', 'sigmoid'\], got 'tanh'"),
        ({"dtype": np.int32}, r"dtype must be one of \['float32', 'float64'\], got <class 'numpy.int32'>"),
        ({"dtype": "float16"}, r"dtype must be one of \['float32', 'float64'\], got 'float16'"),
        ({"dtype": "nonsense"}, r"dtype must be one of \['float32', 'float64'\], got 'nonsense'"),
        ({"seed": -1}, "seed must be an integer >= 0, got -1"),
        ({"seed": 1.5}, "seed must be an integer >= 0, got 1.5"),
    ],
)
def test_bad_hyperparameters_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SimpleCNN(**kwargs)


@pytest.fixture
def small_net():
    return SimpleCNN(**SMALL)


@pytest.mark.parametrize("method", ["loss_and_grads", "train_step", "fit"])
@pytest.mark.parametrize(
    "X, y, message",
    [
        (np.zeros((2, 8, 7)), [0, 1], r"X must have shape \(N, 8, 8\), got \(2, 8, 7\)"),
        (np.zeros((8, 8)), [0], r"X must have shape \(N, 8, 8\), got \(8, 8\)"),
        (np.zeros((0, 8, 8)), [], r"X must hold at least one image, got shape \(0, 8, 8\)"),
        (np.full((1, 8, 8), np.nan), [0], "X contains NaN or infinite values"),
        (np.zeros((1, 8, 8), dtype=complex), [0], "X must be real, got complex dtype complex128"),
        (np.zeros((2, 8, 8)), [0, 4], r"y must be in \[0, 4\), got label 4"),
        (np.zeros((2, 8, 8)), [0], r"y must have shape \(2,\), got \(1,\)"),
        (np.zeros((2, 8, 8)), [0.0, 1.5], "y must hold integer class labels, got dtype float64"),
    ],
)
def test_bad_data_is_rejected(small_net, method, X, y, message):
    with pytest.raises(ValueError, match=message):
        getattr(small_net, method)(X, y)


def test_bad_prediction_input_is_rejected(small_net):
    with pytest.raises(ValueError, match=r"X must have shape \(N, 8, 8\), got \(3, 28, 28\)"):
        small_net.predict(np.zeros((3, 28, 28)))
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1, got 0"):
        small_net.predict_proba(np.zeros((3, 8, 8)), batch_size=0)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1, got 0"):
        small_net.accuracy(np.zeros((3, 8, 8)), [0, 1, 2], batch_size=0)
    with pytest.raises(ValueError, match=r"y must have shape \(3,\), got \(2,\)"):
        small_net.accuracy(np.zeros((3, 8, 8)), [0, 1])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"lr": 0.0}, "lr must be > 0, got 0.0"),
        ({"lr": -0.1}, "lr must be > 0, got -0.1"),
        ({"momentum": 1.0}, r"momentum must be in \[0, 1\), got 1.0"),
        ({"momentum": -0.5}, "momentum must be >= 0, got -0.5"),
    ],
)
def test_bad_step_settings_are_rejected(small_net, kwargs, message):
    X, y = small_batch()
    with pytest.raises(ValueError, match=message):
        small_net.train_step(X, y, **kwargs)
    with pytest.raises(ValueError, match=message):
        small_net.fit(X, y, progress=False, **kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"epochs": 0}, "epochs must be an integer >= 1, got 0"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
        ({"lr_schedule": "step"}, r"lr_schedule must be one of \['constant', 'cosine'\], got 'step'"),
        ({"X_val": np.zeros((2, 8, 8))}, "X_val and y_val must be given together, got only one of them"),
        ({"X_val": np.zeros((2, 8, 9)), "y_val": [0, 1]}, r"X_val must have shape \(N, 8, 8\), got \(2, 8, 9\)"),
        ({"X_val": np.zeros((2, 8, 8)), "y_val": [0, 9]}, r"y_val must be in \[0, 4\), got label 9"),
    ],
)
def test_bad_fit_settings_are_rejected(small_net, kwargs, message):
    X, y = small_batch()
    with pytest.raises(ValueError, match=message):
        small_net.fit(X, y, progress=False, **kwargs)


def test_replaced_params_are_checked(small_net):
    X, y = small_batch()
    small_net.params["W_sm"] = np.zeros((4, 26), dtype=np.float32)
    with pytest.raises(ValueError, match=r"params\['W_sm'\] must be an ndarray of shape \(4, 27\) and dtype float32, "
                                         r"got shape \(4, 26\) and dtype float32"):
        small_net.loss_and_grads(X, y)
    small_net.params["W_sm"] = np.zeros((4, 27))
    with pytest.raises(ValueError, match="got shape \\(4, 27\\) and dtype float64"):
        small_net.predict(X)
    del small_net.params["W_sm"]
    with pytest.raises(ValueError, match=r"params must have keys \['W_conv', 'W_sm', 'b_conv', 'b_sm'\]"):
        small_net.train_step(X, y)
