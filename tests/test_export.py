"""Export: Modelfiles (code points, templates proven equal to the chat templates), bad input, and a real
merge -> GGUF -> quantise -> verify run of a small LoRA adapter on the embedded model."""

from __future__ import annotations

import json
import shutil
from collections import namedtuple
from pathlib import Path

import pytest

from friction_lib import adapters, export
from friction_lib.chat import SYSTEM_PROMPT, build_messages, prompt_prefills_think, render_for_training
from friction_lib.errors import FrictionError

# Spelled out here independently of export.py, so a wrong constant there cannot pass by agreeing with itself.
FULLWIDTH_BAR = "\uff5c"
LOWER_BLOCK = "\u2581"
R1_TOKENS = {
    "bos": f"<{FULLWIDTH_BAR}begin{LOWER_BLOCK}of{LOWER_BLOCK}sentence{FULLWIDTH_BAR}>",
    "eos": f"<{FULLWIDTH_BAR}end{LOWER_BLOCK}of{LOWER_BLOCK}sentence{FULLWIDTH_BAR}>",
    "user": f"<{FULLWIDTH_BAR}User{FULLWIDTH_BAR}>",
    "assistant": f"<{FULLWIDTH_BAR}Assistant{FULLWIDTH_BAR}>",
}

# The chat template of deepseek-ai/DeepSeek-R1-Distill-Qwen-7B (tokenizer_config.json) with the tool-call
# branches left out (no conversation here uses tools); everything else verbatim. Its special tokens are
# built from the code points above.
R1_OFFICIAL_TEMPLATE = (
    (
        "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}"
        "{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='') %}"
        "{%- for message in messages %}{%- if message['role'] == 'system' %}"
        "{% set ns.system_prompt = message['content'] %}{%- endif %}{%- endfor %}"
        "{{bos_token}}{{ns.system_prompt}}"
        "{%- for message in messages %}"
        "{%- if message['role'] == 'user' %}{%- set ns.is_tool = false -%}{{'USER' + message['content']}}{%- endif %}"
        "{%- if message['role'] == 'assistant' and message['content'] is not none %}"
        "{% set content = message['content'] %}"
        "{% if '</think>' in content %}{% set content = content.split('</think>')[-1] %}{% endif %}"
        "{{'ASSISTANT' + content + 'EOS'}}{%- endif %}"
        "{%- endfor -%}"
        "{% if add_generation_prompt and not ns.is_tool %}{{'ASSISTANT<think>\\n'}}{% endif %}"
    )
    .replace("USER", R1_TOKENS["user"])
    .replace("ASSISTANT", R1_TOKENS["assistant"])
    .replace("EOS", R1_TOKENS["eos"])
)


class JinjaTokenizer:
    """Just enough of a tokenizer for chat.render_for_training: the official R1 template, rendered by jinja."""

    chat_template = R1_OFFICIAL_TEMPLATE

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False, **_):
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        return env.from_string(self.chat_template).render(
            messages=messages, add_generation_prompt=add_generation_prompt, bos_token=R1_TOKENS["bos"]
        )


CONVERSATIONS = [
    [{"role": "user", "content": "Is the Great Wall visible from the Moon?"}],
    [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "What is 2 + 2?"},
        {"role": "assistant", "content": "4."},
        {"role": "user", "content": "And 3 + 3?\nIn words."},
    ],
]


def _with_system(conversation):
    return conversation if conversation[0]["role"] == "system" else build_messages(conversation[0]["content"])


# --------------------------------------------------------------------------- Modelfiles and templates


def test_r1_tokens_carry_the_fullwidth_code_points():
    for name, token in R1_TOKENS.items():
        assert getattr(export, f"R1_{name.upper()}") == token
        assert "|" not in token and "_" not in token and " " not in token, name


def test_top_level_modelfile_is_current_and_uses_the_right_code_points(root):
    path = root / "Modelfile"
    assert path.exists(), "Modelfile missing; write it with `python -m friction_lib.export talk-modelfile`"
    text = path.read_text(encoding="utf-8")
    assert text == export.talk_modelfile_text(), (
        "The top-level Modelfile is stale; rewrite it with `python -m friction_lib.export talk-modelfile`"
    )
    parsed = export.parse_modelfile(text)
    assert parsed.from_ == "./export/friction-r1-7b-q4_k_m.gguf"
    assert parsed.stops == [R1_TOKENS["bos"], R1_TOKENS["eos"], R1_TOKENS["user"], R1_TOKENS["assistant"]]
    assert parsed.system == SYSTEM_PROMPT
    for token in (R1_TOKENS["user"], R1_TOKENS["assistant"], R1_TOKENS["eos"]):
        assert token in parsed.template
    # No ASCII look-alikes of DeepSeek's tokens anywhere (a copy from a web page would produce these).
    for ascii_like in (
        "<|User|>",
        "<|Assistant|>",
        "<|end_of_sentence|>",
        "<|begin_of_sentence|>",
        "<|end▁of▁sentence|>",
    ):
        assert ascii_like not in text
    assert {hex(ord(c)) for c in text if ord(c) > 127} == {"0xff5c", "0x2581"}


