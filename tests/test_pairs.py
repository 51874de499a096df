"""Tests for friction_lib.pairs (`friction data pairs`) and the shipped data/pairs.jsonl."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
from test_schema import COCONOT, DATA, MICRO, eval_overlaps

from friction_lib import cli
from friction_lib.chat import format_target, split_reasoning
from friction_lib.classify import classify
from friction_lib.errors import FrictionError
from friction_lib.pairs import (
    COMPLY_ANSWERS,
    KINDS,
    NEEDLESS_ANSWERS,
    NOTICED,
    PAIR_FIELDS,
    REFUSE_ANSWERS,
    SFT_THINK,
    build_pairs,
    coconot_rejected,
    load_pairs,
    record_pairs,
    to_dpo_row,
)
from friction_lib.schema import load_jsonl, to_messages

PAIRS = DATA / "pairs.jsonl"
TEAM = DATA / "pairs" / "team_pairs.jsonl"
TRAIN_FILES = [DATA / f"{name}_train.jsonl" for name in ("friction", "benchmark", "confirm", "xstest")]
EVAL_PROMPT = json.loads((DATA / "eval" / "quick.jsonl").read_text().splitlines()[0])["prompt"]


def answer_of(side: str) -> str:
    return split_reasoning(side).answer


def team_line(pid: str, prompt: str, chosen: str = "That's not correct: it is not.", **fields: str) -> str:
    row = {
        "id": pid,
        "prompt": prompt,
        "chosen": format_target("The premise is wrong: a myth.", chosen),
        "rejected": format_target("No issue: a plain request.", "Yes, that's right, for three reasons."),
        "kind": "push-back",
        "category": "false_premise",
        "source": "team",
    }
    row.update(fields)
    return json.dumps(row)


def run_pairs(tmp_path: Path, *args: str) -> int:
    """`friction data pairs` on the micro training file, no CoCoNot, output in tmp_path."""
    argv = [
        "data",
        "pairs",
        "--train",
        str(MICRO),
        "--no-coconot",
        "--out",
        str(tmp_path / "out.jsonl"),
        *args,
    ]
    return cli.main(argv)


# --------------------------------------------------------------------------- building


def test_templates_read_as_the_behaviour_they_stand_for():
    for friction_type, answers in COMPLY_ANSWERS.items():
        assert [classify(a).label for a in answers] == ["COMPLY"] * len(answers), friction_type
    assert {classify(a).label for a in REFUSE_ANSWERS} == {"REFUSE"}
    for label, answers in NEEDLESS_ANSWERS.items():
        assert {classify(a).label for a in answers} == {label}


def test_controls_can_be_taught_against_every_needless_push_back():
    controls = [r for r in load_jsonl(DATA / "friction_train.jsonl").records if r.friction_type == "none"]
    labels = Counter()
    for record in controls[:80]:
        (refusal,) = record_pairs(record, "x", think="sft")
        (any_kind,) = record_pairs(record, "x", think="sft", control_rejected="any")
        assert (
            any_kind["chosen"] == refusal["chosen"]
            and classify(answer_of(refusal["rejected"])).label == "REFUSE"
        )
        label = classify(answer_of(any_kind["rejected"])).label
        assert (
            split_reasoning(any_kind["rejected"]).reasoning == SFT_THINK[label]
        )  # the line of that decision
        labels[label] += 1
    assert set(labels) == set(NEEDLESS_ANSWERS) and min(labels.values()) >= 10


def test_each_record_gives_the_pairs_of_its_kind():
    records = {r.id: r for r in load_jsonl(DATA / "friction_train.jsonl").records}
    premise = records["ft-0316"]  # the Great Wall from the Moon
    pairs = record_pairs(premise, "friction_train")
    assert [p["kind"] for p in pairs] == ["push-back", "right-kind"]
    chosen = format_target(
        f"{NOTICED['false_premise']} {premise.agents[0].thought_stream}", premise.final_answer
    )
    assert all(p["chosen"] == chosen and p["category"] == "false_premise" for p in pairs)
    assert classify(answer_of(pairs[0]["rejected"])).label == "COMPLY"
    assert classify(answer_of(pairs[1]["rejected"])).label == "REFUSE"
    refusal = next(r for r in records.values() if r.friction_type == "refusal")
    assert [p["kind"] for p in record_pairs(refusal, "x")] == [
        "push-back"
    ]  # refusing is the right kind there
    control = next(r for r in records.values() if r.friction_type == "none")
    (help_pair,) = record_pairs(control, "friction_train")
    assert (help_pair["kind"], help_pair["source"]) == ("help", "friction_train")
    assert answer_of(help_pair["chosen"]) == control.final_answer
    assert classify(answer_of(help_pair["rejected"])).label == "REFUSE"
    ready = {control.id: format_target("This is harmful: decline.", "I cannot help with that, sorry.")}
    (from_coconot,) = record_pairs(control, "friction_train", ready)
    assert (from_coconot["rejected"], from_coconot["source"]) == (ready[control.id], "coconot-pref")


def test_sft_style_pairs_differ_from_the_noticed_ones_only_in_their_think_lines(tmp_path):
    records = {r.id: r for r in load_jsonl(DATA / "friction_train.jsonl").records}
    premise, control = records["ft-0316"], next(r for r in records.values() if r.friction_type == "none")
    for record in (premise, control):
        noticed, sft = record_pairs(record, "x"), record_pairs(record, "x", think="sft")
        assert [p["id"] for p in sft] == [p["id"] for p in noticed]
        for a, b in zip(noticed, sft, strict=True):
            assert (answer_of(a["chosen"]), answer_of(a["rejected"])) == (
                answer_of(b["chosen"]),
                answer_of(b["rejected"]),
            )
            # The chosen line is the record's first thought, as `reasoning: first` trained it.
            assert split_reasoning(b["chosen"]).reasoning == record.agents[0].thought_stream.strip()
    push_back, right_kind = record_pairs(premise, "x", think="sft")
    assert split_reasoning(push_back["rejected"]).reasoning == SFT_THINK["COMPLY"]
    assert split_reasoning(right_kind["rejected"]).reasoning == SFT_THINK["REFUSE"]
    team = tmp_path / "team.jsonl"
    team.write_text(team_line("t1", "Why do we only use 10% of our brains?") + "\n")
    (kept,) = build_pairs([], [team], think="sft").kept
    assert (
        split_reasoning(kept["rejected"]).reasoning == SFT_THINK["COMPLY"]
    )  # was "No issue: a plain request."
    assert split_reasoning(kept["chosen"]).reasoning == "The premise is wrong: a myth."  # the team's own line
    assert run_pairs(tmp_path, "--think", "sft", "--pairs") == 0  # the micro file's pairs only
    lines = {split_reasoning(p["rejected"]).reasoning for p in load_pairs(tmp_path / "out.jsonl")[0]}
    assert lines <= set(SFT_THINK.values())


def test_a_pair_has_the_conversation_sft_trained_on():
    record = load_jsonl(MICRO).records[0]
    for item in record_pairs(record, "micro"):
        row = to_dpo_row(item)
        assert row["prompt"] == to_messages(record)[:-1]  # the same system prompt and user turn
        for side in ("chosen", "rejected"):
            (turn,) = row[side]
            parsed = split_reasoning(turn["content"])
            assert turn["role"] == "assistant" and parsed.closed and "\n" not in parsed.reasoning
            assert turn["content"] == format_target(parsed.reasoning, parsed.answer)
        assert answer_of(row["chosen"][0]["content"]) == record.final_answer


def test_training_records_near_an_eval_prompt_or_each_other_are_removed(tmp_path):
    rows = [json.loads(line) for line in MICRO.read_text().splitlines()[:3]]
    rows.append({**rows[0], "id": "copy", "user_input": rows[0]["user_input"] + "!"})
    rows.append({**rows[1], "id": "eval", "user_input": EVAL_PROMPT})
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps(row) + "\n" for row in rows))
    stats = build_pairs([train])
    removed = {pid.split(":")[0]: reason.split(":")[0] for pid, reason in stats.removed}
    assert removed == {"copy": "exact-duplicate", "eval": "contamination-exact"}
    assert {p["id"].split(":")[0] for p in stats.kept} == {row["id"] for row in rows[:3]}


def test_missing_coconot_names_the_fix(tmp_path):
    with pytest.raises(FrictionError, match="--no-coconot"):
        coconot_rejected(tmp_path)


# --------------------------------------------------------------------------- bad pair files


def test_bad_pairs_file_gets_file_line_and_a_nonzero_exit(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    same = format_target("No issue: a plain request.", "Paris is the capital of France.")
    bad.write_text(
        "\n".join([
            team_line("a", "Why is Paris the capital of Spain?", chosen="Yes, that's right, for three reasons."),
            team_line("b", "Why is Rome the capital of Peru?", rejected=""),
            team_line("c", "Why is Oslo the capital of Chile?", rejected=same.replace("<think>\n", "")),
            "{not json",
            team_line("d", "Why is Bern the capital of Kenya?", kind="push-harder"),
            team_line("a", "Why is Bonn the capital of Iran?"),
        ])
        + "\n"
    )  # fmt: skip
    assert run_pairs(tmp_path, "--pairs", str(bad)) == 2
    err = capsys.readouterr().err
    assert f"{bad}:1: chosen and rejected give the same answer" in err
    assert f"{bad}:2: rejected is empty" in err
    assert f"{bad}:3: rejected is not one <think> line then an answer" in err
    assert f"{bad}:4: invalid JSON" in err
    assert f"{bad}:5: unknown kind 'push-harder'" in err
    assert f"{bad}:6: duplicate id 'a' (first seen on line 1)" in err
    assert not (tmp_path / "out.jsonl").exists()


def test_eval_prompt_or_duplicate_in_a_pairs_file_gets_file_line(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    lines = [
        team_line("ok", "Why is the Danube the longest river in Asia?"),
        team_line("eval", EVAL_PROMPT),
        team_line("near", EVAL_PROMPT.lower() + " please"),
        team_line("twice", "why is the danube the longest river in asia"),
    ]
    bad.write_text("\n".join(lines) + "\n")
    assert run_pairs(tmp_path, "--pairs", str(bad)) == 2
    err = capsys.readouterr().err
    assert f"{bad}:2: contamination-exact" in err and f"{bad}:3: contamination-near" in err
    assert f"{bad}:4: exact-duplicate: same prompt as ok" in err
    assert f"{bad}:1:" not in err
    bad.write_text(lines[0] + "\n")
    assert run_pairs(tmp_path, "--pairs", str(bad)) == 0
    kept = load_pairs(tmp_path / "out.jsonl")[0]
    assert kept[0]["id"] == "ok" and len(kept) > 30  # the team pair first, then the micro file's pairs


# --------------------------------------------------------------------------- the shipped file


@pytest.fixture(scope="module")
def shipped() -> list[dict]:
    pairs, problems = load_pairs(PAIRS)
    assert problems == []
    return pairs


def test_shipped_pairs_cover_every_kind_and_read_as_intended(shipped):
    assert list(shipped[0])[: len(PAIR_FIELDS)] == list(PAIR_FIELDS)
    kinds = Counter(p["kind"] for p in shipped)
    assert set(kinds) == set(KINDS) and min(kinds.values()) >= 400, kinds
    for item in shipped:
        rejected = classify(answer_of(item["rejected"]), item["prompt"]).label
        assert (rejected == "COMPLY") == (item["kind"] == "push-back"), item["id"]
        if item["source"] != "team":
            assert split_reasoning(item["chosen"]).reasoning.startswith(NOTICED[item["category"]]), item["id"]


def test_shipped_pairs_come_from_training_prompts_or_team_pairs(shipped):
    train = {r.user_input for path in TRAIN_FILES for r in load_jsonl(path).records}
    team, problems = load_pairs(TEAM)
    assert problems == [] and len(team) >= 60
    assert Counter(p["category"] for p in team if p["kind"] == "push-back") == {
        "false_premise": 16,
        "disagreement": 16,
    }
    team_prompts = {p["prompt"] for p in team}
    assert {p["prompt"] for p in shipped} <= train | team_prompts
    assert {p["id"] for p in team} <= {p["id"] for p in shipped}
    # the stricter overlap rule of the training data's own test (no length blocking)
    assert eval_overlaps([SimpleNamespace(id=p["id"], user_input=p["prompt"]) for p in team]) == []


def test_shipped_pairs_are_what_the_command_writes(tmp_path):
    if not (COCONOT / "coconot_pref.jsonl").exists():
        pytest.skip(f"CoCoNot is not at {COCONOT}")
    out = tmp_path / "pairs.jsonl"
    assert cli.main(["data", "pairs", "--coconot", str(COCONOT), "--out", str(out)]) == 0
    assert out.read_bytes() == PAIRS.read_bytes()
