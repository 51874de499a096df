"""Run the numbered notebooks in order with papermill: `friction workshop` and `make workshop`.

Executed copies and `summary.json` go to `runs/<timestamp>/`: per notebook its wall seconds, the CPU seconds
of its kernel and everything the kernel ran (a llama.cpp server, quantisers), the load average before and after,
and its status. On a machine shared with other jobs, CPU seconds tell what an idle one would take. If a notebook
fails, the chain stops, names the notebook and the cell, and keeps the executed copy.
"""

from __future__ import annotations

import json
import os
import re
import resource
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from friction_lib.errors import FrictionError
from friction_lib.models import PROFILES, check_profile_hardware, get_profile, repo_root

NOTEBOOK_PATTERN = re.compile(r"^\d\d_.+\.ipynb$")


@dataclass
class NotebookRun:
    notebook: str
    seconds: float
    status: str  # "ok" or "failed"
    output: str
    error: str = ""
    cpu_seconds: float = (
        0.0  # user + system of this process and every child it reaped (the kernel and its own)
    )
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)  # os.getloadavg() when it started
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    slowest_cells: list[tuple[float, str]] = field(
        default_factory=list
    )  # (seconds, "code cell N: first line")


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and of its children that have ended (papermill's kernels are
    shut down and waited for after each notebook; a kernel counts what it waited for, e.g. `friction serve`)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def _load() -> tuple[float, float, float]:
    one, five, fifteen = os.getloadavg()
    return round(one, 2), round(five, 2), round(fifteen, 2)


def notebooks_dir() -> Path:
    root = repo_root()
    return (root or Path.cwd()) / "notebooks"


def numbered_notebooks(folder: Path | None = None) -> list[Path]:
    folder = folder or notebooks_dir()
    return sorted(p for p in folder.glob("*.ipynb") if NOTEBOOK_PATTERN.match(p.name))


def new_run_dir(base: Path | None = None) -> Path:
    base = base or (repo_root() or Path.cwd()) / "runs"
    run = base / datetime.now().strftime("%Y%m%d-%H%M%S")
    suffix = 1
    while run.exists():
        run = run.with_name(f"{run.name.split('_')[0]}_{suffix}")
        suffix += 1
    run.mkdir(parents=True)
    return run


