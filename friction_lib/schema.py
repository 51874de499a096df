"""The friction record: one validated schema, JSONL loading and writing, and training messages.

A record is one user prompt, a short relay of persona thoughts, and the final answer:

    {"id": "ft-0001", "user_input": "...", "friction_type": "false_premise",
     "agents": [{"agent_type": "problem_framer", "thought_stream": "...",
                 "friction_moments": [{"type": "false_premise", "marker": "..."}]}, ...],
     "final_answer": "...",
     "metadata": {"source": "hand-written", "generator_model": null, "temperature": null,
                  "created_at": "2026-11-23", "pipeline_version": "1.0"}}

Public API:
- `FrictionRecord` (and `AgentThought`, `FrictionMoment`, `Metadata`): pydantic v2 models with
  `extra="forbid"`, so a misspelt field is an error, not a silently ignored key.
- `load_jsonl(path, strict=True) -> LoadResult(records, problems)`: every bad line is reported as
  `path:line: reason`. Strict mode raises `FrictionError` listing them; lenient mode skips them,
  prints them to stderr and returns them in `problems`. Nothing is dropped silently.
- `write_jsonl(records, path)` (atomic) and `append_jsonl(record, path)` (one whole line, fsynced).
- `to_messages(record)` and `records_to_training_rows(records)`: the training conversation.
- `count_by_type(records)`; `python -m friction_lib.schema FILE...` prints the counts.

The assistant turn is `chat.format_target(reasoning, answer)`, where the reasoning is the agents'
thought streams joined one per line, in relay order, with no persona labels: labels would teach a
small model to write persona names instead of thinking, and they cost tokens.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from friction_lib.chat import SYSTEM_PROMPT, build_messages, format_target
from friction_lib.errors import FrictionError
from friction_lib.files import write_atomic

FrictionType = Literal["false_premise", "clarification", "refusal", "uncertainty", "disagreement", "none"]
FRICTION_TYPES: tuple[str, ...] = get_args(FrictionType)

# A friction moment marks push-back inside a thought, so it is never of type "none".
MomentType = Literal["false_premise", "clarification", "refusal", "uncertainty", "disagreement"]

PersonaName = Literal[
    "problem_framer",
    "memory_activator",
    "mechanism_explorer",
    "perspective_generator",
    "limitation_acknowledger",
    "synthesizer",
]
# Relay order: each persona sees the question and the thoughts before it.
PERSONAS: tuple[str, ...] = get_args(PersonaName)

SOURCES: tuple[str, ...] = ("hand-written", "generated")
# How much of the agents' relay a training target's `<think>` block keeps (FrictionRecord.reasoning).
REASONING_KEEP: tuple[str, ...] = ("all", "first", "decision", "none")
# `reasoning="decision"` opens the <think> block with the decision in a fixed phrase: its first word ("Push" or
# "No") is a two-way choice the loss trains directly, before any free text.
DECISION_PHRASES: dict[str, str] = {
    "false_premise": "Push back: a false premise.",
    "clarification": "Push back: ask what they mean.",
    "refusal": "Push back: refuse.",
    "uncertainty": "Push back: this cannot be known.",
    "disagreement": "Push back: disagree.",
    "none": "No push-back needed.",
}

# How many problems a strict-mode error lists before it summarises the rest.
MAX_LISTED_PROBLEMS = 20


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty or only whitespace")
    return value


# A string with at least one non-space character.
NonBlank = Annotated[str, AfterValidator(_not_blank)]


class FrictionMoment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: MomentType
    marker: NonBlank


class AgentThought(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent_type: PersonaName
    thought_stream: NonBlank
    friction_moments: list[FrictionMoment] = Field(default_factory=list)


class Metadata(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: Literal["hand-written", "generated"]
    generator_model: str | None = None
    temperature: float | None = Field(default=None, ge=0.0)
    created_at: str
    pipeline_version: NonBlank

    @field_validator("created_at")
    @classmethod
    def _iso_date(cls, value: str) -> str:
        try:
            date.fromisoformat(value)
        except ValueError:
            try:
                datetime.fromisoformat(value)
            except ValueError:
                raise ValueError(f"must be an ISO date such as 2026-11-23, got {value!r}") from None
        return value

    @model_validator(mode="after")
    def _generated_names_its_model(self) -> Metadata:
        if self.source == "generated" and not self.generator_model:
            raise ValueError("a generated record must name its generator_model")
        return self


class FrictionRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: NonBlank
    user_input: NonBlank
    friction_type: FrictionType
    agents: list[AgentThought] = Field(min_length=1)
    final_answer: NonBlank
    metadata: Metadata

    @field_validator("agents")
    @classmethod
    def _relay_order(cls, agents: list[AgentThought]) -> list[AgentThought]:
        order = [PERSONAS.index(agent.agent_type) for agent in agents]
        if order != sorted(set(order)):
            names = ", ".join(agent.agent_type for agent in agents)
            raise ValueError(
                f"agents must appear once each, in relay order ({' -> '.join(PERSONAS)}); got {names}"
            )
        return agents

    def reasoning(self, keep: str = "all") -> str:
        """The `<think>` block's text: the thought streams one per line, in relay order.

        `keep="first"` keeps only the first agent's thought (the problem framer's one-line decision), which
        is what a 135M model can learn to reproduce; `keep="decision"` puts the fixed decision phrase of the
        record's friction type (`DECISION_PHRASES`) before that thought; `keep="none"` gives an empty block.
        """
        if keep not in REASONING_KEEP:
            raise ValueError(f"keep must be one of {', '.join(REASONING_KEEP)}, got {keep!r}")
        if keep == "decision":
            return f"{DECISION_PHRASES[self.friction_type]} {self.agents[0].thought_stream.strip()}"
        agents = {"all": self.agents, "first": self.agents[:1], "none": []}[keep]
        return "\n".join(agent.thought_stream.strip() for agent in agents)


# --- training messages -------------------------------------------------------------------------


def to_messages(
    record: FrictionRecord, system: str | None = SYSTEM_PROMPT, reasoning: str = "all"
) -> list[dict[str, str]]:
    """System (unless `system` is None or empty), user, then the assistant turn to train on.

    `reasoning` is how much of the relay goes into `<think>`: all | first | none (see `FrictionRecord.reasoning`).
    """
    messages = build_messages(record.user_input, system)
    target = format_target(reasoning=record.reasoning(reasoning), answer=record.final_answer)
    messages.append({"role": "assistant", "content": target})
    return messages


def records_to_training_rows(
    records: Iterable[FrictionRecord], system: str | None = SYSTEM_PROMPT
) -> list[dict[str, list[dict[str, str]]]]:
    """`[{"messages": [...]}, ...]`, the conversational format TRL's SFTTrainer takes."""
    return [{"messages": to_messages(record, system)} for record in records]


