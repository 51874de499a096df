"""Child processes that die with their parent: llama.cpp's server, the GGUF converter.

- `start_child`: the child runs in its own process group (so stopping it reaches its own children too) and,
  on Linux, asks the kernel for SIGTERM when its parent dies, even by `kill -9` (PR_SET_PDEATHSIG).
- `stop_child`: SIGTERM to the group, then SIGKILL after a grace period.
- `forward_signals`: while a child runs, SIGTERM and SIGINT to the parent stop the child first.
- `run_child`: `subprocess.run` built from the three, for converters.

The parent-death signal belongs to the thread that started the child: start children from the main thread
(or a thread that lives as long as the child should).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any

PR_SET_PDEATHSIG = 1


def _die_with(parent: int) -> Any:
    def preexec() -> None:  # pragma: no cover - runs in the child, between fork and exec
        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        except (OSError, AttributeError):
            return
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def start_child(cmd: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
    """`subprocess.Popen` in a new process group, with a parent-death signal on Linux."""
    preexec = _die_with(os.getpid()) if sys.platform.startswith("linux") else None
    return subprocess.Popen(list(cmd), start_new_session=True, preexec_fn=preexec, **kwargs)  # noqa: PLW1509


def signal_child(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM) -> None:
    """Send `sig` to the child's whole process group (no wait: safe inside a signal handler)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def stop_child(proc: subprocess.Popen[Any], grace: float = 10.0) -> int | None:
    """Stop the child's whole process group: SIGTERM, then SIGKILL after `grace` seconds. Returns its code."""
    if proc.poll() is not None:
        return proc.returncode
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        signal_child(proc, sig)
        try:
            return proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    return proc.poll()


@contextlib.contextmanager
def forward_signals(proc: subprocess.Popen[Any]) -> Iterator[None]:
    """While the block runs, SIGTERM or SIGINT to this process signals `proc`'s group first, then ends this one
    as usual (SIGINT as KeyboardInterrupt, SIGTERM as SystemExit(143)). Outside the main thread it does nothing.

    The handler only sends the signal: the interrupted frame may hold the Popen's wait lock (inside
    `proc.wait()`), so waiting here would stall; the caller's cleanup (`stop_child`) waits once it unwinds."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: object) -> None:
        signal_child(proc)
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_child(
    cmd: Sequence[str], timeout: float | None = None, **kwargs: Any
) -> subprocess.CompletedProcess[Any]:
    """Like `subprocess.run(cmd, **kwargs)`, but the child dies with this process and with any exception here."""
    proc = start_child(cmd, **kwargs)
    try:
        with forward_signals(proc):
            out, err = proc.communicate(timeout=timeout)
    except BaseException:
        stop_child(proc, grace=2.0)
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
