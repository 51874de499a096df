"""`friction generate`: friction records from any OpenAI-compatible endpoint, safely.

    friction generate --n 20 --friction-type false_premise --base-url http://localhost:11434/v1 \\
        --model qwen2.5:7b --out data/generated.jsonl

- Each seed (a curated question, or a category x emotion pair the model turns into a question) runs
  the persona relay and the synthesis step (`personas.run_relay`): 7 or 8 model calls per record.
- Concurrency is bounded (`--concurrency`, default 4 seeds at a time, a thread pool). Every call has a
  timeout; the `openai` client retries connection errors, 408, 409, 429 and 5xx with exponential
  backoff and jitter (0.5 s doubling to 8 s, honouring Retry-After), `--retries` times.
- Records are appended one whole fsynced line at a time (`schema.append_jsonl`), by one writer
  thread, so a crash never leaves a torn record; on a full disk the line that does not fit is cut back
  off and the run stops with one message. Record ids are derived from the seed, so a rerun with the same
  `--out` skips seeds already written: nothing is duplicated or lost. One run per `--out` at a time
  (`files.output_lock`), and never into a file that holds no records (someone else's).
- Every record is validated (the schema, plus `curate.record_problems`: no error text, no leftover
  placeholders, reasoning and answer present) before it is written. Anything else goes to the
  failures file (`<out stem>.failures.jsonl`) with the reason and the offending text: an error
  string never becomes content. An endpoint that is down stops the run with a clear message.

`generate_records(...)` is the same thing as a function, for the notebook.
"""

from __future__ import annotations

import argparse
import errno
import random
import threading
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from friction_lib.engines import DEFAULT_TIMEOUT, add_timeout_argument
from friction_lib.errors import FrictionError
from friction_lib.files import output_lock
from friction_lib.personas import (
    SEED_SOURCES,
    Complete,
    GenerationFailure,
    RelayResult,
    Seed,
    check_friction_type,
    load_personas,
    load_synthesis,
    run_relay,
    take_seeds,
)
from friction_lib.schema import FRICTION_TYPES, FrictionRecord, append_json_line, append_jsonl, load_jsonl

PIPELINE_VERSION = "generate-1.0"
DEFAULT_TEMPERATURE = 0.7
DEFAULT_RETRIES = 4

# A responder is the explicit opt-in that replaces the endpoint: (system, prompt, max_tokens) -> text.
Responder = Callable[[str, str, int], str]


def failures_path(out: str | Path) -> Path:
    """`data/gen.jsonl` -> `data/gen.failures.jsonl` (other names get `.failures.jsonl` appended)."""
    out = Path(out)
    if out.suffix == ".jsonl":
        return out.with_name(out.name[: -len(".jsonl")] + ".failures.jsonl")
    return out.with_name(out.name + ".failures.jsonl")


def done_ids(out: str | Path) -> set[str]:
    """Ids already in the output file (a torn last line from a crash is reported and ignored).

    A file that holds no friction record at all (someone else's file) is refused: records are only ever
    appended to a file of records.
    """
    p = Path(out)
    if not p.is_file() or not p.read_bytes().strip():
        return set()
    loaded = load_jsonl(p, strict=False)
    if not loaded.records:
        raise FrictionError(
            f"--out {p} holds no friction records, so generate will not append to it. Choose a new file (or, if "
            "it holds only a line cut off when a run was killed, delete it)."
        )
    return {record.id for record in loaded.records}


def check_seed_questions(seeds: Sequence[Seed], seeds_dir: str | Path | None = None) -> None:
    """A curated question longer than curation allows (`curate.MAX_QUESTION_CHARS`), or with control characters
    (binary bytes), is refused up front with its file and line: it would cost 7 or 8 model calls for a record
    that curation removes."""
    from friction_lib.curate import MAX_QUESTION_CHARS
    from friction_lib.personas import default_data_dir

    for seed in seeds:
        question = seed.question or ""
        control = next((c for c in question if c != "\t" and unicodedata.category(c) == "Cc"), None)
        if len(question) <= MAX_QUESTION_CHARS and control is None:
            continue
        path = (Path(seeds_dir) if seeds_dir else default_data_dir() / "seeds") / f"{seed.friction_type}.txt"
        lines = path.read_text(encoding="utf-8").splitlines()
        line = next((i for i, text in enumerate(lines, start=1) if text.strip() == question), 0)
        problem = (
            f"a control character {control!r} in a seed question; seeds are plain text, one question a line"
            if control is not None
            else f"a seed question of {len(question):,} characters; questions may have at most "
            f"{MAX_QUESTION_CHARS:,} (the training context must hold the answer too)"
        )
        raise FrictionError(f"{path}:{line}: {problem}. Fix or remove that line.")


