"""Run the numbered notebooks in order with papermill: `friction workshop` and `make workshop`.

Executed copies and `summary.json` (notebook, seconds, status) go to `runs/<timestamp>/`. If a
notebook fails, the chain stops, names the notebook and the cell, and keeps the executed copy.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass
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


def _failed_cell(executed: Path) -> str:
    """The first cell whose output is an error, as 'cell N: first line of source'."""
    try:
        cells = json.loads(executed.read_text())["cells"]
    except (OSError, ValueError, KeyError):
        return "unknown cell"
    code_index = 0
    for cell in cells:
        if cell.get("cell_type") != "code" or "injected-parameters" in cell.get("metadata", {}).get(
            "tags", []
        ):
            continue  # count cells as the source notebook numbers them
        code_index += 1
        if any(out.get("output_type") == "error" for out in cell.get("outputs", [])):
            source = "".join(cell.get("source", "")).strip().splitlines()
            return f"code cell {code_index}: {source[0][:80] if source else ''}"
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
        t0 = time.perf_counter()
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
                                    f"{_failed_cell(output)}: {exc.ename}: {exc.evalue}"))  # fmt: skip
            break
        runs.append(NotebookRun(notebook.name, time.perf_counter() - t0, "ok", str(output)))
        print(f"  done in {runs[-1].seconds:.0f} s", flush=True)
    summary = {"profile": profile, "run_dir": str(run_dir), "notebooks": [asdict(r) for r in runs]}
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return run_dir, runs


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
    for run in runs:
        print(f"{run.status:>6}  {run.seconds:7.1f} s  {run.notebook}")
    print(f"Executed notebooks and summary.json: {run_dir}")
    failed = [r for r in runs if r.status != "ok"]
    if failed:
        print(f"Stopped: {failed[0].notebook} failed at {failed[0].error}\n"
              f"The executed copy is kept for inspection: {failed[0].output}")  # fmt: skip
        return 1
    return 0
