"""Preference tuning after SFT: `friction train --method dpo --adapter SFT_DIR [--pairs data/pairs.jsonl]`.

SFT teaches the shape of a push-back answer; DPO (TRL's `DPOTrainer`) teaches when to give which. Each pair of
`friction data pairs` (`pairs.py`) prefers the right answer to a prompt (the right kind of push-back, or plain help)
over a wrong one (compliance, a refusal where a question or a correction was due, a refusal of a plain request).

The reference model is the SFT model, and the adapter trained is the SFT adapter itself: it is loaded trainable on
its base, TRL keeps a frozen copy of it (adapter "ref"), the reference log-probabilities of every pair are computed
with that copy once before training (`precompute_ref`), and the copy is then dropped. The result is one LoRA adapter
of the SFT adapter's shape on the same base, so it loads like any adapter (`friction eval --adapter DIR`, `friction
export`, the demo) and `friction train select` chooses among its checkpoints. docs/training.md says why this and
not a second LoRA on the merged SFT model.

The pairs are checked before any model is loaded: every bad line (chosen equal to rejected, an empty side, ...) and
every prompt that is an eval or demo prompt is an error naming `file:line`. Each pair is rendered with the model's
own chat template as SFT renders a record (`chat.render_for_training`) and handed to TRL as text, so TRL tokenizes
the ids the engines see at inference, `<think>` line included (templates that strip it keep it here).

On a CUDA GPU with Unsloth installed the same run goes through Unsloth (`FastLanguageModel`, `PatchDPOTrainer`),
written against the pinned wheel's API (`tests/test_unsloth_api.py`) and untested in the CPU environment.
"""

from __future__ import annotations

import dataclasses
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from friction_lib import adapters, pairs, train_card, train_runs
from friction_lib.chat import SYSTEM_PROMPT, format_target, render_for_training, render_prompt
from friction_lib.errors import FrictionError
from friction_lib.files import output_lock
from friction_lib.train import (
    TrainPath,
    TrainResult,
    _answers,
    _check_disk,
    _check_setup,
    _finish,
    _fit,
    _sft_data_kwargs,
    load_for_training,
    sft_config_kwargs,
)
from friction_lib.train_card import RunLog, base_model_name
from friction_lib.train_compare import short
from friction_lib.train_config import ALL_PROJECTIONS, TrainConfig
from friction_lib.train_data import MIN_RECORDS, sha256_file, split_records
from friction_lib.train_monitor import memory_now, progress_callback_class
from friction_lib.train_runs import CHECKPOINTS

DEFAULT_PAIRS = "data/pairs.jsonl"
REFERENCE_COPY = "ref"  # the name TRL gives the frozen copy of a trainable adapter


def sft_hint(config: TrainConfig) -> str:
    return (
        f"`friction train --method sft --profile {config.profile} --out DIR` (then `friction train select`), "
        "or `make adapter`, which runs both stages"
    )


# --------------------------------------------------------------------------- the SFT adapter DPO starts from


def check_sft_adapter(config: TrainConfig) -> Path:
    """The SFT adapter folder: present, readable, and trained on this run's base model."""
    if not config.sft_adapter:
        raise FrictionError(
            "--method dpo starts from an SFT adapter: pass --adapter DIR (or sft_adapter: in the --config file). "
            f"Make one with {sft_hint(config)}."
        )
    folder = Path(config.sft_adapter)
    if not adapters.is_adapter(folder):
        raise FrictionError(
            f"No SFT adapter at {folder} ({' and '.join(adapters.ADAPTER_FILES)} are needed). "
            f"Make one with {sft_hint(config)}."
        )
    adapters.check_adapter_weights(folder)
    card = adapters.read_training_card(folder)
    trained_on = card.get("base_model") or adapters.detect_profile(folder)
    wanted = base_model_name(config) if card.get("base_model") else config.profile
    if trained_on != wanted:
        raise FrictionError(
            f"The SFT adapter at {folder} was trained on {trained_on!r}, not on this run's base model "
            f"{base_model_name(config)!r} (profile {config.profile}). Make an SFT adapter for it with "
            f"{sft_hint(config)}."
        )
    return folder