# --------------------------------------------------------------------------- the endpoint


def _fatal(exc: FrictionError) -> bool:
    """True when every later call would fail too (endpoint down, auth, unknown model, retries exhausted)."""
    import openai

    cause = exc.__cause__
    if isinstance(cause, openai.APIStatusError):
        return cause.status_code not in (400, 413, 422)  # a bad request is about this prompt only
    return True


def endpoint_completer(
    base_url: str,
    model: str | None = None,
    temperature: float = DEFAULT_TEMPERATURE,
    timeout: float = DEFAULT_TIMEOUT,
    retries: int = DEFAULT_RETRIES,
) -> tuple[Complete, str]:
    """A `Complete` callable backed by `engines.OpenAIEngine` (its client, timeouts and error messages).

    Returns (complete, model name). Without `model`, the endpoint is asked for its first model, which
    also checks right away that the endpoint answers.
    """
    from friction_lib.engines import OpenAIEngine

    engine = OpenAIEngine(base_url, model=model, timeout=timeout, max_retries=retries, concurrency=1)

    def complete(system: str, prompt: str, max_tokens: int) -> str:
        generation = engine.generate(
            [prompt], system=system, max_new_tokens=max_tokens, temperature=temperature
        )[0]
        return generation.answer  # the visible text; a reasoning model's <think> block is not a thought

    return complete, engine.model_name


# --------------------------------------------------------------------------- one record


@dataclass
class Outcome:
    seed: Seed
    record: FrictionRecord | None = None
    failure: dict[str, Any] | None = None
    calls: int = 0


def _schema_reasons(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())


def make_record(
    seed: Seed,
    complete: Complete,
    model_name: str,
    temperature: float,
    uncertainty_prob: float = 0.0,
    personas_dir: str | Path | None = None,
    personas: Sequence[Any] | None = None,
    synthesis: Any | None = None,
) -> Outcome:
    """Run the relay for one seed and validate the result. Never raises for bad model text."""
    personas = list(personas) if personas is not None else load_personas(personas_dir)
    synthesis = synthesis if synthesis is not None else load_synthesis(personas_dir)
    base = {"id": seed.record_id, "friction_type": seed.friction_type, "seed": seed.to_dict()}
    try:
        relay = run_relay(
            seed, complete, personas, synthesis, uncertainty_prob, random.Random(seed.record_id)
        )
    except GenerationFailure as stopped:
        return Outcome(
            seed,
            failure={**base, "stage": stopped.stage, "reason": stopped.reason, "text": stopped.text[:800]},
            calls=stopped.calls,
        )
    return _checked_outcome(seed, _record_data(seed, relay, model_name, temperature), base, relay.prompts)


def _record_data(seed: Seed, relay: RelayResult, model_name: str, temperature: float) -> dict[str, Any]:
    """The record the relay wrote for `seed`, as JSON data (not validated yet)."""
    return {
        "id": seed.record_id,
        "user_input": relay.question,
        "friction_type": seed.friction_type,
        "agents": relay.agents,
        "final_answer": relay.final_answer,
        "metadata": {
            "source": "generated",
            "generator_model": model_name,
            "temperature": temperature,
            "created_at": date.today().isoformat(),
            "pipeline_version": PIPELINE_VERSION,
        },
    }


def _checked_outcome(seed: Seed, data: dict[str, Any], base: dict[str, Any], calls: int) -> Outcome:
    """A record that passes the schema and the content checks, or the failure that says why not."""
    from friction_lib.curate import record_problems

    try:
        record = FrictionRecord.model_validate(data)
    except ValidationError as exc:
        failure = {
            **base,
            "stage": "schema",
            "reason": f"invalid record: {_schema_reasons(exc)}",
            "record": data,
        }
        return Outcome(seed, failure=failure, calls=calls)
    problems = record_problems(record, bounds=None)
    if problems:
        failure = {**base, "stage": "content", "reason": "; ".join(problems), "record": data}
        return Outcome(seed, failure=failure, calls=calls)
    return Outcome(seed, record=record, calls=calls)


# --------------------------------------------------------------------------- many records


