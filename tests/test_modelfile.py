"""The Modelfile: DeepSeek's code points, the top-level Modelfile, templates proven equal to the chat templates
and to training (the R1 format derived from both revisions of the real R1 tokenizer, tokenised by llama.cpp),
the Go-template subset, Ollama's reasoning tags and replies, and the Modelfile parser."""

from __future__ import annotations

import pytest

from friction_lib import modelfile, ollama_template, verify
from friction_lib.chat import SYSTEM_PROMPT, build_messages, prompt_prefills_think, render_for_training
from friction_lib.errors import FrictionError
from friction_lib.r1_tokenizer import TEMPLATES

# Spelled out here independently of modelfile.py, so a wrong constant there cannot pass by agreeing with itself.
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
        assert getattr(modelfile, f"R1_{name.upper()}") == token
        assert "|" not in token and "_" not in token and " " not in token, name


def test_top_level_modelfile_is_current_and_uses_the_right_code_points(root):
    path = root / "Modelfile"
    assert path.exists(), "Modelfile missing; write it with `python -m friction_lib.export talk-modelfile`"
    text = path.read_text(encoding="utf-8")
    assert text == modelfile.talk_modelfile_text(), (
        "The top-level Modelfile is stale; rewrite it with `python -m friction_lib.export talk-modelfile`"
    )
    parsed = modelfile.parse_modelfile(text)
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
    parsed = modelfile.parse_modelfile(modelfile.render_modelfile("cpu", "./m.gguf", gguf_adds_bos=False))
    assert parsed.from_ == "./m.gguf"
    assert parsed.system == SYSTEM_PROMPT
    assert parsed.stops == ["<|im_start|>", "<|im_end|>"]
    assert {"temperature", "top_p", "num_ctx", "num_predict"} <= set(parsed.parameters)
    assert parsed.template.endswith("<|im_start|>assistant\n")  # the triple-quoted block keeps its newline
    assert "\t" not in parsed.template


def test_chatml_modelfile_renders_exactly_like_the_tokenizer_and_training(tokenizer):
    parsed = modelfile.parse_modelfile(modelfile.render_modelfile("cpu", "./m.gguf", gguf_adds_bos=False))
    for conversation in CONVERSATIONS:
        served = ollama_template.ollama_prompt(parsed, conversation)
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
    fmt = modelfile.r1_chat_format(tok)
    parsed = modelfile.parse_modelfile(
        modelfile.render_modelfile("talk", "./m.gguf", gguf_adds_bos=adds_bos, fmt=fmt)
    )
    for conversation in CONVERSATIONS:
        served = ollama_template.ollama_prompt(parsed, conversation)
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
    render, error = ollama_template.render_go_template, ollama_template.GoTemplateError
    assert render(template, data) == "[S]U:hiA:yo"
    assert render('{{ if false }}never{{ else if true }}{{ "a\\n" }}{{ end }}', data) == "a\n"
    with pytest.raises(error):
        render("{{ .Nope }}", data)
    with pytest.raises(error):
        render("{{ range .Messages }}x", data)
    with pytest.raises(error):
        render("{{ slice .Messages 1 }}", data)


def test_parse_modelfile_keeps_triple_quoted_text_byte_for_byte():
    text = 'FROM ./a.gguf\n# comment\nTEMPLATE """line one\n  {{ .Content }}\n"""\nPARAMETER stop "<|im_end|>"\nPARAMETER temperature 0.2\n'
    parsed = modelfile.parse_modelfile(text)
    assert parsed.template == "line one\n  {{ .Content }}\n"
    assert parsed.stops == ["<|im_end|>"] and parsed.parameters["temperature"] == ["0.2"]


def test_parse_modelfile_refuses_what_it_cannot_read():
    with pytest.raises(FrictionError, match="Unterminated triple-quoted TEMPLATE"):
        modelfile.parse_modelfile('FROM ./a.gguf\nTEMPLATE """open\n')
    with pytest.raises(FrictionError, match="Unknown Modelfile command 'LICENCE'"):
        modelfile.parse_modelfile("FROM ./a.gguf\nLICENCE mit\n")