def with_sft_adapter(config: TrainConfig, folder: Path) -> TrainConfig:
    """The config as the run really trains: the SFT adapter's LoRA shape, and `pair_reasoning: auto` resolved from
    its card (`none` when SFT trained an empty <think> block, else `keep`)."""
    lora = adapters.read_adapter_config(folder)
    targets = lora.get("target_modules") or config.target_modules
    targets = [t for t in ALL_PROJECTIONS if t in targets] + sorted(set(targets) - set(ALL_PROJECTIONS))
    reasoning = config.pair_reasoning
    if reasoning == "auto":
        sft_reasoning = (adapters.read_training_card(folder).get("config") or {}).get("reasoning")
        reasoning = "none" if sft_reasoning == "none" else "keep"
    return dataclasses.replace(
        config,
        lora_r=int(lora.get("r", config.lora_r)),
        lora_alpha=int(lora.get("lora_alpha", config.lora_alpha)),
        lora_dropout=float(lora.get("lora_dropout") or 0.0),
        target_modules=targets,
        pair_reasoning=reasoning,
    ).validate()


# --------------------------------------------------------------------------- the pairs


def read_pairs(path: str | Path) -> list[dict[str, Any]]:
    """Every pair of the file, checked: a bad line or a prompt of an eval or demo file is an error with file:line."""
    items, problems = pairs.load_pairs(path)
    if problems:
        more = [f"... and {len(problems) - 20} more"] if len(problems) > 20 else []
        raise FrictionError(
            "\n".join(
                [f"{len(problems)} bad pair line(s) in {path}:", *problems[:20], *more, "Fix these lines."]
            )
        )
    if not items:
        raise FrictionError(f"{path}: no pairs. Build them with `friction data pairs`.")
    evals, _ = pairs.eval_index()
    found = [
        f"{item['_where']}: {reason}"
        for item in items
        if (reason := pairs.contamination(item["prompt"], evals))
    ]
    if found:
        raise FrictionError(
            "\n".join(
                [f"{len(found)} pair(s) in {path} train on an eval or demo prompt:", *found[:20]]
                + ["Remove these lines: a model trained on them would be scored on what it was taught."]
            )
        )
    return items


def choose_pairs(items: list[dict[str, Any]], config: TrainConfig) -> list[dict[str, Any]]:
    """The pairs of `pair_kinds`, and of those a seeded sample of `max_pairs` (file order kept)."""
    kept = [item for item in items if item["kind"] in config.pair_kinds]
    if config.max_pairs and len(kept) > config.max_pairs:
        picked = set(random.Random(config.seed).sample(range(len(kept)), config.max_pairs))
        kept = [item for i, item in enumerate(kept) if i in picked]
    if len(kept) < MIN_RECORDS:
        raise FrictionError(
            f"{len(kept)} pair(s) of kind {', '.join(config.pair_kinds)} (max_pairs {config.max_pairs}); a "
            f"train/validation split needs at least {MIN_RECORDS}. Add pairs, or widen pair_kinds."
        )
    return kept


@dataclass(frozen=True)
class _Prompted:
    """A pair as `train_data.split_records` sees a record: by its prompt (`user_input`)."""

    user_input: str
    item: dict[str, Any]


def split_pairs(items: list[dict[str, Any]], config: TrainConfig) -> tuple[list[dict], list[dict]]:
    """The project's one split rule: seeded, and pairs with the same prompt on the same side."""
    train, held = split_records([_Prompted(i["prompt"], i) for i in items], config.eval_fraction, config.seed)
    return [p.item for p in train], [p.item for p in held]


def without_think(item: dict[str, Any]) -> dict[str, Any]:
    """The pair with an empty <think> block on both sides: what an SFT stage with `reasoning: none` writes.
    (`read_pairs` has checked that each side is one <think> line, then the answer.)"""
    sides = {}
    for side in ("chosen", "rejected"):
        turn = pairs.TURN.match(item[side])
        assert turn is not None, item["id"]
        sides[side] = format_target("", turn["answer"])
    return {**item, **sides}


def render_pair(tokenizer: Any, item: dict[str, Any], reasoning: str = "keep") -> dict[str, str]:
    """A pair as TRL's text preference row, rendered as SFT renders a record: the prompt with the model's chat
    template (a BOS the tokenizer adds by itself left out of the text), each side as the assistant turn's text
    (`chat.render_for_training`, which keeps the <think> line), ending on the end-of-sequence token."""
    row = pairs.to_dpo_row(item if reasoning == "keep" else without_think(item), SYSTEM_PROMPT)
    prompt = render_prompt(tokenizer, row["prompt"])
    bos = tokenizer.bos_token
    if bos and prompt.startswith(bos) and tokenizer("x")["input_ids"][:1] == [tokenizer.bos_token_id]:
        prompt = prompt[len(bos) :]
    return {
        "prompt": prompt,
        **{side: _turn_text(tokenizer, row["prompt"], row[side]) for side in ("chosen", "rejected")},
    }


