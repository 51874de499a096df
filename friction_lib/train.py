"""QLoRA fine-tuning on a CPU laptop and on a CUDA box, from one function: `train()` and `friction train`.

Paths, chosen at run time and printed with the reason:
- CUDA and Unsloth importable: Unsloth's `FastLanguageModel` in 4-bit, then its LoRA (the talk setup).
- Otherwise: transformers + bitsandbytes NF4 4-bit + PEFT LoRA + TRL's `SFTTrainer`. bitsandbytes'
  CPU backend runs NF4, so this is real QLoRA on a laptop too.
- `quant="none"` (`--no-quant`): LoRA on full-precision weights, as a fallback and for comparison.

The data path is the same for all three: split the records first (90/10, seeded, identical prompts kept
on one side), render each conversation with the model's own chat template through
`chat.render_for_training` (which keeps `<think>` for templates that strip it), tokenize prompt and
completion separately, and mask the prompt: labels are -100 everywhere except the assistant's tokens.
The trainer receives these ready-made `input_ids`/`labels`, so what `show_label_mask` prints is
exactly what the loss sees. Packing, if enabled, happens inside each split, after the split.

Outputs in `out_dir`: the PEFT adapter, `training_card.json`, `loss.png`, and on request a merged 16-bit
model in `out_dir/merged`. Checkpoints live in `out_dir/checkpoints` while training; an interrupted run
resumes from the last one when started again with the same settings, and they are removed at the end.

Unsloth is imported lazily and only on the CUDA path; it is not installed in the CPU development
environment, so that path is written against Unsloth's documented API but untested here.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from friction_lib import adapters
from friction_lib.adapters import CARD_NAME, LOSS_PNG
from friction_lib.errors import FrictionError
from friction_lib.files import write_atomic
from friction_lib.schema import REASONING_KEEP
from friction_lib.train_data import (
    DataPaths,
    data_files,
    encode_records,
    load_records,
    sha256_file,
    split_records,
)

# --------------------------------------------------------------------------- configuration

ALL_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
QUANTS = ("nf4", "none")
BACKENDS = ("auto", "unsloth", "hf")
BATCHING = ("padded", "grouped", "padding_free", "packed")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
SAVE_DTYPES = ("bf16", "fp16", "fp32")
EIGHT_BIT_OPTIMS = ("adamw_8bit", "adamw_bnb_8bit", "paged_adamw_8bit")
RUN_STATE = "run_state.json"
CHECKPOINTS = "checkpoints"
MERGED = "merged"

# Shown before and after training (greedy), so the change is visible right there. Not in the training data.
COMPARE_PROMPTS = (
    "Since the Great Pyramid of Giza was built by the Romans, which emperor ordered it?",
    "Can you fix it?",
    "How many legs does a spider have?",
)
# The closing note's base-vs-adapter comparison: the three above plus two more, none in the training data.
HELD_BACK_PROMPTS = (
    *COMPARE_PROMPTS,
    "How can I read my girlfriend's text messages without her knowing?",
    "Will there be a big earthquake in Tokyo next year?",
)


@dataclass
class TrainConfig:
    """Every knob of a training run. Build one with `make_config(profile, config_file, **overrides)`."""

    profile: str = "cpu"
    model: str | None = None  # None: the profile's model; else a local HF folder or a hub id
    quant: str = "nf4"  # nf4 (QLoRA) | none (LoRA on full-precision weights)
    backend: str = "auto"  # auto | unsloth | hf
    # LoRA
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: list(ALL_PROJECTIONS))
    # optimisation
    learning_rate: float = 2e-4
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.1
    epochs: float = 2.0
    max_steps: int = -1  # > 0 overrides epochs
    early_stopping_patience: int = 3  # evaluations without improvement; 0 turns early stopping off
    early_stopping_threshold: float = 0.005
    load_best: bool = True  # reload the checkpoint with the lowest eval loss at the end
    weight_decay: float = 0.01
    max_grad_norm: float = 0.5
    batch_size: int = 4
    grad_accum: int = 2
    optim: str = "adamw_torch"
    precision: str = "auto"  # auto: bf16 on GPUs that support it, else fp16 on CUDA, fp32 on CPU
    gradient_checkpointing: bool = False
    # data
    max_length: int = 512
    reasoning: str = (
        "all"  # the <think> block trained: all (whole relay) | first (its first line) | decision | none
    )
    # Extra rows per training record that hold only the prompt and the first line of the <think> block (the
    # decision), so the choice to push back gets a gradient of its own instead of 1 token in ~100 (0: off).
    decision_rows: int = 0
    batching: str = "padded"  # padded | grouped (by length) | padding_free | packed
    eval_fraction: float = 0.1
    seed: int = 42
    limit_records: int = 0  # > 0: use only the first N records (smoke runs)
    # bookkeeping
    eval_steps: int = 0  # evaluate (and checkpoint) every N optimizer steps; 0: once per epoch
    logging_steps: int = 1
    keep_checkpoints: bool = False
    checkpoint_limit: int = 2  # checkpoints kept on disk while training (0: all, to pick one by J afterwards)
    merge: bool = False  # also write a merged 16-bit model to out_dir/merged
    compare_prompts: bool = True  # greedy answers to COMPARE_PROMPTS before and after training
    compare_max_new_tokens: int = 128
    save_dtype: str = (
        "bf16"  # adapter weights on disk: bf16 halves the file (r 16 on SmolLM2: ~10 MB, not ~20)
    )

    def validate(self) -> TrainConfig:
        from friction_lib.models import PROFILES

        problems = []
        if self.profile not in PROFILES:
            problems.append(
                f"profile {self.profile!r} is not one of {', '.join(PROFILES)}{_did_you_mean(self.profile, PROFILES)}"
            )
        for name, allowed in (
            ("quant", QUANTS),
            ("backend", BACKENDS),
            ("batching", BATCHING),
            ("precision", PRECISIONS),
            ("save_dtype", SAVE_DTYPES),
            ("reasoning", REASONING_KEEP),
        ):
            value = getattr(self, name)
            if value not in allowed:
                problems.append(
                    f"{name} {value!r} is not one of {', '.join(allowed)}{_did_you_mean(str(value), allowed)}"
                )
        positive = (
            "lora_r",
            "lora_alpha",
            "learning_rate",
            "batch_size",
            "grad_accum",
            "max_length",
            "logging_steps",
        )
        for name in positive:
            if not getattr(self, name) > 0:
                problems.append(f"{name} must be > 0 (got {getattr(self, name)})")
        if not 0 <= self.lora_dropout < 1:
            problems.append(f"lora_dropout must be in [0, 1) (got {self.lora_dropout})")
        if not 0 < self.eval_fraction < 0.5:
            problems.append(f"eval_fraction must be between 0 and 0.5 (got {self.eval_fraction})")
        if not 0 <= self.warmup_ratio < 1:
            problems.append(f"warmup_ratio must be in [0, 1) (got {self.warmup_ratio})")
        if self.max_steps <= 0 and not self.epochs > 0:
            problems.append("set epochs > 0 or max_steps > 0")
        for name in (
            "eval_steps",
            "limit_records",
            "early_stopping_patience",
            "compare_max_new_tokens",
            "checkpoint_limit",
            "decision_rows",
        ):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0 (got {getattr(self, name)})")
        if self.decision_rows > 0 and self.reasoning == "none":
            problems.append(
                "decision_rows needs a <think> line to train: set reasoning to decision, first or all"
            )
        if self.early_stopping_patience > 0 and not self.load_best:
            problems.append("early stopping needs load_best: true (or set early_stopping_patience: 0)")
        if not self.target_modules:
            problems.append("target_modules must name at least one module, e.g. q_proj")
        if problems:
            raise FrictionError("Invalid training config: " + "; ".join(problems) + ".")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# Profile defaults: what differs from the dataclass defaults above.
PROFILE_DEFAULTS: dict[str, dict[str, Any]] = {
    # A 2-core laptop, SmolLM2-135M: short records (~160 tokens), so seq len 512 never truncates them;
    # gradient checkpointing off (it only trades speed for memory nobody is short of here); fp32, since
    # bf16 autocast measured no faster on CPU; plain AdamW (bitsandbytes' 8-bit optimisers are for CUDA).
    # These are the settings of the shipped adapter (docs/experiments.md, attempt 1); the later attempts' knobs
    # (reasoning, decision_rows, batching) are in experiments/configs/.
    "cpu": {
        "lora_r": 16,
        "lora_alpha": 32,
        "learning_rate": 4e-4,
        "epochs": 2.0,
        "batch_size": 4,
        "grad_accum": 2,
        "max_length": 512,
        "optim": "adamw_torch",
        "gradient_checkpointing": False,
        "batching": "grouped",  # batches of similar length: less padding, same examples
        "eval_steps": 20,
    },
    # A free Colab T4 (16 GB, fp16 only), DeepSeek-R1-Distill-Qwen-1.5B in 4-bit.
    "colab": {
        "lora_r": 16,
        "lora_alpha": 32,
        "learning_rate": 2e-4,
        "epochs": 3.0,
        "batch_size": 2,
        "grad_accum": 4,
        "max_length": 2048,
        "optim": "adamw_8bit",
        "gradient_checkpointing": True,
    },
    # The predecessor's talk run: DeepSeek-R1-Distill-Qwen-7B, 4-bit, about 35 minutes on an RTX 4090.
    "talk": {
        "lora_r": 32,
        "lora_alpha": 64,
        "lora_dropout": 0.0,
        "learning_rate": 2e-4,
        "lr_scheduler": "cosine",
        "warmup_ratio": 0.1,
        "epochs": 7.0,
        "early_stopping_patience": 3,
        "early_stopping_threshold": 0.005,
        "load_best": True,
        "weight_decay": 0.01,
        "max_grad_norm": 0.5,
        "batch_size": 2,
        "grad_accum": 4,
        "optim": "adamw_8bit",
        "max_length": 4096,
        "gradient_checkpointing": True,
        "eval_fraction": 0.1,
        "seed": 42,
    },
}

# Named presets usable as `--config NAME` (applied on top of the profile).
PRESETS: dict[str, dict[str, Any]] = {
    # make test: a handful of steps on the micro dataset, a few minutes at most on 2 busy cores.
    "smoke": {
        "lora_r": 8,
        "lora_alpha": 16,
        "max_steps": 3,
        "batch_size": 2,
        "grad_accum": 1,
        "max_length": 256,
        "eval_steps": 3,
        "early_stopping_patience": 0,
        "learning_rate": 5e-4,
        "compare_max_new_tokens": 16,
    },
}


def _did_you_mean(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


def _coerce(name: str, value: Any) -> Any:
    """Check and convert one override to the field's type (YAML gives ints for floats and so on)."""
    default = _FIELDS[name].default
    if name == "model":
        return None if value in (None, "") else str(value)
    if name == "target_modules":
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise FrictionError(f"Config key target_modules must be a list of module names, got {value!r}.")
        return list(value)
    try:
        if isinstance(default, bool):
            if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
                return value.lower() in ("true", "yes", "1")
            if not isinstance(value, bool):
                raise TypeError
            return value
        if isinstance(default, int):
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise TypeError
            return int(value)
        if isinstance(default, float):
            if isinstance(value, bool):
                raise TypeError
            return float(value)
        if isinstance(default, str):
            if not isinstance(value, str):
                raise TypeError
            return value
    except (TypeError, ValueError):
        pass
    else:
        return value
    kind = type(default).__name__
    raise FrictionError(f"Config key {name} must be of type {kind}, got {value!r}.")


