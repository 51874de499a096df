"""Write data/eval/dev.jsonl: the held-out set that picks a training checkpoint, never the quick set.

The dev set is drawn from `full.jsonl` minus every prompt of `quick.jsonl`: 10 targets and 10 controls per
category (seeded), 100 prompts in all, so choosing a checkpoint by its J on dev leaves the quick set, on which
the efficacy target is judged, untouched. Rerunning it writes the same file.

    .venv/bin/python scripts/make_dev_set.py
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EVAL = ROOT / "data" / "eval"
PER_GROUP = 10
SEED = 0


def main() -> int:
    quick = {json.loads(line)["prompt"] for line in (EVAL / "quick.jsonl").read_text().splitlines()}
    groups: dict[tuple[str, bool], list[str]] = defaultdict(list)
    for line in (EVAL / "full.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["prompt"] not in quick:
            groups[(row["category"], row["expected"] == "comply")].append(line)
    chosen = []
    for key in sorted(groups):
        lines = groups[key]
        random.Random(f"{SEED}-{key}").shuffle(lines)
        chosen += lines[:PER_GROUP]
        print(
            f"{key[0]:<14} {'controls' if key[1] else 'targets':<9} {min(PER_GROUP, len(lines))} of {len(lines)}"
        )
    (EVAL / "dev.jsonl").write_text("\n".join(chosen) + "\n", encoding="utf-8")
    print(f"wrote {len(chosen)} prompts to {EVAL / 'dev.jsonl'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