def _turn_text(tokenizer: Any, prompt: list[dict[str, str]], side: list[dict[str, str]]) -> str:
    """The assistant turn's text; a turn that ends on the EOS token loses the newline after it, so TRL does not
    add a second EOS (it appends one to text that does not end with it)."""
    text = render_for_training(tokenizer, [*prompt, *side])["completion"]
    end = text.rstrip()
    return end if tokenizer.eos_token and end.endswith(tokenizer.eos_token) else text


@dataclass
class PairData:
    """The pairs of a DPO run, chosen and split, and (once the tokenizer is loaded) rendered as text rows."""

    path: Path
    sft_adapter: Path
    sha256: str  # the pairs file's bytes, then the SFT adapter's weights: what a resumed run must match
    in_file: int
    train_pairs: list[dict[str, Any]]
    eval_pairs: list[dict[str, Any]]
    train_rows: list[dict[str, str]] = field(default_factory=list)
    eval_rows: list[dict[str, str]] = field(default_factory=list)

    def section(self, config: TrainConfig, trainer: Any) -> dict[str, Any]:
        """The training card's `dataset` block: which pairs, how many of each kind, their tokens, the SFT adapter."""
        counts: dict[str, int] = {}
        for item in self.train_pairs:
            counts[item["kind"]] = counts.get(item["kind"], 0) + 1
        sft_card = adapters.read_training_card(self.sft_adapter)
        return {
            "path": str(self.path),
            "files": [str(self.path), str(self.sft_adapter / adapters.WEIGHTS_NAME)],
            "sha256": self.sha256,
            "pairs_sha256": sha256_file(self.path),
            "pairs_in_file": self.in_file,
            "pairs": len(self.train_pairs) + len(self.eval_pairs),
            "train_pairs": len(self.train_pairs),
            "eval_pairs": len(self.eval_pairs),
            "train_pairs_by_kind": dict(sorted(counts.items())),
            "pair_reasoning": config.pair_reasoning,
            "train_tokens": _tokens(trainer.train_dataset),
            "eval_ids": [item["id"] for item in self.eval_pairs],
            "sft_adapter": {
                "path": str(self.sft_adapter),
                "weights_sha256": sha256_file(self.sft_adapter / adapters.WEIGHTS_NAME),
                "reasoning": (sft_card.get("config") or {}).get("reasoning"),
                "selected_step": (sft_card.get("selection") or {}).get("chosen_step"),
            },
        }


def _tokens(dataset: Any) -> int:
    """Tokens of both sequences of every pair (prompt + chosen, prompt + rejected), as TRL tokenized them."""
    return sum(
        2 * len(row["prompt_ids"]) + len(row["chosen_ids"]) + len(row["rejected_ids"]) for row in dataset
    )


def read_pair_data(config: TrainConfig, pairs_path: str | Path, sft: Path) -> PairData:
    items = read_pairs(pairs_path)
    train_pairs, eval_pairs = split_pairs(choose_pairs(items, config), config)
    sha = sha256_file([Path(pairs_path), sft / adapters.WEIGHTS_NAME])
    data = PairData(Path(pairs_path), sft, sha, len(items), train_pairs, eval_pairs)
    print(
        f"Pairs: {pairs_path} ({len(items)} pairs; {len(train_pairs)} train / {len(eval_pairs)} validation of "
        f"kinds {', '.join(config.pair_kinds)}, <think> line: {config.pair_reasoning}); starting from {sft}"
    )
    return data


# --------------------------------------------------------------------------- model and trainer


def load_sft_for_training(config: TrainConfig, path: TrainPath, sft: Path) -> tuple[Any, Any]:
    """(the base with the SFT adapter attached and trainable, tokenizer)."""
    if path.backend == "unsloth":
        return _load_unsloth_sft(config, sft)
    from peft import PeftModel

    base, tokenizer, _ = load_for_training(config, path)  # the base alone: its fresh LoRA config goes unused
    try:
        model = PeftModel.from_pretrained(base, str(sft), is_trainable=True)
    except (RuntimeError, ValueError, KeyError) as exc:
        raise FrictionError(f"The SFT adapter at {sft} does not fit this base model: {exc}") from exc
    adapters._check_all_adapter_weights_loaded(model, sft)
    return model, tokenizer


