"""QLoRA fine-tuning on a CPU laptop and on a CUDA box, from one function: `train()` and `friction train`.

Paths, chosen at run time and printed with the reason:
- CUDA and Unsloth importable: Unsloth's `FastLanguageModel` in 4-bit, then its LoRA (the talk setup).
- Otherwise: transformers + bitsandbytes NF4 4-bit + PEFT LoRA + TRL's `SFTTrainer`. bitsandbytes'
  CPU backend runs NF4, so this is real QLoRA on a laptop too.
- `quant="none"` (`--no-quant`): LoRA on full-precision weights, as a fallback and for comparison.

The data path is the same for all three (`train_data`): split the records first (90/10, seeded, identical
prompts kept on one side), render each conversation with the model's own chat template, tokenize prompt and
completion separately, and mask the prompt: labels are -100 everywhere except the assistant's tokens. The
trainer receives these ready-made `input_ids`/`labels`, so what `show_label_mask` prints is exactly what the
loss sees. Packing, if enabled, happens inside each split, after the split.

Outputs in `out_dir`: the PEFT adapter, `training_card.json`, `loss.png` (`train_card`), and on request a
merged 16-bit model in `out_dir/merged`. Checkpoints live in `out_dir/checkpoints` while training; an
interrupted run resumes from the last complete one when started again with the same settings (`train_runs`),
and they are removed at the end. The knobs are in `train_config`, the before/after answers in `train_compare`,
memory and progress in `train_monitor`.

Unsloth is imported lazily and only on the CUDA path; it is not installed in the CPU development
environment, so that path is written against Unsloth's documented API but untested here.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from friction_lib import adapters, train_card, train_runs
from friction_lib.adapters import CARD_NAME, LOSS_PNG
from friction_lib.errors import FrictionError
from friction_lib.files import output_lock, size_text, staged_folder, write_json
from friction_lib.train_card import RunLog
from friction_lib.train_compare import compare_answers, short
from friction_lib.train_config import (
    METHODS,
    PRESETS,
    TrainConfig,
    describe_config,
    did_you_mean,
    make_config,
)
from friction_lib.train_data import (
    DataPaths,
    data_files,
    encode_records,
    load_records,
    sha256_file,
    split_records,
)
from friction_lib.train_monitor import PeakMemory, memory_now, progress_callback_class
from friction_lib.train_runs import CHECKPOINTS

EIGHT_BIT_OPTIMS = ("adamw_8bit", "adamw_bnb_8bit", "paged_adamw_8bit")
MERGED = "merged"


# --------------------------------------------------------------------------- path


@dataclass(frozen=True)
class TrainPath:
    backend: str  # "unsloth" or "hf"
    quant: str  # "nf4" or "none"
    device: str  # "cuda" or "cpu"
    reason: str

    def describe(self, method: str = "sft") -> str:
        weights = "4-bit NF4 (QLoRA)" if self.quant == "nf4" else "full-precision weights (LoRA, --no-quant)"
        trainer = "DPOTrainer" if method == "dpo" else "SFTTrainer"
        engine = (
            f"Unsloth FastLanguageModel + TRL {trainer}"
            if self.backend == "unsloth"
            else f"transformers + PEFT + TRL {trainer}"
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


def gpu_has_native_bf16() -> bool:
    """bf16 in hardware (Ampere and later). torch's default check also counts emulation, which a T4 passes
    although bf16 runs slowly there and Unsloth-less training on it wants fp16."""
    import torch

    try:
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # an older torch without the keyword: its one check, as before
        return bool(torch.cuda.is_bf16_supported())


def precision_flags(config: TrainConfig, path: TrainPath) -> dict[str, bool]:
    """bf16 where the GPU has it natively, fp16 on older GPUs (a T4), fp32 on CPU."""
    mode = config.precision
    if mode == "auto":
        if path.device == "cuda":
            mode = "bf16" if gpu_has_native_bf16() else "fp16"
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


def schedule(config: TrainConfig, n_train: int) -> tuple[int, int]:
    """(optimizer steps in all, evaluate and checkpoint every N steps)."""
    per_epoch = steps_per_epoch(n_train, config)
    total = config.max_steps if config.max_steps > 0 else math.ceil(per_epoch * config.epochs)
    every = config.eval_steps or per_epoch
    return total, max(1, min(every, total))


def checkpointing_keyword() -> str:
    """The installed SFTConfig's name for gradient checkpointing.

    transformers 5.23 (the CPU pins) calls it `activation_checkpointing` and keeps `gradient_checkpointing` as a
    deprecated alias; 5.17 (the GPU pins, under Unsloth) has only `gradient_checkpointing`. So ask the dataclass.
    """
    from trl import SFTConfig

    names = {f.name for f in dataclasses.fields(SFTConfig)}
    return "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"


def sft_config_kwargs(
    config: TrainConfig, path: TrainPath, checkpoint_dir: str | os.PathLike[str], n_train: int
) -> dict[str, Any]:
    """The keyword arguments for TRL's `SFTConfig` (a test constructs SFTConfig with exactly these).

    The datasets arrive tokenized with `labels` already masked, so TRL's own masking
    (`completion_only_loss`, `assistant_only_loss`) has nothing to do; `max_length` truncation is done
    by `encode_example` (TRL would truncate the same way). Evaluation and checkpoints share one
    schedule, which early stopping and `load_best_model_at_end` need. Unsloth checkpoints by itself.
    """
    every = schedule(config, n_train)[1]
    return {
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
        checkpointing_keyword(): config.gradient_checkpointing and path.backend == "hf",
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
        **_sft_data_kwargs(config),
        **precision_flags(config, path),
    }


def _sft_data_kwargs(config: TrainConfig) -> dict[str, Any]:
    """SFT-specific keywords (the names TRL 1.15 and 1.16 share): how batches are formed."""
    packing = config.batching == "packed"
    padding_free = config.batching == "padding_free"
    return {
        "max_length": None if padding_free else config.max_length,
        "packing": packing,
        "padding_free": padding_free,
        "eval_packing": packing,
        "dataset_num_proc": None,
        "train_sampling_strategy": "group_by_length" if config.batching == "grouped" else "random",
    }


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
        hints = "".join(did_you_mean(m, linear) for m in missing)
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


def lora_parameter_count(model: Any, config: TrainConfig) -> int:
    """Parameters LoRA adds, r x (in + out) per targeted linear layer; the same before and after it is attached
    (a PEFT-wrapped layer keeps the name and the in/out sizes, its parts are named lora_A, base_layer, ...)."""
    total = 0
    for name, module in model.named_modules():
        n_in, n_out = getattr(module, "in_features", None), getattr(module, "out_features", None)
        if (
            name.rsplit(".", 1)[-1] in config.target_modules
            and isinstance(n_in, int)
            and isinstance(n_out, int)
        ):
            total += config.lora_r * (n_in + n_out)
    return total


# --------------------------------------------------------------------------- the run


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


@dataclass
class TrainData:
    """The records of a run, split, and (once the tokenizer is loaded) encoded."""

    files: list[Path]
    sha256: str
    records: list[Any]
    train_records: list[Any]
    eval_records: list[Any]
    train_rows: list[dict[str, Any]] = field(default_factory=list)
    eval_rows: list[dict[str, Any]] = field(default_factory=list)
    truncated: int = 0

    @property
    def name(self) -> str:
        return " + ".join(str(f) for f in self.files)


def train(
    config: TrainConfig,
    data_path: DataPaths,
    out_dir: str | os.PathLike[str],
    overwrite: bool = False,
    callbacks: list[Any] | None = None,
) -> TrainResult:
    """Fine-tune with LoRA/QLoRA and write the adapter, `training_card.json` and `loss.png` to `out_dir`.

    Every check that can fail (config, hardware, dataset, split, output folder, target modules, disk space)
    runs before the first training step; the output folder has one writer (`files.output_lock`) from its
    check to the end of the run. `callbacks` are extra `TrainerCallback`s.
    """
    if config.method != "sft":
        raise FrictionError(f"train() runs SFT; method {config.method!r} runs through train_dpo.train_dpo().")
    log = RunLog()
    path = _check_setup(config)
    data = _read_data(config, data_path)
    out = Path(out_dir)
    fingerprint = train_runs.run_fingerprint(config, data.sha256)
    train_runs.check_out_dir(out, overwrite, fingerprint)  # a refused --out gets no lock file beside it
    with output_lock(out, train_runs.COMMAND):
        log.resumed_from = train_runs.prepare_out_dir(out, overwrite, fingerprint)
        model, tokenizer, peft_config = _load(config, path, log)
        _encode(config, data, tokenizer)
        n_params = _check_disk(config, out, model, len(data.train_rows))
        train_runs.start_run(out, fingerprint)
        with train_runs.full_disk_stops_the_run(out):
            _before_training(config, path, model, tokenizer, log)
            trainer, progress, trainer_kwargs = _build_trainer(
                config, path, out, model, tokenizer, peft_config, data, callbacks
            )
            model = _fit(trainer, log)
            adapters.save_adapter(model, out, config.save_dtype)
            log.after = _answers(config, path, model, tokenizer, out, log, "after")
            card = train_card.make_card(config, path, trainer_kwargs, data, trainer, progress, log, n_params)
            return _finish(config, path, out, card, model, tokenizer, n_params, fingerprint)


def _check_setup(config: TrainConfig) -> TrainPath:
    """The config, the hardware the profile needs, and the path that will run (printed with its reason)."""
    from friction_lib.models import check_profile_hardware, get_profile

    config.validate()
    if not (config.model and Path(config.model).expanduser().is_dir()):  # a local model brings its own size
        check_profile_hardware(get_profile(config.profile))
    path = choose_path(config)
    print(f"Training path: {path.describe(config.method)}")
    return path


def _read_data(config: TrainConfig, data_path: DataPaths) -> TrainData:
    """Read and split the records (every bad line is an error naming file and line)."""
    files = data_files(data_path)
    records = load_records(files, limit=config.limit_records)
    train_records, eval_records = split_records(records, config.eval_fraction, config.seed)
    data = TrainData(files, sha256_file(files), records, train_records, eval_records)
    print(
        f"Data: {data.name} ({len(records)} records, sha256 {data.sha256[:12]}...) -> "
        f"{len(train_records)} train / {len(eval_records)} validation (split seed {config.seed})"
    )
    return data


def _load(config: TrainConfig, path: TrainPath, log: RunLog) -> tuple[Any, Any, Any]:
    log.memory_mib["before_load"] = memory_now()
    started = time.perf_counter()
    loaded = load_for_training(config, path)  # Unsloth (if chosen) is imported here first
    log.seconds["load"] = time.perf_counter() - started
    return loaded


def _encode(config: TrainConfig, data: TrainData, tokenizer: Any) -> None:
    """Tokenize both splits with the prompt masked; extra decision rows go to the training split only."""
    data.train_rows, cut_train = encode_records(
        tokenizer, data.train_records, config.max_length, config.reasoning, config.decision_rows
    )
    data.eval_rows, cut_eval = encode_records(
        tokenizer, data.eval_records, config.max_length, config.reasoning
    )
    data.truncated = cut_train + cut_eval
    if data.truncated:
        print(f"note: {data.truncated} record(s) longer than max_length={config.max_length} were cut.")


def _check_disk(config: TrainConfig, out: Path, model: Any, n_rows: int) -> int:
    """Raise before training when the checkpoints, the adapter (and the merged model) will not fit; returns
    the base model's parameter count."""
    n_params = dense_parameter_count(model)
    saves = train_runs.saves_in(*schedule(config, n_rows))
    parts = train_runs.training_disk_need(config, lora_parameter_count(model, config), saves, n_params)
    need = train_runs.check_disk_for_training(out, parts)
    print(f"Disk: about {size_text(need)} will be written ({', '.join(parts)}); enough is free.")
    return n_params


