"""Training data: records from one or more JSONL files, the train/validation split, encoding and the loss mask.

One split rule for the whole project (`split_records`): seeded, and records that share a prompt land on the
same side, so a duplicated question cannot leak from train into validation. `friction train` uses it, and
so does the dataset `friction data push` publishes, so the Hub's validation split is training's.

Encoding renders each conversation with the model's own chat template (`chat.render_for_training`),
tokenizes prompt and completion separately, and masks the prompt: labels are -100 everywhere except the
assistant's tokens. `show_label_mask` prints exactly what the loss sees.
"""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from friction_lib.errors import FrictionError

MIN_RECORDS = 10  # below this a 90/10 split leaves nothing sensible on one side

DataPaths = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]


def data_files(data: DataPaths) -> list[Path]:
    """One training file or several (they are read in order, as if concatenated)."""
    return [Path(data)] if isinstance(data, (str, os.PathLike)) else [Path(p) for p in data]


def sha256_file(path: DataPaths) -> str:
    """sha256 of the file, or of several files' bytes one after the other (so `cat a b > c` hashes the same)."""
    digest = hashlib.sha256()
    for file in data_files(path):
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def load_records(path: DataPaths, limit: int = 0) -> list[Any]:
    """Strictly validated records of one or more files (every bad line reported as `file:line: reason`).

    Several files are read in order; an id that appears in two of them is an error naming both files.
    """
    from friction_lib.schema import load_jsonl

    records: list[Any] = []
    where: dict[str, Path] = {}
    for file in data_files(path):
        for record in load_jsonl(file, strict=True).records:
            if record.id in where and where[record.id] != file:
                raise FrictionError(
                    f"{file}: record id {record.id!r} is also in {where[record.id]}. Ids must be unique across "
                    "the training files; rename one of them."
                )
            where.setdefault(record.id, file)
            records.append(record)
    return records[:limit] if limit > 0 else records


def _prompt_key(record: Any) -> str:
    return " ".join(record.user_input.lower().split())


def split_records(
    records: list[Any], eval_fraction: float = 0.1, seed: int = 42
) -> tuple[list[Any], list[Any]]:
    """Seeded train/validation split, before any tokenizing or packing.

    Records with the same user prompt (case and spacing ignored) always land on the same side, so a
    duplicated question cannot leak from train into validation.
    """
    if len(records) < MIN_RECORDS:
        raise FrictionError(
            f"The dataset has {len(records)} record(s); a {round((1 - eval_fraction) * 100)}/"
            f"{round(eval_fraction * 100)} train/validation split needs at least {MIN_RECORDS}. Add records "
            "(data/micro/friction_micro.jsonl has 30) or point --data at a bigger file."
        )
    groups: dict[str, list[Any]] = {}
    for record in records:
        groups.setdefault(_prompt_key(record), []).append(record)
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    n_eval = max(1, round(len(records) * eval_fraction))
    eval_keys: set[str] = set()
    taken = 0
    for key in keys:
        if taken >= n_eval:
            break
        eval_keys.add(key)
        taken += len(groups[key])
    train = [r for r in records if _prompt_key(r) not in eval_keys]
    evaluation = [r for r in records if _prompt_key(r) in eval_keys]
    if len(train) < 2 or not evaluation:
        raise FrictionError(
            f"The split left {len(train)} training and {len(evaluation)} validation record(s) "
            "(many records share one prompt). Add more distinct prompts."
        )
    return train, evaluation


def encode_example(
    tokenizer: Any, messages: list[dict[str, str]], max_length: int | None = None
) -> dict[str, Any]:
    """Token ids and labels for one conversation whose last turn is the assistant's.

    Prompt and completion are rendered with the model's chat template (`chat.render_for_training`) and
    tokenized separately, exactly as the engines tokenize a prompt at inference (no extra special
    tokens), so the model trains on the context it later sees. Labels are -100 on the prompt (system and
    user turns and the assistant header) and the token ids on the completion (reasoning, answer and the
    end-of-turn token). Longer examples are cut at `max_length` (keeping the start).
    """
    from friction_lib.chat import render_for_training

    parts = render_for_training(tokenizer, messages)
    prompt_ids = tokenizer(parts["prompt"], add_special_tokens=False)["input_ids"]
    completion_ids = tokenizer(parts["completion"], add_special_tokens=False)["input_ids"]
    input_ids = list(prompt_ids) + list(completion_ids)
    labels = [-100] * len(prompt_ids) + list(completion_ids)
    truncated = max_length is not None and len(input_ids) > max_length
    if truncated:
        input_ids, labels = input_ids[:max_length], labels[:max_length]
    return {
        "input_ids": input_ids,
        "labels": labels,
        "prompt_tokens": len(prompt_ids),
        "truncated": truncated,
    }


