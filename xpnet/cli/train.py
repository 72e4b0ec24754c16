"""``xpnet train``: build, train and report a classifier on an MNIST-like data set."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..architectures import ACTIVATIONS, ARCHITECTURES, build, short_description
from .common import (
    FORMATTER,
    CLIError,
    backend_for,
    check_plot_available,
    class_names,
    data_options,
    load_split,
    nonnegative_float,
    noun,
    positive_float,
    positive_int,
    probability,
    unit_float,
)

OPTIMIZERS = ("adam", "sgd", "momentum", "nesterov")
SCHEDULES = ("inverse-time", "step", "cosine", "constant")

#: What ``xpnet train`` does with no arguments (the MNIST-classifier recipe; see --help).
DEFAULTS: dict[str, Any] = {
    "activation": "relu",
    "dropout": 0.2,
    "optimizer": "adam",
    "lr": 0.005,
    "beta1": 0.8,
    "beta2": 0.999,
    "schedule": "inverse-time",
    "decay": 0.3,
    "batch_size": 256,
    "seed": 0,
}
#: Chosen on validation digits carved out of the training splits (never the test splits):
#: on the sample, dropout 0.2-0.3 and 30-40 epochs all land within noise of each other; on
#: Fashion-MNIST dropout 0.5 underfits (about 1 point lower after 30 epochs).
DEFAULT_EPOCHS = 30
#: Where an architecture's recipe differs from the MLP's (options the user did not give).
#: The CNN: a lower lr with BatchNorm, cosine decay to zero over a budget of 10 epochs of
#: 60,000 images (the first Fashion-MNIST run, inverse-time decay, ended 0.7 points below its
#: best epoch, the lr still high), batches of 128 (each step costs far more than an MLP's).
ARCH_DEFAULTS: dict[str, dict[str, Any]] = {
    "cnn": {"lr": 0.002, "beta1": 0.9, "schedule": "cosine", "dropout": 0.3,
            "batch_size": 128, "epochs": 10},
}
RECIPE_OPTIONS = ("lr", "beta1", "schedule", "dropout", "batch_size", "epochs")


def resolve_defaults(args: argparse.Namespace) -> None:
    """Fill the options left unset (None) from ``--arch``'s recipe, else the MLP's."""
    recipe = {**DEFAULTS, "epochs": DEFAULT_EPOCHS, **ARCH_DEFAULTS.get(args.arch, {})}
    for key in RECIPE_OPTIONS:
        if getattr(args, key) is None:
            setattr(args, key, recipe[key])

TRAIN_EPILOG = """\
data sets:
  mnist-sample   5,000 real MNIST digits shipped with xpnet: 4,000 to train on and
                 1,000 held out for testing (no download, works offline)
  mnist          the full MNIST set (60,000 train / 10,000 test), downloaded on first use
  fashion-mnist  Zalando's Fashion-MNIST (60,000 / 10,000 clothing images, 10 classes)
  Files are looked for in --data-dir, $XPNET_DATA/<name>/, /usr/share/datasets/<name>/
  (Debian: apt-get install dataset-fashion-mnist) and ~/.cache/xpnet/<name>/.

defaults (the MNIST-classifier recipe):
  784-400-100-10, ReLU, He init, dropout 0.2 after each hidden layer, softmax
  cross-entropy, Adam (lr 0.005, beta1 0.8) with inverse-time decay 0.3
  (lr / (1 + 0.3 * epoch)), batch 256, 30 epochs, seed 0. Each epoch prints the loss
  and accuracy on the training batches (dropout on), the accuracy on the held-out test
  split (watched only: nothing is tuned on it), the learning rate and the time taken.

--arch cnn defaults: Reshape to 1x28x28, two blocks of 3x3 convolution (--channels
  32 64) -> BatchNorm -> ReLU -> 2x2 max pooling, Dense 3136 -> 128 (--hidden) -> ReLU
  -> dropout 0.3, 10 logits; Adam (lr 0.002, beta1 0.9) with cosine decay to zero,
  batch 128, 10 epochs. Any option given on the command line wins.

examples:
  xpnet train
      train on the shipped sample and report accuracy on its 1,000 held-out digits
  xpnet train --dataset fashion-mnist --epochs 20 --save fashion.npz
  xpnet train --arch cnn --dataset fashion-mnist --save cnn.npz
      a convolutional network (3x3 convolutions, BatchNorm, max pooling; its own
      defaults below): 92.3% on the 10,000 test images, about 10 minutes on 2 CPU cores
  xpnet train --arch cnn --epochs 15 --batch-size 32 --dropout 0.5
      the same network on the shipped sample (97-98% of the 1,000 held-out digits)
  xpnet train --dataset mnist --data-dir ~/data/mnist --backend auto
      --data-dir holds train-images-idx3-ubyte.gz and friends (or <dir>/mnist/...)
  xpnet train --hidden 200 --activation sigmoid --dropout 0 --optimizer sgd --lr 0.1 \\
              --schedule constant --init normal
  xpnet train --hidden 128 64 --optimizer momentum --lr 0.05 --schedule cosine
  xpnet train --plot run.png          # curves, confusion matrix, errors, weights
  xpnet train --epochs 100 --checkpoint run.ckpt.npz
      Ctrl-C saves the checkpoint; the same command with --resume continues
