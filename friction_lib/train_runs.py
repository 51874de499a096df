"""The training output folder: may a run write there, resuming an interrupted run, its state file, disk space.

A training folder is written in place, not staged, because an interrupted run resumes from its checkpoints:
- the tool's marker (`files.MARKER`) says friction made the folder, so `--overwrite` may replace it;
- `run_state.json` says `running` until the run has written everything, then `finished`: a folder whose state
  says `running` holds an unfinished run, and the same command (same settings, same data) resumes it;
- the caller holds `files.output_lock` for the whole run: one writer per folder.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import platform
import re
import shutil
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from friction_lib.errors import FrictionError
from friction_lib.files import (
    check_disk_space,
    check_output_folder,
    made_by_tool,
    mark_output,
    size_text,
    write_json,
)
from friction_lib.train_config import TrainConfig

COMMAND = "train"
RUN_STATE = "run_state.json"
CHECKPOINTS = "checkpoints"
TRAINER_STATE = "trainer_state.json"
_STEP = re.compile(r"checkpoint-\d+")


def run_fingerprint(config: TrainConfig, data_sha: str) -> dict[str, Any]:
    """What must match for a run to resume: the settings that change the training, and the data."""
    ignore = {"merge", "compare_prompts", "compare_max_new_tokens", "keep_checkpoints", "checkpoint_limit"}
    return {"config": {k: v for k, v in config.to_dict().items() if k not in ignore}, "data_sha256": data_sha}


def read_state(out: Path) -> dict[str, Any]:
    """The run state of a training folder; {} when there is none (or it is not readable JSON)."""
    try:
        state = json.loads((out / RUN_STATE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return state if isinstance(state, dict) else {}


def check_out_dir(out: Path, overwrite: bool, fingerprint: dict[str, Any]) -> bool:
    """May `friction train` write to `out`? True: it holds an interrupted run to resume. Deletes nothing.

    - missing or empty: a fresh run;
    - an unfinished run the tool made, with the same settings and data: resume it (unless `overwrite`);
    - anything else is refused by `files.check_output_folder`: without `overwrite`, and with it unless the tool
      made the folder; never the current directory, the repository root or the home folder.
    """
    state = read_state(out)
    if state.get("status") == "running" and made_by_tool(out) and not overwrite:
        # Only the places check_output_folder always refuses (cwd, repo root, home) apply; nothing is deleted.
        check_output_folder(out, overwrite=True, command=COMMAND)
        if state.get("fingerprint") != fingerprint:
            changed = _changed_keys(state.get("fingerprint", {}), fingerprint)
            raise FrictionError(
                f"--out {out} holds an interrupted run with different settings ({', '.join(changed)}). "
                "Run again with the same settings to resume it, or pass --overwrite to start over."
            )
        return True
    check_output_folder(out, overwrite, COMMAND)
    return False


def prepare_out_dir(out: Path, overwrite: bool, fingerprint: dict[str, Any]) -> Path | None:
    """`check_out_dir`, then make room: returns the checkpoint to resume from (None: a fresh run).

    Call it while holding `files.output_lock(out)`. With `overwrite`, a folder the tool made is removed.
    """
    if check_out_dir(out, overwrite, fingerprint):
        return resume_checkpoint(out)
    if overwrite and out.is_dir() and any(out.iterdir()):
        shutil.rmtree(out)
    return None


def _changed_keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    changed = [k for k in new.get("config", {}) if old.get("config", {}).get(k) != new["config"][k]]
    if old.get("data_sha256") != new.get("data_sha256"):
        changed.append("dataset contents")
    return changed or ["unknown"]


def start_run(out: Path, fingerprint: dict[str, Any]) -> None:
    """Make the folder, mark it as the tool's, and record a running (unfinished) run."""
    import psutil

    out.mkdir(parents=True, exist_ok=True)
    mark_output(out, COMMAND)
    me = psutil.Process()
    state = {
        "status": "running",
        "fingerprint": fingerprint,
        "started": time.time(),
        "pid": me.pid,
        "pid_started": me.create_time(),
        "host": platform.node(),
    }
    write_json(out / RUN_STATE, state)


def finish_run(out: Path, fingerprint: dict[str, Any]) -> None:
    """The last write of a run: everything else is in place."""
    write_json(out / RUN_STATE, {"status": "finished", "fingerprint": fingerprint, "finished": time.time()})


