"""Hub releases, offline: staged folders, cards parsed by huggingface_hub, the dataset loaded back by
`datasets`, and the refusals (bad repo id, --push without a token) before anything is written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from test_schema import make_record

from friction_lib import publish
from friction_lib.errors import FrictionError
from friction_lib.schema import FRICTION_TYPES, PERSONAS, write_jsonl

# The shape `friction train` writes (train.py), trimmed.
TRAINING_CARD = {
    "profile": "cpu",
    "base_model": "HuggingFaceTB/SmolLM2-135M-Instruct",
    "path": {"device": "cpu", "quant": "nf4", "described": "cpu fp32 LoRA on NF4"},
    "config": {"profile": "cpu", "lora_r": 16, "lora_alpha": 32, "epochs": 2.0, "learning_rate": 0.0004},
    "dataset": {
        "path": "data/friction_train.jsonl",
        "sha256": "ab" * 32,
        "records": 400,
        "train_records": 360,
    },
    "losses": {
        "train": [{"step": 10, "loss": 2.1}, {"step": 20, "loss": 1.4}],
        "eval": [{"step": 20, "loss": 1.6}],
    },
    "final_eval_loss": 1.6,
    "versions": {"transformers": "5.23.0", "peft": "0.21.2"},
    "before_after": [{"prompt": "Is the Moon made of cheese?", "before": "Yes.", "after": "No, it is rock."}],
}
RESULTS = {
    "overall": {"n": 60, "tpr": 0.64, "fpr": 0.11, "j": 0.53, "f1": 0.7, "degenerate_rate": 0.0},
    "categories": {
        "false_premise": {"n": 10, "tpr": 0.8, "fpr": 0.1, "j": 0.7, "f1": 0.8, "degenerate_rate": 0.0}
    },
}


def _adapter(folder: Path, card: dict | None = TRAINING_CARD) -> Path:
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(
        json.dumps({"base_model_name_or_path": "/home/someone/cache/SmolLM2", "r": 8, "peft_type": "LORA"})
    )
    tensors = {"base_model.model.layers.0.q_proj.lora_A.weight": torch.zeros(8, 4)}  # a tiny, whole file
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    if card is not None:
        (folder / "training_card.json").write_text(json.dumps(card))
    return folder


def _export(folder: Path, adapter: Path, profile: str = "cpu") -> Path:
    """A small stand-in for a `friction export` folder (layout only; test_export makes real ones)."""
    (folder / "merged").mkdir(parents=True)
    (folder / "merged" / "config.json").write_text("{}")
    (folder / "merged" / "model.safetensors").write_bytes(b"\0" * 64)
    for name in ("m-f16.gguf", "m-q8_0.gguf"):
        (folder / name).write_bytes(b"GGUF" + b"\0" * 60)
        (folder / name.replace(".gguf", ".Modelfile")).write_text(f"FROM ./{name}\n")
    (folder / "Modelfile").write_text("FROM ./m-q8_0.gguf\n")
    (folder / "verification.json").write_text(
        json.dumps(
            {"passed": True, "checks": [{"gguf": "m-q8_0.gguf", "check": "stops_on_its_own", "passed": True}]}
        )
    )
    manifest = {
        "adapter": str(adapter),
        "profile": profile,
        "merged": "merged",
        "ggufs": {"f16": "m-f16.gguf", "q8_0": "m-q8_0.gguf"},
        "modelfiles": {"m-f16.gguf": "m-f16.Modelfile", "m-q8_0.gguf": "m-q8_0.Modelfile"},
        "ollama_name": "friction-smollm2-135m",
    }
    (folder / "export.json").write_text(json.dumps(manifest))
    return folder


def uploaded(folder: Path) -> list[str]:
    """What `upload_folder` sends of a staged folder: huggingface_hub's own filter with our ignore patterns."""
    from huggingface_hub.utils import filter_repo_objects

    every = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    return list(filter_repo_objects(every, ignore_patterns=publish.UPLOAD_IGNORE))


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    "repo_id", ["noslash", "a/b/c", "alice/bad--name", "alice/.hidden", "alice/with space", ""]
)
def test_invalid_repo_ids_are_refused(repo_id):
    with pytest.raises(FrictionError, match="Invalid repo id"):
        publish.check_repo_id(repo_id)