"""


def add_parser(sub: Any) -> None:
    """The ``train`` subcommand and its options."""
    t = sub.add_parser(
        "train", help="train a classifier (default: the shipped MNIST sample)",
        description="Train a classifier (fully connected or convolutional) and report its "
        "accuracy on the held-out test split.", epilog=TRAIN_EPILOG, formatter_class=FORMATTER,
    )
    data_options(t)
    g = t.add_argument_group("model")
    g.add_argument("--arch", choices=sorted(ARCHITECTURES), default="mlp",
                   help="mlp: a fully connected network; cnn: a small LeNet-like "
                   "convolutional network (see --channels) (default: mlp)")
    g.add_argument("--hidden", type=positive_int, nargs="*", metavar="N", default=None,
                   help="hidden dense layer widths (default: 400 100 for mlp, 128 for cnn; "
                   "none: softmax regression on the last features)")
    g.add_argument("--channels", type=positive_int, nargs="+", metavar="N", default=None,
                   help="cnn: output channels of each 3x3 convolution block, each followed by "
                   "BatchNorm, the activation and 2x2 max pooling (default: 32 64)")
    g.add_argument("--activation", choices=tuple(ACTIVATIONS), default=DEFAULTS["activation"],
                   help="hidden activation (default: relu)")
    g.add_argument("--dropout", type=probability, default=None, metavar="P",
                   help="dropout after each hidden layer, 0 for none (default: 0.2; cnn: 0.3)")
    g.add_argument("--init", choices=("he", "glorot", "uniform", "normal"), default=None,
                   help="weight init (default: he for relu/leaky_relu, glorot otherwise)")
    g = t.add_argument_group("optimization")
    g.add_argument("--epochs", type=positive_int, metavar="N", default=None,
                   help="passes over the training set (default: 30; cnn: 10)")
    g.add_argument("--batch-size", type=positive_int, metavar="N", default=None,
                   help="minibatch size (default: 256; cnn: 128)")
    g.add_argument("--optimizer", choices=OPTIMIZERS, default=DEFAULTS["optimizer"],
                   help="adam, plain sgd, sgd with momentum, or nesterov (default: adam)")
    g.add_argument("--lr", type=positive_float, metavar="X", default=None,
                   help="learning rate (default: 0.005; cnn: 0.002)")
    g.add_argument("--beta1", type=unit_float, metavar="X", default=None,
                   help="Adam's first-moment decay (default: 0.8; cnn: 0.9)")
    g.add_argument("--beta2", type=unit_float, metavar="X", default=DEFAULTS["beta2"],
                   help="Adam's second-moment decay (default: 0.999)")
    g.add_argument("--momentum", type=unit_float, metavar="X", default=0.9,
                   help="momentum for --optimizer momentum/nesterov (default: 0.9)")
    g.add_argument("--weight-decay", type=nonnegative_float, metavar="X", default=0.0,
                   help="L2 weight decay (decoupled for Adam) (default: 0)")
    g.add_argument("--schedule", choices=SCHEDULES, default=None,
                   help="learning-rate schedule per epoch (default: inverse-time; cnn: cosine)")
    g.add_argument("--decay", type=nonnegative_float, metavar="X", default=DEFAULTS["decay"],
                   help="inverse-time: lr / (1 + decay * epoch) (default: 0.3)")
    g.add_argument("--step-size", type=positive_int, metavar="N", default=5,
                   help="step: multiply lr by --gamma every this many epochs (default: 5)")
    g.add_argument("--gamma", type=unit_float, metavar="X", default=0.5,
                   help="step: the factor (default: 0.5)")
    g.add_argument("--seed", type=int, metavar="N", default=DEFAULTS["seed"],
                   help="seed for initial weights, shuffling and dropout (default: 0)")
    g.add_argument("--threads", type=_threads, metavar="N", default="auto",
                   help="BLAS threads: auto (time 1, 2, ... and keep the fastest), a number "
                   "(the same bits on every run) or none (OPENBLAS_NUM_THREADS decides) "
                   "(default: auto)")
    g = t.add_argument_group("output")
    g.add_argument("--save", type=Path, metavar="PATH",
                   help="save the trained model (.npz) for 'xpnet evaluate'/'xpnet predict'")
    g.add_argument("--plot", type=Path, metavar="PATH",
                   help="write one PNG with loss/accuracy curves, the confusion matrix, "
                   "misclassified test images and first-layer weights (needs xpnet[plot])")
    g.add_argument("--checkpoint", type=Path, metavar="PATH",
                   help="write a resumable checkpoint at each epoch end and on Ctrl-C")
    g.add_argument("--resume", action="store_true",
                   help="continue the run saved in --checkpoint (same data and batch size)")
    g = t.add_argument_group("data-parallel training (needs xpnet[mpi])")
    g.add_argument("--distributed", action="store_true",
                   help="train on the processes an MPI launcher started, each taking its share "
                   "of every batch: mpiexec -n 2 xpnet train --distributed ... (MPI; NCCL with "
                   "--backend cupy, one GPU per process); only rank 0 prints and writes files")
    g.add_argument("--comm-timeout", type=positive_float, metavar="S", default=300.0,
                   help="seconds a process waits for the others in a collective before the job "
                   "is aborted (default: 300)")
    t.set_defaults(func=run)


def _threads(text: str) -> Any:
    from ..threads import parse_threads

    try:
        return parse_threads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_model(args: argparse.Namespace, backend: Any) -> Any:
    """The Sequential ``args`` describe (``--arch`` and its options), on ``backend``."""
    # Options left unset take the architecture's own defaults (mlp: 400 100; cnn: 128).
    given = {k: v for k, v in (("hidden", args.hidden), ("channels", args.channels))
             if v is not None}
    return build(args.arch, in_features=784, classes=10, activation=args.activation,
                 dropout=args.dropout, init=args.init, seed=args.seed, backend=backend, **given)


def build_optimizer(args: argparse.Namespace, epochs: int) -> Any:
    from ..optim import SGD, Adam, Constant, CosineDecay, InverseTimeDecay, StepDecay

    schedule = {
        "inverse-time": lambda: InverseTimeDecay(args.decay),
        "step": lambda: StepDecay(args.step_size, args.gamma),
        "cosine": lambda: CosineDecay(epochs),
        "constant": lambda: Constant(),
    }[args.schedule]()
    if args.optimizer == "adam":
        return Adam(args.lr, beta1=args.beta1, beta2=args.beta2,
                    weight_decay=args.weight_decay, schedule=schedule)
    momentum = 0.0 if args.optimizer == "sgd" else args.momentum
    return SGD(args.lr, momentum=momentum, nesterov=args.optimizer == "nesterov",
               weight_decay=args.weight_decay, schedule=schedule)


def _describe_optimizer(args: argparse.Namespace) -> str:
    text = f"{args.optimizer} lr {args.lr:g}"
    if args.optimizer == "adam":
        text += f" beta1 {args.beta1:g}"
    elif args.optimizer != "sgd":
        text += f" momentum {args.momentum:g}"
    if args.weight_decay:
        text += f" weight decay {args.weight_decay:g}"
    text += {
        "inverse-time": f", inverse-time decay {args.decay:g}",
        "step": f", x{args.gamma:g} every {args.step_size} epochs",
        "cosine": ", cosine decay",
        "constant": ", constant lr",
    }[args.schedule]
    return text


def run(args: argparse.Namespace) -> int:
    """``xpnet train``, on this process or (``--distributed``) on every rank of an MPI job."""
    if args.resume and args.checkpoint is None:
        raise CLIError("--resume needs --checkpoint PATH (the checkpoint to continue from)")
    resolve_defaults(args)
    if args.channels is not None and args.arch != "cnn":
        raise CLIError(f"--channels is for --arch cnn (convolution blocks); got --arch {args.arch}")
    check_plot_available(args.plot)
    comm = _communicator(args)
    if not comm.is_root:  # one report, rank 0's; errors still come from every rank
        sys.stdout = open(os.devnull, "w")  # for the rest of the process
    from ..distributed import DistributedError

    try:
        return _train(args, comm)
    except KeyboardInterrupt:
        raise  # a signal stops every rank at the same step: each exits by itself
    except BaseException as exc:
        comm.fail()  # the others are waiting for this rank: end the job when it exits
        if isinstance(exc, DistributedError):
            raise CLIError(str(exc)) from None
        raise


def _communicator(args: argparse.Namespace) -> Any:
    """MPI's communicator with ``--distributed`` (the single process otherwise)."""
    from ..distributed import DistributedError, SingleProcess, get_communicator

    if not args.distributed:
        return SingleProcess()
    try:
        return get_communicator("mpi", timeout=args.comm_timeout)
    except DistributedError as exc:
        raise CLIError(f"--distributed: {exc}") from None