def count_by_type(records: Iterable[FrictionRecord]) -> dict[str, int]:
    """Records per friction_type, in FRICTION_TYPES order, zeros included."""
    counts: Counter[str] = Counter(record.friction_type for record in records)
    return {name: counts.get(name, 0) for name in FRICTION_TYPES}


# --- loading -----------------------------------------------------------------------------------


@dataclass
class LoadResult:
    """What `load_jsonl` found: the valid records, and one `path:line: reason` per bad line."""

    records: list[FrictionRecord] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[FrictionRecord]:
        return iter(self.records)


def _loc(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc)


def _describe(error: Any) -> str:
    """One pydantic error as a short sentence that names the field and the fix."""
    kind, loc, msg = error["type"], tuple(error["loc"]), error["msg"]
    where = _loc(loc)
    if kind == "missing":
        return f"missing field '{where}'"
    if kind == "extra_forbidden":
        return f"unknown field '{where}' (misspelt? extra fields are not allowed)"
    if loc == ("friction_type",) and kind == "literal_error":
        return f"unknown friction_type {error['input']!r} (expected one of: {', '.join(FRICTION_TYPES)})"
    if loc and loc[-1] == "agent_type" and kind == "literal_error":
        return f"unknown agent_type {error['input']!r} at '{where}' (expected one of: {', '.join(PERSONAS)})"
    msg = msg.removeprefix("Value error, ")
    shown = repr(error.get("input"))
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"field '{where}': {msg} (got {shown})" if where else f"{msg}"