@dataclass
class GenerateStats:
    out: str
    failures_file: str
    model: str
    concurrency: int
    written: Counter[str] = field(default_factory=Counter)  # per friction_type
    skipped: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    failure_reasons: Counter[str] = field(default_factory=Counter)
    calls: int = 0
    seconds: float = 0.0

    @property
    def total_written(self) -> int:
        return sum(self.written.values())

    @property
    def total_failed(self) -> int:
        return sum(self.failed.values())

    @property
    def total_skipped(self) -> int:
        return sum(self.skipped.values())

    @property
    def records_per_minute(self) -> float:
        return 60.0 * self.total_written / self.seconds if self.seconds > 0 else 0.0

    @property
    def attempts_per_minute(self) -> float:
        """Seeds finished (written or failed) per minute: the throughput, whatever the model's quality."""
        done = self.total_written + self.total_failed
        return 60.0 * done / self.seconds if self.seconds > 0 else 0.0


def parse_friction_types(value: str | Sequence[str]) -> list[str]:
    """`all`, one type, or a comma-separated list."""
    names = value.split(",") if isinstance(value, str) else list(value)
    names = [n.strip() for n in names if n.strip()]
    if names == ["all"]:
        return list(FRICTION_TYPES)
    for name in names:
        check_friction_type(name)
    if not names:
        raise FrictionError(f"No friction type given; use one of: {', '.join(FRICTION_TYPES)}, or all.")
    return list(dict.fromkeys(names))


def _capped(complete: Complete, cap: int) -> Complete:
    def capped(system: str, prompt: str, max_tokens: int) -> str:
        return complete(system, prompt, min(max_tokens, cap))

    return capped


def _check_settings(
    n: int, concurrency: int, uncertainty_prob: float, seed_source: str, max_tokens: int | None
) -> None:
    if n < 0:
        raise FrictionError(f"--n must be 0 or more, got {n}.")
    if concurrency < 1:
        raise FrictionError(f"--concurrency must be at least 1, got {concurrency}.")
    if not 0.0 <= uncertainty_prob <= 1.0:
        raise FrictionError(f"--uncertainty-prob must be between 0 and 1, got {uncertainty_prob}.")
    if seed_source not in SEED_SOURCES:
        raise FrictionError(f"--seeds must be one of: {', '.join(SEED_SOURCES)}.")
    if max_tokens is not None and max_tokens < 8:
        raise FrictionError(f"--max-tokens must be at least 8, got {max_tokens}.")


def _checked_out(out: str | Path) -> Path:
    """`--out` as a path: a JSONL file to append to, never a folder."""
    out = Path(out)
    if out.is_dir():
        raise FrictionError(
            f"--out {out} is a folder; give a JSONL file to append records to, e.g. {out}/gen.jsonl."
        )
    return out


def _worker(
    complete: Complete,
    model_name: str,
    temperature: float,
    uncertainty_prob: float,
    personas: Sequence[Any],
    synthesis: Any,
) -> Callable[[Seed], Outcome]:
    """What a pool thread runs for one seed: its record, or a request failure (a fatal error stops the run)."""

    def work(s: Seed) -> Outcome:
        try:
            return make_record(
                s, complete, model_name, temperature, uncertainty_prob, personas=personas, synthesis=synthesis
            )
        except FrictionError as exc:
            if _fatal(exc):
                raise
            failure = {"id": s.record_id, "friction_type": s.friction_type, "seed": s.to_dict()}
            return Outcome(s, failure={**failure, "stage": "request", "reason": str(exc)})

    return work


