"""scikit-learn estimators backed by xpnet: :class:`XpnetClassifier` and :class:`XpnetRegressor`.

Needs scikit-learn (``pip install "xpnet[sklearn]"``); ``import xpnet`` never imports it. Both
build the fully connected network of :func:`xpnet.architectures.mlp` (``Dense -> activation
[-> Dropout]`` per hidden width, then a linear ``Dense``) and train it with
:meth:`xpnet.Sequential.fit`: the classifier with softmax cross-entropy on one output per
class, the regressor with mean squared error on one linear output per target.

They follow scikit-learn's conventions rather than xpnet's where the two differ:
``__init__`` stores the hyper-parameters unchanged and ``fit`` validates them (so that
``clone``, ``set_params`` and grid searches can pass any value through, and the error comes
when it is used); the seed is called ``random_state`` (an int, a ``numpy.random.RandomState``
or None), which is the name ``GridSearchCV``, ``set_random_state`` and the estimator checks
set. The fitted network is ``model_`` (an :class:`xpnet.Sequential`: save it, or export it with
``model_.export_onnx(path)``). Pickling an estimator stores ``model_`` as the bytes of xpnet's
own pickle-free ``.npz`` model file.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted, check_random_state
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        'xpnet.sklearn needs scikit-learn: pip install "xpnet[sklearn]" '
        "(or pip install scikit-learn)"
    ) from exc

try:
    from sklearn.utils.validation import validate_data
except ImportError:  # pragma: no cover - scikit-learn < 1.6 has it as a method

    def validate_data(estimator: Any, *args: Any, **kwargs: Any) -> Any:
        return estimator._validate_data(*args, **kwargs)


from . import serialization
from ._checks import flag, one_of, positive_int, real
from .architectures import ACTIVATIONS, mlp
from .losses import MSE, Loss, SoftmaxCrossEntropy
from .model import Sequential
from .optim import SGD, Adam, Momentum
from .optim.base import Optimizer

__all__ = ["XpnetClassifier", "XpnetRegressor"]

OPTIMIZERS = ("adam", "sgd", "momentum")
DTYPES = ("float32", "float64")
#: what ``validate_data`` hands the network: floats, kept in float32 when they are float32
_FLOATS = (np.float64, np.float32)


def _hidden_sizes(value: Any) -> tuple[int, ...]:
    """``hidden_sizes`` as a tuple of positive ints (an int alone means one hidden layer)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (value,)
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
        raise TypeError(f"hidden_sizes must be a sequence of positive ints, got {value!r}")
    try:
        return tuple(positive_int("hidden_sizes[i]", v) for v in value)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"hidden_sizes must be a sequence of positive ints, got {value!r}") \
            from None


def _model_bytes(model: Sequential) -> bytes:
    """The model as xpnet's ``.npz`` file, in memory."""
    with tempfile.TemporaryDirectory() as tmp:
        return serialization.save(model, Path(tmp) / "model.npz").read_bytes()


def _model_from_bytes(data: bytes, backend: str) -> Sequential:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.npz"
        path.write_bytes(data)
        model: Sequential = serialization.load(path, backend=backend)
        return model


class _XpnetEstimator(BaseEstimator):  # type: ignore[misc]
    """What the classifier and the regressor share: hyper-parameters, training, pickling.

    Shapes: ``X`` (n_samples, n_features) of real numbers; subclasses say what ``y`` is.
    """

    def __init__(
        self,
        hidden_sizes: Sequence[int] = (100,),
        *,
        activation: str = "relu",
        dropout: float = 0.0,
        optimizer: str = "adam",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        epochs: int = 200,
        batch_size: int = 32,
        backend: str = "numpy",
        dtype: str | None = None,
        random_state: Any = None,
        verbose: bool = False,
    ) -> None:
        # scikit-learn's rule: store every argument unchanged; fit validates them.
        self.hidden_sizes = hidden_sizes
        self.activation = activation
        self.dropout = dropout
        self.optimizer = optimizer
        self.lr = lr
        self.weight_decay = weight_decay
        self.epochs = epochs
        self.batch_size = batch_size
        self.backend = backend
        self.dtype = dtype
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------------ training
    def _make_optimizer(self) -> Optimizer:
        name = one_of("optimizer", self.optimizer, OPTIMIZERS)
        lr = real("lr", self.lr, low=0.0, low_open=True)
        wd = real("weight_decay", self.weight_decay, low=0.0)
        if name == "adam":
            return Adam(lr, weight_decay=wd)
        return Momentum(lr, weight_decay=wd) if name == "momentum" else SGD(lr, weight_decay=wd)

    def _train(self, X: np.ndarray, y: np.ndarray, n_outputs: int, loss: Loss) -> None:
        """Build a fresh network with ``n_outputs`` outputs and fit it on ``(X, y)``."""
        hidden = _hidden_sizes(self.hidden_sizes)
        activation = one_of("activation", self.activation, tuple(sorted(ACTIVATIONS)))
        dropout = real("dropout", self.dropout, low=0.0, high=1.0, high_open=True)
        epochs = positive_int("epochs", self.epochs)
        batch_size = positive_int("batch_size", self.batch_size)
        # None follows X, as scikit-learn's own networks do: float32 data trains a float32
        # network, anything else float64, whose predictions do not move with the batch a row
        # is predicted in (float32 matmuls round differently for different batch sizes).
        dtype = X.dtype.name if self.dtype is None else one_of("dtype", self.dtype, DTYPES)
        verbose = flag("verbose", self.verbose)
        optimizer = self._make_optimizer()
        # One int drawn from random_state seeds the initial weights, the shuffling and the
        # dropout masks: an int random_state repeats the run, a RandomState advances.
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        model = mlp(in_features=X.shape[1], classes=n_outputs, hidden=hidden,
                    activation=activation, dropout=dropout, seed=seed,
                    backend=self.backend, dtype=dtype)
        model.compile(loss, optimizer)
        history = model.fit(X, y, epochs=epochs, batch_size=batch_size, seed=seed,
                            verbose=verbose)
        self.model_ = model
        self.loss_curve_ = list(history["loss"])

    def _outputs(self, X: Any) -> np.ndarray:
        """What the network's ``predict_proba`` gives for ``X``, as float64 (n_samples, k)."""
        check_is_fitted(self, "model_")
        X = validate_data(self, X, reset=False, dtype=_FLOATS)
        out: np.ndarray = self.model_.predict_proba(X)
        return out.astype(np.float64)

    # ----------------------------------------------------------------------- pickling
    def __getstate__(self) -> dict[str, Any]:
        # BaseEstimator's state may be the live __dict__: copy before replacing model_.
        state = dict(super().__getstate__())
        model = state.pop("model_", None)
        if model is not None:
            state["_model_npz"] = _model_bytes(model)
            state["_model_backend"] = model.backend.name
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        data = state.pop("_model_npz", None)
        backend = state.pop("_model_backend", "numpy")
        super().__setstate__(state)
        if data is not None:
            self.model_ = _model_from_bytes(data, backend)


