"""Benchmark `friction eval` on the quick set: base plus adapter, batched, against per-prompt generation.

Target (issue 5): on 2 CPU cores the quick set (100 prompts) for the base model plus the adapter finishes
within 5 minutes. Prints wall time (model load included and generation alone), the process's CPU time,
completion tokens per second, how many answers hit the token budget or came out empty, and the speed-up of
batched over per-prompt generation in tokens per second and in tokens per CPU-second (per-prompt generation
is timed on the first --per-prompt-sample prompts).

    .venv/bin/python scripts/bench_eval.py                       # quick set, shipped adapter, defaults
    .venv/bin/python scripts/bench_eval.py --threads 1 --per-prompt-sample 8 --out runs/bench_eval.json

The machine's load average is printed with the figures. On a shared machine wall times are upper bounds;
the CPU time (all threads of this process) estimates the wall time of an idle machine with one thread.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from friction_lib import adapters, evaluate  # noqa: E402
from friction_lib.classify import classify  # noqa: E402
from friction_lib.engines import TransformersEngine  # noqa: E402

TARGET_SECONDS = 300.0


def bench_one(name: str, prompts: list, adapter: str | None, args: argparse.Namespace) -> dict:
    t0, c0 = time.perf_counter(), time.process_time()
    engine = TransformersEngine.load(args.model, adapter=adapter, batch_size=args.batch_size)
    if adapter and not args.no_merge:
        engine.model = adapters.merge_for_inference(engine.model)  # what `friction eval` does
    load_s = time.perf_counter() - t0
    t1, c1 = time.perf_counter(), time.process_time()
    gens = engine.generate([p.prompt for p in prompts], max_new_tokens=args.max_new_tokens, progress=True)
    gen_s = time.perf_counter() - t1
    gen_cpu_s = time.process_time() - c1
    cpu_s = time.process_time() - c0  # CPU seconds of this process (all threads): load + generation
    tokens = [g.completion_tokens for g in gens]
    labels = [classify(g.answer, p.prompt).label for g, p in zip(gens, prompts, strict=True)]
    result = {
        "run": name,
        "prompts": len(prompts),
        "load_s": load_s,
        "generate_s": gen_s,
        "total_s": load_s + gen_s,
        "cpu_s": cpu_s,
        "generate_cpu_s": gen_cpu_s,
        "completion_tokens": sum(tokens),
        "tokens_per_s": sum(tokens) / gen_s,
        "median_tokens": statistics.median(tokens),
        "hit_budget": sum(t >= args.max_new_tokens for t in tokens),
        "empty_answers": sum(not g.answer.strip() for g in gens),
        "unclosed_think": sum(bool(g.reasoning) and not g.answer.strip() for g in gens),
        "degenerate": labels.count("DEGENERATE"),
    }
    if args.per_prompt_sample:
        sample = prompts[: args.per_prompt_sample]
        engine.batch_size = 1
        t2, c2 = time.perf_counter(), time.process_time()
        single = engine.generate([p.prompt for p in sample], max_new_tokens=args.max_new_tokens)
        one_s, one_cpu_s = time.perf_counter() - t2, time.process_time() - c2
        sample_tokens = sum(g.completion_tokens for g in single)
        result.update(
            per_prompt_sample=len(sample),
            per_prompt_sample_s=one_s,
            per_prompt_tokens_per_s=sample_tokens / one_s,
            # tokens per second (wall) and tokens per CPU-second, batched over one by one
            batched_speedup=(sum(tokens) / gen_s) / (sample_tokens / one_s),
            batched_speedup_cpu=(sum(tokens) / gen_cpu_s) / (sample_tokens / one_cpu_s),
        )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", default=str(ROOT / "data" / "eval" / "quick.jsonl"))
    parser.add_argument("--model", default="cpu")
    parser.add_argument("--adapter", default=str(ROOT / "models" / "friction-smollm2-135m"))
    parser.add_argument("--max-new-tokens", type=int, default=evaluate.DEFAULT_EVAL_MAX_NEW_TOKENS)
    parser.add_argument("--batch-size", type=int, default=evaluate.DEFAULT_EVAL_BATCH_SIZE)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--per-prompt-sample", type=int, default=8, help="prompts timed one by one (0: skip)")
    parser.add_argument("--no-merge", action="store_true", help="keep the LoRA adapter unmerged (slower)")
    parser.add_argument("--out", help="also write the figures as JSON here")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    prompts = evaluate.load_prompts(args.prompts)
    load_before = os.getloadavg()
    print(
        f"{len(prompts)} prompts, max_new_tokens {args.max_new_tokens}, batch {args.batch_size}, "
        f"torch threads {torch.get_num_threads()}, cores {os.cpu_count()}, load average {load_before[0]:.1f}"
    )
    runs = [bench_one("base", prompts, None, args)]
    if (Path(args.adapter) / "adapter_config.json").exists():
        runs.append(bench_one("adapter", prompts, args.adapter, args))
    else:
        print(f"No adapter at {args.adapter}: timing the base model only (make one with `make adapter`).")
    load_after = os.getloadavg()

    print(
        f"\n{'run':<9}{'load s':>8}{'gen s':>8}{'total s':>9}{'cpu s':>8}{'tokens':>8}{'tok/s':>8}{'median':>8}"
        f"{'at max':>8}{'empty':>7}{'degen':>7}{'1-by-1 tok/s':>14}{'speed-up':>10}{'(cpu)':>8}"
    )
    for r in runs:
        print(
            f"{r['run']:<9}{r['load_s']:>8.1f}{r['generate_s']:>8.1f}{r['total_s']:>9.1f}{r['cpu_s']:>8.1f}{r['completion_tokens']:>8}"
            f"{r['tokens_per_s']:>8.1f}{r['median_tokens']:>8.0f}{r['hit_budget']:>8}{r['empty_answers']:>7}"
            f"{r['degenerate']:>7}{r.get('per_prompt_tokens_per_s', 0):>14.1f}{r.get('batched_speedup', 0):>9.1f}x"
            f"{r.get('batched_speedup_cpu', 0):>7.1f}x"
        )
    total = sum(r["total_s"] for r in runs)
    cpu_total = sum(r["cpu_s"] for r in runs)
    verdict = "within" if total <= TARGET_SECONDS else "OVER"
    print(
        f"\n{' + '.join(r['run'] for r in runs)}: {total:.0f} s in all ({verdict} the {TARGET_SECONDS:.0f} s target); "
        f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after."
    )
    threads = torch.get_num_threads()
    if threads == 1:
        print(
            f"CPU time used: {cpu_total:.0f} s with 1 thread. On an idle machine the wall time is about that or "
            f"less ({'within' if cpu_total <= TARGET_SECONDS else 'OVER'} the target by that estimate)."
        )
    else:  # CPU seconds add up over the threads, so they say nothing about an idle machine's wall time
        print(
            f"CPU time used: {cpu_total:.0f} s over {threads} threads (the wall time above is the figure; "
            "run with --threads 1 for the CPU-time estimate of a loaded machine)."
        )
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(
            json.dumps(
                {
                    "args": vars(args),
                    "load_average": [load_before, load_after],
                    "torch_threads": torch.get_num_threads(),
                    "runs": runs,
                    "total_s": total,
                    "cpu_s": cpu_total,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
