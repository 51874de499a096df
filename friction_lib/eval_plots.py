"""Eval plots: a run's `by_category.png` and `tpr_fpr.png`; a comparison's `compare_by_category.png` and
`compare_tpr_fpr.png`.

A rate over no prompts (a category with no targets, or no controls) is undefined: it is drawn as no bar with
"n/a" under it, never as 0. A category that one run lacks has no bar for that run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

NAN = float("nan")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _value(summary: dict[str, Any] | None, key: str) -> float:
    """A figure, or NaN (no bar) when it is undefined or the group is missing."""
    value = None if summary is None else summary[key]
    return NAN if value is None else float(value)


def _err(summary: dict[str, Any] | None, key: str) -> tuple[float, float]:
    """The Wilson interval as (below, above) the value; (0, 0) where the value is undefined."""
    if summary is None or summary[key] is None:
        return (0.0, 0.0)
    lo, hi = summary["ci95"][key]
    return (max(0.0, summary[key] - lo), max(0.0, hi - summary[key]))


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def _mark_undefined(ax: Any, xs: list[float], values: list[float]) -> None:
    for x, value in zip(xs, values, strict=True):
        if value != value:  # NaN
            ax.text(x, 0.01, "n/a", ha="center", va="bottom", fontsize=6, color="grey", rotation=90)


def _bars_by_category(results: dict[str, Any], path: Path) -> Path:
    groups = {"overall": results["overall"], **results["by_category"]}
    names = list(groups)
    keys = [("tpr_strict", "TPR strict"), ("tpr_lenient", "TPR lenient"), ("fpr", "FPR (controls)")]
    fig, ax = _pyplot().subplots(figsize=(1.6 * len(names) + 2, 4))
    width = 0.8 / len(keys)
    for k, (key, label) in enumerate(keys):
        xs = [i + (k - 1) * width for i in range(len(names))]
        values = [_value(groups[n], key) for n in names]
        errs = list(zip(*[_err(groups[n], key) for n in names], strict=True))
        ax.bar(xs, values, width, label=label, yerr=errs, capsize=3)
        _mark_undefined(ax, xs, values)
    ax.set_xticks(range(len(names)), [n.replace("_", " ") for n in names])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("share of prompts")
    ax.set_title(f"{results['name']}: push-back per category (Wilson 95%)")
    ax.legend(loc="upper right", fontsize=8)
    return _save(fig, path)


def _roc_axes(title: str, diagonal: str) -> tuple[Any, Any]:
    fig, ax = _pyplot().subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], "--", color="grey", label=diagonal)
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("FPR: push-back on controls")
    ax.set_ylabel("TPR lenient: push-back on targets")
    ax.set_title(title)
    return fig, ax


def _tpr_fpr(results: dict[str, Any], path: Path) -> Path:
    fig, ax = _roc_axes(f"{results['name']}: TPR vs FPR", "J = 0 (no skill)")
    for ref_name, ref in results["reference"].items():
        if ref["fpr"] is None or ref["tpr_lenient"] is None:
            continue
        ax.scatter([ref["fpr"]], [ref["tpr_lenient"]], marker="x", color="grey")
        ax.annotate(
            ref_name,
            (ref["fpr"], ref["tpr_lenient"]),
            fontsize=7,
            color="grey",
            xytext=(4, -10),
            textcoords="offset points",
        )
    groups = {"overall": results["overall"], **results["by_category"]}
    for n, s in groups.items():
        if s["fpr"] is None or s["tpr_lenient"] is None:
            continue  # a group without targets or controls has no point here
        ax.scatter([s["fpr"]], [s["tpr_lenient"]], s=60 if n == "overall" else 25)
        ax.annotate(
            n.replace("_", " "),
            (s["fpr"], s["tpr_lenient"]),
            fontsize=8,
            xytext=(4, 4),
            textcoords="offset points",
        )
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def plot_run(results: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """`by_category.png` (TPR strict/lenient and FPR per category) and `tpr_fpr.png`."""
    out = Path(out_dir)
    return [_bars_by_category(results, out / "by_category.png"), _tpr_fpr(results, out / "tpr_fpr.png")]


def _compare_bars(results: list[dict[str, Any]], path: Path) -> Path:
    cats = ["overall", *dict.fromkeys(c for res in results for c in res["by_category"])]
    width = 0.8 / len(results)
    fig, axes = _pyplot().subplots(1, 2, figsize=(2.2 * len(cats) + 3, 4.2), sharey=False)
    for ax, (key, title) in zip(
        axes, (("j", "J = TPR lenient − FPR"), ("fpr", "FPR on controls")), strict=True
    ):
        for k, res in enumerate(results):
            groups = {"overall": res["overall"], **res["by_category"]}
            xs = [i + (k - (len(results) - 1) / 2) * width for i in range(len(cats))]
            values = [_value(groups.get(c), key) for c in cats]
            ax.bar(xs, values, width, label=res["name"])
            _mark_undefined(ax, xs, values)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xticks(range(len(cats)), [c.replace("_", "\n") for c in cats], fontsize=8)
        ax.set_title(title)
        ax.set_ylim(-1.05 if key == "j" else 0, 1.05)
    axes[0].legend(fontsize=8)
    return _save(fig, path)


def _compare_points(results: list[dict[str, Any]], path: Path) -> Path:
    fig, ax = _roc_axes("Overall TPR vs FPR (Wilson 95%)", "J = 0 (constant behaviours)")
    for res in results:
        s = res["overall"]
        if s["fpr"] is None or s["tpr_lenient"] is None:
            continue  # a run without targets or without controls has no point here
        ax.errorbar(
            [s["fpr"]],
            [s["tpr_lenient"]],
            yerr=[[v] for v in _err(s, "tpr_lenient")],
            xerr=[[v] for v in _err(s, "fpr")],
            fmt="o",
            capsize=3,
            label=f"{res['name']} (J {s['j']:.2f})",
        )
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def plot_compare(runs: list[dict[str, Any]], out_dir: str | Path) -> list[Path]:
    """`compare_by_category.png` (J and FPR per category, one bar per run) and `compare_tpr_fpr.png`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = [r["results"] for r in runs]
    return [
        _compare_bars(results, out / "compare_by_category.png"),
        _compare_points(results, out / "compare_tpr_fpr.png"),
    ]