def jsonl_lines(path: Path) -> Iterator[tuple[int, Any, str | None]]:
    """Each non-blank line of a JSONL file as (line number, JSON value, None), or (line number, None, why not).

    The one reader behind every JSONL loader (records, eval prompts, pairs): a UTF-8 byte-order mark is
    dropped, a line that is not text (NUL bytes, not UTF-8) or not JSON comes back as a reason, never raised.
    """
    for number, raw in enumerate(path.read_bytes().removeprefix(b"\xef\xbb\xbf").split(b"\n"), start=1):
        if not raw.strip():
            continue
        nul = raw.find(b"\x00")
        if nul >= 0:
            yield number, None, f"binary data, not text (a NUL byte at column {nul + 1})"
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            why = f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1}); save the file as UTF-8"
            yield number, None, why
            continue
        try:
            yield number, json.loads(text), None
        except json.JSONDecodeError as exc:
            yield (
                number,
                None,
                f"invalid JSON ({exc.msg} at column {exc.colno}); each line is one JSON object",
            )


def _check_line(data: Any) -> tuple[FrictionRecord | None, str | None]:
    if not isinstance(data, dict):
        return None, f"expected a JSON object, got a JSON {type(data).__name__}"
    try:
        return FrictionRecord.model_validate(data), None
    except ValidationError as exc:
        return None, "; ".join(_describe(error) for error in exc.errors())


def load_jsonl(path: str | os.PathLike[str], strict: bool = True) -> LoadResult:
    """Load and validate a JSONL file of friction records.

    Blank lines are skipped (they are not records). Every other bad line (invalid JSON, a missing
    or misspelt field, a wrong type, an unknown friction_type, a duplicate id) becomes a problem
    `path:line: reason`. With `strict=True` any problem raises `FrictionError` listing them; with
    `strict=False` bad lines are skipped, the problems are printed to stderr and returned in
    `LoadResult.problems`. A missing file, or one with no records at all, raises `FrictionError`.
    """
    p = Path(path)
    if not p.is_file():
        raise FrictionError(f"{p}: file not found. Check the path, or create it with `friction generate`.")
    result = LoadResult()
    first_seen: dict[str, int] = {}
    nonblank = 0
    for number, data, problem in jsonl_lines(p):
        nonblank += 1
        record, problem = (None, problem) if problem else _check_line(data)
        if record is None:
            result.problems.append(f"{p}:{number}: {problem}")
            continue
        if record.id in first_seen:
            result.problems.append(
                f"{p}:{number}: duplicate id {record.id!r} (first seen on line {first_seen[record.id]}); "
                "give each record its own id"
            )
            continue
        first_seen[record.id] = number
        result.records.append(record)
    if nonblank == 0:
        raise FrictionError(f"{p}: the file is empty (no records). Expected one JSON record per line.")
    if result.problems:
        if strict:
            raise FrictionError(_summary(p, result.problems, strict=True))
        print(_summary(p, result.problems, strict=False), file=sys.stderr)
    return result


def _summary(path: Path, problems: list[str], strict: bool) -> str:
    listed = problems[:MAX_LISTED_PROBLEMS]
    lines = [f"{len(problems)} bad line(s) in {path}:", *(f"  {problem}" for problem in listed)]
    if len(problems) > len(listed):
        lines.append(f"  ... and {len(problems) - len(listed)} more")
    if strict:
        lines.append(
            f"Fix these lines, or keep only the good records: friction data curate {path} --out NEW.jsonl "
            "(in Python, load_jsonl(path, strict=False) skips them)."
        )
    else:
        lines.append(f"Skipped {len(problems)} bad line(s); the rest loaded.")
    return "\n".join(lines)


