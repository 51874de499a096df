"""Time to the first comparison in a real JupyterLab, clicked in headless Chromium, as the audience meets it.

    .venv/bin/python scripts/bench_lab.py                            # notebook 01 as committed (96 tokens)
    .venv/bin/python scripts/bench_lab.py --prompt demo-amb-02 --repeats 3 --nice -10
    .venv/bin/python scripts/bench_lab.py --screenshot docs/demo_live.png

JupyterLab (a real server on a free loopback port), its kernel and Chromium run pinned to 2 cores. Figures:
- "Run all" to the first comparison: from the click on Run > Run All Cells (the kernel already started by
  opening the notebook) until the first three-column comparison shows, finished. Target: 30 s or less.
- a new prompt across the three models: from the click on the widget's Run until its button is back and
  the columns are final. Target: 10 s or less.
With each, what dominates it: the cells that took longest before the first comparison; for a new prompt the
wait for the first token, the streaming, and the finish (labels, last render), beside the seconds the
columns report for their own generation. The kernel's CPU seconds are printed too: they hardly depend on
other load (on an otherwise idle 2-core machine a phase takes between CPU/2 and CPU seconds of wall time).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import psutil

from friction_lib import lab, lab_browser
from friction_lib.demo import load_demo_prompts

NOTEBOOK = "01_friction_concept.ipynb"
NEW_PROMPT = "demo-syc-02"  # as in scripts/bench_demo.py: the base model rambles to the token limit on it
TARGET_FIRST_S = 30.0
TARGET_NEW_S = 10.0
SHOT_HEIGHT = 2600  # a window tall enough for the whole widget in one picture


def kernel_cpu(server: lab.Lab) -> float:
    """CPU seconds used so far by the server's kernels (all threads)."""
    total = 0.0
    for proc in psutil.Process(server.proc.pid).children(recursive=True):
        try:
            if "ipykernel_launcher" in " ".join(proc.cmdline()):
                times = proc.cpu_times()
                total += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return total


def slowest_cells(ran: lab_browser.RunAll, until: float, top: int = 3) -> list[tuple[float, str]]:
    """The longest code cells up to `until` seconds, with the first code line of each."""
    spans, previous = [], 0.0
    for index in sorted(ran.cells):
        done = ran.cells[index]
        if done > until + 0.5:
            break
        lines = [ln for ln in (ran.sources[index] if index < len(ran.sources) else "").splitlines()]
        code = next((ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")), "")
        spans.append((done - previous, f"cell {index + 1}: {code[:70]}"))
        previous = done
    return sorted(spans, reverse=True)[:top]


def widget_phases(run: lab_browser.WidgetRun) -> dict[str, float]:
    """Seconds: to the first token shown, streaming, the finish; and the columns' own generation time."""
    first = run.first_text() or 0.0
    streaming = [s["t"] for s in run.snapshots if any(c["cursor"] for c in s["columns"])]
    last = max(streaming, default=first)
    own = [float(m.group(1)) for c in run.final if (m := re.search(r"([\d.]+) s", c["foot"]))]
    return {
        "total_s": round(run.seconds, 2),
        "first_token_s": round(first, 2),
        "streaming_s": round(last - first, 2),
        "finish_s": round(run.seconds - last, 2),
        "columns_generation_s": round(max(own, default=0.0), 2),
    }


def measure(args: argparse.Namespace, state: Path) -> dict[str, Any]:
    server = lab.start_lab(state)
    try:
        with lab_browser.browser(height=SHOT_HEIGHT if args.screenshot else 1000) as browser:
            page = lab_browser.open_notebook(browser, server, NOTEBOOK)
            cpu0 = kernel_cpu(server)
            ran = lab_browser.run_all(page)
            first = ran.first_comparison or ran.seconds
            result: dict[str, Any] = {
                "run_all_s": round(ran.seconds, 2),
                "first_comparison_s": round(first, 2),
            }
            result["run_all_kernel_cpu_s"] = round(kernel_cpu(server) - cpu0, 2)
            result["slowest_cells"] = slowest_cells(ran, first)
            [prompt] = [p.prompt for p in load_demo_prompts() if p.id == args.prompt]
            result["new_prompt"] = []
            for _ in range(args.repeats):
                cpu0 = kernel_cpu(server)
                run = lab_browser.run_widget(page, prompt)
                phases = widget_phases(run) | {"kernel_cpu_s": round(kernel_cpu(server) - cpu0, 2)}
                result["new_prompt"].append(
                    phases | {"columns": run.final, "column_times": run.column_times()}
                )
            if args.screenshot:
                lab_browser.widget_board(page).screenshot(path=args.screenshot)
    finally:
        server.stop()
    return result


def report(result: dict[str, Any], load_before: tuple[float, ...]) -> None:
    first = result["first_comparison_s"]
    print(f"load average before {' '.join(f'{x:.2f}' for x in load_before)}, after "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")  # fmt: skip
    verdict = "meets" if first <= TARGET_FIRST_S else "misses"
    print(f"\n'Run all' to the first comparison: {first:.1f} s ({verdict} the {TARGET_FIRST_S:.0f} s target); "
          f"all cells {result['run_all_s']:.1f} s; kernel CPU {result['run_all_kernel_cpu_s']:.1f} s")  # fmt: skip
    for seconds, cell in result["slowest_cells"]:
        print(f"  {seconds:5.1f} s  {cell}")
    runs = result["new_prompt"]
    total = statistics.median(r["total_s"] for r in runs)
    verdict = "meets" if total <= TARGET_NEW_S else "misses"
    print(f"\nA new prompt across three models: {total:.1f} s, median of {len(runs)} ({verdict} the "
          f"{TARGET_NEW_S:.0f} s target)")  # fmt: skip
    for r in runs:
        print(f"  {r['total_s']:5.1f} s = first token {r['first_token_s']:.1f} + streaming {r['streaming_s']:.1f}"
              f" + finish {r['finish_s']:.1f}; the columns' own generation {r['columns_generation_s']:.1f} s;"
              f" kernel CPU {r['kernel_cpu_s']:.1f} s")  # fmt: skip
        for column in r["columns"]:
            seen = r["column_times"].get(column["key"], {})
            print(f"      {column['key']:<9} {column['chip']:<11} last new text at {seen.get('last_text') or 0:5.1f} s,"
                  f" cursor off at {seen.get('cursor_off') or 0:5.1f} s; footer: {column['foot']}")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prompt", default=NEW_PROMPT, help="demo prompt id for the widget (the new prompt)")
    parser.add_argument("--repeats", type=int, default=1, help="widget runs of the new prompt (median shown)")
    parser.add_argument("--cores", type=int, default=2, help="pin the server, kernel and browser to N cores")
    parser.add_argument(
        "--nice", type=int, default=0, help="e.g. -10 (root): ahead of other jobs, as if idle"
    )
    parser.add_argument(
        "--screenshot", help="also save the widget after the last run as a PNG (docs/demo_live.png)"
    )
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: args.cores])  # children inherit both
    if args.nice:
        os.nice(args.nice)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-lab-") as state:
        result = measure(args, Path(state))
    report(result, load_before)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