class XpnetClassifier(ClassifierMixin, _XpnetEstimator):  # type: ignore[misc]
    """A neural-network classifier: an xpnet MLP trained with softmax cross-entropy.

    ``fit(X, y)``: ``X`` (n_samples, n_features), ``y`` (n_samples,) labels of any kind
    (ints, strings...; at least two distinct values). ``classes_`` holds the sorted distinct
    labels, and column ``k`` of ``predict_proba(X)`` (n_samples, n_classes) is the probability
    of ``classes_[k]``; ``predict(X)`` (n_samples,) returns labels from ``classes_``.
    ``score`` is the mean accuracy. Hyper-parameters: ``hidden_sizes`` (widths of the hidden
    layers; ``()`` for a linear model), ``activation`` (``"relu"``, ``"leaky_relu"``,
    ``"tanh"``, ``"sigmoid"``), ``dropout`` (after each hidden activation), ``optimizer``
    (``"adam"``, ``"sgd"``, ``"momentum"``) with ``lr`` and ``weight_decay``, ``epochs``,
    ``batch_size``, ``backend`` (``"numpy"``, ``"cupy"``, ``"auto"``), ``dtype`` (None: float32
    for float32 ``X``, else float64; or ``"float32"``/``"float64"``), ``random_state``,
    ``verbose`` (a progress bar).
    """

    def fit(self, X: Any, y: Any) -> XpnetClassifier:
        """Train a new network on ``X`` (n_samples, n_features) and labels ``y`` (n_samples,)."""
        X, y = validate_data(self, X, y, dtype=_FLOATS)
        check_classification_targets(y)
        # Like LabelEncoder: sorted distinct labels, and each label's index in them.
        classes, encoded = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            only = classes.tolist()[0]
            raise ValueError(
                f"XpnetClassifier needs at least 2 classes in y, got 1 class: {only!r}"
            )
        self.classes_ = classes
        self._train(X, encoded.astype(np.int64), len(classes), SoftmaxCrossEntropy())
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (n_samples, n_classes), columns in the order of ``classes_``."""
        p = self._outputs(X)
        # Rows of float32 probabilities sum to 1 only within a few float32 ulps; in float64,
        # renormalized, they sum to 1 as closely as scikit-learn's tools check.
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, X: Any) -> np.ndarray:
        """The most probable label for each row (n_samples,), from ``classes_``."""
        best = np.argmax(self.predict_proba(X), axis=1)  # first: it checks the model is fitted
        result: np.ndarray = self.classes_[best]
        return result


class XpnetRegressor(RegressorMixin, _XpnetEstimator):  # type: ignore[misc]
    """A neural-network regressor: an xpnet MLP with linear outputs, trained on mean squared
    error.

    ``fit(X, y)``: ``X`` (n_samples, n_features), ``y`` (n_samples,) or (n_samples,
    n_targets) real numbers; ``predict(X)`` returns float64 values of ``y``'s shape
    ((n_samples,) or (n_samples, n_targets)); ``score`` is R^2. Hyper-parameters as for
    :class:`XpnetClassifier`. Targets are fitted as given: scale them (e.g. with
    ``TransformedTargetRegressor``) when they are far from unit size.
    """

    def fit(self, X: Any, y: Any) -> XpnetRegressor:
        """Train a new network on ``X`` (n_samples, n_features) and targets ``y``."""
        X, y = validate_data(self, X, y, dtype=_FLOATS, multi_output=True, y_numeric=True)
        y = np.asarray(y, dtype=np.float64)
        self.n_outputs_ = 1 if y.ndim == 1 else int(y.shape[1])
        # A 1-D y gives 1-D predictions, a (n, k) y gives (n, k) ones, (n, 1) included.
        self._one_d = y.ndim == 1
        self._train(X, y.reshape(len(y), self.n_outputs_), self.n_outputs_, MSE())
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Predicted targets: (n_samples,) or (n_samples, n_targets), float64."""
        out = self._outputs(X)
        return out[:, 0] if self._one_d else out

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _more_tags(self) -> dict[str, Any]:  # scikit-learn < 1.6
        return {"multioutput": True}