def _load_unsloth_sft(config: TrainConfig, sft: Path) -> tuple[Any, Any]:
    # Untested in the CPU development environment (no GPU, Unsloth not installed); checked against the pinned
    # wheel's source by tests/test_unsloth_api.py. Unsloth is imported before TRL builds the trainer.
    from peft import PeftModel
    from unsloth import FastLanguageModel, PatchDPOTrainer  # type: ignore[import-not-found]

    from friction_lib.models import resolve_model_source

    PatchDPOTrainer()  # the pinned Unsloth patches TRL's trainers when imported; this keeps older ones working
    source, _ = resolve_model_source(config.model or config.profile)
    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=source,
        max_seq_length=config.max_length,
        dtype=None,
        load_in_4bit=config.quant == "nf4",
    )
    model = PeftModel.from_pretrained(model, str(sft), is_trainable=True)  # what Unsloth does for an adapter
    model = FastLanguageModel.patch_peft_model(
        model, use_gradient_checkpointing="unsloth" if config.gradient_checkpointing else False
    )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def dpo_config_kwargs(
    config: TrainConfig, path: TrainPath, checkpoint_dir: str | Path, n_train: int
) -> dict[str, Any]:
    """The keyword arguments for TRL's `DPOConfig`: SFT's schedule, optimiser, precision and checkpointing, without
    SFT's batching keywords, plus DPO's own. Every name must be a field of the installed DPOConfig."""
    import trl
    from trl import DPOConfig

    sft_only = set(_sft_data_kwargs(config))
    kwargs = {
        k: v for k, v in sft_config_kwargs(config, path, checkpoint_dir, n_train).items() if k not in sft_only
    }
    kwargs.update(
        {
            "max_length": config.max_length,
            "truncation_mode": "keep_start",
            "padding_free": False,
            "dataset_num_proc": None,
            "train_sampling_strategy": "random",
            "beta": config.beta,
            "loss_type": [config.dpo_loss, "sft"] if config.sft_weight > 0 else [config.dpo_loss],
            "loss_weights": [1.0, config.sft_weight] if config.sft_weight > 0 else None,
            "precompute_ref_log_probs": config.precompute_ref,
            "precompute_ref_batch_size": config.batch_size * config.grad_accum,
            "disable_dropout": True,
        }
    )
    unknown = sorted(set(kwargs) - {f.name for f in dataclasses.fields(DPOConfig)})
    if unknown:
        raise FrictionError(
            f"The installed TRL {trl.__version__} has no DPOConfig field(s) {', '.join(unknown)}. Install the "
            "pinned versions (requirements.txt, or requirements-gpu.txt on a GPU)."
        )
    return kwargs


def drop_reference_copy(model: Any) -> bool:
    """Remove TRL's frozen copy of the SFT adapter once it is no longer needed (reference log-probabilities
    precomputed, or training done), so that checkpoints and the saved adapter hold the trained adapter alone."""
    if REFERENCE_COPY not in getattr(model, "peft_config", {}):
        return False
    model.delete_adapter(REFERENCE_COPY)
    return True


def check_trl_kernels() -> None:
    """TRL 1.15's DPOTrainer computes log-probabilities only through `trl.kernels`, whose import needs Triton, which
    CUDA builds of torch ship (TRL 1.16, the CPU pin, imports the kernel it needs without it). Without it TRL fails
    deep in the first forward pass; say so before any work."""
    import trl
    from trl.trainer import utils

    if getattr(utils, "_ChunkedLogProbFunction", True) is None:
        raise FrictionError(
            f"TRL {trl.__version__}'s DPOTrainer needs Triton, which comes with CUDA builds of torch, and this "
            "environment has none. Run --method dpo on a CUDA GPU with requirements-gpu.txt, or on CPU with the CPU "
            "pins (requirements.txt, TRL 1.16)."
        )


