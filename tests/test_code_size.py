"""tinygrad-style discipline: no module in xpnet/ over 400 lines, no function over 80.

Small files that each hold one concept, and functions short enough to read at once, are what
keeps a from-scratch library readable; this test keeps them so.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "xpnet"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80
SOURCES = sorted(PACKAGE.rglob("*.py"))


def _functions(tree: ast.AST) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    return [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def test_the_walk_finds_the_package() -> None:
    assert len(SOURCES) > 40 and PACKAGE / "model.py" in SOURCES


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_and_function_sizes(path: Path) -> None:
    text = path.read_text("utf-8")
    lines = len(text.splitlines())
    assert lines <= MAX_MODULE_LINES, f"{path.name}: {lines} lines (at most {MAX_MODULE_LINES})"
    long = [
        f"{fn.name} ({fn.end_lineno - fn.lineno + 1} lines, from line {fn.lineno})"
        for fn in _functions(ast.parse(text))
        if fn.end_lineno is not None and fn.end_lineno - fn.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"{path.name}: functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_the_limits_can_fail() -> None:
    """The measure itself: a 90-line function is caught."""
    body = "\n".join(f"    x{i} = {i}" for i in range(89))
    tree = ast.parse(f"def f():\n{body}\n")
    (fn,) = _functions(tree)
    assert fn.end_lineno is not None and fn.end_lineno - fn.lineno + 1 == 90


def test_model_knows_no_concrete_layer_or_loss() -> None:
    """model.py reaches layers and losses through their interfaces only."""
    tree = ast.parse((PACKAGE / "model.py").read_text("utf-8"))
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    concrete = {"Dense", "ReLU", "Dropout", "Softmax", "Sigmoid", "Tanh", "LeakyReLU", "MSE",
                "SoftmaxCrossEntropy", "BinaryCrossEntropy", "softmax", "sigmoid"}
    assert not imported & concrete, sorted(imported & concrete)


def test_the_command_line_knows_no_layer_or_loss_type() -> None:
    """The CLI builds models by architecture name and reads them through their interfaces."""
    offenders = []
    for path in sorted((PACKAGE / "cli").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").lstrip(".").startswith(
                ("layers", "xpnet.layers")
            ):
                offenders.append(f"{path.name}: from {node.module} import ...")
            if isinstance(node, ast.ImportFrom) and node.module in ("losses", "..losses"):
                names = {a.name for a in node.names} - {"Loss"}
                if names - {"SoftmaxCrossEntropy"} or (names and path.name != "train.py"):
                    offenders.append(f"{path.name}: from {node.module} import {sorted(names)}")
    assert not offenders, offenders
