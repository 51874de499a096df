"""The talk path rehearsed on CPU (`friction rehearsal`): a tiny random-weight R1-Distill-Qwen with the real R1
tokenizer through render, QLoRA steps, merge, GGUF, q4_k_m, the Modelfile, verification and `friction serve`."""

from __future__ import annotations

import json

import pytest

from friction_lib import rehearsal
from friction_lib.errors import FrictionError

pytestmark = [pytest.mark.slow, pytest.mark.engine]


def test_the_talk_path_runs_end_to_end_and_is_verified(tmp_path, capsys):
    """The `gguf` template revision: the one whose generation prompt stops at <｜Assistant｜>, where a pre-fill
    assumed in the code made `friction export` fail its own token check. (`make rehearsal` runs 2025-02.)"""
    out = tmp_path / "rehearsal"
    assert rehearsal.cli_rehearsal(["--out", str(out), "--revision", "gguf"]) == 0
    report = json.loads((out / "rehearsal.json").read_text())
    assert report["passed"] and report["render"]["passed"] and not report["render"]["prefills_think"]
    checks = {(e["gguf"], e["check"]): e["passed"] for e in report["verification"]["checks"]}
    assert checks == {
        (gguf, check): True
        for gguf in ("friction-r1-7b-f16.gguf", "friction-r1-7b-q4_k_m.gguf")
        for check in ("loads_in_llama_cpp", "template_tokens_match", "stops_on_its_own")
    } | {("friction-r1-7b-f16.gguf", "greedy_16_match_transformers"): True}
    assert report["verification"]["base_model"] == str(out / "tiny-r1")
    served = report["served"]
    assert served["raw"].startswith("<think>") and served["answer"] == rehearsal.SCRIPTED_ANSWER
    assert report["training"]["path"].startswith(
        "transformers + PEFT + TRL SFTTrainer + bitsandbytes, 4-bit NF4"
    )
    assert report["training"]["steps"] == rehearsal.CPU_CHANGES["max_steps"][0]
    printed = capsys.readouterr().out
    assert "template_tokens_match" in printed and (out / "rehearsal.md").read_text() in printed
    exported = json.loads((out / "export" / "export.json").read_text())
    assert exported["profile"] == "talk" and exported["prefills_think"] is False


def test_an_unknown_template_revision_is_refused_before_any_work(tmp_path):
    with pytest.raises(FrictionError, match="Valid: gguf, 2025-02"):
        rehearsal.run_rehearsal(tmp_path / "out", revision="2024")
    assert not (tmp_path / "out").exists()
