"""The commands in docs/eval.md are exactly what the code accepts: every `friction eval` and `friction export` line
of its code blocks parses with the real argument parsers and names a valid engine setup. (The 7B commands cannot
run here; this is what keeps them from drifting.)"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from friction_lib import export
from friction_lib.evaluate import EngineSpec, _eval_parser

DOC = Path(__file__).resolve().parents[1] / "docs" / "eval.md"


def _commands(tool: str) -> list[list[str]]:
    """Arguments of every `friction TOOL ...` command in the doc's fenced blocks (line continuations joined)."""
    blocks = re.findall(r"```(?:console|bash|sh)?\n(.*?)```", DOC.read_text(), flags=re.S)
    commands = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            words = shlex.split(line) if line else []
            while words and "=" in words[0] and not words[0].startswith("-"):  # VAR=value prefixes
                words.pop(0)
            if words[:2] == ["friction", tool] or words[:2] == [".venv/bin/friction", tool]:
                commands.append(words[2:])
    return commands


def test_the_doc_shows_every_engine():
    engines = {args[args.index("--engine") + 1] for args in _commands("eval") if "--engine" in args}
    assert engines == {"llamacpp", "openai"} and len(_commands("eval")) >= 8


@pytest.mark.parametrize("args", _commands("eval"), ids=" ".join)
def test_eval_commands_parse(args):
    if args and args[0] in ("compare", "validate-classifier"):
        return
    parsed = _eval_parser().parse_args(args)
    EngineSpec(engine=parsed.engine, model=parsed.model, adapter=parsed.adapter, gguf=parsed.gguf,
               base_url=parsed.base_url, concurrency=parsed.concurrency, retries=parsed.retries).check()  # fmt: skip


@pytest.mark.parametrize("args", _commands("export"), ids=" ".join)
def test_export_commands_parse(args):
    export._parser().parse_args(args)