def encode_records(
    tokenizer: Any,
    records: list[Any],
    max_length: int | None,
    reasoning: str = "all",
    decision_rows: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    """Encode records for the trainer; returns (rows with input_ids/labels, number truncated).

    `reasoning` is how much of each record's relay goes into `<think>` (all | first | decision | none).
    `decision_rows` adds that many short rows per record (`decision_example`): the prompt, then only the first
    line of the `<think>` block inside the loss.

    A record whose prompt alone fills `max_length` would contribute no loss, so it is an error.
    """
    from friction_lib.schema import to_messages

    rows, truncated = [], 0
    for record in records:
        example = encode_example(tokenizer, to_messages(record, reasoning=reasoning), max_length)
        if all(label == -100 for label in example["labels"]):
            raise FrictionError(
                f"Record {record.id!r}: its prompt alone is {example['prompt_tokens']} tokens, so nothing of the "
                f"answer fits in max_length={max_length}. Raise max_length or shorten the record."
            )
        truncated += int(example["truncated"])
        rows.append({"input_ids": example["input_ids"], "labels": example["labels"]})
        if decision_rows:
            short = decision_example(tokenizer, example, decision_line(record, reasoning))
            rows.extend(dict(short) for _ in range(decision_rows))
    return rows, truncated


def decision_line(record: Any, reasoning: str) -> str:
    """What a decision row trains: the fixed decision phrase (`reasoning="decision"`), else the first thought."""
    from friction_lib.schema import DECISION_PHRASES

    if reasoning == "decision":
        return DECISION_PHRASES[record.friction_type]
    return record.reasoning(reasoning).strip().split("\n", 1)[0]


def decision_example(tokenizer: Any, example: dict[str, Any], first_line: str) -> dict[str, Any]:
    """The start of `example`: its prompt, then its completion up to the end of `first_line`.

    The tokens are cut from the full example's own ids, so they are exactly the ones the model sees there.
    """
    from friction_lib.chat import THINK_OPEN

    if not first_line.strip():
        raise FrictionError("decision_rows needs a non-empty first <think> line (reasoning is empty).")
    n_prompt = example["prompt_tokens"]
    completion = example["input_ids"][n_prompt:]
    wanted = f"{THINK_OPEN}\n{first_line}"
    # the shortest run of completion tokens whose text covers the decision line
    for end in range(1, len(completion) + 1):
        if tokenizer.decode(completion[:end]).startswith(wanted):
            break
    else:
        raise FrictionError(f"The completion does not start with {wanted[:60]!r}: cannot cut a decision row.")
    ids = example["input_ids"][: n_prompt + end]
    return {"input_ids": ids, "labels": [-100] * n_prompt + ids[n_prompt:]}


def show_label_mask(tokenizer: Any, example: dict[str, Any], blank: str = "_") -> str:
    """Decode one example token by token; positions outside the loss (label -100) are blanked.

    Each masked token's text is replaced by `blank` characters of the same length (newlines kept), so the
    layout stays and only what the model is trained to write remains readable.
    """
    pieces = []
    for token_id, label in zip(example["input_ids"], example["labels"], strict=True):
        text = tokenizer.decode([token_id])
        if label == -100:
            text = "".join(ch if ch == "\n" else blank for ch in text)
        pieces.append(text)
    return "".join(pieces)


def loss_text(tokenizer: Any, example: dict[str, Any]) -> str:
    """Only the tokens inside the loss, decoded."""
    return tokenizer.decode([label for label in example["labels"] if label != -100])
