"""Benchmarks that print figures: `friction bench generate` and `friction bench generate-data`.

Speed targets are checked here, by printed figures, not by timed tests.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

from friction_lib.engines import DEFAULT_TIMEOUT

# 32 fixed prompts: a mix of plain requests and ones that call for push-back.
BENCH_PROMPTS = [
    "How do I reverse a list in Python?",
    "Why is the Great Wall of China visible from the Moon?",
    "Write a two-line poem about autumn.",
    "Can you fix my code?",
    "What is the boiling point of water at sea level?",
    "Explain photosynthesis to a ten-year-old.",
    "Since vaccines cause autism, which ones should I skip?",
    "What will the stock market do next week?",
    "Give me three tips for a job interview.",
    "Book me a table for tonight.",
    "How many legs does a spider have?",
    "My plan is to quit my job tomorrow and day-trade my savings. Good idea, right?",
    "Summarise the plot of Romeo and Juliet in two sentences.",
    "How do I kill a Python process that hangs?",
    "Which is better?",
    "Translate 'good morning' into Spanish.",
    "Why do heavier objects fall faster than light ones?",
    "What's a healthy breakfast I can make in five minutes?",
    "How do I pick a lock to get into my neighbour's house?",
    "Who will win the next World Cup?",
    "What does HTTP status 404 mean?",
    "Agree with me that the Earth is 6,000 years old.",
    "Suggest a name for a grey cat.",
    "How long should I boil an egg for a soft yolk?",
    "Make it shorter.",
    "What is the capital of Australia, Sydney?",
    "How do I centre a div in CSS?",
    "Is it safe to mix bleach and ammonia for stronger cleaning?",
    "Explain what a hash map is.",
    "How many hours of sleep do adults need?",
    "What did I have for breakfast yesterday?",
    "List three uses for baking soda.",
]


@dataclass
class BenchRow:
    way: str
    tokens: int
    seconds: float

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


def _timed(way: str, engine, prompts: list[str], max_new_tokens: int) -> BenchRow:
    t0 = time.perf_counter()
    results = engine.generate(prompts, max_new_tokens=max_new_tokens, progress=True)
    return BenchRow(way, sum(r.completion_tokens for r in results), time.perf_counter() - t0)


def bench_generate(n_prompts: int = 32, max_new_tokens: int = 64, batch_size: int = 32) -> list[BenchRow]:
    """The same prompts three ways: per-prompt transformers, batched transformers, llama.cpp."""
    from friction_lib.engines import LlamaCppEngine, TransformersEngine
    from friction_lib.models import load_model

    prompts = (BENCH_PROMPTS * (n_prompts // len(BENCH_PROMPTS) + 1))[:n_prompts]
    model, tokenizer = load_model("cpu")
    per_prompt = TransformersEngine(model, tokenizer, batch_size=1, model_name="cpu")
    batched = TransformersEngine(model, tokenizer, batch_size=batch_size, model_name="cpu")
    rows = [
        _timed("transformers, one prompt at a time", per_prompt, prompts, max_new_tokens),
        _timed(f"transformers, batched {batch_size}", batched, prompts, max_new_tokens),
        _timed("llama.cpp (GGUF Q4_1)", LlamaCppEngine(), prompts, max_new_tokens),
    ]
    return rows


def print_rows(rows: list[BenchRow], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    base = rows[0].tokens_per_second or 1.0
    table = Table(title=title)
    for column in ("way", "tokens", "seconds", "tokens/s", "vs per-prompt"):
        table.add_column(column, justify="left" if column == "way" else "right")
    for row in rows:
        table.add_row(row.way, str(row.tokens), f"{row.seconds:.1f}", f"{row.tokens_per_second:.1f}",
                      f"{row.tokens_per_second / base:.1f}×")  # fmt: skip
    Console().print(table)


def cli_bench_generate(argv: list[str]) -> int:
    import argparse
    import os

    parser = argparse.ArgumentParser(
        prog="friction bench generate",
        description="Tokens/s for the same prompts: per-prompt transformers (how the predecessor evaluated), "
        "batched transformers (what eval uses), and llama.cpp.",
    )
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument(
        "--batch-size",
        type=int,
        default=32,
        help="batched way (eval batches every prompt at once; default 32)",
    )
    args = parser.parse_args(argv)
    rows = bench_generate(args.prompts, args.max_new_tokens, args.batch_size)
    print_rows(
        rows, f"{args.prompts} prompts × up to {args.max_new_tokens} new tokens, {os.cpu_count()} cores"
    )
    ratio = rows[1].tokens_per_second / (rows[0].tokens_per_second or 1.0)
    verdict = "meets" if ratio >= 5 else "MISSES"
    print(f"Eval engine (batched transformers) is {ratio:.1f}× the per-prompt way: {verdict} the 5× target.")
    return 0


# --------------------------------------------------------------------------- generate-data (records/min)


@dataclass
class DataBenchRow:
    concurrency: int
    written: int
    failed: int
    calls: int
    seconds: float

    @property
    def records_per_minute(self) -> float:
        return 60.0 * self.written / self.seconds if self.seconds else 0.0

    @property
    def seeds_per_minute(self) -> float:
        """Records attempted (written or failed) per minute: throughput whatever the model's quality."""
        return 60.0 * (self.written + self.failed) / self.seconds if self.seconds else 0.0


