"""Build .venv-gpu-api: the GPU path's pure-Python libraries on the CPU .venv's torch (`make drift`).

Unsloth caps transformers, trl and datasets below the CPU pins, so the GPU path runs other versions of the APIs
that friction_lib.train calls. This environment holds exactly those (their pins in requirements-gpu.txt) in its own
site-packages, installed with --no-deps, and a .pth file that appends the CPU .venv's site-packages for torch and
everything else. `make drift` then runs the tests marked `drift` in it. The environment is proven coherent before
it is used: pip check finds nothing the CPU .venv does not already report, and each library imports at its pin.
Usage: .venv/bin/python scripts/gpu_api_env.py .venv-gpu-api
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from friction_lib.gpu_setup import canonical, read_pins

ROOT = Path(__file__).resolve().parents[1]
# The GPU pins that differ from the CPU ones (huggingface_hub 1.x needs httpx, datasets 4.8 an older fsspec).
API_PACKAGES = (
    "transformers",
    "trl",
    "peft",
    "datasets",
    "accelerate",
    "huggingface_hub",
    "fsspec",
    "httpx",
    "httpcore",
)
IMPORTS = ("transformers", "trl", "peft", "datasets", "accelerate", "huggingface_hub")


def run(python: Path | str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), *args], capture_output=True, text=True, stdin=subprocess.DEVNULL)


def build(venv: Path) -> Path:
    """A venv without pip of its own (so no older setuptools shadows the CPU one), then the API pins."""
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(run(python, "-c", "import site; print(site.getsitepackages()[0])").stdout.strip())
    (site / "zz-cpu-venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pins = read_pins(ROOT / "requirements-gpu.txt", API_PACKAGES)
    installed = run(
        python, "-m", "pip", "install", "--quiet", "--no-deps", "--ignore-installed", *pins.values()
    )
    if installed.returncode != 0:
        raise SystemExit(f"gpu-api-env: pip install failed:\n{installed.stdout}{installed.stderr}")
    return python


def check(python: Path) -> None:
    """pip check adds nothing to the CPU .venv's own report; each library imports at its pinned version."""
    known = set(run(sys.executable, "-m", "pip", "check").stdout.splitlines())
    new = [line for line in run(python, "-m", "pip", "check").stdout.splitlines() if line not in known]
    if new:
        raise SystemExit("gpu-api-env: pip check fails:\n" + "\n".join(new))
    pins = read_pins(ROOT / "requirements-gpu.txt", IMPORTS)
    versions = {name: pins[canonical(name)].split("==")[1] for name in IMPORTS}
    smoke = "import importlib.metadata as m\n" + "".join(
        f"import {name}; assert m.version({name!r}) == {version!r}, ({name!r}, m.version({name!r}))\n"
        for name, version in versions.items()
    )
    done = run(python, "-c", smoke)
    if done.returncode != 0:
        raise SystemExit(f"gpu-api-env: the import smoke test fails:\n{done.stderr[-2000:]}")
    print(
        "gpu-api-env: " + ", ".join(pins.values()) + " on the CPU .venv's torch: pip check and imports pass"
    )


if __name__ == "__main__":
    check(build(Path(sys.argv[1])))
