"""An eval run is complete or visibly unfinished (#19): a staged run folder, one writer per --out, --overwrite only
for a folder friction made, a disk check first, and answers kept beside --out so a rerun after a kill, a crash or a
full disk generates only what is missing (#18); kept answers of other prompts or another model are refused.

Engines: llama.cpp on the embedded GGUF, and a real `friction eval` process killed with SIGKILL. Where a test is
about files and folders, not a model, an explicit stub engine (opt-in) gives the answers.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from friction_lib.cli import main
from friction_lib.engines import Generation
from friction_lib.errors import FrictionError
from friction_lib.eval_partial import partial_path
from friction_lib.evaluate import RUN_FILES, EngineSpec, EvalPrompt, load_prompts, load_run, run_eval
from friction_lib.files import MARKER
from friction_lib.processes import start_child, stop_child

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "data" / "eval" / "quick.jsonl"
FOUR = [EvalPrompt(f"{cat}-{kind}", f"A question about {cat}, {kind}?", cat, expected, "team")
        for cat, expected in (("false_premise", "challenge"), ("uncertain", "abstain"))
        for kind in ("t01", "c01")]  # fmt: skip
FOUR = [
    p if p.id.endswith("t01") else EvalPrompt(p.id, p.prompt, p.category, "comply", p.source) for p in FOUR
]


class StubEngine:
    """Explicit stub (opt-in): a fixed helpful answer per prompt; counts the prompts it was asked."""

    name = "stub"
    model_name = "stub-model"

    def __init__(self, after=None):
        self.asked: list[str] = []
        self.after = after  # called once every answer is given (a test's hook)

    def generate_each(self, prompts, system=None, max_new_tokens=0, temperature=0.0):
        for i, p in enumerate(prompts):
            self.asked.append(p)
            yield i, Generation(p, "", "Sure, here is the answer.", "Sure, here is the answer.", 5, 6, 0.01,
                                self.name, self.model_name)  # fmt: skip
        if self.after:
            self.after()


def _no_leftovers(parent: Path) -> None:
    assert not [p.name for p in parent.iterdir() if ".partial-" in p.name or ".old-" in p.name]


# --------------------------------------------------------------------------- prompt files


def test_binary_bytes_in_a_prompt_file_give_file_line_and_the_fix(tmp_path, capsys):
    good = json.dumps(FOUR[0].to_dict()).encode()
    bad = tmp_path / "prompts.jsonl"
    bad.write_bytes(
        good + b"\n" + good.replace(b"A question", b"Une question \xe9t\xe9") + b"\n\x00\x01\x02\n"
    )
    with pytest.raises(FrictionError) as caught:
        load_prompts(bad)
    message = str(caught.value)
    assert f"{bad}:2: not valid UTF-8 (byte 0xe9 at column" in message
    assert f"{bad}:3: binary data, not text (a NUL byte at column 1)" in message
    assert "Save the file as UTF-8 text" in message and f"{bad}:1:" not in message
    assert main(["eval", "--prompts", str(bad), "--out", str(tmp_path / "out")]) == 2
    assert "UnicodeDecodeError" not in capsys.readouterr().err


# --------------------------------------------------------------------------- output folders


def test_overwrite_replaces_only_a_folder_friction_made(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("the user's own file")
    with pytest.raises(FrictionError, match="was not made by friction"):
        run_eval(FOUR, mine, engine=StubEngine(), overwrite=True, progress=False)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    out = tmp_path / "run"
    run_eval(FOUR, out, engine=StubEngine(), progress=False)
    with pytest.raises(FrictionError, match="already exists. Pass --overwrite"):
        run_eval(FOUR, out, engine=StubEngine(), progress=False)
    run_eval(FOUR, out, engine=StubEngine(), overwrite=True, name="again", progress=False)
    assert load_run(out)["results"]["name"] == "again" and (out / MARKER).is_file()
    _no_leftovers(tmp_path)


def test_overwrite_replaces_a_run_an_earlier_friction_eval_wrote(tmp_path):
    """Runs written before run folders carried the marker hold exactly the run's files: --overwrite takes them."""
    out = tmp_path / "run"
    run_eval(FOUR, out, engine=StubEngine(), progress=False)
    (out / MARKER).unlink()
    run_eval(FOUR, out, engine=StubEngine(), overwrite=True, name="new", progress=False)
    assert load_run(out)["results"]["name"] == "new"
    (out / MARKER).unlink()
    (out / "thesis.tex").write_text("not an eval file")
    with pytest.raises(FrictionError, match="was not made by friction"):
        run_eval(FOUR, out, engine=StubEngine(), overwrite=True, progress=False)


