"""The rules every output folder follows (files.py), tested directly: the commands' own tests cover their use."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from friction_lib import files
from friction_lib.errors import FrictionError


def test_inside_refuses_absolute_parent_and_symlinked_paths(tmp_path):
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "a.gguf").write_text("x")
    (tmp_path / "secret").write_text("key")
    (folder / "link").symlink_to(tmp_path / "secret")
    assert files.inside(folder, "a.gguf") == (folder / "a.gguf").resolve()
    for bad in ("/etc/passwd", "../secret", "sub/../../secret", "link", "", "."):
        with pytest.raises(FrictionError, match="Refused the path"):
            files.inside(folder, bad, "export.json")


def test_a_staged_folder_appears_whole_with_ordinary_modes_and_the_marker(tmp_path):
    out = tmp_path / "out"
    with files.staged_folder(out, "test") as tmp:
        (tmp / "result.txt").write_text("done")
        assert not out.exists()  # nothing finished-looking until the block ends
    assert (out / "result.txt").read_text() == "done" and files.made_by_tool(out)
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~files._umask()  # not mkdtemp's private 0700
    assert not list(tmp_path.glob(".out.partial-*"))


def test_a_failed_run_leaves_the_old_folder_and_no_staging(tmp_path):
    out = tmp_path / "out"
    with files.staged_folder(out, "test") as tmp:
        (tmp / "v1").write_text("1")
    with pytest.raises(RuntimeError), files.staged_folder(out, "test", overwrite=True) as tmp:
        (tmp / "v2").write_text("2")
        raise RuntimeError("disk full")
    assert sorted(p.name for p in out.iterdir()) == [files.MARKER, "v1"]
    assert not list(tmp_path.glob(".out.partial-*"))


def test_overwrite_replaces_only_what_the_tool_made_and_never_cwd_or_its_parents(tmp_path, monkeypatch):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(FrictionError, match="was not made by friction"):
        files.check_output_folder(foreign, overwrite=True, command="test")
    monkeypatch.chdir(foreign)
    for protected in (foreign, tmp_path):
        with pytest.raises(FrictionError, match="current directory"):
            files.check_output_folder(protected, overwrite=True, command="test")
    assert (foreign / "notes.txt").read_text() == "keep me"


HOLDER = """
import sys, time
from friction_lib.files import output_lock
with output_lock(sys.argv[1], "holder"):
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_second_writer_is_told_the_first_ones_pid(tmp_path):
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with (
            pytest.raises(FrictionError, match=f"in use by PID {holder.pid}"),
            files.output_lock(out, "test"),
        ):
            pass
    finally:
        holder.kill()
        holder.wait()
    with files.output_lock(out, "test"):  # a dead holder's flock is gone with it
        pass


def test_stale_partials_of_dead_runs_are_found_and_live_ones_left(tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    stale = tmp_path / f".out.partial-{dead.stdout.strip()}-abc123"
    live = tmp_path / f".out.partial-{os.getpid()}-def456"
    for folder in (stale, live):
        folder.mkdir()
        (folder / "big.bin").write_bytes(b"x" * 4096)
    assert files.remove_stale_partials(tmp_path, "out", quiet=True) == 4096
    assert not stale.exists() and live.exists()


def test_disk_check_names_what_needs_the_room_and_the_fix(tmp_path):
    with pytest.raises(FrictionError, match=r"for the thing: about .* needed, .* free at .*Free some"):
        files.check_disk_space(tmp_path / "new" / "deeper", 10**18, "the thing", "Free some space.")
    assert files.check_disk_space(tmp_path, 1, "x", "y") > 0
