"""Eval prompt files: JSONL of {id, prompt, category, expected, source}, read with `file:line` for every bad line.

`load_prompts` reads the bytes itself, so a line that is not UTF-8 text (a binary file, a Latin-1 export) is a
`file:line` error with the fix, not a UnicodeDecodeError. `prompts_sha256` names exactly which prompts a run
answered (a resumed run checks it); `where` gives a prompt's `file:line` for later errors.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from friction_lib import metrics
from friction_lib.errors import FrictionError
from friction_lib.schema import jsonl_lines

REQUIRED_FIELDS: tuple[str, ...] = ("id", "prompt", "category", "expected", "source")
_SHOWN = 20


@dataclass(frozen=True)
class EvalPrompt:
    id: str
    prompt: str
    category: str
    expected: str
    source: str
    line: int = field(default=0, compare=False)  # its line in the prompt file (0: not from a file)

    def to_dict(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in REQUIRED_FIELDS}


def _check_record(data: Any) -> str | None:
    if not isinstance(data, dict):
        return f"expected a JSON object, got a JSON {type(data).__name__}"
    missing = [name for name in REQUIRED_FIELDS if name not in data]
    if missing:
        return f"missing field(s) {', '.join(repr(m) for m in missing)} (each line needs {', '.join(REQUIRED_FIELDS)})"
    for name in REQUIRED_FIELDS:
        if not isinstance(data[name], str) or not data[name].strip():
            return f"field {name!r} must be a non-empty string"
    if data["expected"] not in metrics.EXPECTED_VALUES:
        return (
            f"unknown expected value {data['expected']!r} "
            f"(expected one of: {', '.join(metrics.EXPECTED_VALUES)})"
        )
    return None


def _fail(path: Path, problems: list[str]) -> FrictionError:
    shown = problems[:_SHOWN] + ([f"... and {len(problems) - _SHOWN} more"] if len(problems) > _SHOWN else [])
    fix = "Fix these lines."
    if any("UTF-8" in p or "binary" in p for p in problems):
        fix += (
            " Save the file as UTF-8 text (e.g. `iconv -f latin1 -t utf-8`), and keep binary data out of it."
        )
    return FrictionError("\n".join([f"{len(problems)} bad line(s) in {path}:", *shown, fix]))


def load_prompts(path: str | Path) -> list[EvalPrompt]:
    """Read an eval prompt file (JSONL of {id, prompt, category, expected, source}).

    Every bad line is reported as `file:line: reason` in one FrictionError; blank lines are skipped; other
    fields are allowed and ignored.
    """
    p = Path(path)
    if not p.is_file():
        raise FrictionError(f"{p}: prompt file not found. Use data/eval/quick.jsonl or data/eval/full.jsonl.")
    prompts: list[EvalPrompt] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    for number, record, problem in jsonl_lines(p):
        problem = problem or _check_record(record)
        if problem or record is None:
            problems.append(f"{p}:{number}: {problem}")
        elif record["id"] in seen:
            problems.append(
                f"{p}:{number}: duplicate id {record['id']!r} (first on line {seen[record['id']]})"
            )
        else:
            seen[record["id"]] = number
            fields = {name: record[name].strip() for name in REQUIRED_FIELDS}
            prompts.append(EvalPrompt(**fields, line=number))
    if problems:
        raise _fail(p, problems)
    if not prompts:
        raise FrictionError(f"{p}: no prompts in the file. Expected one JSON object per line.")
    return prompts


def sample_prompts(prompts: list[EvalPrompt], per_group: int) -> list[EvalPrompt]:
    """The first `per_group` targets and `per_group` controls of each category (for smoke runs)."""
    counts: dict[tuple[str, bool], int] = {}
    picked = []
    for item in prompts:
        key = (item.category, metrics.is_target(item.expected))
        if counts.get(key, 0) < per_group:
            counts[key] = counts.get(key, 0) + 1
            picked.append(item)
    return picked


def prompts_sha256(prompts: list[EvalPrompt]) -> str:
    """A fingerprint of exactly these prompts, in this order (ids, texts, categories, expected)."""
    canonical = json.dumps([p.to_dict() for p in prompts], ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def where(prompt: EvalPrompt, prompts_file: str | Path | None) -> str:
    """`file:line` of a prompt when it came from a file, else its id."""
    if prompts_file and prompt.line:
        return f"{prompts_file}:{prompt.line} (id {prompt.id!r})"
    return f"prompt {prompt.id!r}"
