"""The course's convolutional network, in plain numpy.

Three layers of ideas, from the most readable to the fastest:

* :func:`correlate2d` and :func:`convolve2d`: the two sliding-window sums the course starts
  from, written as loops so the flip is visible (equal to ``scipy.signal``'s ``mode="valid"``).
* :mod:`course_lib.layers`: every layer as a ``forward``/``backward`` pair of loops, the
  reference; :mod:`course_lib.fast_layers`: their vectorised twins, same names and API.
* :class:`SimpleCNN`: the classic network of the course (a convolution of 20 kernels 9x9 with a
  sigmoid, 2x2 pooling, a softmax over 10 classes) built from the fast layers, trained by SGD
  with momentum (:mod:`course_lib.optim`).
"""

import numpy as np

from course_lib import fast_layers
from course_lib._checks import as_float_array, as_labels, non_negative_float, one_of, positive_int
from course_lib.optim import check_momentum, sgd_momentum_step

__all__ = ["correlate2d", "convolve2d", "SimpleCNN"]

# The default training recipe (the defaults of SimpleCNN.fit), chosen with an earlier
# bench/cnn_accuracy.py that watched the MNIST (4,000 digits) and Fashion-MNIST test sets; the
# script now watches validation splits and reports each test set once, as notebook 03 teaches.
# The 2000 sigmoid features all sit near 0.5, so the softmax weights see a badly conditioned
# problem along their common direction: lr 0.1 with momentum 0.9 overshoots there in the first
# epoch (the loss climbs above log 10) and ends lower, hence 0.02. Batches of 32 give twice the
# steps per epoch of 64 for a small loss of speed, and the cosine schedule ends the run with
# small steps instead of rattling around the minimum.
EPOCHS = 30
BATCH_SIZE = 32
LR = 0.02
MOMENTUM = 0.9
LR_SCHEDULE = "cosine"
# Images per forward pass when predicting: bounds the memory the feature maps take.
PREDICT_BATCH_SIZE = 1000


def _check_image_and_kernel(image, kernel):
    """Check the two 2-D inputs of a valid correlation/convolution and return them as floats."""
    image = as_float_array(image, "image", ndim=2)
    kernel = as_float_array(kernel, "kernel", ndim=2)
    if kernel.shape[0] > image.shape[0] or kernel.shape[1] > image.shape[1]:
        raise ValueError(
            f"kernel must be no larger than image in each dimension for a 'valid' result, "
            f"got kernel shape {kernel.shape} and image shape {image.shape}"
        )
    if kernel.size == 0:
        raise ValueError(f"kernel must not be empty, got shape {kernel.shape}")
    dtype = np.result_type(image.dtype, kernel.dtype)
    return image.astype(dtype, copy=False), kernel.astype(dtype, copy=False)


def correlate2d(image, kernel):
    r"""2-D cross-correlation of ``image`` with ``kernel``, keeping only the "valid" positions.

    The kernel slides over the image without flipping:

    .. math:: y_{ij} = \sum_{a=0}^{k_h-1} \sum_{b=0}^{k_w-1} k_{ab}\, x_{i+a,\,j+b}

    This is what deep-learning frameworks call a "convolution". Equal to
    ``scipy.signal.correlate2d(image, kernel, mode="valid")``.

    Parameters
    ----------
    image : array_like, shape (H, W)
        The input.
    kernel : array_like, shape (kh, kw)
        The weights, with ``kh <= H`` and ``kw <= W``.

    Returns
    -------
    ndarray, shape (H - kh + 1, W - kw + 1)
        The correlation, in the floating dtype of the inputs (float64 for integer inputs).

    Raises
    ------
    ValueError
        If either input is not a finite 2-D numeric array, or the kernel is larger than the image.

    Examples
    --------
    >>> correlate2d([[1, 2, 3], [4, 5, 6]], [[1, 0], [0, -1]])
    array([[-4., -4.]])
    """
    image, kernel = _check_image_and_kernel(image, kernel)
    kh, kw = kernel.shape
    out_h, out_w = image.shape[0] - kh + 1, image.shape[1] - kw + 1
    out = np.empty((out_h, out_w), dtype=image.dtype)
    for i in range(out_h):
        for j in range(out_w):
            # the window of the image under the kernel when its top-left corner is at (i, j)
            window = image[i:i + kh, j:j + kw]
            out[i, j] = np.sum(window * kernel)
    return out


