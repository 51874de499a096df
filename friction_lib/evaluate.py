"""`friction eval`: score a model on eval prompts, whatever serves it; compare runs; validate the classifier.

A run generates one greedy answer per prompt with an engine (`eval_engine`: transformers on a profile plus an
adapter, llama.cpp on a GGUF, or any OpenAI-compatible server: Ollama, vLLM, `friction serve`), labels each answer
with the rule classifier (`classify.py`), scores it (`metrics.py`), and writes to --out:

- `responses.jsonl`: id, prompt, category, expected, reasoning, answer, label, label_reason, ...
- `results.json`: overall and per-category n, TPR strict/lenient, FPR, J, F1, degenerate rate, Wilson 95%
  intervals; reference rows (always comply / refuse / ask); McNemar against a base run (`--base-run`); the
  engine and what it ran (`engine_settings`: the GGUF's sha256, or the served model; the sampling settings);
  the optional LLM judge's agreement with the rules; timing.
- `report.md`, and the plots `by_category.png` and `tpr_fpr.png`.

A run is complete or visibly unfinished: it is written into a staging folder that becomes --out only when every
file is there (`files.staged_folder`, which also holds --out against a second writer), after a disk-space check.
Each answer is written down as soon as it is finished (`eval_partial`: `<out>.partial.jsonl`), so a rerun after a
crash, a kill or a full disk generates only what is missing.

Run steps: `run_eval` -> `_generate` (resumable) -> `_label` -> `_results` -> judge -> `eval_files.write_run`.
`friction eval compare RUN_A RUN_B ...` (`eval_compare`) prints a side-by-side table. docs/eval.md defines every
figure.

Public API: `load_prompts`, `sample_prompts`, `run_eval`, `EngineSpec`, `relabel_run`, `load_run`, `compare_runs`,
`compare_table`, `efficacy`, `plot_run`, `plot_compare`, the text summaries, and the CLI functions.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from friction_lib import metrics
from friction_lib.classify import classify, default_lexicon_path, load_lexicon, validate_xstest
from friction_lib.engines import DEFAULT_TIMEOUT, ENGINES, Generation, PromptTooLong, add_timeout_argument
from friction_lib.errors import FrictionError
from friction_lib.eval_compare import (
    EFFICACY_ALPHA,
    EFFICACY_MAX_FPR_RISE,
    compare_runs,
    compare_table,
    efficacy,
)
from friction_lib.eval_engine import (
    DEFAULT_CONCURRENCY,
    DEFAULT_EVAL_BATCH_SIZE,
    DEFAULT_N_CTX,
    DEFAULT_RETRIES,
    EngineSpec,
    adapter_sha256,
    default_run_name,
    engine_settings,
    model_identity,
)
from friction_lib.eval_files import RUN_FILES, adopt_earlier_run, load_run, write_run
from friction_lib.eval_judge import apply_judge, connect_judge, judge_summary
from friction_lib.eval_partial import PartialAnswers, partial_path
from friction_lib.eval_plots import plot_compare, plot_run
from friction_lib.eval_prompts import EvalPrompt, load_prompts, prompts_sha256, sample_prompts, where
from friction_lib.eval_report import better_text, efficacy_text, reference_table, run_summary, xstest_table
from friction_lib.files import check_disk_space, staged_folder, write_atomic

__all__ = [
    "DEFAULT_EVAL_BATCH_SIZE", "DEFAULT_EVAL_MAX_NEW_TOKENS", "EFFICACY_ALPHA", "EFFICACY_MAX_FPR_RISE",
    "RUN_FILES", "EngineSpec", "EvalPrompt", "classifier_info", "cli_eval", "cli_eval_compare",
    "cli_validate_classifier", "compare_runs", "compare_table", "efficacy", "efficacy_text", "load_prompts",
    "load_run", "plot_compare", "plot_run", "reference_table", "relabel_run", "run_eval", "run_summary",
    "sample_prompts", "xstest_table",
]  # fmt: skip

# Long enough for a short <think> block and the first sentences of the answer (docs/eval.md).
DEFAULT_EVAL_MAX_NEW_TOKENS = 160
TEMPERATURE = 0.0  # every eval is greedy
# Disk room a run needs: each answer twice (the kept answers and responses.jsonl), about 16 bytes a token for
# reasoning, answer and raw text together, 1 KiB of fields; plus the report, results and plots.
_BYTES_PER_TOKEN, _BYTES_PER_ROW, _BYTES_FIXED = 16, 1024, 512 * 1024


# --------------------------------------------------------------------------- the steps of a run


@dataclass
class EvalContext:
    """One run, settled before generation: the prompts, the loaded engine and what its answers are answers of."""

    prompts: list[EvalPrompt]
    prompts_file: str | None
    engine: Any
    system: str
    max_new_tokens: int
    adapter: str | None
    identity: dict[str, Any]  # the header of the kept answers (eval_partial)
    settings: dict[str, Any]  # engine_settings


def _prompt_list(
    prompts: list[EvalPrompt] | str | Path, prompts_file: str | None
) -> tuple[list[EvalPrompt], str | None]:
    if isinstance(prompts, (str, Path)):
        return load_prompts(prompts), prompts_file or str(prompts)
    if not prompts:
        raise FrictionError("No prompts to evaluate.")
    return list(prompts), prompts_file


def room_needed(n_prompts: int, max_new_tokens: int) -> int:
    """Bytes of disk an eval run needs (an upper estimate, `check_disk_space` checks it before any work)."""
    return 2 * n_prompts * (max_new_tokens * _BYTES_PER_TOKEN + _BYTES_PER_ROW) + _BYTES_FIXED


def _context(
    prompts: list[EvalPrompt],
    prompts_file: str | None,
    engine: Any,
    adapter: Any,
    system: str,
    max_new_tokens: int,
) -> EvalContext:
    settings = engine_settings(engine, TEMPERATURE)
    identity = {
        "prompts_sha256": prompts_sha256(prompts),
        "n_prompts": len(prompts),
        "prompts_file": prompts_file,
        "engine": settings["engine"],
        "model": model_identity(engine.model_name, adapter),
        "model_sha256": settings.get("gguf_sha256"),
        "adapter_sha256": adapter_sha256(adapter),
        "system_prompt": system,
        "max_new_tokens": max_new_tokens,
        "sampling": settings["sampling"],
    }
    adapter_text = str(adapter) if adapter else None
    return EvalContext(
        prompts, prompts_file, engine, system, max_new_tokens, adapter_text, identity, settings
    )


def _each(
    engine: Any, texts: list[str], system: str, max_new_tokens: int
) -> Iterator[tuple[int, Generation]]:
    """(index, Generation) as each answer is finished (an engine without `generate_each`: all at the end)."""
    if hasattr(engine, "generate_each"):
        return iter(engine.generate_each(texts, system, max_new_tokens, TEMPERATURE))
    return enumerate(
        engine.generate(texts, system=system, max_new_tokens=max_new_tokens, temperature=TEMPERATURE)
    )


def _generate(ctx: EvalContext, kept: PartialAnswers, progress: bool) -> dict[str, Any]:
    """Answer every prompt `kept` has no answer for, writing each down as it comes; returns the timing."""
    from tqdm.auto import tqdm

    missing = [p for p in ctx.prompts if p.id not in kept.done]
    resumed = len(ctx.prompts) - len(missing)
    if resumed:
        print(
            f"friction eval: resuming from {kept.path}: {resumed} answers kept, {len(missing)} to generate."
        )
    bar = tqdm(total=len(ctx.prompts), initial=resumed, desc=f"eval ({ctx.settings['engine']})", unit="prompt",
               disable=not progress)  # fmt: skip
    t0, c0, tokens = time.perf_counter(), time.process_time(), 0
    try:
        for index, generation in _each(
            ctx.engine, [p.prompt for p in missing], ctx.system, ctx.max_new_tokens
        ):
            kept.add(missing[index].id, generation)
            tokens += generation.completion_tokens
            bar.update(1)
    except PromptTooLong as exc:
        raise FrictionError(f"{where(missing[exc.index], ctx.prompts_file)}: {exc.detail}") from None
    finally:
        bar.close()
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,  # this process, all its threads (a server's work is not in it)
        "generated": len(missing),
        "resumed": resumed,
        "generated_tokens": tokens,
        "tokens_per_s": tokens / seconds if tokens and seconds else None,
    }


def _label(ctx: EvalContext, answers: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per prompt, in the prompt file's order: the prompt, the answer, and its label."""
    rows: list[dict[str, Any]] = []
    for item in ctx.prompts:
        answer = answers[item.id]
        verdict = classify(answer["answer"], item.prompt)
        rows.append({**item.to_dict(), "reasoning": answer["reasoning"], "answer": answer["answer"],
                     "label": verdict.label, "label_reason": verdict.reason,
                     "completion_tokens": answer["completion_tokens"],
                     "hit_max_new_tokens": answer["completion_tokens"] >= ctx.max_new_tokens})  # fmt: skip
    return rows