@contextlib.contextmanager
def full_disk_stops_the_run(out: Path) -> Iterator[None]:
    """A disk that fills up during the run stops it with one line; the folder stays visibly unfinished.

    The run state still says `running`, and the checkpoints written so far stay: the same command resumes
    from the last complete one (`resume_checkpoint` removes the one the full disk cut off). A failed write
    says so (ENOSPC, or "os error 28" from safetensors), except torch.save's, which only says "unexpected
    pos": any failure on a disk with less than 1 MiB left counts too.
    """
    try:
        yield
    except FrictionError:
        raise
    except Exception as exc:
        text = str(exc)
        said = getattr(exc, "errno", None) == errno.ENOSPC or re.search(r"No space left|os error 28", text)
        if not said and shutil.disk_usage(out).free >= 2**20:
            raise
        detail = (text.strip().splitlines() or [type(exc).__name__])[0][:160]
        raise FrictionError(
            f"Training stopped: the disk holding {out} is full ({detail}). The run is unfinished ({RUN_STATE} "
            "says running); free some space and run the same command again to resume from the last complete "
            "checkpoint."
        ) from exc


# --------------------------------------------------------------------------- checkpoints


def checkpoints(out: Path) -> list[Path]:
    """The `checkpoint-N` folders of a training folder, by step."""
    found = [p for p in (out / CHECKPOINTS).glob("checkpoint-*") if p.is_dir() and _STEP.fullmatch(p.name)]
    return sorted(found, key=lambda p: int(p.name.split("-")[-1]))


def checkpoint_problem(folder: Path) -> str | None:
    """Why the trainer cannot resume from this checkpoint (a file cut off or missing), or None."""
    from safetensors import SafetensorError, safe_open

    if not (folder / TRAINER_STATE).is_file():
        return f"it has no {TRAINER_STATE}; saving it was cut off"
    try:
        json.loads((folder / TRAINER_STATE).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return f"{TRAINER_STATE} is not valid JSON ({exc})"
    for path in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(str(path), framework="pt") as handle:
                handle.keys()
        except (SafetensorError, OSError) as exc:
            return f"{path.name}: {exc}"
    for path in sorted([*folder.glob("*.pt"), *folder.glob("*.pth")]):
        if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; a cut-off one has no directory
            return f"{path.name} is cut off"
    return None


def resume_checkpoint(out: Path) -> Path | None:
    """The last complete checkpoint. A damaged later one is reported and removed (the resumed run writes it
    again when it gets there), so every rerun does not stumble on it."""
    for path in reversed(checkpoints(out)):
        problem = checkpoint_problem(path)
        if problem is None:
            return path
        print(
            f"warning: {path} is damaged ({problem}); removed it and resuming from the checkpoint before it.",
            file=sys.stderr,
        )
        shutil.rmtree(path)
    return None


# --------------------------------------------------------------------------- disk space


def merged_size_estimate(n_params: int) -> int:
    """Bytes for a 16-bit merged model: 2 bytes per parameter, plus 10% and 50 MB for tokenizer and slack."""
    return int(n_params * 2 * 1.1) + 50 * 2**20


def check_disk_for_merge(folder: Path, n_params: int) -> int:
    """Raise before merging (and before training) when the disk cannot hold the merged model."""
    check_disk_space(
        folder,
        merged_size_estimate(n_params),
        f"the merged 16-bit model ({n_params / 1e6:.0f}M parameters x 2 bytes + 10%)",
        "Free some space, choose another --out, or train without --merge (the adapter alone is small).",
    )
    return merged_size_estimate(n_params)


CHECKPOINT_SLACK = (
    32 * 2**20
)  # tokenizer files, scheduler, RNG and trainer state: a few MB on the models here
DTYPE_BYTES = {"bf16": 2, "fp16": 2, "fp32": 4}


def training_disk_need(
    config: TrainConfig, lora_params: int, saves: int, n_params: int | None = None
) -> dict[str, int]:
    """Bytes a run writes, by part: the checkpoints on disk at once (LoRA weights in fp32 and AdamW's two
    moments, so 12 bytes per LoRA parameter), the adapter (written in fp32, then cast), the merged model."""
    at_once = saves if config.checkpoint_limit == 0 else min(saves, config.checkpoint_limit + 1)
    per_checkpoint = lora_params * 12 + CHECKPOINT_SLACK
    parts = {
        f"{at_once} checkpoint(s) of {size_text(per_checkpoint)}": at_once * per_checkpoint,
        "the adapter": lora_params * (4 + DTYPE_BYTES[config.save_dtype]) + 2**20,
    }
    if config.merge and n_params:
        parts["the merged 16-bit model"] = merged_size_estimate(n_params)
    return parts


def check_disk_for_training(folder: Path, parts: dict[str, int]) -> int:
    """Raise before training when the disk cannot hold what the run will write (`training_disk_need`)."""
    check_disk_space(
        folder,
        sum(parts.values()),
        f"training ({', '.join(parts)})",
        "Free some space, choose another --out, or keep fewer checkpoints (checkpoint_limit: 1, or a larger "
        "eval_steps).",
    )
    return sum(parts.values())


def saves_in(total_steps: int, every: int) -> int:
    """How many checkpoints a run of `total_steps` saving every `every` steps writes (one more at the end)."""
    return math.floor(total_steps / every) + 1