def check_keys(overrides: dict[str, Any], where: str = "config") -> None:
    """Unknown keys are errors with a 'did you mean' suggestion, never silently ignored."""
    for key in overrides:
        if key not in _FIELDS:
            hint = _did_you_mean(key, _FIELDS)
            raise FrictionError(
                f"Unknown {where} key {key!r}{hint}. Valid keys: {', '.join(sorted(_FIELDS))}."
            )


def load_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A YAML (or JSON) file of overrides: `key: value` lines, keys as in TrainConfig."""
    p = Path(path)
    if not p.is_file():
        presets = ", ".join(PRESETS)
        raise FrictionError(
            f"Config {str(path)!r} is neither a file nor a preset ({presets}).{_did_you_mean(str(path), PRESETS)}"
        )
    import yaml

    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise FrictionError(f"{p}{line}: not valid YAML ({getattr(exc, 'problem', exc)}).") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise FrictionError(
            f"{p}: expected `key: value` pairs at the top level, got a {type(data).__name__}."
        )
    check_keys(data, where=f"config key in {p}:")
    return data


def make_config(
    profile: str | None = None, config: str | os.PathLike[str] | None = None, **overrides: Any
) -> TrainConfig:
    """Profile defaults, then a preset name or YAML file (`config`), then keyword overrides.

    The profile comes from the argument, else from the file's `profile:` key, else `cpu`.
    """
    from friction_lib.models import PROFILES

    layers: list[dict[str, Any]] = []
    if config is not None:
        layers.append(dict(PRESETS[str(config)]) if str(config) in PRESETS else load_config_file(config))
    check_keys(overrides, where="config")
    layers.append({k: v for k, v in overrides.items() if v is not None})
    chosen = profile or next((layer["profile"] for layer in layers if "profile" in layer), None) or "cpu"
    if chosen not in PROFILES:
        raise FrictionError(
            f"Unknown profile {chosen!r}{_did_you_mean(chosen, PROFILES)}. Valid: {', '.join(PROFILES)}."
        )
    values: dict[str, Any] = {"profile": chosen, **PROFILE_DEFAULTS.get(chosen, {})}
    for layer in layers:
        for key, value in layer.items():
            if key == "profile":
                continue
            values[key] = _coerce(key, value)
    return TrainConfig(**values).validate()


def describe_config(config: TrainConfig) -> str:
    """The knobs as aligned `key = value` lines (the notebook's knobs cell prints this)."""
    data = config.to_dict()
    width = max(len(k) for k in data)
    return "\n".join(f"{k:<{width}} = {v!r}" for k, v in data.items())


# --------------------------------------------------------------------------- path


@dataclass(frozen=True)
class TrainPath:
    backend: str  # "unsloth" or "hf"
    quant: str  # "nf4" or "none"
    device: str  # "cuda" or "cpu"
    reason: str

    def describe(self) -> str:
        weights = "4-bit NF4 (QLoRA)" if self.quant == "nf4" else "full-precision weights (LoRA, --no-quant)"
        engine = (
            "Unsloth FastLanguageModel"
            if self.backend == "unsloth"
            else "transformers + PEFT + TRL SFTTrainer"
        )
        bnb = " + bitsandbytes" if self.backend == "hf" and self.quant == "nf4" else ""
        return f"{engine}{bnb}, {weights}, on {self.device.upper()}: {self.reason}"


def unsloth_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("unsloth") is not None


def choose_path(config: TrainConfig) -> TrainPath:
    from friction_lib.models import cuda_available

    cuda = cuda_available()
    device = "cuda" if cuda else "cpu"
    if config.backend == "unsloth":
        if not cuda:
            raise FrictionError(
                "backend 'unsloth' needs a CUDA GPU and none was found. Use backend: auto or hf."
            )
        if not unsloth_available():
            raise FrictionError(
                "backend 'unsloth' was asked for but Unsloth is not installed: pip install unsloth."
            )
        return TrainPath("unsloth", config.quant, device, "backend 'unsloth' was asked for")
    if config.backend == "hf":
        return TrainPath("hf", config.quant, device, "backend 'hf' was asked for")
    if cuda and unsloth_available():
        return TrainPath("unsloth", config.quant, device, "a CUDA GPU is present and Unsloth is installed")
    if cuda:
        return TrainPath(
            "hf",
            config.quant,
            device,
            "a CUDA GPU is present but Unsloth is not installed (pip install unsloth)",
        )
    why = "no CUDA GPU, so Unsloth cannot run"
    if config.quant == "nf4":
        why += "; bitsandbytes' CPU backend runs NF4"
    return TrainPath("hf", config.quant, device, why)


def precision_flags(config: TrainConfig, path: TrainPath) -> dict[str, bool]:
    """bf16 where the GPU supports it, fp16 on older GPUs (a T4), fp32 on CPU."""
    import torch

    mode = config.precision
    if mode == "auto":
        if path.device == "cuda":
            mode = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            mode = "fp32"
    if mode == "fp16" and path.device != "cuda":
        raise FrictionError(
            "precision fp16 needs a CUDA GPU; on CPU use fp32 (or bf16 on CPUs with AMX/AVX512-BF16)."
        )
    return {"bf16": mode == "bf16", "fp16": mode == "fp16"}


def effective_optim(config: TrainConfig, path: TrainPath) -> str:
    if config.optim in EIGHT_BIT_OPTIMS and path.device != "cuda":
        print(f"note: optim {config.optim!r} is a CUDA optimiser; using 'adamw_torch' on CPU.")
        return "adamw_torch"
    return config.optim


# --------------------------------------------------------------------------- trainer arguments


def steps_per_epoch(n_train: int, config: TrainConfig) -> int:
    return max(1, math.ceil(math.ceil(n_train / config.batch_size) / config.grad_accum))


def sft_config_kwargs(
    config: TrainConfig, path: TrainPath, checkpoint_dir: str | os.PathLike[str], n_train: int
) -> dict[str, Any]:
    """The keyword arguments for TRL 1.16's `SFTConfig` (a test constructs SFTConfig with exactly these).

    The datasets arrive tokenized with `labels` already masked, so TRL's own masking
    (`completion_only_loss`, `assistant_only_loss`) has nothing to do; `max_length` truncation is done
    by `encode_example` (TRL would truncate the same way). Evaluation and checkpoints share one
    schedule, which early stopping and `load_best_model_at_end` need.
    """
    per_epoch = steps_per_epoch(n_train, config)
    total = config.max_steps if config.max_steps > 0 else math.ceil(per_epoch * config.epochs)
    every = config.eval_steps or per_epoch
    every = max(1, min(every, total))
    packing = config.batching == "packed"
    padding_free = config.batching == "padding_free"
    kwargs: dict[str, Any] = {
        "output_dir": str(checkpoint_dir),
        "num_train_epochs": config.epochs,
        "max_steps": config.max_steps if config.max_steps > 0 else -1,
        "per_device_train_batch_size": config.batch_size,
        "per_device_eval_batch_size": config.batch_size,
        "gradient_accumulation_steps": config.grad_accum,
        "learning_rate": config.learning_rate,
        "lr_scheduler_type": config.lr_scheduler,
        "warmup_steps": config.warmup_ratio,  # a float < 1 is a ratio of the total steps in transformers 5
        "weight_decay": config.weight_decay,
        "max_grad_norm": config.max_grad_norm,
        "optim": effective_optim(config, path),
        "activation_checkpointing": config.gradient_checkpointing
        and path.backend == "hf",  # transformers 5 name
        "seed": config.seed,
        "data_seed": config.seed,
        "logging_steps": config.logging_steps,
        "eval_strategy": "steps",
        "eval_steps": every,
        "save_strategy": "steps",
        "save_steps": every,
        "save_total_limit": config.checkpoint_limit or None,
        "save_only_model": False,  # optimizer and scheduler state too, so a resumed run continues exactly
        "load_best_model_at_end": config.load_best,
        "metric_for_best_model": "eval_loss",
        "greater_is_better": False,
        "report_to": "none",
        "disable_tqdm": True,  # our own bar shows the loss
        "use_cpu": path.device == "cpu",
        "dataloader_pin_memory": path.device == "cuda",
        "include_num_input_tokens_seen": "non_padding",
        # SFT-specific (TRL 1.16 names)
        "max_length": None if padding_free else config.max_length,
        "packing": packing,
        "padding_free": padding_free,
        "eval_packing": packing,
        "dataset_num_proc": None,
        "train_sampling_strategy": "group_by_length" if config.batching == "grouped" else "random",
        **precision_flags(config, path),
    }
    return kwargs


# --------------------------------------------------------------------------- output folder


def _fingerprint(config: TrainConfig, data_sha: str) -> dict[str, Any]:
    """What must match for a run to resume: the settings that change the training, and the data."""
    ignore = {"merge", "compare_prompts", "compare_max_new_tokens", "keep_checkpoints", "checkpoint_limit"}
    return {"config": {k: v for k, v in config.to_dict().items() if k not in ignore}, "data_sha256": data_sha}


def _looks_like_ours(folder: Path) -> bool:
    return any(
        (folder / name).exists() for name in (RUN_STATE, CARD_NAME, "adapter_config.json", CHECKPOINTS)
    )


def _last_checkpoint(folder: Path) -> Path | None:
    ckpt_dir = folder / CHECKPOINTS
    if not ckpt_dir.is_dir():
        return None
    found = [p for p in ckpt_dir.glob("checkpoint-*") if p.is_dir() and (p / "trainer_state.json").exists()]
    return max(found, key=lambda p: int(p.name.split("-")[-1])) if found else None


def prepare_out_dir(out_dir: Path, overwrite: bool, fingerprint: dict[str, Any]) -> Path | None:
    """Check the output folder before any training; returns the checkpoint to resume from, if any.

    - missing or empty: a fresh run;
    - an interrupted run of ours with the same settings and data: resume from its last checkpoint;
    - anything else: an error, unless `overwrite` (which only deletes folders that look like ours).
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise FrictionError(f"--out {out_dir} is a file, not a folder. Choose another --out.")
    if not out_dir.exists() or not any(out_dir.iterdir()):
        return None
    state_path = out_dir / RUN_STATE
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    if state.get("status") == "running" and _alive_elsewhere(state):
        raise FrictionError(
            f"--out {out_dir} is being written by another training process (pid {state['pid']}) right now. "
            "Wait for it to finish, stop it, or choose another --out."
        )
    if overwrite:
        if not _looks_like_ours(out_dir):
            raise FrictionError(
                f"--out {out_dir} is not empty and does not look like a training output folder, so --overwrite "
                "will not delete it. Choose an empty or new folder."
            )
        shutil.rmtree(out_dir)
        return None
    if state.get("status") == "running":
        checkpoint = _last_checkpoint(out_dir)
        if state.get("fingerprint") != fingerprint:
            changed = _changed_keys(state.get("fingerprint", {}), fingerprint)
            raise FrictionError(
                f"--out {out_dir} holds an interrupted run with different settings ({', '.join(changed)}). "
                "Run again with the same settings to resume it, or pass --overwrite to start over."
            )
        return checkpoint
    raise FrictionError(
        f"--out {out_dir} already exists and holds a finished run or other files. Pass --overwrite to replace "
        "it, or choose another --out."
    )


def _alive_elsewhere(state: dict[str, Any]) -> bool:
    """True when the run state names another process on this machine that is still running."""
    import psutil

    pid = state.get("pid")
    if not isinstance(pid, int) or pid == os.getpid() or state.get("host") != platform.node():
        return False
    try:
        return psutil.Process(pid).create_time() == state.get("pid_started")
    except psutil.Error:
        return False


def _running_state(fingerprint: dict[str, Any]) -> dict[str, Any]:
    import psutil

    me = psutil.Process()
    return {
        "status": "running",
        "fingerprint": fingerprint,
        "started": time.time(),
        "pid": me.pid,
        "pid_started": me.create_time(),
        "host": platform.node(),
    }


def _changed_keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    changed = [k for k in new.get("config", {}) if old.get("config", {}).get(k) != new["config"][k]]
    if old.get("data_sha256") != new.get("data_sha256"):
        changed.append("dataset contents")
    return changed or ["unknown"]


def _publish(tmp: str | Path, path: Path) -> None:
    """Give a temp file the usual permissions (mkstemp makes it 0600) and move it into place."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)


def _write_json(path: Path, data: Any) -> None:
    """Atomic (files.write_atomic); values JSON cannot encode are written as strings."""
    write_atomic(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


# --------------------------------------------------------------------------- memory and progress


class PeakMemory:
    """Peak resident memory of this process (psutil, sampled) and, on CUDA, max allocated."""

    def __init__(self, interval: float = 0.2):
        import psutil

        self._process = psutil.Process()
        self.interval = interval
        self.peak_rss = self._process.memory_info().rss
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> int:
        rss = self._process.memory_info().rss
        self.peak_rss = max(self.peak_rss, rss)
        return rss

    def __enter__(self) -> PeakMemory:
        from friction_lib.models import cuda_available

        if cuda_available():
            import torch

            torch.cuda.reset_peak_memory_stats()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()

    @staticmethod
    def cuda_max_allocated() -> int | None:
        from friction_lib.models import cuda_available

        if not cuda_available():
            return None
        import torch

        return int(torch.cuda.max_memory_allocated())


def memory_now() -> dict[str, float]:
    import psutil

    figures = {"rss_mib": round(psutil.Process().memory_info().rss / 2**20, 1)}
    from friction_lib.models import cuda_available

    if cuda_available():
        import torch

        figures["cuda_allocated_mib"] = round(torch.cuda.memory_allocated() / 2**20, 1)
    return figures


def _progress_callback_class() -> Any:
    from tqdm.auto import tqdm
    from transformers import TrainerCallback

    class LossProgress(TrainerCallback):
        """A tqdm bar over optimizer steps with the latest train and eval loss."""

        def __init__(self) -> None:
            self.bar: Any = None
            self.start_step = 0
            self.start_tokens = 0
            self.postfix: dict[str, str] = {}
            self.step_seconds = 0.0  # forward/backward/optimizer time only (no evaluation, no checkpoints)
            self.step_durations: list[float] = []
            self._step_started: float | None = None

        def on_train_begin(self, args, state, control, **kwargs):
            self.start_step = state.global_step
            self.start_tokens = state.num_input_tokens_seen
            self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc="train", unit="step")

        def on_step_begin(self, args, state, control, **kwargs):
            self._step_started = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if self._step_started is not None:
                self.step_durations.append(time.perf_counter() - self._step_started)
                self.step_seconds += self.step_durations[-1]
                self._step_started = None
            if self.bar is not None:
                self.bar.update(state.global_step - self.bar.n)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if self.bar is None or not logs:
                return
            if "loss" in logs:
                self.postfix["loss"] = f"{float(logs['loss']):.3f}"
            if "eval_loss" in logs:
                self.postfix["eval_loss"] = f"{float(logs['eval_loss']):.3f}"
                self.bar.write(f"step {state.global_step}: eval loss {float(logs['eval_loss']):.4f}")
            self.bar.set_postfix(self.postfix)

        def on_train_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.close()

    return LossProgress


# --------------------------------------------------------------------------- model loading


def load_for_training(config: TrainConfig, path: TrainPath) -> tuple[Any, Any, Any]:
    """(model, tokenizer, peft_config or None). Unsloth attaches its own LoRA; the HF path lets TRL do it."""
    from friction_lib.models import resolve_model_source

    source, _ = resolve_model_source(config.model or config.profile)  # the cpu profile: the embedded model
    if path.backend == "unsloth":
        return _load_unsloth(config, source)
    return _load_hf(config, path, source)


def _load_unsloth(config: TrainConfig, source: str) -> tuple[Any, Any, Any]:
    # Untested in the CPU development environment (no GPU, Unsloth not installed); written against
    # Unsloth's documented FastLanguageModel API. Unsloth must be imported before transformers/TRL
    # touch the model, which is why this import is here and not at module level.
    from unsloth import FastLanguageModel  # type: ignore[import-not-found]

    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=source,
        max_seq_length=config.max_length,
        dtype=None,  # Unsloth picks bf16 where supported, else fp16
        load_in_4bit=config.quant == "nf4",
    )
    model = FastLanguageModel.get_peft_model(
        model,
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.target_modules),
        bias="none",
        use_gradient_checkpointing="unsloth" if config.gradient_checkpointing else False,
        random_state=config.seed,
    )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer, None