# --- writing -----------------------------------------------------------------------------------


def _as_record(record: FrictionRecord | dict[str, Any]) -> FrictionRecord:
    if isinstance(record, FrictionRecord):
        return record
    try:
        return FrictionRecord.model_validate(record)
    except ValidationError as exc:
        rid = record.get("id", "?") if isinstance(record, dict) else "?"
        reasons = "; ".join(_describe(error) for error in exc.errors())
        raise FrictionError(f"record {rid!r} is not valid, so it was not written: {reasons}") from None


def _line(record: FrictionRecord | dict[str, Any]) -> str:
    return json.dumps(_as_record(record).model_dump(mode="json"), ensure_ascii=False) + "\n"


def write_jsonl(records: Iterable[FrictionRecord | dict[str, Any]], path: str | os.PathLike[str]) -> int:
    """Validate and write all records atomically (temp file, fsync, os.replace); returns the count.

    Either the whole new file is there or the old one is untouched. Duplicate ids are refused.
    """
    p = Path(path)
    lines: list[str] = []
    seen: set[str] = set()
    for record in records:
        rec = _as_record(record)
        if rec.id in seen:
            raise FrictionError(f"duplicate id {rec.id!r}: ids must be unique within {p}")
        seen.add(rec.id)
        lines.append(_line(rec))
    write_atomic(p, "".join(lines), fsync=True)
    return len(lines)


def append_jsonl(record: FrictionRecord | dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Validate and append one record as one whole line, then flush and fsync.

    The line is written with a single write. If an earlier crash left the file without a final
    newline, a newline is written first, so the new record never merges with a torn fragment
    (the loader then reports that fragment as a bad line rather than losing this record).
    """
    _append_line(_line(record), path)


def append_json_line(obj: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Append any JSON object as one whole, fsynced line (e.g. a failures file, which holds no records)."""
    _append_line(json.dumps(obj, ensure_ascii=False) + "\n", path)


def _append_line(line: str, path: str | os.PathLike[str]) -> None:
    """A write that fails part-way (a full disk takes what fits in the file's last page) is cut back off, so the
    file ends where it ended before: whole lines only."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "a+b", buffering=0) as handle:
        end = handle.seek(0, os.SEEK_END)
        if end > 0:
            handle.seek(end - 1)
            if handle.read(1) != b"\n":
                line = "\n" + line
        try:
            data = line.encode("utf-8")
            while data:  # an unbuffered write may take only part of it
                data = data[handle.write(data) or 0 :]
            os.fsync(handle.fileno())
        except BaseException:
            handle.truncate(end)
            raise


# --- command line ------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """`python -m friction_lib.schema FILE... [--lenient]`: validate files and print the counts."""
    args = sys.argv[1:] if argv is None else argv
    strict = "--lenient" not in args
    paths = [arg for arg in args if arg != "--lenient"]
    if not paths:
        print("usage: python -m friction_lib.schema FILE.jsonl [FILE.jsonl ...] [--lenient]", file=sys.stderr)
        return 2
    status = 0
    for path in paths:
        try:
            result = load_jsonl(path, strict=strict)
        except FrictionError as exc:
            print(exc, file=sys.stderr)
            status = 1
            continue
        counts = count_by_type(result.records)
        total = len(result.records)
        sources = Counter(record.metadata.source for record in result.records)
        print(f"{path}: {total} records ({', '.join(f'{k}: {v}' for k, v in sorted(sources.items()))})")
        for name, count in counts.items():
            print(f"  {name:<14}{count:>5}  {100 * count / total:5.1f}%")
        if result.problems:
            status = 1
    return status


if __name__ == "__main__":
    raise SystemExit(main())
