"""Export: bad input refused before any work, and a real merge -> GGUF -> quantise -> verify run of a small
LoRA adapter on the embedded model."""

from __future__ import annotations

import json
import shutil
from collections import namedtuple
from pathlib import Path

import pytest

from friction_lib import adapters, export, modelfile
from friction_lib.cli import main
from friction_lib.errors import FrictionError

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


def test_unknown_quant_lists_the_valid_ones(tmp_path, capsys):
    with pytest.raises(FrictionError, match="Unknown quant type 'q9_9'.*q4_k_m.*q8_0"):
        export.parse_quants("q4_k_m,q9_9")
    code = main(["export", "--adapter", str(tmp_path / "a"), "--out", str(tmp_path / "out"), "--quant", "q3"])
    assert code == 2
    assert "Valid: q2_k" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


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
    with pytest.raises(FrictionError, match=r"needs about 0\.\d\d GiB .* 0\.00 GiB is free"):
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
