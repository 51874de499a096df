"""The optional LLM judge of an eval run: a different model behind an OpenAI-compatible endpoint labels every
answer too, and the run reports its agreement with the rules (`classify.judge_answers` asks it).

A judge that is down or silent is skipped with a note (the rule-based results are the run); a judge that is the
model under test, or its base, is refused before anything is generated.
"""

from __future__ import annotations

import sys
from typing import Any

from friction_lib import metrics
from friction_lib.classify import judge_answers, same_model
from friction_lib.errors import FrictionError


def connect_judge(
    judge_url: str, judge_model: str | None, model_under_test: str, timeout: float
) -> tuple[Any, str | None]:
    """(engine, None) when the judge answers; (None, message) when it is down. Same model -> error."""
    from friction_lib.engines import OpenAIEngine

    try:  # it lists its models now: fail here, not after minutes of generation
        judge = OpenAIEngine(
            judge_url, model=judge_model, timeout=timeout, max_retries=1, concurrency=2, check_model=True
        )
    except FrictionError as exc:
        return None, f"LLM judge skipped: {exc}"
    if same_model(judge.model_name, model_under_test):
        raise FrictionError(
            f"The judge ({judge.model_name}) is the model under test ({model_under_test}) or its base. "
            "A model must not grade itself: serve a different model as judge, or pass --judge-model NAME."
        )
    return judge, None


def judge_summary(rows: list[dict[str, Any]], judge_name: str) -> dict[str, Any]:
    """The judge's verdicts against the rules' labels: parsed, agreement, and the scorecard by its labels."""
    parsed = [r for r in rows if r.get("judge_label")]
    agree = sum(r["judge_label"] == r["label"] for r in parsed)
    agree_binary = sum(
        metrics.is_pushback(r["judge_label"]) == metrics.is_pushback(r["label"]) for r in parsed
    )
    return {
        "model": judge_name,
        "n": len(rows),
        "parsed": len(parsed),
        "unparseable": len(rows) - len(parsed),
        "agreement_with_rules": agree / len(parsed) if parsed else None,
        "agreement_with_rules_binary": agree_binary / len(parsed) if parsed else None,
        "scores_on_parsed": metrics.score([{**r, "label": r["judge_label"]} for r in parsed])
        if parsed
        else None,
    }


def apply_judge(judge: Any, rows: list[dict[str, Any]], progress: bool) -> dict[str, Any]:
    """Label every row with the judge (judge_label, judge_raw); returns results["judge"]. A judge that fails
    midway is recorded as an error: the rule-based results stand."""
    try:
        verdicts = judge_answers([(r["prompt"], r["answer"]) for r in rows], judge, progress=progress)
    except FrictionError as exc:
        print(f"friction eval: LLM judge failed: {exc}\nThe rule-based results are written.", file=sys.stderr)
        return {"error": f"LLM judge failed: {exc}"}
    for row, (label, raw) in zip(rows, verdicts, strict=True):
        row["judge_label"], row["judge_raw"] = label, raw
    return judge_summary(rows, judge.model_name)
