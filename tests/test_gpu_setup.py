"""friction_lib.gpu_setup, the Colab bootstrap: the guard, Colab's kept torch, pip's own error, the restart notice,
and each notebook's first cell (a fast no-op outside Colab). pip runs for real, with PIP_DRY_RUN so that nothing
is installed into the test's environment."""

from __future__ import annotations

import sys
import time
import types
import zipfile
from importlib import metadata
from pathlib import Path

import nbformat
import pytest

from friction_lib import gpu_setup
from friction_lib.errors import FrictionError
from friction_lib.workshop import numbered_notebooks

ROOT = Path(__file__).resolve().parents[1]
NEEDS_LLAMA = ("02_generate_dataset.ipynb", "05_deploy.ipynb")  # a local server; the GGUF export


def fake_repo(folder: Path, gpu_lines: list[str]) -> Path:
    """A clone as the bootstrap sees it: the three requirements files and notebooks/."""
    (folder / "notebooks").mkdir(parents=True)
    (folder / "requirements-gpu.txt").write_text("# GPU\n" + "\n".join(gpu_lines) + "\n")
    (folder / "requirements.txt").write_text(f"pytest=={metadata.version('pytest')}\n")
    (folder / "requirements-extra.txt").write_text("")
    return folder


@pytest.fixture
def dry_pip(monkeypatch):
    """pip resolves but installs nothing, and asks no index."""
    monkeypatch.setenv("PIP_DRY_RUN", "1")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", "")


def test_pins_are_read_by_canonical_name_and_missing_ones_listed(tmp_path):
    path = tmp_path / "r.txt"
    path.write_text(
        f"# c\nPyTest=={metadata.version('pytest')}\nPyYAML==0.0.1\nllama-cpp-python[server]==0.3.36\n"
    )
    pins = gpu_setup.read_pins(path)
    assert pins == {
        "pytest": f"PyTest=={metadata.version('pytest')}",
        "pyyaml": "PyYAML==0.0.1",
        "llama-cpp-python": "llama-cpp-python[server]==0.3.36",
    }
    assert gpu_setup.read_pins(path, ("llama_cpp_python",)) == {"llama-cpp-python": pins["llama-cpp-python"]}
    assert gpu_setup.missing(pins) == ["PyYAML==0.0.1"] + (
        [] if gpu_setup.installed("llama-cpp-python") == "0.3.36" else ["llama-cpp-python[server]==0.3.36"]
    )


def test_the_installed_torch_and_numpy_are_kept_by_a_constraints_file(tmp_path):
    path = gpu_setup.keep_constraints(tmp_path)
    lines = path.read_text().splitlines()
    assert f"torch=={metadata.version('torch')}" in lines and f"numpy=={metadata.version('numpy')}" in lines
    assert all(gpu_setup.installed(line.split("==")[0]) for line in lines)  # only what is there


def test_nothing_runs_when_every_pin_is_installed(tmp_path, dry_pip):
    repo = fake_repo(tmp_path / "clone", [f"pytest=={metadata.version('pytest')}"])
    assert gpu_setup.install(repo, gpu_setup.keep_constraints(tmp_path)) == []


def test_a_pip_failure_stops_with_pips_own_message(tmp_path, dry_pip):
    repo = fake_repo(tmp_path / "clone", ["friction-no-such-package==1.0"])
    with pytest.raises(
        FrictionError, match="No matching distribution found for friction-no-such-package==1.0"
    ):
        gpu_setup.install(repo, gpu_setup.keep_constraints(tmp_path))


def probe_wheel(folder: Path, name: str = "friction_dry_probe", version: str = "1.0") -> Path:
    """A minimal real wheel, so that a dry run finds something to (not) install."""
    folder.mkdir(parents=True, exist_ok=True)
    info = f"{name}-{version}.dist-info"
    files = {
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    files[f"{info}/RECORD"] = "".join(f"{path},,\n" for path in [*files, f"{info}/RECORD"])
    path = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for member, text in files.items():
            wheel.writestr(member, text)
    return path


def test_a_pin_that_pip_leaves_unmet_is_an_error(tmp_path, dry_pip, monkeypatch):
    """pip exits 0 on a dry run without installing: the bootstrap checks the result, not only pip's status."""
    monkeypatch.setenv("PIP_FIND_LINKS", str(probe_wheel(tmp_path / "wheels").parent))
    repo = fake_repo(tmp_path / "clone", ["friction-dry-probe==1.0"])
    with pytest.raises(FrictionError, match="still not installed as pinned: friction-dry-probe==1.0"):
        gpu_setup.install(repo, gpu_setup.keep_constraints(tmp_path))


def test_a_changed_package_that_is_already_imported_asks_for_a_restart():
    before = gpu_setup.loaded_versions()
    assert before["pytest"] == metadata.version("pytest")
    gpu_setup.check_no_restart_needed(before)  # nothing changed
    with pytest.raises(FrictionError, match=r"pytest 0\.1 -> .*restart the runtime"):
        gpu_setup.check_no_restart_needed({**before, "pytest": "0.1"})


def test_on_colab_a_complete_install_is_skipped_and_the_notebooks_folder_entered(
    tmp_path, monkeypatch, capsys
):
    repo = fake_repo(tmp_path / "clone", [f"pytest=={metadata.version('pytest')}"])
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(gpu_setup, "COLAB_DIR", repo)
    monkeypatch.chdir(tmp_path)
    gpu_setup.prepare()
    assert Path.cwd() == repo / "notebooks"
    assert "GPU stack: already installed" in capsys.readouterr().out


def first_cell(path: Path) -> str:
    return next(c.source for c in nbformat.read(str(path), as_version=4).cells if c.cell_type == "code")


@pytest.mark.parametrize("path", numbered_notebooks(), ids=lambda p: p.name)
def test_first_cell_clones_the_one_repository_and_runs_the_bootstrap(path):
    cell = first_cell(path)
    assert f'"{gpu_setup.REPO_URL}"' in cell and f'"{gpu_setup.COLAB_DIR}"' in cell
    assert "check=True" in cell and "!" not in cell.replace("!=", "")  # no shell magics: they fail silently
    assert f"gpu_setup.prepare(llama={path.name in NEEDS_LLAMA})" in cell


def test_readme_badges_open_the_same_repository():
    owner_name = gpu_setup.REPO_URL.removeprefix("https://github.com/")
    badges = [
        line for line in (ROOT / "README.md").read_text().splitlines() if "colab.research.google.com" in line
    ]
    assert badges and all(f"/github/{owner_name}/blob/main/notebooks/" in line for line in badges)


@pytest.mark.parametrize("path", numbered_notebooks(), ids=lambda p: p.name)
def test_first_cell_outside_colab_is_a_fast_no_op(path, monkeypatch, tmp_path):
    """What papermill and nbval run in CI: no clone, no pip, no chdir, no Unsloth; FRICTION_PROFILE is honoured."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("FRICTION_PROFILE", "colab")
    namespace: dict = {}
    start = time.monotonic()
    exec(compile(first_cell(path), str(path), "exec"), namespace)
    assert (
        time.monotonic() - start < 2 and Path.cwd() == tmp_path and not (tmp_path / "push-back-ai").exists()
    )
    assert "unsloth" not in sys.modules and "google.colab" not in sys.modules
    assert namespace["PROFILE"] == "colab" and namespace["gpu_setup"] is gpu_setup