def generate_records(
    n: int,
    friction_types: str | Sequence[str],
    out: str | Path,
    base_url: str | None = None,
    model: str | None = None,
    concurrency: int = 4,
    temperature: float = DEFAULT_TEMPERATURE,
    seed: int = 0,
    timeout: float = DEFAULT_TIMEOUT,
    retries: int = DEFAULT_RETRIES,
    seed_source: str = "both",
    uncertainty_prob: float = 0.0,
    personas_dir: str | Path | None = None,
    seeds_dir: str | Path | None = None,
    max_tokens: int | None = None,
    progress: bool = True,
    responder: Responder | None = None,
) -> GenerateStats:
    """Generate up to `n` records per friction type into `out` (appending; resumes; returns stats).

    `responder` is an explicit opt-in for tests and offline experiments only: a function
    `(system, prompt, max_tokens) -> text` used instead of an endpoint. Records made with it are marked
    `generator_model: "responder:<name>"`. Without it, `base_url` is required.
    `max_tokens` caps every call below the templates' own `max_tokens` (quick demos with a slow model).
    """
    _check_settings(n, concurrency, uncertainty_prob, seed_source, max_tokens)
    types = parse_friction_types(friction_types)
    personas = load_personas(personas_dir)
    synthesis = load_synthesis(personas_dir)
    seeds = [s for t in types for s in take_seeds(t, n, seeds_dir, seed_source, seed)]
    check_seed_questions(seeds, seeds_dir)
    out = _checked_out(out)
    complete, model_name = _completer(responder, base_url, model, temperature, timeout, retries, max_tokens)
    stats = GenerateStats(
        out=str(out), failures_file=str(failures_path(out)), model=model_name, concurrency=concurrency
    )
    stop = threading.Event()  # set on Ctrl-C or a fatal error: workers stop before their next call
    complete = _stoppable(complete, stop)
    work = _worker(complete, model_name, temperature, uncertainty_prob, personas, synthesis)
    with output_lock(out, "generate"):  # one writer: a second run on the same --out would repeat the seeds
        already = done_ids(out)  # before the first model call: someone else's file is refused
        for s in seeds:
            if s.record_id in already:
                stats.skipped[s.friction_type] += 1
        _run_pool([s for s in seeds if s.record_id not in already], work, stats, stop, progress)
    return stats


def _run_pool(
    todo: list[Seed],
    work: Callable[[Seed], Outcome],
    stats: GenerateStats,
    stop: threading.Event,
    progress: bool,
) -> None:
    """Run `work` over the seeds, at most `stats.concurrency` at a time, writing each outcome as it comes."""
    from tqdm.auto import tqdm

    out, fail_file = Path(stats.out), Path(stats.failures_file)
    t0 = time.perf_counter()
    bar = tqdm(total=len(todo), desc=f"generate ({stats.model})", unit="record", disable=not progress)
    pending = iter(todo)
    pool = ThreadPoolExecutor(max_workers=stats.concurrency)
    running: set[Future[Outcome]] = set()
    try:
        for s in pending:  # fill the pool; more are submitted as these finish (never a big queue)
            running.add(pool.submit(work, s))
            if len(running) >= stats.concurrency:
                break
        while running:
            finished, running = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                outcome = future.result()  # a FrictionError here (endpoint down) is handled below
                _write(outcome, out, fail_file, stats)
                bar.update(1)
                bar.set_postfix(written=stats.total_written, failed=stats.total_failed)
                nxt = next(pending, None)
                if nxt is not None:
                    running.add(pool.submit(work, nxt))
    except FrictionError as exc:  # the endpoint is down, refuses us, keeps failing after retries; a full disk
        stop.set()
        kept = f" {stats.total_written} record(s) written before the stop are kept in {out}; rerun to resume."
        raise FrictionError(f"{exc}{kept}") from exc
    except BaseException:  # Ctrl-C: what was written stays; seeds in flight are dropped, not half-written
        stop.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # waits for at most one call per worker
        bar.close()
    stats.seconds = time.perf_counter() - t0


def _completer(
    responder: Responder | None,
    base_url: str | None,
    model: str | None,
    temperature: float,
    timeout: float,
    retries: int,
    max_tokens: int | None,
) -> tuple[Complete, str]:
    """(complete, model name): the endpoint's, or the responder's (the explicit opt-in), capped at `max_tokens`."""
    if responder is not None:
        complete: Complete = responder
        model_name = f"responder:{getattr(responder, '__name__', type(responder).__name__)}"
    elif base_url:
        complete, model_name = endpoint_completer(base_url, model, temperature, timeout, retries)
    else:
        raise FrictionError(
            "No endpoint: pass --base-url, e.g. http://localhost:11434/v1 (Ollama) or the URL that "
            "`friction serve` prints."
        )
    return (_capped(complete, max_tokens) if max_tokens is not None else complete), model_name


class _Stopped(Exception):
    """Raised inside a worker when the run is stopping; never written anywhere."""


def _stoppable(complete: Complete, stop: threading.Event) -> Complete:
    def guarded(system: str, prompt: str, max_tokens: int) -> str:
        if stop.is_set():
            raise _Stopped
        return complete(system, prompt, max_tokens)

    return guarded


