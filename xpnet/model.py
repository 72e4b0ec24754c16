"""Sequential: a stack of layers with fit / evaluate / predict / save."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .backend import Array, get_backend, keep_threshold
from .layers.activations import ReLU, sigmoid
from .layers.base import Layer
from .layers.dense import Dense
from .layers.dropout import Dropout
from .layers.softmax import softmax
from .losses.base import Loss
from .losses.binary_cross_entropy import BinaryCrossEntropy
from .losses.softmax_cross_entropy import SoftmaxCrossEntropy
from .optim.base import Optimizer, ParamGrad


class History:
    """Per-epoch metrics recorded by ``fit``: ``history.history["loss"][epoch]`` and so on."""

    def __init__(self, data: dict[str, list[float]] | None = None) -> None:
        self.history: dict[str, list[float]] = {k: list(v) for k, v in (data or {}).items()}

    def append(self, **metrics: float) -> None:
        for key, value in metrics.items():
            self.history.setdefault(key, []).append(float(value))

    @property
    def epochs(self) -> int:
        return len(self.history.get("loss", []))

    def __getitem__(self, key: str) -> list[float]:
        return self.history[key]

    def __contains__(self, key: object) -> bool:
        return key in self.history

    def to_dict(self) -> dict[str, list[float]]:
        return {k: list(v) for k, v in self.history.items()}

    def __repr__(self) -> str:
        return f"History(epochs={self.epochs}, keys={sorted(self.history)})"


class Sequential(Layer):
    """Layers applied in order: ``y = layer_n(... layer_1(x))``; backward runs them in reverse.

    ``backend`` (``"numpy"``, ``"cupy"``, ``"auto"``, a module or a Backend) and ``dtype``
    (float32 by default) say where the model lives. ``seed`` re-draws every layer's initial
    weights from one host generator, in order, and seeds the dropout masks, so one seed gives
    the same model on every backend. ``params``/``grads`` are flat dicts keyed ``"i.W"``.
    """

    def __init__(
        self,
        layers: Sequence[Layer],
        *,
        backend: Any = "numpy",
        dtype: str | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        if isinstance(layers, Layer) or not isinstance(layers, Sequence):
            raise TypeError(f"layers must be a list of xpnet layers, got {layers!r}")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"layers[{i}] must be an xpnet layer, got {layer!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise TypeError(f"seed must be an int or None, got {seed!r}")
        if seed is not None and seed < 0:
            raise ValueError(f"seed must be a non-negative int or None, got {seed!r}")
        for i, layer in enumerate(layers):
            for j in range(i):
                if layers[j] is layer:  # one layer twice would overwrite what backward needs
                    raise ValueError(f"layers[{i}] is the same object as layers[{j}]")
        self.layers: list[Layer] = list(layers)
        self.seed = None if seed is None else int(seed)
        self.loss: Loss | None = None
        self.optimizer: Optimizer | None = None
        self.history = History()
        #: training progress saved in checkpoints (see xpnet.training); None when not training
        self.progress: dict[str, Any] | None = None
        self._name_layers()
        self._check_widths()
        if self.seed is not None:
            self.reset_parameters_from_seed(self.seed)
        self.backend = self.layers[0].backend if self.layers else get_backend("numpy")
        self.to(backend, dtype)

    # ------------------------------------------------------------------------- structure
    def _name_layers(self) -> None:
        for i, layer in enumerate(self.layers):
            if isinstance(layer, Dense):
                layer.name = f"layer {i} (Dense {layer.in_features} -> {layer.out_features})"
            else:
                layer.name = f"layer {i} ({type(layer).__name__})"

    def _check_widths(self) -> None:
        width: int | None = None
        for layer in self.layers:
            if isinstance(layer, Dense) and width is not None and layer.in_features != width:
                raise ValueError(
                    f"{layer.name}: in_features={layer.in_features} does not match the "
                    f"{width} features produced by the layers before it"
                )
            width = layer.output_features(width)

    @property
    def in_features(self) -> int | None:
        """Input width the first Dense layer expects (None if there is none)."""
        for layer in self.layers:
            if isinstance(layer, Dense):
                return layer.in_features
        return None

    @property
    def out_features(self) -> int | None:
        width: int | None = None
        for layer in self.layers:
            width = layer.output_features(width)
        return width

    def reset_parameters_from_seed(self, seed: int) -> None:
        """Draw all initial weights from ``default_rng(seed)`` in layer order; seed dropout."""
        init_ss, dropout_ss = np.random.SeedSequence(seed).spawn(2)
        rng = np.random.default_rng(init_ss)
        for layer in self.layers:
            layer.reset_parameters(rng)
        self.reseed_dropout(dropout_ss)

    def reseed_dropout(self, seed: int | np.random.SeedSequence) -> None:
        """Give every stochastic layer its own stream spawned from ``seed``."""
        ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
        stochastic = [layer for layer in self.layers if layer.stochastic]
        for layer, child in zip(stochastic, ss.spawn(len(stochastic)), strict=True):
            layer.reseed(child)  # type: ignore[attr-defined]

    def to(self, backend: Any, dtype: str | None = None) -> Sequential:
        """Move every layer, the loss and the optimizer state to ``backend``/``dtype``."""
        new = get_backend(backend, dtype)
        for layer in self.layers:
            layer.to(new)
        if self.loss is not None:
            self.loss.to(new)
        if self.optimizer is not None:
            self.optimizer.to(new)
        self.backend = new
        return self

    @property
    def params(self) -> dict[str, Array]:  # type: ignore[override]
        return {f"{i}.{k}": v for i, lay in enumerate(self.layers) for k, v in lay.params.items()}

    @params.setter
    def params(self, value: dict[str, Array]) -> None:
        if value:
            raise AttributeError("set parameters on the layers, not on the Sequential")

    @property
    def grads(self) -> dict[str, Array]:  # type: ignore[override]
        return {f"{i}.{k}": v for i, lay in enumerate(self.layers) for k, v in lay.grads.items()}

    @grads.setter
    def grads(self, value: dict[str, Array]) -> None:
        if value:
            raise AttributeError("gradients live on the layers, not on the Sequential")

    def parameters(self) -> list[ParamGrad]:
        """``(name, param, grad)`` for every parameter, in a stable order (for optimizers)."""
        return [
            (f"{i}.{k}", p, layer.grads[k])
            for i, layer in enumerate(self.layers)
            for k, p in layer.params.items()
        ]

    def config(self) -> dict[str, Any]:
        specs = [{"type": type(lay).__name__, "config": lay.config()} for lay in self.layers]
        return {"layers": specs}

    def __repr__(self) -> str:
        inner = ",\n  ".join(repr(layer) for layer in self.layers)
        be = self.backend
        return f"Sequential([\n  {inner}\n], backend={be.name!r}, dtype={be.dtype_name!r})"

    # ------------------------------------------------------------------ forward / backward
    def forward(self, x: Array, training: bool = False) -> Array:
        """Apply the layers in order. In training on a fused backend (CuPy), each
        ``Dense -> ReLU [-> Dropout]`` run is one kernel after the matmul (see
        :meth:`_forward_fused`)."""
        if training and self.backend.fused:
            return self._forward_fused(x)
        for layer in self.layers:
            x = layer.forward(x, training=training)
        return x

    def _forward_fused(self, x: Array) -> Array:
        """Training forward with ``Dense -> ReLU [-> Dropout]`` fused after the matmul.

        Each layer of a fused run is left holding exactly what its own ``forward`` would have
        saved (Dense ``x``, ReLU ``y``, Dropout ``mask``, the mask drawn from the same
        generator state), so every ``backward`` works unchanged.
        """
        be, layers = self.backend, self.layers
        i, n = 0, len(layers)
        while i < n:
            layer = layers[i]
            relu = layers[i + 1] if i + 1 < n else None
            if type(layer) is Dense and layer.bias and type(relu) is ReLU:
                z = layer.linear(x)
                drop = layers[i + 2] if i + 2 < n else None
                if type(drop) is Dropout and _fusable_dropout(drop):
                    relu.y, drop.mask, x = be.bias_relu_dropout(
                        z, layer.params["b"], drop.gen, 1.0 - drop.p
                    )
                    i += 3
                else:
                    x = relu.y = be.bias_relu(z, layer.params["b"])
                    i += 2
                continue
            x = layer.forward(x, training=True)
            i += 1
        return x

    def backward(self, dy: Array, need_dx: bool = True) -> Array | None:
        """Backpropagate ``dy`` through every layer; with ``need_dx=False`` a first Dense layer
        fills its parameter gradients only (``dx`` of the data is never needed in training).
        On a fused backend a ``ReLU -> Dropout`` pair runs as one kernel."""
        layers = self.layers
        first = 0
        if not need_dx and layers and isinstance(layers[0], Dense):
            first = 1
        fused = self.backend.fused
        i = len(layers) - 1
        while i >= first:
            layer = layers[i]
            pair = _relu_dropout_state(layers[i - 1], layer) if fused and i > first else None
            if pair is not None:
                dy = self.backend.dropout_relu_backward(dy, pair[1], pair[0])
                i -= 2
                continue
            dy = layer.backward(dy)
            i -= 1
        if first:
            layers[0].backward_params(dy)  # type: ignore[attr-defined]
            return None
        return dy

    # --------------------------------------------------------------------------- training
    def compile(self, loss: Loss | str, optimizer: Optimizer | None = None) -> Sequential:
        """Attach the loss and optimizer ``fit`` uses (moved to the model's backend)."""
        if isinstance(loss, str):
            from .losses import LOSS_TYPES

            names = {"softmax_cross_entropy": "SoftmaxCrossEntropy", "mse": "MSE",
                     "binary_cross_entropy": "BinaryCrossEntropy"}
            if loss not in names:
                raise ValueError(f"loss must be a Loss or one of {sorted(names)}, got {loss!r}")
            loss = LOSS_TYPES[names[loss]]()
        if not isinstance(loss, Loss):
            raise TypeError(f"loss must be an xpnet.losses.Loss, got {loss!r}")
        if optimizer is not None and not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be an xpnet.optim.Optimizer, got {optimizer!r}")
        self.loss = loss.to(self.backend)
        self.optimizer = optimizer.to(self.backend) if optimizer is not None else None
        return self

    def fit(
        self,
        X: Any,
        y: Any,
        *,
        epochs: int = 1,
        batch_size: int = 32,
        validation_data: tuple[Any, Any] | None = None,
        shuffle: bool = True,
        seed: int | None = None,
        verbose: bool | None = None,
        checkpoint: str | Path | None = None,
        every: int | None = None,
        resume: bool = False,
        on_nonfinite: str = "raise",
        clip_norm: float | None = None,
        sync_every: int | None = None,
        on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
    ) -> History:
        """Train with minibatch gradient descent; see :func:`xpnet.training.fit`."""
        from .training import fit

        return fit(
            self, X, y, epochs=epochs, batch_size=batch_size, validation_data=validation_data,
            shuffle=shuffle, seed=seed, verbose=verbose, checkpoint=checkpoint, every=every,
            resume=resume, on_nonfinite=on_nonfinite, clip_norm=clip_norm,
            sync_every=sync_every, on_epoch_end=on_epoch_end,
        )

    # -------------------------------------------------------------------------- inference
    def _outputs(self, X: Any, batch_size: int) -> Array:
        from .training import check_batch_size, prepare_inputs

        check_batch_size(batch_size)
        Xd = prepare_inputs(self, X)
        n = int(Xd.shape[0])
        # Explicit, in-bounds slices: the array API leaves anything else unspecified.
        outs = [
            self.forward(Xd[i : min(i + batch_size, n), ...], training=False)
            for i in range(0, n, batch_size)
        ]
        # ``concat`` is the array-API name; CuPy before v14 only has ``concatenate``.
        concat = getattr(self.xp, "concat", None) or self.xp.concatenate
        return outs[0] if len(outs) == 1 else concat(outs, axis=0)

    def predict_proba(self, X: Any, batch_size: int = 1024) -> np.ndarray:
        """Class probabilities as a host array: softmax of the outputs for a softmax
        cross-entropy model, sigmoid for binary cross-entropy on logits, raw outputs otherwise.
        Shapes: X (N, in_features) -> (N, out_features)."""
        out = self._outputs(X, batch_size)
        if isinstance(self.loss, SoftmaxCrossEntropy):
            out = softmax(self.xp, out)
        elif isinstance(self.loss, BinaryCrossEntropy) and self.loss.from_logits:
            out = sigmoid(self.xp, out)
        return self.backend.to_host(out)

    def predict(self, X: Any, batch_size: int = 1024) -> np.ndarray:
        """Predicted classes as a host int64 array (N,): argmax over outputs, or for a single
        output, 1 where it exceeds 0.5 (probabilities) or 0 (logits)."""
        out = self.backend.to_host(self._outputs(X, batch_size))
        if out.ndim == 2 and out.shape[1] > 1:
            return np.argmax(out, axis=1).astype(np.int64)
        logits = isinstance(self.loss, BinaryCrossEntropy) and self.loss.from_logits
        return (out.reshape(-1) > (0.0 if logits else 0.5)).astype(np.int64)

    def evaluate(self, X: Any, y: Any, batch_size: int = 1024) -> dict[str, float]:
        """Mean loss (and accuracy, for classifiers) over ``(X, y)`` at inference."""
        from .training import check_batch_size, prepare_inputs, prepare_targets

        if self.loss is None:
            raise RuntimeError("evaluate needs a loss: call model.compile(loss, optimizer) first")
        check_batch_size(batch_size)
        Xd = prepare_inputs(self, X)
        yd = prepare_targets(self, y, Xd.shape[0])
        n = Xd.shape[0]
        loss_sum = acc_sum = None
        for i in range(0, n, batch_size):
            j = min(i + batch_size, n)
            xb, yb = Xd[i:j, ...], yd[i:j, ...]
            out = self.forward(xb, training=False)
            # The loss of each batch weighted by its share of the rows: partial sums stay within
            # the largest batch mean (loss * rows would overflow float32 for losses near 1e38).
            # Accuracy * rows counts hits, exact in any float.
            w = float(xb.shape[0])
            lv = self.loss.forward(out, yb, check=False) * (w / n)
            loss_sum = lv if loss_sum is None else loss_sum + lv
            acc = self.loss.accuracy(out, yb)
            if acc is not None:
                acc_sum = acc * w if acc_sum is None else acc_sum + acc * w
        result = {"loss": self.backend.to_float(loss_sum)}
        if acc_sum is not None:
            result["accuracy"] = self.backend.to_float(acc_sum) / n
        return result

    # ---------------------------------------------------------------------------- storage
    def save(self, path: str | Path) -> Path:
        """Write architecture, weights, optimizer state and progress to one ``.npz`` file,
        atomically; see :func:`xpnet.serialization.save`."""
        from .serialization import save

        return save(self, path)


def _fusable_dropout(drop: Dropout) -> bool:
    """Whether ``drop`` can be fused after a ReLU: active, drawing masks from a key."""
    return drop.p > 0.0 and drop.gen.draws_keys and keep_threshold(1.0 - drop.p) <= 0xFFFF


def _relu_dropout_state(relu: Layer, drop: Layer) -> tuple[Array, Array] | None:
    """``(ReLU's y, Dropout's mask)`` when a ``ReLU -> Dropout`` pair saved both, so that its
    backward can run as one kernel; else None."""
    if not (isinstance(relu, ReLU) and isinstance(drop, Dropout)):
        return None
    if type(relu) is not ReLU or type(drop) is not Dropout:  # subclasses may differ
        return None
    if relu.y is None or drop.mask is None:
        return None
    return relu.y, drop.mask