def _answers(
    config: TrainConfig,
    path: TrainPath,
    model: Any,
    tokenizer: Any,
    adapter: Path | None,
    log: RunLog,
    when: str,
) -> list[dict[str, Any]]:
    """Greedy answers to the comparison prompts, timed (`generate_before` / `generate_after`)."""
    log.seconds[f"generate_{when}"] = 0.0
    if not config.compare_prompts or config.compare_max_new_tokens <= 0:
        return []
    started = time.perf_counter()
    rows = compare_answers(config, path, model, tokenizer, adapter_dir=adapter)
    log.seconds[f"generate_{when}"] = time.perf_counter() - started
    return rows


def _before_training(config: TrainConfig, path: TrainPath, model: Any, tokenizer: Any, log: RunLog) -> None:
    """The base model's answers to the comparison prompts, and the memory figure before training."""
    log.before = _answers(config, path, model, tokenizer, None, log, "before")
    for row in log.before:
        print(f"before | {row['prompt']}\n       | {short(row['raw'])}")
    log.memory_mib["before_train"] = memory_now()
    print(f"Before training: {log.memory_mib['before_train']} after loading in {log.seconds['load']:.1f} s")


def _build_trainer(
    config: TrainConfig,
    path: TrainPath,
    out: Path,
    model: Any,
    tokenizer: Any,
    peft_config: Any,
    data: TrainData,
    callbacks: list[Any] | None,
) -> tuple[Any, Any, dict[str, Any]]:
    """(SFTTrainer, our progress callback, the SFTConfig keywords): progress bar, early stopping, extras."""
    from datasets import Dataset
    from transformers import EarlyStoppingCallback, PrinterCallback
    from trl import SFTConfig, SFTTrainer

    kwargs = sft_config_kwargs(config, path, out / CHECKPOINTS, len(data.train_rows))
    progress = progress_callback_class()()
    extra: list[Any] = [progress, *(callbacks or [])]
    if config.early_stopping_patience > 0:
        extra.append(
            EarlyStoppingCallback(
                early_stopping_patience=config.early_stopping_patience,
                early_stopping_threshold=config.early_stopping_threshold,
            )
        )
    trainer = SFTTrainer(
        model=model,
        args=SFTConfig(**kwargs),
        train_dataset=Dataset.from_list(data.train_rows),
        eval_dataset=Dataset.from_list(data.eval_rows),
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=extra,
    )
    trainer.remove_callback(PrinterCallback)
    return trainer, progress, kwargs