def test_a_failed_rerun_leaves_the_previous_run_as_it_was(tmp_path):
    out = tmp_path / "run"
    run_eval(FOUR, out, engine=StubEngine(), name="first", progress=False)

    def crash() -> None:
        raise RuntimeError("the engine died")

    with pytest.raises(RuntimeError, match="engine died"):
        run_eval(FOUR, out, engine=StubEngine(after=crash), overwrite=True, name="second", progress=False)
    assert load_run(out)["results"]["name"] == "first"
    assert sorted(p.name for p in out.iterdir()) == sorted([*RUN_FILES, MARKER])
    _no_leftovers(tmp_path)
    assert partial_path(out).is_file()  # visibly unfinished: the second run's answers are kept beside --out
    engine = StubEngine()
    run_eval(FOUR, out, engine=engine, overwrite=True, name="second", progress=False)
    assert engine.asked == [] and not partial_path(out).exists()


# --------------------------------------------------------------------------- kept answers: resume and refusal


class CrashAfter:
    """A real engine whose process 'crashes' after `n` answers (fault injection, opt-in)."""

    def __init__(self, engine, n: int):
        self.engine, self.n = engine, n
        self.name, self.model_name = engine.name, engine.model_name

    def settings(self, temperature=0.0):
        return self.engine.settings(temperature)

    def generate_each(self, prompts, system=None, max_new_tokens=0, temperature=0.0):
        for count, item in enumerate(self.engine.generate_each(prompts, system, max_new_tokens, temperature)):
            if count == self.n:
                raise KeyboardInterrupt
            yield item


@pytest.mark.engine
def test_kept_answers_of_other_prompts_another_model_or_budget_are_refused(
    llamacpp_engine, transformers_engine, tmp_path, capsys
):
    prompts = load_prompts(QUICK)[:4]
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_eval(prompts, out, engine=CrashAfter(llamacpp_engine, 2), max_new_tokens=8, progress=False)
    kept = partial_path(out)
    assert len(kept.read_text().splitlines()) == 3 and not out.exists()
    assert f"2 answers are kept in {kept}" in capsys.readouterr().err
    cases = [
        (dict(prompts=load_prompts(QUICK)[:5], engine=llamacpp_engine), "holds answers to other prompts"),
        (dict(prompts=prompts, engine=transformers_engine), "holds answers of another model"),
        (
            dict(prompts=prompts, engine=llamacpp_engine, max_new_tokens=12),
            "max_new_tokens 8; this run has 12",
        ),
        (dict(prompts=prompts, engine=llamacpp_engine, system="friction"), "system_prompt 'default'"),
    ]
    for kwargs, reason in cases:
        kwargs.setdefault("max_new_tokens", 8)
        with pytest.raises(
            FrictionError, match=f"Refused to resume: {kept} .*{reason}.*delete it to start over"
        ):
            run_eval(kwargs.pop("prompts"), out, progress=False, **kwargs)
        assert not out.exists()
    results = run_eval(prompts, out, engine=llamacpp_engine, max_new_tokens=8, progress=False)
    assert (results["timing"]["resumed"], results["timing"]["generated"]) == (2, 2)
    assert not kept.exists()


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip().endswith("}")]


