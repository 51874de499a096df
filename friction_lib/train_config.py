"""The knobs of a training run: `TrainConfig`, the profiles' defaults, presets, YAML files and their checks.

`make_config(profile, config, **overrides)` layers, later wins: the dataclass defaults, the profile's defaults, the
method's defaults (`dpo`), a preset (`smoke`) or a YAML file, keyword overrides (the CLI flags). An unknown key,
profile or preset is an error with a "did you mean" suggestion; a wrong type or range is an error naming the key.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from friction_lib.errors import FrictionError
from friction_lib.files import read_yaml_mapping
from friction_lib.pairs import KINDS as PAIR_KINDS
from friction_lib.schema import REASONING_KEEP

ALL_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
QUANTS = ("nf4", "none")
BACKENDS = ("auto", "unsloth", "hf")
BATCHING = ("padded", "grouped", "padding_free", "packed")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
SAVE_DTYPES = ("bf16", "fp16", "fp32")
METHODS = ("sft", "dpo")
# TRL's DPO loss types offered here (DPOConfig.loss_type): sigmoid is the DPO paper's; ipo and robust are
# regularised variants; apo_zero pushes the chosen side up and the rejected side down in absolute terms.
DPO_LOSSES = ("sigmoid", "ipo", "hinge", "robust", "apo_zero", "sigmoid_norm")
# What a DPO pair's <think> line becomes: keep it, empty it (for an SFT stage trained with `reasoning: none`), or
# auto: empty when the SFT adapter's training card says `reasoning: none`, else keep.
PAIR_REASONING = ("auto", "keep", "none")
LIST_KEYS = ("target_modules", "pair_kinds")


@dataclass
class TrainConfig:
    """Every knob of a training run. Build one with `make_config(profile, config_file, **overrides)`."""

    profile: str = "cpu"
    method: str = (
        "sft"  # sft (supervised, friction_train.jsonl) | dpo (preference pairs, after an SFT adapter)
    )
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
    # preference tuning (method: dpo; train_dpo.py): the SFT adapter goes on training, its frozen copy is the reference
    sft_adapter: str | None = None  # the SFT adapter folder DPO starts from (--adapter)
    beta: float = 0.1  # how far from the SFT model the preferences may pull (higher: closer)
    dpo_loss: str = "sigmoid"
    # > 0: add the chosen side's negative log-likelihood to the DPO loss with this weight (RPO, TRL's "sft" loss
    # type): it keeps the chosen answers likely, so the preferences cannot unlearn the format (e.g. `</think>`)
    sft_weight: float = 0.0
    max_pairs: int = (
        0  # > 0: a seeded sample of this many pairs (after pair_kinds), for a run that fits the time
    )
    pair_kinds: list[str] = field(default_factory=lambda: list(PAIR_KINDS))
    pair_reasoning: str = "auto"  # auto | keep | none: the pairs' <think> line, see PAIR_REASONING
    precompute_ref: bool = True  # the reference log-probabilities once before training, not every step

    def validate(self) -> TrainConfig:
        problems = [*_choice_problems(self), *_range_problems(self), *_rule_problems(self)]
        if problems:
            raise FrictionError("Invalid training config: " + "; ".join(problems) + ".")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _choice_problems(config: TrainConfig) -> list[str]:
    """Knobs that take one of a few words: the profile, quant, backend, batching, precision, ..."""
    from friction_lib.models import PROFILES

    problems = []
    if config.profile not in PROFILES:
        problems.append(
            f"profile {config.profile!r} is not one of {', '.join(PROFILES)}{did_you_mean(config.profile, PROFILES)}"
        )
    for name, allowed in (
        ("quant", QUANTS),
        ("backend", BACKENDS),
        ("batching", BATCHING),
        ("precision", PRECISIONS),
        ("save_dtype", SAVE_DTYPES),
        ("reasoning", REASONING_KEEP),
        ("method", METHODS),
        ("dpo_loss", DPO_LOSSES),
        ("pair_reasoning", PAIR_REASONING),
    ):
        value = getattr(config, name)
        if value not in allowed:
            problems.append(
                f"{name} {value!r} is not one of {', '.join(allowed)}{did_you_mean(str(value), allowed)}"
            )
    return problems


POSITIVE = (
    "lora_r",
    "lora_alpha",
    "learning_rate",
    "batch_size",
    "grad_accum",
    "max_length",
    "logging_steps",
    "beta",
)
NON_NEGATIVE = (
    "eval_steps",
    "limit_records",
    "early_stopping_patience",
    "sft_weight",
    "compare_max_new_tokens",
    "checkpoint_limit",
    "decision_rows",
    "max_pairs",
)


def _range_problems(config: TrainConfig) -> list[str]:
    """Numbers out of their range."""
    problems = [f"{n} must be > 0 (got {getattr(config, n)})" for n in POSITIVE if not getattr(config, n) > 0]
    problems += [
        f"{n} must be >= 0 (got {getattr(config, n)})" for n in NON_NEGATIVE if getattr(config, n) < 0
    ]
    if not 0 <= config.lora_dropout < 1:
        problems.append(f"lora_dropout must be in [0, 1) (got {config.lora_dropout})")
    if not 0 < config.eval_fraction < 0.5:
        problems.append(f"eval_fraction must be between 0 and 0.5 (got {config.eval_fraction})")
    if not 0 <= config.warmup_ratio < 1:
        problems.append(f"warmup_ratio must be in [0, 1) (got {config.warmup_ratio})")
    return problems


def _rule_problems(config: TrainConfig) -> list[str]:
    """Knobs that only make sense together."""
    problems = []
    if config.max_steps <= 0 and not config.epochs > 0:
        problems.append("set epochs > 0 or max_steps > 0")
    if config.decision_rows > 0 and config.reasoning == "none":
        problems.append(
            "decision_rows needs a <think> line to train: set reasoning to decision, first or all"
        )
    if config.early_stopping_patience > 0 and not config.load_best:
        problems.append("early stopping needs load_best: true (or set early_stopping_patience: 0)")
    if not config.target_modules:
        problems.append("target_modules must name at least one module, e.g. q_proj")
    return problems + _dpo_problems(config)


def _dpo_problems(config: TrainConfig) -> list[str]:
    """The preference stage's knobs: which pairs, and the batching its trainer supports."""
    problems = [
        f"pair_kinds: unknown kind {kind!r} (one of {', '.join(PAIR_KINDS)}){did_you_mean(kind, PAIR_KINDS)}"
        for kind in config.pair_kinds
        if kind not in PAIR_KINDS
    ]
    if not config.pair_kinds:
        problems.append(f"pair_kinds must name at least one of {', '.join(PAIR_KINDS)}")
    if config.method == "dpo" and config.batching != "padded":
        problems.append("method dpo trains with padded random batches: set batching: padded")
    if config.method == "dpo" and config.decision_rows:
        problems.append("decision_rows is for method sft; a DPO pair already holds the whole answer")
    if config.method == "dpo" and config.early_stopping_patience:
        problems.append(
            "method dpo does not stop early: its eval loss is the preference loss on held-out pairs, which says "
            "little about J; set early_stopping_patience: 0 and choose a checkpoint with `friction train select`"
        )
    return problems


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

