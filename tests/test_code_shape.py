"""The style guide's "plain functions a screenful long", held: no function in friction_lib over 50 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import friction_lib

MAX_LINES = 50


def test_no_function_is_longer_than_a_screen():
    long = []
    for path in sorted(Path(friction_lib.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_LINES:
                    long.append(f"{path.name}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, "Cut these into named steps: " + "; ".join(long)