@pytest.mark.slow
@pytest.mark.engine
def test_a_killed_eval_holds_its_out_then_resumes_with_only_the_missing_prompts(tmp_path):
    out = tmp_path / "run"
    args = ["eval", "--engine", "llamacpp", "--threads", "1", "--prompts", str(QUICK), "--per-group", "2",
            "--max-new-tokens", "24", "--out", str(out)]  # fmt: skip
    kept = partial_path(out)
    with open(tmp_path / "eval.log", "w") as log:
        proc = start_child([sys.executable, "-m", "friction_lib.cli", *args], stdout=log, stderr=subprocess.STDOUT,
                           env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while (
            proc.poll() is None
            and time.monotonic() < deadline
            and len(_lines(kept) if kept.exists() else []) < 4
        ):
            time.sleep(0.2)
        assert len(_lines(kept)) >= 4, (tmp_path / "eval.log").read_text()[-2000:]
        with pytest.raises(FrictionError, match=f"in use by PID {proc.pid}"):  # one writer per --out
            run_eval(QUICK, out, engine=EngineSpec(engine="llamacpp"), progress=False)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        stop_child(proc, grace=1.0)
    assert not out.exists()  # visibly unfinished: no run folder, only the kept answers
    answers = _lines(kept)[1:]
    marked = answers[0]["id"]
    text = kept.read_text().replace(json.dumps(answers[0]["answer"]), json.dumps("Kept verbatim: no."), 1)
    kept.write_text(text + '{"id": "torn-by-the-kill", "reas')  # a line cut short by the kill
    assert main(args) == 0
    results = load_run(out)["results"]
    assert results["timing"]["resumed"] == len(answers) and results["timing"]["generated"] == 20 - len(
        answers
    )
    row = next(r for r in load_run(out)["responses"] if r["id"] == marked)
    assert row["answer"] == "Kept verbatim: no."  # a kept answer is not generated again
    assert not kept.exists()
    _no_leftovers(tmp_path)


# --------------------------------------------------------------------------- disk space (a small tmpfs)


@pytest.fixture
def tiny_disk(tmp_path):
    """A 2 MiB tmpfs mounted for the test (root only), always unmounted."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root; the disk-full tests run where the suite runs as root")
    disk = tmp_path / "disk"
    disk.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], capture_output=True,
                          text=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield disk
    finally:
        if subprocess.run(["umount", str(disk)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(disk)], check=False)


def _fill(disk: Path, leave: int) -> Path:
    filler = disk / "filler.bin"
    filler.write_bytes(b"\0" * max(0, shutil.disk_usage(disk).free - leave))
    return filler


def test_too_little_disk_is_refused_before_any_work(tiny_disk):
    _fill(tiny_disk, 64 * 1024)
    engine = StubEngine()
    with pytest.raises(FrictionError, match="Not enough disk space for the eval run"):
        run_eval(FOUR, tiny_disk / "run", engine=engine, progress=False)
    assert engine.asked == [] and sorted(p.name for p in tiny_disk.iterdir()) == [".run.lock", "filler.bin"]


def test_a_disk_that_fills_while_writing_leaves_no_run_and_the_rerun_only_writes(tiny_disk):
    out = tiny_disk / "run"
    with pytest.raises(
        FrictionError, match=r"The disk is full .* 4 answers are kept in .*run\.partial\.jsonl"
    ):
        run_eval(FOUR, out, engine=StubEngine(after=lambda: _fill(tiny_disk, 16 * 1024)), max_new_tokens=8,
                 progress=False)  # fmt: skip
    assert not out.exists()
    _no_leftovers(tiny_disk)
    (tiny_disk / "filler.bin").unlink()
    engine = StubEngine()
    results = run_eval(FOUR, out, engine=engine, max_new_tokens=8, progress=False)
    assert engine.asked == [] and results["timing"]["resumed"] == 4
    assert all((out / name).is_file() for name in RUN_FILES)
    assert not partial_path(out).exists()