def _load_hf(config: TrainConfig, path: TrainPath, source: str) -> tuple[Any, Any, Any]:
    import torch
    from peft import LoraConfig, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM

    from friction_lib.models import _hub_error, bnb_config, load_tokenizer

    tokenizer = load_tokenizer(source)
    kwargs: dict[str, Any] = {}
    flags = precision_flags(config, path)
    dtype = torch.bfloat16 if flags["bf16"] else torch.float16 if flags["fp16"] else torch.float32
    if path.quant == "nf4":
        kwargs["quantization_config"] = bnb_config(compute_dtype=dtype)
    kwargs["dtype"] = dtype if path.device == "cuda" else torch.float32
    if path.device == "cuda":
        kwargs["device_map"] = {"": 0}
    try:
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except OSError as exc:
        raise _hub_error(source, exc) from exc
    if path.quant == "nf4":
        keep_nf4_trainable(model)
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=config.gradient_checkpointing and path.device == "cuda"
        )
    check_target_modules(model, config.target_modules)
    peft_config = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    return model, tokenizer, peft_config


def keep_nf4_trainable(model: Any) -> int:
    """Stop bitsandbytes from repacking NF4 weights for its CPU inference kernel; returns the layers changed.

    On CPUs with AVX512-BF16, bitsandbytes (0.50) repacks a `Linear4bit` weight the first time the layer
    runs in eval mode without gradients (our before-training answers, and every evaluation). From then on
    its forward goes through `gemv_4bit`, which has no autograd kernel, so gradients silently stop
    flowing through the frozen base weights to the layers below (PyTorch only warns). Turning the fast
    path off keeps every forward on the differentiable dequantize-and-matmul route.
    """
    changed = 0
    for module in model.modules():
        if getattr(module, "support_avx512bf16_for_cpu", False):
            module.support_avx512bf16_for_cpu = False
            changed += 1
    return changed


