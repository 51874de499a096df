"""friction_lib.train: config validation, the loss mask on the real tokenizer, the split, bad input, TRL's
keyword names, and one real (interrupted, then resumed) NF4 smoke training run on the embedded model."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
from test_schema import make_record as schema_record

from friction_lib import adapters, files, schema, train, train_config, train_data, train_runs
from friction_lib.chat import SYSTEM_PROMPT
from friction_lib.errors import FrictionError
from friction_lib.models import cuda_available

REASONING = "The zebracorn premise is false"
ANSWER = "Quokkas are marsupials"
ROOT = Path(__file__).resolve().parents[1]
USER = "Why are platypus eggs square?"


def make_record(i: int, user: str | None = None, reasoning: str = REASONING, answer: str = ANSWER) -> dict:
    agents = [
        {
            "agent_type": "problem_framer",
            "thought_stream": f"{reasoning}, number {i}.",
            "friction_moments": [{"type": "false_premise", "marker": "premise is false"}],
        },
        {
            "agent_type": "synthesizer",
            "thought_stream": "Correct it briefly, then help.",
            "friction_moments": [],
        },
    ]
    return schema_record(
        f"t-{i:03d}",
        user_input=user or f"{USER} (variant {i})",
        friction_type="false_premise",
        agents=agents,
        final_answer=f"{answer}, and eggs are not square ({i}).",
    )


def write_dataset(path: Path, n: int) -> Path:
    schema.write_jsonl([make_record(i) for i in range(n)], path)
    return path


def records(n: int) -> list[schema.FrictionRecord]:
    return [schema.FrictionRecord.model_validate(make_record(i)) for i in range(n)]


@pytest.fixture(scope="module")
def tok(embedded_model_dir):
    from friction_lib.models import load_tokenizer

    return load_tokenizer(str(embedded_model_dir))


# --------------------------------------------------------------------------- config


def test_talk_defaults_are_the_predecessors():
    c = train_config.make_config("talk")
    assert (c.lora_r, c.lora_alpha, c.lora_dropout) == (32, 64, 0.0)
    assert tuple(c.target_modules) == train_config.ALL_PROJECTIONS and len(c.target_modules) == 7
    assert (c.learning_rate, c.lr_scheduler, c.warmup_ratio) == (2e-4, "cosine", 0.1)
    assert (c.epochs, c.early_stopping_patience, c.early_stopping_threshold, c.load_best) == (
        7,
        3,
        0.005,
        True,
    )
    assert (c.weight_decay, c.max_grad_norm, c.batch_size, c.grad_accum) == (0.01, 0.5, 2, 4)
    assert (c.optim, c.max_length, c.eval_fraction, c.seed) == ("adamw_8bit", 4096, 0.1, 42)


def test_cpu_profile_is_scaled_down_and_smoke_is_tiny():
    cpu = train_config.make_config("cpu")
    assert cpu.lora_r < 32 and cpu.max_length <= 512 and not cpu.gradient_checkpointing
    assert cpu.optim == "adamw_torch"  # 8-bit optimisers are for CUDA
    smoke = train_config.make_config("cpu", "smoke")
    assert 0 < smoke.max_steps <= 5 and smoke.eval_steps <= smoke.max_steps


def test_overrides_and_yaml_file(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("profile: talk\nlora_r: 64\nlearning_rate: 1e-4\ntarget_modules: [q_proj, v_proj]\n")
    c = train_config.make_config(None, cfg, max_steps=7)
    assert (c.profile, c.lora_r, c.learning_rate, c.max_steps) == ("talk", 64, 1e-4, 7)
    assert c.target_modules == ["q_proj", "v_proj"]
    assert c.lora_alpha == 64  # the talk default stays where the file says nothing


@pytest.mark.parametrize(
    ("kwargs", "hint"),
    [({"learning_rat": 1e-4}, "learning_rate"), ({"lora_rank": 8}, "lora_r"), ({"epoch": 2}, "epochs")],
)
def test_unknown_key_suggests_the_right_one(kwargs, hint):
    with pytest.raises(FrictionError, match=f"did you mean '{hint}'"):
        train_config.make_config("cpu", **kwargs)


def test_unknown_key_in_yaml_names_the_file(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("lora_alpah: 16\n")
    with pytest.raises(FrictionError, match=r"bad\.yaml.*lora_alpah.*did you mean 'lora_alpha'"):
        train_config.make_config("cpu", cfg)


def test_invalid_yaml_gives_the_line(tmp_path):
    cfg = tmp_path / "broken.yaml"
    cfg.write_text("lora_r: 8\nlearning_rate: [1e-4\n")
    with pytest.raises(FrictionError, match=r"broken\.yaml:\d+: not valid YAML"):
        train_config.make_config("cpu", cfg)


def test_unknown_profile_and_preset_suggest():
    with pytest.raises(FrictionError, match="did you mean 'cpu'"):
        train_config.make_config("cpuu")
    with pytest.raises(FrictionError, match="did you mean 'smoke'"):
        train_config.make_config("cpu", "smok")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lora_r": 0}, "lora_r must be > 0"),
        ({"eval_fraction": 0.7}, "eval_fraction"),
        ({"quant": "nf8"}, "did you mean 'nf4'"),
        ({"batching": "packing"}, "did you mean 'packed'"),
        ({"lora_r": "sixteen"}, "lora_r must be of type int"),
        ({"load_best": False}, "early stopping needs load_best"),
        ({"reasoning": "firts"}, "did you mean 'first'"),
    ],
)
def test_invalid_values(kwargs, match):
    with pytest.raises(FrictionError, match=match):
        train_config.make_config("cpu", **kwargs)


def test_describe_config_shows_every_knob():
    text = train_config.describe_config(train_config.make_config("cpu"))
    for name in ("lora_r", "learning_rate", "max_length", "batching", "quant"):
        assert name in text


# --------------------------------------------------------------------------- the loss mask


def test_labels_cover_the_assistant_turn_only(tok):
    messages = schema.to_messages(records(1)[0])
    example = train_data.encode_example(tok, messages, max_length=512)
    labels, ids = example["labels"], example["input_ids"]
    assert len(labels) == len(ids)
    assert any(label != -100 for label in labels), "every label is masked: nothing would be learned"
    assert any(label == -100 for label in labels), "nothing is masked: the prompt would be learned too"
    # masked first, then one contiguous trained block to the end
    first = next(i for i, label in enumerate(labels) if label != -100)
    assert first == example["prompt_tokens"]
    assert all(label == -100 for label in labels[:first]) and all(label != -100 for label in labels[first:])
    assert labels[first:] == ids[first:]

    inside = train_data.loss_text(tok, example)
    assert REASONING in inside and ANSWER in inside and "<think>" in inside and "</think>" in inside
    assert inside.rstrip().endswith("<|im_end|>")  # the model learns to stop
    assert USER not in inside and SYSTEM_PROMPT not in inside and "user" not in inside.split("<think>")[0]

    shown = train_data.show_label_mask(tok, example)
    assert REASONING in shown and ANSWER in shown
    assert USER not in shown and "thoughtful assistant" not in shown and "___" in shown


def test_reasoning_stays_in_the_loss_with_a_template_that_strips_think(tok):
    """An R1-distill-like template removes <think>...</think> from assistant turns and pre-fills <think>."""
    import copy

    r1 = copy.deepcopy(tok)
    r1.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'system' %}{{ m['content'] }}"
        "{% elif m['role'] == 'user' %}<|im_start|>User: {{ m['content'] }}"
        "{% else %}<|im_start|>Assistant: {{ m['content'].split('</think>')[-1] }}<|im_end|>{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>Assistant: <think>\n{% endif %}"
    )
    example = train_data.encode_example(r1, schema.to_messages(records(1)[0]))
    inside = train_data.loss_text(r1, example)
    assert REASONING in inside and ANSWER in inside and "</think>" in inside
    assert USER not in inside


def test_long_examples_are_cut_and_a_prompt_that_fills_max_length_is_an_error(tok):
    example = train_data.encode_example(tok, schema.to_messages(records(1)[0]), max_length=60)
    assert len(example["input_ids"]) == 60 and example["truncated"]
    with pytest.raises(FrictionError, match="max_length=20"):
        train_data.encode_records(tok, records(1), max_length=20)


def test_reasoning_first_trains_only_the_decision_line(tok):
    full, first = (train_data.encode_records(tok, records(1), 512, keep)[0][0] for keep in ("all", "first"))
    inside_first = train_data.loss_text(tok, first)
    assert REASONING in inside_first and ANSWER in inside_first
    assert "Correct it briefly" not in inside_first and "Correct it briefly" in train_data.loss_text(
        tok, full
    )
    assert len(first["input_ids"]) < len(full["input_ids"])


def test_decision_rows_train_only_the_decision_on_extra_short_rows(tok):
    (full,) = train_data.encode_records(tok, records(1), 512, "decision")[0]
    rows, _ = train_data.encode_records(tok, records(1), 512, "decision", decision_rows=2)
    assert len(rows) == 3 and rows[0] == full and rows[1] == rows[2]
    short = rows[1]
    phrase = schema.DECISION_PHRASES["false_premise"]
    assert train_data.loss_text(tok, short) == f"<think>\n{phrase}"  # nothing of the thought or the answer
    n = len(short["input_ids"])
    assert short["input_ids"] == full["input_ids"][:n] and short["labels"][:n] == full["labels"][:n]
    # with the relay's first line as the decision (reasoning: first), the row stops after that line
    (first_short,) = train_data.encode_records(tok, records(1), 512, "first", decision_rows=1)[0][1:]
    assert train_data.loss_text(tok, first_short) == f"<think>\n{REASONING}, number 0."


def test_decision_rows_need_a_think_line():
    with pytest.raises(FrictionError, match="decision_rows needs a <think> line"):
        train_config.make_config("cpu", decision_rows=1, reasoning="none")
    with pytest.raises(FrictionError, match="decision_rows must be >= 0"):
        train_config.make_config("cpu", decision_rows=-1)


# --------------------------------------------------------------------------- the split


def test_split_is_seeded_90_10_and_disjoint():
    recs = records(40)
    tr, ev = train_data.split_records(recs, 0.1, 42)
    assert (len(tr), len(ev)) == (36, 4)
    assert {r.id for r in tr}.isdisjoint({r.id for r in ev})
    assert {r.id for r in tr} | {r.id for r in ev} == {r.id for r in recs}
    again = train_data.split_records(recs, 0.1, 42)[1]
    assert [r.id for r in again] == [r.id for r in ev]
    assert [r.id for r in train_data.split_records(recs, 0.1, 7)[1]] != [r.id for r in ev]


def test_duplicate_prompts_never_straddle_the_split():
    recs = [
        schema.FrictionRecord.model_validate(make_record(i, user=f"Question {i % 8}?")) for i in range(40)
    ]
    for seed in range(5):
        tr, ev = train_data.split_records(recs, 0.1, seed)
        assert {r.user_input for r in tr}.isdisjoint({r.user_input for r in ev})


def test_too_small_for_the_split():
    with pytest.raises(FrictionError, match="needs at least 10"):
        train_data.split_records(records(5), 0.1, 42)


def _tiny_model(tok):
    """A small randomly initialised Llama with the embedded tokenizer's vocabulary: real, and fast to build."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=1024,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
    )
    return LlamaForCausalLM(config)


