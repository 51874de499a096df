"""Pick the training checkpoint that pushes back best, by Youden's J on a held-out dev set.

Validation loss says how well a checkpoint imitates the answers' wording, not whether it pushes back at the
right prompts; a 135M model can lower the loss while it over- or under-refuses. So a run trained with
`keep_checkpoints: true` and `checkpoint_limit: 0` keeps every checkpoint, and

    friction train select RUN_DIR --prompts data/eval/dev-large.jsonl --max-fpr 0.17 --out models/friction-smollm2-135m

evaluates each one on the dev prompts (greedy, the same batched engine and rule classifier as `friction eval`),
keeps the one with the highest J (ties: lower FPR, then the earlier step), and writes it as an adapter folder
with the run's `training_card.json` (plus a `selection` block), `loss.png`, `selection.json` and
`selection.png`. The dev sets (`data/build/make_dev_set.py`: dev-large.jsonl, the 332 prompts of the full set outside
the quick set, and dev.jsonl, 100 of them) share no prompt with the quick set that the efficacy target is judged
on, so picking on them does not tune to the test.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

from friction_lib import adapters
from friction_lib.adapters import CARD_NAME, LOSS_PNG
from friction_lib.errors import FrictionError
from friction_lib.files import staged_folder, write_json
from friction_lib.train_runs import CHECKPOINTS, checkpoints

COMMAND = "train select"


def find_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """(step, folder) of every checkpoint of a training run that holds an adapter, by step."""
    found = [(int(p.name.split("-")[-1]), p) for p in checkpoints(Path(run_dir)) if adapters.is_adapter(p)]
    if not found:
        raise FrictionError(
            f"No checkpoints with an adapter in {Path(run_dir) / CHECKPOINTS}. Train with keep_checkpoints: true "
            "and checkpoint_limit: 0 (e.g. in a --config file) so that every checkpoint stays on disk."
        )
    return found


def selection_dir(run_dir: str | Path, prompts: str | Path) -> Path:
    """Where a selection keeps each checkpoint's dev evaluation: one folder per dev set, so that selecting the
    same run on a second dev set (dev.jsonl, then dev-large.jsonl) keeps the first one's responses."""
    return Path(run_dir) / "selection" / Path(prompts).stem


def best_row(rows: list[dict[str, Any]], max_fpr: float | None = None) -> dict[str, Any]:
    """Highest J; ties go to the lower FPR, then to the earlier step.

    With `max_fpr`, only checkpoints whose dev FPR is at most that count (the efficacy target caps the FPR
    rise over the base model); if none is, the error lists every checkpoint's FPR.
    """
    allowed = [r for r in rows if max_fpr is None or r["fpr"] <= max_fpr + 1e-9]
    if not allowed:
        fprs = ", ".join(f"step {r['step']}: {r['fpr']:.2f}" for r in rows)
        raise FrictionError(
            f"No checkpoint has a dev FPR of at most {max_fpr:.2f} ({fprs}). Raise --max-fpr, or train with "
            "more controls or a lower learning rate; the dev evaluations are kept under RUN/selection/DEV_SET/."
        )
    return max(allowed, key=lambda r: (round(r["j"], 6), -round(r["fpr"], 6), -r["step"]))


