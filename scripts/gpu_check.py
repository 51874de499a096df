"""`make gpu-check`, on a CUDA box: the colab profile end to end, with figures; report in runs/gpu-check/.

1. the five notebooks with the colab profile under papermill (what `friction workshop` runs), each timed; then
   nbval over the same notebooks in smoke mode (FRICTION_PROFILE=colab FRICTION_SMOKE=1);
2. the same few training steps with Unsloth and with transformers + bitsandbytes: tokens/s and CUDA peak memory,
   each backend in its own process (clean peak memory; Unsloth's patches stay out of the other run);
3. `friction train --profile colab` (the full profile), then `friction eval` of base, prompt-only and the new
   adapter on data/eval/quick.jsonl and `friction eval compare --efficacy`: the 1.5B adapter's efficacy table.
Writes report.json and report.md. Without a usable NVIDIA driver it stops at once with one line; `--preflight`
checks only that, with the standard library (so `make gpu-check` fails before it installs anything).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from friction_lib.models import BOX_CUDA, MIN_DRIVER, driver_too_old, nvidia_driver

ROOT = Path(__file__).resolve().parents[1]
FRICTION = [sys.executable, "-m", "friction_lib.cli"]
QUICK = "data/eval/quick.jsonl"


def preflight(driver: str | None) -> str | None:
    """One line saying why this machine cannot run the check, or None."""
    need = MIN_DRIVER[BOX_CUDA]
    if driver is None:
        return f"make gpu-check needs a CUDA GPU: no NVIDIA driver here. Run it on a CUDA box (driver >= {need})."
    if driver_too_old(driver, BOX_CUDA):
        return f"make gpu-check needs NVIDIA driver >= {need} (CUDA {BOX_CUDA}); this one is {driver}: upgrade it."
    return None


def run(*args: str, env: dict[str, str] | None = None) -> float:
    """Run a command from the repository root; its seconds. A failure stops the check with its output."""
    start = time.perf_counter()
    done = subprocess.run(args, cwd=ROOT, env={**os.environ, **(env or {})}, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"gpu-check: {' '.join(args)} failed:\n{(done.stdout + done.stderr)[-4000:]}")
    return round(time.perf_counter() - start, 1)


def chain(out: Path) -> dict:
    from friction_lib.workshop import run_chain

    _, runs = run_chain("colab", run_dir=out / "chain")
    failed = [r for r in runs if r.status != "ok"]
    if failed:
        sys.exit(f"gpu-check: {failed[0].notebook} failed: {failed[0].error}")
    nbval = run(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax", "notebooks",
                env={"FRICTION_PROFILE": "colab", "FRICTION_SMOKE": "1"})  # fmt: skip
    return {
        "papermill_seconds": {r.notebook: round(r.seconds, 1) for r in runs},
        "nbval_smoke_seconds": nbval,
    }


def backend(name: str, steps: int, out: Path) -> dict:
    """`steps` optimizer steps of the colab profile with one backend; figures from its training card."""
    overrides = {"backend": name, "compare_prompts": False, "eval_steps": steps, "early_stopping_patience": 0}
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        handle.write("".join(f"{key}: {json.dumps(value)}\n" for key, value in overrides.items()))
    seconds = run(*FRICTION, "train", "--profile", "colab", "--config", handle.name, "--max-steps", str(steps),
                  "--out", str(out / f"bench-{name}"), "--overwrite")  # fmt: skip
    os.unlink(handle.name)
    card = json.loads((out / f"bench-{name}" / "training_card.json").read_text())
    return {"steps": steps, "tokens_per_s": card["tokens_per_second"], "peak_memory": card["peak_memory"],
            "process_seconds": seconds}  # fmt: skip


def efficacy(out: Path) -> dict:
    adapter, runs = out / "adapter", out / "eval"
    seconds = {"train": run(*FRICTION, "train", "--profile", "colab", "--out", str(adapter), "--overwrite")}
    common = ["--model", "colab", "--prompts", QUICK, "--overwrite"]
    seconds["base"] = run(*FRICTION, "eval", *common, "--out", str(runs / "base"))
    for name, extra in (
        ("prompt-only", ["--system-prompt", "friction"]),
        ("fine-tuned", ["--adapter", str(adapter)]),
    ):
        seconds[name] = run(
            *FRICTION, "eval", *common, *extra, "--out", str(runs / name), "--base-run", str(runs / "base")
        )
    run(*FRICTION, "eval", "compare", *(str(runs / n) for n in ("base", "prompt-only", "fine-tuned")),
        "--efficacy", "--out", str(runs / "compare"))  # fmt: skip
    return {"seconds": seconds, "compare_md": (runs / "compare" / "compare.md").read_text()}


def markdown(report: dict) -> str:
    lines = [
        f"# GPU check ({report['gpu']}, driver {report['driver']})",
        "",
        "| notebook | seconds |",
        "|---|---|",
    ]
    lines += [f"| {nb} | {s} |" for nb, s in report["chain"]["papermill_seconds"].items()]
    lines += ["", f"nbval (smoke, colab profile): {report['chain']['nbval_smoke_seconds']} s", ""]
    lines += ["| backend | steps | tokens/s | peak memory (MiB) |", "|---|---|---|---|"]
    lines += [f"| {name} | {b['steps']} | {b['tokens_per_s']} | {b['peak_memory']['mib']} |"
              for name, b in report["backends"].items()]  # fmt: skip
    return "\n".join([*lines, "", "## Efficacy, quick set", "", report["efficacy"]["compare_md"]])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preflight", action="store_true", help="only check for a usable NVIDIA driver")
    parser.add_argument("--steps", type=int, default=20, help="training steps per backend for tokens/s")
    args = parser.parse_args()
    problem = preflight(nvidia_driver())
    if problem:
        print(f"gpu-check: {problem}", file=sys.stderr)
        return 2
    if args.preflight:
        return 0
    import torch

    from friction_lib.errors import FrictionError
    from friction_lib.models import check_profile_hardware, get_profile, library_versions

    try:
        check_profile_hardware(get_profile("talk"))  # this torch sees the GPU, or one line says why
    except FrictionError as exc:
        print(f"gpu-check: {exc}", file=sys.stderr)
        return 2
    out = ROOT / "runs" / "gpu-check"
    out.mkdir(parents=True, exist_ok=True)
    report = {
        "gpu": torch.cuda.get_device_name(0),
        "driver": nvidia_driver(),
        "libraries": library_versions(),
    }
    report["chain"] = chain(out)
    report["backends"] = {name: backend(name, args.steps, out) for name in ("unsloth", "hf")}
    report["efficacy"] = efficacy(out)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    (out / "report.md").write_text(markdown(report) + "\n")
    print(f"gpu-check: report in {out / 'report.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