def _trainer(tok, config, tmp_path, rows_train, rows_eval):
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    path = train.TrainPath("hf", "none", "cpu", "test")
    kwargs = train.sft_config_kwargs(config, path, tmp_path / "ckpt", len(rows_train))
    return kwargs, SFTTrainer(
        model=_tiny_model(tok),
        args=SFTConfig(**kwargs),
        train_dataset=Dataset.from_list(rows_train),
        eval_dataset=Dataset.from_list(rows_eval),
        processing_class=tok,
        peft_config=LoraConfig(
            r=4, lora_alpha=8, target_modules=list(train_config.ALL_PROJECTIONS), task_type="CAUSAL_LM"
        ),
    )


@pytest.mark.drift
@pytest.mark.parametrize("batching", train_config.BATCHING)
def test_sft_trainer_takes_exactly_our_kwargs_and_keeps_our_labels(tok, tmp_path, batching):
    """The installed TRL accepts every keyword we pass, and trains on the labels we built (not its own)."""
    config = train_config.make_config("cpu", batching=batching)
    tr, ev = train_data.split_records(records(20), 0.1, 42)
    rows_tr, _ = train_data.encode_records(tok, tr, config.max_length)
    rows_ev, _ = train_data.encode_records(tok, ev, config.max_length)
    kwargs, trainer = _trainer(tok, config, tmp_path, rows_tr, rows_ev)
    assert kwargs[train.checkpointing_keyword()] is False and kwargs["bf16"] is False
    assert kwargs["eval_strategy"] == kwargs["save_strategy"] == "steps" and kwargs["load_best_model_at_end"]
    assert trainer.args.packing == (batching == "packed")
    assert trainer.args.padding_free == (batching == "padding_free")
    prepared = trainer.train_dataset
    if batching != "packed":
        assert prepared["labels"] == [r["labels"] for r in rows_tr]
    # nothing crosses from train into validation, packed or not
    packed_train = [list(ids) for ids in prepared["input_ids"]]

    def contains(haystack: list[int], needle: list[int]) -> bool:
        n = len(needle)
        return any(haystack[i : i + n] == needle for i in range(len(haystack) - n + 1))

    for row in rows_ev:
        assert not any(contains(h, row["input_ids"]) for h in packed_train)
    for row in rows_tr:  # the check above could fail: every train example is found
        assert any(contains(h, row["input_ids"]) for h in packed_train)


