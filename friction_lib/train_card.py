"""What a finished training run writes down: `training_card.json`, `loss.png` and the closing summary.

The card holds the config, the trainer's arguments, the data (path, sha256, counts, validation ids), the steps,
the losses, the seconds, memory, tokens per second, library versions, the path taken and the before/after
answers; a DPO run adds its `dpo` block (beta, the loss, the reward margins and accuracies per logged step) and
draws them beside the loss in `loss.png`. `RunLog` collects on the way what only the run can measure.
"""

from __future__ import annotations

import io
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from friction_lib.adapters import CARD_NAME, LOSS_PNG
from friction_lib.files import write_atomic
from friction_lib.train_config import TrainConfig
from friction_lib.train_monitor import PeakMemory

if TYPE_CHECKING:
    from friction_lib.train import TrainData, TrainPath

TOKENS_NOTE = "non-padding input tokens per second of optimizer steps (evaluation and checkpoints excluded)"
# What TRL's DPOTrainer logs per step (and with "eval_" per evaluation): beta x (policy - reference) log-probability
# of each side, their difference (the margin), and the share of pairs whose margin is positive (the accuracy).
DPO_METRICS = ("rewards/margins", "rewards/accuracies", "rewards/chosen", "rewards/rejected")


@dataclass
class RunLog:
    """What a run measures on its way: seconds, memory, the before/after answers, where it resumed from."""

    started: float = field(default_factory=time.perf_counter)
    seconds: dict[str, float] = field(default_factory=dict)
    memory_mib: dict[str, dict[str, float]] = field(default_factory=dict)
    before: list[dict[str, Any]] = field(default_factory=list)
    after: list[dict[str, Any]] = field(default_factory=list)
    peak_rss: int = 0
    resumed_from: Path | None = None


