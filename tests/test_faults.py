"""The fault suite of issue #19 (docs/faults.md): a crash, a full disk, bad bytes, a damaged file, a folder in
the wrong place, a second writer, a question that is too long. Every case ends in a clear message and no
traceback, and nothing already produced is lost. Cases other test files already cover are listed in
docs/faults.md, not repeated here. `pytest -m faults` runs the whole suite (these tests and those).

The engines are real: a `friction serve` process (llama.cpp's server on the embedded model) for generate, the
embedded model for train, chat and export. A full disk is real too: a small tmpfs mounted for the test (root
only; skipped with the reason otherwise), filled by the test as another program would fill it, once the command
has passed its own disk check.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from friction_lib import cli, files, train_runs
from friction_lib.adapters import CARD_NAME, WEIGHTS_NAME
from friction_lib.curate import MAX_QUESTION_CHARS, curate_file
from friction_lib.generate import failures_path
from friction_lib.personas import take_seeds
from friction_lib.schema import load_jsonl

pytestmark = pytest.mark.faults

ROOT = Path(__file__).resolve().parents[1]
MICRO = ROOT / "data" / "micro" / "friction_micro.jsonl"
TRAIN_FILE = ROOT / "data" / "friction_train.jsonl"
# A smoke run that checkpoints every step, on full-precision weights (faster than NF4 on a CPU).
TRAIN_CONFIG = """lora_r: 8
lora_alpha: 16
quant: none
max_steps: 3
batch_size: 2
grad_accum: 1
max_length: 256
eval_steps: 1
early_stopping_patience: 0
compare_prompts: false
"""
GENERATE = ["generate", "--friction-type", "clarification", "--seeds", "sampled", "--max-tokens", "16"]


# --------------------------------------------------------------------------- helpers


def friction(*args: object, **popen: object) -> subprocess.Popen[str]:
    """`friction ARGS` as its own process (this checkout's friction_lib), stdout and stderr piped unless given."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    options: dict = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **popen}
    cmd = [sys.executable, "-m", "friction_lib.cli", *map(str, args)]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, text=True, **options)


def run(capsys, *args: object) -> tuple[int, str]:
    """`friction ARGS` in this process: (exit status, stderr)."""
    status = cli.main([str(a) for a in args])
    return status, capsys.readouterr().err


def message(err: str, command: str) -> str:
    """The command's one-line message: the last stderr line that starts `friction COMMAND:`; no traceback."""
    assert "Traceback" not in err, err[-3000:]
    lines = [line for line in err.splitlines() if line.startswith(f"friction {command}:")]
    assert lines, err[-3000:]
    return lines[-1]