@pytest.mark.drift
def test_padding_free_batches_keep_sequences_apart(tok):
    """Padding-free flattens a batch into one row; on CPU (SDPA) the sequences must still not see each other."""
    import torch
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    torch.manual_seed(0)
    model = _tiny_model(tok).eval()
    rows, _ = train_data.encode_records(tok, records(3), 512)
    rows[1] = {k: v[:-7] for k, v in rows[1].items()}  # different lengths, so the padded batch has padding
    padded = DataCollatorForLanguageModeling(pad_token_id=tok.pad_token_id)(rows)
    flat = DataCollatorForLanguageModeling(pad_token_id=tok.pad_token_id, padding_free=True)(rows)
    assert flat["input_ids"].shape[0] == 1 and "attention_mask" not in flat
    n0, n1 = len(rows[0]["input_ids"]), len(rows[1]["input_ids"])
    with torch.no_grad():
        padded_logits = model(input_ids=padded["input_ids"], attention_mask=padded["attention_mask"]).logits
        # use_cache=False as in training: transformers only detects packed sequences when there is no cache
        flat_logits = model(
            input_ids=flat["input_ids"], position_ids=flat["position_ids"], use_cache=False
        ).logits
        leaky_logits = model(
            input_ids=flat["input_ids"], use_cache=False
        ).logits  # no boundaries: the second sequence sees the first
    second = padded_logits[1, :n1]
    assert torch.allclose(second, flat_logits[0, n0 : n0 + n1], atol=1e-4)
    assert (second - leaky_logits[0, n0 : n0 + n1]).abs().max() > 1e-3