def _fit(trainer: Any, log: RunLog) -> Any:
    """Train (resuming if there is a checkpoint), timed and with peak memory; returns the model in eval mode."""
    if log.resumed_from is not None:
        print(f"Resuming the interrupted run from {log.resumed_from}")
    started, cpu_started = time.perf_counter(), time.process_time()
    with PeakMemory() as peak:
        trainer.train(resume_from_checkpoint=str(log.resumed_from) if log.resumed_from else None)
    log.seconds["train"] = time.perf_counter() - started
    log.seconds["train_cpu"] = time.process_time() - cpu_started
    log.peak_rss = peak.peak_rss
    model = trainer.model
    assert model is not None
    model.eval()
    log.memory_mib["after_train"] = memory_now()
    return model


def _finish(
    config: TrainConfig,
    path: TrainPath,
    out: Path,
    card: dict[str, Any],
    model: Any,
    tokenizer: Any,
    n_params: int,
    fingerprint: dict[str, Any],
) -> TrainResult:
    """The merged model (on request), the card, the loss curve; checkpoints go; the run is marked finished."""
    merged_dir = None
    if config.merge:
        train_runs.check_disk_for_merge(out, n_params)
        merged_dir = merge_adapter(config, path, out, tokenizer, model)
        card["merged_dir"] = str(merged_dir)
    card_path = write_json(out / CARD_NAME, card)
    loss_png = train_card.plot_losses(card, out / LOSS_PNG)
    if not config.keep_checkpoints:
        shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)
    train_runs.finish_run(out, fingerprint)
    train_card.print_summary(card, out)
    return TrainResult(out, out, card_path, loss_png, merged_dir, card, model, tokenizer)


