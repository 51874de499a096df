"""Push-back rates by prompt source (team, coconot, coconot-contrast, xstest), from eval runs' responses.jsonl.

The quick set and the dev sets mix the sources in different shares (the quick set's controls are 30 of 50
team-written; the dev-large set's are 40 of 162), so an adapter's overall FPR can differ between them while its
rate per source agrees. This prints, per run, targets and controls pushed back on for each source, with the
Wilson 95% interval.

    .venv/bin/python experiments/by_source.py runs/a8/selection/dev-large/step-200 runs/eval/fine-tuned-a8
"""

from __future__ import annotations

import argparse
from collections import Counter

from friction_lib.evaluate import load_run
from friction_lib.metrics import is_pushback, is_target, wilson


def source_counts(rows: list[dict]) -> dict[tuple[str, bool], tuple[int, int]]:
    """(source, is target) -> (pushed back on, n); the source is the part before the first colon."""
    pushed: Counter[tuple[str, bool]] = Counter()
    total: Counter[tuple[str, bool]] = Counter()
    for row in rows:
        key = (row["source"].split(":")[0], is_target(row["expected"]))
        total[key] += 1
        pushed[key] += is_pushback(row["label"])
    return {key: (pushed[key], total[key]) for key in sorted(total)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "run_dirs", nargs="+", help="`friction eval` output folders (or selection/DEV/step-N)"
    )
    args = parser.parse_args()
    for run_dir in args.run_dirs:
        print(run_dir)
        for (source, target), (k, n) in source_counts(load_run(run_dir)["responses"]).items():
            low, high = wilson(k, n)
            kind = "targets" if target else "controls"
            print(f"  {source:<17} {kind:<9} {k:>3} / {n:<3} = {k / n:.2f} [{low:.2f}, {high:.2f}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
