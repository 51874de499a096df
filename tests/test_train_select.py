"""Checkpoint selection by J on the dev set (friction_lib.train_select), and the dev set itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_train import write_dataset

from friction_lib import files, train, train_config, train_select
from friction_lib.errors import FrictionError

ROOT = Path(__file__).resolve().parents[1]
EVAL = ROOT / "data" / "eval"


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_dev_set_is_held_out_from_the_quick_set_and_balanced():
    dev, quick, full = (_rows(EVAL / f"{name}.jsonl") for name in ("dev", "quick", "full"))
    assert {r["prompt"] for r in dev}.isdisjoint({r["prompt"] for r in quick})
    assert [r for r in dev if r not in full] == []
    per_group: dict[tuple[str, bool], int] = {}
    for r in dev:
        key = (r["category"], r["expected"] == "comply")
        per_group[key] = per_group.get(key, 0) + 1
    assert len(per_group) == 10 and set(per_group.values()) == {10}


def test_dev_large_is_every_full_prompt_outside_the_quick_set():
    dev_large, quick, full = (_rows(EVAL / f"{name}.jsonl") for name in ("dev-large", "quick", "full"))
    quick_prompts = {r["prompt"] for r in quick}
    assert sorted(map(json.dumps, dev_large)) == sorted(
        json.dumps(r) for r in full if r["prompt"] not in quick_prompts
    )
    assert {r["id"] for r in _rows(EVAL / "dev.jsonl")} <= {r["id"] for r in dev_large}


def test_best_row_prefers_j_then_lower_fpr_then_earlier_step():
    rows = [
        {"step": 20, "j": 0.2, "fpr": 0.3},
        {"step": 40, "j": 0.3, "fpr": 0.3},
        {"step": 60, "j": 0.3, "fpr": 0.1},
        {"step": 80, "j": 0.3, "fpr": 0.1},
    ]
    assert train_select.best_row(rows)["step"] == 60


def test_max_fpr_keeps_only_checkpoints_under_the_cap():
    rows = [
        {"step": 50, "j": 0.20, "fpr": 0.18},
        {"step": 100, "j": 0.14, "fpr": 0.12},
        {"step": 150, "j": 0.22, "fpr": 0.28},
    ]
    assert train_select.best_row(rows)["step"] == 150
    assert train_select.best_row(rows, max_fpr=0.18)["step"] == 50
    assert train_select.best_row(rows, max_fpr=0.17)["step"] == 100
    with pytest.raises(
        FrictionError, match=r"at most 0.10 \(step 50: 0.18, step 100: 0.12, step 150: 0.28\)"
    ):
        train_select.best_row(rows, max_fpr=0.10)


def test_cli_max_fpr_must_be_a_share(tmp_path):
    with pytest.raises(FrictionError, match="--max-fpr is a share"):
        train_select.cli_train_select([str(tmp_path), "--out", str(tmp_path / "o"), "--max-fpr", "17"])


def test_no_checkpoints_is_a_clear_error(tmp_path):
    (tmp_path / "checkpoints" / "checkpoint-5").mkdir(parents=True)  # no adapter inside
    with pytest.raises(FrictionError, match="checkpoint_limit: 0"):
        train_select.find_checkpoints(tmp_path)


def test_cli_refuses_to_select_on_the_quick_set(tmp_path):
    with pytest.raises(FrictionError, match="tune to the test"):
        train_select.cli_train_select(
            [str(tmp_path), "--prompts", "data/eval/quick.jsonl", "--out", str(tmp_path / "o")]
        )


@pytest.mark.slow
def test_select_evaluates_every_checkpoint_and_writes_the_best(tmp_path, embedded_model_dir):
    """A real two-step run that keeps both checkpoints, then a real greedy eval of each."""
    data = write_dataset(tmp_path / "d.jsonl", 12)
    run = tmp_path / "run"
    config = train_config.make_config(
        "cpu",
        "smoke",
        quant="none",
        max_steps=2,
        eval_steps=1,
        compare_prompts=False,
        keep_checkpoints=True,
        checkpoint_limit=0,
    )
    train.train(config, data, run)
    assert [step for step, _ in train_select.find_checkpoints(run)] == [1, 2]

    prompts = tmp_path / "dev.jsonl"
    prompts.write_text(
        "".join(json.dumps(r) + "\n" for r in _rows(EVAL / "dev.jsonl")[::25]), encoding="utf-8"
    )
    out = tmp_path / "chosen"
    selection = train_select.select_checkpoint(run, prompts, out, max_new_tokens=8, progress=False)

    assert [r["step"] for r in selection["checkpoints"]] == [1, 2]
    kept = run / "selection" / "dev"  # one folder per dev set, so a second dev set keeps the first's
    # each eval run holds its folder with a lock file beside it (`.step-N.lock`, files.output_lock)
    assert sorted(p.name for p in kept.iterdir() if not p.name.startswith(".")) == ["step-1", "step-2"]
    assert (kept / "step-1" / "responses.jsonl").exists()
    assert selection["chosen_step"] == train_select.best_row(selection["checkpoints"])["step"]
    assert selection["max_fpr"] is None and selection["criterion"].startswith("max J (lenient);")
    for name in ("adapter_config.json", "adapter_model.safetensors", "selection.json", "selection.png"):
        assert (out / name).exists(), name
    card = json.loads((out / "training_card.json").read_text())
    assert card["selection"]["chosen_step"] == selection["chosen_step"]
    from safetensors.torch import load_file

    assert {str(t.dtype) for t in load_file(str(out / "adapter_model.safetensors")).values()} == {
        "torch.bfloat16"
    }
    assert (out / "adapter_model.safetensors").stat().st_mode == (out / "selection.json").stat().st_mode
    with pytest.raises(FrictionError, match="--overwrite"):
        train_select.select_checkpoint(run, prompts, out, max_new_tokens=8, progress=False)

    # --steps: only the named checkpoints; a step with no checkpoint names the ones there are
    only = train_select.select_checkpoint(
        run, prompts, tmp_path / "only2", max_new_tokens=8, steps=[2], progress=False
    )
    assert [r["step"] for r in only["checkpoints"]] == [2] and only["chosen_step"] == 2
    with pytest.raises(FrictionError, match=r"step\(s\) 7 .* it has 1, 2"):
        train_select.select_checkpoint(
            run, prompts, tmp_path / "x", max_new_tokens=8, steps=[7], progress=False
        )
    assert not (tmp_path / "x").exists()

    # the chosen folder is the tool's, so --overwrite replaces it, whole; no staging folder stays behind
    assert (out / files.MARKER).exists()
    train_select.select_checkpoint(
        run, prompts, out, max_new_tokens=8, steps=[2], overwrite=True, progress=False
    )
    assert json.loads((out / "selection.json").read_text())["chosen_step"] == 2
    assert sorted(p.name for p in tmp_path.glob(".chosen*")) == [".chosen.lock"]


def test_cli_steps_must_be_numbers(tmp_path):
    with pytest.raises(FrictionError, match="comma-separated step numbers"):
        train_select.cli_train_select([str(tmp_path), "--out", str(tmp_path / "o"), "--steps", "40,eighty"])