@pytest.mark.drift
def test_talk_kwargs_build_an_sft_config(tmp_path):
    from trl import SFTConfig

    config = train_config.make_config("talk", precision="bf16")
    path = train.TrainPath("unsloth", "nf4", "cuda", "test")
    kwargs = train.sft_config_kwargs(config, path, tmp_path, n_train=400)
    assert (
        kwargs["bf16"] is True and kwargs[train.checkpointing_keyword()] is False
    )  # Unsloth checkpoints itself
    if not cuda_available():  # transformers refuses bf16 without a GPU; every keyword name is still checked
        kwargs = {**kwargs, "bf16": False, "use_cpu": True}
    args = SFTConfig(**kwargs)
    assert args.optim == "adamw_8bit" and args.max_length == 4096
    assert args.gradient_accumulation_steps == 4 and args.per_device_train_batch_size == 2
    assert args.lr_scheduler_type == "cosine" and args.max_grad_norm == 0.5 and args.num_train_epochs == 7


@pytest.mark.drift
@pytest.mark.parametrize("profile", ["cpu", "talk"])
@pytest.mark.parametrize("batching", train_config.BATCHING)
def test_every_keyword_we_pass_is_a_field_of_the_installed_sftconfig(tmp_path, profile, batching):
    """No fixed list of names: transformers 5.17 (GPU pins) has gradient_checkpointing only, 5.23 (CPU pins)
    calls it activation_checkpointing; the keyword is chosen from the installed dataclass."""
    import dataclasses

    from trl import SFTConfig

    fields = {f.name for f in dataclasses.fields(SFTConfig)}
    config = train_config.make_config(profile, batching=batching, gradient_checkpointing=True)
    kwargs = train.sft_config_kwargs(config, train.TrainPath("hf", "nf4", "cuda", "test"), tmp_path, 400)
    assert sorted(set(kwargs) - fields) == []
    assert train.checkpointing_keyword() in fields and kwargs[train.checkpointing_keyword()] is True


