"""One DPO epoch against one SFT epoch on the same records, CPU profile; prints figures (no pass/fail).

N preference pairs of data/pairs.jsonl, one per training record (a seeded sample, the kinds in their file
proportions), and the N training records they come from. Then, each in its own process (clean peak-memory figures),
one after the other, with the same knobs (`--no-quant` LoRA r 16, batch 4 x 2, max_length 256, one epoch, one
evaluation at the end, no before/after answers):

- SFT: `friction train --method sft` on the N records (`reasoning: first`: a one-line <think> block, as long as
  the pairs' line);
- DPO: `friction train --method dpo` on the N pairs, from the shipped SFT adapter: the reference log-probabilities
  of every pair first (a forward pass over both sides), then the epoch (forward and backward over both sides).

    .venv/bin/python scripts/bench_dpo.py [--pairs 64] [--adapter models/friction-smollm2-135m] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAIN_FILES = [
    ROOT / "data" / f"{name}_train.jsonl" for name in ("friction", "benchmark", "confirm", "xstest")
]
KNOBS = {
    "batch_size": 4,
    "grad_accum": 2,
    "max_length": 256,
    "epochs": 1,
    "eval_steps": 100000,  # one evaluation, at the end
    "eval_fraction": 0.1,
    "early_stopping_patience": 0,
    "compare_prompts": False,
}


def same_records(n: int, seed: int) -> tuple[list[dict], list[dict]]:
    """(n pairs, the n training records they were built from), one pair per record, in file order."""
    records = {}
    for path in TRAIN_FILES:
        for line in path.read_text().splitlines():
            row = json.loads(line)
            records[row["id"]] = row
    first_pair: dict[str, dict] = {}
    for line in (ROOT / "data" / "pairs.jsonl").read_text().splitlines():
        item = json.loads(line)
        record_id = item["id"].split(":")[0]
        if record_id in records and record_id not in first_pair:
            first_pair[record_id] = item
    chosen = sorted(random.Random(seed).sample(sorted(first_pair), n), key=list(first_pair).index)
    return [first_pair[i] for i in chosen], [records[i] for i in chosen]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    return path


def run(method: str, work: Path, inputs: list[str], threads: int) -> dict:
    """One `friction train` in its own process (dies with this one); returns its card and the wall and load."""
    from friction_lib.processes import run_child

    config = work / f"{method}.yaml"
    # the same one-line <think> block on both: SFT trains each record's first thought, DPO keeps the pairs' line
    own = {"reasoning": "first"} if method == "sft" else {"pair_reasoning": "keep"}
    knobs = {**KNOBS, "method": method, **own}
    config.write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in knobs.items()))
    out = work / method
    cmd = [sys.executable, "-m", "friction_lib.cli", "train", "--profile", "cpu", "--no-quant"]
    cmd += ["--config", str(config), "--out", str(out), "--overwrite", *inputs]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    load, started = os.getloadavg()[0], time.perf_counter()
    done = run_child(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{done.stderr[-3000:]}")
    card = json.loads((out / "training_card.json").read_text())
    return {"card": card, "process_wall_s": time.perf_counter() - started, "load": load}


def figures(result: dict) -> dict:
    card = result["card"]
    seconds = card["seconds"]
    steps = seconds["per_step"]
    return {
        "load_average_before": round(result["load"], 1),
        "process_wall_s": round(result["process_wall_s"], 1),
        "model_load_s": seconds["load"],
        "reference_logps_s": seconds.get("reference_logps", 0.0),
        "epoch_steps": len(steps),
        "epoch_steps_s": seconds["train_steps_only"],
        "mean_step_s": round(statistics.mean(steps[1:] or steps), 2),
        "train_cpu_s": seconds["train_cpu"],
        "tokens_per_s": card["tokens_per_second"],
        "peak_rss_mib": card["peak_memory"]["process_rss_peak_mib"],
        "rss_before_train_mib": card["memory_mib"]["before_train"]["rss_mib"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=64, help="pairs (and records) in the epoch")
    parser.add_argument("--adapter", default=str(ROOT / "models" / "friction-smollm2-135m"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", help="also write the figures to this JSON file")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-dpo-"))
    pairs, records = same_records(args.pairs, args.seed)
    kinds = {k: sum(p["kind"] == k for p in pairs) for k in ("push-back", "right-kind", "help")}
    print(
        f"machine: {os.cpu_count()} CPU(s), {args.threads} threads; {args.pairs} pairs {kinds}; work dir {work}"
    )
    sft = figures(
        run("sft", work, ["--data", str(write_jsonl(work / "records.jsonl", records))], args.threads)
    )
    pair_file = write_jsonl(work / "pairs.jsonl", pairs)
    dpo = figures(run("dpo", work, ["--pairs", str(pair_file), "--adapter", args.adapter], args.threads))
    print(f"\n{'':<28}{'SFT':>10}{'DPO':>10}{'DPO/SFT':>9}")
    for key in sft:
        ratio = f"{dpo[key] / sft[key]:.2f}" if sft[key] else "-"
        print(f"{key:<28}{sft[key]:>10}{dpo[key]:>10}{ratio:>9}")
    whole = (dpo["reference_logps_s"] + dpo["epoch_steps_s"]) / sft["epoch_steps_s"]
    print(f"\nDPO epoch incl. the reference pass / SFT epoch: {whole:.2f}x (wall, optimizer steps only)")
    if args.out:
        Path(args.out).write_text(
            json.dumps({"pairs": args.pairs, "kinds": kinds, "sft": sft, "dpo": dpo}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
