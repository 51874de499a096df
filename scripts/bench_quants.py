"""Size, load time and speed of each GGUF of an export: f16 vs q8_0 vs q4_k_m, on 2 CPU threads.

    .venv/bin/python scripts/bench_quants.py [--export DIR] [--threads 2 | 1,2] [--tokens 128] [--runs 3] [--json FILE]

Without --export it first exports an untrained test adapter on the embedded SmolLM2-135M (speed does not
depend on the weights' values, only on their size and type) into a temporary folder. Each GGUF is loaded
`--runs` times (median load time), then generates exactly `--tokens` greedy tokens from a fixed prompt per run
(median tokens/s; prompt processing is timed separately). The machine's load average is printed too: on a
shared machine it explains noisy numbers: llama.cpp's worker threads spin while they wait for each other, so
two threads on two cores that other processes also use can be far slower than one (`--threads 1,2` shows both).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from friction_lib import adapters, export, verify  # noqa: E402
from friction_lib.chat import build_messages  # noqa: E402

PROMPT = "Explain in a few sentences why the sky is blue, and what would change on Mars."


def bench_gguf(path: Path, threads: int, tokens: int, runs: int, tokenizer) -> dict:
    from llama_cpp import Llama

    ids = tokenizer.apply_chat_template(build_messages(PROMPT), add_generation_prompt=True, tokenize=True)
    ids = list(ids["input_ids"] if hasattr(ids, "keys") else ids)
    loads, prefill, decode = [], [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        llm = Llama(
            model_path=str(path), n_ctx=1024, n_threads=threads, n_threads_batch=threads, verbose=False
        )
        loads.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        llm.eval(ids)
        prefill.append(len(ids) / (time.perf_counter() - t0))
        llm.reset()
        generator = llm.generate(ids, temp=0.0, top_k=1, repeat_penalty=1.0, reset=True)
        first = next(generator)  # the prompt is evaluated before the first token comes out
        del first
        t0 = time.perf_counter()
        for n, _token in enumerate(generator, start=1):  # exactly `tokens` more, ignoring end-of-text
            if n >= tokens:
                break
        decode.append(tokens / (time.perf_counter() - t0))
        llm.close()
    return {
        "gguf": path.name,
        "type": verify.gguf_type(path),
        "size_mb": round(path.stat().st_size / 2**20, 1),
        "load_s": round(statistics.median(loads), 3),
        "prefill_tok_s": round(statistics.median(prefill), 1),
        "decode_tok_s": round(statistics.median(decode), 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--export", help="export folder from `friction export` (default: make one)")
    parser.add_argument("--threads", default="2", help="thread count, or a comma list such as 1,2")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args()

    from friction_lib.models import load_tokenizer

    with tempfile.TemporaryDirectory(prefix="bench-quants-") as scratch:
        folder = Path(args.export) if args.export else None
        if folder is None:
            print("No --export given: exporting an untrained test adapter (f16, q8_0, q4_k_m) first ...")
            adapter = adapters.make_test_adapter(Path(scratch) / "adapter")
            folder = export.export_adapter(
                adapter, Path(scratch) / "export", quants="q8_0,q4_k_m", verify=False, progress=False
            ).out_dir
        manifest = json.loads((folder / "export.json").read_text())
        tokenizer = load_tokenizer(str(folder / manifest["merged"]))
        order = {"f16": 0, "bf16": 0, "q8_0": 1}
        ggufs = sorted(
            (folder / name for name in manifest["ggufs"].values()),
            key=lambda p: order.get(verify.gguf_type(p), 2),
        )
        thread_counts = [int(t) for t in str(args.threads).split(",") if t.strip()]
        rows = [
            {"threads": threads, **bench_gguf(path, threads, args.tokens, args.runs, tokenizer)}
            for threads in thread_counts
            for path in ggufs
        ]

    load = os.getloadavg()
    print(
        f"\n{manifest['profile']} export, {args.tokens} generated tokens, median of {args.runs} "
        f"runs; load average {load[0]:.1f} on {os.cpu_count()} cores\n"
    )
    header = f"{'threads':>7} {'type':<8} {'size MB':>9} {'load s':>8} {'prefill tok/s':>14} {'decode tok/s':>13}  file"
    print(header + "\n" + "-" * len(header))
    for row in rows:
        print(
            f"{row['threads']:>7} {row['type']:<8} {row['size_mb']:>9.1f} {row['load_s']:>8.3f} {row['prefill_tok_s']:>14.1f} "
            f"{row['decode_tok_s']:>13.1f}  {row['gguf']}"
        )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"threads": args.threads, "load_average": load, "rows": rows}, indent=2)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