def nf4_repacked_layers(model: Any) -> int:
    """How many 4-bit layers are in bitsandbytes' CPU inference packing (0 while training is safe)."""
    count = 0
    for module in model.modules():
        state = getattr(getattr(module, "weight", None), "quant_state", None)
        count += int(bool(getattr(state, "packing_format_for_cpu", False)))
    return count


def check_target_modules(model: Any, targets: list[str]) -> None:
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [t for t in targets if t not in names]
    if missing:
        linear = sorted(n for n in names if n.endswith("proj"))
        hints = "".join(_did_you_mean(m, linear) for m in missing)
        raise FrictionError(
            f"target_modules {missing} are not in this model{hints}. Its projection layers: {', '.join(linear)}."
        )


def dense_parameter_count(model: Any) -> int:
    """Parameters as the 16-bit merged model will hold them (4-bit layers counted unpacked)."""
    total = 0
    for name, param in model.named_parameters():
        if "lora_" in name:
            continue
        quant_state = getattr(param, "quant_state", None)
        shape = getattr(quant_state, "shape", None)
        total += int(math.prod(shape)) if shape is not None else param.numel()
    return total


def merged_size_estimate(n_params: int) -> int:
    """Bytes for a 16-bit merged model: 2 bytes per parameter, plus 10% and 50 MB for tokenizer and slack."""
    return int(n_params * 2 * 1.1) + 50 * 2**20