def merge_adapter(config: TrainConfig, path: TrainPath, out: Path, tokenizer: Any, model: Any) -> Path:
    """Write base + adapter merged into 16-bit weights to `out/merged`, staged (`files.staged_folder`).

    Unsloth merges its own 4-bit model; every other path uses the one merge in `adapters`.
    """
    target = out / MERGED
    with staged_folder(target, "train --merge", overwrite=True) as tmp:
        if path.backend == "unsloth":
            model.save_pretrained_merged(str(tmp), tokenizer, save_method="merged_16bit")
        else:
            dtype = "float16" if precision_flags(config, path)["fp16"] else "bfloat16"
            print(f"Merging the adapter into {config.model or config.profile} in {dtype} ...")
            adapters.merge_adapter(out, config.model or config.profile, tmp, dtype=dtype)
    return target


# --------------------------------------------------------------------------- command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="friction train",
        description="LoRA/QLoRA fine-tuning: SFT on the friction dataset, or DPO on preference pairs after SFT "
        "(CPU: transformers+bitsandbytes NF4; CUDA: Unsloth when installed). Writes the adapter, "
        "training_card.json and loss.png.",
    )
    parser.add_argument(
        "--profile", default=None, help="cpu | colab | talk (default: from --config, else cpu)"
    )
    parser.add_argument(
        "--method",
        choices=METHODS,
        default=None,
        help="sft: supervised on --data (default); dpo: preference pairs (--pairs) on top of an SFT --adapter",
    )
    parser.add_argument("--adapter", default=None, help="method dpo: the SFT adapter folder to start from")
    parser.add_argument(
        "--pairs", default=None, help="method dpo: preference pairs JSONL (default: data/pairs.jsonl)"
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
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing output folder that friction made"
    )
    parser.add_argument("--max-steps", type=int, default=None, help="stop after N optimizer steps")
    parser.add_argument("--epochs", type=float, default=None, help="number of epochs (overrides the profile)")
    parser.add_argument("--show-config", action="store_true", help="print the resolved config and exit")
    return parser


