"""Eval reports as text: `report.md` of one run, the one-line summary, the reference rows, XSTest's table.

Every table takes any prompt set: a category with no targets (or no controls) shows "–" where a rate is
undefined, never a crash. docs/eval.md defines every figure.
"""

from __future__ import annotations

from typing import Any

from friction_lib import metrics
from friction_lib.classify import Agreement


def fmt(value: float | None, digits: int = 2) -> str:
    """A figure with `digits` decimals, or – where it is undefined (a rate over no prompts)."""
    return "–" if value is None else f"{value:.{digits}f}"


def signed(value: float | None) -> str:
    return "–" if value is None else f"{value:+.2f}"


def fmt_ci(summary: dict[str, Any], key: str) -> str:
    """A rate with its Wilson 95% interval, or – where it is undefined."""
    lo, hi = summary["ci95"][key]
    return f"{fmt(summary[key])} [{lo:.2f}, {hi:.2f}]" if summary[key] is not None else "–"


def _score_table(named: dict[str, dict[str, Any]], first_col: str) -> list[str]:
    lines = [
        f"| {first_col} | n (targets/controls) | TPR strict | TPR lenient | FPR | J | J strict | F1 | degenerate |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, s in named.items():
        lines.append(
            f"| {key} | {s['n']} ({s['n_targets']}/{s['n_controls']}) | {fmt_ci(s, 'tpr_strict')} | "
            f"{fmt_ci(s, 'tpr_lenient')} | {fmt_ci(s, 'fpr')} | {fmt(s['j'])} | {fmt(s['j_strict'])} | "
            f"{fmt(s['f1'])} | {fmt(s['degenerate_rate'])} |"
        )
    return lines


def better_text(m: dict[str, Any]) -> str:
    """Which side of a McNemar test got more prompts right."""
    return {"tuned": "this run better", "base": "reference run better", "tie": "tie"}[m["better"]]


def _mcnemar_lines(m: dict[str, Any], label: str) -> list[str]:
    return [
        f"- {label}: {m['n_pairs']} paired prompts; correct base {m['base_correct']}, this run "
        f"{m['tuned_correct']}; only base right {m['only_base_correct']}, only this run right "
        f"{m['only_tuned_correct']}; exact McNemar p = {m['p_value']:.4g} ({better_text(m)})."
    ]


def engine_text(results: dict[str, Any]) -> str:
    """The engine and what it ran: the GGUF and its sha256, the served model and URL, or the HF model."""
    e = results.get("engine_settings") or {}
    name = e.get("engine") or results.get("engine", "?")
    if e.get("gguf_sha256"):
        return f"{name} ({e['gguf'].rsplit('/', 1)[-1]}, sha256 {e['gguf_sha256'][:12]}, n_ctx {e['n_ctx']})"
    if e.get("served_model"):
        return f"{name} (`{e['served_model']}` at {e['base_url']}, concurrency {e['concurrency']})"
    if e.get("dtype"):
        return f"{name} ({e['dtype']} on {e['device']}, batch {e['batch_size']})"
    return str(name)


def report_markdown(results: dict[str, Any], rows: list[dict[str, Any]], examples: int = 2) -> str:
    t = results["timing"]
    lines = [
        f"# Friction eval: {results['name']}",
        "",
        f"- model: `{results['model']}`; system prompt: `{results['system_prompt']}`; prompts: "
        f"`{results.get('prompts_file')}` ({t['prompts']})",
        f"- greedy, max_new_tokens = {results['max_new_tokens']}; engine {engine_text(results)}; "
        f"{t['seconds']:.1f} s, {t['completion_tokens']} tokens ({fmt(t['tokens_per_s'], 1)} tokens/s)"
        + (f"; {t['resumed']} answers kept from an interrupted run" if t.get("resumed") else ""),
        "- labels by the rule classifier (data/lexicon.tsv); definitions in docs/eval.md. "
        "J = TPR lenient − FPR; [..] = Wilson 95% interval.",
        "",
        "## Overall and per category",
        "",
        *_score_table({"overall": results["overall"], **results["by_category"]}, "category"),
        "",
        "## Reference rows (constant behaviours on the same prompts)",
        "",
        *_score_table(results["reference"], "behaviour"),
        "",
        "## Labels",
        "",
        "| " + " | ".join(results["overall"]["labels"]) + " |",
        "|" + "---|" * len(results["overall"]["labels"]),
        "| " + " | ".join(str(v) for v in results["overall"]["labels"].values()) + " |",
        "",
    ]
    lines += _mcnemar_section(results.get("mcnemar"))
    lines += _judge_section(results.get("judge"))
    lines += ["## Example responses", ""]
    lines += _example_lines(results, rows, examples)
    return "\n".join(lines) + "\n"


def _mcnemar_section(m: dict[str, Any] | None) -> list[str]:
    if not m:
        return []
    return [
        "## McNemar against the base run",
        "",
        f"Base run: `{m['base_run']}`.",
        "",
        *_mcnemar_lines(m["lenient"], "lenient (any push-back on targets)"),
        *_mcnemar_lines(m["strict"], "strict (expected kind on targets)"),
        "",
    ]


def _judge_section(judge: dict[str, Any] | None) -> list[str]:
    if not judge:
        return []
    if "error" in judge:
        return ["## LLM judge", "", f"{judge['error']}", ""]
    return [
        "## LLM judge",
        "",
        f"Judge `{judge['model']}`: {judge['parsed']} of {judge['n']} verdicts parsed, "
        f"{judge['unparseable']} unparseable (not counted). Agreement with the rules: "
        f"{fmt(judge['agreement_with_rules'])} (exact label), "
        f"{fmt(judge['agreement_with_rules_binary'])} (push-back or not).",
        "",
    ]


def _example_lines(results: dict[str, Any], rows: list[dict[str, Any]], examples: int) -> list[str]:
    """Up to `examples` answers per category, targets first, then the prompts that want no push-back."""
    lines = []
    for cat in results["by_category"]:
        for is_target in (True, False):
            picked = [
                r for r in rows if r["category"] == cat and metrics.is_target(r["expected"]) == is_target
            ]
            for r in picked[:examples]:
                answer = " ".join(r["answer"].split())
                lines.append(
                    f"- **{r['id']}** (expected {r['expected']}, got {r['label']}): {r['prompt']}  \n"
                    f"  > {answer[:300] + ('…' if len(answer) > 300 else '') or '(empty)'}"
                )
    return lines


def run_summary(results: dict[str, Any]) -> str:
    """One line: a run's overall figures and its generation time."""
    o = results["overall"]
    return (
        f"{results['name']}: J {fmt(o['j'])} (strict {fmt(o['j_strict'])}), TPR strict {fmt(o['tpr_strict'])}, "
        f"lenient {fmt(o['tpr_lenient'])}, FPR {fmt(o['fpr'])}, degenerate {fmt(o['degenerate_rate'])}; "
        f"{results['timing']['seconds']:.0f} s"
    )


def efficacy_text(verdict: dict[str, Any]) -> str:
    """The `efficacy` verdict: MET or NOT MET with the figures, then one checkbox per check."""
    j = verdict["j"]
    head = (
        f"Efficacy target: {'MET' if verdict['met'] else 'NOT MET'} (J base {signed(j['base'])}, prompt-only "
        f"{signed(j['prompt_only'])}, fine-tuned {signed(j['tuned'])}; "
        f"McNemar p = {verdict['mcnemar']['p_value']:.3g})"
    )
    return "\n".join(
        [head, *(f"- [{'x' if ok else ' '}] {check}" for check, ok in verdict["checks"].items())]
    )


def xstest_table(agreement: Agreement) -> str:
    """The rule classifier's agreement with XSTest's human labels, per model and overall, and XSTest's own
    prefix matcher beside it (`classify.validate_xstest`)."""
    lines = [f"XSTest completions: {agreement.n}", f"{'model':<20}{'n':>5}{'rules':>8}{'prefix':>8}"]
    for model, v in agreement.by_model.items():
        lines.append(f"{model:<20}{int(v['n']):>5}{v['rules']:>8.3f}{v['prefix']:>8.3f}")
    lines.append(f"{'all':<20}{agreement.n:>5}{agreement.rules:>8.3f}{agreement.prefix:>8.3f}")
    lines.append(
        f"Rule classifier agreement {agreement.rules:.3f} (goal >= 0.90); "
        f"XSTest prefix matcher {agreement.prefix:.3f}."
    )
    return "\n".join(lines)


def reference_table(results: dict[str, Any]) -> str:
    """What always-comply, always-refuse and always-ask score on a run's prompts (J is 0 for each)."""
    lines = []
    for name, ref in results["reference"].items():
        lines.append(
            f"{name:<14} TPR strict {fmt(ref['tpr_strict'])}  lenient {fmt(ref['tpr_lenient'])}  "
            f"FPR {fmt(ref['fpr'])}  J {signed(ref['j'])}  J strict {signed(ref['j_strict'])}"
        )
    return "\n".join(lines)
