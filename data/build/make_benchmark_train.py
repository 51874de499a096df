"""Write data/benchmark_train.jsonl: CoCoNot prompts that are NOT in any eval set, as extra training records.

Why: with 755 hand-written records the adapter learns the push-back decision on its training prompts but not
on held-out ones (docs/experiments.md, attempts 2-4). This adds prompt variety from CoCoNot (MIT):

- push-back targets: `coconot_eval.jsonl` prompts of the subcategories the eval sets use (plus the other
  safety ones), with a short templated answer per friction type (the decision is the point; the wording
  rotates over a few variants);
- controls: `coconot_pref.jsonl` contrast prompts with their helpful `chosen` answer, cut to its first
  sentences.

Every record then goes through `friction_lib.curate.curate` against every eval prompt (quick, dev, full, demo)
and the hand-written training set, so no eval prompt nor a near-duplicate of one gets in
(`friction_lib.benchmark_records`, shared with make_xstest_train.py). Rerunning it writes the same file.

    .venv/bin/python data/build/make_benchmark_train.py [--coconot ../shared/benchmarks/coconot] [--per-type 120]
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from friction_lib.benchmark_records import ANSWERS, balanced, keep_apart, pick, record, write_shuffled
from friction_lib.curate import first_sentences

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "data" / "benchmark_train.jsonl"

# CoCoNot subcategory -> our friction type: the subcategories the eval sets draw on, plus "incomprehensible".
# Left out: subjective questions, humanising and unsupported requests, and the other safety subcategories
# (misinformation, copyright, offensive triggers, wildchats), which the eval sets do not test.
SUBCATEGORY_TYPE = {
    "underspecified": "clarification",
    "incomprehensible": "clarification",
    "false presuppositions": "false_premise",
    "universal unknowns": "uncertainty",
    "dangerous or sensitive topics": "refusal",
    "privacy violations": "refusal",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--coconot", default=str(ROOT.parent / "shared" / "benchmarks" / "coconot"))
    parser.add_argument(
        "--per-type", type=int, default=120, help="at most N push-back prompts per friction type (0: all)"
    )
    parser.add_argument("--controls", type=int, default=0, help="at most N contrast prompts (0: all)")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()

    from friction_lib import classify, schema

    folder = Path(args.coconot)
    rows: list[dict] = []
    subcategory: dict[str, str] = {}
    for line in (folder / "coconot_eval.jsonl").read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        friction_type = SUBCATEGORY_TYPE.get(item["subcategory"])
        if friction_type:
            answer = pick(ANSWERS[friction_type], item["id"])
            rows.append(record(f"coconot-{item['id']}", item["prompt"], friction_type, answer, None))
            subcategory[rows[-1]["id"]] = item["subcategory"]
    controls = []
    for line in (folder / "coconot_pref.jsonl").read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        answer = first_sentences(item["chosen"])
        if answer and classify.classify(answer, item["prompt"]).label == "COMPLY":
            controls.append(
                record(
                    f"coconot-pref-{item['id']}",
                    item["prompt"],
                    "none",
                    answer,
                    item.get("chosen_model") or "coconot-chosen",
                )
            )
    random.Random(0).shuffle(controls)
    rows += controls
    records = [schema.FrictionRecord.model_validate(row) for row in rows]

    hand = schema.load_jsonl(ROOT / "data" / "friction_train.jsonl").records
    kept, reasons = keep_apart(records, hand, ROOT)
    # Caps after the filters, so prompts lost to them do not count against a type's share.
    by_subcategory: dict[str, list] = {}
    for r in kept:
        by_subcategory.setdefault(subcategory.get(r.id, "contrast"), []).append(r)
    controls_kept = by_subcategory.pop("contrast", [])
    kept = balanced(by_subcategory, args.per_type) + controls_kept[: args.controls or None]
    write_shuffled(kept, 1, args.out, len(records), reasons)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
