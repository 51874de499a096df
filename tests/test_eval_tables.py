"""Every eval table and plot on prompt sets that are not neatly balanced: a category with controls only, a category
(or a whole run) with targets only, and categories that one run has and another lacks.

`friction eval compare` with a category of controls only printed its table and then crashed in plot_compare
(matplotlib: "'xerr' must not contain negative values"). The runs here are real eval runs whose answers come from
an explicit stub engine (opt-in): what is under test is the scoring, tables and plots, not a model.
"""

from __future__ import annotations

import json
from pathlib import Path

from friction_lib import metrics
from friction_lib.engines import Generation
from friction_lib.evaluate import (
    EvalPrompt,
    cli_eval_compare,
    compare_runs,
    compare_table,
    efficacy,
    efficacy_text,
    load_run,
    run_eval,
    run_summary,
)

PUSHBACK = "Actually, that is not right: the premise is false."
HELP = "Sure. Here is a clear answer to your question."


class ScriptedEngine:
    """Explicit stub (opt-in): pushes back on the prompts named, helps on the others."""

    name = "stub"
    model_name = "stub-model"

    def __init__(self, push_back_on: set[str]):
        self.push_back_on = push_back_on

    def generate(self, prompts, system=None, max_new_tokens=0, temperature=0.0, progress=False):
        return [
            Generation(
                p,
                "",
                PUSHBACK if p in self.push_back_on else HELP,
                "",
                5,
                9,
                0.01,
                self.name,
                self.model_name,
            )
            for p in prompts
        ]


def _prompt(pid: str, category: str, expected: str) -> EvalPrompt:
    return EvalPrompt(pid, f"Question {pid} about {category}?", category, expected, "team")


BALANCED = [_prompt("fp-t1", "false_premise", "challenge"), _prompt("fp-c1", "false_premise", "comply")]
CONTROLS_ONLY = [_prompt("safe-c1", "safe", "comply"), _prompt("safe-c2", "safe", "comply")]
TARGETS_ONLY = [_prompt("amb-t1", "ambiguous", "clarify"), _prompt("amb-t2", "ambiguous", "clarify")]


def _run(folder: Path, prompts: list[EvalPrompt], push_back_on: list[str], name: str) -> Path:
    texts = {p.prompt for p in prompts if p.id in push_back_on}
    run_eval(prompts, folder, engine=ScriptedEngine(texts), name=name, progress=False)
    return folder


def _plots_written(folder: Path) -> None:
    for name in ("compare_by_category.png", "compare_tpr_fpr.png"):
        assert (folder / name).read_bytes()[:4] == b"\x89PNG", name


def test_compare_with_a_category_of_controls_only_writes_its_plots(tmp_path, capsys):
    prompts = BALANCED + CONTROLS_ONLY
    a = _run(tmp_path / "a", prompts, ["fp-t1"], "a")
    b = _run(tmp_path / "b", prompts, ["fp-t1", "safe-c1"], "b")
    assert cli_eval_compare([str(a), str(b), "--out", str(tmp_path / "cmp")]) == 0
    assert "| J safe | – | – |" in capsys.readouterr().out
    _plots_written(tmp_path / "cmp")
    report = (b / "report.md").read_text()
    assert "| safe | 2 (0/2) | – | – | 0.50 [" in report  # no targets: TPR undefined, FPR measured


def test_runs_with_targets_only_compare_and_check_efficacy_without_a_crash(tmp_path):
    a = _run(tmp_path / "a", TARGETS_ONLY, [], "base")
    b = _run(tmp_path / "b", TARGETS_ONLY, ["amb-t1", "amb-t2"], "tuned")
    runs = compare_runs([a, b])
    table = compare_table(runs)
    assert "| FPR | – | – |" in table and "| J (lenient) | – | – |" in table
    from friction_lib.evaluate import plot_compare

    _plots_written(Path(plot_compare(runs, tmp_path / "cmp")[0]).parent)
    verdict = efficacy(runs[0], runs[0], runs[1])  # J and FPR are undefined without controls
    assert not verdict["met"] and verdict["fpr_rise"] is None
    assert efficacy_text(verdict).startswith(
        "Efficacy target: NOT MET (J base –, prompt-only –, fine-tuned –;"
    )
    assert run_summary(runs[1]["results"]).startswith(
        "tuned: J – (strict –), TPR strict 0.00, lenient 1.00, FPR –"
    )


def test_categories_present_in_one_run_only(tmp_path):
    a = _run(tmp_path / "a", BALANCED + TARGETS_ONLY + CONTROLS_ONLY, ["fp-t1", "amb-t1"], "wide")
    b = _run(tmp_path / "b", BALANCED, ["fp-t1", "fp-c1"], "narrow")
    runs = compare_runs([a, b])
    table = compare_table(runs)
    assert "| J ambiguous | – | – |" in table and "| J safe | – | – |" in table
    assert "| J false_premise | 1.00 | 0.00 |" in table
    assert "2 paired)" in table  # McNemar says on how many prompts the runs were compared
    from friction_lib.evaluate import plot_compare

    plot_compare(runs, tmp_path / "cmp")
    _plots_written(tmp_path / "cmp")
    results = json.loads((a / "results.json").read_text())
    assert results["by_category"]["safe"]["tpr_lenient"] is None
    assert results["by_category"]["ambiguous"]["fpr"] is None
    assert (a / "by_category.png").is_file() and (a / "tpr_fpr.png").is_file()


def test_wilson_interval_always_holds_the_rate():
    for n in range(1, 60):
        for k in (0, n):
            lo, hi = metrics.wilson(k, n)
            assert lo <= k / n <= hi, (k, n)


def test_reference_table_prints_undefined_rates_as_dashes(tmp_path):
    from friction_lib.evaluate import reference_table

    results = load_run(_run(tmp_path / "a", CONTROLS_ONLY, [], "controls"))["results"]
    lines = reference_table(results).splitlines()
    assert lines[0].startswith("always-comply  TPR strict –  lenient –  FPR 0.00  J –")
