"""Friction parity after quantisation: the label comparison and its tolerance on constructed runs, then for real on
the shared export of a LoRA adapter (transformers vs the q8_0 GGUF in llama.cpp), and `friction export
--eval-prompts` writing the `behaviour` section of verification.json."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from friction_lib import export, parity
from friction_lib.cli import main
from friction_lib.errors import FrictionError
from friction_lib.evaluate import EvalPrompt, load_prompts, load_run
from friction_lib.models import get_profile

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "data" / "eval" / "quick.jsonl"


def _rows(labels: list[str]) -> list[dict]:
    """Half targets (challenge), half controls (comply), with these labels."""
    half = len(labels) // 2
    return [{"id": f"p{i}", "category": "false_premise", "prompt": f"q{i}", "expected": "challenge" if i < half
             else "comply", "label": label} for i, label in enumerate(labels)]  # fmt: skip


def _run(labels: list[str]) -> dict:
    from friction_lib import metrics

    rows = _rows(labels)
    timing = {"seconds": 1.0, "tokens_per_s": 10.0}
    return {"responses": rows, "results": {"overall": metrics.summarise(rows), "timing": timing}}


REFERENCE = ["CHALLENGE"] * 30 + ["COMPLY"] * 20 + ["COMPLY"] * 42 + ["REFUSE"] * 8


def test_label_agreement_flips_and_tolerance_on_constructed_runs():
    ref = _run(REFERENCE)
    same = parity.parity_entry("q8_0", Path("m-q8_0.gguf"), ref, _run(REFERENCE))
    assert same["label_agreement"] == 1.0 and same["flipped"] == [] and same["within_tolerance"]
    assert same["mcnemar_p"] == 1.0 and same["n"] == 100
    # 19 of 100 flip: 5 targets change the kind of push-back, 6 lose it, and 8 controls lose a false push-back
    moved = list(REFERENCE)
    for i in [*range(11), *range(92, 100)]:
        moved[i] = "ABSTAIN" if i < 5 else "COMPLY"
    entry = parity.parity_entry("q4_k_m", Path("m-q4_k_m.gguf"), ref, _run(moved))
    assert entry["label_agreement"] == 0.81 and len(entry["flipped"]) == 19
    assert entry["pushback_agreement"] == 0.86  # CHALLENGE -> ABSTAIN is still push-back
    assert entry["flipped"][0] == {"id": "p0", "category": "false_premise", "expected": "challenge",
                                   "transformers": "CHALLENGE", "gguf": "ABSTAIN", "prompt": "q0"}  # fmt: skip
    assert not entry["within_tolerance"]
    assert (entry["tpr_lenient"], entry["fpr"]) == (0.48, 0.0)  # from 0.60 and 0.16
    # 8 flips, all one way (targets that lose push-back): agreement 0.92 passes, but McNemar finds the shift
    shifted = ["COMPLY"] * 8 + REFERENCE[8:]
    one_way = parity.parity_entry("q4_0", Path("m-q4_0.gguf"), ref, _run(shifted))
    assert one_way["label_agreement"] == 0.92 and one_way["mcnemar_p"] < 0.05
    assert not one_way["within_tolerance"]


def test_behaviour_table_lists_reference_ggufs_tolerance_and_flips():
    ref = _run(REFERENCE)
    moved = ["COMPLY"] * 3 + REFERENCE[3:]
    section = {
        "n_prompts": 100, "prompts_file": "data/eval/quick.jsonl", "max_new_tokens": 160,
        "reference": {"adapter": "friction-smollm2-135m", **parity._figures(ref["results"])},
        "tolerance": {"text": parity.TOLERANCE_TEXT},
        "ggufs": {"q8_0": parity.parity_entry("q8_0", Path("a-q8_0.gguf"), ref, _run(moved))},
    }  # fmt: skip
    lines = parity.behaviour_table(section).splitlines()
    assert lines[0].startswith(
        "Does the friction survive quantisation? 100 prompts from data/eval/quick.jsonl"
    )
    assert lines[4] == "| transformers (friction-smollm2-135m) | +0.44 | 0.60 | 0.16 | (reference) | | | |"
    assert lines[5] == "| q8_0 (llama.cpp) | +0.38 | 0.54 | 0.16 | 97/100 (97%) | 97/100 (97%) | 0.25 | yes |"
    assert lines[-1] == "- q8_0: 3 flipped: p0 (challenge): CHALLENGE -> COMPLY; p1 (challenge): CHALLENGE -> COMPLY; " \
        "p2 (challenge): CHALLENGE -> COMPLY"  # fmt: skip


def _copy_export(exported, folder: Path) -> Path:
    """The shared export, hard-linked file by file (a symlink out of the folder is refused, as it should be); its
    verification.json copied (the check rewrites it)."""
    import os

    folder.mkdir()
    for path in exported.out_dir.iterdir():
        if path.name == "verification.json":
            shutil.copyfile(path, folder / path.name)
        elif path.is_file():
            os.link(path, folder / path.name)
    return folder


def test_a_type_the_export_lacks_is_refused(exported, tmp_path):
    with pytest.raises(FrictionError, match="No GGUF of type q4_k_m in .*; it has f16, q8_0"):
        parity.export_ggufs(exported.out_dir, ["q4_k_m"])
    assert list(parity.export_ggufs(exported.out_dir)) == ["q8_0"]  # default: the quantised GGUFs


@pytest.mark.slow
@pytest.mark.engine
def test_check_behaviour_scores_the_adapter_and_its_gguf_on_the_same_prompts(
    exported, test_adapter, tmp_path
):
    out = _copy_export(exported, tmp_path / "export")
    prompts = load_prompts(QUICK)[:4]
    section = parity.check_behaviour(out, prompts, adapter=test_adapter, profile="cpu", max_new_tokens=12,
                                     threads=1, progress=False)  # fmt: skip
    entry = section["ggufs"]["q8_0"]
    assert entry["gguf"] == "friction-smollm2-135m-q8_0.gguf" and entry["n"] == 4
    assert 0.0 <= entry["label_agreement"] <= 1.0 and 0.0 <= entry["mcnemar_p"] <= 1.0
    assert entry["within_tolerance"] == (entry["label_agreement"] >= 0.9 and entry["mcnemar_p"] >= 0.05)
    reference, gguf = load_run(out / "eval" / "transformers"), load_run(out / "eval" / "q8_0")
    assert reference["results"]["engine"] == "transformers" and reference["results"]["adapter"] == str(
        test_adapter
    )
    assert gguf["results"]["engine_settings"]["gguf"] == str(out / "friction-smollm2-135m-q8_0.gguf")
    assert gguf["results"]["mcnemar"]["base_run"] == str(out / "eval" / "transformers")
    flips = {f["id"] for f in entry["flipped"]}
    assert flips == {a["id"] for a, b in zip(reference["responses"], gguf["responses"], strict=True)
                     if a["label"] != b["label"]}  # fmt: skip
    report = json.loads((out / "verification.json").read_text())
    assert report["behaviour"] == section and report["checks"] == exported.verification["checks"]
    assert json.loads((exported.out_dir / "verification.json").read_text()).get("behaviour") is None


@pytest.mark.slow
@pytest.mark.engine
def test_friction_export_with_eval_prompts_writes_the_behaviour_section(
    test_adapter, tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(parity, "MIN_LABEL_AGREEMENT", 1.01)  # no GGUF can agree on more than every label
    prompts = tmp_path / "four.jsonl"
    prompts.write_text("".join(json.dumps(p.to_dict()) + "\n" for p in load_prompts(QUICK)[:4]))
    out = tmp_path / "export"
    code = main(["export", "--adapter", str(test_adapter), "--quant", "q8_0", "--out", str(out),
                 "--eval-prompts", str(prompts)])  # fmt: skip
    printed = capsys.readouterr()
    behaviour = json.loads((out / "verification.json").read_text())["behaviour"]
    # Outside tolerance is a warning, not a failure. Which way 4 prompts fall depends on the CPU's float paths (CI's
    # differ from ours), so the tolerance is set out of reach here. Verification can fail on its own: the untrained
    # adapter loops past the stop limit on one prompt on some CPUs. Then the exit code is 1 and the error names it.
    assert not behaviour["passed"] and not behaviour["ggufs"]["q8_0"]["within_tolerance"]
    checks = json.loads((out / "verification.json").read_text())["checks"]
    failed = [f"{e['gguf']}: {e['check']}" for e in checks if not e["passed"]]
    assert code == (1 if failed else 0), printed.err
    if failed:
        assert "Verification FAILED: " + "; ".join(failed) in printed.err
    else:
        assert (
            "WARNING: behaviour outside tolerance for q8_0" in printed.err
            and "pass verification" in printed.err
        )
    assert "Does the friction survive quantisation? 4 prompts from" in printed.out
    assert list(behaviour["ggufs"]) == ["q8_0"] and behaviour["prompts_file"] == str(prompts)
    assert (out / "eval" / "q8_0" / "results.json").is_file() and not (
        out / "eval" / "q8_0.partial.jsonl"
    ).exists()


def test_export_evaluates_the_cpu_profile_on_the_quick_set_unless_told_not_to(capsys):
    args = export._parser().parse_args(["--adapter", "a", "--out", "o"])
    assert args.eval_prompts == export.AUTO_EVAL and not args.no_eval
    assert export._parser().parse_args(["--adapter", "a", "--out", "o", "--no-eval"]).no_eval
    plan = {name: export.ExportPlan(Path("a"), Path("o"), get_profile(name), ("q4_k_m",), "f16")
            for name in ("cpu", "talk")}  # fmt: skip
    assert export._eval_prompts_for(plan["cpu"], "auto", True) == QUICK
    assert export._eval_prompts_for(plan["talk"], "auto", True) is None
    assert "Behaviour check skipped for the talk profile" in capsys.readouterr().out
    assert export._eval_prompts_for(plan["talk"], "mine.jsonl", True) == "mine.jsonl"


def test_parity_writes_a_prompt_list_down_for_its_runs(tmp_path):
    path, items = parity._prompt_file([EvalPrompt("a", "Why?", "c", "comply", "team")], tmp_path)
    assert path == tmp_path / "prompts.jsonl" and load_prompts(path) == items


def test_a_child_eval_that_fails_stops_the_others_and_shows_its_log(tmp_path):
    from friction_lib.eval_parallel import run_evals

    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a model" * 10)
    common = ["--prompts", str(QUICK), "--per-group", "1", "--max-new-tokens", "8", "--threads", "1"]
    commands = {
        "bad": (["--engine", "llamacpp", "--gguf", str(bad), *common], tmp_path / "bad"),
        "good": (["--engine", "llamacpp", *common], tmp_path / "good"),
    }
    with pytest.raises(
        FrictionError,
        match=r"(?s)Scoring bad failed \(exit 2\); the last lines of .*bad\.log:.*is not a GGUF",
    ):
        run_evals(commands, 10, progress=False)
    assert not (tmp_path / "bad").exists()
    import psutil

    evals = [
        p for p in psutil.Process().children(recursive=True) if "friction_lib.cli" in " ".join(p.cmdline())
    ]
    assert evals == [], "a child eval outlived the failure"