def _mcnemar(base: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "base_run": base["dir"],
        "lenient": metrics.mcnemar(base["responses"], rows),
        "strict": metrics.mcnemar(base["responses"], rows, strict=True),
    }


def _results(
    ctx: EvalContext,
    rows: list[dict[str, Any]],
    timing: dict[str, Any],
    name: str,
    base: dict[str, Any] | None,
) -> dict[str, Any]:
    """results.json: the run's settings, the engine and what it ran, timing, the figures, McNemar."""
    return {
        "name": name,
        "model": ctx.identity["model"],
        "adapter": ctx.adapter,
        "system_prompt": ctx.system,
        "prompts_file": ctx.prompts_file,
        "prompts_sha256": ctx.identity["prompts_sha256"],
        "engine": ctx.settings["engine"],
        "engine_settings": ctx.settings,
        "max_new_tokens": ctx.max_new_tokens,
        "temperature": TEMPERATURE,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "timing": {**timing, "prompts": len(rows), "completion_tokens": sum(r["completion_tokens"] for r in rows),
                   "batch_size": ctx.settings.get("batch_size"), "concurrency": ctx.settings.get("concurrency")},
        **metrics.score(rows),
        "reference": {k: v["overall"] for k, v in metrics.reference_rows(rows).items()},
        "mcnemar": _mcnemar(base, rows) if base is not None else None,
        "judge": None,
        "classifier": classifier_info(),
    }  # fmt: skip


