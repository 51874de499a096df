"""Prompts per minute of `friction eval --engine openai` against `friction serve`, at concurrency 1, 4 and 16.

    .venv/bin/python scripts/bench_eval_server.py                      # embedded SmolLM2-135M, 20 quick-set prompts
    .venv/bin/python scripts/bench_eval_server.py --gguf export/smollm2/friction-smollm2-135m-q4_k_m.gguf --json runs/bench_eval_server.json

It starts a real llama.cpp server (`engines.start_server`, what `friction serve` runs) on 127.0.0.1 with the
embedded model or --gguf, sends one warm-up request, then for each concurrency scores the same prompts (the first
--per-group targets and controls of each category of --prompts) through `engines.OpenAIEngine`, exactly the client
`friction eval --engine openai` uses, greedy, --max-new-tokens each. It times the wall clock from the first request
to the last answer and prints prompts per minute, completion tokens per second, the mean and the longest time a
request took (queueing included), and the machine's load average.

How the figures carry over to vLLM: llama-cpp-python's server answers one request at a time (a lock around the
model), so more requests in flight only queue: prompts per minute stay flat and each request waits longer (set
`--timeout` above concurrency x the time of one answer). vLLM batches every request in flight into each decoding
step (continuous batching); decoding is memory-bound, so a step for 16 sequences costs little more than a step for
one, and prompts per minute grow nearly in proportion to the concurrency until the GPU's compute or its KV-cache
memory is the limit. The comparison between levels here measures the server's scheduling, not the model.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from friction_lib.engines import OpenAIEngine, start_server  # noqa: E402
from friction_lib.evaluate import DEFAULT_EVAL_MAX_NEW_TOKENS, load_prompts, sample_prompts  # noqa: E402


def bench_level(
    base_url: str, prompts: list[str], concurrency: int, max_new_tokens: int, timeout: float
) -> dict:
    engine = OpenAIEngine(base_url, timeout=timeout, max_retries=0, concurrency=concurrency)
    t0 = time.perf_counter()
    generations = [g for _, g in engine.generate_each(prompts, max_new_tokens=max_new_tokens)]
    wall = time.perf_counter() - t0
    tokens = sum(g.completion_tokens for g in generations)
    return {
        "concurrency": concurrency,
        "prompts": len(generations),
        "wall_s": round(wall, 2),
        "prompts_per_min": round(60 * len(generations) / wall, 2),
        "completion_tokens": tokens,
        "tokens_per_s": round(tokens / wall, 2),
        "mean_request_s": round(sum(g.seconds for g in generations) / len(generations), 2),
        "max_request_s": round(max(g.seconds for g in generations), 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gguf", help="GGUF to serve (default: the embedded SmolLM2-135M-Instruct)")
    parser.add_argument("--prompts", default=str(ROOT / "data" / "eval" / "quick.jsonl"))
    parser.add_argument(
        "--per-group", type=int, default=2, help="targets and controls per category (default 2)"
    )
    parser.add_argument("--max-new-tokens", type=int, default=DEFAULT_EVAL_MAX_NEW_TOKENS)
    parser.add_argument("--concurrency", default="1,4,16", help="comma-separated levels (default 1,4,16)")
    parser.add_argument("--timeout", type=float, default=900.0, help="per request, queueing included")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()

    prompts = [p.prompt for p in sample_prompts(load_prompts(args.prompts), args.per_group)]
    levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    load_before = os.getloadavg()
    with start_server(args.gguf, port=0) as server:
        print(f"Serving {server.alias} at {server.base_url}; {len(prompts)} prompts, max_new_tokens "
              f"{args.max_new_tokens}, {os.cpu_count()} cores, load average {load_before[0]:.1f}")  # fmt: skip
        bench_level(server.base_url, prompts[:1], 1, 8, args.timeout)  # warm-up, not counted
        rows = [bench_level(server.base_url, prompts, c, args.max_new_tokens, args.timeout) for c in levels]
        alias = server.alias
    load_after = os.getloadavg()
    print(
        f"\n{'concurrency':>11} {'prompts/min':>12} {'tokens/s':>9} {'wall s':>8} {'mean req s':>11} {'max req s':>10}"
    )
    for r in rows:
        print(f"{r['concurrency']:>11} {r['prompts_per_min']:>12.1f} {r['tokens_per_s']:>9.1f} {r['wall_s']:>8.1f} "
              f"{r['mean_request_s']:>11.1f} {r['max_request_s']:>10.1f}")  # fmt: skip
    print(f"\nload average {load_before[0]:.1f} before, {load_after[0]:.1f} after.")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"model": alias, "args": vars(args), "rows": rows,
                                               "load_average": [load_before, load_after]}, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