def test_auto_precision_wants_native_bf16(monkeypatch):
    """A T4 emulates bf16 (torch's default check says yes); without Unsloth it must train in fp16."""
    import torch

    def t4(including_emulation: bool = True) -> bool:
        return including_emulation

    def old_torch() -> bool:  # a torch whose check has no keyword
        return True

    on_gpu = train.TrainPath("hf", "nf4", "cuda", "test")
    config = train_config.make_config("colab")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", t4)
    assert train.precision_flags(config, on_gpu) == {"bf16": False, "fp16": True}
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", old_torch)
    assert train.precision_flags(config, on_gpu) == {"bf16": True, "fp16": False}
    assert train.precision_flags(config, train.TrainPath("hf", "nf4", "cpu", "test")) == {
        "bf16": False,
        "fp16": False,
    }


# --------------------------------------------------------------------------- bad input, before any training


def test_empty_dataset(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(FrictionError, match="empty"):
        train.train(train_config.make_config("cpu", "smoke"), empty, tmp_path / "out")


def test_invalid_dataset_names_file_and_line(tmp_path):
    data = write_dataset(tmp_path / "d.jsonl", 12)
    lines = data.read_text().splitlines()
    lines[4] = lines[4].replace('"final_answer"', '"finalanswer"')
    data.write_text("\n".join(lines) + "\n")
    with pytest.raises(FrictionError, match=r"d\.jsonl:5: .*finalanswer"):
        train.train(train_config.make_config("cpu", "smoke"), data, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_several_data_files_are_read_in_order_and_hash_like_their_concatenation(tmp_path):
    first = tmp_path / "a.jsonl"
    second = tmp_path / "b.jsonl"
    schema.write_jsonl([make_record(i) for i in range(3)], first)
    schema.write_jsonl([make_record(i) for i in range(3, 5)], second)
    both = tmp_path / "both.jsonl"
    both.write_bytes(first.read_bytes() + second.read_bytes())
    assert [r.id for r in train_data.load_records([first, second])] == [f"t-{i:03d}" for i in range(5)]
    assert [r.id for r in train_data.load_records([first, second], limit=4)] == [
        f"t-{i:03d}" for i in range(4)
    ]
    assert (
        train_data.sha256_file([first, second])
        == train_data.sha256_file(both)
        != train_data.sha256_file(first)
    )


def test_an_id_in_two_data_files_names_both(tmp_path):
    first = tmp_path / "a.jsonl"
    second = tmp_path / "b.jsonl"
    schema.write_jsonl([make_record(i) for i in range(3)], first)
    schema.write_jsonl([make_record(2, user="Another question?")], second)
    with pytest.raises(FrictionError, match=r"b\.jsonl: record id 't-002' is also in .*a\.jsonl"):
        train_data.load_records([first, second])


def test_cli_takes_several_data_files(tmp_path, monkeypatch):
    seen = {}

    def fake_train(config, data, out, overwrite=False):
        seen["data"] = data
        raise SystemExit(0)

    monkeypatch.setattr(train, "train", fake_train)
    with pytest.raises(SystemExit):
        train.cli_train(["--data", "x.jsonl", "y.jsonl", "--out", str(tmp_path / "o")])
    assert seen["data"] == ["x.jsonl", "y.jsonl"]


def test_dataset_too_small(tmp_path):
    data = write_dataset(tmp_path / "d.jsonl", 4)
    with pytest.raises(FrictionError, match="4 record.*at least 10"):
        train.train(train_config.make_config("cpu", "smoke"), data, tmp_path / "out")


def test_talk_without_cuda(tmp_path):
    if cuda_available():
        pytest.skip("this machine has CUDA")
    data = write_dataset(tmp_path / "d.jsonl", 12)
    with pytest.raises(FrictionError, match="needs a CUDA GPU"):
        train.train(train_config.make_config("talk"), data, tmp_path / "out")


def test_existing_out_dir_needs_overwrite(tmp_path):
    data = write_dataset(tmp_path / "d.jsonl", 12)
    out = tmp_path / "out"
    out.mkdir()
    (out / adapters.CARD_NAME).write_text("{}")
    (out / train_runs.RUN_STATE).write_text(json.dumps({"status": "finished"}))
    with pytest.raises(FrictionError, match="--overwrite"):
        train.train(train_config.make_config("cpu", "smoke"), data, out)
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(FrictionError, match="will not delete"):
        train_runs.prepare_out_dir(foreign, overwrite=True, fingerprint={})
    assert (foreign / "thesis.tex").exists()


def test_interrupted_run_with_other_settings_is_not_resumed(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    files.mark_output(out, "train")
    old = {"config": {"lora_r": 8}, "data_sha256": "a"}
    (out / train_runs.RUN_STATE).write_text(json.dumps({"status": "running", "fingerprint": old}))
    with pytest.raises(FrictionError, match="lora_r.*--overwrite"):
        train_runs.prepare_out_dir(
            out, overwrite=False, fingerprint={"config": {"lora_r": 16}, "data_sha256": "a"}
        )


@pytest.mark.parametrize("command", ["train", "train select"])
def test_overwrite_replaces_only_what_friction_made(tmp_path, monkeypatch, capsys, command):
    """A folder with only the user's file, the current directory and the repository root are never replaced."""
    from friction_lib import cli

    data = write_dataset(tmp_path / "d.jsonl", 12)
    args = ["--data", str(data)] if command == "train" else [str(tmp_path / "run")]
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    assert cli.main([*command.split(), *args, "--out", str(foreign), "--overwrite"]) == 2
    assert "was not made by friction" in capsys.readouterr().err
    assert (foreign / "thesis.tex").read_text() == "precious"
    for cwd in (foreign, ROOT):
        monkeypatch.chdir(cwd)
        assert cli.main([*command.split(), *args, "--out", ".", "--overwrite"]) == 2
        assert "it is the current directory" in capsys.readouterr().err
    assert (foreign / "thesis.tex").read_text() == "precious" and (ROOT / "friction_lib").is_dir()
    assert not list(tmp_path.glob(".*.lock")) and not list(ROOT.parent.glob(f".{ROOT.name}.lock"))


@pytest.mark.parametrize("command", ["train", "train select"])
def test_a_second_writer_is_told_who_holds_the_folder(tmp_path, capsys, command):
    from friction_lib import cli

    data = write_dataset(tmp_path / "d.jsonl", 12)
    args = ["--data", str(data)] if command == "train" else [str(tmp_path / "run")]
    out = tmp_path / "out"
    with files.output_lock(out, "test"):
        assert cli.main([*command.split(), *args, "--out", str(out)]) == 2
    assert f"in use by PID {os.getpid()}" in capsys.readouterr().err
    assert not out.exists()


def test_a_folder_another_live_process_trains_into_is_left_alone(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "out"
    out.mkdir()
    files.mark_output(out, "train")
    (out / train_runs.RUN_STATE).write_text(json.dumps({"status": "running", "fingerprint": {}}))
    hold = "import sys, time\nfrom friction_lib.files import output_lock\nwith output_lock(sys.argv[1], 'train'):\n"
    hold += "    print('held', flush=True)\n    time.sleep(60)\n"
    other = subprocess.Popen([sys.executable, "-c", hold, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout is not None and other.stdout.readline().strip() == "held"
        data = write_dataset(tmp_path / "d.jsonl", 12)
        with pytest.raises(FrictionError, match=f"in use by PID {other.pid} "):
            train.train(train_config.make_config("cpu", "smoke"), data, out, overwrite=True)
    finally:
        other.kill()
        other.wait()
    assert (out / train_runs.RUN_STATE).exists()
    assert (
        train_runs.prepare_out_dir(out, overwrite=True, fingerprint={}) is None
    )  # it has ended: now it may go
    assert not out.exists()


def test_not_enough_disk_for_training(tmp_path):
    config = train_config.make_config("cpu", checkpoint_limit=2, merge=True)
    parts = train_runs.training_disk_need(config, lora_params=10**6, saves=10, n_params=10**8)
    assert list(parts)[0].startswith("3 checkpoint(s)") and "the merged 16-bit model" in parts
    every = train_runs.training_disk_need(train_config.make_config("cpu", checkpoint_limit=0), 10**6, 10)
    assert list(every)[0].startswith("10 checkpoint(s)") and len(every) == 2
    huge = train_runs.training_disk_need(config, lora_params=10**15, saves=3)
    with pytest.raises(
        FrictionError, match=r"Not enough disk space for training.*needed.*free at .*bytes.*checkpoint_limit"
    ):
        train_runs.check_disk_for_training(tmp_path / "new" / "out", huge)
    assert not (tmp_path / "new").exists()
    assert train_runs.check_disk_for_training(tmp_path, parts) == sum(parts.values())


def test_not_enough_disk_for_the_merged_model(tmp_path):
    with pytest.raises(FrictionError, match="Not enough disk space.*GiB needed"):
        train_runs.check_disk_for_merge(tmp_path / "new" / "out", n_params=10**15)
    assert train_runs.check_disk_for_merge(tmp_path, n_params=1000) > 0


def test_cli_show_config_and_bad_profile(capsys):
    assert train.cli_train(["--profile", "cpu", "--smoke", "--out", "x", "--show-config"]) == 0
    assert "max_steps" in capsys.readouterr().out
    with pytest.raises(FrictionError, match="did you mean 'talk'"):
        train.cli_train(["--profile", "tallk", "--out", "x", "--show-config"])


def test_unsloth_is_not_imported_at_module_import():
    import sys

    assert "unsloth" not in sys.modules
    assert train.choose_path(train_config.make_config("cpu")).backend == (
        "unsloth" if cuda_available() and train.unsloth_available() else "hf"
    )


# --------------------------------------------------------------------------- one real training run


def _interrupt_after_saving(step: int):
    """A callback that stops the run like Ctrl-C, right after the checkpoint of `step` is saved."""
    from transformers import TrainerCallback

    class Interrupt(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.global_step == step:
                raise KeyboardInterrupt

    return Interrupt()


@pytest.mark.slow
def test_smoke_training_interrupted_then_resumed(tmp_path, embedded_model_dir):
    """Real QLoRA (NF4) on the embedded model: interrupted after step 2, resumed to step 3."""
    data = write_dataset(tmp_path / "d.jsonl", 12)
    out = tmp_path / "adapter"
    config = train_config.make_config("cpu", "smoke", max_steps=3, eval_steps=2, compare_max_new_tokens=8)
    assert config.quant == "nf4"
    first = train_config.make_config("cpu", "smoke", max_steps=3, eval_steps=2, compare_prompts=False)
    with pytest.raises(KeyboardInterrupt):
        train.train(first, data, out, callbacks=[_interrupt_after_saving(2)])
    assert (out / train_runs.CHECKPOINTS / "checkpoint-2").is_dir()
    assert json.loads((out / train_runs.RUN_STATE).read_text())["status"] == "running"

    result = train.train(config, data, out)
    card = json.loads(result.card_path.read_text())
    assert card["resumed_from"].endswith("checkpoint-2")
    assert card["steps"]["global_step"] == 3 and card["steps"]["this_run"] == 1
    assert card["path"]["backend"] == "hf" and card["path"]["quant"] == "nf4"
    assert (out / "adapter_config.json").exists() and (out / "adapter_model.safetensors").exists()
    assert (out / adapters.LOSS_PNG).stat().st_size > 1000
    assert not (out / train_runs.CHECKPOINTS).exists()
    losses = [p["loss"] for p in card["losses"]["train"]]
    assert [p["step"] for p in card["losses"]["train"]] == [1, 2, 3]
    assert all(math.isfinite(x) for x in losses) and math.isfinite(card["final_eval_loss"])
    assert card["dataset"]["records"] == 12 and card["dataset"]["sha256"] == train_data.sha256_file(data)
    assert card["peak_memory"]["kind"] == "rss" and card["peak_memory"]["mib"] > 100
    assert card["tokens_per_second"] > 0 and card["versions"]["trl"]
    assert len(card["before_after"]) == 3
    assert not result.model.training
    assert train.nf4_repacked_layers(result.model) == 0  # see keep_nf4_trainable: gradients kept flowing

    # the adapter is a real change: some LoRA B matrix moved away from its zero initialisation
    from safetensors.torch import load_file

    weights = load_file(str(out / "adapter_model.safetensors"))
    assert any(float(t.abs().sum()) > 0 for k, t in weights.items() if "lora_B" in k)
    assert (out / "adapter_model.safetensors").stat().st_size < 20 * 2**20
    # cast to bf16 in place, the weights keep the mode any file written here gets (not mkstemp's 0600)
    assert (out / adapters.WEIGHTS_NAME).stat().st_mode == (out / adapters.CARD_NAME).stat().st_mode


@pytest.mark.slow
def test_resume_skips_a_damaged_checkpoint(tmp_path, embedded_model_dir, capsys):
    """A real run interrupted after step 2; its last checkpoint cut short (a full disk, a killed copy). The
    rerun warns, removes it, and resumes from checkpoint 1 instead of failing on it every time."""
    data = write_dataset(tmp_path / "d.jsonl", 12)
    out = tmp_path / "adapter"
    config = train_config.make_config(
        "cpu", "smoke", quant="none", max_steps=3, eval_steps=1, compare_prompts=False
    )
    with pytest.raises(KeyboardInterrupt):
        train.train(config, data, out, callbacks=[_interrupt_after_saving(2)])
    first, last = (out / train_runs.CHECKPOINTS / f"checkpoint-{n}" for n in (1, 2))
    checkpoint_bytes = sum(p.stat().st_size for p in first.iterdir())
    weights = last / adapters.WEIGHTS_NAME
    os.truncate(weights, weights.stat().st_size // 2)
    assert adapters.WEIGHTS_NAME in (train_runs.checkpoint_problem(last) or "")
    assert train_runs.checkpoint_problem(first) is None

    result = train.train(config, data, out)
    assert "checkpoint-2 is damaged" in capsys.readouterr().err
    card = result.card
    assert card["resumed_from"].endswith("checkpoint-1")
    assert card["steps"]["global_step"] == 3 and card["steps"]["this_run"] == 2
    assert json.loads((out / train_runs.RUN_STATE).read_text())["status"] == "finished"

    # the disk estimate counts the LoRA parameters the run trains, and a checkpoint is not bigger than estimated
    lora = card["parameters"]["trainable"]
    assert train.lora_parameter_count(result.model, config) == lora
    (per_checkpoint, *_) = train_runs.training_disk_need(config, lora, saves=1).values()
    assert checkpoint_bytes <= per_checkpoint < 4 * checkpoint_bytes