def test_modelfile_has_from_template_system_one_stop_per_delimiter_and_sampling():
    parsed = export.parse_modelfile(export.render_modelfile("cpu", "./m.gguf", gguf_adds_bos=False))
    assert parsed.from_ == "./m.gguf"
    assert parsed.system == SYSTEM_PROMPT
    assert parsed.stops == ["<|im_start|>", "<|im_end|>"]
    assert {"temperature", "top_p", "num_ctx", "num_predict"} <= set(parsed.parameters)
    assert parsed.template.endswith("<|im_start|>assistant\n")  # the triple-quoted block keeps its newline
    assert "\t" not in parsed.template


def test_chatml_modelfile_renders_exactly_like_the_tokenizer_and_training(tokenizer):
    parsed = export.parse_modelfile(export.render_modelfile("cpu", "./m.gguf", gguf_adds_bos=False))
    for conversation in CONVERSATIONS:
        served = export.ollama_prompt(parsed, conversation)
        messages = _with_system(conversation)
        assert served == tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        training = render_for_training(
            tokenizer, [*messages, {"role": "assistant", "content": "<think>\nx\n</think>\n\ny"}]
        )
        assert served == training["prompt"]
        assert not prompt_prefills_think(served)  # ChatML: no pre-fill, as in training


@pytest.mark.parametrize("adds_bos", [True, False])
def test_r1_modelfile_matches_the_official_template_and_prefills_think(adds_bos):
    tok = JinjaTokenizer()
    parsed = export.parse_modelfile(export.render_modelfile("talk", "./m.gguf", gguf_adds_bos=adds_bos))
    for conversation in CONVERSATIONS:
        served = export.ollama_prompt(parsed, conversation)
        # With add_bos in the GGUF, llama.cpp/Ollama prepend BOS while tokenising; the text then lacks it.
        tokens_text = (R1_TOKENS["bos"] + served) if adds_bos else served
        messages = _with_system(conversation)
        reference = tok.apply_chat_template(messages, add_generation_prompt=True)
        assert tokens_text == reference
        training = render_for_training(
            tok, [*messages, {"role": "assistant", "content": "<think>\nx\n</think>\n\ny"}]
        )
        assert tokens_text == training["prompt"]
        assert served.endswith(R1_TOKENS["assistant"] + "<think>\n")
        assert prompt_prefills_think(served) and training["completion"].startswith("x\n</think>")


def test_go_template_subset_trims_and_refuses_what_it_does_not_know():
    data = {
        "System": "S",
        "Messages": [{"Role": "user", "Content": "hi"}, {"Role": "assistant", "Content": "yo"}],
    }
    template = '{{ if .System }}[{{ .System }}]{{ end }}  \n {{- range .Messages }}{{ if eq .Role "user" }}U:{{ .Content }}{{ else }}A:{{ .Content }}{{ end }} {{- end }}'
    assert export.render_go_template(template, data) == "[S]U:hiA:yo"
    with pytest.raises(export.GoTemplateError):
        export.render_go_template("{{ .Nope }}", data)
    with pytest.raises(export.GoTemplateError):
        export.render_go_template("{{ range .Messages }}x", data)
    with pytest.raises(export.GoTemplateError):
        export.render_go_template("{{ slice .Messages 1 }}", data)


def test_parse_modelfile_keeps_triple_quoted_text_byte_for_byte():
    text = 'FROM ./a.gguf\n# comment\nTEMPLATE """line one\n  {{ .Content }}\n"""\nPARAMETER stop "<|im_end|>"\nPARAMETER temperature 0.2\n'
    parsed = export.parse_modelfile(text)
    assert parsed.template == "line one\n  {{ .Content }}\n"
    assert parsed.stops == ["<|im_end|>"] and parsed.parameters["temperature"] == ["0.2"]


# --------------------------------------------------------------------------- bad input (nothing is left behind)


