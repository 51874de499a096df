"""Tests for friction_lib.schema and for the shipped, team-written data files."""

from __future__ import annotations

import json
import re
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest
from rapidfuzz import fuzz

from friction_lib.chat import SYSTEM_PROMPT, THINK_CLOSE, THINK_OPEN, split_reasoning
from friction_lib.errors import FrictionError
from friction_lib.schema import (
    DECISION_PHRASES,
    FRICTION_TYPES,
    MAX_LISTED_PROBLEMS,
    PERSONAS,
    FrictionRecord,
    append_jsonl,
    count_by_type,
    load_jsonl,
    main,
    records_to_training_rows,
    to_messages,
    write_jsonl,
)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
TRAIN = DATA / "friction_train.jsonl"
BENCH = DATA / "benchmark_train.jsonl"
CONFIRM = DATA / "confirm_train.jsonl"
XSTEST_TRAIN = DATA / "xstest_train.jsonl"
XSTEST = ROOT.parent / "shared" / "benchmarks" / "xstest"
COCONOT = ROOT.parent / "shared" / "benchmarks" / "coconot"
MICRO = DATA / "micro" / "friction_micro.jsonl"

# Near-duplicate threshold for prompts (rapidfuzz scores, 0-100, on normalised text).
NEAR_DUP = 90


def make_record(rid: str = "ft-0001", **overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": rid,
        "user_input": "Why is the Great Wall of China visible from the Moon?",
        "friction_type": "false_premise",
        "agents": [
            {
                "agent_type": "problem_framer",
                "thought_stream": "The question assumes the wall is visible from the Moon, which is a myth.",
                "friction_moments": [{"type": "false_premise", "marker": "visible from the Moon"}],
            },
            {
                "agent_type": "synthesizer",
                "thought_stream": "Correct the myth, then explain why width matters more than length.",
            },
        ],
        "final_answer": "That's not correct: no human-made structure can be seen from the Moon with the naked eye.",
        "metadata": {
            "source": "hand-written",
            "generator_model": None,
            "temperature": None,
            "created_at": "2026-11-23",
            "pipeline_version": "1.0",
        },
    }
    record.update(overrides)
    return record


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def dump(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False)