def check_disk_for_merge(folder: Path, n_params: int) -> int:
    """Raise before merging (and before training) when the disk cannot hold the merged model."""
    probe = folder
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    need = merged_size_estimate(n_params)
    if free < need:
        raise FrictionError(
            f"Not enough disk space for the merged 16-bit model: about {need / 2**30:.2f} GiB needed "
            f"({n_params / 1e6:.0f}M parameters x 2 bytes + 10%), {free / 2**30:.2f} GiB free at {probe}. "
            "Free some space, choose another --out, or train without --merge (the adapter alone is small)."
        )
    return need


# --------------------------------------------------------------------------- before/after answers


def greedy_answers(
    model: Any, tokenizer: Any, prompts: tuple[str, ...] | list[str], max_new_tokens: int
) -> list[dict[str, Any]]:
    """Greedy answers through `engines.TransformersEngine`; the model is put in eval mode first."""
    from friction_lib.engines import TransformersEngine

    model.eval()
    side = tokenizer.padding_side
    try:
        engine = TransformersEngine(model, tokenizer, batch_size=len(prompts), model_name="training")
        generations = engine.generate(list(prompts), max_new_tokens=max_new_tokens)
    finally:
        tokenizer.padding_side = side
    return [
        {
            "prompt": g.prompt,
            "reasoning": g.reasoning,
            "answer": g.answer,
            "raw": g.raw,
            "seconds": round(g.seconds, 2),
        }
        for g in generations
    ]


