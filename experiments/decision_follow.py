"""Does an eval run's answer follow the decision its <think> block opened with? Counts from responses.jsonl.

For adapters trained with `reasoning: decision`: how often the block opens with "Push back" on targets and on
controls, and which label the answer got after each decision.

    .venv/bin/python experiments/decision_follow.py runs/eval/fine-tuned-a4 [--base-run runs/eval/base]

With `--base-run` it also breaks down the prompts only the adapter gets right (McNemar's discordant pairs) by
target/control and by the base's label there.
"""

from __future__ import annotations

import argparse
from collections import Counter

from friction_lib.evaluate import load_run
from friction_lib.metrics import correct, is_pushback, is_target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", help="a `friction eval` output folder")
    parser.add_argument("--base-run", help="the base model's run on the same prompts")
    args = parser.parse_args()
    rows = load_run(args.run_dir)["responses"]
    opens = Counter()
    after: dict[bool, Counter[str]] = {True: Counter(), False: Counter()}
    for row in rows:
        push = row["reasoning"].strip().startswith("Push back")
        opens[(is_target(row["expected"]), push)] += 1
        after[push][row["label"]] += 1
    targets, controls = (sum(opens[(t, p)] for p in (True, False)) for t in (True, False))
    print(
        f'<think> opens with "Push back" on {opens[(True, True)]}/{targets} targets, {opens[(False, True)]}/{controls} controls'
    )
    for push in (True, False):
        n, pushed = (
            sum(after[push].values()),
            sum(k for label, k in after[push].items() if is_pushback(label)),
        )
        print(
            f"after {'Push back' if push else 'No push-back'}: {n} answers, {pushed} push back; labels {dict(after[push])}"
        )
    if args.base_run:
        base = {row["id"]: row for row in load_run(args.base_run)["responses"]}
        only = Counter(
            ("control" if not is_target(row["expected"]) else "target", base[row["id"]]["label"])
            for row in rows
            if correct(row["expected"], row["label"])
            and not correct(row["expected"], base[row["id"]]["label"])
        )
        print(f"only the adapter right: {sum(only.values())} prompts; (kind, base label): {dict(only)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
