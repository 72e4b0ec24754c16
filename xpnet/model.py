"""Sequential: a stack of layers with fit / evaluate / predict / save.

``Sequential`` knows layers, losses and optimizers only through their interfaces
(:class:`~xpnet.layers.Layer`, :class:`~xpnet.losses.Loss`, :class:`~xpnet.optim.Optimizer`):
shapes come from ``input_shape``/``output_shape``, names from ``describe``, probabilities and
classes from the loss, and the training step walks the plan its backend builds (the layers one
by one, or fused steps on CuPy: :mod:`xpnet.fusion`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import serialization
from ._checks import seed as check_seed
from .backends import Array, Backend, get_backend
from .distributed import Communicator
from .layers.base import Layer, Shape, Stochastic, format_shape
from .losses import Loss, loss_from_name
from .optim.base import Optimizer, ParamGrad
from .threads import Threads
from .training import Callback, History, check_batch_size, prepare_inputs, prepare_targets
from .training import fit as _fit

__all__ = ["History", "Sequential"]


def _common_dtype(layers: Sequence[Layer]) -> str | None:
    """The dtype every layer holding arrays has, None if none holds any; a mix is an error."""
    seen: dict[str, int] = {}
    for i, layer in enumerate(layers):
        if layer.params or layer.buffers:
            seen.setdefault(layer.backend.dtype_name, i)
    if len(seen) > 1:
        (a, i), (b, j) = sorted(seen.items(), key=lambda kv: kv[1])[:2]
        raise ValueError(
            f"layers hold a mix of dtypes: layers[{i}] is {a} and layers[{j}] is {b}; pass "
            "dtype='float32' or dtype='float64' to convert them all"
        )
    return next(iter(seen), None)


class Sequential(Layer):
    """Layers applied in order: ``y = layer_n(... layer_1(x))``; backward runs them in reverse.

    ``backend`` (``"numpy"``, ``"cupy"``, ``"auto"``, a module or a Backend) and ``dtype`` say
    where the model lives; ``dtype=None`` keeps the layers' own dtype (float32 unless they were
    made otherwise; a mix is an error) or the dtype of a Backend passed in. ``seed`` re-draws
    every layer's initial weights from one host generator, in order, and seeds the dropout
    masks, so one seed gives the same model on every backend. ``params``/``grads`` are flat
    dicts keyed ``"i.W"``.
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
        self.seed = check_seed("seed", seed)
        for i, layer in enumerate(layers):
            for j in range(i):
                if layers[j] is layer:  # one layer twice would overwrite what backward needs
                    raise ValueError(f"layers[{i}] is the same object as layers[{j}]")
        if dtype is None and not isinstance(backend, Backend):
            dtype = _common_dtype(layers)
        self.layers: list[Layer] = list(layers)
        self.loss: Loss | None = None
        self.optimizer: Optimizer | None = None
        self.history = History()
        #: training progress saved in checkpoints (see xpnet.training); None when not training
        self.progress: dict[str, Any] | None = None
        self._plan: tuple[Any, list[Any]] | None = None
        self._name_layers()
        self._check_shapes()
        if self.seed is not None:
            self.reset_parameters_from_seed(self.seed)
        self.backend = self.layers[0].backend if self.layers else get_backend("numpy")
        self.to(backend, dtype)

    # ------------------------------------------------------------------------- structure
    def _name_layers(self) -> None:
        for i, layer in enumerate(self.layers):
            layer.name = f"layer {i} ({layer.describe()})"

    def _check_shapes(self) -> None:
        shape = self.input_shape
        for layer in self.layers:
            required = layer.input_shape
            if shape is not None and not layer.accepts(shape):
                got = f"{shape[0]} features" if len(shape) == 1 else f"shape {format_shape(shape)}"
                raise ValueError(
                    f"{layer.name}: {layer.describe_input()} does not match the {got} produced "
                    "by the layers before it"
                )
            shape = layer.output_shape(shape if shape is not None else required)

    @property
    def input_shape(self) -> Shape | None:
        """The per-sample input shape the first layer that requires one asks for, when every
        layer before it keeps its input's shape (None if no layer says)."""
        for i, layer in enumerate(self.layers):
            required = layer.input_shape
            if required is not None:
                before = self.layers[:i]
                return required if all(p.output_shape(required) == required for p in before) \
                    else None
        return None

    def output_shape(self, input_shape: Shape | None) -> Shape | None:
        shape = input_shape if input_shape is not None else self.input_shape
        for layer in self.layers:
            shape = layer.output_shape(shape)
        return shape

    @property
    def in_features(self) -> int | None:
        """Input width, for a model taking flat rows (None otherwise)."""
        shape = self.input_shape
        return shape[0] if shape is not None and len(shape) == 1 else None

    @property
    def out_features(self) -> int | None:
        """Output width (None when unknown or not flat)."""
        shape = self.output_shape(None)
        return shape[0] if shape is not None and len(shape) == 1 else None

    def describe(self) -> str:
        return f"Sequential of {len(self.layers)} layers"

    def summary(self) -> str:
        """A table of the layers: name, output shape and parameter count, with the totals."""
        rows = [("layer", "output shape", "params")]
        shape = self.input_shape
        total = 0
        for layer in self.layers:
            shape = layer.output_shape(shape)
            count = sum(int(np.prod(p.shape)) for p in layer.params.values())
            total += count
            rows.append((layer.name, format_shape(shape), f"{count:,}"))
        widths = [max(len(r[k]) for r in rows) for k in range(3)]
        lines = [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:>{widths[2]}}" for a, b, c in rows]
        rule = "-" * len(lines[0])
        be = self.backend
        return "\n".join([lines[0], rule, *lines[1:], rule,
                          f"{total:,} parameters ({be.name}, {be.dtype_name}); input "
                          f"{format_shape(self.input_shape)}"])

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
        stochastic = [layer for layer in self.layers if isinstance(layer, Stochastic)]
        for layer, child in zip(stochastic, ss.spawn(len(stochastic)), strict=True):
            layer.reseed(child)

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
    def plan(self) -> list[Any]:
        """The steps of a training forward/backward: built by the backend (``Backend.plan``)
        once per backend and list of layers."""
        key = (self.backend, tuple(id(layer) for layer in self.layers))
        if self._plan is None or self._plan[0] != key:
            self._plan = (key, self.backend.plan(self.layers))
        return self._plan[1]

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
        """Apply the layers in order; in training, the steps of :attr:`plan` (which on a fused
        backend run several layers as one kernel, leaving each what its own forward saves)."""
        for step in self.plan if training else self.layers:
            x = step.forward(x, training=training)
        return x

    def backward(self, dy: Array, need_dx: bool = True) -> Array | None:
        """Backpropagate ``dy`` through every step in reverse; with ``need_dx=False`` the first
        one fills its parameter gradients only (``dx`` of the data is never needed in training)
        and None is returned."""
        steps = self.plan
        # Without dx, steps before the first one holding parameters (Reshape in front of a conv
        # net) need no backward at all: the first trained step fills its gradients only.
        first = 0 if need_dx else next((i for i, s in enumerate(steps) if _trains(s)), 0)
        for i in range(len(steps) - 1, first, -1):
            dy = steps[i].backward(dy)
        if not steps:
            return dy if need_dx else None
        if need_dx:
            return steps[0].backward(dy)
        steps[first].backward_params(dy)
        return None

    # --------------------------------------------------------------------------- training
    def compile(self, loss: Loss | str, optimizer: Optimizer | None = None) -> Sequential:
        """Attach the loss and optimizer ``fit`` uses (moved to the model's backend)."""
        if isinstance(loss, str):
            loss = loss_from_name(loss)
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
        callbacks: list[Callback] | None = None,
        comm: Communicator | None = None,
        threads: Threads = "auto",
    ) -> History:
        """Train with minibatch gradient descent; see :func:`xpnet.training.fit`."""
        return _fit(
            self, X, y, epochs=epochs, batch_size=batch_size, validation_data=validation_data,
            shuffle=shuffle, seed=seed, verbose=verbose, checkpoint=checkpoint, every=every,
            resume=resume, on_nonfinite=on_nonfinite, clip_norm=clip_norm,
            sync_every=sync_every, on_epoch_end=on_epoch_end, callbacks=callbacks, comm=comm,
            threads=threads,
        )

    # -------------------------------------------------------------------------- inference
    def _outputs(self, X: Any, batch_size: int) -> Array:
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
        """Class probabilities as a host array, as the loss reads the outputs: softmax for
        softmax cross-entropy, sigmoid for binary cross-entropy on logits, the outputs
        otherwise. Shapes: X (N, *input_shape) -> (N, out_features)."""
        out = self._outputs(X, batch_size)
        if self.loss is not None:
            out = self.loss.probabilities(out)
        return self.backend.to_host(out)

    def predict(self, X: Any, batch_size: int = 1024) -> np.ndarray:
        """Predicted classes as a host int64 array (N,): argmax over outputs, or for a single
        output, 1 where it exceeds 0.5 (probabilities) or 0 (logits)."""
        out = self.backend.to_host(self._outputs(X, batch_size))
        return (self.loss or Loss()).classes(out)

    def evaluate(self, X: Any, y: Any, batch_size: int = 1024) -> dict[str, float]:
        """Mean loss (and accuracy, for classifiers) over ``(X, y)`` at inference."""
        if self.loss is None:
            raise RuntimeError("evaluate needs a loss: call model.compile(loss, optimizer) first")
        check_batch_size(batch_size)
        Xd = prepare_inputs(self, X)
        return self.evaluate_prepared(Xd, prepare_targets(self, y, Xd.shape[0]), batch_size)

    def evaluate_prepared(self, Xd: Array, yd: Array, batch_size: int = 1024) -> dict[str, float]:
        """:meth:`evaluate` on data already checked and moved by ``prepare_inputs`` /
        ``prepare_targets`` (``fit`` evaluates its validation data so at each epoch end)."""
        assert self.loss is not None
        n = int(Xd.shape[0])
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
        return serialization.save(self, path)

    def export_onnx(self, path: str | Path, **options: Any) -> Path:
        """Write the model as an ONNX graph computing :meth:`predict_proba`; see
        :func:`xpnet.onnx.export` for ``options`` (needs ``pip install "xpnet[onnx]"``)."""
        from .onnx import export

        return export(self, path, **options)

    @classmethod
    def from_parts(cls, parts: serialization.ModelParts) -> Sequential:
        """A NumPy model from what :func:`xpnet.serialization.read_model` rebuilt."""
        model = cls(parts.layers, backend="numpy", dtype=parts.dtype)
        for i, layer in enumerate(model.layers):
            for key in layer.params:
                layer.params[key] = parts.arrays[f"param/{i}/{key}"].copy()
            for key in layer.buffers:
                layer.buffers[key] = parts.arrays[f"buffer/{i}/{key}"].copy()
        model.seed = parts.seed
        if parts.loss is not None:
            model.compile(parts.loss, parts.optimizer)
        model.progress = parts.progress
        model.history = History(parts.history)
        return model


serialization.register_model(Sequential)


def _trains(step: Any) -> bool:
    """Whether a plan step (a layer or a fused run of layers) holds parameters."""
    layers = [step] if isinstance(step, Layer) else list(getattr(step, "layers", [step]))
    return any(bool(getattr(layer, "params", None)) for layer in layers)
