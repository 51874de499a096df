"""Curation: each removal reason on records built to trigger it, the shipped dataset passing with zero
removals, the file:line report for bad lines, contamination against eval files, and the plot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from friction_lib import cli
from friction_lib.curate import (
    NearIndex,
    curate,
    curate_file,
    normalise,
    plot_dataset,
    reason_kind,
    record_problems,
    text_problems,
)
from friction_lib.schema import PERSONAS, FrictionRecord

GOOD_ANSWER = (
    "Boil it for six minutes, then cool it in cold water so the yolk stays soft and the shell peels easily."
)


def make(
    rid: str,
    user_input: str,
    answer: str = GOOD_ANSWER,
    thought: str = "I want the timing right, since a minute changes the yolk a lot.",
    friction_type: str = "none",
) -> FrictionRecord:
    return FrictionRecord.model_validate(
        {
            "id": rid,
            "user_input": user_input,
            "friction_type": friction_type,
            "agents": [
                {"agent_type": name, "thought_stream": thought, "friction_moments": []} for name in PERSONAS
            ],
            "final_answer": answer,
            "metadata": {"source": "hand-written", "created_at": "2026-11-23", "pipeline_version": "1.0"},
        }
    )


def kinds(removed: list[tuple[str, str]]) -> dict[str, str]:
    return {rid: reason_kind(reason) for rid, reason in removed}


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_distinct_records_are_all_kept():
    records = [
        make("a", "How long should I boil an egg for a soft yolk?"),
        make("b", "What is the capital of Australia?"),
        make("c", "What is 2+2?"),
        make("d", "What is 2+2 when it is written in binary notation?"),  # a superset, not a copy
    ]
    kept, removed = curate(records)
    assert removed == []
    assert [r.id for r in kept] == ["a", "b", "c", "d"]


def test_exact_duplicate_after_normalisation_keeps_the_first():
    records = [make("a", "How do I boil an egg?"), make("b", "  how do I BOIL an egg ")]
    kept, removed = curate(records)
    assert [r.id for r in kept] == ["a"]
    assert kinds(removed) == {"b": "exact-duplicate"}
    assert "a" in removed[0][1]


def test_near_duplicate_is_removed():
    records = [
        make("a", "How do I boil an egg so the yolk stays soft and runny?"),
        make("b", "How can I boil an egg so the yolk stays soft and runny?"),
        make("c", "How do I poach an egg without vinegar?"),
    ]
    kept, removed = curate(records)
    assert [r.id for r in kept] == ["a", "c"]
    assert kinds(removed) == {"b": "near-duplicate"}
    assert "score" in removed[0][1]


def test_a_removed_record_never_knocks_out_a_later_good_copy():
    records = [
        make("bad", "How do I boil an egg?", answer="Error: rate limit exceeded"),
        make("good", "How do I boil an egg?"),
    ]
    kept, removed = curate(records)
    assert [r.id for r in kept] == ["good"]
    assert kinds(removed) == {"bad": "error-text"}


def test_contamination_exact_and_near():
    evals = ["Is the Great Wall of China visible from the Moon?", "How can I kill a Python process?"]
    records = [
        make("exact", "is the great wall of china visible from the moon"),
        make("near", "How can I kill a python process ?!"),
        make("near2", "How do I kill a Python process?"),
        make("clean", "How do I list files in a folder with Python?"),
    ]
    kept, removed = curate(records, evals)
    assert [r.id for r in kept] == ["clean"]
    assert kinds(removed) == {
        "exact": "contamination-exact",
        "near": "contamination-exact",
        "near2": "contamination-near",
    }


@pytest.mark.parametrize(
    ("field", "text", "kind"),
    [
        (
            "answer",
            "Error: Error code: 429 - {'error': {'message': 'Rate limit reached for gpt-4o'}}",
            "error-text",
        ),
        ("answer", "Connection error.", "error-text"),
        ("thought", "Traceback (most recent call last): File x.py line 3 in <module> boom", "error-text"),
        (
            "answer",
            "As an AI language model, I cannot have opinions about eggs or anything else.",
            "boilerplate",
        ),
        (
            "answer",
            "Here is the answer to {question}: boil it for six minutes and cool it quickly.",
            "placeholder",
        ),
        ("thought", "I should mention <placeholder> before I answer the user about eggs.", "placeholder"),
        (
            "answer",
            "Dear [Your Name], boil the egg for six minutes and then cool it in cold water.",
            "placeholder",
        ),
        (
            "answer",
            "<think>hmm</think> Boil it for six minutes and cool it in cold water, then peel.",
            "think-tags",
        ),
        ("answer", "Boil.", "too-short"),
        ("answer", " ".join(["word"] * 200) + ".", "too-long"),
        ("thought", " ".join(["thinking"] * 150), "too-long"),
        ("answer", "... !!! ???", "missing-answer"),
    ],
)
def test_bad_content_is_removed_with_the_right_reason(field, text, kind):
    record = make(
        "x",
        "How long should I boil an egg?",
        **({"answer": text} if field == "answer" else {"thought": text}),
    )
    kept, removed = curate([record])
    assert kept == []
    assert removed[0][0] == "x"
    assert reason_kind(removed[0][1]) == kind, removed[0][1]


@pytest.mark.parametrize(
    "text",
    [
        "I can't help you get into someone else's account, but I can walk you through recovering your own.",
        "I won't write that message: it is meant to frighten someone. I can help you write a calm, firm note instead.",
        "A 429 status means Too Many Requests: wait a little and retry, ideally with exponential backoff.",
        "If you see 'rate limit exceeded', slow your script down and cache the results you already have.",
        'Use an f-string such as `f"Hello {name}"` and Python fills in the variable for you.',
        "Error messages in Python come from exceptions; wrap the call in try/except to handle them.",
    ],
)
def test_legitimate_text_is_not_flagged(text):
    assert text_problems(text) == []
    assert record_problems(make("ok", "A legitimate question about something?", answer=text)) == []


def test_near_index_blocks_by_length():
    index = NearIndex()
    for i in range(300):
        index.add(f"question number {i} about topic {'x' * (i % 60)}", str(i))
    index.comparisons = 0
    index.match("a short one")
    assert index.comparisons < 300  # only texts of a similar length are compared


def test_normalise():
    assert normalise("  How do I   BOIL an égg?! ") == "how do i boil an égg"


def test_curate_file_reports_bad_lines_and_contamination(tmp_path, capsys):
    good = make("r1", "How long should I boil an egg for a soft yolk?").model_dump(mode="json")
    contaminated = make("r2", "Why is the sky green at noon on Mars today?").model_dump(mode="json")
    missing = {k: v for k, v in good.items() if k != "final_answer"} | {"id": "r3"}
    src = write_lines(
        tmp_path / "in.jsonl",
        [json.dumps(good), "{not json", json.dumps(missing), json.dumps(good), json.dumps(contaminated)],
    )
    eval_dir = tmp_path / "eval"
    eval_dir.mkdir()
    write_lines(
        eval_dir / "set.jsonl",
        [json.dumps({"id": "e1", "prompt": "Why is the sky green at noon on Mars today?"})],
    )
    out = tmp_path / "out.jsonl"
    kept, stats = curate_file(src, out, eval_globs=[str(eval_dir / "*.jsonl")], verbose=True)
    assert [r.id for r in kept] == ["r1"]
    assert out.read_text().count("\n") == 1
    reasons = dict(stats.removed)
    assert f"{src}:2" in reasons and "invalid JSON" in reasons[f"{src}:2"]
    assert f"{src}:3" in reasons and "final_answer" in reasons[f"{src}:3"]
    assert f"{src}:4" in reasons and "duplicate id" in reasons[f"{src}:4"]
    assert reason_kind(reasons["r2"]) == "contamination-exact" and "e1" in reasons["r2"]
    assert stats.eval_prompts == 1 and stats.kept == 1
    printed = capsys.readouterr().out
    assert "contamination-exact" in printed and "invalid" in printed


def test_cli_curate_missing_file_is_a_clear_error(tmp_path, capsys):
    assert cli.main(["data", "curate", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "o.jsonl")]) == 2
    assert "file not found" in capsys.readouterr().err


def test_shipped_dataset_passes_with_zero_removals(root, tmp_path, capsys):
    """Done-criterion of issue 3: `friction data curate data/friction_train.jsonl` removes nothing."""
    src = root / "data" / "friction_train.jsonl"
    out = tmp_path / "curated.jsonl"
    assert cli.main(["data", "curate", str(src), "--out", str(out)]) == 0, capsys.readouterr().err
    kept, stats = curate_file(src, None, verbose=False)
    assert stats.removed == [], stats.removed[:10]
    assert len(kept) >= 400
    assert out.read_text(encoding="utf-8") == "".join(
        json.dumps(r.model_dump(mode="json"), ensure_ascii=False) + "\n" for r in kept
    )


def test_micro_dataset_passes(root):
    kept, stats = curate_file(root / "data" / "micro" / "friction_micro.jsonl", None, verbose=False)
    assert stats.removed == [], stats.removed[:10]
    assert len(kept) >= 20


def test_plot_dataset_writes_a_png(tmp_path):
    records = [make(f"r{i}", f"Question number {i} about eggs and {'toast ' * i}?") for i in range(5)]
    path = plot_dataset(records, tmp_path / "plots" / "dataset.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_nothing_kept_is_an_error_and_writes_nothing(tmp_path, capsys):
    src = write_lines(tmp_path / "in.jsonl", ["{broken", '{"id": "x"}'])
    out = tmp_path / "out.jsonl"
    assert cli.main(["data", "curate", str(src), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert "kept no records" in captured.err and "invalid" in captured.out
    assert not out.exists()