def _train(args: argparse.Namespace, comm: Any) -> int:
    """Load the data, build (or resume) the model, train, report, save (rank 0 writes)."""
    from ..datasets import preprocess
    from ..distributed import NCCLCommunicator
    from ..threads import describe_epochs

    backend = backend_for(args.backend, args.dtype)
    if comm.size > 1 and backend.name == "cupy":
        comm = NCCLCommunicator(backend, comm)  # before the model: it picks this rank's GPU
        print(f"distributed: {comm.size} processes, NCCL on one GPU each", flush=True)
    elif comm.size > 1:
        print(f"distributed: {comm.size} processes (MPI); batch {args.batch_size} split "
              f"between them", flush=True)
    Xtr_raw, ytr = load_split(args, "train")
    Xte_raw, yte = load_split(args, "test")
    Xtr, Xte = preprocess(Xtr_raw), preprocess(Xte_raw)
    things = noun(args.dataset)
    print(f"data: {args.dataset}: {len(ytr)} training / {len(yte)} held-out test {things}")
    model = _model(args, backend)
    start = time.perf_counter()
    _fit(model, args, (Xtr, ytr), (Xte, yte), comm)
    elapsed = time.perf_counter() - start
    pred = model.predict(Xte)
    acc = float(np.mean(pred == yte))
    used = describe_epochs(model.history.history.get("threads"), args.threads)
    print(f"trained {args.epochs} epochs in {elapsed:.1f}s{used}")
    print(f"held-out accuracy: {acc:.4f} on {len(yte)} {things} ({args.dataset} test split)")
    if args.save is not None and comm.is_root:
        print(f"model saved to {model.save(args.save)}")
    if args.plot is not None and comm.is_root:
        _plot(model, args, Xte_raw, yte, pred, acc)
    return 0


