"""Write the held-out sets that pick a training checkpoint, never the quick set.

Both are drawn from `full.jsonl` minus every prompt of `quick.jsonl`, so choosing a checkpoint by its J on
them leaves the quick set, on which the efficacy target is judged, untouched. Rerunning writes the same files.

- `data/eval/dev.jsonl`: 10 targets and 10 controls per category (seeded), 100 prompts in all;
- `data/eval/dev-large.jsonl` (`--all`): every one of the 332 prompts of the full set that is not in the quick
  set, so a dev FPR is measured on 162 controls instead of 50.

    .venv/bin/python data/build/make_dev_set.py
    .venv/bin/python data/build/make_dev_set.py --all
"""

from __future__ import annotations

import argparse
import json
import random
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EVAL = ROOT / "data" / "eval"
PER_GROUP = 10
SEED = 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--all", action="store_true", help="every non-quick prompt, to dev-large.jsonl")
    args = parser.parse_args(argv)
    per_group = None if args.all else PER_GROUP
    out = EVAL / ("dev-large.jsonl" if args.all else "dev.jsonl")
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
        taken = lines[:per_group]
        chosen += taken
        print(f"{key[0]:<14} {'controls' if key[1] else 'targets':<9} {len(taken)} of {len(lines)}")
    out.write_text("\n".join(chosen) + "\n", encoding="utf-8")
    print(f"wrote {len(chosen)} prompts to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
