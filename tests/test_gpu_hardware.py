"""Bad hardware, said in one line that names the fix: the talk profile without CUDA (this machine), a driver too
old for the torch build, and `make gpu-check` off a CUDA box. The figures agree with constraints-cuda.txt."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from friction_lib import models
from friction_lib.errors import FrictionError
from friction_lib.gpu_setup import read_pins

ROOT = Path(__file__).resolve().parents[1]
PROPRIETARY = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 22:23:56 UTC 2024\n"
OPEN = (
    "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.65.06  Release Build  (dvs-builder@U16)\n"
)


def gpu_check_module():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "scripts" / "gpu_check.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_talk_without_cuda_is_one_line_that_names_the_fix():
    if models.cuda_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(FrictionError) as caught:
        models.check_profile_hardware(models.get_profile("talk"))
    message = str(caught.value)
    assert "\n" not in message and "needs a CUDA GPU" in message
    assert "make gpu-venv" in message and "--profile cpu" in message
    import torch

    assert ("CPU build" in message) == (torch.version.cuda is None)


def test_each_cause_gets_its_own_fix():
    assert "CPU build" in models.cuda_problem("2.13.0+cpu", None, None)
    assert "no NVIDIA driver" in models.cuda_problem("2.10.0+cu128", "12.8", None)
    old = models.cuda_problem("2.14.1+cu130", "13.0", "550.54.15")
    assert "550.54.15 is too old" in old and ">= 580.65.06" in old and "make gpu-venv" in old
    assert "nvidia-smi" in models.cuda_problem("2.10.0+cu128", "12.8", "570.26")
    assert models.driver_too_old("570.26", "12.8.90") is None
    assert models.driver_too_old("565.57.01", "12.8") == "570.26"


def test_the_driver_version_is_read_from_both_kernel_modules(tmp_path):
    (tmp_path / "proprietary").write_text(PROPRIETARY)
    (tmp_path / "open").write_text(OPEN)
    assert models.nvidia_driver(tmp_path / "proprietary") == "550.54.15"
    assert models.nvidia_driver(tmp_path / "open") == "580.65.06"
    assert models.nvidia_driver(tmp_path / "absent") is None


def test_the_box_torch_is_the_one_constraints_cuda_names():
    pins = read_pins(ROOT / "constraints-cuda.txt")
    assert pins["torch"] == f"torch=={models.BOX_TORCH}"
    readme = (ROOT / "README.md").read_text()
    assert f"torch {models.BOX_TORCH}" in readme and f">= {models.MIN_DRIVER[models.BOX_CUDA]}" in readme


def test_gpu_check_stops_at_once_without_cuda():
    if models.nvidia_driver():
        pytest.skip("this machine has an NVIDIA driver")
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gpu_check.py")],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "gpu-check: make gpu-check needs a CUDA GPU: no NVIDIA driver here. Run it on a CUDA box (driver >= 570.26)."
    ]


def test_gpu_check_refuses_a_driver_too_old_for_the_box_torch():
    preflight = gpu_check_module().preflight
    assert "550.54.15: upgrade it" in preflight("550.54.15") and ">= 570.26" in preflight("550.54.15")
    assert preflight("570.26") is None and preflight("580.65.06") is None
