"""The papermill chain, executed for real on small notebooks."""

from __future__ import annotations

import json
import re

import nbformat
import pytest

from friction_lib import workshop
from friction_lib.errors import FrictionError


def _notebook(path, *sources):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell('PROFILE = "cpu"\nRUN_DIR = "."')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params] + [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(nb, str(path))
    return path


@pytest.mark.slow
def test_chain_runs_in_order_and_writes_summary(tmp_path):
    src = tmp_path / "nb"
    src.mkdir()
    first = _notebook(
        src / "01_first.ipynb", "import pathlib\npathlib.Path(RUN_DIR, 'first.txt').write_text(PROFILE)"
    )
    second = _notebook(
        src / "02_second.ipynb",
        "import pathlib\nassert pathlib.Path(RUN_DIR, 'first.txt').read_text() == 'cpu'",
    )
    (src / "scratch.ipynb").write_text("not a numbered notebook, never run")
    assert workshop.numbered_notebooks(src) == [first, second]
    run_dir, runs = workshop.run_chain("cpu", workshop.numbered_notebooks(src), run_dir=tmp_path / "run")
    assert [r.status for r in runs] == ["ok", "ok"]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [n["notebook"] for n in summary["notebooks"]] == ["01_first.ipynb", "02_second.ipynb"]
    assert all(n["seconds"] > 0 for n in summary["notebooks"])
    executed = nbformat.read(str(run_dir / "01_first.ipynb"), as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)


@pytest.mark.slow
def test_summary_counts_the_kernels_cpu_seconds_the_load_and_the_slowest_cell(tmp_path):
    """The kernel's CPU time is counted (a shared machine's wall time says little): 2 CPU s burnt in a cell,
    which is named as the slowest."""
    src = tmp_path / "nb"
    src.mkdir()
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 2.0:\n    pass"
    _notebook(src / "01_burn.ipynb", burn)
    run_dir, [run] = workshop.run_chain("cpu", workshop.numbered_notebooks(src), run_dir=tmp_path / "run")
    summary = json.loads((run_dir / "summary.json").read_text())
    [entry] = summary["notebooks"]
    assert run.status == "ok" and 2.0 <= entry["cpu_seconds"] <= entry["seconds"] * summary["cores"] + 1
    assert len(entry["load_before"]) == 3 and len(entry["load_after"]) == 3
    seconds, cell = entry["slowest_cells"][0]
    assert seconds >= 2.0 and cell == "code cell 2: import time"


@pytest.mark.slow
def test_chain_stops_at_failure_and_names_the_cell(tmp_path):
    src = tmp_path / "nb"
    src.mkdir()
    _notebook(src / "01_ok.ipynb", "x = 1")
    _notebook(src / "02_bad.ipynb", "y = 2", "raise ValueError('boom')")
    _notebook(src / "03_never.ipynb", "z = 3")
    run_dir, runs = workshop.run_chain("cpu", workshop.numbered_notebooks(src), run_dir=tmp_path / "run")
    assert [r.status for r in runs] == ["ok", "failed"]
    assert "code cell 3: raise ValueError('boom')" in runs[1].error and "boom" in runs[1].error
    assert (run_dir / "02_bad.ipynb").exists()  # kept for inspection
    assert not (run_dir / "03_never.ipynb").exists()


def test_unknown_profile(tmp_path):
    with pytest.raises(FrictionError, match="Valid profiles"):
        workshop.run_chain("gpu", [], run_dir=tmp_path)


def test_no_notebooks(tmp_path):
    with pytest.raises(FrictionError, match="No numbered notebooks"):
        workshop.run_chain("cpu", [], run_dir=tmp_path)


def test_talk_without_cuda_stops_before_any_notebook(tmp_path):
    from friction_lib.models import cuda_available

    if cuda_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(FrictionError, match="--profile cpu"):
        workshop.run_chain("talk", [tmp_path / "01_x.ipynb"], run_dir=tmp_path / "run")


@pytest.mark.slow
def test_cli_workshop_runs_only_selected_and_reports(tmp_path, monkeypatch, capsys):
    src = tmp_path / "notebooks"
    src.mkdir()
    _notebook(src / "01_a.ipynb", "a = 1")
    _notebook(src / "02_b.ipynb", "raise RuntimeError('stop here')")
    monkeypatch.setattr(workshop, "notebooks_dir", lambda: src)
    monkeypatch.setattr(workshop, "repo_root", lambda: tmp_path)
    assert workshop.cli_workshop(["--only", "01"]) == 0
    out = capsys.readouterr().out
    assert re.search(
        r"^\| 01_a \| ok \| [\d,]+ \| [\d,]+ \| [\d.]+ \| code cell \d: .+ \(\d+ s\) \|$", out, re.M
    ), out
    assert re.search(r"^\| \*\*total\*\* \| \| \*\*[\d,]+\*\* \| \*\*[\d,]+\*\* \| \| \|$", out, re.M), out
    assert workshop.cli_workshop(["--smoke"]) == 1
    out = capsys.readouterr().out
    assert "02_b.ipynb failed at code cell 2" in out and "kept for inspection" in out
    assert len(list((tmp_path / "runs").iterdir())) == 2