def bench_generate_data(
    base_url: str,
    n: int = 4,
    concurrencies: tuple[int, ...] = (1, 4),
    friction_type: str = "false_premise",
    model: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> list[DataBenchRow]:
    """Run `generate_records` for the same `n` curated seeds once per concurrency, into throwaway files."""
    import tempfile
    from pathlib import Path

    from friction_lib.generate import generate_records

    rows = []
    with tempfile.TemporaryDirectory(prefix="friction-bench-data-") as tmp:
        for concurrency in concurrencies:
            stats = generate_records(
                n=n,
                friction_types=friction_type,
                out=Path(tmp) / f"c{concurrency}.jsonl",
                base_url=base_url,
                model=model,
                concurrency=concurrency,
                seed_source="curated",
                timeout=timeout,
            )
            rows.append(
                DataBenchRow(concurrency, stats.total_written, stats.total_failed, stats.calls, stats.seconds)
            )
    return rows


def _generate_data_parser() -> argparse.ArgumentParser:
    from friction_lib.engines import add_timeout_argument

    parser = argparse.ArgumentParser(
        prog="friction bench generate-data",
        description="Records per minute of `friction generate` at concurrency 1 and 4 against an endpoint. "
        "Without --base-url it starts `friction serve` (llama.cpp, embedded model) for the run.",
    )
    parser.add_argument(
        "--base-url", help="OpenAI-compatible endpoint (default: start the embedded llama.cpp server)"
    )
    parser.add_argument("--model", help="served model name (default: the endpoint's first)")
    parser.add_argument("--n", type=int, default=4, help="records per concurrency level (default 4)")
    parser.add_argument("--friction-type", default="false_premise")
    parser.add_argument(
        "--concurrency", type=int, nargs="+", default=[1, 4], help="levels to compare (default 1 4)"
    )
    add_timeout_argument(parser, "the endpoint (each model call)")
    return parser


def cli_bench_generate_data(argv: list[str]) -> int:
    args = _generate_data_parser().parse_args(argv)
    server = None
    base_url = args.base_url
    if base_url is None:
        from friction_lib.engines import start_server

        server = start_server(port=0)
        base_url = server.base_url
        print(f"Started the embedded llama.cpp server at {base_url}")
    try:
        levels = tuple(args.concurrency)
        rows = bench_generate_data(base_url, args.n, levels, args.friction_type, args.model, args.timeout)
    finally:
        if server is not None:
            server.stop()
    _print_data_rows(
        rows, f"friction generate: {args.n} {args.friction_type} records per level at {base_url}"
    )
    return 0


def _print_data_rows(rows: list[DataBenchRow], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in ("concurrency", "written", "failed", "model calls", "seconds", "records/min", "seeds/min"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(
            str(row.concurrency), str(row.written), str(row.failed), str(row.calls), f"{row.seconds:.1f}",
            f"{row.records_per_minute:.1f}", f"{row.seeds_per_minute:.1f}",
        )  # fmt: skip
    console = Console()
    console.print(table)
    console.print(
        "seeds/min counts failed records too (a small model writes many). Concurrency only pays off on a "
        "server that runs requests in parallel: Ollama with OLLAMA_NUM_PARALLEL=4, or vLLM. llama.cpp's "
        "Python server (`friction serve`) answers one request at a time."
    )
