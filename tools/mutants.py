"""Break xpnet's backward passes on purpose and check that the gradient tests catch each one.

Each mutant is a one-spot text edit (a flipped sign, a missing transpose, a factor of 2, a
dropped term, a wrong axis...). For each, the package and the tests are copied into a fresh
temporary directory, the edit is applied THERE (the real source tree is never written), and
pytest runs the chosen test files against that copy (cwd and PYTHONPATH point at it; the tool
checks that ``import xpnet`` really resolves to the copy). A mutant is *caught* when pytest
reports failing tests, *missed* when everything passes; a collection error or crash is
reported as such. The unmutated copy runs first: it must pass, or the figures mean nothing.

    python tools/mutants.py                 # every mutant, gradient tests, "dev" profile
    python tools/mutants.py --list
    python tools/mutants.py dense-dx-sign relu-ge --profile ci
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GRAD_TESTS = (
    "tests/test_gradients_layers.py",
    "tests/test_gradients_losses.py",
    "tests/test_gradients_models.py",
)
OPTIM_TESTS = ("tests/test_optim_rules.py",)
BN_TESTS = ("tests/test_gradients_batchnorm.py", "tests/test_layers_batchnorm.py")
CONV_TESTS = ("tests/test_gradients_conv.py",)


@dataclass(frozen=True)
class Mutant:
    id: str
    path: str  #: file under the repository root
    old: str  #: text that must occur exactly once
    new: str
    what: str
    tests: tuple[str, ...] = GRAD_TESTS
    #: other (old, new) spellings of the same mutation, for source that is being rewritten
    alt: tuple[tuple[str, str], ...] = ()


BN = "xpnet/layers/batchnorm.py"

MUTANTS: list[Mutant] = [
    # ------------------------------------------------------------------------------- Dense
    Mutant("dense-dx-sign", "xpnet/layers/dense.py",
           'return dy @ self.params["W"].T', 'return -(dy @ self.params["W"].T)',
           "Dense dx: flipped sign"),
    Mutant("dense-dx-no-transpose", "xpnet/layers/dense.py",
           'return dy @ self.params["W"].T', 'return dy @ self.params["W"]',
           "Dense dx: missing transpose of W"),
    Mutant("dense-dw-factor2", "xpnet/layers/dense.py",
           'be.matmul(self.x.T, dy, out=self.grads["W"])',
           'be.matmul(self.x.T, dy, out=self.grads["W"])\n        self.grads["W"] *= 2.0',
           "Dense dW: factor of 2"),
    Mutant("dense-dw-transpose", "xpnet/layers/dense.py",
           'be.matmul(self.x.T, dy, out=self.grads["W"])',
           'self.grads["W"][...] = self.x.T @ dy if dy.shape[1] != self.x.shape[1] '
           'else (self.x.T @ dy).T',
           "Dense dW: transposed when W is square (where a shape error can't catch it)"),
    Mutant("dense-db-dropped", "xpnet/layers/dense.py",
           'be.sum_rows(dy, out=self.grads["b"])', 'self.grads["b"][...] = 0.0',
           "Dense db: dropped (left at zero)"),
    Mutant("dense-db-mean", "xpnet/layers/dense.py",
           'be.sum_rows(dy, out=self.grads["b"])',
           'be.sum_rows(dy, out=self.grads["b"])\n            self.grads["b"] /= dy.shape[0]',
           "Dense db: mean over the batch instead of the sum"),
    Mutant("numpy-sum-rows-axis", "xpnet/backends/numpy.py",
           "return np.sum(a, axis=0, out=out)",
           "return np.sum(a, axis=0, out=out) if a.shape[0] == 1 else np.sum(a[:1], axis=0, "
           "out=out)",
           "NumpyBackend.sum_rows: sums only the first row (a dropped term)"),
    Mutant("generic-matmul-factor2", "xpnet/backends/base.py",
           "        out[...] = a @ b\n", "        out[...] = 2.0 * (a @ b)\n",
           "generic Backend.matmul(out=): factor of 2 (array-API backends only)"),
    # ---------------------------------------------------------------------- activations
    Mutant("relu-ge", "xpnet/backends/numpy.py",
           "return np.multiply(dy, y > 0, dtype=dy.dtype)",
           "return np.multiply(dy, y >= 0, dtype=dy.dtype)",
           "NumpyBackend.relu_backward: y >= 0 (passes every gradient through)"),
    Mutant("relu-generic-swapped", "xpnet/backends/base.py",
           "return self.xp.where(y > 0, dy, self.xp.zeros_like(dy))",
           "return self.xp.where(y > 0, self.xp.zeros_like(dy), dy)",
           "generic Backend.relu_backward: branches swapped (array-API backends only)",
           alt=(("return dy * self.xp.astype(y > 0, dy.dtype)",
                 "return dy * self.xp.astype(y <= 0, dy.dtype)"),)),
    Mutant("leaky-slope-dropped", "xpnet/layers/activations.py",
           "return self.xp.where(self._saved(self.x) > 0, dy, self.slope * dy)",
           "return self.xp.where(self._saved(self.x) > 0, dy, dy)",
           "LeakyReLU dx: slope dropped on the negative side"),
    Mutant("leaky-branch-flip", "xpnet/layers/activations.py",
           "return self.xp.where(self._saved(self.x) > 0, dy, self.slope * dy)",
           "return self.xp.where(self._saved(self.x) < 0, dy, self.slope * dy)",
           "LeakyReLU dx: branches flipped"),
    Mutant("sigmoid-sign", "xpnet/layers/activations.py",
           "return dy * y * (1.0 - y)", "return dy * y * (1.0 + y)",
           "Sigmoid dx: y (1 + y), a flipped sign"),
    Mutant("sigmoid-dropped", "xpnet/layers/activations.py",
           "return dy * y * (1.0 - y)", "return dy * y",
           "Sigmoid dx: dropped (1 - y) term"),
    Mutant("tanh-no-square", "xpnet/layers/activations.py",
           "return dy * (1.0 - y * y)", "return dy * (1.0 - y)",
           "Tanh dx: 1 - y instead of 1 - y^2"),
    Mutant("tanh-factor2", "xpnet/layers/activations.py",
           "return dy * (1.0 - y * y)", "return 2.0 * dy * (1.0 - y * y)",
           "Tanh dx: factor of 2"),
    Mutant("softmax-axis", "xpnet/layers/softmax.py",
           "return y * (dy - self.xp.sum(dy * y, axis=-1, keepdims=True))",
           "return y * (dy - self.xp.sum(dy * y, axis=0, keepdims=True))",
           "Softmax dx: sum over the wrong axis (the batch)"),
    Mutant("softmax-dropped", "xpnet/layers/softmax.py",
           "return y * (dy - self.xp.sum(dy * y, axis=-1, keepdims=True))",
           "return y * dy",
           "Softmax dx: dropped the -sum(dy y) term"),
    Mutant("softmax-sign", "xpnet/layers/softmax.py",
           "return y * (dy - self.xp.sum(dy * y, axis=-1, keepdims=True))",
           "return y * (dy + self.xp.sum(dy * y, axis=-1, keepdims=True))",
           "Softmax dx: flipped sign of the sum term"),
    Mutant("dropout-mask-dropped", "xpnet/layers/dropout.py",
           "return dy if self.mask is None else dy * self.mask", "return dy",
           "Dropout dx: mask not applied"),
    Mutant("dropout-unscaled", "xpnet/layers/dropout.py",
           "return dy if self.mask is None else dy * self.mask",
           "return dy if self.mask is None else dy * self.mask * (1.0 - self.p)",
           "Dropout dx: the 1/(1-p) scale undone"),
    # --------------------------------------------------------------------------- losses
    Mutant("mse-factor2", "xpnet/losses/mse.py",
           "return d * (2.0 / d.size)", "return d * (1.0 / d.size)",
           "MSE: factor of 2 missing"),
    Mutant("mse-per-row", "xpnet/losses/mse.py",
           "return d * (2.0 / d.size)", "return d * (2.0 / d.shape[0])",
           "MSE: divided by N instead of N*K"),
    Mutant("sce-sign", "xpnet/losses/softmax_cross_entropy.py",
           "return (p - t) * (1.0 / p.shape[0])", "return (t - p) * (1.0 / p.shape[0])",
           "softmax cross-entropy: flipped sign"),
    Mutant("sce-dropped-target", "xpnet/losses/softmax_cross_entropy.py",
           "return (p - t) * (1.0 / p.shape[0])", "return p * (1.0 / p.shape[0])",
           "softmax cross-entropy: dropped the target term"),
    Mutant("sce-size", "xpnet/losses/softmax_cross_entropy.py",
           "return (p - t) * (1.0 / p.shape[0])", "return (p - t) * (1.0 / p.size)",
           "softmax cross-entropy: divided by N*C instead of N"),
    Mutant("bce-logits-sign", "xpnet/losses/binary_cross_entropy.py",
           "return (sigmoid(self.xp, pred) - t) * scale",
           "return (t - sigmoid(self.xp, pred)) * scale",
           "BCE on logits: flipped sign"),
    Mutant("bce-prob-dropped", "xpnet/losses/binary_cross_entropy.py",
           "return (p - t) / (p * (1.0 - p)) * scale", "return (p - t) / p * scale",
           "BCE on probabilities: dropped the (1 - p) factor"),
    # ------------------------------------------------------------------------ the model
    Mutant("sequential-skip-layer", "xpnet/model.py",
           "            return steps[0].backward(dy)\n", "            return dy\n",
           "Sequential.backward: skips the first layer's backward (dropped term)"),
    # ------------------------------------------- the fused training path (CPU stand-in)
    Mutant("fused-backward-mask-dropped", "xpnet/backends/base.py",
           "return self.relu_backward(dy * mask, a)", "return self.relu_backward(dy, a)",
           "Backend.dropout_relu_backward: dropout mask not applied",
           ("tests/test_cuda_kernels.py",)),
    Mutant("fused-forward-relu-unsaved", "xpnet/layers/fusions.py",
           'relu.y = dense.backend.bias_relu(dense.linear(x), dense.params["b"])\n'
           '    return relu.y',
           'return dense.backend.bias_relu(dense.linear(x), dense.params["b"])',
           "fusion rule Dense -> ReLU: ReLU left without its saved output",
           ("tests/test_cuda_kernels.py",)),
    Mutant("fused-relu-dropout-order", "xpnet/layers/fusions.py",
           "return relu.backend.dropout_relu_backward(dy, drop.mask, relu.y)",
           "return relu.backend.dropout_relu_backward(dy, relu.y, drop.mask)",
           "fusion rule ReLU -> Dropout backward: mask and ReLU output swapped",
           ("tests/test_cuda_kernels.py",)),
    Mutant("fused-relu-maxpool-mask-dropped", "xpnet/layers/fusions.py",
           "return pool.backward(relu.backend.relu_backward(dy, pool.y))",
           "return pool.backward(dy)",
           "fusion rule ReLU -> MaxPool2D backward: ReLU's mask not applied",
           ("tests/test_fusion.py", "tests/test_gradients_conv.py")),
    # ------------------------------------------------------------------------- BatchNorm
    Mutant("bn-mean-term-dropped", BN,
           'dx = be.channel_op("subtract", dy_rows, sum_dy * (1.0 / m))',
           'dx = be.channel_op("subtract", dy_rows, sum_dy * 0.0)',
           "BatchNorm dx (training): dropped the -sum(dxhat) (mean) term", BN_TESTS),
    Mutant("bn-var-term-dropped", BN,
           '        dx -= be.channel_op("multiply", xc, sum_dy_xhat * (inv_std / m))'
           '  # xhat = xc inv_std\n', "",
           "BatchNorm dx (training): dropped the -xhat sum(dxhat xhat) (variance) term",
           BN_TESTS),
    Mutant("bn-simplified-backward", BN,
           'if self.mode == "eval":\n            return self._like_input(be.channel_op(',
           "return self._like_input(be.channel_op(",
           "BatchNorm dx (training): the inference backward (both statistics terms dropped)",
           BN_TESTS),
    Mutant("bn-no-1-over-m", BN,
           'be.channel_op("multiply", dx, scale, out=dx)',
           'be.channel_op("multiply", dx, m * scale, out=dx)',
           "BatchNorm dx (training): the 1/m factor missing", BN_TESTS),
    Mutant("bn-dx-gamma-dropped", BN,
           'scale = inv_std * self.params["gamma"]', "scale = inv_std",
           "BatchNorm dx: gamma not applied (dxhat = dy)", BN_TESTS),
    Mutant("bn-dgamma-sum-dy", BN,
           'self.grads["gamma"][...] = sum_dy_xhat',
           'self.grads["gamma"][...] = sum_dy',
           "BatchNorm dgamma: sum(dy) instead of sum(dy xhat)", BN_TESTS),
    Mutant("bn-dgamma-mean", BN,
           'self.grads["gamma"][...] = sum_dy_xhat',
           'self.grads["gamma"][...] = sum_dy_xhat * (1.0 / dy_rows.shape[0])',
           "BatchNorm dgamma: mean over the batch instead of the sum", BN_TESTS),
    Mutant("bn-dbeta-times-xhat", BN,
           'self.grads["beta"][...] = sum_dy',
           'self.grads["beta"][...] = sum_dy_xhat',
           "BatchNorm dbeta: sum(dy xhat) instead of sum(dy)", BN_TESTS),
    Mutant("bn-unbiased-normalisation", BN,
           "var = be.column_dots(xc, xc) * (1.0 / m)  # biased: / m",
           "var = be.column_dots(xc, xc) * (1.0 / (m - 1))",
           "BatchNorm forward: normalises with the unbiased variance (m - 1)", BN_TESTS),
    Mutant("bn-eps-outside-sqrt", BN,
           "self.inv_std = 1.0 / xp.sqrt(var + self.eps)",
           "self.inv_std = 1.0 / (xp.sqrt(var) + self.eps)",
           "BatchNorm forward: eps added outside the square root", BN_TESTS),
    Mutant("bn-running-var-biased", BN,
           "rv += (mom * m / (m - 1)) * xp.reshape(var, c)", "rv += mom * xp.reshape(var, c)",
           "BatchNorm running_var: the biased batch variance (PyTorch keeps the unbiased)",
           BN_TESTS),
    Mutant("bn-momentum-swapped", BN,
           "rm += mom * xp.reshape(mean, c)", "rm += (1.0 - mom) * xp.reshape(mean, c)",
           "BatchNorm running_mean: momentum weights swapped", BN_TESTS),
    Mutant("bn-eval-uses-batch-stats", BN,
           "        if training:\n            m = int(", "        if True:\n            m = int(",
           "BatchNorm inference: normalises with the batch statistics", BN_TESTS),
    Mutant("gradcheck-buffers-shared", "xpnet/testing/_runner.py",
           "            new.buffers[key] = backend.asarray(host, dtype=backend.dtype)\n",
           "            pass\n",
           "check_gradients: the private copy shares the user's buffer arrays", BN_TESTS),
    Mutant("parallel-batchnorm-allowed", "xpnet/training/parallel.py",
           "        if names:\n            raise DistributedError(",
           "        if not names:\n            raise DistributedError(",
           "fit(comm=...) over several processes: batch-dependent layers let through",
           BN_TESTS),
    Mutant("skip-keeps-bad-buffers", "xpnet/training/loop.py",
           "        restore_buffers(kept)\n        error = broken_weights(",
           "        error = broken_weights(",
           "fit(on_nonfinite='skip'): a skipped batch's running statistics kept", BN_TESTS),
    # ----------------------------------------------- convolution, pooling, reshape layers
    Mutant("conv-dw-factor2", "xpnet/layers/conv.py",
           'self.grads["W"][...] = xp.reshape(dw, self.weight_shape)',
           'self.grads["W"][...] = 2.0 * xp.reshape(dw, self.weight_shape)',
           "Conv2D dW: factor of 2", CONV_TESTS),
    Mutant("conv-dw-kernel-flipped", "xpnet/layers/conv.py",
           'self.grads["W"][...] = xp.reshape(dw, self.weight_shape)',
           'self.grads["W"][...] = xp.flip(xp.reshape(dw, self.weight_shape), axis=(2, 3))',
           "Conv2D dW: kernel flipped (convolution instead of cross-correlation)", CONV_TESTS),
    Mutant("conv-dw-hwc-order", "xpnet/layers/conv.py",
           "dw = permute(xp, xp.reshape(dw, (o, kh, kw, c)), (0, 3, 1, 2))",
           "dw = xp.reshape(dw, (o, c, kh, kw))",
           "Conv2D dW on NumPy: (kh, kw, C) columns not put back in W's (C, kh, kw) order",
           CONV_TESTS),
    Mutant("conv-db-dropped", "xpnet/layers/conv.py",
           'self.backend.conv_bias_grad(dy2, out=self.grads["b"])',
           'self.grads["b"][...] = 0.0',
           "Conv2D db: dropped (left at zero)", CONV_TESTS),
    Mutant("conv-db-numpy-mean", "xpnet/backends/numpy.py",
           "return np.matmul(ones, dy2, out=out)",
           "return np.divide(np.matmul(ones, dy2, out=out), dy2.shape[0], out=out)",
           "NumpyBackend.conv_bias_grad: mean over pixels instead of the sum", CONV_TESTS),
    Mutant("conv-dx-sign", "xpnet/layers/conv.py",
           "return self.backend.conv_input_grad(dy2, self._w2(), self.x_shape, self.geometry)",
           "return -self.backend.conv_input_grad(dy2, self._w2(), self.x_shape, self.geometry)",
           "Conv2D dx: flipped sign", CONV_TESTS),
    Mutant("numpy-conv-dx-overwrite", "xpnet/backends/numpy.py",
           "dx[:, rows[1], cols[1], :] += buf.reshape(n, ho, wo, c)[:, rows[0], cols[0], :]",
           "dx[:, rows[1], cols[1], :] = buf.reshape(n, ho, wo, c)[:, rows[0], cols[0], :]",
           "NumpyBackend.conv_input_grad: overlapping windows overwrite instead of summing",
           CONV_TESTS),
    Mutant("numpy-conv-dx-pad-offset", "xpnet/backends/numpy.py",
           "oi, oj = i - ph, j - pw  # input row/column of output pixel (0, 0)",
           "oi, oj = i, j  # input row/column of output pixel (0, 0)",
           "NumpyBackend.conv_input_grad: padding cropped from the wrong side", CONV_TESTS),
    Mutant("col2im-overwrite", "xpnet/backends/conv_ops.py",
           "dx[:, :, rows, cols] = dx[:, :, rows, cols] + dwin[..., k]",
           "dx[:, :, rows, cols] = dwin[..., k]",
           "generic col2im: overlapping windows overwrite instead of summing", CONV_TESTS),
    Mutant("col2im-pad-offset", "xpnet/backends/conv_ops.py",
           "return dx[:, :, ph : ph + h, pw : pw + w] if ph or pw else dx",
           "return dx[:, :, :h, :w] if ph or pw else dx",
           "generic col2im: padding cropped from the wrong side", CONV_TESTS),
    Mutant("maxpool-ties-all", "xpnet/backends/numpy.py",
           "            taken &= free\n", "",
           "NumpyBackend.max_pool: every tied maximum gets the gradient, not the first",
           CONV_TESTS),
    Mutant("maxpool-generic-ties-all", "xpnet/backends/conv_ops.py",
           "taken = hit if free is None else xp.logical_and(hit, free)", "taken = hit",
           "generic max_pool: every tied maximum gets the gradient, not the first", CONV_TESTS),
    Mutant("maxpool-route-first", "xpnet/backends/numpy.py",
           "np.multiply(dy, taken, out=dx[:, :, rows, cols], dtype=dy.dtype)",
           "np.multiply(dy, route[0], out=dx[:, :, rows, cols], dtype=dy.dtype)",
           "NumpyBackend.max_pool_backward: gradient routed by the first position's mask",
           CONV_TESTS),
    Mutant("maxpool-generic-route-first", "xpnet/backends/conv_ops.py",
           "xp.where(taken, dy, zero)", "xp.where(route[0], dy, zero)",
           "generic max_pool_backward: gradient routed by the first position's mask",
           CONV_TESTS),
    Mutant("maxpool-overlap-overwrite", "xpnet/backends/numpy.py",
           "dx[:, :, rows, cols] += np.multiply(dy, taken, dtype=dy.dtype)",
           "dx[:, :, rows, cols] = np.multiply(dy, taken, dtype=dy.dtype)",
           "NumpyBackend.max_pool_backward: overlapping windows overwrite", CONV_TESTS),
    Mutant("avgpool-unscaled", "xpnet/backends/numpy.py",
           "share = np.multiply(dy, 1.0 / len(parts), dtype=dy.dtype)", "share = dy",
           "NumpyBackend.avg_pool_backward: the 1/(kh kw) scale dropped", CONV_TESTS),
    Mutant("avgpool-generic-scale-kh", "xpnet/backends/conv_ops.py",
           "share = dy * (1.0 / len(parts))", "share = dy * (1.0 / geom[0])",
           "generic avg_pool_backward: scaled by 1/kh instead of 1/(kh kw)", CONV_TESTS),
    Mutant("avgpool-overlap-overwrite", "xpnet/backends/numpy.py",
           "                dx[:, :, rows, cols] += share\n",
           "                dx[:, :, rows, cols] = share\n",
           "NumpyBackend.avg_pool_backward: overlapping windows overwrite", CONV_TESTS),
    Mutant("reshape-backward-order", "xpnet/layers/reshape.py",
           "return self.xp.reshape(dy, self.x_shape)",
           "return self.xp.reshape(self.xp.flip(dy, axis=-1), self.x_shape)",
           "Reshape/Flatten dx: elements in the wrong order", CONV_TESTS),
    # ---------------------------------------------------- optimizers (the update-rule tests)
    Mutant("sgd-nesterov", "xpnet/optim/sgd.py",
           "p -= lr * (g + self.momentum * v) if self.nesterov else lr * v",
           "p -= lr * (g + v) if self.nesterov else lr * v",
           "SGD Nesterov: momentum factor dropped", OPTIM_TESTS),
    Mutant("adam-bias1", "xpnet/optim/adam.py",
           '"lr_t": lr * c2 / (1.0 - self.beta1**self.t),', '"lr_t": lr * c2,',
           "Adam: first-moment bias correction dropped", OPTIM_TESTS),
    Mutant("adam-coupled-wd", "xpnet/optim/adam.py",
           "p -= (lr * self.weight_decay) * p", "p -= (self.weight_decay) * p",
           "Adam: weight decay not scaled by lr", OPTIM_TESTS),
]


def _copy_tree(dest: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis", ".pytest_cache")
    shutil.copytree(ROOT / "xpnet", dest / "xpnet", ignore=ignore)
    shutil.copytree(ROOT / "tests", dest / "tests", ignore=ignore)
    shutil.copy2(ROOT / "pyproject.toml", dest / "pyproject.toml")


def _env(dest: Path, profile: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(dest) + os.pathsep + env.get("PYTHONPATH", "")
    env["HYPOTHESIS_PROFILE"] = profile
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run_one(mutant: Mutant | None, profile: str, extra: list[str]) -> tuple[str, float, str]:
    """Apply ``mutant`` (None: the unmutated baseline) to a fresh copy and run its tests."""
    with tempfile.TemporaryDirectory(prefix="xpnet-mutant-") as tmp:
        dest = Path(tmp)
        _copy_tree(dest)
        tests: tuple[str, ...] = GRAD_TESTS + OPTIM_TESTS + BN_TESTS
        tests: tuple[str, ...] = GRAD_TESTS + OPTIM_TESTS + CONV_TESTS
        if mutant is not None:
            target = dest / mutant.path
            text = target.read_text()
            for old, new in ((mutant.old, mutant.new), *mutant.alt):
                if text.count(old) == 1:
                    target.write_text(text.replace(old, new))
                    break
            else:
                return "stale", 0.0, f"{mutant.path}: the text to mutate is not there once " \
                                     "(source changed?)"
            tests = mutant.tests
        env = _env(dest, profile)
        where = subprocess.run(
            [sys.executable, "-c", "import xpnet; print(xpnet.__file__)"],
            cwd=dest, env=env, capture_output=True, text=True, check=False,
        ).stdout.strip()
        if not where.startswith(str(dest)):
            raise SystemExit(f"import xpnet resolves to {where!r}, not the copy in {dest}")
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
             "-W", "ignore::DeprecationWarning", *extra, *tests],
            cwd=dest, env=env, capture_output=True, text=True, check=False,
        )
        took = time.perf_counter() - start
        tail = (proc.stdout + proc.stderr).strip().splitlines()
        summary = tail[-1] if tail else ""
        status = {0: "missed", 1: "caught"}.get(proc.returncode, f"error (pytest exit "
                                                                   f"{proc.returncode})")
        if mutant is None:
            status = "passes" if proc.returncode == 0 else "FAILS"
        return status, took, summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("ids", nargs="*", help="mutant ids to run (default: all)")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    ap.add_argument("--profile", default="dev", help="Hypothesis profile (default: dev)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the unmutated run")
    args, extra = ap.parse_known_args(argv)
    if args.list:
        for m in MUTANTS:
            print(f"{m.id:<24} {m.path:<40} {m.what}")
        return 0
    chosen = [m for m in MUTANTS if not args.ids or m.id in args.ids]
    unknown = set(args.ids) - {m.id for m in MUTANTS}
    if unknown:
        ap.error(f"unknown mutant id(s): {sorted(unknown)}")
    if not args.no_baseline:
        status, took, summary = run_one(None, args.profile, extra)
        print(f"{'baseline (unmutated)':<24} {status:<8} {took:6.1f}s  {summary}", flush=True)
        if status != "passes":
            print("the unmutated copy fails its tests: fix that first")
            return 2
    counts: dict[str, int] = {}
    for m in chosen:
        status, took, summary = run_one(m, args.profile, extra)
        key = status.split(" ")[0]
        counts[key] = counts.get(key, 0) + 1
        print(f"{m.id:<24} {status:<8} {took:6.1f}s  {m.what}  [{summary}]", flush=True)
    tried = sum(counts.values()) - counts.get("stale", 0)
    print(f"\n{tried} mutants tried: {counts.get('caught', 0)} caught, "
          f"{counts.get('missed', 0)} missed, {counts.get('error', 0)} errors, "
          f"{counts.get('stale', 0)} stale")
    return 0 if counts.get("missed", 0) == 0 and counts.get("error", 0) == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