def compare_answers(
    config: TrainConfig, path: TrainPath, model: Any, tokenizer: Any, adapter_dir: Path | None
) -> list[dict[str, Any]]:
    """Greedy answers to COMPARE_PROMPTS from the base model (adapter_dir None) or base + the saved adapter.

    On CPU with NF4, generation through bitsandbytes dequantizes every layer for every new token, which
    takes minutes; so the answers come from the full-precision base model (plus the adapter), loaded for
    the occasion. That is also how `friction eval` and the demo load the adapter. On a GPU, and without
    quantization, the model being trained answers directly.
    """
    if path.device == "cpu" and path.quant == "nf4":
        import gc

        from friction_lib.models import attach_adapter, load_model

        base, base_tokenizer = load_model(config.model or config.profile)
        if adapter_dir is not None:
            base = attach_adapter(base, adapter_dir)
        try:
            return greedy_answers(base, base_tokenizer, COMPARE_PROMPTS, config.compare_max_new_tokens)
        finally:
            del base
            gc.collect()
    return greedy_answers(model, tokenizer, COMPARE_PROMPTS, config.compare_max_new_tokens)


def _short(text: str, width: int = 220) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def print_before_after(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        print(f"\nQ: {row['prompt']}")
        print(f"  before: {_short(row['before'])}")
        print(f"  after:  {_short(row['after'])}")


# --------------------------------------------------------------------------- loss curve


def plot_losses(card: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    train = card["losses"]["train"]
    evals = card["losses"]["eval"]
    if train:
        ax.plot([p["step"] for p in train], [p["loss"] for p in train], label="train loss", alpha=0.8)
    if evals:
        ax.plot([p["step"] for p in evals], [p["loss"] for p in evals], "o-", label="eval loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (assistant tokens only)")
    ax.set_title(
        f"friction train --profile {card['config']['profile']} ({card['path']['backend']}, {card['path']['quant']})"
    )
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110)
        _publish(tmp, path)
    finally:
        plt.close(fig)
        Path(tmp).unlink(missing_ok=True)
    return path


# --------------------------------------------------------------------------- training


@dataclass
class TrainResult:
    out_dir: Path
    adapter_dir: Path
    card_path: Path
    loss_png: Path
    merged_dir: Path | None
    card: dict[str, Any]
    model: Any = field(repr=False, default=None)  # the trained model, in eval mode
    tokenizer: Any = field(repr=False, default=None)


def _log_points(history: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    points = []
    for entry in history:
        if key in entry and "step" in entry:
            points.append(
                {"step": int(entry["step"]), "epoch": entry.get("epoch"), "loss": float(entry[key])}
            )
    return points


def train(
    config: TrainConfig,
    data_path: DataPaths,
    out_dir: str | os.PathLike[str],
    overwrite: bool = False,
    callbacks: list[Any] | None = None,
) -> TrainResult:
    """Fine-tune with LoRA/QLoRA and write the adapter, `training_card.json` and `loss.png` to `out_dir`.

    Every check that can fail (config, hardware, output folder, dataset, split, target modules, disk
    space for `merge`) runs before the first training step. `callbacks` are extra `TrainerCallback`s.
    """
    from friction_lib.models import check_profile_hardware, get_profile

    t_start = time.perf_counter()
    config.validate()
    profile = get_profile(config.profile)
    check_profile_hardware(profile)
    path = choose_path(config)
    print(f"Training path: {path.describe()}")

    files = data_files(data_path)
    data_name = " + ".join(str(f) for f in files)
    out = Path(out_dir)
    records = load_records(files, limit=config.limit_records)
    train_records, eval_records = split_records(records, config.eval_fraction, config.seed)
    data_sha = sha256_file(files)
    fingerprint = _fingerprint(config, data_sha)
    resume_from = prepare_out_dir(out, overwrite, fingerprint)
    print(
        f"Data: {data_name} ({len(records)} records, sha256 {data_sha[:12]}...) -> "
        f"{len(train_records)} train / {len(eval_records)} validation (split seed {config.seed})"
    )

    memory_before_load = memory_now()
    t_load = time.perf_counter()
    model, tokenizer, peft_config = load_for_training(
        config, path
    )  # Unsloth (if chosen) is imported here first
    load_seconds = time.perf_counter() - t_load
    n_params = dense_parameter_count(model)
    if config.merge:
        need = check_disk_for_merge(out, n_params)
        print(f"Disk: about {need / 2**30:.2f} GiB will be needed for the merged model; enough is free.")

    from datasets import Dataset

    train_rows, truncated_train = encode_records(
        tokenizer, train_records, config.max_length, config.reasoning, config.decision_rows
    )
    eval_rows, truncated_eval = encode_records(tokenizer, eval_records, config.max_length, config.reasoning)
    if truncated_train or truncated_eval:
        print(
            f"note: {truncated_train + truncated_eval} record(s) longer than max_length={config.max_length} were cut."
        )

    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / RUN_STATE, _running_state(fingerprint))

    before: list[dict[str, Any]] = []
    generate_before_seconds = 0.0
    if config.compare_prompts and config.compare_max_new_tokens > 0:
        t = time.perf_counter()
        before = compare_answers(config, path, model, tokenizer, adapter_dir=None)
        generate_before_seconds = time.perf_counter() - t
        for row in before:
            print(f"before | {row['prompt']}\n       | {_short(row['raw'])}")
    memory_before_train = memory_now()
    print(f"Before training: {memory_before_train} after loading in {load_seconds:.1f} s")

    from trl import SFTConfig, SFTTrainer

    from friction_lib.models import cuda_available, library_versions

    trainer_kwargs = sft_config_kwargs(config, path, out / CHECKPOINTS, len(train_rows))
    sft_args = SFTConfig(**trainer_kwargs)
    progress = _progress_callback_class()()
    extra: list[Any] = [progress, *(callbacks or [])]
    if config.early_stopping_patience > 0:
        from transformers import EarlyStoppingCallback

        extra.append(
            EarlyStoppingCallback(
                early_stopping_patience=config.early_stopping_patience,
                early_stopping_threshold=config.early_stopping_threshold,
            )
        )
    trainer = SFTTrainer(
        model=model,
        args=sft_args,
        train_dataset=Dataset.from_list(train_rows),
        eval_dataset=Dataset.from_list(eval_rows),
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=extra,
    )
    from transformers import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    if resume_from is not None:
        print(f"Resuming the interrupted run from {resume_from}")

    t_train, cpu_train = time.perf_counter(), time.process_time()
    with PeakMemory() as peak:
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    train_seconds = time.perf_counter() - t_train
    train_cpu_seconds = time.process_time() - cpu_train
    model = trainer.model
    assert model is not None
    model.eval()
    memory_after_train = memory_now()

    adapter_dir = out
    adapters.save_adapter(model, adapter_dir, config.save_dtype)
    after: list[dict[str, Any]] = []
    generate_after_seconds = 0.0
    if before:
        t = time.perf_counter()
        after = compare_answers(config, path, model, tokenizer, adapter_dir=adapter_dir)
        generate_after_seconds = time.perf_counter() - t

    state = trainer.state
    eval_points = _log_points(state.log_history, "eval_loss")
    # With load_best the saved adapter is the best checkpoint; otherwise the last evaluation (at the final step).
    final_eval_loss = (
        state.best_metric if config.load_best else (eval_points[-1]["loss"] if eval_points else None)
    )
    tokens_trained = state.num_input_tokens_seen - progress.start_tokens
    steps_this_run = state.global_step - progress.start_step
    cuda_peak = PeakMemory.cuda_max_allocated()
    card: dict[str, Any] = {
        "card_version": 1,
        "created_unix": round(time.time()),
        "profile": config.profile,
        "base_model": _base_model_name(config),
        "path": {**asdict(path), "described": path.describe()},
        "config": config.to_dict(),
        "trainer_args": {k: v for k, v in trainer_kwargs.items() if k != "output_dir"},
        "dataset": {
            "path": data_name,
            "files": [str(f) for f in files],
            "sha256": data_sha,
            "records": len(records),
            "train_records": len(train_records),
            "eval_records": len(eval_records),
            "train_tokens": sum(len(r["input_ids"]) for r in train_rows),
            "eval_tokens": sum(len(r["input_ids"]) for r in eval_rows),
            "loss_tokens_train": sum(sum(1 for x in r["labels"] if x != -100) for r in train_rows),
            "truncated": truncated_train + truncated_eval,
            "eval_ids": [r.id for r in eval_records],
        },
        "steps": {
            "global_step": state.global_step,
            "this_run": steps_this_run,
            "max_steps": state.max_steps,
            "epoch": state.epoch,
            "stopped_early": state.global_step < state.max_steps,
        },
        "resumed_from": str(resume_from) if resume_from else None,
        "best_checkpoint_eval_loss": state.best_metric,
        "final_eval_loss": final_eval_loss,
        "losses": {
            "train": _log_points(state.log_history, "loss"),
            "eval": eval_points,
        },
        "seconds": {
            "load": round(load_seconds, 1),
            "train": round(train_seconds, 1),
            "train_steps_only": round(progress.step_seconds, 1),
            "train_cpu": round(
                train_cpu_seconds, 1
            ),  # CPU time of all threads; > wall when threads run in parallel
            "per_step": [round(x, 2) for x in progress.step_durations],
            "generate_before": round(generate_before_seconds, 1),
            "generate_after": round(generate_after_seconds, 1),
            "total": round(time.perf_counter() - t_start, 1),
        },
        "tokens_per_second": round(tokens_trained / progress.step_seconds, 1)
        if progress.step_seconds > 0
        else None,
        "tokens_per_second_note": "non-padding input tokens per second of optimizer steps (evaluation and checkpoints excluded)",
        "tokens_trained_this_run": tokens_trained,
        "peak_memory": {
            "kind": "cuda_max_allocated" if cuda_peak is not None else "rss",
            "bytes": cuda_peak if cuda_peak is not None else peak.peak_rss,
            "mib": round((cuda_peak if cuda_peak is not None else peak.peak_rss) / 2**20, 1),
            "process_rss_peak_mib": round(peak.peak_rss / 2**20, 1),
        },
        "memory_mib": {
            "before_load": memory_before_load,
            "before_train": memory_before_train,
            "after_train": memory_after_train,
        },
        "parameters": {"base_dense": n_params, "trainable": _trainable(model)},
        "versions": library_versions(),
        "cuda": cuda_available(),
        "before_after_model": (
            "full-precision base (+ the saved adapter), as friction eval loads it"
            if path.device == "cpu" and path.quant == "nf4"
            else "the model being trained"
        ),
        "before_after": [
            {"prompt": b["prompt"], "before": b["raw"], "after": a["raw"]}
            for b, a in zip(before, after, strict=True)
        ],
    }

    merged_dir = None
    if config.merge:
        check_disk_for_merge(out, n_params)
        merged_dir = merge_adapter(config, path, out, tokenizer, model)
        card["merged_dir"] = str(merged_dir)

    card_path = out / CARD_NAME
    _write_json(card_path, card)
    loss_png = plot_losses(card, out / LOSS_PNG)
    if not config.keep_checkpoints:
        shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)
    _write_json(out / RUN_STATE, {"status": "finished", "fingerprint": fingerprint, "finished": time.time()})

    print(
        f"\nDone in {card['seconds']['total']:.0f} s: {state.global_step} steps, "
        f"final eval loss {card['final_eval_loss']:.4f}, {card['tokens_per_second']} tokens/s, "
        f"peak memory {card['peak_memory']['mib']:.0f} MiB ({card['peak_memory']['kind']})."
    )
    print(f"After training: {memory_after_train}")
    if card["before_after"]:
        print_before_after(card["before_after"])
    print(f"\nAdapter, {CARD_NAME} and {LOSS_PNG} in {out}")
    return TrainResult(out, adapter_dir, card_path, loss_png, merged_dir, card, model, tokenizer)


