"""Children die with their parent: SIGTERM is forwarded, and kill -9 of the parent takes the child along."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from friction_lib.processes import start_child, stop_child

# A parent that runs `sleep 60` through run_child and prints the child's pid once it is running.
PARENT = """
import sys, threading, time, psutil
from friction_lib.processes import run_child
def report():
    me = psutil.Process()
    while not [c for c in me.children() if c.name() == "sleep"]:  # exec'd, so prctl has run
        time.sleep(0.02)
    print(me.children()[0].pid, flush=True)
threading.Thread(target=report, daemon=True).start()
run_child(["sleep", "60"])
"""


def _gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_the_child_dies_with_its_parent(sig):
    parent = start_child([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        t0 = time.monotonic()
        os.kill(parent.pid, sig)
        parent.wait(timeout=20)
        assert _gone(child, within=5), f"`sleep` outlived its parent after {signal.Signals(sig).name}"
        # SIGTERM is forwarded at once: the parent must not stall on the child's wait lock.
        assert time.monotonic() - t0 < 8
    finally:
        stop_child(parent, grace=1)
