"""The answers of an unfinished eval run, kept beside --out as `<out>.partial.jsonl`: a rerun generates only what
is missing.

Line 1 says what the answers are answers *of* (`identity`): the prompts (their sha256, count and file), the
engine and model (the GGUF's sha256, the served model's name, the adapter's sha256), the system prompt, the token
budget and the sampling settings. Each further line is one finished generation, written and flushed the moment it
is finished, so a crash or a kill loses at most the answers in flight. A rerun reads the file back only if line 1
matches the new run; otherwise it is refused with the reason. A torn last line (killed mid-write) is dropped.
The file is removed once the run's folder is complete.

It lives beside --out, not in the staging folder: `files.staged_folder` removes that on any failure, and
`files.output_lock` on --out (held for the whole run) makes its writer the only one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any

from friction_lib.engines import Generation
from friction_lib.errors import FrictionError
from friction_lib.files import write_atomic

HEADER = "friction_eval_partial"
ANSWER_FIELDS = ("reasoning", "answer", "raw", "prompt_tokens", "completion_tokens", "seconds")
# What must be equal for kept answers to count, in the order a mismatch is reported.
_PROMPT_KEYS = ("prompts_sha256",)
_MODEL_KEYS = ("engine", "model", "model_sha256", "adapter_sha256")
_SETTING_KEYS = ("system_prompt", "max_new_tokens", "sampling")


def partial_path(out: str | os.PathLike[str]) -> Path:
    folder = Path(out)
    return folder.parent / f"{folder.name}.partial.jsonl"


def _model_text(identity: dict[str, Any]) -> str:
    sha = identity.get("model_sha256") or identity.get("adapter_sha256")
    return f"{identity.get('model')} on {identity.get('engine')}" + (f", sha256 {sha[:12]}" if sha else "")


def mismatch(kept: dict[str, Any], new: dict[str, Any], path: Path) -> str | None:
    """Why the answers in `path` (made for `kept`) are not answers of the run `new`; None if they are."""
    if any(kept.get(k) != new.get(k) for k in _PROMPT_KEYS):
        return (
            f"{path} holds answers to other prompts ({kept.get('n_prompts')} from {kept.get('prompts_file')}, "
            f"sha256 {str(kept.get('prompts_sha256'))[:12]}), not to these ({new['n_prompts']} from "
            f"{new.get('prompts_file')}, sha256 {new['prompts_sha256'][:12]})"
        )
    if any(kept.get(k) != new.get(k) for k in _MODEL_KEYS):
        return f"{path} holds answers of another model ({_model_text(kept)}), not of {_model_text(new)}"
    for key in _SETTING_KEYS:
        if kept.get(key) != new.get(key):
            return f"{path} was made with {key} {kept.get(key)!r}; this run has {new.get(key)!r}"
    return None


class PartialAnswers:
    """The kept answers (`done`: prompt id -> answer fields) and an append handle for new ones."""

    def __init__(self, path: Path, identity: dict[str, Any], done: dict[str, dict[str, Any]], torn: bool):
        self.path = path
        self.identity = identity
        self.done = done
        self.torn = torn  # a torn last line was dropped
        self._handle: IO[str] | None = None

    @classmethod
    def open(cls, path: Path, identity: dict[str, Any]) -> PartialAnswers:
        """Read `path` if it exists (refused if it is another run's), else start it with the header."""
        if not path.exists():
            write_atomic(path, json.dumps({HEADER: identity}, ensure_ascii=False) + "\n")
            return cls(path, identity, {}, False)
        kept, done, torn = _read(path)
        why = mismatch(kept, identity, path)
        if why:
            raise FrictionError(
                f"Refused to resume: {why}. Rerun with the prompts, model and settings it was made with, or "
                "delete it to start over."
            )
        if torn:  # rewrite without the torn line, so new lines do not join it
            lines = [json.dumps({HEADER: kept}, ensure_ascii=False)]
            lines += [json.dumps({"id": i, **fields}, ensure_ascii=False) for i, fields in done.items()]
            write_atomic(path, "\n".join(lines) + "\n")
        return cls(path, identity, done, torn)

    def add(self, prompt_id: str, generation: Generation) -> None:
        """Write one finished answer down at once (flushed: a kill after this keeps it)."""
        fields = {name: getattr(generation, name) for name in ANSWER_FIELDS}
        self.done[prompt_id] = fields
        if self._handle is None:
            self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()
        self._handle.write(json.dumps({"id": prompt_id, **fields}, ensure_ascii=False) + "\n")
        self._handle.flush()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def remove(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)


def _read(path: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]], bool]:
    """(header, answers by id, whether a torn last line was dropped); a damaged file is refused."""
    lines = path.read_bytes().decode("utf-8", errors="replace").split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    records: list[Any] = []
    torn = False
    for number, line in enumerate(lines, start=1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines) and number > 1:
                torn = True  # killed mid-write: that answer is generated again
                continue
            raise FrictionError(
                f"{path}:{number}: damaged line in the kept answers of an unfinished run. Delete {path} to "
                "start over."
            ) from None
    if not records or not isinstance(records[0], dict) or HEADER not in records[0]:
        raise FrictionError(
            f"{path} is not the kept answers of a friction eval run (its first line is not the header). Move it "
            "away or delete it."
        )
    done = {
        r["id"]: {k: r.get(k) for k in ANSWER_FIELDS}
        for r in records[1:]
        if isinstance(r, dict) and "id" in r
    }
    return records[0][HEADER], done, torn
