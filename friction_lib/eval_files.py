"""An eval run's folder: `responses.jsonl`, `results.json`, `report.md` and two plots, written and read here.

`friction eval` writes a run into a staging folder (`files.staged_folder`) and moves it into place only when
every file is written, so a folder with `results.json` is always a complete run. `adopt_earlier_run` lets
`--overwrite` replace a run folder that an earlier version of friction eval wrote before folders carried the
tool's marker (it holds the run's files and nothing else).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from friction_lib.errors import FrictionError
from friction_lib.eval_plots import plot_run
from friction_lib.eval_report import report_markdown
from friction_lib.files import MARKER, mark_output, write_atomic, write_json

RUN_FILES = ("responses.jsonl", "results.json", "report.md", "by_category.png", "tpr_fpr.png")


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    write_atomic(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise FrictionError(
                    f"{path}:{number}: invalid JSON ({exc.msg}). The file is damaged: score the run again."
                ) from None
    return rows


def load_run(run_dir: str | Path) -> dict[str, Any]:
    """A finished run: `{"dir", "results", "responses"}`."""
    d = Path(run_dir)
    if not (d / "results.json").is_file() or not (d / "responses.jsonl").is_file():
        raise FrictionError(
            f"{d} is not an eval run (results.json or responses.jsonl missing). "
            "Make one with `friction eval --prompts FILE --out DIR`."
        )
    return {
        "dir": str(d),
        "results": json.loads((d / "results.json").read_text(encoding="utf-8")),
        "responses": read_jsonl(d / "responses.jsonl"),
    }


def write_run(out: Path, rows: list[dict[str, Any]], results: dict[str, Any]) -> None:
    """Every file of a run into `out`: responses, results, report, plots."""
    write_jsonl(out / "responses.jsonl", rows)
    write_json(out / "results.json", results)
    write_atomic(out / "report.md", report_markdown(results, rows))
    plot_run(results, out)


def adopt_earlier_run(out: Path) -> bool:
    """Mark `out` as the tool's if it is a complete run written by an earlier friction eval (before runs
    carried MARKER): its files are exactly the run's files and its results.json is an eval's. True if marked."""
    if not out.is_dir() or (out / MARKER).exists():
        return False
    names = {p.name for p in out.iterdir()}
    if not names or not names <= set(RUN_FILES) or "results.json" not in names:
        return False
    try:
        results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    if not isinstance(results, dict) or not {"overall", "by_category", "timing"} <= set(results):
        return False
    mark_output(out, "eval")
    return True
