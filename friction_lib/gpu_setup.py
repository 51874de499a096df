"""Install the GPU stack once, and loudly: on Colab (each notebook's first cell) or on a CUDA box (`make gpu-venv`).

Standard library only: on Colab it runs right after `git clone`, before anything is installed.

- The guard is what is installed, not a folder: every pin of requirements-gpu.txt at its version, else pip runs.
- pip runs through subprocess; a failure raises FrictionError with pip's own last lines, so the cell stops there.
- Colab's torch, torchvision, torchaudio and numpy stay: a constraints file written from what is installed pins
  them, so pip cannot swap them under a running kernel. A CUDA box names its torch build in constraints-cuda.txt.
- If pip still changed a package that this Python has already imported, it says to restart the runtime.
- With a CUDA driver and Unsloth installed, Unsloth is imported before anything imports transformers.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

from friction_lib.errors import FrictionError

REPO_URL = "https://github.com/leonvanbokhorst/push-back-ai"  # each notebook's first cell clones it (tested)
COLAB_DIR = Path("/content/push-back-ai")
REPO = Path(__file__).resolve().parents[1]
KEEP = ("torch", "torchvision", "torchaudio", "numpy")  # Colab's own builds: pip must not replace them
BOX_TOOLS = ("papermill", "nbval", "pytest", "ipykernel")  # a CUDA box runs the chain; Colab is the notebook
LLAMA = (
    "llama-cpp-python",
)  # notebooks 02 (a local server) and 05 (GGUF export), pinned in requirements.txt
# llama-cpp-python's own index of prebuilt CPU wheels; without a wheel for the pin, pip builds PyPI's sdist.
LLAMA_WHEELS = "https://abetlen.github.io/llama-cpp-python/whl/cpu"
NVIDIA_DRIVER = Path("/proc/driver/nvidia/version")
PIP_TAIL = 25  # lines of pip's output a failure shows


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: Path, names: tuple[str, ...] | None = None) -> dict[str, str]:
    """`name==version` lines of a requirements file -> {canonical name: requirement line}; `names` filters."""
    pins = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)(\[[^]]*\])?==(\S+)", line.strip())
        if match and (names is None or canonical(match[1]) in {canonical(n) for n in names}):
            pins[canonical(match[1])] = match[0]
    return pins


def installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def missing(pins: dict[str, str]) -> list[str]:
    """The requirement lines whose package is absent or at another version."""
    return [line for name, line in pins.items() if installed(name) != line.rsplit("==", 1)[1]]


def keep_constraints(folder: Path, keep: tuple[str, ...] = KEEP) -> Path:
    """A constraints file pinning each installed package of `keep` to its version (Colab's own builds)."""
    lines = [f"{name}=={installed(name)}" for name in keep if installed(name)]
    path = folder / "keep-constraints.txt"
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def pip(args: list[str], python: str = sys.executable, env: dict[str, str] | None = None) -> None:
    """Run `python -m pip ARGS`; a failure raises FrictionError with pip's last lines."""
    print(f"pip {' '.join(args)}", flush=True)
    done = subprocess.run(
        [python, "-m", "pip", *args], capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL
    )
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-PIP_TAIL:])
        raise FrictionError(
            f"pip install failed (exit {done.returncode}); fix the cause below and run this again:\n{tail}"
        )


def install(repo: Path, constraints: Path, llama: bool = False, tools: bool = False) -> list[str]:
    """Install what is missing of the GPU stack into this Python; returns the steps that ran (none: all there)."""
    req, cpu_req, extra = (
        repo / "requirements-gpu.txt",
        repo / "requirements.txt",
        repo / "requirements-extra.txt",
    )
    tool_pins = read_pins(cpu_req, BOX_TOOLS) if tools else {}
    llama_pins = read_pins(cpu_req, LLAMA) | read_pins(extra) if llama else {}
    ran = []
    if missing(read_pins(req) | tool_pins):
        pip(["install", "-q", "-r", str(req), *tool_pins.values(), "-c", str(constraints)])
        ran.append("gpu")
    if llama and missing(read_pins(cpu_req, LLAMA)):
        print(
            "llama-cpp-python: a prebuilt wheel, else a build from source (about 5 minutes, once)", flush=True
        )
        pins = read_pins(cpu_req, LLAMA).values()
        pip(["install", "-q", *pins, "--extra-index-url", LLAMA_WHEELS, "-c", str(constraints)])
        ran.append("llama")
    if llama and (ran or missing(read_pins(extra))):  # after gguf, so that the converter's own gguf wins
        pip(["install", "-q", "--no-deps", "--force-reinstall", "-r", str(extra)])
        ran.append("extra")
    if installed("friction-lib") is None:
        pip(["install", "-q", "--no-deps", "-e", str(repo)])
        ran.append("friction-lib")
    still = missing(read_pins(req) | tool_pins | llama_pins)
    if still:
        raise FrictionError(f"pip finished, but these are still not installed as pinned: {', '.join(still)}.")
    return ran


def loaded_versions() -> dict[str, str | None]:
    """The version of each distribution that provides a module this Python has imported."""
    owners = metadata.packages_distributions()
    names = {dist for module in list(sys.modules) for dist in owners.get(module.partition(".")[0], [])}
    return {name: installed(name) for name in names}


def check_no_restart_needed(before: dict[str, str | None]) -> None:
    changed = [f"{name} {old} -> {installed(name)}" for name, old in before.items() if installed(name) != old]
    if changed:
        raise FrictionError(
            f"pip changed packages this runtime had already imported ({'; '.join(sorted(changed))}): "
            "restart the runtime (Runtime > Restart session), then run this cell again; it will not reinstall."
        )


def import_unsloth_first() -> bool:
    """On a machine with an NVIDIA driver and Unsloth installed, import Unsloth before transformers."""
    if not NVIDIA_DRIVER.exists() or importlib.util.find_spec("unsloth") is None:
        return False
    if "transformers" in sys.modules:
        print("transformers was imported before Unsloth: restart the runtime for Unsloth's full speed-ups.")
    import unsloth  # noqa: F401

    return True


def prepare(llama: bool = False) -> None:
    """Each notebook's first cell: on Colab install what is missing, then work from notebooks/; elsewhere nothing
    but importing Unsloth first on a CUDA machine that has it."""
    if "google.colab" in sys.modules:
        before = loaded_versions()
        with tempfile.TemporaryDirectory() as tmp:
            ran = install(COLAB_DIR, keep_constraints(Path(tmp)), llama=llama)
        check_no_restart_needed(before)
        print(f"GPU stack: {'installed ' + ', '.join(ran) if ran else 'already installed'}")
        os.chdir(COLAB_DIR / "notebooks")
    import_unsloth_first()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Install the GPU stack into this Python (a CUDA box).")
    parser.add_argument(
        "--constraints", type=Path, default=REPO / "constraints-cuda.txt", help="the torch build"
    )
    parser.add_argument(
        "--no-llama", action="store_true", help="skip llama-cpp-python and the GGUF converter"
    )
    args = parser.parse_args(argv)
    try:
        ran = install(REPO, args.constraints.resolve(), llama=not args.no_llama, tools=True)
    except FrictionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"GPU stack: {'installed ' + ', '.join(ran) if ran else 'already installed'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