def log_points(history: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """(step, epoch, loss) of every trainer log entry that has `key`."""
    points = []
    for entry in history:
        if key in entry and "step" in entry:
            points.append(
                {"step": int(entry["step"]), "epoch": entry.get("epoch"), "loss": float(entry[key])}
            )
    return points


def base_model_name(config: TrainConfig) -> str:
    from friction_lib.models import BASE_MODEL_IDS, PROFILES

    if config.model:
        return config.model
    return BASE_MODEL_IDS.get(config.profile, PROFILES[config.profile].model_id)


def trainable_parameters(model: Any) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _dataset_section(data: TrainData) -> dict[str, Any]:
    return {
        "path": data.name,
        "files": [str(f) for f in data.files],
        "sha256": data.sha256,
        "records": len(data.records),
        "train_records": len(data.train_records),
        "eval_records": len(data.eval_records),
        "train_tokens": sum(len(r["input_ids"]) for r in data.train_rows),
        "eval_tokens": sum(len(r["input_ids"]) for r in data.eval_rows),
        "loss_tokens_train": sum(sum(1 for x in r["labels"] if x != -100) for r in data.train_rows),
        "truncated": data.truncated,
        "eval_ids": [r.id for r in data.eval_records],
    }


def _seconds_section(log: RunLog, progress: Any) -> dict[str, Any]:
    extra = {"reference_logps": round(log.seconds["reference"], 1)} if "reference" in log.seconds else {}
    return {
        **extra,  # a DPO run: the reference log-probabilities of every pair, computed before training
        "load": round(log.seconds["load"], 1),
        "train": round(log.seconds["train"], 1),
        "train_steps_only": round(progress.step_seconds, 1),
        "train_cpu": round(log.seconds["train_cpu"], 1),  # all threads: > wall when threads run in parallel
        "per_step": [round(x, 2) for x in progress.step_durations],
        "generate_before": round(log.seconds["generate_before"], 1),
        "generate_after": round(log.seconds["generate_after"], 1),
        "total": round(time.perf_counter() - log.started, 1),
    }


def _peak_memory_section(log: RunLog) -> dict[str, Any]:
    cuda_peak = PeakMemory.cuda_max_allocated()
    peak = cuda_peak if cuda_peak is not None else log.peak_rss
    return {
        "kind": "cuda_max_allocated" if cuda_peak is not None else "rss",
        "bytes": peak,
        "mib": round(peak / 2**20, 1),
        "process_rss_peak_mib": round(log.peak_rss / 2**20, 1),
    }


def _run_section(config: TrainConfig, state: Any, progress: Any, log: RunLog) -> dict[str, Any]:
    """Steps, losses and speed, from the trainer's state."""
    eval_points = log_points(state.log_history, "eval_loss")
    tokens = state.num_input_tokens_seen - progress.start_tokens
    return {
        "steps": {
            "global_step": state.global_step,
            "this_run": state.global_step - progress.start_step,
            "max_steps": state.max_steps,
            "epoch": state.epoch,
            "stopped_early": state.global_step < state.max_steps,
        },
        "resumed_from": str(log.resumed_from) if log.resumed_from else None,
        "best_checkpoint_eval_loss": state.best_metric,
        # With load_best the saved adapter is the best checkpoint; otherwise the last evaluation (the final step).
        "final_eval_loss": state.best_metric
        if config.load_best
        else (eval_points[-1]["loss"] if eval_points else None),
        "losses": {"train": log_points(state.log_history, "loss"), "eval": eval_points},
        "seconds": _seconds_section(log, progress),
        "tokens_per_second": round(tokens / progress.step_seconds, 1) if progress.step_seconds > 0 else None,
        "tokens_per_second_note": TOKENS_NOTE,
        "tokens_trained_this_run": tokens,
    }


def dpo_points(history: list[dict[str, Any]], prefix: str = "") -> list[dict[str, Any]]:
    """(step, margins, accuracies, chosen, rejected) of every log entry with DPO rewards (prefix "eval_": evals)."""
    points = []
    for entry in history:
        if f"{prefix}{DPO_METRICS[0]}" in entry and "step" in entry:
            point: dict[str, Any] = {"step": int(entry["step"])}
            for key in DPO_METRICS:
                if f"{prefix}{key}" in entry:
                    point[key.split("/")[1]] = round(float(entry[f"{prefix}{key}"]), 4)
            points.append(point)
    return points


def dpo_section(config: TrainConfig, state: Any) -> dict[str, Any]:
    """The preference stage's own figures: beta, the loss type, the reward margins and accuracies per step."""
    return {
        "beta": config.beta,
        "loss_type": config.dpo_loss,
        "sft_weight": config.sft_weight,  # > 0: plus the chosen side's NLL with this weight (RPO)
        "reference": "the SFT adapter (frozen copy), log-probabilities "
        + ("precomputed once" if config.precompute_ref else "computed every step"),
        "train": dpo_points(state.log_history),
        "eval": dpo_points(state.log_history, "eval_"),
    }


def make_card(
    config: TrainConfig,
    path: TrainPath,
    trainer_kwargs: dict[str, Any],
    data: TrainData | dict[str, Any],
    trainer: Any,
    progress: Any,
    log: RunLog,
    n_params: int,
) -> dict[str, Any]:
    """The training card (`card_version` 1); the keys other tools read are documented in docs/training.md.

    `data` is the SFT run's `TrainData`, or a ready dataset section (a DPO run's pairs)."""
    from friction_lib.models import cuda_available, library_versions

    card = {
        "card_version": 1,
        "created_unix": round(time.time()),
        "profile": config.profile,
        "method": config.method,
        "base_model": base_model_name(config),
        "path": {**asdict(path), "described": path.describe(config.method)},
        "config": config.to_dict(),
        "trainer_args": {k: v for k, v in trainer_kwargs.items() if k != "output_dir"},
        "dataset": data if isinstance(data, dict) else _dataset_section(data),
        **_run_section(config, trainer.state, progress, log),
        "peak_memory": _peak_memory_section(log),
        "memory_mib": log.memory_mib,
        "parameters": {"base_dense": n_params, "trainable": trainable_parameters(trainer.model)},
        "versions": library_versions(),
        "cuda": cuda_available(),
        "before_after_model": (
            "full-precision base (+ the saved adapter), as friction eval loads it"
            if path.device == "cpu" and path.quant == "nf4"
            else "the model being trained"
        ),
        "before_after": [
            {"prompt": b["prompt"], "before": b["raw"], "after": a["raw"]}
            for b, a in zip(log.before, log.after, strict=True)
        ],
    }
    if config.method == "dpo":
        card["dpo"] = dpo_section(config, trainer.state)
    return card


def plot_losses(card: dict[str, Any], path: Path) -> Path:
    """Training loss per step and validation loss per evaluation (a DPO run: beside its reward margins and
    accuracies), written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if card.get("dpo"):
        fig, (ax, right) = plt.subplots(1, 2, figsize=(12, 4))
        plot_margins(card["dpo"], right)
    else:
        fig, ax = plt.subplots(figsize=(7, 4))
    train = card["losses"]["train"]
    evals = card["losses"]["eval"]
    if train:
        ax.plot([p["step"] for p in train], [p["loss"] for p in train], label="train loss", alpha=0.8)
    if evals:
        ax.plot([p["step"] for p in evals], [p["loss"] for p in evals], "o-", label="eval loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("DPO loss" if card.get("dpo") else "loss (assistant tokens only)")
    method = card["config"].get("method", "sft")
    ax.set_title(
        f"friction train --method {method} --profile {card['config']['profile']} "
        f"({card['path']['backend']}, {card['path']['quant']})",
        fontsize=10,
    )
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    image = io.BytesIO()
    try:
        fig.savefig(image, format="png", dpi=110)
    finally:
        plt.close(fig)
    return write_atomic(path, image.getvalue())


def plot_margins(dpo: dict[str, Any], ax: Any) -> None:
    """Reward margins (left axis) and accuracies (right axis) per step, training and held-out pairs."""
    for points, style, label in ((dpo["train"], "-", "train"), (dpo["eval"], "o-", "held-out pairs")):
        if points:
            ax.plot(
                [p["step"] for p in points], [p["margins"] for p in points], style, label=f"margin, {label}"
            )
    ax.axhline(0, color="black", linewidth=0.5)
    ax.set(xlabel="optimizer step", ylabel="reward margin (chosen - rejected)")
    ax.set_title(f"DPO, beta {dpo['beta']}: margins and accuracies", fontsize=10)
    share = ax.twinx()
    for points, style, label in ((dpo["train"], ":", "train"), (dpo["eval"], "s--", "held-out pairs")):
        if points:
            share.plot([p["step"] for p in points], [p.get("accuracies", 0) for p in points], style,
                       color="grey", label=f"accuracy, {label}")  # fmt: skip
    share.set(ylim=(0, 1.05), ylabel="accuracy (margin > 0)")
    lines = ax.get_legend_handles_labels()[0] + share.get_legend_handles_labels()[0]
    ax.legend(lines, [line.get_label() for line in lines], fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)


def print_summary(card: dict[str, Any], out: Path) -> None:
    from friction_lib.train_compare import print_before_after

    print(
        f"\nDone in {card['seconds']['total']:.0f} s: {card['steps']['global_step']} steps, "
        f"final eval loss {card['final_eval_loss']:.4f}, {card['tokens_per_second']} tokens/s, "
        f"peak memory {card['peak_memory']['mib']:.0f} MiB ({card['peak_memory']['kind']})."
    )
    print(f"After training: {card['memory_mib']['after_train']}")
    held_out = (card.get("dpo") or {}).get("eval") or []
    if held_out:
        last = held_out[-1]
        print(
            f"DPO on the held-out pairs at step {last['step']}: reward margin {last['margins']:.3f}, "
            f"accuracy {last.get('accuracies', 0):.2f}"
        )
    if card["before_after"]:
        print_before_after(card["before_after"])
    print(f"\nAdapter, {CARD_NAME} and {LOSS_PNG} in {out}")
