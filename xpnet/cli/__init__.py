"""The ``xpnet`` command: ``xpnet train``, ``evaluate MODEL``, ``predict MODEL IMAGE``, ``export``.

One module per command (:mod:`~xpnet.cli.train`, :mod:`~xpnet.cli.evaluate`,
:mod:`~xpnet.cli.predict`, :mod:`~xpnet.cli.export`), each with ``add_parser(sub)`` and
``run(args)``. Errors are reported as one line on stderr with exit status 2 (never a
traceback; set ``XPNET_DEBUG=1`` to see one); Ctrl-C stops cleanly with exit status 130.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

from .. import __version__
from . import evaluate, export, predict, train
from .common import FORMATTER, PROG, CLIError, Parser

TOP_EPILOG = """\
examples:
  xpnet train                               # 784-400-100-10 on the shipped 5k MNIST sample
  xpnet train --dataset fashion-mnist --save fashion.npz --plot fashion.png
  xpnet evaluate fashion.npz --dataset fashion-mnist --json
  xpnet predict model.npz my_digit.png
  xpnet export model.npz model.onnx         # for onnxruntime & co (needs xpnet[onnx])

Run 'xpnet COMMAND --help' for each command's options and more examples.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog=PROG,
        description="xpnet: train, evaluate and use from-scratch neural networks on MNIST-like "
        "data (NumPy on the CPU, CuPy on an NVIDIA GPU).",
        epilog=TOP_EPILOG,
        formatter_class=FORMATTER,
    )
    parser.add_argument("--version", action="version", version=f"xpnet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for command in (train, evaluate, predict, export):
        command.add_parser(sub)
    return parser


def _expected_errors() -> tuple[type[BaseException], ...]:
    from ..backends import BackendError
    from ..images import ImageError, ImagesUnavailableError
    from ..plot import PlotUnavailableError
    from ..serialization import ModelFileError

    errors: list[type[BaseException]] = [
        CLIError, BackendError, ModelFileError, ImageError, ImagesUnavailableError,
        PlotUnavailableError, OSError,
        ValueError, TypeError, FloatingPointError,
    ]
    try:
        from ..datasets import DatasetError

        errors.append(DatasetError)
    except ImportError:
        pass
    return tuple(errors)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``xpnet`` command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    debug = bool(os.environ.get("XPNET_DEBUG"))
    try:
        return int(args.func(args))
    except KeyboardInterrupt as exc:
        msg = str(exc) or "interrupted"
        print(f"{PROG} {args.command}: {msg}", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `xpnet evaluate ... | head`: the reader left; say nothing more.
        sys.stderr.close()
        return 0
    except _expected_errors() as exc:
        if debug:
            traceback.print_exc()
        lines = str(exc).strip().splitlines() or [type(exc).__name__]
        if _is_dataset_error(exc) and len(lines) > 1:
            # The data loader explains where it looked and how to get the files: keep its
            # layout, under a one-line headline.
            details = "".join(f"\n  {line}" for line in lines[1:])
            print(f"{PROG} {args.command}: error: {lines[0]}{details}", file=sys.stderr)
        else:
            print(f"{PROG} {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug: still one line, with a way to see the traceback
        if debug:
            traceback.print_exc()
        print(f"{PROG} {args.command}: internal error: {type(exc).__name__}: {_one_line(exc)} "
              "(set XPNET_DEBUG=1 to see the traceback)", file=sys.stderr)
        return 1


def _is_dataset_error(exc: BaseException) -> bool:
    try:
        from ..datasets import DatasetError
    except ImportError:
        return False
    return isinstance(exc, DatasetError)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