def _write(outcome: Outcome, out: Path, fail_file: Path, stats: GenerateStats) -> None:
    """Runs in the calling thread only: one writer, so lines never interleave. A write that fails (a full disk)
    leaves the file as it was (`schema.append_jsonl`) and stops the run with one line naming the file."""
    stats.calls += outcome.calls
    ftype = outcome.seed.friction_type
    if outcome.record is not None:
        _append(append_jsonl, outcome.record, out)
        stats.written[ftype] += 1
        return
    failure = dict(outcome.failure or {})
    failure["at"] = datetime.now(UTC).isoformat(timespec="seconds")
    failure["generator_model"] = stats.model
    _append(append_json_line, failure, fail_file)
    stats.failed[ftype] += 1
    stats.failure_reasons[f"{failure.get('stage')}: {str(failure.get('reason'))[:60]}"] += 1


def _append(write: Callable[[Any, Path], None], item: Any, path: Path) -> None:
    try:
        write(item, path)
    except OSError as exc:
        fix = "Free some space" if exc.errno == errno.ENOSPC else "Check the folder's permissions"
        raise FrictionError(
            f"Could not write to {path} ({exc.strerror or exc}). {fix}, or choose another --out."
        ) from exc


def print_stats(stats: GenerateStats) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"friction generate -> {stats.out}  ({stats.model}, concurrency {stats.concurrency})")
    table.add_column("friction_type")
    for name in ("written", "skipped (already done)", "failed"):
        table.add_column(name, justify="right")
    types = [t for t in FRICTION_TYPES if stats.written[t] or stats.skipped[t] or stats.failed[t]]
    for t in types:
        table.add_row(t, str(stats.written[t]), str(stats.skipped[t]), str(stats.failed[t]))
    table.add_row(
        "[bold]total",
        f"[bold]{stats.total_written}",
        f"[bold]{stats.total_skipped}",
        f"[bold]{stats.total_failed}",
    )
    console = Console()
    console.print(table)
    console.print(
        f"{stats.records_per_minute:.1f} records/min written, {stats.attempts_per_minute:.1f} seeds/min finished, "
        f"{stats.calls} model calls in {stats.seconds:.1f} s."
    )
    if stats.total_failed:
        console.print(
            f"[yellow]Failures (with reasons and the offending text): {stats.failures_file}[/yellow]"
        )
        for reason, count in stats.failure_reasons.most_common(5):
            console.print(f"  {count} x {reason}")


def _generate_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="friction generate",
        description="Generate friction records with the six-persona relay via any OpenAI-compatible endpoint "
        "(Ollama, vLLM, OpenAI, or `friction serve`). Appends to --out and resumes where it stopped.",
    )
    parser.add_argument(
        "--n", type=int, required=True, help="seeds per friction type (the first N of the seed list)"
    )
    parser.add_argument(
        "--friction-type", required=True, help=f"{', '.join(FRICTION_TYPES)}, a comma list, or all"
    )
    parser.add_argument("--base-url", required=True, help="e.g. http://localhost:11434/v1 (Ollama)")
    parser.add_argument("--model", help="served model name (default: the endpoint's first model)")
    parser.add_argument("--out", required=True, help="JSONL file to append records to")
    parser.add_argument("--concurrency", type=int, default=4, help="seeds in flight at once (default 4)")
    parser.add_argument("--temperature", type=float, default=DEFAULT_TEMPERATURE)
    parser.add_argument(
        "--seed", type=int, default=0, help="orders the seed list (same seed = same seeds, for resume)"
    )
    parser.add_argument(
        "--seeds", default="both", choices=SEED_SOURCES, help="curated questions, sampled, or both"
    )
    add_timeout_argument(parser, "the endpoint (each model call)")
    parser.add_argument(
        "--retries", type=int, default=DEFAULT_RETRIES, help="retries per call (backoff + jitter)"
    )
    parser.add_argument(
        "--uncertainty-prob", type=float, default=0.0, help="chance of an uncertainty opener (0)"
    )
    parser.add_argument(
        "--max-tokens", type=int, help="cap on tokens per call, below the templates' max_tokens"
    )
    parser.add_argument("--personas", help="persona folder (default data/personas)")
    parser.add_argument("--seeds-dir", help="seed folder (default data/seeds)")
    return parser


def cli_generate(argv: list[str]) -> int:
    args = _generate_parser().parse_args(argv)
    stats = generate_records(
        n=args.n,
        friction_types=args.friction_type,
        out=args.out,
        base_url=args.base_url,
        model=args.model,
        concurrency=args.concurrency,
        temperature=args.temperature,
        seed=args.seed,
        timeout=args.timeout,
        retries=args.retries,
        seed_source=args.seeds,
        uncertainty_prob=args.uncertainty_prob,
        personas_dir=args.personas,
        seeds_dir=args.seeds_dir,
        max_tokens=args.max_tokens,
    )
    print_stats(stats)
    return 0
