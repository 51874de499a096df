"""Write data/benchmark_train.jsonl: CoCoNot prompts that are NOT in any eval set, as extra training records.

Why: with 755 hand-written records the adapter learns the push-back decision on its training prompts but not
on held-out ones (docs/experiments.md, attempts 2-4). This adds prompt variety from CoCoNot (MIT):

- push-back targets: `coconot_eval.jsonl` prompts of the subcategories the eval sets use (plus the other
  safety ones), with a short templated answer per friction type (the decision is the point; the wording
  rotates over a few variants);
- controls: `coconot_pref.jsonl` contrast prompts with their helpful `chosen` answer, cut to its first
  sentences.

Every record then goes through `friction_lib.curate.curate` against every eval prompt (quick, dev, full, demo)
and the hand-written training set, so no eval prompt nor a near-duplicate of one gets in. Rerunning it writes
the same file.

    .venv/bin/python scripts/make_benchmark_train.py [--coconot ../shared/benchmarks/coconot] [--per-type 120]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "data" / "benchmark_train.jsonl"
CREATED = "2026-12-01"
PIPELINE = "benchmark-1.0"

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

THOUGHT = {
    "refusal": "This asks for something harmful, so I should decline.",
    "false_premise": "The question takes for granted something that is not true, so I should correct it.",
    "clarification": "The request leaves out what it is about, so I need to ask before I answer.",
    "uncertainty": "Nobody can know the answer to this, so I should say so instead of guessing.",
    "none": "This is a reasonable request, so I can simply answer it.",
}

ANSWERS = {
    "refusal": [
        "I can't help with that. The request could cause real harm to someone. If there is a safe, legal "
        "goal behind it, tell me and I will gladly help with that instead.",
        "I won't help with this request, because it could hurt or mislead people. I'm happy to help with a "
        "safer way to reach what you actually need.",
        "Sorry, but I can't assist with that. It is not something I should produce. If you tell me more "
        "about the underlying problem, I can suggest a responsible alternative.",
        "That's not something I can help with, since it could be used to harm people. I can share general, "
        "safety-focused information on the topic if that would be useful.",
    ],
    "false_premise": [
        "Actually, that question rests on a false premise: what it takes for granted is not true. If you "
        "tell me where you came across it, I can explain what is actually the case.",
        "That isn't quite right. The question assumes something that did not happen or is not true, so "
        "it has no real answer as asked. I'm happy to explain the facts behind it.",
        "I have to correct the premise first: the claim in the question is not accurate. Once that is "
        "cleared up, I can tell you what is actually known about the topic.",
        "Actually, that is a misconception. The premise of the question is false, so it can't be answered "
        "as asked. Let me know if you'd like the accurate version of the story.",
    ],
    "clarification": [
        "Could you clarify what you mean? The request leaves out the details I need, such as which one "
        "you are asking about and for what purpose. Then I can give you a useful answer.",
        "Which one do you mean? I need a bit more detail before I can answer well. Could you tell me what "
        "it is for and what you have in mind?",
        "Can you tell me more about what you are asking? As written, it could mean several different "
        "things, and I don't want to guess wrong.",
        "What exactly do you mean? Some key details are missing, so could you say which thing, place or "
        "situation you have in mind?",
    ],
    "uncertainty": [
        "Nobody knows the answer to that for certain. There is no reliable evidence that could settle it, "
        "so any specific answer would be a guess. I can tell you what is known and what remains open.",
        "I can't know that, and neither can anyone else right now: it is genuinely unknown. I'd rather say "
        "so than make something up. I can summarise the main ideas people have about it.",
        "There is no way to know this with any confidence. The honest answer is that it is uncertain, "
        "and I can only describe the possibilities, not give you a definite answer.",
        "Honestly, no one knows. The information needed to answer this does not exist, so I won't invent a "
        "number or a story. I can explain why it is unknowable, if that helps.",
    ],
}

SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
MARKDOWN_NOISE = re.compile(r"^\s*(#+\s*|[-*]\s+|\d+\.\s+)|\*\*|__", re.M)


def pick(options: list[str], key: str) -> str:
    return options[int(hashlib.sha256(key.encode()).hexdigest(), 16) % len(options)]


def short_answer(text: str, min_words: int = 35, max_words: int = 110) -> str | None:
    """The first sentences of a long helpful answer, Markdown flattened; None if nothing usable."""
    flat = " ".join(MARKDOWN_NOISE.sub("", line).strip() for line in text.splitlines() if line.strip())
    kept: list[str] = []
    count = 0
    for sentence in SENTENCE_END.split(flat):
        count += len(sentence.split())
        if count > max_words:
            break
        kept.append(sentence)
        if count >= min_words:
            break
    answer = " ".join(kept).strip()
    return answer if len(answer.split()) >= 12 and answer[-1:] in ".!?" else None


def balanced(by_subcategory: dict[str, list], per_type: int) -> list:
    """At most `per_type` records per friction type, taken round-robin over its subcategories (seeded
    shuffle), so one big subcategory cannot swamp the others of its type."""
    pools: dict[str, list[list]] = {}
    for name in sorted(by_subcategory):
        rows = list(by_subcategory[name])
        random.Random(name).shuffle(rows)
        pools.setdefault(rows[0].friction_type, []).append(rows)
    chosen = []
    for lists in pools.values():
        taken: list = []
        for depth in range(max(len(rows) for rows in lists)):
            taken += [rows[depth] for rows in lists if depth < len(rows)]
        chosen += taken[:per_type] if per_type > 0 else taken
    return chosen


def too_close(prompt: str, eval_texts: list[str], threshold: float = 90.0) -> bool:
    """The overlap rule of tests/test_schema.py; `eval_texts` are already `curate.normalise`d."""
    from rapidfuzz import fuzz

    from friction_lib.curate import normalise

    mine = normalise(prompt)
    for theirs in eval_texts:
        score = fuzz.ratio(mine, theirs)
        if min(len(mine.split()), len(theirs.split())) >= 3:
            score = max(score, fuzz.token_set_ratio(mine, theirs))
        if mine == theirs or score >= threshold:
            return True
    return False


def keep_apart(records: list, others: list) -> tuple[list, dict[str, int]]:
    """The `records` that are no eval, dev or demo prompt nor near one, and no near-duplicate of `others` (the
    other training files): `friction_lib.curate.curate`, then the stricter rule of tests/test_schema.py (no
    length blocking). Returns them in order, with a count of the removed ones per reason."""
    from friction_lib import curate

    eval_prompts, problems = curate.load_eval_prompts(curate.find_eval_files(base=ROOT))
    if problems:
        raise SystemExit("\n".join(problems))
    kept, removed = curate.curate([*others, *records], eval_prompts)
    new_ids = {r.id for r in records}
    kept = [r for r in kept if r.id in new_ids]
    reasons: dict[str, int] = {}
    for rid, reason in removed:
        if rid in new_ids:
            reasons[curate.reason_kind(reason)] = reasons.get(curate.reason_kind(reason), 0) + 1
    eval_texts = [curate.normalise(p.text) for p in eval_prompts]
    close = [r for r in kept if too_close(r.user_input, eval_texts)]
    if close:
        reasons["contamination-near (test rule)"] = len(close)
        kept = [r for r in kept if r not in close]
    return kept, reasons


def write_shuffled(kept: list, seed: int, out: str, candidates: int, reasons: dict[str, int]) -> None:
    """Shuffle (seeded, so a rerun writes the same bytes), write, and say what was kept and why the rest went."""
    from friction_lib import schema

    random.Random(seed).shuffle(kept)
    schema.write_jsonl(kept, out)
    print(f"candidates: {candidates}; removed: {reasons}")
    print(f"wrote {len(kept)} records to {out}: {schema.count_by_type(kept)}")


def record(rid: str, prompt: str, friction_type: str, answer: str, generator: str | None) -> dict:
    return {
        "id": rid,
        "user_input": prompt.strip().strip('"').strip(),
        "friction_type": friction_type,
        "agents": [
            {
                "agent_type": "problem_framer",
                "thought_stream": THOUGHT[friction_type],
                "friction_moments": []
                if friction_type == "none"
                else [{"type": friction_type, "marker": "the request"}],
            }
        ],
        "final_answer": answer,
        "metadata": {
            "source": "generated" if generator else "hand-written",
            "generator_model": generator,
            "temperature": None,
            "created_at": CREATED,
            "pipeline_version": PIPELINE,
        },
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
        answer = short_answer(item["chosen"])
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
    kept, reasons = keep_apart(records, hand)
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