def cli_train(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.smoke and args.config not in (None, "smoke"):
        raise FrictionError(
            "--smoke and --config FILE cannot be combined; put the smoke settings in the file."
        )
    overrides: dict[str, Any] = {"max_steps": args.max_steps, "epochs": args.epochs}
    overrides |= {"method": args.method, "sft_adapter": args.adapter}
    if args.no_quant:
        overrides["quant"] = "none"
    if args.merge:
        overrides["merge"] = True
    config = make_config(args.profile, "smoke" if args.smoke else args.config, **overrides)
    if args.show_config:
        print(describe_config(config))
        return 0
    from friction_lib.models import repo_root

    root = repo_root() or Path.cwd()
    if config.method == "dpo":
        if args.data:
            raise FrictionError("--data is for --method sft; a DPO run reads preference pairs: --pairs FILE.")
        from friction_lib.train_dpo import DEFAULT_PAIRS, train_dpo

        result = train_dpo(config, args.pairs or root / DEFAULT_PAIRS, args.out, overwrite=args.overwrite)
    elif args.pairs or args.adapter:
        raise FrictionError("--pairs and --adapter are for --method dpo (preference tuning after SFT).")
    else:
        data = args.data or [str(root / "data" / "friction_train.jsonl")]
        result = train(config, data, args.out, overwrite=args.overwrite)
    print(result.card_path)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(cli_train(sys.argv[1:]))