def convolve2d(image, kernel):
    r"""2-D convolution of ``image`` with ``kernel``, keeping only the "valid" positions.

    A convolution is a correlation with the kernel rotated by 180 degrees (flipped in both
    axes):

    .. math:: y_{ij} = \sum_{a=0}^{k_h-1} \sum_{b=0}^{k_w-1} k_{ab}\, x_{i+k_h-1-a,\,j+k_w-1-b}

    The flip makes it commutative and associative, as in signal processing. Equal to
    ``scipy.signal.convolve2d(image, kernel, mode="valid")``.

    Parameters
    ----------
    image : array_like, shape (H, W)
        The input.
    kernel : array_like, shape (kh, kw)
        The weights, with ``kh <= H`` and ``kw <= W``.

    Returns
    -------
    ndarray, shape (H - kh + 1, W - kw + 1)
        The convolution, in the floating dtype of the inputs (float64 for integer inputs).

    Raises
    ------
    ValueError
        If either input is not a finite 2-D numeric array, or the kernel is larger than the image.

    Examples
    --------
    >>> convolve2d([[1, 2, 3], [4, 5, 6]], [[1, 0], [0, -1]])
    array([[4., 4.]])
    """
    image, kernel = _check_image_and_kernel(image, kernel)
    rotated = kernel[::-1, ::-1]  # rotate by 180 degrees: flip rows and columns
    return correlate2d(image, rotated)


# --------------------------------------------------------------------------------------------
# the course's network
# --------------------------------------------------------------------------------------------

_DTYPES = {"float32": np.float32, "float64": np.float64}

# The passes below call the fast layers without their argument checks (``.unchecked``): the
# public methods of SimpleCNN check a batch once, where the user hands it in, and the layers
# then get arrays of the right shapes and dtype by construction.
_conv_forward = fast_layers.conv_forward.unchecked
_conv_backward = fast_layers.conv_backward.unchecked
_fused_conv_block_forward = fast_layers.fused_conv_block_forward.unchecked
_fused_conv_block_backward = fast_layers.fused_conv_block_backward.unchecked
_affine_forward = fast_layers.affine_forward.unchecked
_affine_backward = fast_layers.affine_backward.unchecked
_softmax_cross_entropy_forward = fast_layers.softmax_cross_entropy_forward.unchecked
_softmax_cross_entropy_backward = fast_layers.softmax_cross_entropy_backward.unchecked


def _dtype_name(dtype):
    """Return ``"float32"`` or ``"float64"`` for any spelling of those dtypes, else raise."""
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = None
    if name not in _DTYPES:
        raise ValueError(f"dtype must be one of ['float32', 'float64'], got {dtype!r}")
    return name


