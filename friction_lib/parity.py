"""Friction parity after quantisation: does each GGUF of an export behave like its adapter in transformers?

The export's token checks (verify.py) compare 16 greedy tokens on three prompts; quantisation can still move
behaviour. `check_behaviour` scores the adapter in transformers (exactly as `friction eval --adapter` does) and
each GGUF through llama.cpp (the engine inside Ollama; all GGUFs at once, `eval_parallel`) on the same prompts,
greedy, with the same token budget. Every run is a whole eval run under `<export>/eval/<name>/` (`friction eval compare` reads them). Per GGUF,
against the transformers run: J, TPR and FPR; label agreement per prompt; the exact McNemar p-value; and the
prompts whose label flipped. A GGUF is within tolerance when its labels agree on at least MIN_LABEL_AGREEMENT
of the prompts and McNemar finds no significant shift (p >= MIN_MCNEMAR_P). The section is stored in
verification.json as `behaviour` (`verify.record_behaviour`); `behaviour_table` prints it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from friction_lib import metrics
from friction_lib.errors import FrictionError
from friction_lib.eval_engine import DEFAULT_N_CTX
from friction_lib.eval_files import load_run
from friction_lib.eval_parallel import run_evals, threads_each
from friction_lib.eval_prompts import EvalPrompt, load_prompts, prompts_sha256
from friction_lib.eval_report import fmt, signed
from friction_lib.files import inside, write_atomic

MIN_LABEL_AGREEMENT = 0.90
MIN_MCNEMAR_P = 0.05
REFERENCE = "transformers"
TOLERANCE_TEXT = (
    f"labels agree with the transformers run on >= {MIN_LABEL_AGREEMENT:.0%} of prompts, "
    f"and McNemar p >= {MIN_MCNEMAR_P} (no significant shift in prompts answered right)"
)
_BASE_TYPES = ("f16", "bf16")


def export_ggufs(export_dir: Path, types: list[str] | None = None) -> dict[str, Path]:
    """{type: GGUF path} of an export: `types`, or by default every quantised GGUF (else the 16-bit one)."""
    manifest = json.loads((export_dir / "export.json").read_text(encoding="utf-8"))
    ggufs = {kind: inside(export_dir, name, "export.json") for kind, name in manifest["ggufs"].items()}
    if types is None:
        quantised = [kind for kind in ggufs if kind not in _BASE_TYPES]
        types = quantised or list(ggufs)
    missing = [kind for kind in types if kind not in ggufs]
    if missing:
        raise FrictionError(
            f"No GGUF of type {', '.join(missing)} in {export_dir}; it has {', '.join(ggufs)}."
        )
    return {kind: ggufs[kind] for kind in types}


def compare_labels(reference: list[dict[str, Any]], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-prompt agreement of two runs' labels (exact, and push-back or not) and the prompts that flipped."""
    by_id = {r["id"]: r for r in reference}
    pairs = [(by_id[r["id"]], r) for r in rows if r["id"] in by_id]
    flipped = [
        {"id": b["id"], "category": b["category"], "expected": b["expected"], REFERENCE: a["label"],
         "gguf": b["label"], "prompt": b["prompt"]}
        for a, b in pairs
        if a["label"] != b["label"]
    ]  # fmt: skip
    same_kind = sum(metrics.is_pushback(a["label"]) == metrics.is_pushback(b["label"]) for a, b in pairs)
    n = len(pairs)
    return {
        "n": n,
        "label_agreement": (n - len(flipped)) / n if n else None,
        "pushback_agreement": same_kind / n if n else None,
        "flipped": flipped,
    }


def _figures(results: dict[str, Any]) -> dict[str, Any]:
    o, t = results["overall"], results["timing"]
    keys = ("j", "tpr_lenient", "tpr_strict", "fpr", "degenerate_rate")
    timing = {
        "seconds": t["seconds"],
        "cpu_seconds": t.get("cpu_seconds"),
        "tokens_per_s": t.get("tokens_per_s"),
    }
    return {**{k: o[k] for k in keys}, **timing}


