"""Several GGUFs scored at once, one `friction eval --engine llamacpp` child process each (`parity.check_behaviour`).

llama.cpp answers one prompt at a time, and its threads spin while they wait for each other, so on a small machine
one model with every core is slower than a model per core: q8_0 and q4_k_m on 2 cores take about the time of
one of them. Each child is an ordinary eval run (its own --out, staging folder, lock and kept answers) that dies
with this process (`processes.start_child`); its output goes to `<name>.log` beside its run; one progress bar
counts the answers all of them have kept.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

from friction_lib.errors import FrictionError
from friction_lib.eval_partial import partial_path
from friction_lib.processes import start_child, stop_child


def threads_each(n_children: int, threads: int | None = None) -> int:
    """llama.cpp threads per child: `threads`, else the cores (one left free) shared out, at least one."""
    return threads or max(1, ((os.cpu_count() or 2) - 1) // max(1, n_children))


def _child_env() -> dict[str, str]:
    """This environment, with this friction_lib first on the path (the child must import the same code)."""
    package_root = str(Path(__file__).resolve().parents[1])
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": package_root + (os.pathsep + path if path else "")}


def _kept(out: Path) -> int:
    """Answers a running child has written down so far (its kept answers' lines, less the header)."""
    try:
        with open(partial_path(out), "rb") as handle:
            return max(0, sum(1 for _ in handle) - 1)
    except OSError:
        return 0


def _failure(name: str, code: int, log: Path) -> FrictionError:
    tail = "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-12:])
    return FrictionError(f"Scoring {name} failed (exit {code}); the last lines of {log}:\n{tail}")


def run_evals(commands: dict[str, tuple[list[str], Path]], n_prompts: int, progress: bool = True) -> None:
    """Run `friction eval` argument lists {name: (args, out)} as child processes at once and wait for all.

    A child that fails stops the others and raises with the end of its log; so does an exception here
    (Ctrl-C): no child outlives the call."""
    from tqdm.auto import tqdm

    children: dict[str, tuple[subprocess.Popen[Any], IO[str], Path]] = {}
    bar = tqdm(total=n_prompts * len(commands), desc=f"eval ({', '.join(commands)})", unit="prompt",
               disable=not progress)  # fmt: skip
    try:
        for name, (args, out) in commands.items():
            log = out.parent / f"{out.name}.log"
            handle = open(log, "w", encoding="utf-8")  # noqa: SIM115 - closed below
            cmd = [sys.executable, "-m", "friction_lib.cli", "eval", *args, "--out", str(out)]
            children[name] = (
                start_child(cmd, stdout=handle, stderr=subprocess.STDOUT, env=_child_env()),
                handle,
                out,
            )
        _wait(children, n_prompts, bar)
    finally:
        bar.close()
        for proc, log_file, _out in children.values():
            stop_child(proc, grace=2.0)  # a no-op for a child that has finished
            log_file.close()


def _wait(children: dict[str, tuple[subprocess.Popen[Any], IO[str], Path]], n_prompts: int, bar: Any) -> None:
    running = dict(children)
    while running:
        for name, (proc, handle, _out) in list(running.items()):
            code = proc.poll()
            if code is None:
                continue
            del running[name]
            if code != 0:
                handle.flush()
                raise _failure(name, code, Path(handle.name))
        done = sum(n_prompts if name not in running else _kept(out) for name, (_, _, out) in children.items())
        bar.update(done - bar.n)
        time.sleep(0.5)