def test_push_without_a_token_fails_before_anything_is_written(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    adapter = _adapter(tmp_path / "adapter")
    stage = tmp_path / "stage"
    with pytest.raises(FrictionError, match="HF_TOKEN"):
        publish.publish_model("alice/push-back", ["adapter"], adapter=adapter, push=True, stage_dir=stage)
    with pytest.raises(FrictionError, match="HF_TOKEN"):
        publish.push_dataset("alice/push-back-data", tmp_path / "any.jsonl", push=True, stage_dir=stage)
    assert not stage.exists() and not list(tmp_path.glob(".stage*"))


def test_cli_reports_bad_input_without_a_traceback(tmp_path, capsys, monkeypatch):
    from friction_lib.cli import main

    monkeypatch.delenv("HF_TOKEN", raising=False)
    assert main(["publish", "--repo", "not a repo"]) == 2
    assert "Invalid repo id" in capsys.readouterr().err
    assert main(["data", "push", "--repo", "alice/data", "--push"]) == 2
    assert "HF_TOKEN" in capsys.readouterr().err


def test_what_needs_its_inputs(tmp_path):
    adapter = _adapter(tmp_path / "adapter")
    with pytest.raises(FrictionError, match="--export"):
        publish.stage_model("alice/x", ["gguf"], adapter=adapter, stage_dir=tmp_path / "s")
    with pytest.raises(FrictionError, match="Unknown --what"):
        publish.stage_model("alice/x", ["weights"], adapter=adapter, stage_dir=tmp_path / "s")


# --------------------------------------------------------------------------- paths in export.json are data


def _private(tmp_path: Path) -> Path:
    """Someone's private files outside every folder the release may read."""
    private = tmp_path / "private"
    private.mkdir()
    (private / "id_ed25519").write_text("-----BEGIN OPENSSH PRIVATE KEY----- SECRET\n")
    return private


def _rewrite(export_dir: Path, **changes) -> None:
    manifest = json.loads((export_dir / "export.json").read_text())
    (export_dir / "export.json").write_text(json.dumps({**manifest, **changes}))


def _nothing_secret_staged(tmp_path: Path) -> None:
    """No file outside private/ holds the secret, and no staging folder (finished or partial) is left."""
    leaked = [p for p in tmp_path.rglob("*") if p.is_file() and not p.is_symlink() and "private" not in p.parts
              and b"SECRET" in p.read_bytes()]  # fmt: skip
    assert leaked == []
    assert not (tmp_path / "stage").exists()
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]


@pytest.mark.parametrize("merged", ["absolute", "../private", "merged/../../private"])
def test_merged_path_outside_the_export_is_refused(tmp_path, merged):
    private = _private(tmp_path)
    export_dir = _export(tmp_path / "export", _adapter(tmp_path / "adapter"))
    _rewrite(export_dir, merged=str(private) if merged == "absolute" else merged)
    with pytest.raises(FrictionError, match=r"Refused the path .* in .*export.json.*no absolute paths"):
        publish.stage_model("alice/a", ["merged"], export=export_dir, stage_dir=tmp_path / "stage")
    _nothing_secret_staged(tmp_path)


@pytest.mark.parametrize("name", ["../evil.gguf", "../../b/evil.gguf", "/tmp/evil.gguf"])
def test_gguf_name_leaving_the_export_is_refused_and_nothing_is_written_outside(tmp_path, name):
    adapter = _adapter(tmp_path / "adapter")
    export_dir = _export(tmp_path / "a" / "export", adapter)
    (tmp_path / "a" / "evil.gguf").write_text("evil")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "evil.gguf").write_text("evil")
    # where the old staging wrote "gguf/../../b/evil.gguf", a file already stood: it must stay as it is
    victim = tmp_path / "s" / "b" / "evil.gguf"
    victim.parent.mkdir(parents=True)
    victim.write_text("precious")
    _rewrite(export_dir, ggufs={"q8_0": name})
    before = sorted(p for p in tmp_path.rglob("*"))
    with pytest.raises(FrictionError, match="Refused the path"):
        publish.stage_model("alice/a", ["gguf"], export=export_dir, stage_dir=tmp_path / "s" / "stage")
    assert victim.read_text() == "precious"
    assert sorted(p for p in tmp_path.rglob("*") if ".stage.lock" not in p.name) == before