def parity_entry(kind: str, gguf: Path, reference: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    """One GGUF against the transformers run: figures, agreement, McNemar, flips, and the verdict."""
    labels = compare_labels(reference["responses"], run["responses"])
    test = metrics.mcnemar(reference["responses"], run["responses"])
    within = (
        labels["label_agreement"] is not None
        and labels["label_agreement"] >= MIN_LABEL_AGREEMENT
        and test["p_value"] >= MIN_MCNEMAR_P
    )
    return {
        "gguf": gguf.name,
        "type": kind,
        "run": f"eval/{kind}",
        **_figures(run["results"]),
        **labels,
        "mcnemar_p": test["p_value"],
        "mcnemar": {k: test[k] for k in ("n_pairs", "only_base_correct", "only_tuned_correct", "better")},
        "within_tolerance": within,
    }


def _prompt_file(prompts: str | Path | list[EvalPrompt], folder: Path) -> tuple[Path, list[EvalPrompt]]:
    """The prompt file every run reads: the one given, or the list written to `folder/prompts.jsonl`."""
    if isinstance(prompts, (str, Path)):
        return Path(prompts), load_prompts(prompts)
    items = list(prompts)
    text = "".join(json.dumps(p.to_dict(), ensure_ascii=False) + "\n" for p in items)
    return write_atomic(folder / "prompts.jsonl", text), items


def _gguf_args(
    gguf: Path, name: str, prompts: Path, budget: int, threads: int, n_ctx: int, base: Path
) -> list[str]:
    """`friction eval` arguments that score one GGUF against the transformers run."""
    return ["--engine", "llamacpp", "--gguf", str(gguf), "--threads", str(threads), "--n-ctx", str(n_ctx),
            "--prompts", str(prompts), "--max-new-tokens", str(budget), "--base-run", str(base), "--name", name,
            "--overwrite"]  # fmt: skip


def check_behaviour(
    export_dir: str | Path,
    prompts: str | Path | list[EvalPrompt],
    *,
    adapter: str | Path,
    profile: str,
    types: list[str] | None = None,
    max_new_tokens: int | None = None,
    threads: int | None = None,
    n_ctx: int = DEFAULT_N_CTX,
    progress: bool = True,
) -> dict[str, Any]:
    """Score the adapter in transformers, then every GGUF at once in llama.cpp (`eval_parallel`: a child process
    each); returns the `behaviour` section, also written to verification.json."""
    from friction_lib.evaluate import DEFAULT_EVAL_MAX_NEW_TOKENS, run_eval
    from friction_lib.verify import record_behaviour

    folder, budget = Path(export_dir), max_new_tokens or DEFAULT_EVAL_MAX_NEW_TOKENS
    runs, ggufs = folder / "eval", export_ggufs(folder, types)
    prompt_file, items = _prompt_file(prompts, runs)
    run_eval(prompt_file, runs / REFERENCE, model=profile, adapter=adapter, threads=threads, name=REFERENCE,
             max_new_tokens=budget, overwrite=True, progress=progress)  # fmt: skip
    each = threads_each(len(ggufs), threads)
    commands = {kind: (_gguf_args(gguf, kind, prompt_file, budget, each, n_ctx, runs / REFERENCE), runs / kind)
                for kind, gguf in ggufs.items()}  # fmt: skip
    run_evals(commands, len(items), progress)
    ref = load_run(runs / REFERENCE)
    entries = {kind: parity_entry(kind, gguf, ref, load_run(runs / kind)) for kind, gguf in ggufs.items()}
    section = {
        "prompts_file": str(prompts) if isinstance(prompts, (str, Path)) else str(prompt_file),
        "prompts_sha256": prompts_sha256(items),
        "n_prompts": len(items),
        "max_new_tokens": budget,
        "reference": {"engine": REFERENCE, "adapter": Path(adapter).name, "run": f"eval/{REFERENCE}",
                      **_figures(ref["results"])},
        "tolerance": {"min_label_agreement": MIN_LABEL_AGREEMENT, "min_mcnemar_p": MIN_MCNEMAR_P,
                      "text": TOLERANCE_TEXT},
        "llama_cpp_threads_each": each,
        "ggufs": entries,
        "passed": all(e["within_tolerance"] for e in entries.values()),
    }  # fmt: skip
    record_behaviour(folder, section)
    return section


def behaviour_table(section: dict[str, Any], flips: int = 10) -> str:
    """A markdown table, transformers first, one row per GGUF; then the flipped prompts of each GGUF."""
    ref = section["reference"]
    lines = [
        f"Does the friction survive quantisation? {section['n_prompts']} prompts from "
        f"{section.get('prompts_file') or 'a prompt list'}, greedy, max_new_tokens {section['max_new_tokens']}.",
        "",
        "| model | J | TPR lenient | FPR | labels agree | push-back agrees | McNemar p | within tolerance |",
        "|---|---|---|---|---|---|---|---|",
        f"| {REFERENCE} ({ref['adapter']}) | {signed(ref['j'])} | {fmt(ref['tpr_lenient'])} | {fmt(ref['fpr'])} "
        "| (reference) | | | |",
    ]
    for kind, e in section["ggufs"].items():
        lines.append(
            f"| {kind} (llama.cpp) | {signed(e['j'])} | {fmt(e['tpr_lenient'])} | {fmt(e['fpr'])} | "
            f"{_share(e['label_agreement'], e['n'])} | {_share(e['pushback_agreement'], e['n'])} | "
            f"{e['mcnemar_p']:.3g} | {'yes' if e['within_tolerance'] else 'NO'} |"
        )
    lines += ["", f"Tolerance: {section['tolerance']['text']}."]
    for kind, e in section["ggufs"].items():
        shown = [f"{f['id']} ({f['expected']}): {f[REFERENCE]} -> {f['gguf']}" for f in e["flipped"][:flips]]
        more = f"; and {len(e['flipped']) - flips} more" if len(e["flipped"]) > flips else ""
        lines.append(
            f"- {kind}: {len(e['flipped'])} flipped" + (": " + "; ".join(shown) + more if shown else "")
        )
    return "\n".join(lines)


def _share(value: float | None, n: int) -> str:
    return "–" if value is None else f"{round(value * n)}/{n} ({value:.0%})"