def build_dpo_trainer(
    config: TrainConfig,
    path: TrainPath,
    out: Path,
    model: Any,
    tokenizer: Any,
    data: PairData,
    callbacks: list[Any] | None = None,
    log: RunLog | None = None,
) -> tuple[Any, Any, dict[str, Any]]:
    """(DPOTrainer, our progress callback, the DPOConfig keywords). With `precompute_ref` TRL computes the reference
    log-probabilities of every pair here, with the frozen copy of the SFT adapter (timed in `log.seconds`)."""
    from datasets import Dataset
    from transformers import PrinterCallback
    from trl import DPOConfig, DPOTrainer

    check_trl_kernels()

    kwargs = dpo_config_kwargs(config, path, out / CHECKPOINTS, len(data.train_rows))
    progress = progress_callback_class()()
    started = time.perf_counter()
    trainer = DPOTrainer(
        model=model,
        ref_model=None,  # the reference is the SFT adapter's frozen copy (TRL names it "ref")
        args=DPOConfig(**kwargs),
        train_dataset=Dataset.from_list(data.train_rows),
        eval_dataset=Dataset.from_list(data.eval_rows),
        processing_class=tokenizer,
        callbacks=[progress, *(callbacks or [])],
    )
    trainer.remove_callback(PrinterCallback)
    if config.precompute_ref:
        drop_reference_copy(trainer.model)
        seconds = time.perf_counter() - started
        if log is not None:
            log.seconds["reference"] = seconds
        print(
            f"Reference log-probabilities of {len(data.train_rows) + len(data.eval_rows)} pairs precomputed "
            f"with the SFT adapter in {seconds:.0f} s"
        )
    return trainer, progress, kwargs


# --------------------------------------------------------------------------- the run


def train_dpo(
    config: TrainConfig,
    pairs_path: str | Path,
    out_dir: str | Path,
    overwrite: bool = False,
    callbacks: list[Any] | None = None,
) -> TrainResult:
    """Preference-tune the SFT adapter `config.sft_adapter` on the pairs; write the adapter, `training_card.json`
    (with its `dpo` block) and `loss.png` (loss, reward margins and accuracies) to `out_dir`.

    Every check that can fail (config, hardware, SFT adapter, pairs, output folder, disk space) runs before the first
    step; the output folder has one writer, and an interrupted run resumes like an SFT run (`train_runs`).
    """
    log = RunLog()
    path = _check_setup(config)
    check_trl_kernels()
    sft = check_sft_adapter(config)
    config = with_sft_adapter(config, sft)
    data = read_pair_data(config, pairs_path, sft)
    out = Path(out_dir)
    fingerprint = train_runs.run_fingerprint(config, data.sha256)
    train_runs.check_out_dir(out, overwrite, fingerprint)
    with output_lock(out, train_runs.COMMAND):
        log.resumed_from = train_runs.prepare_out_dir(out, overwrite, fingerprint)
        model, tokenizer = _load(config, path, sft, log)
        data.train_rows = [render_pair(tokenizer, p, config.pair_reasoning) for p in data.train_pairs]
        data.eval_rows = [render_pair(tokenizer, p, config.pair_reasoning) for p in data.eval_pairs]
        n_params = _check_disk(config, out, model, len(data.train_rows))
        train_runs.start_run(out, fingerprint)
        _before_training(config, path, model, tokenizer, sft, log)
        trainer, progress, trainer_kwargs = build_dpo_trainer(
            config, path, out, model, tokenizer, data, callbacks, log
        )
        model = _fit(trainer, log)
        drop_reference_copy(model)
        adapters.save_adapter(model, out, config.save_dtype)
        log.after = _answers(config, path, model, tokenizer, out, log, "after")
        dataset = data.section(config, trainer)
        card = train_card.make_card(config, path, trainer_kwargs, dataset, trainer, progress, log, n_params)
        return _finish(config, path, out, card, model, tokenizer, n_params, fingerprint)


def _load(config: TrainConfig, path: TrainPath, sft: Path, log: RunLog) -> tuple[Any, Any]:
    log.memory_mib["before_load"] = memory_now()
    started = time.perf_counter()
    loaded = load_sft_for_training(config, path, sft)
    log.seconds["load"] = time.perf_counter() - started
    return loaded


def _before_training(
    config: TrainConfig, path: TrainPath, model: Any, tokenizer: Any, sft: Path, log: RunLog
) -> None:
    """The SFT model's answers to the comparison prompts (the "before" of this stage), and memory before training."""
    log.before = _answers(config, path, model, tokenizer, sft, log, "before")
    for row in log.before:
        print(f"SFT    | {row['prompt']}\n       | {short(row['raw'])}")
    log.memory_mib["before_train"] = memory_now()
    print(f"Before training: {log.memory_mib['before_train']} after loading in {log.seconds['load']:.1f} s")