class SimpleCNN:
    r"""The course's convolutional network: convolution, activation, pooling, softmax.

    For a single-channel ``image_size x image_size`` image ``x``:

    1. a convolution layer of ``n_filters`` kernels ``filter_size x filter_size`` (computed as a
       cross-correlation, as every framework does),
       :math:`z_{fij} = \sum_{a,b} W^{conv}_{fab}\, x_{i+a,\,j+b} + b^{conv}_f`, giving maps of
       side :math:`M = \text{image\_size} - \text{filter\_size} + 1`;
    2. the activation (sigmoid or ReLU) and ``pool_size x pool_size`` pooling with stride
       ``pool_size`` (max, or mean), giving maps of side :math:`P = \lfloor M / \text{pool\_size} \rfloor`;
    3. the pooled maps flattened in C order, ``(n_filters, P, P)`` into :math:`F P^2` features
       :math:`a`, and a softmax layer :math:`P(k \mid x) = \operatorname{softmax}(W^{sm} a + b^{sm})_k`.

    The cost of a batch of :math:`n` images is the mean cross-entropy plus weight decay on the
    weights (not the biases):

    .. math:: C = -\frac1n \sum_i \log P(y_i \mid X_i)
                  + \lambda \left(\lVert W^{conv} \rVert^2 + \lVert W^{sm} \rVert^2\right)

    With the defaults this is the classic net: 28x28 digits, 20 kernels 9x9 with a sigmoid,
    2x2 max pooling to 20 maps of 10x10 (2000 features), 10 classes.

    The passes are the layers of :mod:`course_lib.fast_layers` one after another, as notebook 02
    does by hand: ``conv_forward``, the activation, the pooling, ``affine_forward``,
    ``softmax_cross_entropy_forward``, and back. One optimisation: by default the first three
    run as one fused block, :func:`~course_lib.fast_layers.fused_conv_block_forward`, which gives
    the same numbers faster (with max pooling it applies the activation after the pooling, to a
    quarter of the values: a monotonic activation commutes with the max). Set
    :attr:`fused_conv_block` to False to run the three layers instead.

    Parameters
    ----------
    n_filters : int
        Number of convolution kernels.
    filter_size : int
        Side of each square kernel, at most ``image_size``.
    pool_size : int
        Side of the pooling window, also its stride; at most the side of the feature maps.
    pool : {"max", "mean"}
        The pooling.
    n_classes : int
        Number of classes, at least 2.
    image_size : int
        Side of the square input images.
    weight_decay : float
        :math:`\lambda` above, >= 0.
    activation : {"sigmoid", "relu"}
        Nonlinearity after the convolution.
    dtype : {np.float32, np.float64} or their names
        Type of the parameters and the computation: float32 is fast, float64 is for gradient checks.
    seed : int
        Seeds the initial weights and the shuffling of :meth:`fit`.

    Attributes
    ----------
    params : dict of ndarray
        ``W_conv`` (F, filter_size, filter_size), ``b_conv`` (F,), ``W_sm`` (n_classes, F*P*P),
        ``b_sm`` (n_classes,). Updated in place by :meth:`train_step`.
    fused_conv_block : bool
        True (the default, a class attribute): convolution, activation and pooling run as the
        fused block. False (set it on a net): as the three layers one after another. Both
        give the same numbers up to rounding; ``bench/cnn_speed.py`` times both.
    """

    fused_conv_block = True

    def __init__(self, n_filters=20, filter_size=9, pool_size=2, pool="max", n_classes=10,
                 image_size=28, weight_decay=1e-4, activation="sigmoid", dtype=np.float32, seed=0):
        self.n_filters = positive_int(n_filters, "n_filters")
        self.image_size = positive_int(image_size, "image_size")
        self.filter_size = positive_int(filter_size, "filter_size")
        if self.filter_size > self.image_size:
            raise ValueError(
                f"filter_size must be <= image_size ({self.image_size}), got {filter_size!r}"
            )
        self.map_size = self.image_size - self.filter_size + 1
        self.pool_size = positive_int(pool_size, "pool_size")
        if self.pool_size > self.map_size:
            raise ValueError(
                f"pool_size must be <= the feature-map side image_size - filter_size + 1 "
                f"({self.map_size}), got {pool_size!r}"
            )
        self.pooled_size = self.map_size // self.pool_size
        self.pool = one_of(pool, "pool", set(fast_layers.POOLS))
        self.n_classes = positive_int(n_classes, "n_classes", minimum=2)
        self.weight_decay = non_negative_float(weight_decay, "weight_decay")
        self.activation = one_of(activation, "activation", set(fast_layers.ACTIVATIONS))
        self.dtype = _DTYPES[_dtype_name(dtype)]
        self.seed = positive_int(seed, "seed", minimum=0)
        self.n_features = self.n_filters * self.pooled_size ** 2
        self.params = self._initial_params(np.random.default_rng(self.seed))
        self._velocity = {name: np.zeros_like(value) for name, value in self.params.items()}
        # fit() draws its shuffles from here: a second model with the same seed, fitted the
        # same way, sees the same batches
        self._shuffle_rng = np.random.default_rng([self.seed, 1])

    @property
    def hyperparameters(self):
        """The constructor's keyword arguments: ``SimpleCNN(**net.hyperparameters)`` rebuilds the net.

        ``dtype`` is given by name (``"float32"`` or ``"float64"``) so the dict can be saved.
        """
        return {
            "n_filters": self.n_filters, "filter_size": self.filter_size,
            "pool_size": self.pool_size, "pool": self.pool, "n_classes": self.n_classes,
            "image_size": self.image_size, "weight_decay": self.weight_decay,
            "activation": self.activation, "dtype": np.dtype(self.dtype).name, "seed": self.seed,
        }

    def __repr__(self):
        arguments = ", ".join(f"{key}={value!r}" for key, value in self.hyperparameters.items())
        return f"SimpleCNN({arguments})"

    def _initial_params(self, rng):
        """Uniform random weights, zero biases.

        The kernels get variance ``1 / fan_in`` (LeCun), ``fan_in = filter_size**2``: on images
        in [0, 1] the convolution outputs then spread over about one unit, so the sigmoid works
        beyond its nearly linear middle from the start. The softmax weights get variance
        ``2 / (fan_in + fan_out)`` (Glorot), which keeps the first scores of order one.
        """
        kernel_area = self.filter_size ** 2
        conv_limit = np.sqrt(3.0 / kernel_area)
        sm_limit = np.sqrt(6.0 / (self.n_features + self.n_classes))
        shape_conv = (self.n_filters, self.filter_size, self.filter_size)
        return {
            "W_conv": rng.uniform(-conv_limit, conv_limit, shape_conv).astype(self.dtype),
            "b_conv": np.zeros(self.n_filters, dtype=self.dtype),
            "W_sm": rng.uniform(-sm_limit, sm_limit, (self.n_classes, self.n_features)).astype(self.dtype),
            "b_sm": np.zeros(self.n_classes, dtype=self.dtype),
        }

    # ---------------------------------------------------------------- checks
    def _check_images(self, X, name="X"):
        shape = (None, self.image_size, self.image_size)
        X = as_float_array(X, name, shape=shape, dtype=self.dtype)
        if X.shape[0] == 0:
            raise ValueError(f"{name} must hold at least one image, got shape {X.shape}")
        return X

    def _check_params(self):
        """Check ``params`` (which users may replace) still has the right keys, shapes, dtypes."""
        expected = {
            "W_conv": (self.n_filters, self.filter_size, self.filter_size),
            "b_conv": (self.n_filters,),
            "W_sm": (self.n_classes, self.n_features),
            "b_sm": (self.n_classes,),
        }
        if set(self.params) != set(expected):
            raise ValueError(f"params must have keys {sorted(expected)}, got {sorted(self.params)}")
        for name, shape in expected.items():
            value = self.params[name]
            if not isinstance(value, np.ndarray) or value.shape != shape or value.dtype != self.dtype:
                given = (getattr(value, "shape", None), getattr(value, "dtype", type(value).__name__))
                raise ValueError(
                    f"params[{name!r}] must be an ndarray of shape {shape} and dtype "
                    f"{np.dtype(self.dtype).name}, got shape {given[0]} and dtype {given[1]}"
                )

    # ---------------------------------------------------------------- forward and backward
    # These take checked inputs (see the public methods below) and call unchecked layers.
    def _conv_block_forward(self, X):
        """Convolution, activation, pooling of images ``X`` (N, S, S): maps (N, F, P, P), cache."""
        W, b = self.params["W_conv"], self.params["b_conv"]
        if self.fused_conv_block:
            return _fused_conv_block_forward(X, W, b, self.pool_size, self.pool, self.activation)
        activation_forward = fast_layers.ACTIVATIONS[self.activation][0].unchecked
        pool_forward = fast_layers.POOLS[self.pool][0].unchecked
        z, conv_cache = _conv_forward(X, W, b)
        a, activation_cache = activation_forward(z)
        maps, pool_cache = pool_forward(a, self.pool_size)
        return maps, (conv_cache, activation_cache, pool_cache)

    def _conv_block_backward(self, dmaps, cache):
        """Backward pass of :meth:`_conv_block_forward`: the gradients of ``W_conv`` and ``b_conv``."""
        if self.fused_conv_block:
            return _fused_conv_block_backward(dmaps, cache)
        conv_cache, activation_cache, pool_cache = cache
        da = fast_layers.POOLS[self.pool][1].unchecked(dmaps, pool_cache)
        dz = fast_layers.ACTIVATIONS[self.activation][1].unchecked(da, activation_cache)
        _, dW_conv, db_conv = _conv_backward(dz, conv_cache, False)  # no gradient for the images
        return dW_conv, db_conv

    def _scores(self, X):
        """Forward pass of images ``X`` (N, S, S): class scores (N, K) and the caches."""
        p = self.params
        maps, block_cache = self._conv_block_forward(X)
        features = maps.reshape(len(X), self.n_features)  # (F, P, P) flattened in C order
        scores, affine_cache = _affine_forward(features, p["W_sm"], p["b_sm"])
        return scores, (block_cache, affine_cache)

    def loss_and_grads(self, X, y):
        """The cost of a batch and its gradient with respect to every parameter.

        Backpropagation as the course teaches it: the softmax sensitivity ``P - e(y)``, through
        ``W_sm`` to the pooled layer, routed back through the pooling (to the position of the
        max, or spread evenly for the mean), times the activation's derivative, and the kernel
        gradient as the correlation of the input with the convolution sensitivities.

        Parameters
        ----------
        X : array_like, shape (N, image_size, image_size)
            Images (converted to the net's dtype).
        y : array_like of int, shape (N,)
            Labels in ``[0, n_classes)``.

        Returns
        -------
        loss : float
            Mean cross-entropy plus weight decay.
        grads : dict of ndarray
            Keyed and shaped like :attr:`params`.
        """
        self._check_params()
        X = self._check_images(X)
        y = as_labels(y, "y", len(X), self.n_classes)
        loss, grads, _ = self._loss_and_grads(X, y)
        return loss, grads

    def _loss_and_grads(self, X, y):
        """``loss_and_grads`` on checked inputs; also returns the scores (for running accuracy)."""
        p = self.params
        scores, (block_cache, affine_cache) = self._scores(X)
        data_loss, softmax_cache = _softmax_cross_entropy_forward(scores, y)
        decay = self.weight_decay * (np.sum(p["W_conv"] ** 2) + np.sum(p["W_sm"] ** 2))
        dscores = _softmax_cross_entropy_backward(1.0, softmax_cache)
        dfeatures, dW_sm, db_sm = _affine_backward(dscores, affine_cache)
        dmaps = dfeatures.reshape(len(X), self.n_filters, self.pooled_size, self.pooled_size)
        dW_conv, db_conv = self._conv_block_backward(dmaps, block_cache)
        grads = {
            "W_conv": dW_conv + 2 * self.weight_decay * p["W_conv"],
            "b_conv": db_conv,
            "W_sm": dW_sm + 2 * self.weight_decay * p["W_sm"],
            "b_sm": db_sm,
        }
        grads = {name: g.astype(self.dtype, copy=False) for name, g in grads.items()}
        return float(data_loss + decay), grads, scores

    # ---------------------------------------------------------------- prediction
    def predict_proba(self, X, batch_size=PREDICT_BATCH_SIZE):
        """Class probabilities, computed ``batch_size`` images at a time.

        Parameters
        ----------
        X : array_like, shape (N, image_size, image_size)
        batch_size : int
            Bounds the memory used (the feature maps of a batch).

        Returns
        -------
        ndarray, shape (N, n_classes)
            Each row sums to 1.
        """
        self._check_params()
        X = self._check_images(X)
        batch_size = positive_int(batch_size, "batch_size")
        return self._predict_proba(X, batch_size)

    def _predict_proba(self, X, batch_size):
        """``predict_proba`` on checked inputs."""
        probabilities = np.empty((len(X), self.n_classes), dtype=self.dtype)
        for start in range(0, len(X), batch_size):
            scores, _ = self._scores(X[start:start + batch_size])
            scores -= scores.max(axis=1, keepdims=True)
            exps = np.exp(scores)
            probabilities[start:start + batch_size] = exps / exps.sum(axis=1, keepdims=True)
        return probabilities

    def predict(self, X, batch_size=PREDICT_BATCH_SIZE):
        """Most probable class of each image.

        Parameters
        ----------
        X : array_like, shape (N, image_size, image_size)
        batch_size : int

        Returns
        -------
        ndarray of int64, shape (N,)
        """
        return self.predict_proba(X, batch_size).argmax(axis=1)

    def accuracy(self, X, y, batch_size=PREDICT_BATCH_SIZE):
        """Fraction of images of ``X`` whose predicted class is ``y``.

        Parameters
        ----------
        X : array_like, shape (N, image_size, image_size)
        y : array_like of int, shape (N,)
        batch_size : int
            As in :meth:`predict_proba`.

        Returns
        -------
        float
        """
        self._check_params()
        X = self._check_images(X)
        y = as_labels(y, "y", len(X), self.n_classes)
        batch_size = positive_int(batch_size, "batch_size")
        return float(np.mean(self._predict_proba(X, batch_size).argmax(axis=1) == y))

    # ---------------------------------------------------------------- training
    def train_step(self, X, y, lr=LR, momentum=MOMENTUM):
        r"""One step of stochastic gradient descent with momentum on the batch ``(X, y)``.

        The update, per parameter, is :func:`course_lib.optim.sgd_momentum_step` (PyTorch's
        convention): :math:`v \leftarrow \mu v + \nabla C`, :math:`\theta \leftarrow \theta - \eta v`.

        Parameters
        ----------
        X : array_like, shape (N, image_size, image_size)
        y : array_like of int, shape (N,)
        lr : float
            Learning rate :math:`\eta > 0` (default: the recipe's, as in :meth:`fit`).
        momentum : float
            :math:`\mu` in ``[0, 1)``.

        Returns
        -------
        float
            The cost of the batch before the step.
        """
        lr = non_negative_float(lr, "lr", strictly_positive=True)
        momentum = check_momentum(momentum)
        self._check_params()
        X = self._check_images(X)
        y = as_labels(y, "y", len(X), self.n_classes)
        return self._train_step(X, y, lr, momentum)[0]

    def _train_step(self, X, y, lr, momentum):
        """``train_step`` on checked inputs; returns the loss and the number of right predictions."""
        loss, grads, scores = self._loss_and_grads(X, y)
        sgd_momentum_step(self.params, grads, self._velocity, lr, momentum)
        return loss, int(np.sum(scores.argmax(axis=1) == y))

    def fit(self, X, y, epochs=EPOCHS, batch_size=BATCH_SIZE, lr=LR, momentum=MOMENTUM,
            X_val=None, y_val=None, progress=True, lr_schedule=LR_SCHEDULE):
        """Train by minibatch SGD with momentum, shuffling the training set every epoch.

        The shuffles come from the net's own random generator (seeded by ``seed``), so two nets
        built and fitted with the same arguments end with the same weights.

        The defaults are the course's recipe (30 epochs of batches of 32, lr 0.02 on a cosine
        schedule, momentum 0.9). With ``SimpleCNN()``, trained on 3,500 of the 4,000 training
        digits of :func:`course_lib.data.load_mnist` (500 held out for validation), it reaches
        96.4% on its 1,000 test digits; trained on 55,000 Fashion-MNIST images (5,000 for
        validation), 89.25% on the 10,000 test images. ``bench/cnn_accuracy.py`` measures both.

        Parameters
        ----------
        X : array_like, shape (N, image_size, image_size)
            Training images.
        y : array_like of int, shape (N,)
            Training labels.
        epochs : int
            Passes over the training set.
        batch_size : int
            Images per step (the last batch of an epoch may be smaller).
        lr : float
            Learning rate, > 0.
        momentum : float
            Momentum, in [0, 1).
        X_val, y_val : array_like, optional
            A validation set, evaluated after every epoch (both or neither).
        progress : bool
            Show a tqdm progress bar (a widget in notebooks). Pass False where the output must
            not change between runs (tests, nbval).
        lr_schedule : {"cosine", "constant"}
            ``"cosine"`` lowers the learning rate from ``lr`` to 0 along half a cosine over the
            whole run, step by step: big steps early, small steps at the end that settle the
            weights instead of rattling around the minimum. ``"constant"`` keeps ``lr``.

        Returns
        -------
        dict of list
            Per epoch: ``"loss"`` (mean cost of the epoch's batches), ``"train_accuracy"``
            (fraction of the epoch's training images classified right at the moment their
            batch was used, so it lags the weights a little, as in Keras), and, with a
            validation set, ``"val_loss"`` (cross-entropy without weight decay) and
            ``"val_accuracy"``.
        """
        self._check_params()
        X = self._check_images(X)
        y = as_labels(y, "y", len(X), self.n_classes)
        epochs = positive_int(epochs, "epochs")
        batch_size = positive_int(batch_size, "batch_size")
        lr = non_negative_float(lr, "lr", strictly_positive=True)
        momentum = check_momentum(momentum)
        one_of(lr_schedule, "lr_schedule", {"cosine", "constant"})
        if (X_val is None) != (y_val is None):
            raise ValueError("X_val and y_val must be given together, got only one of them")
        if X_val is not None:
            X_val = self._check_images(X_val, "X_val")
            y_val = as_labels(y_val, "y_val", len(X_val), self.n_classes)
        history = {"loss": [], "train_accuracy": []}
        if X_val is not None:
            history.update(val_loss=[], val_accuracy=[])

        n_batches = -(-len(X) // batch_size)
        n_steps, step = epochs * n_batches, 0
        # tqdm.auto picks the notebook widget bar; imported here because it loads ipywidgets,
        # which a student who only predicts never needs.
        from tqdm.auto import tqdm

        bar = tqdm(total=epochs * n_batches, desc="training", unit="batch", disable=not progress)
        with bar:
            for epoch in range(epochs):
                order = self._shuffle_rng.permutation(len(X))
                total_loss, n_right = 0.0, 0
                for start in range(0, len(X), batch_size):
                    batch = order[start:start + batch_size]
                    step_lr = lr
                    if lr_schedule == "cosine":
                        step_lr = lr * 0.5 * (1.0 + np.cos(np.pi * step / n_steps))
                    loss, right = self._train_step(X[batch], y[batch], step_lr, momentum)
                    step += 1
                    total_loss += loss * len(batch)
                    n_right += right
                    bar.update(1)
                history["loss"].append(total_loss / len(X))
                history["train_accuracy"].append(n_right / len(X))
                postfix = {"loss": f"{history['loss'][-1]:.4f}",
                           "train acc": f"{history['train_accuracy'][-1]:.4f}"}
                if X_val is not None:
                    probabilities = self._predict_proba(X_val, PREDICT_BATCH_SIZE)
                    picked = probabilities[np.arange(len(y_val)), y_val].astype(np.float64)
                    history["val_loss"].append(float(-np.mean(np.log(np.maximum(picked, 1e-300)))))
                    history["val_accuracy"].append(float(np.mean(probabilities.argmax(axis=1) == y_val)))
                    postfix["val acc"] = f"{history['val_accuracy'][-1]:.4f}"
                bar.set_postfix(postfix, refresh=False)
        return history