@pytest.mark.parametrize("link", ["m-q8_0.gguf", "merged/config.json", "Modelfile", "export.json"])
def test_symlink_out_of_the_export_folder_is_refused(tmp_path, link):
    private = _private(tmp_path)
    export_dir = _export(tmp_path / "export", _adapter(tmp_path / "adapter"))
    target = export_dir / link
    if link == "export.json":  # the manifest itself, moved out and linked back
        (private / "export.json").write_text(target.read_text())
        private = private / "export.json"
    else:
        private = private / "id_ed25519"
    target.unlink()
    target.symlink_to(private)
    with pytest.raises(FrictionError, match="symlink that leads out"):
        publish.stage_model("alice/a", ["merged", "gguf"], export=export_dir, stage_dir=tmp_path / "stage")
    _nothing_secret_staged(tmp_path)


def test_two_files_staged_under_one_name_are_refused(tmp_path):
    export_dir = _export(tmp_path / "export", _adapter(tmp_path / "adapter"))
    _rewrite(export_dir, modelfiles={"m-q8_0.gguf": "m-q8_0.gguf"})  # a Modelfile named like the GGUF
    with pytest.raises(FrictionError, match="Two files would be staged as 'gguf/m-q8_0.gguf'"):
        publish.stage_model("alice/a", ["gguf"], export=export_dir, stage_dir=tmp_path / "stage")
    assert not (tmp_path / "stage").exists()


def test_staging_never_writes_over_a_file_nor_outside_the_stage(tmp_path):
    stage = tmp_path / "stage"
    stage.mkdir()
    (stage / "README.md").write_text("mine")
    src = tmp_path / "new.txt"
    src.write_text("new")
    for write in (
        lambda: publish.stage_file(stage, src, "README.md"),
        lambda: publish.stage_text(stage, "README.md", "x"),
    ):
        with pytest.raises(FrictionError, match="staging never overwrites"):
            write()
    assert (stage / "README.md").read_text() == "mine"
    with pytest.raises(FrictionError, match="Refused the path"):
        publish.stage_text(stage, "gguf/../../outside.txt", "x")
    assert not (tmp_path / "outside.txt").exists()


def test_the_adapter_named_in_export_json_is_never_followed(tmp_path):
    adapter = _adapter(
        tmp_path / "adapter"
    )  # real, and named in export.json: still not used without --adapter
    export_dir = _export(tmp_path / "export", adapter)
    with pytest.raises(FrictionError, match="needs --adapter DIR.*provenance only"):
        publish.stage_model("alice/a", ["adapter", "gguf"], export=export_dir, stage_dir=tmp_path / "stage")
    folder = publish.stage_model("alice/a", ["gguf"], export=export_dir, stage_dir=tmp_path / "stage")
    assert not (folder / "adapter_model.safetensors").exists()


@pytest.mark.parametrize(
    "content", ["not json", "[]", '{"profile": "gpu"}', '{"profile": "cpu", "merged": 3}']
)
def test_a_damaged_export_json_is_a_clear_error(tmp_path, content):
    export_dir = _export(tmp_path / "export", _adapter(tmp_path / "adapter"))
    (export_dir / "export.json").write_text(content)
    with pytest.raises(FrictionError, match="export.json.*Run `friction export` again"):
        publish.stage_model("alice/a", ["gguf"], export=export_dir, stage_dir=tmp_path / "stage")


def test_ollama_name_must_be_a_plain_name(tmp_path):
    export_dir = _export(tmp_path / "export", _adapter(tmp_path / "adapter"))
    _rewrite(export_dir, ollama_name="x; rm -rf ~")  # it goes into the card's shell commands
    with pytest.raises(FrictionError, match="ollama_name .* is not a plain model name"):
        publish.stage_model("alice/a", ["gguf"], export=export_dir, stage_dir=tmp_path / "stage")


def test_a_foreign_stage_folder_is_refused(tmp_path, data_file):
    adapter = _adapter(tmp_path / "adapter")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(FrictionError, match="not made by friction"):
        publish.stage_model("alice/a", ["adapter"], adapter=adapter, stage_dir=mine)
    with pytest.raises(FrictionError, match="not made by friction"):
        publish.stage_dataset("alice/d", data_file, stage_dir=mine)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"] and (mine / "notes.txt").read_text() == "keep me"


# --------------------------------------------------------------------------- model card