def test_go_template_else_if_chains_pick_the_first_true_branch():
    template = '{{ if eq .A "x" }}X{{ else if eq .A "y" }}Y{{ else if not .A }}empty{{ else }}Z{{ end }}'
    rendered = [ollama_template.render_go_template(template, {"A": a}) for a in ("x", "y", "", "w")]
    assert rendered == ["X", "Y", "empty", "Z"]


def test_talk_modelfile_command_rewrites_the_top_level_modelfile_byte_for_byte(root, tmp_path, capsys):
    from friction_lib import export

    target = tmp_path / "Modelfile"
    assert export.main(["talk-modelfile", str(target)]) == 0
    assert target.read_bytes() == (root / "Modelfile").read_bytes()
    assert export.main([]) == 2


# --------------------------------------------------------------------------- Ollama's reasoning tags and replies


@pytest.mark.parametrize(
    ("template", "tags"),
    [
        (
            "{{ range .Messages }}{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}{{ end }}",
            ("<think>", "</think>"),
        ),
        (
            "{{ range .Messages }}{{ if false }}  <r> {{ .Thinking }}\n</r>\n{{ end }}{{ end }}",
            ("<r>", "</r>"),
        ),
        ("{{ range .Tools }}<think>{{ .Thinking }}</think>{{ end }}", ("", "")),  # not a range over .Messages
        (
            "<think>{{ .Thinking }}</think>{{ range .Messages }}{{ .Content }}{{ end }}",
            ("", ""),
        ),  # outside it
        (
            "{{ range .Messages }}<think>{{ $.Thinking }}</think>{{ end }}",
            ("", ""),
        ),  # a variable, not a field
        ("{{ range .Messages }}<think>{{ .Content }}</think>{{ end }}", ("", "")),
    ],
)
def test_thinking_tags_are_inferred_as_ollama_does(template, tags):
    assert ollama_template.thinking_tags(template) == tags


def test_ollama_reply_splits_reasoning_like_ollamas_parser():
    r1 = modelfile.ParsedModelfile(template=modelfile.r1_template("<think>\n"))
    reply = ollama_template.ollama_reply
    prefilled = "<｜Assistant｜><think>\n"
    assert reply(r1, prefilled, "Why?\n</think>\n\nNo.") == {
        "role": "assistant",
        "thinking": "Why?\n",
        "content": "No.",
    }
    assert reply(r1, "<｜Assistant｜>", "<think>\nWhy?</think>No.")["content"] == "No."
    assert reply(r1, "<｜Assistant｜>", "No.") == {
        "role": "assistant",
        "content": "No.",
    }  # no reasoning at all
    assert reply(r1, prefilled, "still thinking") == {
        "role": "assistant",
        "thinking": "still thinking",
        "content": "",
    }
    chatml = modelfile.ParsedModelfile(
        template=modelfile.CHAT_FORMATS["chatml"].template
    )  # no tags: all content
    assert reply(chatml, "x", "<think>\nWhy?\n</think>\n\nNo.")["content"] == "<think>\nWhy?\n</think>\n\nNo."


def test_a_tokenizer_of_another_chat_format_is_refused_for_r1(tokenizer):
    with pytest.raises(FrictionError, match="does not open a reply with '<｜Assistant｜>'"):
        modelfile.r1_chat_format(tokenizer)  # SmolLM2's ChatML


# --------------------------------------------------------------------------- the real R1 tokenizer, both revisions


@pytest.fixture(scope="module")
def r1_tokenizers():
    from friction_lib.r1_tokenizer import build_tokenizer

    return {revision: build_tokenizer(revision) for revision in TEMPLATES}


@pytest.fixture(scope="module")
def r1_vocab(tmp_path_factory):
    """llama.cpp's tokenizer of the R1 GGUF (a vocab-only GGUF with the real file's metadata)."""
    from llama_cpp import Llama

    from friction_lib.r1_tokenizer import write_vocab_gguf

    path = write_vocab_gguf(tmp_path_factory.mktemp("r1") / "r1-vocab.gguf")
    return Llama(model_path=str(path), vocab_only=True, verbose=False)


