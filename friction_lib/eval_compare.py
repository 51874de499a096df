"""`friction eval compare`: runs side by side, McNemar of each against the first, and the efficacy target.

Runs need not cover the same prompts or categories: McNemar pairs the prompts both answered (the table says
how many), and a category one run lacks shows "–".
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from friction_lib import metrics
from friction_lib.errors import FrictionError
from friction_lib.eval_files import load_run
from friction_lib.eval_report import better_text, fmt, fmt_ci

EFFICACY_MAX_FPR_RISE = 0.15
EFFICACY_ALPHA = 0.05


def compare_runs(run_dirs: list[str | Path]) -> list[dict[str, Any]]:
    """Load runs; McNemar of each run against the first one (same prompt ids) is added."""
    if len(run_dirs) < 2:
        raise FrictionError("Compare needs at least two runs: friction eval compare RUN_A RUN_B [...]")
    runs = [load_run(d) for d in run_dirs]
    hashes = {(r["results"].get("classifier") or {}).get("lexicon_sha256") for r in runs}
    if len(hashes) > 1:
        print(
            "friction eval compare: these runs were labelled with different lexicons; relabel them with "
            "evaluate.relabel_run(DIR) so the figures are comparable.",
            file=sys.stderr,
        )
    names = [r["results"]["name"] for r in runs]
    for i, r in enumerate(runs):
        if names.count(r["results"]["name"]) > 1:
            r["results"]["name"] = f"{r['results']['name']} ({Path(r['dir']).name})"
        r["vs_first"] = (
            None
            if i == 0
            else {
                "lenient": metrics.mcnemar(runs[0]["responses"], r["responses"]),
                "strict": metrics.mcnemar(runs[0]["responses"], r["responses"], strict=True),
            }
        )
    return runs


_COMPARE_ROWS = (
    ("j", "J (lenient)"),
    ("j_strict", "J strict"),
    ("tpr_strict", "TPR strict"),
    ("tpr_lenient", "TPR lenient"),
    ("fpr", "FPR"),
    ("f1", "F1"),
    ("f1_strict", "F1 strict"),
    ("degenerate_rate", "degenerate"),
)


def compare_table(runs: list[dict[str, Any]]) -> str:
    """A markdown table: figures down, runs across; per-category J; McNemar against the first run."""
    results = [r["results"] for r in runs]
    head = "| figure | " + " | ".join(res["name"] for res in results) + " |"
    lines = [head, "|---|" + "---|" * len(results)]
    for key, label in _COMPARE_ROWS:
        cells = []
        for res in results:
            s = res["overall"]
            cells.append(fmt_ci(s, key) if key in s["ci95"] else fmt(s[key]))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for cat in dict.fromkeys(c for res in results for c in res["by_category"]):
        cells = [fmt(res["by_category"][cat]["j"]) if cat in res["by_category"] else "–" for res in results]
        lines.append(f"| J {cat} | " + " | ".join(cells) + " |")
    for strictness in ("lenient", "strict"):
        cells = ["(reference)"]
        for r in runs[1:]:
            m = r["vs_first"][strictness]
            cells.append(
                f"p = {m['p_value']:.3g} ({m['only_base_correct']}↔{m['only_tuned_correct']}, {better_text(m)}; "
                f"{m['n_pairs']} paired)"
            )
        lines.append(f"| McNemar vs first, {strictness} | " + " | ".join(cells) + " |")
    cells = [
        f"{res['timing']['seconds']:.0f} s, {fmt(res['timing']['tokens_per_s'], 1)} tok/s" for res in results
    ]
    lines.append("| generation time | " + " | ".join(cells) + " |")
    lines.append("| max_new_tokens | " + " | ".join(str(res["max_new_tokens"]) for res in results) + " |")
    return "\n".join(lines)


def efficacy(base: dict[str, Any], prompt_only: dict[str, Any], tuned: dict[str, Any]) -> dict[str, Any]:
    """The issue's efficacy target, checked on three loaded runs (base, prompt-only, fine-tuned)."""
    b, p, t = (r["results"]["overall"] for r in (base, prompt_only, tuned))
    test = metrics.mcnemar(base["responses"], tuned["responses"])
    test_strict = metrics.mcnemar(base["responses"], tuned["responses"], strict=True)
    fpr_rise = _difference(t["fpr"], b["fpr"])  # undefined without controls: the check then fails
    checks = {
        "J above base": _above(t["j"], b["j"]),
        "J above prompt-only": _above(t["j"], p["j"]),
        f"McNemar vs base p < {EFFICACY_ALPHA}, tuned better": test["p_value"] < EFFICACY_ALPHA
        and test["better"] == "tuned",
        f"FPR rise over base <= {EFFICACY_MAX_FPR_RISE}": fpr_rise is not None
        and fpr_rise <= EFFICACY_MAX_FPR_RISE + 1e-12,
    }
    return {
        "checks": checks,
        "met": all(checks.values()),
        "j": {"base": b["j"], "prompt_only": p["j"], "tuned": t["j"]},
        "j_strict": {"base": b["j_strict"], "prompt_only": p["j_strict"], "tuned": t["j_strict"]},
        "fpr_rise": fpr_rise,
        "mcnemar": test,
        "mcnemar_strict": test_strict,
    }


def _difference(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _above(a: float | None, b: float | None) -> bool:
    """a > b, and False where either is undefined (a run without targets or controls)."""
    return a is not None and b is not None and a > b