def test_staged_model_card_parses_with_huggingface_hub(tmp_path):
    from huggingface_hub import ModelCard

    adapter = _adapter(tmp_path / "adapter")
    eval_dir = tmp_path / "eval"
    eval_dir.mkdir()
    (eval_dir / "results.json").write_text(json.dumps(RESULTS))
    folder = publish.stage_model(
        "alice/push-back-smollm2",
        ["adapter"],
        adapter=adapter,
        eval_path=eval_dir,
        stage_dir=tmp_path / "stage",
        dataset_repo="alice/push-back-data",
    )
    card = ModelCard.load(folder / "README.md")
    data = card.data.to_dict()
    assert data["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert data["license"] == "apache-2.0"
    assert data["library_name"] == "peft"
    assert data["pipeline_tag"] == "text-generation"
    assert data["datasets"] == ["alice/push-back-data"]
    assert {"ai-friction", "reasoning"} <= set(data["tags"])
    for text in ("## Intended use", "Over-refusal", "Tone", "| **overall** | 60 | 0.640 | 0.110", "false_premise",
                 "PeftModel.from_pretrained", "ab" * 32, "cpu fp32 LoRA on NF4", "Final eval loss: 1.6000",
                 "train loss: 2 points, last 1.4000", "No, it is rock.", "| lora_r | 16 |"):  # fmt: skip
        assert text in card.text, text
    staged_config = json.loads((folder / "adapter_config.json").read_text())
    assert staged_config["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"  # no local path
    assert (folder / "adapter_model.safetensors").exists() and (folder / "eval" / "results.json").exists()


def test_card_licence_comes_from_the_profile_and_gguf_layout(tmp_path):
    from huggingface_hub import ModelCard

    adapter = _adapter(tmp_path / "adapter", card={"profile": "colab"})
    export_dir = _export(tmp_path / "export", adapter, profile="colab")
    folder = publish.stage_model(
        "alice/push-back-r1", ["merged", "gguf"], export=export_dir, stage_dir=tmp_path / "stage"
    )
    data = ModelCard.load(folder / "README.md").data.to_dict()
    assert data["license"] == "mit" and data["base_model"] == "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
    assert data["library_name"] == "transformers"  # merged at the root when the adapter is not included
    assert "gguf" in data["tags"]
    assert (folder / "config.json").exists() and (folder / "model.safetensors").exists()
    for name in ("m-q8_0.gguf", "m-f16.gguf", "Modelfile", "m-q8_0.Modelfile", "verification.json"):
        assert (folder / "gguf" / name).exists(), name
    assert json.loads((folder / "gguf" / "export.json").read_text())["adapter"] == "adapter"  # no local path
    text = (folder / "README.md").read_text()
    assert "ollama create friction-smollm2-135m -f Modelfile" in text and "Export verification" in text


def test_restaging_replaces_the_folder(tmp_path):
    adapter = _adapter(tmp_path / "adapter")
    stage = tmp_path / "stage"
    publish.stage_model("alice/a", ["adapter"], adapter=adapter, stage_dir=stage)
    (stage / "stale.txt").write_text("old")
    publish.stage_model("alice/a", ["adapter"], adapter=adapter, stage_dir=stage)
    assert not (stage / "stale.txt").exists()
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name or ".old-" in p.name]


# --------------------------------------------------------------------------- dataset


def _record(i: int, friction_type: str) -> dict:
    agents = [
        {
            "agent_type": name,
            "thought_stream": f"Thought {i} of {name} about the question.",
            "friction_moments": [],
        }
        for name in PERSONAS[:2]
    ]
    return make_record(
        f"ft-{i:04d}",
        user_input=f"Question number {i} about {friction_type}?",
        friction_type=friction_type,
        agents=agents,
        final_answer=f"A short answer to question {i}. It has two sentences.",
    )


@pytest.fixture
def data_file(tmp_path):
    records = [_record(i, FRICTION_TYPES[i % len(FRICTION_TYPES)]) for i in range(60)]
    path = tmp_path / "friction.jsonl"
    write_jsonl(records, path)
    return path


def test_dataset_dry_run_folder_loads_back_with_datasets(data_file, tmp_path):
    from datasets import load_dataset
    from huggingface_hub import DatasetCard

    folder = publish.stage_dataset("alice/push-back-data", data_file, stage_dir=tmp_path / "stage")
    files = [str(p.relative_to(folder)) for p in publish.staged_files(folder)]
    assert (
        files
        == uploaded(folder)
        == [
            "README.md",
            "data/train-00000-of-00001.parquet",
            "data/validation-00000-of-00001.parquet",
        ]
    )
    loaded = load_dataset(str(folder))  # what the Hub will show: the README's configs map the splits
    assert set(loaded) == {"train", "validation"}
    assert len(loaded["train"]) + len(loaded["validation"]) == 60
    assert not set(loaded["train"]["id"]) & set(loaded["validation"]["id"])
    row = loaded["train"][0]
    assert row["messages"][-1]["role"] == "assistant" and row["messages"][-1]["content"].startswith("<think>")
    card = DatasetCard.load(folder / "README.md")
    data = card.data.to_dict()
    assert data["license"] == "apache-2.0" and data["language"] == ["en"]
    assert "ai-friction" in data["tags"] and data["task_categories"] == ["text-generation"]
    assert data["size_categories"] == ["n<1K"]
    for text in ("## Schema", "## Personas", "## Curation", "## Limitations", "problem_framer"):
        assert text in card.text, text


def test_the_hub_validation_split_is_the_one_training_holds_out(tmp_path):
    """One split rule: `train_data.split_records`, so a prompt (case and spacing ignored) is on one side only."""
    import pyarrow.parquet as pq

    from friction_lib.schema import load_jsonl
    from friction_lib.train_data import split_records

    rows = [_record(i, FRICTION_TYPES[i % len(FRICTION_TYPES)]) for i in range(40)]
    for i in range(0, 40, 4):  # every fourth record repeats the prompt before it, in other case and spacing
        rows[i + 1]["user_input"] = "  " + rows[i]["user_input"].upper().replace(" ", "   ")
    path = tmp_path / "friction.jsonl"
    write_jsonl(rows, path)
    folder = publish.stage_dataset(
        "alice/d", path, stage_dir=tmp_path / "split", validation_fraction=0.2, seed=7
    )
    # the parquet files as written (load_dataset offline may answer from its cache of another folder of that name)
    staged = {side: pq.read_table(folder / f"data/{side}-00000-of-00001.parquet").to_pydict()
              for side in ("train", "validation")}  # fmt: skip
    train, validation = split_records(load_jsonl(path).records, 0.2, seed=7)
    assert staged["validation"]["id"] == [r.id for r in validation]
    assert staged["train"]["id"] == [r.id for r in train]
    prompts = {side: {" ".join(p.lower().split()) for p in staged[side]["user_input"]} for side in staged}
    assert not prompts["train"] & prompts["validation"]
    assert any(
        p.isupper() for p in staged["validation"]["user_input"]
    )  # a repeated prompt went with its twin
    card = (folder / "README.md").read_text()
    assert "the one `friction train` holds out" in card and "fraction 0.2, seed 7" in card
    other = publish.build_dataset(load_jsonl(path).records, 0.2, seed=8)
    assert other["validation"]["id"] != staged["validation"]["id"]  # the seed picks the split


def test_cli_data_push_dry_run(data_file, tmp_path, capsys):
    from friction_lib.cli import main

    assert (
        main(["data", "push", "--repo", "alice/d", "--data", str(data_file), "--stage", str(tmp_path / "s")])
        == 0
    )
    out = capsys.readouterr().out
    assert "Dry run: nothing uploaded" in out and "data/train-00000-of-00001.parquet" in out


def _eval_run(folder: Path, name: str, adapter: str | None, tpr: float) -> None:
    folder.mkdir(parents=True)
    overall = {
        "n": 10,
        "tpr_strict": tpr,
        "tpr_lenient": tpr,
        "fpr": 0.1,
        "j": tpr - 0.1,
        "f1": 0.5,
        "degenerate_rate": 0.0,
    }
    results = {"name": name, "adapter": adapter, "prompts_file": "../data/eval/quick.jsonl", "created_at": "2026-11-23",
               "overall": overall, "by_category": {"harmful": {**overall, "n": 2}}}  # fmt: skip
    (folder / "results.json").write_text(json.dumps(results))


def test_eval_folder_from_04_shows_the_fine_tuned_run_next_to_the_baselines(tmp_path):
    adapter = _adapter(tmp_path / "adapter")
    eval_dir = tmp_path / "eval"
    _eval_run(eval_dir / "base", "base", None, 0.2)
    _eval_run(eval_dir / "prompt-only", "prompt-only", None, 0.3)
    with pytest.raises(
        FrictionError, match="No fine-tuned results.json"
    ):  # the base's scores are not the fine-tune's
        publish.stage_model(
            "alice/a", ["adapter"], adapter=adapter, eval_path=eval_dir, stage_dir=tmp_path / "s"
        )
    _eval_run(eval_dir / "fine-tuned", "fine-tuned", str(adapter), 0.7)
    folder = publish.stage_model(
        "alice/a", ["adapter"], adapter=adapter, eval_path=eval_dir, stage_dir=tmp_path / "s"
    )
    text = (folder / "README.md").read_text()
    assert "| run | n | tpr_strict | tpr_lenient | fpr | j | f1 | degenerate_rate |" in text
    for row in ("| base | 10 | 0.200", "| prompt-only | 10 | 0.300", "| fine-tuned | 10 | 0.700"):
        assert row in text, row
    assert "By category (fine-tuned)" in text and "| harmful | 2 | 0.700" in text
    assert json.loads((folder / "eval" / "results.json").read_text())["name"] == "fine-tuned"


# --------------------------------------------------------------------------- --push against a hub that fails

TOKEN = "hf_testtokenNeverPrinted0123456789"


def _push(tmp_path: Path, endpoint: str, *command: str, offline: str = "0") -> subprocess.CompletedProcess:
    """The real CLI in a child process, huggingface_hub pointed at `endpoint` (read when it is imported)."""
    env = {**os.environ, "HF_ENDPOINT": endpoint, "HF_HUB_OFFLINE": offline, "HF_TOKEN": TOKEN,
           "HF_HOME": str(tmp_path / "hf-home")}  # fmt: skip
    return subprocess.run([sys.executable, "-m", "friction_lib.cli", *command, "--push"], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def _one_line_error(result: subprocess.CompletedProcess, *expected: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and TOKEN not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()  # the dataset's parquet writer may show a progress bar first
    errors = [line for line in lines if line.startswith("friction ")]
    assert len(errors) == 1 and errors[0] == lines[-1], result.stderr
    for text in expected:
        assert text in errors[0], errors[0]


@pytest.fixture
def commands(tmp_path, data_file):
    adapter = _adapter(tmp_path / "adapter")
    return {
        "model": ["publish", "--repo", "alice/a", "--adapter", str(adapter), "--stage", str(tmp_path / "m")],
        "dataset": [
            "data",
            "push",
            "--repo",
            "alice/d",
            "--data",
            str(data_file),
            "--stage",
            str(tmp_path / "d"),
        ],
    }


@pytest.mark.parametrize("kind", ["model", "dataset"])
def test_push_to_an_unreachable_hub_is_one_line_naming_the_fix(tmp_path, commands, kind):
    from friction_lib.engines import free_port

    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens here
    result = _push(tmp_path, endpoint, *commands[kind])
    _one_line_error(result, f"Could not reach the Hugging Face Hub at {endpoint}", "HF_ENDPOINT", "is kept")
    assert Path(commands[kind][-1]).is_dir()  # the staged folder is kept for the retry


def test_push_while_offline_names_hf_hub_offline(tmp_path, commands):
    from friction_lib.engines import free_port

    result = _push(tmp_path, f"http://127.0.0.1:{free_port()}", *commands["model"], offline="1")
    _one_line_error(result, "HF_HUB_OFFLINE=0")


class _Refuses(BaseHTTPRequestHandler):
    """A hub that answers every request with 401, as the real one does for a bad token."""

    def _refuse(self) -> None:
        body = b'{"error": "Invalid credentials in Authorization header"}'
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_HEAD = _refuse

    def log_message(self, *args) -> None:
        pass


def test_push_with_a_refused_token_says_so(tmp_path, commands):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refuses)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        result = _push(tmp_path, f"http://127.0.0.1:{server.server_port}", *commands["model"])
    finally:
        server.shutdown()
    _one_line_error(result, "refused the token (401)", "write access", "HF_TOKEN")


def test_a_truncated_adapter_is_not_staged_for_the_hub(tmp_path, test_adapter):
    """`--what adapter` checks the weights first: a cut-off safetensors file must never reach --push."""
    import shutil

    adapter = tmp_path / "adapter"
    shutil.copytree(test_adapter, adapter)
    weights = adapter / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(FrictionError, match="is damaged"):
        publish.stage_model("alice/cut", ["adapter"], adapter=adapter, stage_dir=tmp_path / "stage")
    assert not (tmp_path / "stage").exists()