def _model(args: argparse.Namespace, backend: Any) -> Any:
    """A new compiled model, or the one in ``--checkpoint`` with ``--resume``; says which."""
    from ..losses import SoftmaxCrossEntropy
    from ..serialization import load

    epochs = args.epochs
    if args.resume:
        if not args.checkpoint.exists():
            raise CLIError(f"--resume: checkpoint not found: {args.checkpoint}")
        model = load(args.checkpoint, backend=backend)
        done = (model.progress or {}).get("epoch", 0)
        print(f"resuming {args.checkpoint} at epoch {done + 1}/{epochs}")
    else:
        model = build_model(args, backend)
        model.compile(SoftmaxCrossEntropy(), build_optimizer(args, epochs))
    optimizer = repr(model.optimizer) if args.resume else _describe_optimizer(args)
    print(f"model: {short_description(model)}; {optimizer}; batch {args.batch_size}, "
          f"{epochs} epochs, seed {args.seed}; backend {backend.name} {backend.dtype_name}",
          flush=True)
    return model


def _fit(model: Any, args: argparse.Namespace, train: tuple[Any, Any], test: tuple[Any, Any],
         comm: Any) -> None:
    """Train, printing one line per epoch; Ctrl-C says what was saved and how to resume."""
    epochs = args.epochs
    progress = {"epoch": 0}

    def report(epoch: int, logs: dict[str, float]) -> None:
        progress["epoch"] = epoch + 1
        print(
            f"epoch {epoch + 1:>{len(str(epochs))}}/{epochs}  loss {logs['loss']:.4f}  "
            f"acc {logs.get('accuracy', float('nan')):.4f}  "
            f"val acc {logs.get('val_accuracy', float('nan')):.4f}  "
            f"lr {logs['lr']:.2e}  {logs['time']:.2f}s",
            flush=True,
        )

    from ..training import BlasThreads

    try:
        model.fit(*train, epochs=epochs, batch_size=args.batch_size, validation_data=test,
                  seed=args.seed, verbose=False, checkpoint=args.checkpoint,
                  resume=args.resume, on_epoch_end=report, comm=comm,
                  callbacks=[BlasThreads(args.threads)])
    except KeyboardInterrupt:
        where = f"during epoch {progress['epoch'] + 1}/{epochs}"
        if args.checkpoint is not None and args.checkpoint.exists():
            tail = (f"; checkpoint saved to {args.checkpoint}: run the same command with "
                    "--resume to continue")
        else:
            tail = "; nothing was saved (use --checkpoint PATH to be able to resume)"
        raise KeyboardInterrupt(f"training interrupted {where}{tail}") from None


def _plot(model: Any, args: argparse.Namespace, X_raw: np.ndarray, y: np.ndarray,
          pred: np.ndarray, acc: float) -> None:
    from ..metrics import confusion_matrix
    from ..plot import first_layer_weights, plot_report

    title = (f"xpnet train --dataset {args.dataset}: {short_description(model)}, "
             f"{args.epochs} epochs; held-out accuracy {acc:.4f}")
    plot_report(args.plot, history=model.history, cm=confusion_matrix(y, pred, 10),
                X=X_raw, y_true=y, y_pred=pred, weights=first_layer_weights(model),
                class_names=class_names(args.dataset), title=title)
    print(f"plot written to {args.plot}")