def _no_leftovers(parent: Path) -> None:
    assert not [p.name for p in parent.iterdir() if ".partial-" in p.name or ".old-" in p.name]


def _fake_adapter(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text("{}")
    (folder / "adapter_model.safetensors").write_bytes(b"")
    return folder


def test_unknown_quant_lists_the_valid_ones(tmp_path, capsys):
    with pytest.raises(FrictionError, match="Unknown quant type 'q9_9'.*q4_k_m.*q8_0"):
        export.parse_quants("q4_k_m,q9_9")
    from friction_lib.cli import main

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


@pytest.fixture(scope="module")
def test_adapter(tmp_path_factory):
    return adapters.make_test_adapter(tmp_path_factory.mktemp("adapter") / "adapter")


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


@pytest.fixture(scope="module")
def exported(test_adapter, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "out"
    result = export.export_adapter(
        test_adapter,
        out,
        quants="q8_0",
        verify_prompts=(export.VERIFY_PROMPTS[0], export.VERIFY_PROMPTS[2]),
        progress=False,
    )
    return result


@pytest.mark.slow
def test_export_writes_ggufs_modelfiles_and_a_passing_verification(exported, embedded_model_dir):
    out = exported.out_dir
    assert set(exported.ggufs) == {"f16", "q8_0"}
    for path in exported.ggufs.values():
        assert path.exists() and path.stat().st_size > 50 * 2**20
        parsed = export.parse_modelfile((out / f"{path.stem}.Modelfile").read_text())
        assert (out / parsed.from_).resolve() == path.resolve()
    assert (
        export.parse_modelfile((out / "Modelfile").read_text()).from_ == "./friction-smollm2-135m-q8_0.gguf"
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
def test_the_checks_can_fail(exported):
    """Each verification check fails on a broken input, so a pass means something."""
    from friction_lib.models import load_tokenizer

    out = exported.out_dir
    gguf = exported.ggufs["q8_0"]
    tokenizer = load_tokenizer(str(out / "merged"))
    good = export.parse_modelfile((out / "Modelfile").read_text())
    llm = export._load_llama(gguf, n_ctx=1024)
    try:
        assert export.check_template_tokens(llm, good, tokenizer)["passed"]
        missing_newline = export.ParsedModelfile(template=good.template.rstrip("\n"), system=good.system)
        assert not export.check_template_tokens(llm, missing_newline, tokenizer)["passed"]
        wrong_system = export.ParsedModelfile(template=good.template, system="You are a pirate.")
        assert not export.check_template_tokens(llm, wrong_system, tokenizer)["passed"]
        runs = export.greedy_runs(llm, good, export.VERIFY_PROMPTS[:2], limit=3)
        assert not export.check_stops(llm, runs, 3)["passed"]
        # A token transformers did not rank near the top fails; a near tie passes, and only a near tie.
        swapped = {
            export.VERIFY_PROMPTS[0]: export.Reference(runs[1].tokens, [{t: 0.0} for t in runs[1].tokens]),
            export.VERIFY_PROMPTS[1]: export.Reference(runs[0].tokens, [{t: 0.0} for t in runs[0].tokens]),
        }
        assert not export.check_greedy_match(llm, runs, swapped)["passed"]
        ours, other = runs[0].tokens[0], runs[1].tokens[0]
        assert ours != other

        def reference(gap: float) -> dict:
            top = [{other: -0.1, ours: -0.1 - gap}] + [{t: 0.0} for t in runs[0].tokens[1:]]
            return {runs[0].prompt: export.Reference([other, *runs[0].tokens[1:]], top)}

        tie = export.check_greedy_match(llm, runs[:1], reference(0.2))
        assert (
            tie["passed"]
            and tie["details"]["runs"][0]["near_tie"]
            and tie["details"]["runs"][0]["first_difference"] == 0
        )
        assert not export.check_greedy_match(llm, runs[:1], reference(0.9))["passed"]
        exact = {runs[0].prompt: export.Reference(runs[0].tokens, [{t: 0.0} for t in runs[0].tokens])}
        assert export.check_greedy_match(llm, runs[:1], exact)["details"]["runs"][0]["identical"]
    finally:
        llm.close()


@pytest.mark.slow
def test_exported_gguf_chats_through_the_llamacpp_engine(exported):
    from friction_lib.engines import LlamaCppEngine

    engine = LlamaCppEngine(exported.ggufs["q8_0"], n_ctx=1024, n_threads=1)
    result = engine.generate(["Write one sentence about autumn."], max_new_tokens=16)[0]
    assert result.raw.strip() and result.completion_tokens > 0


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