def _code_cells(executed: Path) -> list[tuple[int, dict[str, Any]]]:
    """(number, cell) of the executed notebook's code cells, numbered as in the source (papermill's injected
    parameters cell left out); [] if it cannot be read."""
    try:
        cells = json.loads(executed.read_text())["cells"]
    except (OSError, ValueError, KeyError):
        return []
    code = [c for c in cells if c.get("cell_type") == "code"]
    code = [c for c in code if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
    return list(enumerate(code, start=1))


def _first_line(number: int, cell: dict[str, Any]) -> str:
    source = "".join(cell.get("source", "")).strip().splitlines()
    return f"code cell {number}: {source[0][:80] if source else ''}"


def slowest_cells(executed: Path, top: int = 3) -> list[tuple[float, str]]:
    """The `top` longest code cells of an executed notebook (papermill's per-cell duration), longest first."""
    timed = [(float(c.get("metadata", {}).get("papermill", {}).get("duration") or 0.0), _first_line(n, c))
             for n, c in _code_cells(executed)]  # fmt: skip
    return [(round(seconds, 1), line) for seconds, line in sorted(timed, reverse=True)[:top]]


def _failed_cell(executed: Path) -> str:
    """The first cell whose output is an error, as 'code cell N: first line of source'."""
    for number, cell in _code_cells(executed):
        if any(out.get("output_type") == "error" for out in cell.get("outputs", [])):
            return _first_line(number, cell)
    return "unknown cell"


def run_chain(
    profile: str = "cpu",
    notebooks: list[Path] | None = None,
    run_dir: Path | None = None,
    parameters: dict[str, Any] | None = None,
    log_output: bool = False,
) -> tuple[Path, list[NotebookRun]]:
    """Execute notebooks in order; stop at the first failure. Returns (run folder, runs)."""
    import papermill as pm

    check_profile_hardware(get_profile(profile))
    notebooks = notebooks if notebooks is not None else numbered_notebooks()
    if not notebooks:
        raise FrictionError(f"No numbered notebooks (NN_name.ipynb) in {notebooks_dir()}.")
    run_dir = run_dir or new_run_dir()
    run_dir.mkdir(parents=True, exist_ok=True)
    params = {"PROFILE": profile, "RUN_DIR": str(run_dir), **(parameters or {})}
    runs: list[NotebookRun] = []
    for notebook in notebooks:
        output = run_dir / notebook.name
        print(f"▶ {notebook.name} (profile {profile})", flush=True)
        t0, cpu0, load0 = time.perf_counter(), cpu_seconds(), _load()
        try:
            pm.execute_notebook(
                str(notebook),
                str(output),
                parameters=params,
                cwd=str(notebook.parent),
                log_output=log_output,
                progress_bar=True,
            )
        except pm.PapermillExecutionError as exc:
            runs.append(NotebookRun(notebook.name, time.perf_counter() - t0, "failed", str(output),
                                    f"{_failed_cell(output)}: {exc.ename}: {exc.evalue}",
                                    cpu_seconds() - cpu0, load0, _load()))  # fmt: skip
            break
        runs.append(NotebookRun(notebook.name, time.perf_counter() - t0, "ok", str(output), "",
                                cpu_seconds() - cpu0, load0, _load(), slowest_cells(output)))  # fmt: skip
        print(f"  done in {runs[-1].seconds:.0f} s ({runs[-1].cpu_seconds:.0f} CPU s)", flush=True)
    summary = {"profile": profile, "run_dir": str(run_dir), "cores": len(os.sched_getaffinity(0)),
               "notebooks": [asdict(r) for r in runs]}  # fmt: skip
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return run_dir, runs


def summary_table(runs: list[NotebookRun]) -> str:
    """The chain as a Markdown table (README's workshop timing): per notebook its status, wall and CPU seconds,
    the 1-minute load average when it started, and its slowest cell; then the totals."""
    lines = [
        "| notebook | status | wall s | CPU s | load at start | slowest cell |",
        "|---|---|---:|---:|---:|---|",
    ]
    for run in runs:
        slowest = f"{run.slowest_cells[0][1]} ({run.slowest_cells[0][0]:.0f} s)" if run.slowest_cells else ""
        lines.append(f"| {Path(run.notebook).stem} | {run.status} | {run.seconds:,.0f} | {run.cpu_seconds:,.0f} | "
                     f"{run.load_before[0]:.1f} | {slowest.replace('|', '/')} |")  # fmt: skip
    wall, cpu = sum(r.seconds for r in runs), sum(r.cpu_seconds for r in runs)
    lines.append(f"| **total** | | **{wall:,.0f}** | **{cpu:,.0f}** | | |")
    return "\n".join(lines)


def cli_workshop(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="friction workshop", description=__doc__)
    parser.add_argument("--profile", default="cpu", help=f"one of: {', '.join(PROFILES)}")
    parser.add_argument("--only", nargs="*", help="run only these notebooks (names or numbers, e.g. 01 03)")
    parser.add_argument("--smoke", action="store_true", help="the fast smoke settings every notebook offers")
    parser.add_argument("--log-output", action="store_true", help="stream notebook output to the terminal")
    args = parser.parse_args(argv)
    notebooks = numbered_notebooks()
    if args.only:
        notebooks = [nb for nb in notebooks if any(nb.name.startswith(o) or nb.stem == o for o in args.only)]
    run_dir, runs = run_chain(
        args.profile,
        notebooks,
        parameters={"SMOKE": True} if args.smoke else None,
        log_output=args.log_output,
    )
    print(summary_table(runs))
    print(f"Executed notebooks and summary.json: {run_dir} ({os.cpu_count()} cores)")
    failed = [r for r in runs if r.status != "ok"]
    if failed:
        print(f"Stopped: {failed[0].notebook} failed at {failed[0].error}\n"
              f"The executed copy is kept for inspection: {failed[0].output}")  # fmt: skip
        return 1
    return 0
