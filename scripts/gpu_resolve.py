"""Resolve the GPU install without installing it (`make gpu-resolve`, part of `make test`).

pip resolves what `make gpu-venv` installs (requirements-gpu.txt, the CUDA box's tools from requirements.txt, under
constraints-cuda.txt) for Linux x86_64 and CPython 3.11 (a CUDA box's .venv-gpu) and 3.12 (Colab), from PyPI's
wheels only (`--dry-run --ignore-installed --report`), ignoring this machine's pip configuration. It checks that
torch is the named build and prints the CUDA runtime that build pulls in and the NVIDIA driver that runtime needs.
pip's reports go to runs/gpu-resolve/. Needs PyPI; takes about a minute.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from friction_lib.gpu_setup import BOX_TOOLS, PIP_TAIL, read_pins
from friction_lib.models import BOX_CUDA, BOX_TORCH, MIN_DRIVER

ROOT = Path(__file__).resolve().parents[1]
PYTHONS = ("3.11", "3.12")
GLIBC_MINORS = range(5, 36)  # manylinux_2_5 ... manylinux_2_35 (Colab: Ubuntu 22.04, glibc 2.35)
LEGACY_TAGS = ("manylinux1", "manylinux2010", "manylinux2014")  # the old names of 2_5, 2_12 and 2_17
KEPT_PIP_SETTINGS = ("PIP_CERT", "PIP_DEFAULT_TIMEOUT", "PIP_DISABLE_PIP_VERSION_CHECK")


def pip_command(python_version: str, report: Path) -> list[str]:
    platforms = [f"--platform=manylinux_2_{minor}_x86_64" for minor in GLIBC_MINORS]
    platforms += [f"--platform={tag}_x86_64" for tag in LEGACY_TAGS]
    tools = read_pins(ROOT / "requirements.txt", BOX_TOOLS).values()
    return [
        sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", f"--report={report}",
        "--use-feature=fast-deps",  # read each wheel's metadata with range requests, not the whole GBs of CUDA
        f"--python-version={python_version}", "--implementation=cp", "--only-binary=:all:", *platforms,
        "-r", str(ROOT / "requirements-gpu.txt"), *tools, "-c", str(ROOT / "constraints-cuda.txt"),
    ]  # fmt: skip


def pypi_only_env() -> dict[str, str]:
    """This machine's pip configuration (local indexes, a torch cap) left out: resolve as on Colab."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") or k in KEPT_PIP_SETTINGS}
    return {**env, "PIP_CONFIG_FILE": os.devnull}


def summary(report: dict) -> str:
    """'torch 2.10.0 + nvidia-cuda-runtime-cu12 12.8.90 (CUDA 12.8: NVIDIA driver >= 570.26), N packages'."""
    versions = {item["metadata"]["name"].lower(): item["metadata"]["version"] for item in report["install"]}
    if versions.get("torch") != BOX_TORCH:
        raise SystemExit(f"gpu-resolve: torch resolved to {versions.get('torch')}, not {BOX_TORCH}")
    runtime = next((name for name in versions if name.startswith("nvidia-cuda-runtime")), None)
    cuda = ".".join(versions[runtime].split(".")[:2]) if runtime else None
    if cuda != BOX_CUDA:
        raise SystemExit(f"gpu-resolve: torch {BOX_TORCH} pulls CUDA runtime {cuda}, not {BOX_CUDA}")
    return (
        f"torch {BOX_TORCH} + {runtime} {versions[runtime]} (CUDA {cuda}: NVIDIA driver >= {MIN_DRIVER[cuda]}), "
        f"unsloth {versions['unsloth']}, transformers {versions['transformers']}, trl {versions['trl']}; "
        f"{len(versions)} packages"
    )


def start(version: str, report: Path) -> subprocess.Popen:
    report.unlink(missing_ok=True)
    return subprocess.Popen(
        pip_command(version, report),
        env=pypi_only_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def main() -> int:
    out = ROOT / "runs" / "gpu-resolve"
    out.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    reports = {version: out / f"report-py{version.replace('.', '')}.json" for version in PYTHONS}
    processes = {version: start(version, report) for version, report in reports.items()}  # side by side
    failed = False
    for version, process in processes.items():
        output = [line for line in process.communicate()[0].splitlines() if not line.startswith("WARNING: ")]
        if process.returncode != 0:
            failed = True
            tail = "\n".join(output[-PIP_TAIL:])
            print(f"gpu-resolve: Python {version}: pip cannot resolve the GPU install:\n{tail}")
        else:
            print(f"gpu-resolve: Python {version}: {summary(json.loads(reports[version].read_text()))}")
    print(f"gpu-resolve: {time.monotonic() - began:.0f} s; pip's reports in {out.relative_to(ROOT)}/")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