# Method defaults, applied after the profile's: DPO moves an SFT adapter a little, so a low rate; its eval loss is the
# preference loss on held-out pairs, not a reason to stop or to reload a checkpoint (choose by J: `train select`).
METHOD_DEFAULTS: dict[str, dict[str, Any]] = {
    "dpo": {
        "learning_rate": 5e-5,
        "batching": "padded",
        "early_stopping_patience": 0,
        "load_best": False,
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


def did_you_mean(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


def _coerce(name: str, value: Any) -> Any:
    """Check and convert one override to the field's type (YAML gives ints for floats and so on)."""
    default = _FIELDS[name].default
    if name in ("model", "sft_adapter"):
        return None if value in (None, "") else str(value)
    if name in LIST_KEYS:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise FrictionError(f"Config key {name} must be a list of names, got {value!r}.")
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
            hint = did_you_mean(key, _FIELDS)
            raise FrictionError(
                f"Unknown {where} key {key!r}{hint}. Valid keys: {', '.join(sorted(_FIELDS))}."
            )


def load_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A YAML (or JSON) file of overrides: `key: value` lines, keys as in TrainConfig."""
    p = Path(path)
    if not p.is_file():
        presets = ", ".join(PRESETS)
        raise FrictionError(
            f"Config {str(path)!r} is neither a file nor a preset ({presets}).{did_you_mean(str(path), PRESETS)}"
        )
    data = read_yaml_mapping(p, empty_ok=True)
    check_keys(data, where=f"config key in {p}:")
    return data


def make_config(
    profile: str | None = None, config: str | os.PathLike[str] | None = None, **overrides: Any
) -> TrainConfig:
    """Profile defaults, the method's defaults, then a preset name or YAML file (`config`), then keyword overrides.

    The profile comes from the argument, else from the file's `profile:` key, else `cpu`; the method from the
    overrides, else the file's `method:` key, else `sft`.
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
            f"Unknown profile {chosen!r}{did_you_mean(chosen, PROFILES)}. Valid: {', '.join(PROFILES)}."
        )
    method = next((layer["method"] for layer in reversed(layers) if layer.get("method")), "sft")
    values: dict[str, Any] = {
        "profile": chosen,
        **PROFILE_DEFAULTS.get(chosen, {}),
        **METHOD_DEFAULTS.get(str(method), {}),
    }
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