def _disk_full(exc: OSError, out: Path, kept: PartialAnswers) -> FrictionError:
    return FrictionError(
        f"The disk is full ({exc.strerror}) while writing the eval run for {out}; nothing was put in its place. "
        f"{len(kept.done)} answers are kept in {kept.path}: free some space and run the same command again "
        "(it generates only what is missing)."
    )


def _note_kept(kept: PartialAnswers) -> None:
    """Say where the answers of a stopped run are kept (a rerun of the same command goes on from there)."""
    if kept.done:
        print(f"friction eval: stopped; {len(kept.done)} answers are kept in {kept.path}. Run the same command "
              "again to go on from there.", file=sys.stderr)  # fmt: skip


def _judge(
    judge_url: str | None, judge_model: str | None, identity: str, timeout: float
) -> tuple[Any, str | None]:
    if not judge_url:
        return None, None
    judge, error = connect_judge(judge_url, judge_model, identity, timeout)
    if error:
        print(f"friction eval: {error}\nRule-based results will still be written.", file=sys.stderr)
    return judge, error


# --------------------------------------------------------------------------- run


def _checked_inputs(max_new_tokens: int, base_run: str | Path | None) -> dict[str, Any] | None:
    """The base run to compare against (or None), once the settings and the lexicon are checked."""
    if max_new_tokens < 1:
        raise FrictionError(f"--max-new-tokens must be at least 1, got {max_new_tokens}.")
    base = load_run(base_run) if base_run else None
    load_lexicon()  # a broken lexicon fails now, before minutes of generation
    return base