def select_checkpoint(
    run_dir: str | Path,
    prompts: str | Path,
    out_dir: str | Path,
    *,
    threads: int | None = None,
    overwrite: bool = False,
    save_dtype: str = "bf16",
    max_new_tokens: int | None = None,
    steps: list[int] | None = None,
    max_fpr: float | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate the checkpoints of `run_dir` on `prompts`, write the best as an adapter in `out_dir`.

    `steps` limits the search to those checkpoints (each dev eval costs a minute or more on 2 cores);
    `max_fpr` leaves out checkpoints whose dev FPR is higher. `out_dir` is checked first and has one writer
    for the whole run; it is replaced only by a complete adapter folder (`files.staged_folder`).
    """
    from friction_lib.evaluate import DEFAULT_EVAL_MAX_NEW_TOKENS

    run = Path(run_dir)
    budget = max_new_tokens or DEFAULT_EVAL_MAX_NEW_TOKENS
    with staged_folder(out_dir, COMMAND, overwrite) as tmp:
        if not (run / CARD_NAME).exists():
            raise FrictionError(
                f"{run / CARD_NAME} is missing: point at a finished `friction train` output folder."
            )
        chosen = _chosen_checkpoints(run, steps)
        rows = _evaluate(run, prompts, chosen, threads, budget, progress)
        best = best_row(rows, max_fpr)
        cap = "" if max_fpr is None else f" among checkpoints with FPR <= {max_fpr:.2f}"
        selection: dict[str, Any] = {
            "prompts": str(prompts),
            "criterion": f"max J (lenient){cap}; ties: lower FPR, earlier step",
            "max_fpr": max_fpr,
            "max_new_tokens": budget,
            "chosen_step": best["step"],
            "checkpoints": rows,
        }
        _write_adapter(dict(chosen)[best["step"]], run, tmp, selection, save_dtype)
    print_table(rows, best["step"])
    print(f"Chosen: checkpoint {best['step']} (J {best['j']:.2f}) -> {out_dir}")
    return selection


def _chosen_checkpoints(run: Path, steps: list[int] | None) -> list[tuple[int, Path]]:
    """Every checkpoint of the run, or those of `steps` (a step without one is an error naming those there are)."""
    found = find_checkpoints(run)
    if not steps:
        return found
    wanted, have = set(steps), {step for step, _ in found}
    if missing := sorted(wanted - have):
        raise FrictionError(
            f"No checkpoint for step(s) {', '.join(map(str, missing))} in {run / CHECKPOINTS}; "
            f"it has {', '.join(map(str, sorted(have)))}."
        )
    return [(step, path) for step, path in found if step in wanted]


def _evaluate(
    run: Path,
    prompts: str | Path,
    chosen: list[tuple[int, Path]],
    threads: int | None,
    budget: int,
    progress: bool,
) -> list[dict[str, Any]]:
    """A greedy dev eval of each checkpoint (kept under RUN/selection/DEV_SET/step-N): J, TPR, FPR, degenerate."""
    from friction_lib.evaluate import run_eval

    rows: list[dict[str, Any]] = []
    for step, path in chosen:
        print(f"== checkpoint {step} ({len(rows) + 1}/{len(chosen)})")
        results = run_eval(
            prompts,
            selection_dir(run, prompts) / f"step-{step}",
            adapter=path,
            threads=threads,
            name=f"step-{step}",
            overwrite=True,
            max_new_tokens=budget,
            progress=progress,
        )
        overall = results["overall"]
        rows.append(
            {
                "step": step,
                "j": overall["j"],
                "tpr_lenient": overall["tpr_lenient"],
                "fpr": overall["fpr"],
                "degenerate": overall["degenerate_rate"],
            }
        )
    return rows


def _write_adapter(
    checkpoint: Path, run: Path, folder: Path, selection: dict[str, Any], save_dtype: str
) -> None:
    """Into the staged folder: the adapter (weights cast to `save_dtype`), the run's card with the selection,
    loss.png, selection.json and selection.png."""
    adapters.copy_adapter(checkpoint, folder, save_dtype)
    write_json(folder / CARD_NAME, {**adapters.read_training_card(run), "selection": selection})
    write_json(folder / "selection.json", selection)
    if (run / LOSS_PNG).exists():
        shutil.copy2(run / LOSS_PNG, folder / LOSS_PNG)
    plot_selection(selection["checkpoints"], selection["chosen_step"], folder / "selection.png")


def print_table(rows: list[dict[str, Any]], chosen: int) -> None:
    print(f"{'step':>6} {'J':>6} {'TPR':>6} {'FPR':>6} {'degen':>6}")
    for r in rows:
        mark = "  <- chosen" if r["step"] == chosen else ""
        print(
            f"{r['step']:>6} {r['j']:>6.2f} {r['tpr_lenient']:>6.2f} {r['fpr']:>6.2f} {r['degenerate']:>6.2f}{mark}"
        )


def plot_selection(rows: list[dict[str, Any]], chosen: int, path: Path) -> Path:
    """J, TPR and FPR on the dev set against the training step, the chosen checkpoint marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for key, label in (
        ("j", "J = TPR - FPR"),
        ("tpr_lenient", "TPR (targets pushed back)"),
        ("fpr", "FPR (controls)"),
    ):
        ax.plot(steps, [r[key] for r in rows], marker="o", label=label)
    ax.axvline(chosen, color="grey", linestyle="--", linewidth=1)
    ax.set(
        xlabel="optimizer step", ylabel="share of dev prompts", title="Checkpoint selection on the dev set"
    )
    ax.set_ylim(-0.5, 1.0)
    ax.axhline(0, color="black", linewidth=0.5)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="friction train select",
        description="Evaluate every checkpoint of a training run on a dev set; keep the one with the best J.",
    )
    parser.add_argument("run_dir", help="a `friction train` output folder trained with checkpoint_limit: 0")
    parser.add_argument(
        "--prompts",
        default="data/eval/dev-large.jsonl",
        help="dev prompts, never the quick set (default: the 332 of dev-large.jsonl; dev.jsonl is 100, 3x faster)",
    )
    parser.add_argument("--out", required=True, help="where the chosen adapter goes")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument(
        "--max-new-tokens",
        type=int,
        help="generation budget per dev prompt (default: friction eval's); the label is read from the "
        "answer's opening, so a short budget is enough when the <think> block is one line",
    )
    parser.add_argument(
        "--steps", help="comma-separated checkpoint steps to compare (default: every checkpoint)"
    )
    parser.add_argument(
        "--max-fpr",
        type=float,
        help="only checkpoints whose dev FPR is at most this (e.g. the base model's dev FPR + 0.15)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an --out folder that friction made")
    return parser


def cli_train_select(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.max_fpr is not None and not 0 <= args.max_fpr <= 1:
        raise FrictionError(f"--max-fpr is a share of the controls, from 0 to 1; got {args.max_fpr}.")
    try:
        steps = [int(s) for s in args.steps.split(",")] if args.steps else None
    except ValueError as err:
        raise FrictionError(
            f"--steps takes comma-separated step numbers, e.g. 40,80,120; got {args.steps!r}."
        ) from err
    if Path(args.prompts).name == "quick.jsonl":
        raise FrictionError(
            "Selecting a checkpoint on the quick set would tune to the test the efficacy target is judged on. "
            "Use data/eval/dev-large.jsonl or data/eval/dev.jsonl (data/build/make_dev_set.py)."
        )
    select_checkpoint(
        args.run_dir,
        args.prompts,
        args.out,
        threads=args.threads,
        overwrite=args.overwrite,
        max_new_tokens=args.max_new_tokens,
        steps=steps,
        max_fpr=args.max_fpr,
    )
    return 0