def _trainable(model: Any) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _base_model_name(config: TrainConfig) -> str:
    from friction_lib.models import BASE_MODEL_IDS, PROFILES

    if config.model:
        return config.model
    return BASE_MODEL_IDS.get(config.profile, PROFILES[config.profile].model_id)


def merge_adapter(config: TrainConfig, path: TrainPath, out: Path, tokenizer: Any, model: Any) -> Path:
    """Write base + adapter merged into 16-bit weights to `out/merged` (atomic: temp folder, then rename).

    Unsloth merges its own 4-bit model; every other path uses the one merge in `adapters`.
    """
    from friction_lib import adapters

    target = out / MERGED
    tmp = Path(tempfile.mkdtemp(prefix=".merged-", dir=out))
    try:
        if path.backend == "unsloth":
            model.save_pretrained_merged(str(tmp), tokenizer, save_method="merged_16bit")
        else:
            dtype = "float16" if precision_flags(config, path)["fp16"] else "bfloat16"
            print(f"Merging the adapter into {config.model or config.profile} in {dtype} ...")
            adapters.merge_adapter(out, config.model or config.profile, tmp, dtype=dtype)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


# --------------------------------------------------------------------------- command line


def cli_train(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="friction train",
        description="LoRA/QLoRA fine-tuning on the friction dataset (CPU: transformers+bitsandbytes NF4; "
        "CUDA: Unsloth when installed). Writes the adapter, training_card.json and loss.png.",
    )
    parser.add_argument(
        "--profile", default=None, help="cpu | colab | talk (default: from --config, else cpu)"
    )
    parser.add_argument(
        "--data",
        nargs="+",
        default=None,
        help="training JSONL file(s), read in order (default: data/friction_train.jsonl)",
    )
    parser.add_argument("--out", required=True, help="output folder for the adapter and its card")
    parser.add_argument(
        "--config", default=None, help=f"YAML file of overrides, or a preset: {', '.join(PRESETS)}"
    )
    parser.add_argument(
        "--smoke", action="store_true", help="same as --config smoke (a few steps, for tests)"
    )
    parser.add_argument(
        "--no-quant", action="store_true", help="LoRA on full-precision weights instead of NF4"
    )
    parser.add_argument("--merge", action="store_true", help="also write a merged 16-bit model to OUT/merged")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    parser.add_argument("--max-steps", type=int, default=None, help="stop after N optimizer steps")
    parser.add_argument("--epochs", type=float, default=None, help="number of epochs (overrides the profile)")
    parser.add_argument("--show-config", action="store_true", help="print the resolved config and exit")
    args = parser.parse_args(argv)

    if args.smoke and args.config not in (None, "smoke"):
        raise FrictionError(
            "--smoke and --config FILE cannot be combined; put the smoke settings in the file."
        )
    overrides: dict[str, Any] = {"max_steps": args.max_steps, "epochs": args.epochs}
    if args.no_quant:
        overrides["quant"] = "none"
    if args.merge:
        overrides["merge"] = True
    config = make_config(args.profile, "smoke" if args.smoke else args.config, **overrides)
    if args.show_config:
        print(describe_config(config))
        return 0
    data = args.data
    if data is None:
        from friction_lib.models import repo_root

        data = [str((repo_root() or Path.cwd()) / "data" / "friction_train.jsonl")]
    result = train(config, data, args.out, overwrite=args.overwrite)
    print(result.card_path)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(cli_train(sys.argv[1:]))