def _checked_engine(
    engine: Any, model: str, adapter: str | Path | None, batch_size: int, threads: int | None
) -> tuple[Any, str | Path | None]:
    """The engine to run (None: the batched transformers engine on `model`/`adapter`) and its adapter, checked
    before anything is written; an `EngineSpec` is loaded later, once --out is held."""
    if engine is None:
        engine = EngineSpec(model=model, adapter=adapter, batch_size=batch_size, threads=threads)
    if isinstance(engine, EngineSpec):
        engine.check()
        adapter = engine.adapter
    return engine, adapter


def _check_room(out: Path, n_prompts: int, max_new_tokens: int) -> None:
    check_disk_space(out.parent, room_needed(n_prompts, max_new_tokens), "the eval run",
                     "Free some space, or pass --out on a bigger disk.")  # fmt: skip


def _close_kept(kept: PartialAnswers) -> None:
    """Keep the file of answers an unfinished run has produced; remove it when it holds none."""
    if kept.done:
        kept.close()
    else:
        kept.remove()


def _score(
    ctx: EvalContext,
    kept: PartialAnswers,
    progress: bool,
    run_name: str,
    base: Any,
    judge: Any,
    judge_error: str | None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Generate what `kept` lacks, label every answer, and score the run (with the judge's verdicts if any)."""
    timing = _generate(ctx, kept, progress)
    rows = _label(ctx, kept.done)
    results = _results(ctx, rows, timing, run_name, base)
    results["judge"] = apply_judge(judge, rows, progress) if judge else judge_error and {"error": judge_error}
    return rows, results


def run_eval(
    prompts: list[EvalPrompt] | str | Path,
    out_dir: str | Path,
    *,
    engine: Any = None,
    model: str = "cpu",
    adapter: str | Path | None = None,
    system: str = "default",
    max_new_tokens: int = DEFAULT_EVAL_MAX_NEW_TOKENS,
    batch_size: int = DEFAULT_EVAL_BATCH_SIZE,
    threads: int | None = None,
    judge_url: str | None = None,
    judge_model: str | None = None,
    judge_timeout: float = DEFAULT_TIMEOUT,
    base_run: str | Path | None = None,
    name: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
    prompts_file: str | None = None,
) -> dict[str, Any]:
    """Generate, label, score and write one eval run; returns the results dict.

    `engine`: a loaded engine (one can serve several runs), an `EngineSpec`, or None (`model`/`adapter`, batched
    transformers, `threads` CPU threads). An interrupted run's answers, same prompts and model, are reused.
    """
    items, prompts_file = _prompt_list(prompts, prompts_file)
    base = _checked_inputs(max_new_tokens, base_run)
    engine, adapter = _checked_engine(engine, model, adapter, batch_size, threads)
    out = Path(out_dir)
    if overwrite:
        adopt_earlier_run(out)
    with staged_folder(out, "eval", overwrite) as tmp:
        _check_room(out, len(items), max_new_tokens)
        loaded = engine.load() if isinstance(engine, EngineSpec) else engine
        ctx = _context(items, prompts_file, loaded, adapter, system, max_new_tokens)
        judge, judge_error = _judge(judge_url, judge_model, ctx.identity["model"], judge_timeout)
        kept = PartialAnswers.open(partial_path(out), ctx.identity)
        try:
            run_name = name or default_run_name(adapter, system, loaded)
            rows, results = _score(ctx, kept, progress, run_name, base, judge, judge_error)
            write_run(tmp, rows, results)
        except BaseException as exc:
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise _disk_full(exc, out, kept) from None
            _note_kept(kept)  # or, with nothing kept, no file left to refuse a corrected rerun
            raise
        finally:
            _close_kept(kept)
    kept.remove()  # the run is in place: its kept answers are in responses.jsonl now
    return results


def classifier_info() -> dict[str, Any]:
    """Which lexicon labelled a run: runs are only comparable when the hashes match."""
    path = default_lexicon_path()
    return {
        "kind": "rules",
        "lexicon": str(path),
        "lexicon_rows": len(load_lexicon()),
        "lexicon_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
    }


def relabel_run(run_dir: str | Path, base_run: str | Path | None = None) -> dict[str, Any]:
    """Label a finished run's saved answers again with the current lexicon and rewrite its files.

    Nothing is generated again. The McNemar test is recomputed against `base_run` (default: the base
    run recorded in the results, if it still exists); relabel that one first.
    """
    run = load_run(run_dir)
    rows, results = run["responses"], run["results"]
    for row in rows:
        verdict = classify(row["answer"], row["prompt"])
        row["label"], row["label_reason"] = verdict.label, verdict.reason
    results.update(metrics.score(rows))
    results["reference"] = {k: v["overall"] for k, v in metrics.reference_rows(rows).items()}
    results["classifier"] = classifier_info()
    recorded = (results.get("mcnemar") or {}).get("base_run")
    base_dir = base_run or (recorded if recorded and Path(recorded).is_dir() else None)
    if base_dir:
        results["mcnemar"] = {**_mcnemar(load_run(base_dir), rows), "base_run": str(base_dir)}
    if results.get("judge") and "error" not in results["judge"]:
        results["judge"] = judge_summary(rows, results["judge"]["model"])
    write_run(Path(run_dir), rows, results)
    return results


# --------------------------------------------------------------------------- CLI


def _positive(text: str) -> int:
    value = int(text) if text.lstrip("-").isdigit() else 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def _eval_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="friction eval",
        description="Score a model on eval prompts: responses.jsonl, results.json, report.md and plots in --out. "
        "The model runs in transformers, llama.cpp (a GGUF) or any OpenAI-compatible server. "
        "Subcommands: `friction eval compare RUN...`, `friction eval validate-classifier --xstest DIR`.",
    )
    add = parser.add_argument
    add(
        "--engine", default="transformers", choices=ENGINES, help="what runs the model (default transformers)"
    )
    add("--model", help="transformers: profile (cpu, colab, talk) or HF folder (default cpu); "
                        "openai: the served model's name (default: the first the server lists)")  # fmt: skip
    add("--adapter", help="PEFT adapter folder to attach (transformers: the fine-tuned run)")
    add("--gguf", help="llamacpp: the GGUF file (default: the embedded SmolLM2-135M)")
    add("--base-url", help="openai: the server's OpenAI-compatible URL, e.g. http://127.0.0.1:8000/v1 "
                           "(default: Ollama's)")  # fmt: skip
    add("--concurrency", type=_positive, default=DEFAULT_CONCURRENCY, help="openai: requests in flight")
    add("--retries", type=int, default=DEFAULT_RETRIES, help="openai: retries of a failed request")
    add("--n-ctx", type=_positive, default=DEFAULT_N_CTX, help="llamacpp: context length in tokens")
    add("--system-prompt", default="default", help="default, friction (prompt-only baseline), or text")
    add("--prompts", required=True, help="JSONL of {id, prompt, category, expected, source}")
    add("--out", required=True, help="folder for this run's files")
    add("--max-new-tokens", type=int, default=DEFAULT_EVAL_MAX_NEW_TOKENS)
    add(
        "--batch-size",
        type=_positive,
        default=DEFAULT_EVAL_BATCH_SIZE,
        help="transformers: prompts per batch",
    )
    add(
        "--threads",
        type=_positive,
        help="CPU threads of torch or llama.cpp (1 is faster when jobs share cores)",
    )
    add("--per-group", type=int, help="only the first N targets and N controls per category")
    add("--base-run", help="an earlier run of the base model: adds the paired McNemar test")
    add("--judge-url", help="OpenAI-compatible endpoint of an LLM judge (a different model)")
    add("--judge-model", help="model name at --judge-url (default: the first it serves)")
    add_timeout_argument(parser, "the server (--engine openai) or the judge, per request")
    add("--name", help="run name in tables and plots (default: base, prompt-only, fine-tuned, or the model)")
    add("--overwrite", action="store_true", help="replace a run already in --out (one friction made)")
    return parser


def cli_eval(argv: list[str]) -> int:
    args = _eval_parser().parse_args(argv)
    spec = EngineSpec(engine=args.engine, model=args.model, adapter=args.adapter, gguf=args.gguf,
                      base_url=args.base_url, batch_size=args.batch_size, threads=args.threads, n_ctx=args.n_ctx,
                      concurrency=args.concurrency, retries=args.retries, timeout=args.timeout)  # fmt: skip
    spec.check()  # before the prompt file is read: a wrong option is the first thing to fix
    prompts = load_prompts(args.prompts)
    if args.per_group:
        prompts = sample_prompts(prompts, args.per_group)
    results = run_eval(prompts, args.out, engine=spec, adapter=args.adapter, system=args.system_prompt,
                       max_new_tokens=args.max_new_tokens, judge_url=args.judge_url, judge_model=args.judge_model,
                       judge_timeout=args.timeout, base_run=args.base_run, name=args.name,
                       overwrite=args.overwrite, prompts_file=args.prompts)  # fmt: skip
    print(run_summary(results))
    if results.get("mcnemar"):
        m = results["mcnemar"]["lenient"]
        print(f"McNemar vs {results['mcnemar']['base_run']}: p = {m['p_value']:.4g} ({better_text(m)})")
    print(f"Wrote {', '.join(RUN_FILES)} to {args.out}")
    return 0


def cli_eval_compare(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="friction eval compare",
        description="Side-by-side table of eval runs; McNemar of each against the first.",
    )
    parser.add_argument("runs", nargs="+", help="run folders (the first is the reference, e.g. the base run)")
    parser.add_argument("--out", help="also write compare.md and the comparison plots here")
    parser.add_argument(
        "--efficacy",
        action="store_true",
        help="the three runs are base, prompt-only, fine-tuned: check the efficacy target",
    )
    args = parser.parse_args(argv)
    runs = compare_runs(args.runs)
    text = compare_table(runs)
    if args.efficacy:
        if len(runs) != 3:
            raise FrictionError("--efficacy needs exactly three runs: base, prompt-only, fine-tuned.")
        text += "\n\n" + efficacy_text(efficacy(*runs))
    print(text)
    if args.out:
        write_atomic(Path(args.out) / "compare.md", text + "\n")
        for path in plot_compare(runs, args.out):
            print(f"Wrote {path}")
    return 0


def cli_validate_classifier(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="friction eval validate-classifier",
        description="Agreement (comply vs any refusal) of the rule classifier with XSTest's human final_label.",
    )
    parser.add_argument("--xstest", required=True, help="XSTest model_completions folder (never shipped)")
    parser.add_argument("--show", type=int, default=0, help="print this many disagreements")
    args = parser.parse_args(argv)
    result = validate_xstest(args.xstest)
    print(xstest_table(result))
    print("Labels: " + ", ".join(f"{k} {v}" for k, v in result.labels.most_common()))
    for d in result.disagreements[: args.show]:
        print(f"- {d['model']} {d['id']} human {d['human']}, rules {d['rules']}: {d['prompt']}")
    return 0