def lines_of(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def fill_up(disk: Path) -> Path:
    """Write zeros into DISK/filler.bin until the disk is full to the last byte."""
    filler = disk / "filler.bin"
    with open(filler, "ab", buffering=0) as handle:
        for size in (1 << 20, 1 << 12, 1):
            try:
                while True:
                    handle.write(b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    return filler


def fill_when(process: subprocess.Popen[str], disk: Path, line: str) -> tuple[threading.Thread, list[str]]:
    """Read PROCESS's stdout in a thread; fill DISK as soon as a line containing LINE appears."""
    seen: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        for text in process.stdout:
            seen.append(text)
            if line in text and not (disk / "filler.bin").exists():
                fill_up(disk)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread, seen


def fill_once(disk: Path, ready: Callable[[], bool], within: float = 300) -> threading.Thread:
    """A thread that fills DISK as soon as READY() is true (another program filling the disk mid-run)."""

    def watch() -> None:
        deadline = time.monotonic() + within
        while not ready() and time.monotonic() < deadline:
            time.sleep(0.02)
        fill_up(disk)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def wait_for(condition: Callable[[], bool], process: subprocess.Popen[str], within: float = 300) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline and process.poll() is None and not condition():
        time.sleep(0.05)


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def small_disk(tmp_path) -> Iterator[Callable[[str], Path]]:
    """`small_disk("300m")`: a fresh tmpfs of that size (`small_disk("64k", "ro")`: read-only), unmounted at the
    end whatever happens (root only)."""
    if os.geteuid() != 0:
        pytest.skip("a full disk is a small tmpfs, and only root may mount one (run the suite as root)")
    mounted: list[Path] = []

    def mount(size: str, options: str = "rw") -> Path:
        folder = tmp_path / f"disk-{len(mounted)}"
        folder.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},{options}", "tmpfs", str(folder)],
                              capture_output=True, text=True)  # fmt: skip
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(folder)
        return folder

    try:
        yield mount
    finally:
        for folder in mounted:
            if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[str]:
    """`friction serve --port 0` as its own process: llama.cpp's server on the embedded model. Yields its URL."""
    log = tmp_path_factory.mktemp("serve") / "serve.err"
    with log.open("w") as err:
        process = friction("serve", "--port", "0", stderr=err)
    try:
        assert process.stdout is not None
        first = process.stdout.readline()  # printed once the server answers
        found = re.search(r"http://127\.0\.0\.1:\d+/v1", first)
        assert found, f"friction serve printed {first!r}: {log.read_text()[-1500:]}"
        yield found.group(0)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def train_config(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("config") / "faults.yaml"
    path.write_text(TRAIN_CONFIG)
    return path


# --------------------------------------------------------------------------- kill -9


def test_kill_9_during_generate_then_resume_writes_each_record_once(served, tmp_path):
    """`friction generate` killed with SIGKILL while two seeds are in flight, against a real `friction serve`;
    the rerun skips what was written and does the rest: each seed ends up once in the records (whole lines
    only) or, if the model's text was unusable, in the failures file."""
    out = tmp_path / "gen.jsonl"
    args = [*GENERATE, "--n", "2", "--concurrency", "2", "--base-url", served, "--out", out]
    first = friction(*args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: bool(lines_of(out) or lines_of(failures_path(out))), first)
        first.send_signal(signal.SIGKILL)
    finally:
        first.wait(timeout=30)
    before = [r.id for r in load_jsonl(out, strict=True)] if out.exists() else []
    failed_before = len(lines_of(failures_path(out)))

    second = friction(*args)
    _, stderr = second.communicate(timeout=600)
    assert second.returncode == 0, stderr[-2000:]
    seeds = {s.record_id for s in take_seeds("clarification", 2, source="sampled")}
    after = [r.id for r in load_jsonl(out, strict=True)] if out.exists() else []  # strict: no torn line
    failed_now = {f["id"] for f in lines_of(failures_path(out))[failed_before:]}
    assert len(after) == len(set(after)) and after[: len(before)] == before  # kept, and none twice
    assert set(after) | failed_now == seeds and not set(after) & failed_now


def test_kill_9_during_train_then_resume(train_config, tmp_path, capsys):
    """`friction train` killed with SIGKILL as it writes its second checkpoint; the same command resumes from the
    last complete checkpoint and trains each step once."""
    out = tmp_path / "run"
    args = ["train", "--config", train_config, "--data", MICRO, "--out", out]
    first = friction(*args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: (out / train_runs.CHECKPOINTS / "checkpoint-2").exists(), first)
        first.send_signal(signal.SIGKILL)
    finally:
        first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL, "the run ended before it was killed"
    assert train_runs.read_state(out)["status"] == "running" and not (out / CARD_NAME).exists()
    complete = [c for c in train_runs.checkpoints(out) if train_runs.checkpoint_problem(c) is None]

    assert run(capsys, *args)[0] == 0
    card = json.loads((out / CARD_NAME).read_text())
    resumed = Path(card["resumed_from"]).name if card["resumed_from"] else None
    assert resumed == (complete[-1].name if complete else None)  # the last complete checkpoint
    assert [p["step"] for p in card["losses"]["train"]] == [1, 2, 3]  # no step lost or trained twice
    assert train_runs.read_state(out)["status"] == "finished" and (out / WEIGHTS_NAME).exists()


# --------------------------------------------------------------------------- a full disk


def test_full_disk_during_train_is_one_line_and_the_run_resumes(small_disk, train_config, capsys):
    """The disk fills up after train's own disk check (another program writes): the run stops with one line,
    stays visibly unfinished (run_state.json says running, no card), and resumes once there is room."""
    disk = small_disk("300m")
    out = disk / "run"
    args = ["train", "--config", train_config, "--max-steps", "2", "--data", MICRO, "--out", out]
    filler = fill_once(disk, lambda: (out / train_runs.RUN_STATE).exists())  # written after the disk check
    status, err = run(capsys, *args)
    filler.join(timeout=10)
    line = message(err, "train")
    assert status == 2 and "Training stopped: the disk holding" in line and "resume" in line
    assert train_runs.read_state(out)["status"] == "running" and not (out / CARD_NAME).exists()

    (disk / "filler.bin").unlink()
    assert run(capsys, *args)[0] == 0
    assert train_runs.read_state(out)["status"] == "finished"
    assert json.loads((out / CARD_NAME).read_text())["steps"]["global_step"] == 2


def _ending_a_page_short(lines: list[str], short: int = 100) -> bytes:
    """JSON lines whose last one is padded with spaces (JSON allows them) so that the file ends `short` bytes
    before a page boundary: a longer line written there on a full disk would be cut after those bytes."""
    text = "".join(lines).encode("utf-8")
    pad = (-len(text) - short) % 4096
    return text[:-1] + b" " * pad + b"\n"


def test_full_disk_during_generate_keeps_every_record(small_disk, served):
    """The disk fills up while `friction generate` runs: the line that no longer fits is not written at all (not
    even the part that fits in the file's last page), the records and failures before it are byte for byte as
    they were, the message is one line, and the rerun appends."""
    disk = small_disk("64k")
    out = disk / "gen.jsonl"
    kept = _ending_a_page_short(MICRO.read_text(encoding="utf-8").splitlines(keepends=True)[:3])
    out.write_bytes(kept)
    failed_before = _ending_a_page_short([json.dumps({"id": "gen-old", "stage": "final_answer"}) + "\n"])
    failures_path(out).write_bytes(failed_before)  # the seed's outcome goes to one file or the other
    args = [*GENERATE, "--n", "1", "--concurrency", "1", "--base-url", served, "--out", out]
    process = friction(*args, stdout=subprocess.DEVNULL)
    lock = disk / f".{out.name}.lock"
    wait_for(lambda: lock.exists() and lock.stat().st_size > 0, process)
    fill_up(disk)
    _, err = process.communicate(timeout=300)
    line = message(err, "generate")
    assert process.returncode == 2 and "No space left on device" in line and "rerun to resume" in line
    assert out.read_bytes() == kept and failures_path(out).read_bytes() == failed_before

    (disk / "filler.bin").unlink()
    rerun = friction(*args)
    _, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err[-2000:]
    assert out.read_bytes().startswith(kept) and failures_path(out).read_bytes().startswith(failed_before)
    ids = [r.id for r in load_jsonl(out, strict=True)]
    seed = take_seeds("clarification", 1, source="sampled")[0].record_id
    failed = {f["id"] for f in lines_of(failures_path(out))}
    assert len(ids) == len(set(ids)) and (ids[3:] == [seed] or (ids[3:] == [] and seed in failed))


def test_full_disk_during_export_leaves_the_old_export_and_no_staging(small_disk, test_adapter):
    """The disk fills up after export's own disk check: one message, the staging folder is gone, the earlier
    export in --out is untouched, and once the filler is removed the disk holds only that earlier export."""
    disk = small_disk("700m")
    out = disk / "export"
    out.mkdir()
    files.mark_output(out, "export")
    (out / "Modelfile").write_text("FROM ./earlier.gguf\n")
    earlier = tree(out)
    args = ["export", "--adapter", test_adapter, "--quant", "f16", "--out", out, "--overwrite", "--no-verify"]
    with open(disk.parent / "export.err", "w") as log:
        process = friction(*args, stderr=log)
    reader, seen = fill_when(process, disk, "Disk: needs about")
    process.wait(timeout=600)
    reader.join(timeout=10)
    err = (disk.parent / "export.err").read_text()
    assert process.returncode != 0 and (disk / "filler.bin").exists(), "".join(seen)[-2000:] + err[-2000:]
    message(err, "export")
    assert tree(out) == earlier and sorted(p.name for p in disk.iterdir()) == [
        ".export.lock",
        "export",
        "filler.bin",
    ]
    (disk / "filler.bin").unlink()
    assert shutil.disk_usage(disk).used < 2**20


def test_full_disk_while_staging_a_dataset_keeps_the_last_stage(small_disk, capsys):
    """`friction data push` runs out of room while staging: one line, the previous stage is as it was."""
    disk = small_disk("256k")
    stage = disk / "stage"
    assert run(capsys, "data", "push", "--repo", "u/d", "--data", MICRO, "--stage", stage)[0] == 0
    staged = tree(stage)
    status, err = run(capsys, "data", "push", "--repo", "u/d", "--data", TRAIN_FILE, "--stage", stage)
    assert status == 1 and message(err, "data push").startswith("friction data push: The disk is full")
    assert tree(stage) == staged and sorted(p.name for p in disk.iterdir()) == [".stage.lock", "stage"]


def test_a_read_only_disk_is_one_line(small_disk, capsys):
    disk = small_disk("64k", "ro")
    status, err = run(capsys, "data", "curate", MICRO, "--out", disk / "curated.jsonl")
    assert status == 1 and f"The file system is read-only at {disk}." in message(err, "data curate")


def _without_root_powers() -> None:
    """Run as root without the powers to ignore file modes (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP: gone after exec
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def test_a_folder_without_write_permission_is_one_line(tmp_path):
    folder = tmp_path / "theirs"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        as_user = {"preexec_fn": _without_root_powers} if os.geteuid() == 0 else {}
        process = friction("data", "curate", MICRO, "--out", folder / "curated.jsonl", **as_user)
        _, err = process.communicate(timeout=120)
    finally:
        folder.chmod(0o755)
    assert process.returncode == 1 and f"Permission denied at {folder}." in message(err, "data curate")
    assert not list(folder.iterdir())


# --------------------------------------------------------------------------- bad bytes in a user's file

BAD_BYTES = {
    "binary": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\xff\xfe\n" + bytes(range(256)),
    "utf-16": "What is a zebracorn?\nWhy?\n".encode("utf-16"),
    "latin-1": "Is caf\xe9 au lait a coffee?\n".encode("latin-1"),
    "nul-bytes": b"What is\x00 a zebracorn?\n\x00\x00\n",
    "cut-utf-8": "Is caf\xe9".encode()[:-1],
    "empty": b"",
    "a folder": None,
}


def _bad_file(folder: Path, name: str, kind: str) -> Path:
    path = folder / name
    data = BAD_BYTES[kind]
    if data is None:
        path.mkdir(parents=True)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return path


def _copy_of(folder: Path, source: Path) -> Path:
    shutil.copytree(source, folder)
    return folder


def _command(name: str, kind: str, tmp: Path) -> tuple[list[object], Path, Path]:
    """(arguments, the bad file, what the command would write) for each command that reads a user's file."""
    out = tmp / "out"
    if name == "generate --seeds-dir":
        seeds = _copy_of(tmp / "seeds", ROOT / "data" / "seeds")
        (seeds / "clarification.txt").unlink()
        bad = _bad_file(seeds, "clarification.txt", kind)
        return ["generate", "--n", "1", "--friction-type", "clarification", "--seeds", "curated", "--seeds-dir",
                seeds, "--base-url", "http://127.0.0.1:9/v1", "--out", out], bad, out  # fmt: skip
    if name == "generate --personas":
        personas = _copy_of(tmp / "personas", ROOT / "data" / "personas")
        (personas / "problem_framer.yaml").unlink()
        bad = _bad_file(personas, "problem_framer.yaml", kind)
        return ["generate", "--n", "1", "--friction-type", "clarification", "--personas", personas,
                "--base-url", "http://127.0.0.1:9/v1", "--out", out], bad, out  # fmt: skip
    bad = _bad_file(tmp, "config.yaml" if name == "train --config" else "user.jsonl", kind)
    args: dict[str, list[object]] = {
        "data curate": ["data", "curate", bad, "--out", out],
        "train --data": ["train", "--data", bad, "--out", out],
        "train --config": ["train", "--config", bad, "--data", MICRO, "--out", out],
        "data pairs --pairs": [
            "data",
            "pairs",
            "--train",
            MICRO,
            "--pairs",
            bad,
            "--no-coconot",
            "--out",
            out,
        ],
        "data pairs --train": ["data", "pairs", "--train", bad, "--pairs", "--no-coconot", "--out", out],
        "data push --data": ["data", "push", "--repo", "u/d", "--data", bad, "--stage", out],
    }
    return args[name], bad, out


READERS = ("data curate", "generate --seeds-dir", "generate --personas", "train --data", "train --config",
           "data pairs --pairs", "data pairs --train", "data push --data")  # fmt: skip
# An empty config file means "no overrides", an empty pairs file "no team-written pairs": both are valid input.
VALID = {("train --config", "empty"), ("data pairs --pairs", "empty")}
BAD_INPUTS = [(name, kind) for name in READERS for kind in BAD_BYTES if (name, kind) not in VALID]


@pytest.mark.parametrize(("name", "kind"), BAD_INPUTS)
def test_bad_bytes_in_a_users_file_are_one_message_naming_the_file(name, kind, tmp_path, capsys):
    """Every command that reads a file the user gives: binary, UTF-16, Latin-1, NUL bytes, UTF-8 cut mid-letter,
    an empty file, a folder. A message that names the file (no traceback), exit 2, nothing written."""
    args, bad, out = _command(name, kind, tmp_path)
    status, err = run(capsys, *args)
    line = message(err, args[0] if name.startswith(("train", "generate")) else " ".join(map(str, args[:2])))
    assert status == 2 and str(bad) in line, err[-1500:]
    assert not out.exists(), line


# --------------------------------------------------------------------------- damaged files


def test_a_damaged_adapter_is_one_line_for_chat(test_adapter, tmp_path, capsys):
    """chat (the transformers engine) on an adapter whose weights were cut off: one line, exit 1."""
    damaged = shutil.copytree(test_adapter, tmp_path / "adapter")
    os.truncate(damaged / WEIGHTS_NAME, (damaged / WEIGHTS_NAME).stat().st_size // 2)
    status, err = run(capsys, "chat", "hi", "--adapter", damaged, "--max-new-tokens", "4")
    assert status == 1 and "safetensors file is damaged" in message(err, "chat")


# --------------------------------------------------------------------------- a folder in the wrong place


@pytest.mark.parametrize(
    "args",
    [
        ["data", "curate", MICRO, "--out", "."],
        [*GENERATE, "--n", "1", "--base-url", "http://127.0.0.1:9/v1", "--out", "."],
        ["data", "pairs", "--train", MICRO, "--pairs", "--no-coconot", "--out", "."],
        ["data", "push", "--repo", "u/d", "--data", MICRO, "--stage", "."],
    ],
    ids=["curate", "generate", "pairs", "data-push"],
)
def test_the_current_folder_as_output_is_refused_and_left_alone(args, tmp_path, monkeypatch, capsys):
    """`--out .` (or `--stage .`) for a command that writes a file, or stages a folder: refused in one line,
    and the folder the user stands in keeps exactly what it had."""
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    monkeypatch.chdir(mine)
    status, err = run(capsys, *args)
    assert status in (1, 2)
    message(err, "generate" if args[0] == "generate" else " ".join(map(str, args[:2])))
    assert tree(mine) == {"thesis.tex": b"precious"} and not list(tmp_path.glob(".*"))


def test_generate_never_appends_to_someone_elses_file(served, tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("my shopping list\n")
    status, err = run(capsys, *GENERATE, "--n", "1", "--base-url", served, "--out", notes)
    assert status == 2 and "holds no friction records" in message(err, "generate")
    assert notes.read_text() == "my shopping list\n"


# --------------------------------------------------------------------------- one writer


def _hold_lock(path: Path) -> subprocess.Popen[str]:
    hold = (
        "import sys, time\nfrom friction_lib.files import output_lock\nwith output_lock(sys.argv[1], 'x'):\n"
    )
    hold += "    print('held', flush=True)\n    time.sleep(60)\n"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    holder = subprocess.Popen(
        [sys.executable, "-c", hold, str(path)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


@pytest.mark.parametrize("command", ["generate", "data push"])
def test_a_second_writer_is_refused_with_the_first_ones_pid(command, served, tmp_path, capsys):
    out = tmp_path / ("gen.jsonl" if command == "generate" else "stage")
    holder = _hold_lock(out)
    try:
        if command == "generate":
            status, err = run(capsys, *GENERATE, "--n", "1", "--base-url", served, "--out", out)
        else:
            status, err = run(capsys, "data", "push", "--repo", "u/d", "--data", MICRO, "--stage", out)
    finally:
        holder.kill()
        holder.wait()
    assert status == 2 and f"in use by PID {holder.pid}" in message(err, command)
    assert not out.exists()


def test_two_curations_into_one_file_leave_one_whole_result(tmp_path):
    """Two `friction data curate` at once into the same --out: each write is atomic, so the file is one whole
    result (either one), never a mix."""
    out = tmp_path / "curated.jsonl"
    runs = [friction("data", "curate", source, "--out", out) for source in (MICRO, TRAIN_FILE)]
    for process in runs:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-1500:]
    ids = [r.id for r in load_jsonl(out, strict=True)]
    assert ids in ([r.id for r in load_jsonl(MICRO)], [r.id for r in load_jsonl(TRAIN_FILE)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curated.jsonl"]


# --------------------------------------------------------------------------- limits


def test_curate_removes_a_question_longer_than_the_limit_and_says_so(tmp_path):
    records = lines_of(MICRO)[:3]
    records[1]["user_input"] = "Why " * (MAX_QUESTION_CHARS // 4) + "?"  # 1 character over
    records[2]["user_input"] = "x" * (MAX_QUESTION_CHARS - 1) + "?"  # exactly the limit
    source = tmp_path / "long.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records))
    kept, stats = curate_file(source, tmp_path / "out.jsonl", verbose=False)
    assert [r.id for r in kept] == [records[0]["id"], records[2]["id"]]
    assert stats.by_kind == {"question-too-long": 1}
    assert (
        stats.removed[0][1]
        == f"question-too-long: user_input has 1,001 characters (maximum {MAX_QUESTION_CHARS:,})"
    )


@pytest.mark.parametrize(
    ("question", "problem"),
    [("Why " * 300 + "?", "1,201 characters"), ("What is a zebra\x00corn?", "control character")],
    ids=["too-long", "nul-byte"],
)
def test_generate_refuses_a_bad_seed_question_with_its_line(question, problem, tmp_path, capsys):
    seeds = _copy_of(tmp_path / "seeds", ROOT / "data" / "seeds")
    (seeds / "clarification.txt").write_text(f"Which one?\n{question}\n", encoding="utf-8")
    status, err = run(capsys, *GENERATE[:3], "--seeds", "curated", "--n", "2", "--seeds-dir", seeds,
                      "--base-url", "http://127.0.0.1:9/v1", "--out", tmp_path / "gen.jsonl")  # fmt: skip
    line = message(err, "generate")
    assert status == 2 and f"{seeds / 'clarification.txt'}:2: " in line and problem in line


# --------------------------------------------------------------------------- the table


def test_every_test_named_here_exists_and_each_row_counts_its_cases():
    """docs/faults.md's table names real tests, and each row's "bad inputs" is the number of their cases."""
    from conftest import fault_suite

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "faults", "tests",
                           "-p", "no:cacheprovider"], cwd=ROOT, env=env, capture_output=True, text=True)  # fmt: skip
    cases = [line.split("[")[0] for line in done.stdout.splitlines() if "::" in line]
    assert not fault_suite() - set(cases), f"named but not collected: {sorted(fault_suite() - set(cases))}"
    table = (ROOT / "docs" / "faults.md").read_text(encoding="utf-8")
    for row in re.findall(r"^\| (\d+) \|.*\| (\d+) \|$", table, flags=re.M):
        line = next(text for text in table.splitlines() if text.startswith(f"| {row[0]} |"))
        named = re.findall(r"tests/test_\w+\.py::test_\w+", line)
        assert sum(cases.count(test) for test in named) == int(row[1]), line
    assert f"collects {len(cases)} cases" in table