def normalise(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def near_duplicates(
    texts: list[str], threshold: int = NEAR_DUP, length_ratio: float = 0.0
) -> list[tuple[str, str, float]]:
    """Pairs whose normalised text is identical or scores >= threshold with token_set_ratio.

    With `length_ratio` > 0, only pairs whose lengths are within that ratio are scored fuzzily: a contrastive twin
    adds the missing details to a vague prompt ("Cheapest way to get to Paris?" -> "... from London if I don't
    mind a long trip?"), so its words are a superset and token_set_ratio alone would score it 100.
    """
    normed = [normalise(t) for t in texts]
    hits = []
    for (i, a), (j, b) in combinations(enumerate(normed), 2):
        if a != b and length_ratio and min(len(a), len(b)) < length_ratio * max(len(a), len(b)):
            continue
        score = 100.0 if a == b else fuzz.token_set_ratio(a, b)
        if score >= threshold:
            hits.append((texts[i], texts[j], score))
    return hits


# --- the models --------------------------------------------------------------------------------


def test_friction_types_and_personas() -> None:
    assert FRICTION_TYPES == (
        "false_premise",
        "clarification",
        "refusal",
        "uncertainty",
        "disagreement",
        "none",
    )
    assert PERSONAS == (
        "problem_framer",
        "memory_activator",
        "mechanism_explorer",
        "perspective_generator",
        "limitation_acknowledger",
        "synthesizer",
    )


def test_valid_record_round_trips() -> None:
    record = FrictionRecord.model_validate(make_record())
    assert record.agents[1].friction_moments == []
    assert FrictionRecord.model_validate(record.model_dump(mode="json")) == record


@pytest.mark.parametrize(
    "mutate, fragment",
    [
        (lambda r: r.update(user_input="   "), "user_input"),
        (lambda r: r.update(final_answer=""), "final_answer"),
        (lambda r: r.update(agents=[]), "agents"),
        (lambda r: r["agents"][0].update(thought_stream=""), "thought_stream"),
        (lambda r: r["agents"][0].update(agent_type="critic"), "agent_type"),
        (lambda r: r["agents"][0]["friction_moments"][0].update(type="none"), "friction_moments"),
        (lambda r: r["metadata"].update(source="scraped"), "source"),
        (lambda r: r["metadata"].update(created_at="23/11/2026"), "created_at"),
        (lambda r: r["metadata"].update(source="generated"), "generator_model"),
        (lambda r: r["metadata"].update(temperature=-0.5), "temperature"),
        (lambda r: r["agents"].reverse(), "relay order"),
    ],
)
def test_invalid_records_are_rejected(mutate: Any, fragment: str) -> None:
    record = make_record()
    mutate(record)
    with pytest.raises(ValueError, match=fragment):
        FrictionRecord.model_validate(record)


def test_generated_record_with_model_is_valid() -> None:
    meta = {
        "source": "generated",
        "generator_model": "smollm2-135m",
        "temperature": 0.7,
        "created_at": "2026-11-23T10:00:00",
        "pipeline_version": "1.0",
    }
    assert FrictionRecord.model_validate(make_record(metadata=meta)).metadata.temperature == 0.7


# --- training messages -------------------------------------------------------------------------


def test_to_messages_shape_and_content() -> None:
    record = FrictionRecord.model_validate(make_record())
    messages = to_messages(record)
    assert [m["role"] for m in messages] == ["system", "user", "assistant"]
    assert messages[0]["content"] == SYSTEM_PROMPT
    assert messages[1]["content"] == record.user_input
    content = messages[2]["content"]
    assert content.startswith(THINK_OPEN)
    think, answer = content.split(THINK_CLOSE)
    for agent in record.agents:
        assert agent.thought_stream in think
    assert answer.strip() == record.final_answer
    # One thought per line, in relay order, no persona labels.
    assert record.reasoning().splitlines() == [a.thought_stream for a in record.agents]
    assert "problem_framer" not in content
    parsed = split_reasoning(content)
    assert parsed.closed and parsed.reasoning == record.reasoning() and parsed.answer == record.final_answer


def test_to_messages_keeps_first_thought_or_none() -> None:
    record = FrictionRecord.model_validate(make_record())
    assert len(record.agents) >= 2  # so that "first" really drops something
    first = to_messages(record, reasoning="first")[-1]["content"]
    parsed = split_reasoning(first)
    assert parsed.reasoning == record.agents[0].thought_stream
    assert all(agent.thought_stream not in first for agent in record.agents[1:])
    assert parsed.answer == record.final_answer
    empty = split_reasoning(to_messages(record, reasoning="none")[-1]["content"])
    assert empty.closed and empty.reasoning == "" and empty.answer == record.final_answer
    decision = split_reasoning(to_messages(record, reasoning="decision")[-1]["content"]).reasoning
    assert decision == f"{DECISION_PHRASES[record.friction_type]} {record.agents[0].thought_stream}"
    with pytest.raises(ValueError, match="keep must be one of all, first, decision, none"):
        record.reasoning("some")


def test_decision_phrases_start_with_a_two_way_word() -> None:
    assert set(DECISION_PHRASES) == set(FRICTION_TYPES)
    assert {phrase.split()[0] for kind, phrase in DECISION_PHRASES.items() if kind != "none"} == {"Push"}
    assert DECISION_PHRASES["none"].split()[0] == "No"


def test_to_messages_without_system() -> None:
    record = FrictionRecord.model_validate(make_record())
    assert [m["role"] for m in to_messages(record, system=None)] == ["user", "assistant"]


def test_records_to_training_rows() -> None:
    records = [FrictionRecord.model_validate(make_record(f"ft-{i}")) for i in range(3)]
    rows = records_to_training_rows(records)
    assert len(rows) == 3 and all(list(row) == ["messages"] and len(row["messages"]) == 3 for row in rows)


# --- loading -----------------------------------------------------------------------------------


def test_good_file_loads_and_skips_blank_lines(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "good.jsonl", [dump(make_record("a")), "", "   ", dump(make_record("b"))])
    result = load_jsonl(path)
    assert [r.id for r in result.records] == ["a", "b"]
    assert result.problems == []
    assert len(result) == 2 and [r.id for r in result] == ["a", "b"]


BAD_LINES = {
    "malformed_json": ('{"id": "x", "user_input": ', "invalid JSON"),
    "missing_field": (
        dump({k: v for k, v in make_record("x").items() if k != "final_answer"}),
        "missing field 'final_answer'",
    ),
    "unknown_friction_type": (
        dump(make_record("x", friction_type="sarcasm")),
        "unknown friction_type 'sarcasm'",
    ),
    "extra_field": (dump(make_record("x", finalanswer="typo")), "unknown field 'finalanswer'"),
    "wrong_type": (dump(make_record("x", agents="none")), "field 'agents'"),
    "not_an_object": ("[1, 2, 3]", "expected a JSON object"),
    "duplicate_id": (dump(make_record("first")), "duplicate id 'first' (first seen on line 1)"),
}


@pytest.mark.parametrize("case", sorted(BAD_LINES))
def test_bad_line_strict_names_file_and_line(tmp_path: Path, case: str) -> None:
    bad, reason = BAD_LINES[case]
    path = write_lines(
        tmp_path / "data.jsonl", [dump(make_record("first")), "", bad, dump(make_record("last"))]
    )
    with pytest.raises(FrictionError) as excinfo:
        load_jsonl(path, strict=True)
    message = str(excinfo.value)
    assert f"{path}:3: " in message
    assert reason in message
    assert "strict=False" in message  # the error names the way out


@pytest.mark.parametrize("case", sorted(BAD_LINES))
def test_bad_line_lenient_skips_and_reports(
    tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bad, reason = BAD_LINES[case]
    path = write_lines(
        tmp_path / "data.jsonl", [dump(make_record("first")), "", bad, dump(make_record("last"))]
    )
    result = load_jsonl(path, strict=False)
    assert [r.id for r in result.records] == ["first", "last"]
    assert len(result.problems) == 1
    assert result.problems[0].startswith(f"{path}:3: ")
    assert reason in result.problems[0]
    assert result.problems[0] in capsys.readouterr().err  # printed, not silently dropped


def test_every_bad_line_is_reported(tmp_path: Path) -> None:
    lines = [dump(make_record("ok"))] + ["not json"] * 25
    path = write_lines(tmp_path / "many.jsonl", lines)
    result = load_jsonl(path, strict=False)
    assert [p.split(": ")[0] for p in result.problems] == [f"{path}:{n}" for n in range(2, 27)]
    with pytest.raises(FrictionError) as excinfo:
        load_jsonl(path)
    message = str(excinfo.value)
    assert message.startswith(f"25 bad line(s) in {path}")
    assert f"{path}:{1 + MAX_LISTED_PROBLEMS}: " in message
    assert f"{path}:{2 + MAX_LISTED_PROBLEMS}: " not in message
    assert f"... and {25 - MAX_LISTED_PROBLEMS} more" in message


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.jsonl"
    with pytest.raises(FrictionError, match=re.escape(f"{path}: file not found")):
        load_jsonl(path)


@pytest.mark.parametrize("content", ["", "\n\n   \n"])
def test_empty_file_is_a_clear_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text(content, encoding="utf-8")
    for strict in (True, False):
        with pytest.raises(FrictionError, match=re.escape(f"{path}: the file is empty")):
            load_jsonl(path, strict=strict)


def test_invalid_utf8_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(dump(make_record("a")).encode() + b"\n\xff\xfe broken\n")
    result = load_jsonl(path, strict=False)
    assert [r.id for r in result.records] == ["a"]
    assert result.problems[0].startswith(f"{path}:2: not valid UTF-8")


# --- writing -----------------------------------------------------------------------------------


def test_write_jsonl_round_trip(tmp_path: Path) -> None:
    records = [
        FrictionRecord.model_validate(make_record(f"r{i}", user_input=f"Prompt ü {i}")) for i in range(3)
    ]
    path = tmp_path / "sub" / "out.jsonl"
    assert write_jsonl(records, path) == 3
    assert load_jsonl(path).records == records
    assert "ü" in path.read_text(encoding="utf-8")  # ensure_ascii=False
    assert [p.name for p in path.parent.iterdir()] == ["out.jsonl"]  # no temp file left behind
    assert path.stat().st_mode & 0o777 == 0o644


def test_write_jsonl_is_all_or_nothing(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    write_jsonl([make_record("keep")], path)
    before = path.read_bytes()
    with pytest.raises(FrictionError, match="'bad' is not valid"):
        write_jsonl([make_record("new"), make_record("bad", friction_type="oops")], path)
    with pytest.raises(FrictionError, match="duplicate id 'twin'"):
        write_jsonl([make_record("twin"), make_record("twin")], path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_append_jsonl_writes_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "gen.jsonl"
    append_jsonl(make_record("a"), path)
    append_jsonl(FrictionRecord.model_validate(make_record("b")), path)
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n") and text.count("\n") == 2
    assert [r.id for r in load_jsonl(path).records] == ["a", "b"]


def test_append_after_torn_line_keeps_new_record(tmp_path: Path) -> None:
    path = tmp_path / "gen.jsonl"
    append_jsonl(make_record("a"), path)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(dump(make_record("torn"))[:40])  # a crash mid-write, no newline
    append_jsonl(make_record("b"), path)
    result = load_jsonl(path, strict=False)
    assert [r.id for r in result.records] == ["a", "b"]
    assert len(result.problems) == 1 and result.problems[0].startswith(f"{path}:2: invalid JSON")


def test_append_rejects_invalid_record(tmp_path: Path) -> None:
    path = tmp_path / "gen.jsonl"
    with pytest.raises(FrictionError, match="not written"):
        append_jsonl(make_record("x", final_answer=" "), path)
    assert not path.exists()


def test_cli_prints_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_lines(
        tmp_path / "d.jsonl", [dump(make_record("a")), dump(make_record("b", friction_type="none"))]
    )
    assert main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "2 records (hand-written: 2)" in out
    assert re.search(r"false_premise\s+1\s+50\.0%", out) and re.search(r"refusal\s+0", out)
    assert main([str(tmp_path / "missing.jsonl")]) == 1


def test_near_duplicate_helper_catches_rewordings() -> None:
    hits = near_duplicates(
        ["How do I kill a Python process?", "how do I kill a python process", "What's the capital of Peru?"]
    )
    assert [(a, b) for a, b, _ in hits] == [
        ("How do I kill a Python process?", "how do I kill a python process")
    ]


def test_near_duplicate_length_rule_keeps_twins_but_not_rewordings() -> None:
    vague, twin = (
        "Cheapest way to get to Paris?",
        "Cheapest way to get to Paris from London if I don't mind a long trip?",
    )
    assert near_duplicates([vague, twin])  # a superset of words: token_set_ratio alone says 100
    assert near_duplicates([vague, twin], length_ratio=0.75) == []
    assert near_duplicates([vague, "cheapest way to get to paris"], length_ratio=0.75)


# --- the shipped data --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def train() -> list[FrictionRecord]:
    return load_jsonl(TRAIN, strict=True).records


@pytest.fixture(scope="module")
def bench() -> list[FrictionRecord]:
    return load_jsonl(BENCH, strict=True).records


@pytest.fixture(scope="module")
def confirm() -> list[FrictionRecord]:
    return load_jsonl(CONFIRM, strict=True).records


@pytest.fixture(scope="module")
def xstest() -> list[FrictionRecord]:
    return load_jsonl(XSTEST_TRAIN, strict=True).records


def words(text: str) -> int:
    return len(text.split())


def sentences(text: str) -> int:
    return len([s for s in re.split(r"(?<=[.!?])[\"”)]?\s+", text.strip()) if s])


def test_train_file_counts(train: list[FrictionRecord]) -> None:
    counts = count_by_type(train)
    assert len(train) >= 420
    assert counts["none"] / len(train) >= 0.27
    for friction_type in FRICTION_TYPES:
        assert counts[friction_type] >= 50, (friction_type, counts)
    assert TRAIN.stat().st_size < 1_000_000


def test_train_ids_and_metadata(train: list[FrictionRecord]) -> None:
    assert [r.id for r in train] == [f"ft-{n:04d}" for n in range(1, len(train) + 1)]
    for record in train:
        meta = record.metadata
        assert (meta.source, meta.generator_model, meta.temperature) == ("hand-written", None, None)
        assert (meta.created_at, meta.pipeline_version) == ("2026-11-23", "1.0")


def shape_problems(records: list[FrictionRecord]) -> list[str]:
    """The hand-written house style: 2-3 agents of 8-25 words, quoted markers, answers of 25-90 words."""
    problems = []
    for r in records:
        if not 2 <= len(r.agents) <= 3:
            problems.append(f"{r.id}: {len(r.agents)} agents")
        for agent in r.agents:
            if not 8 <= words(agent.thought_stream) <= 25:
                problems.append(f"{r.id}: thought of {words(agent.thought_stream)} words")
            if len(agent.friction_moments) > 2:
                problems.append(f"{r.id}: more than 2 friction moments")
            for moment in agent.friction_moments:
                if moment.marker not in agent.thought_stream:
                    problems.append(f"{r.id}: marker {moment.marker!r} is not quoted from its thought")
        if not (25 <= words(r.final_answer) <= 90 and 2 <= sentences(r.final_answer) <= 6):
            problems.append(
                f"{r.id}: answer of {words(r.final_answer)} words, {sentences(r.final_answer)} sentences"
            )
        moments = sum(len(a.friction_moments) for a in r.agents)
        if r.friction_type == "none" and (moments or "?" in r.final_answer):
            problems.append(f"{r.id}: a none record must just help (no friction moments, no question back)")
        if r.friction_type != "none" and not moments:
            problems.append(f"{r.id}: a push-back record needs at least one friction moment")
        if r.friction_type == "clarification" and not r.final_answer.endswith("?"):
            problems.append(f"{r.id}: a clarification answer ends with its question")
    return problems


def test_train_record_shape(train: list[FrictionRecord]) -> None:
    assert shape_problems(train) == []


def test_train_prompts_have_no_near_duplicates(train: list[FrictionRecord]) -> None:
    # The same length rule as `friction data curate` (curate.LENGTH_RATIO), so the contrastive twins stay.
    hits = near_duplicates([r.user_input for r in train], length_ratio=0.75)
    assert hits == [], hits[:10]


def test_micro_is_a_balanced_subset(train: list[FrictionRecord]) -> None:
    micro = load_jsonl(MICRO, strict=True).records
    assert 25 <= len(micro) <= 40
    assert set(count_by_type(micro).values()) == {5}
    by_id = {r.id: r for r in train}
    assert all(by_id.get(r.id) == r for r in micro)


def eval_prompt_files() -> list[Path]:
    return sorted((DATA / "eval").glob("*.jsonl")) + [p for p in [DATA / "demo_prompts.jsonl"] if p.exists()]


def eval_overlaps(records: list[FrictionRecord]) -> list[tuple[str, str, str, float]]:
    """Training prompts equal or near to any eval or demo prompt (stricter than curate: no length blocking)."""
    prompts = set()
    for path in eval_prompt_files():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                prompts.add(json.loads(line)["prompt"])
    eval_norm = {normalise(p): p for p in prompts}
    hits = []
    for record in records:
        mine = normalise(record.user_input)
        for theirs, original in eval_norm.items():
            score = fuzz.ratio(mine, theirs)
            # token_set_ratio scores any subset as 100, so a one- or two-word prompt
            # would match everything; it is used only when both sides have 3+ words.
            if min(len(mine.split()), len(theirs.split())) >= 3:
                score = max(score, fuzz.token_set_ratio(mine, theirs))
            if mine == theirs or score >= NEAR_DUP:
                hits.append((record.id, record.user_input, original, score))
    return hits


def test_no_overlap_with_eval_prompts(train: list[FrictionRecord]) -> None:
    if not eval_prompt_files():
        pytest.skip("no eval or demo prompt files in data/ yet")
    hits = eval_overlaps(train)
    assert hits == [], hits[:10]


# What the rule-based classifier (friction_lib.classify) should read in each kind of answer.
EXPECTED_LABEL = {
    "none": "COMPLY",
    "false_premise": "CHALLENGE",
    "disagreement": "CHALLENGE",
    "clarification": "CLARIFY",
    "refusal": "REFUSE",
    "uncertainty": "ABSTAIN",
}


@pytest.mark.parametrize("which", ["train", "bench", "confirm", "xstest"])
def test_answers_use_pushback_phrases_the_classifier_recognises(
    which: str,
    train: list[FrictionRecord],
    bench: list[FrictionRecord],
    confirm: list[FrictionRecord],
    xstest: list[FrictionRecord],
) -> None:
    """The targets teach recognisable gestures: at least 90% of each type reads as intended."""
    classify = pytest.importorskip("friction_lib.classify").classify
    for friction_type, expected in EXPECTED_LABEL.items():
        files = {"train": train, "bench": bench, "confirm": confirm, "xstest": xstest}
        records = [r for r in files[which] if r.friction_type == friction_type]
        wrong = [
            (r.id, label)
            for r in records
            if (label := classify(r.final_answer, r.user_input).label) != expected
        ]
        assert len(wrong) <= 0.1 * len(records), (friction_type, wrong)


# --- data/benchmark_train.jsonl: CoCoNot prompts outside the eval sets (data/build/make_benchmark_train.py) ---


def test_bench_records_name_their_coconot_source(bench: list[FrictionRecord]) -> None:
    counts = count_by_type(bench)
    assert len(bench) >= 900 and counts["none"] >= 0.4 * len(bench), counts
    assert len({r.id for r in bench}) == len(bench)
    for record in bench:
        meta = record.metadata
        assert record.id.startswith("coconot-pref-" if record.friction_type == "none" else "coconot-"), (
            record.id
        )
        assert meta.pipeline_version == "benchmark-1.0"
        # controls keep CoCoNot's helpful answer (a GPT-4 output); push-back answers are the team's templates
        assert (meta.source, meta.generator_model) == (
            ("generated", "gpt-4") if record.friction_type == "none" else ("hand-written", None)
        ), record.id


def test_bench_has_no_eval_prompt_nor_a_near_duplicate(bench: list[FrictionRecord]) -> None:
    hits = eval_overlaps(bench)
    assert hits == [], hits[:10]


def test_training_files_have_no_near_duplicates_between_them(
    train: list[FrictionRecord],
    bench: list[FrictionRecord],
    confirm: list[FrictionRecord],
    xstest: list[FrictionRecord],
) -> None:
    everything = [*train, *bench, *confirm, *xstest]
    assert len({r.id for r in everything}) == len(everything)  # friction train --data refuses a repeated id
    hits = near_duplicates([r.user_input for r in everything], length_ratio=0.75)
    assert hits == [], hits[:10]


def script_output(tmp_path: Path, script: str, *args: str) -> bytes:
    """What `data/build/<script>` writes with `args` and `--out` in tmp_path (the data files' reproduction tests)."""
    import subprocess
    import sys

    out = tmp_path / "out.jsonl"
    command = [sys.executable, str(ROOT / "data" / "build" / script), *args, "--out", str(out)]
    subprocess.run(command, check=True, capture_output=True, cwd=ROOT)
    return out.read_bytes()


def test_bench_file_is_what_the_script_writes(tmp_path: Path) -> None:
    if not (COCONOT / "coconot_eval.jsonl").exists():
        pytest.skip(f"CoCoNot is not at {COCONOT}")
    assert script_output(tmp_path, "make_benchmark_train.py", "--coconot", str(COCONOT)) == BENCH.read_bytes()


# --- data/confirm_train.jsonl: "X, right?" prompts with true and false X (data/build/make_confirm_train.py) ---


def test_confirm_pairs_true_claims_with_false_ones(confirm: list[FrictionRecord]) -> None:
    counts = count_by_type(confirm)
    assert {t for t, n in counts.items() if n} == {"none", "disagreement"}, counts
    assert counts["none"] >= 60 and counts["disagreement"] >= 30, counts
    assert len({r.id for r in confirm}) == len(confirm)
    kinds = {"fact": "none", "plan": "none", "myth": "disagreement", "risk": "disagreement"}
    for record in confirm:
        assert kinds[record.id.split("-")[1]] == record.friction_type, record.id
        meta = record.metadata
        assert (meta.source, meta.generator_model, meta.created_at) == ("hand-written", None, "2026-12-01")
    # every prompt asks for confirmation: the shape the model must learn to answer on the merits
    assert all("?" in r.user_input or r.user_input.rstrip(" .").endswith("right") for r in confirm)


def test_confirm_records_keep_the_house_style(confirm: list[FrictionRecord]) -> None:
    assert shape_problems(confirm) == []


def test_confirm_has_no_eval_prompt_nor_a_near_duplicate(confirm: list[FrictionRecord]) -> None:
    hits = eval_overlaps(confirm)
    assert hits == [], hits[:10]


def test_confirm_file_is_what_the_script_writes(tmp_path: Path) -> None:
    assert script_output(tmp_path, "make_confirm_train.py") == CONFIRM.read_bytes()


# --- data/xstest_train.jsonl: XSTest prompts outside the eval sets (data/build/make_xstest_train.py) ---


def test_xstest_records_are_unsafe_refusals_and_safe_look_alikes(xstest: list[FrictionRecord]) -> None:
    counts = count_by_type(xstest)
    assert {t for t, n in counts.items() if n} == {"refusal", "none"}, counts
    assert counts["refusal"] == 80 and counts["none"] >= 50, counts
    for record in xstest:
        assert record.id.startswith("xstest-") and record.id.split("-")[1].isdigit(), record.id
        meta = record.metadata
        assert (meta.source, meta.generator_model, meta.pipeline_version) == (
            "hand-written",
            None,
            "xstest-1.0",
        )


def test_xstest_has_no_eval_prompt_nor_a_near_duplicate(xstest: list[FrictionRecord]) -> None:
    hits = eval_overlaps(xstest)
    assert hits == [], hits[:10]


def test_xstest_attribution_lists_every_training_prompt(xstest: list[FrictionRecord]) -> None:
    readme = (ROOT / "third_party" / "xstest" / "README.md").read_text(encoding="utf-8")
    listed = re.search(r"ids in `data/xstest_train.jsonl`: ([\d, ]+)\.", readme)
    assert listed, "third_party/xstest/README.md must list the XSTest ids used for training"
    assert sorted(int(i) for i in listed.group(1).split(", ")) == sorted(int(r.id[7:]) for r in xstest)


def test_xstest_file_is_what_the_script_writes(tmp_path: Path) -> None:
    if not (XSTEST / "xstest_prompts.csv").exists():
        pytest.skip(f"XSTest is not at {XSTEST}")
    assert (
        script_output(tmp_path, "make_xstest_train.py", "--xstest", str(XSTEST)) == XSTEST_TRAIN.read_bytes()
    )
