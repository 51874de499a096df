"""Benchmarks for `friction train` on the CPU profile; prints figures (no pass/fail).

Every measurement runs `friction train` in its own process (clean peak-memory figures) on the same
data, with before/after answers turned off:

1. one cpu-profile epoch over the full dataset, extrapolated from a fixed number of timed steps;
2. the smoke run that `make test` does (`--smoke` on the micro dataset), wall clock including model load;
3. QLoRA (NF4) against `--no-quant` LoRA: peak RSS and tokens/s on the same steps, with the profile's
   settings and with memory-lean ones (batch 1, gradient checkpointing) where the weights weigh more;
4. batching: padded against grouped-by-length, padding-free and packed (non-padding tokens/s).

Runs that are compared with each other (3 and 4) are started side by side, so that on a shared machine both
see the same load. Side by side the OS shares the wall clock between them, so their speed is compared in
tokens per CPU-second (all threads), not in wall-clock tokens/s.

    .venv/bin/python scripts/bench_train.py [--steps 5] [--data data/friction_train.jsonl] [--only epoch,smoke,quant,batching]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FRICTION = [sys.executable, "-m", "friction_lib.cli", "train"]


def start_train(data: Path, out: Path, steps: int, extra: dict, flags: list[str]) -> tuple:
    """Start one `friction train` process; `finish` waits for it and returns its training card."""
    # A small validation split keeps the one evaluation at the end short; it does not touch the timed steps.
    overrides = {
        "compare_prompts": False,
        "eval_steps": steps,
        "early_stopping_patience": 0,
        "eval_fraction": 0.03,
    }
    overrides.update(extra)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        handle.write("\n".join(f"{k}: {json.dumps(v)}" for k, v in overrides.items()) + "\n")
        config = handle.name
    cmd = [*FRICTION, "--profile", "cpu", "--data", str(data), "--out", str(out), "--overwrite"]
    cmd += ["--config", config, "--max-steps", str(steps), *flags]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return proc, cmd, config, out, time.perf_counter()


def finish(started: tuple) -> dict:
    proc, cmd, config, out, t0 = started
    _, stderr = proc.communicate()
    os.unlink(config)
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{stderr[-3000:]}")
    card = json.loads((out / "training_card.json").read_text())
    card["process_wall_seconds"] = round(time.perf_counter() - t0, 1)
    return card


def run_train(data: Path, out: Path, steps: int, extra: dict, flags: list[str]) -> dict:
    return finish(start_train(data, out, steps, extra, flags))


def side_by_side(
    data: Path, work: Path, steps: int, runs: dict[str, tuple[dict, list[str]]]
) -> dict[str, dict]:
    """Start the runs together (same load for all), wait for all; returns name -> card."""
    started = {
        name: start_train(data, work / name.replace(" ", "-"), steps, extra, flags)
        for name, (extra, flags) in runs.items()
    }
    return {name: finish(s) for name, s in started.items()}


def step_figures(card: dict) -> dict:
    per_step = card["seconds"]["per_step"]
    timed = per_step[1:] if len(per_step) > 1 else per_step  # the first step pays one-off set-up costs
    return {
        "steps_timed": len(timed),
        "mean_step_s": statistics.mean(timed),
        "cpu_s_per_step": card["seconds"]["train_cpu"] / max(1, len(per_step)),
        "tokens_per_s": card["tokens_per_second"],
        # Side by side, the OS shares the wall clock between the runs, so compare CPU time: tokens per CPU-second
        # (all threads, optimizer steps plus the one short evaluation).
        "tokens_per_cpu_s": card["tokens_trained_this_run"] / max(card["seconds"]["train_cpu"], 1e-9),
        "peak_rss_mib": card["peak_memory"]["process_rss_peak_mib"],
        "rss_before_load_mib": card["memory_mib"]["before_load"]["rss_mib"],
        "rss_before_train_mib": card["memory_mib"]["before_train"]["rss_mib"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT / "data" / "friction_train.jsonl"))
    parser.add_argument("--micro", default=str(ROOT / "data" / "micro" / "friction_micro.jsonl"))
    parser.add_argument(
        "--steps", type=int, default=5, help="optimizer steps per measurement (the first is not timed)"
    )
    parser.add_argument("--only", default="epoch,smoke,quant,batching")
    args = parser.parse_args()
    wanted = set(args.only.split(","))
    data = Path(args.data)
    work = Path(tempfile.mkdtemp(prefix="bench-train-"))
    print(f"machine: {os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.1f}; work dir {work}")

    from friction_lib import train, train_config, train_data

    config = train_config.make_config("cpu")
    records = train_data.load_records(data)
    n_train = len(train_data.split_records(records, config.eval_fraction, config.seed)[0])
    per_epoch = train.steps_per_epoch(n_train, config)
    cards: dict[str, dict] = {}

    if "epoch" in wanted:
        cards["nf4 grouped"] = run_train(data, work / "nf4", args.steps, {}, [])
        fig = step_figures(cards["nf4 grouped"])
        epoch_s = per_epoch * fig["mean_step_s"]
        print("\n== 1. cpu profile, one epoch over the full dataset (extrapolated) ==")
        print(
            f"data: {data} ({len(records)} records, {n_train} train) -> {per_epoch} optimizer steps per epoch "
            f"(batch {config.batch_size} x accum {config.grad_accum})"
        )
        print(
            f"timed {fig['steps_timed']} steps after a warm-up step: {fig['mean_step_s']:.1f} s/step wall, "
            f"{fig['cpu_s_per_step']:.1f} CPU-s/step, {fig['tokens_per_s']} tokens/s"
        )
        print(
            f"one epoch ~ {per_epoch} x {fig['mean_step_s']:.1f} s = {epoch_s / 60:.1f} min wall at this load "
            f"(evaluation every {config.eval_steps} steps not included; target <= 20 min)"
        )
        print(f"if both cores were ours (CPU-s / 2): ~ {per_epoch * fig['cpu_s_per_step'] / 2 / 60:.1f} min")

    if "smoke" in wanted:
        out = work / "smoke"
        started = time.perf_counter()
        proc = subprocess.run(
            [*FRICTION, "--smoke", "--data", args.micro, "--out", str(out), "--overwrite"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - started
        if proc.returncode != 0:
            sys.exit(proc.stderr[-3000:])
        card = json.loads((out / "training_card.json").read_text())
        print("\n== 2. smoke profile (make test) ==")
        print(
            f"friction train --smoke --data {args.micro}: {wall:.0f} s wall in all, including Python start-up "
            f"and model load ({card['seconds']['load']:.0f} s), {card['steps']['global_step']} steps "
            f"({card['seconds']['train']:.0f} s), before/after answers "
            f"({card['seconds']['generate_before'] + card['seconds']['generate_after']:.0f} s); target <= 180 s"
        )

    if "quant" in wanted:
        print("\n== 3. QLoRA (NF4) vs --no-quant LoRA, same data and steps, run side by side ==")
        lean = {"batch_size": 1, "grad_accum": 8, "gradient_checkpointing": True}
        for label, extra in (
            ("profile settings (batch 4 x 2)", {}),
            ("memory-lean (batch 1 x 8, checkpointing)", lean),
        ):
            pair = side_by_side(data, work, args.steps, {"nf4": (extra, []), "none": (extra, ["--no-quant"])})
            cards.update({f"{k} {label}": v for k, v in pair.items()})
            q, f = step_figures(pair["nf4"]), step_figures(pair["none"])
            print(f"-- {label}")
            for name, fig in (("NF4 (QLoRA)", q), ("no-quant LoRA", f)):
                print(
                    f"{name:<15} peak RSS {fig['peak_rss_mib']:6.0f} MiB (before load {fig['rss_before_load_mib']:.0f}, "
                    f"model loaded {fig['rss_before_train_mib']:.0f})  {fig['tokens_per_cpu_s']:6.1f} tokens/CPU-s  "
                    f"{fig['cpu_s_per_step']:5.1f} CPU-s/step"
                )
            print(
                f"peak RSS NF4 / no-quant = {q['peak_rss_mib'] / f['peak_rss_mib']:.2f} (target <= 0.60); "
                f"tokens per CPU-s NF4 / no-quant = {q['tokens_per_cpu_s'] / f['tokens_per_cpu_s']:.2f}"
            )

    if "batching" in wanted:
        print("\n== 4. batching: non-padding tokens per CPU-second (NF4), each run beside a padded one ==")
        for mode in ("grouped", "padding_free", "packed"):
            pair = side_by_side(
                data,
                work,
                args.steps,
                {"padded": ({"batching": "padded"}, []), mode: ({"batching": mode}, [])},
            )
            cards[f"nf4 {mode}"], cards[f"nf4 padded (beside {mode})"] = pair[mode], pair["padded"]
            x, base = step_figures(pair[mode]), step_figures(pair["padded"])
            print(
                f"{mode:<13} {x['tokens_per_cpu_s']:6.1f} tokens/CPU-s vs padded {base['tokens_per_cpu_s']:6.1f}: "
                f"x{x['tokens_per_cpu_s'] / base['tokens_per_cpu_s']:.2f}  (peak RSS {x['peak_rss_mib']:.0f} vs "
                f"{base['peak_rss_mib']:.0f} MiB)"
            )

    (work / "bench.json").write_text(json.dumps({k: step_figures(v) for k, v in cards.items()}, indent=2))
    print(f"\nfigures: {work / 'bench.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
