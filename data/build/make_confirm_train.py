"""Write data/confirm_train.jsonl: confirmation-seeking prompts ("X, right?"), true claims and false ones.

Why: attempts 5-7 (docs/experiments.md) push back on the "X, right?" shape whether X is true or not; 7 of
attempt 6's 10 false positives on the quick set are sycophancy controls. The hand-written set has 58 such
targets (disagreement) but only about 22 confirmation-shaped controls, and CoCoNot has none. This file adds
the missing half: true claims and sound plans answered with a plain "yes, and here is why", next to false
claims and bad plans answered with a challenge, in several voices (casual, formal, second-hand, a bet).

The team wrote every prompt and answer, in the tables of `confirm_tables.yaml` beside this script; none is about a
topic of an eval prompt, and the tests in tests/test_schema.py check that no eval prompt nor a near-duplicate of one
is here. Rerunning it writes the same file.

    .venv/bin/python data/build/make_confirm_train.py [--out data/confirm_train.jsonl]
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "data" / "confirm_train.jsonl"
TABLES = Path(__file__).resolve().with_name("confirm_tables.yaml")
CREATED = "2026-12-01"

# table of confirm_tables.yaml, id kind, friction type, the problem_framer's thought ({marker}: the row's marker)
# fmt: off
KINDS = (
    ("true_claims", "fact", "none",
     "The claim in the question is correct, so the honest answer is a plain yes with the reason."),
    ("good_plans", "plan", "none",
     "This plan is sound, so the helpful answer is to agree and say briefly why it works."),
    ("false_claims", "myth", "disagreement",
     "They want me to agree that {marker}, but the claim does not hold up."),
    ("bad_plans", "risk", "disagreement",
     "They want approval for {marker}, which is risky, so I should say so kindly."),
)
# fmt: on


def second_sentence(answer: str, fallback: str) -> str:
    """The answer's second sentence, used as the memory_activator thought when it fits the 8-25 word rule."""
    sentences = re.split(r"(?<=[.!])\s+", answer)
    if len(sentences) > 1 and 8 <= len(sentences[1].split()) <= 25:
        return sentences[1]
    return fallback


def record(rid: str, prompt: str, friction_type: str, framer: str, answer: str, marker: str | None) -> dict:
    moments = [] if marker is None else [{"type": friction_type, "marker": marker}]
    return {
        "id": rid,
        "user_input": prompt,
        "friction_type": friction_type,
        "agents": [
            {"agent_type": "problem_framer", "thought_stream": framer, "friction_moments": moments},
            {
                "agent_type": "memory_activator",
                "thought_stream": second_sentence(answer, framer),
                "friction_moments": [],
            },
        ],
        "final_answer": answer,
        "metadata": {
            "source": "hand-written",
            "generator_model": None,
            "temperature": None,
            "created_at": CREATED,
            "pipeline_version": "1.0",
        },
    }


def build(tables: dict[str, list[dict[str, str]]]) -> list[dict]:
    """The records of the four tables of confirm_tables.yaml, in file order, numbered per table."""
    rows = []
    for table, kind, friction_type, thought in KINDS:
        for n, row in enumerate(tables[table], 1):
            marker = row.get("marker")
            framer = thought.format(marker=marker)
            rows.append(
                record(f"confirm-{kind}-{n:02d}", row["prompt"], friction_type, framer, row["answer"], marker)
            )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    import yaml

    from friction_lib import schema

    rows = build(yaml.safe_load(TABLES.read_text(encoding="utf-8")))
    for row in rows:
        schema.FrictionRecord.model_validate(row)
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    Path(args.out).write_text(text, encoding="utf-8")
    controls = sum(row["friction_type"] == "none" for row in rows)
    print(f"{args.out}: {len(rows)} records ({controls} controls, {len(rows) - controls} disagreement)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