def _r1_modelfile(tok) -> modelfile.ParsedModelfile:
    fmt = modelfile.r1_chat_format(tok)
    return modelfile.parse_modelfile(
        modelfile.render_modelfile("talk", "./m.gguf", gguf_adds_bos=True, fmt=fmt)
    )


def _served_ids(llama, parsed, conversation) -> list[int]:
    """What Ollama feeds the model: the TEMPLATE run on the conversation as a client sends it, tokenised by
    llama.cpp with the GGUF's BOS and special tokens."""
    served = ollama_template.ollama_prompt(parsed, verify.served_messages(parsed, conversation))
    return llama.tokenize(served.encode(), add_bos=True, special=True)


def _tokenizer_ids(tok, messages) -> list[int]:
    text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return tok(text, add_special_tokens=False)["input_ids"]


@pytest.mark.engine
@pytest.mark.parametrize("revision", TEMPLATES)
def test_r1_prefill_is_read_from_the_tokenizer(r1_tokenizers, revision):
    fmt = modelfile.r1_chat_format(r1_tokenizers[revision])
    prefill = {"gguf": "", "2025-02": "<think>\n"}[revision]
    assert fmt.template.endswith(R1_TOKENS["assistant"] + prefill)
    assert fmt.prefills_think == bool(prefill)
    assert ollama_template.thinking_tags(fmt.template) == ("<think>", "</think>")


@pytest.mark.engine
@pytest.mark.parametrize("revision", TEMPLATES)
def test_r1_single_turn_tokens_match_the_tokenizer_and_training(r1_tokenizers, r1_vocab, revision):
    tok = r1_tokenizers[revision]
    parsed = _r1_modelfile(tok)
    conversation = [{"role": "user", "content": "Is the Great Wall visible from the Moon?"}]
    messages = build_messages(conversation[0]["content"])
    training = render_for_training(
        tok, [*messages, {"role": "assistant", "content": "<think>\nx\n</think>\n\ny"}]
    )
    training_ids = tok(training["prompt"], add_special_tokens=False)["input_ids"]
    assert _served_ids(r1_vocab, parsed, conversation) == _tokenizer_ids(tok, messages) == training_ids
    assert prompt_prefills_think(training["prompt"]) == (revision == "2025-02")


@pytest.mark.engine
@pytest.mark.parametrize("revision", TEMPLATES)
def test_r1_history_leaves_earlier_reasoning_out_as_the_tokenizer_does(r1_tokenizers, r1_vocab, revision):
    tok = r1_tokenizers[revision]
    conversation = [dict(m) for m in verify.HISTORY_CONVERSATION]
    reference = _tokenizer_ids(tok, conversation)
    assert "Simple arithmetic" not in tok.decode(reference)  # the tokenizer's template strips it
    assert _served_ids(r1_vocab, _r1_modelfile(tok), conversation) == reference


@pytest.mark.engine
@pytest.mark.parametrize("revision", TEMPLATES)
def test_r1_stops_are_special_tokens_and_include_the_turn_end(r1_tokenizers, r1_vocab, revision):
    import llama_cpp

    tok = r1_tokenizers[revision]
    stops = _r1_modelfile(tok).stops
    ids = [r1_vocab.tokenize(stop.encode(), add_bos=False, special=True) for stop in stops]
    assert all(len(i) == 1 for i in ids) and len({i[0] for i in ids}) == len(stops)
    messages = [*build_messages("Hi"), {"role": "assistant", "content": "x"}]
    turn_end = render_for_training(tok, messages)["completion"].removeprefix("x")
    assert turn_end == tok.eos_token and turn_end in stops  # what ends an answer in training stops Ollama
    eos = r1_vocab.token_eos()
    assert r1_vocab.detokenize([eos], special=True).decode() in stops
    assert llama_cpp.llama_vocab_is_eog(r1_vocab._model.vocab, eos)
