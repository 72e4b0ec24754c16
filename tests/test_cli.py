"""The ``xpnet`` command line: train, evaluate, predict, help, errors and Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import xpnet
from xpnet.cli import main
from xpnet.datasets import load_dataset, preprocess, write_idx


def write_image(path: Path, pixels: np.ndarray, **options) -> str:
    """Save a uint8 image with Pillow (the format from the suffix); its path as a string."""
    Image = pytest.importorskip("PIL.Image", reason='Pillow is not installed (xpnet[images])')
    Image.fromarray(pixels).save(path, **options)
    return str(path)


@pytest.fixture(autouse=True)
def isolated_data(tmp_path_factory, monkeypatch):
    """No system folder, no $XPNET_DATA and an empty cache: only what a test puts there."""
    root = tmp_path_factory.mktemp("data-env")
    monkeypatch.setenv("XPNET_SYSTEM_DATA", str(root / "system"))
    monkeypatch.setenv("XPNET_CACHE", str(root / "cache"))
    monkeypatch.delenv("XPNET_DATA", raising=False)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "small.npz"
    assert main(["train", "--hidden", "64", "--epochs", "4", "--save", str(path)]) == 0
    return path


@pytest.fixture(scope="module")
def sample_test():
    X, y = load_dataset("mnist-sample", "test")
    return X, y


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(err: str, command: str, *parts: str) -> None:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"xpnet {command}: error: ")
    for part in parts:
        assert part in lines[0]


# -------------------------------------------------------------------------------- train
def test_train_reports_epochs_and_held_out_accuracy(capsys, tmp_path):
    path = tmp_path / "m.npz"
    code, out, err = run(capsys, "train", "--hidden", "32", "--epochs", "3", "--limit", "800",
                         "--save", str(path))
    assert code == 0, err
    assert "data: mnist-sample: 800 training / 800 held-out test digits" in out
    epochs = re.findall(r"^epoch (\d)/3  loss [\d.]+  acc [\d.]+  val acc ([\d.]+)  lr \S+  "
                        r"[\d.]+s$", out, flags=re.M)
    assert [e for e, _ in epochs] == ["1", "2", "3"]
    match = re.search(r"held-out accuracy: ([\d.]+) on 800 digits \(mnist-sample test split\)",
                      out)
    assert match is not None
    acc = float(match.group(1))
    assert acc > 0.6
    # The figure printed is the saved model's accuracy on those held-out digits: --limit
    # draws the same random 800 of them every run.
    X, y = load_dataset("mnist-sample", "test")
    rows = np.sort(np.random.default_rng(0).choice(1000, 800, replace=False))
    model = xpnet.load(path)
    assert float(np.mean(model.predict(preprocess(X[rows])) == y[rows])) == pytest.approx(
        acc, abs=5e-5)
    assert float(epochs[-1][1]) == pytest.approx(acc, abs=5e-5)


def test_train_options_build_the_model_they_describe(capsys, tmp_path):
    path = tmp_path / "m.npz"
    code, out, err = run(capsys, "train", "--hidden", "20", "10", "--activation", "tanh",
                         "--dropout", "0", "--optimizer", "nesterov", "--lr", "0.05",
                         "--schedule", "step", "--step-size", "1", "--gamma", "0.5",
                         "--epochs", "2", "--batch-size", "100", "--limit", "300",
                         "--dtype", "float64", "--seed", "3", "--save", str(path))
    assert code == 0, err
    model = xpnet.load(path)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Dense", "Tanh", "Dense", "Tanh", "Dense"]
    assert model.backend.dtype_name == "float64"
    assert model.optimizer.config()["nesterov"] is True
    assert model.history["lr"] == pytest.approx([0.05, 0.025])
    assert "784-20-10-10 Tanh; nesterov lr 0.05 momentum 0.9, x0.5 every 1 epochs" in out


def test_train_is_reproducible_with_a_seed(capsys):
    args = ("train", "--hidden", "16", "--epochs", "2", "--limit", "300", "--seed", "7")
    _, first, _ = run(capsys, *args)
    _, second, _ = run(capsys, *args)
    strip = lambda s: re.sub(r"\d+\.\d+s\b|in [\d.]+s", "", s)  # noqa: E731 (timings differ)
    assert strip(first) == strip(second)


def test_train_cnn_builds_the_convolutional_net_saves_and_evaluates(capsys, tmp_path):
    """--arch cnn with --channels: the conv blocks in the model line, a model file that
    evaluate reads back (BatchNorm's running statistics included) with the same accuracy."""
    path = tmp_path / "cnn.npz"
    code, out, err = run(capsys, "train", "--arch", "cnn", "--channels", "4", "8", "--hidden",
                         "16", "--epochs", "1", "--limit", "300", "--batch-size", "32",
                         "--save", str(path), "--threads", "1")
    assert code == 0, err
    # The CNN's own recipe where the command line says nothing (the batch size it does say).
    assert ("model: 784-1x28x28-4x28x28-4x14x14-8x14x14-8x7x7-392-16-10 BatchNorm2d/ReLU, "
            "dropout 0.3; adam lr 0.002 beta1 0.9, cosine decay; batch 32, 1 epochs") in out
    trained = float(re.search(r"^held-out accuracy: ([\d.]+)", out, re.M).group(1))
    code, out, err = run(capsys, "evaluate", str(path), "--limit", "300")
    assert code == 0, err
    assert f"accuracy: {trained:.4f}" in out or f"accuracy {trained:.4f}" in out, out


def test_train_threads_option_sets_and_reports_the_blas_threads(capsys):
    """--threads N runs fit under exactly N threads (read back by threadpoolctl) and says so;
    --threads none leaves the library alone and says nothing."""
    from threadpoolctl import threadpool_info

    args = ("train", "--hidden", "16", "--epochs", "1", "--limit", "300")
    before = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    code, out, err = run(capsys, *args, "--threads", "3")
    assert code == 0, err
    assert re.search(r"^trained 1 epochs in [\d.]+s \(BLAS threads: 3, as asked\)$", out, re.M)
    assert [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"] == before
    code, out, err = run(capsys, *args, "--threads", "none")
    assert code == 0, err
    assert re.search(r"^trained 1 epochs in [\d.]+s$", out, re.M)
    code, out, err = run(capsys, *args)  # auto, on a model too small to split: 1 thread
    assert re.search(r"^trained 1 epochs in [\d.]+s \(BLAS threads: 1, auto\)$", out, re.M)


def test_backend_auto_says_which_it_chose(capsys):
    code, out, _ = run(capsys, "train", "--backend", "auto", "--hidden", "8", "--epochs", "1",
                       "--limit", "100")
    assert code == 0
    assert re.search(r"backend: --backend auto chose (numpy|cupy) \(", out)


def test_cupy_backend_without_cupy_is_a_clean_error(capsys):
    if xpnet.cuda_available():
        pytest.skip("CuPy and a GPU are present")
    code, _, err = run(capsys, "train", "--backend", "cupy", "--epochs", "1")
    assert code == 2
    assert_one_line_error(err, "train", "CuPy")


def test_missing_full_dataset_is_explained_never_replaced_by_the_sample(capsys, tmp_path):
    code, out, err = run(capsys, "train", "--dataset", "mnist", "--data-dir", str(tmp_path),
                         "--no-download")
    assert code == 2
    assert "held-out accuracy" not in out and "epoch" not in out
    assert "Traceback" not in err
    first, *details = err.strip().splitlines()
    assert first.startswith("xpnet train: error: MNIST (train split) is not available")
    assert any("train-images-idx3-ubyte.gz" in line for line in details)
    assert any("--data-dir" in line for line in details)


def test_the_mlp_keeps_its_recipe_and_options_given_win(capsys):
    code, out, err = run(capsys, "train", "--hidden", "8", "--epochs", "1", "--limit", "100")
    assert code == 0, err
    assert ("dropout 0.2; adam lr 0.005 beta1 0.8, inverse-time decay 0.3; batch 256, 1 epochs"
            in out)
    code, out, err = run(capsys, "train", "--arch", "cnn", "--channels", "2", "--hidden", "4",
                         "--epochs", "1", "--limit", "100", "--lr", "0.01", "--schedule",
                         "constant", "--dropout", "0")
    assert code == 0, err
    assert "; adam lr 0.01 beta1 0.9, constant lr; batch 128, 1 epochs" in out
    assert "dropout" not in out.split("; adam")[0]


def test_channels_need_the_cnn(capsys):
    code, out, err = run(capsys, "train", "--channels", "8")
    assert code == 2 and "epoch" not in out
    assert_one_line_error(err, "train", "--channels is for --arch cnn (convolution blocks); got "
                          "--arch mlp")


def test_resume_needs_a_checkpoint(capsys):
    code, _, err = run(capsys, "train", "--resume")
    assert code == 2
    assert_one_line_error(err, "train", "--resume needs --checkpoint")


@pytest.mark.parametrize(
    "argv,part",
    [
        (["train", "--epochs", "0"], "argument --epochs: expected a positive integer, got '0'"),
        (["train", "--dropout", "1"], "expected a probability in [0, 1)"),
        (["train", "--lr", "-1"], "expected a positive number"),
        (["train", "--dataset", "cifar"], "invalid choice: 'cifar'"),
        (["train", "--arch", "cnn", "--channels", "0"], "argument --channels: expected a "
         "positive integer, got '0'"),
        (["train", "--threads", "0"],
         "argument --threads: expected 'auto', 'none' or a positive integer, got '0'"),
        (["evaluate"], "the following arguments are required: MODEL"),
        (["predict", "m.npz"], "the following arguments are required: IMAGE"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_usage_errors_are_one_line_with_status_2(argv, part):
    proc = subprocess.run([sys.executable, "-m", "xpnet.cli", *argv], capture_output=True,
                          text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and part in lines[0], proc.stderr
    assert "--help" in lines[0]


@pytest.mark.parametrize("command", [[], ["train"], ["evaluate"], ["predict"]])
def test_every_help_teaches_by_example(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out
    assert re.search(r"^  xpnet " + (command[0] if command else r"\w+"), out, flags=re.M)


def test_no_command_prints_help(capsys):
    code, out, _ = run(capsys)
    assert code == 2 and "examples:" in out


# ----------------------------------------------------------------------------- evaluate
def test_evaluate_text_report(capsys, model_path, sample_test):
    X, y = sample_test
    pred = xpnet.load(model_path).predict(preprocess(X))
    code, out, err = run(capsys, "evaluate", str(model_path))
    assert code == 0, err
    correct = int(np.sum(pred == y))
    assert f"accuracy: {correct / 1000:.4f} ({correct}/1000 correct)" in out
    assert "per-class accuracy:" in out and "confusion matrix" in out
    for digit in range(10):
        hits = int(np.sum((pred == y) & (y == digit)))
        assert re.search(rf"^  {digit}  [\d.]+  \({hits}/100\)$", out, flags=re.M)


def test_evaluate_json(capsys, model_path, sample_test):
    X, y = sample_test
    pred = xpnet.load(model_path).predict(preprocess(X))
    code, out, _ = run(capsys, "evaluate", str(model_path), "--json")
    assert code == 0
    result = json.loads(out)
    assert result["accuracy"] == pytest.approx(float(np.mean(pred == y)))
    assert result["n"] == 1000 and result["dataset"] == "mnist-sample"
    cm = np.array(result["confusion_matrix"])
    assert cm.shape == (10, 10) and cm.sum() == 1000 and np.trace(cm) == np.sum(pred == y)
    assert result["per_class_accuracy"]["3"] == pytest.approx(cm[3, 3] / cm[3].sum())
    assert result["loss"] > 0


def test_evaluate_needs_only_the_test_split_files(capsys, model_path, tmp_path, sample_test):
    """A folder holding just t10k-* works; here it holds the sample's test digits as MNIST."""
    X, y = sample_test
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", X.reshape(-1, 28, 28))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", y.astype(np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    code, out, err = run(capsys, "evaluate", str(model_path), "--dataset", "mnist",
                         "--data-dir", str(tmp_path), "--json")
    assert code == 0, err
    _, ref, _ = run(capsys, "evaluate", str(model_path), "--json")
    assert json.loads(out)["accuracy"] == json.loads(ref)["accuracy"]
    assert json.loads(out)["confusion_matrix"] == json.loads(ref)["confusion_matrix"]


def test_evaluate_fashion_uses_class_names(capsys, model_path, tmp_path, sample_test):
    X, y = sample_test
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    write_idx(folder / "t10k-images-idx3-ubyte", X.reshape(-1, 28, 28))
    write_idx(folder / "t10k-labels-idx1-ubyte", y.astype(np.uint8))
    code, out, _ = run(capsys, "evaluate", str(model_path), "--dataset", "fashion-mnist",
                       "--data-dir", str(tmp_path), "--limit", "300")
    assert code == 0
    assert "300 images" in out and "9 Ankle boot" in out


def test_evaluate_corrupt_data_file(capsys, model_path, tmp_path, sample_test):
    X, y = sample_test
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", X.reshape(-1, 28, 28))
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b garbage")
    code, _, err = run(capsys, "evaluate", str(model_path), "--dataset", "mnist",
                       "--data-dir", str(tmp_path), "--no-download")
    assert code == 2
    assert "Traceback" not in err and "t10k-labels-idx1-ubyte.gz" in err.splitlines()[0]


def test_evaluate_missing_test_split(capsys, model_path, tmp_path):
    code, _, err = run(capsys, "evaluate", str(model_path), "--dataset", "fashion-mnist",
                       "--data-dir", str(tmp_path), "--no-download")
    assert code == 2
    assert "Fashion-MNIST (test split) is not available" in err.splitlines()[0]


def test_evaluate_bad_model_files(capsys, tmp_path):
    code, _, err = run(capsys, "evaluate", str(tmp_path / "absent.npz"))
    assert code == 2
    assert_one_line_error(err, "evaluate", "model file not found")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"PK\x03\x04 not really a zip")
    code, _, err = run(capsys, "evaluate", str(junk))
    assert code == 2
    assert_one_line_error(err, "evaluate", "junk.npz")
    from xpnet.layers import Dense

    other = xpnet.Sequential([Dense(5, 3)], seed=0)
    other.compile("softmax_cross_entropy")
    other.save(tmp_path / "other.npz")
    code, _, err = run(capsys, "evaluate", str(tmp_path / "other.npz"))
    assert code == 2
    assert_one_line_error(err, "evaluate", "maps 5 inputs to 3 outputs")


# ------------------------------------------------------------------------------ predict
def test_predict_matches_the_model_on_the_same_digits(capsys, model_path, tmp_path,
                                                      sample_test):
    X, y = sample_test
    rows = [0, 250, 520, 999]
    paths = [write_image(tmp_path / f"d{i}.png", X[i].reshape(28, 28)) for i in rows]
    # the same digit as dark ink on a white, larger, RGB canvas, as a JPEG
    ink = np.kron(255 - X[520].reshape(28, 28), np.ones((3, 3), dtype=np.uint8))
    paths.append(write_image(tmp_path / "ink.jpg", np.dstack([ink] * 3), quality=95))
    model = xpnet.load(model_path)
    expected = model.predict_proba(preprocess(X[rows + [520]]))
    code, out, err = run(capsys, "predict", str(model_path), *paths, "--json")
    assert code == 0, err
    result = json.loads(out)["predictions"]
    assert [r["image"] for r in result] == paths
    for r, p in zip(result[:4], expected, strict=False):  # PNG: the same pixels
        np.testing.assert_allclose(r["probabilities"], p, atol=1e-3)
    for r, p in zip(result, expected, strict=True):
        assert r["class"] == int(np.argmax(p))
        assert sum(r["probabilities"]) == pytest.approx(1.0, abs=1e-5)

    code, out, _ = run(capsys, "predict", str(model_path), paths[0], "--show")
    assert code == 0
    k = int(np.argmax(expected[0]))
    assert out.startswith(f"{paths[0]}: {k}  p {expected[0][k]:.4f}\n  probabilities: 0:")
    assert len(out.splitlines()) == 2 + 28


@pytest.mark.parametrize("name,content,message", [
    ("empty.png", b"", "empty.png: an empty file (0 bytes), not an image"),
    ("digit.png", b"not an image\n", "digit.png: a text file, not an image (it starts with "
                                     "'not an image')"),
    ("digit.jpg", None, "digit.jpg: a truncated or corrupt JPEG file"),
    ("none.png", "missing", "none.png: not found"),
    ("folder", "dir", "folder: a directory, not an image file"),
    ("model.npz", b"PK\x03\x04rest", "model.npz: a ZIP archive (such as an .npz model file)"),
    ("blank.png", "blank", "blank.png: the image is blank"),
])
def test_predict_names_the_file_and_what_it_is(capsys, model_path, tmp_path, sample_test,
                                              name, content, message):
    """Issue 15: a JPEG, an empty file or a text file all used to say "not a PNG file"."""
    path = tmp_path / name
    if content == "dir":
        path.mkdir()
    elif content == "blank":
        write_image(path, np.full((30, 30), 200, dtype=np.uint8))
    elif content is None:  # a real JPEG cut in half
        write_image(path, sample_test[0][0].reshape(28, 28))
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif isinstance(content, bytes):
        path.write_bytes(content)
    ok = write_image(tmp_path / "ok.png", sample_test[0][1].reshape(28, 28))
    code, out, err = run(capsys, "predict", str(model_path), ok, str(path))
    assert code == 2 and out == ""
    assert_one_line_error(err, "predict", message)


def test_predict_without_pillow_says_how_to_install_it(model_path):
    code = ("import sys; sys.modules['PIL'] = None\n"
            "from xpnet.cli import main\n"
            f"sys.exit(main(['predict', {str(model_path)!r}, 'digit.png']))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 2
    assert 'pip install "xpnet[images]"' in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


# ----------------------------------------------------------------- plots, Ctrl-C, resume
def test_train_plot_writes_one_png(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "run.png"
    code, out, err = run(capsys, "train", "--hidden", "16", "--epochs", "2", "--limit", "300",
                         "--plot", str(path))
    assert code == 0, err
    assert f"plot written to {path}" in out
    from PIL import Image

    with Image.open(path) as img:
        assert (img.format, img.size) == ("PNG", (1700, 1050))


def test_plot_without_matplotlib_fails_before_training(tmp_path):
    code = ("import sys; sys.modules['matplotlib'] = None\n"
            "from xpnet.cli import main\n"
            f"sys.exit(main(['train', '--plot', {str(tmp_path / 'p.png')!r}]))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "epoch" not in proc.stdout
    assert "pip install 'xpnet[plot]'" in proc.stderr and "Traceback" not in proc.stderr


def interrupt_after_first_epoch(argv: list[str]) -> tuple[int, str]:
    """Start ``xpnet train``, send SIGINT once it prints its first epoch; (status, stderr)."""
    proc = subprocess.Popen([sys.executable, "-m", "xpnet.cli", *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        for line in proc.stdout:
            if re.match(r"epoch +1/", line):
                break
            assert time.monotonic() < deadline, "no epoch line within a minute"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, err


def test_ctrl_c_stops_cleanly_then_resume_continues(tmp_path):
    ckpt = tmp_path / "run.ckpt.npz"
    argv = ["train", "--hidden", "16", "--limit", "500", "--checkpoint", str(ckpt)]
    code, err = interrupt_after_first_epoch([*argv, "--epochs", "100000"])
    assert code == 130, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("xpnet train: training interrupted during epoch")
    assert f"checkpoint saved to {ckpt}" in lines[0] and "--resume" in lines[0]

    done = xpnet.load(ckpt).progress["epoch"]  # epochs finished before the interruption
    target = done + 1
    resumed = subprocess.run([sys.executable, "-m", "xpnet.cli", *argv, "--epochs",
                              str(target), "--resume"], capture_output=True, text=True,
                             timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {ckpt} at epoch {done + 1}/{target}" in resumed.stdout
    assert re.search(rf"^epoch +{target}/{target} ", resumed.stdout, flags=re.M)
    assert "held-out accuracy:" in resumed.stdout
    assert xpnet.load(ckpt).progress["finished"] is True


def test_ctrl_c_without_checkpoint_says_nothing_was_saved():
    code, err = interrupt_after_first_epoch(
        ["train", "--hidden", "16", "--limit", "500", "--epochs", "100000"])
    assert code == 130
    assert "nothing was saved (use --checkpoint PATH" in err and "Traceback" not in err
