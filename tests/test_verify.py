"""Verification: each check passes on a good export and fails on a broken input, a GGUF that does not load is a
failed check (not a crash), and the table and the folder-level errors say what they should."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from friction_lib import modelfile, verify
from friction_lib.errors import FrictionError


def test_a_gguf_that_does_not_load_is_a_failed_check(tmp_path):
    gguf = tmp_path / "friction-smollm2-135m-q8_0.gguf"
    gguf.write_bytes(b"GGUF but not really" * 64)
    path = tmp_path / "m.Modelfile"
    path.write_text(modelfile.render_modelfile("cpu", f"./{gguf.name}", gguf_adds_bos=False))
    entries = verify.verify_gguf(gguf, path, tokenizer=None)
    assert [(e["check"], e["passed"]) for e in entries] == [("loads_in_llama_cpp", False)]
    assert entries[0]["details"]["error"]
    assert "NO" in verify.verification_table({"checks": entries}).splitlines()[2]


def test_gguf_type_reads_the_quant_from_the_file_name():
    assert verify.gguf_type("friction-smollm2-135m-q8_0.gguf") == "q8_0"
    assert verify.gguf_type("out/friction-r1-7b-q4_k_m.gguf") == "q4_k_m"


@pytest.mark.slow
def test_verify_export_reruns_one_type_and_refuses_a_missing_one(exported, tmp_path):
    out = (
        tmp_path / "export"
    )  # the shared export, hard-linked file by file (symlinks out of a folder are refused)
    out.mkdir()
    for path in exported.out_dir.iterdir():
        if path.is_dir():
            shutil.copytree(path, out / path.name, copy_function=os.link)
        elif path.name != "verification.json":
            os.link(path, out / path.name)
    report = verify.verify_export(out, prompts=verify.VERIFY_PROMPTS[:1], only=["f16"], progress=False)
    assert {e["gguf"] for e in report["checks"]} == {"friction-smollm2-135m-f16.gguf"}
    assert report["passed"] and json.loads((out / "verification.json").read_text()) == report
    table = verify.verification_table(report).splitlines()
    assert table[0].split()[:3] == ["gguf", "check", "passed"] and len(table) == 2 + len(report["checks"])
    with pytest.raises(FrictionError, match="No GGUF of type q4_k_m .* it has f16, q8_0"):
        verify.verify_export(out, only=["q4_k_m"], progress=False)


@pytest.mark.slow
def test_the_checks_can_fail(exported):
    """Each verification check fails on a broken input, so a pass means something."""
    from friction_lib.models import load_tokenizer

    out = exported.out_dir
    gguf = exported.ggufs["q8_0"]
    tokenizer = load_tokenizer(str(out / "merged"))
    good = modelfile.parse_modelfile((out / "Modelfile").read_text())
    llm = verify.load_llama(gguf, n_ctx=1024)
    try:
        assert verify.check_template_tokens(llm, good, tokenizer)["passed"]
        missing_newline = modelfile.ParsedModelfile(template=good.template.rstrip("\n"), system=good.system)
        assert not verify.check_template_tokens(llm, missing_newline, tokenizer)["passed"]
        wrong_system = modelfile.ParsedModelfile(template=good.template, system="You are a pirate.")
        assert not verify.check_template_tokens(llm, wrong_system, tokenizer)["passed"]
        runs = verify.greedy_runs(llm, good, verify.VERIFY_PROMPTS[:2], limit=3)
        assert not verify.check_stops(llm, runs, 3)["passed"]
        # A token transformers did not rank near the top fails; a near tie passes, and only a near tie.
        swapped = {
            verify.VERIFY_PROMPTS[0]: verify.Reference(runs[1].tokens, [{t: 0.0} for t in runs[1].tokens]),
            verify.VERIFY_PROMPTS[1]: verify.Reference(runs[0].tokens, [{t: 0.0} for t in runs[0].tokens]),
        }
        assert not verify.check_greedy_match(llm, runs, swapped)["passed"]
        ours, other = runs[0].tokens[0], runs[1].tokens[0]
        assert ours != other

        def reference(gap: float) -> dict:
            top = [{other: -0.1, ours: -0.1 - gap}] + [{t: 0.0} for t in runs[0].tokens[1:]]
            return {runs[0].prompt: verify.Reference([other, *runs[0].tokens[1:]], top)}

        tie = verify.check_greedy_match(llm, runs[:1], reference(0.2))
        assert (
            tie["passed"]
            and tie["details"]["runs"][0]["near_tie"]
            and tie["details"]["runs"][0]["first_difference"] == 0
        )
        assert not verify.check_greedy_match(llm, runs[:1], reference(0.9))["passed"]
        exact = {runs[0].prompt: verify.Reference(runs[0].tokens, [{t: 0.0} for t in runs[0].tokens])}
        assert verify.check_greedy_match(llm, runs[:1], exact)["details"]["runs"][0]["identical"]
    finally:
        llm.close()


# The R1 TEMPLATE this project wrote before its chat format was read from the tokenizer: `<think>\n` pre-filled
# whatever the template, and earlier turns' reasoning passed back as sent.
OLD_R1_TEMPLATE = (
    "{{- if .System }}{{ .System }}{{ end }}\n"
    "{{- range .Messages }}\n"
    '{{- if eq .Role "user" }}<｜User｜>{{ .Content }}\n'
    '{{- else if eq .Role "assistant" }}<｜Assistant｜>{{ .Content }}<｜end▁of▁sentence｜>\n'
    "{{- end }}\n"
    "{{- end }}<｜Assistant｜><think>\n"
)


@pytest.mark.engine
@pytest.mark.parametrize("revision", ["gguf", "2025-02"])
def test_the_template_check_passes_the_derived_r1_modelfile_and_catches_the_old_one(revision, tmp_path):
    """Through llama.cpp's R1 tokenizer: the Modelfile derived from either template revision passes; the old
    hard-coded one fails the single turn where the template does not pre-fill <think> (38 ids against 36),
    and the history with reasoning for both (Ollama would have passed the earlier reasoning back)."""
    from llama_cpp import Llama

    from friction_lib.r1_tokenizer import build_tokenizer, write_vocab_gguf

    tokenizer = build_tokenizer(revision)
    vocab = Llama(model_path=str(write_vocab_gguf(tmp_path / "r1.gguf")), vocab_only=True, verbose=False)
    fmt = modelfile.r1_chat_format(tokenizer)
    derived = modelfile.parse_modelfile(modelfile.render_modelfile("talk", "./m.gguf", True, fmt=fmt))
    assert verify.check_template_tokens(vocab, derived, tokenizer)["passed"]
    old = modelfile.ParsedModelfile(template=OLD_R1_TEMPLATE, system=derived.system)
    cases = verify.check_template_tokens(vocab, old, tokenizer)["details"]["cases"]
    assert [case["identical"] for case in cases] == [revision == "2025-02", False]
    if revision == "gguf":
        assert cases[0]["n_tokens"] == cases[0]["first_difference_served_vs_chat_template"] + 2
