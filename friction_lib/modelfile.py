"""The Modelfile: chat formats, Ollama's TEMPLATE, and rendering and parsing Modelfiles.

- `CHAT_FORMATS`: per base model's chat format (ChatML for SmolLM2, DeepSeek-R1 for the R1 distills), the Go
  TEMPLATE, one stop per turn delimiter, BOS, the `<think>` pre-fill and sampling defaults. The R1 format is
  derived from the tokenizer's own chat template (`r1_chat_format`): two revisions of it exist;
- `render_modelfile` / `parse_modelfile`: FROM, TEMPLATE, SYSTEM, PARAMETER lines, written and read back the
  way Ollama's parser reads them; `talk_modelfile_text` is the repository's top-level `Modelfile`.

How Ollama executes a TEMPLATE is in `ollama_template`.

The pre-fill choice, explicitly: a served prompt ends exactly where the training prompt ended
(`chat.render_for_training`), and both follow the tokenizer's chat template. ChatML (SmolLM2) does not open
`<think>`: the model was trained to write `<think>` itself. For DeepSeek-R1-Distill, whatever the template writes
after `<｜Assistant｜>` when it opens a reply is the pre-fill: nothing in the template inside the R1-Distill GGUFs,
`<think>\\n` in DeepSeek's February 2025 revision. With the pre-fill, the served output starts inside the
reasoning block (no opening tag, only `</think>`), which `chat.split_reasoning` handles.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from friction_lib.chat import SYSTEM_PROMPT, THINK_CLOSE, THINK_OPEN, prompt_prefills_think, render_prompt
from friction_lib.errors import FrictionError
from friction_lib.files import write_atomic
from friction_lib.models import BASE_MODEL_IDS, Profile, get_profile

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


def r1_template(tail: str) -> str:
    """DeepSeek-R1-Distill's chat template as an Ollama TEMPLATE; `tail` is what the tokenizer's template writes
    after `<｜Assistant｜>` when it opens a reply (the pre-fill).

    DeepSeek's template drops everything up to `</think>` from earlier assistant turns. Go templates cannot split
    strings; Ollama does it instead: the never-rendered `{{ if false }}<think>{{ .Thinking }}</think>` block
    declares the reasoning tags (Ollama's `thinking.InferTags`), so Ollama returns a reply's reasoning in
    `thinking`, apart from `content`, and a client sends it back that way. An earlier turn's `.Content` is then
    the answer alone, with its reasoning left out as in DeepSeek's template; the blank line that followed
    `</think>` (which Ollama trims) is written back when the turn had reasoning.
    """
    return (
        "{{- if .System }}{{ .System }}{{ end }}\n"
        "{{- range .Messages }}\n"
        '{{- if eq .Role "user" }}' + R1_USER + "{{ .Content }}\n"
        '{{- else if eq .Role "assistant" }}' + R1_ASSISTANT + '{{ if .Thinking }}{{ "\\n\\n" }}{{ end }}'
        "{{ .Content }}" + R1_EOS + "\n"
        "{{- if false }}" + THINK_OPEN + "{{ .Thinking }}" + THINK_CLOSE + "{{ end }}\n"
        "{{- end }}\n"
        "{{- end }}" + R1_ASSISTANT + tail
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
    note: str  # on the pre-fill choice, written into the Modelfile as comment lines


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
    # The template and the pre-fill come from the tokenizer: `r1_chat_format`.
    "deepseek-r1": ChatFormat(
        name="deepseek-r1",
        template="",
        stops=(R1_BOS, R1_EOS, R1_USER, R1_ASSISTANT),
        bos=R1_BOS,
        prefills_think=False,
        # DeepSeek's recommendation for the R1 distills: temperature 0.5-0.7, top_p 0.95.
        parameters=(
            ("temperature", "0.6"),
            ("top_p", "0.95"),
            ("num_ctx", "4096"),
            ("num_predict", "2048"),
        ),
        note="",
    ),
}

# The top-level Modelfile points at the talk model's q4_k_m.
TALK_GGUF = "./export/friction-r1-7b-q4_k_m.gguf"
# R1-Distill's tokenizer_config.json sets add_bos_token: true, so its GGUF adds BOS when tokenising.
TALK_GGUF_ADDS_BOS = True
# The chat-template revision the top-level Modelfile is rendered from (r1_tokenizer.TEMPLATES).
TALK_TEMPLATE_REVISION = "2025-02"


def generation_tail(tokenizer: Any, header: str) -> str:
    """What the tokenizer's chat template writes after the assistant `header` when it opens a reply."""
    messages = [{"role": "user", "content": "Hello."}]
    closed = render_prompt(tokenizer, messages, add_generation_prompt=False)
    opened = render_prompt(tokenizer, messages, add_generation_prompt=True)
    added = opened[len(closed) :] if opened.startswith(closed) else ""
    if not added.startswith(header):
        raise FrictionError(
            f"The tokenizer's chat template does not open a reply with {header!r} (it adds {added!r}); "
            "it is not the chat format of this profile. Export with the --model profile the adapter was "
            "trained on."
        )
    return added[len(header) :]


def r1_chat_format(tokenizer: Any) -> ChatFormat:
    """The DeepSeek-R1 chat format, its pre-fill read from the tokenizer's own chat template."""
    tail = generation_tail(tokenizer, R1_ASSISTANT)
    if any(mark in tail for mark in ('"""', "{{", "\t")):
        raise FrictionError(f"The R1 generation prompt {tail!r} cannot be written into an Ollama TEMPLATE.")
    prefills = prompt_prefills_think(tail)
    what = f"Pre-fills {tail!r}" if tail else "Nothing follows"
    then = (
        "output starts inside the reasoning (only </think> appears)"
        if prefills
        else "the model opens <think>"
    )
    note = (
        f"{what} after <\uff5cAssistant\uff5c>, as in this tokenizer's chat template and the training prompts; "
        f"{then}.\nEarlier turns' reasoning stays out, as in the chat template: the TEMPLATE names .Thinking "
        "between <think> and </think>,\nso Ollama returns reasoning apart (`thinking`) and clients send the "
        "answer back alone."
    )
    return replace(
        CHAT_FORMATS["deepseek-r1"], template=r1_template(tail), prefills_think=prefills, note=note
    )


# --------------------------------------------------------------------------- Modelfile


def chat_format_for(profile: str | Profile, tokenizer: Any = None) -> ChatFormat:
    """The profile's chat format. The R1 one follows `tokenizer` (default: the tokenizer of the profile's model,
    which training used)."""
    prof = get_profile(profile) if isinstance(profile, str) else profile
    if prof.chat_format != "deepseek-r1":
        return CHAT_FORMATS[prof.chat_format]
    if tokenizer is None:
        from friction_lib.models import load_tokenizer

        tokenizer = load_tokenizer(prof.model_id)
    return r1_chat_format(tokenizer)


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
    fmt: ChatFormat | None = None,
    base_model: str | None = None,
) -> str:
    """An Ollama Modelfile: FROM, TEMPLATE, SYSTEM, one `PARAMETER stop` per delimiter, sampling.

    `fmt` defaults to the profile's chat format (`chat_format_for`); `base_model` names the base in the
    header (default: the profile's published model)."""
    prof = get_profile(profile) if isinstance(profile, str) else profile
    fmt = fmt or chat_format_for(prof)
    template = modelfile_template(fmt, gguf_adds_bos)
    for name, text in (("TEMPLATE", template), ("SYSTEM", system)):
        if '"""' in text or "\t" in text:
            raise FrictionError(
                f"The Modelfile {name} may not contain triple quotes or tabs; Ollama would misread it."
            )
    lines = [
        f"# Push-Back AI: friction fine-tune of {base_model or BASE_MODEL_IDS[prof.name]} (profile "
        f"{prof.name}, chat format {fmt.name}).",
        "# Generated by friction_lib.export (friction export); edit the code, not this file.",
    ]
    lines += [f"# {line}" for line in (fmt.note + "\n" + header).strip().splitlines()]
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
    """The repository's top-level `Modelfile`: the 7B talk model, rendered by the same code from the real R1
    tokenizer with DeepSeek's February 2025 chat template (`TALK_TEMPLATE_REVISION`)."""
    from friction_lib.models import load_tokenizer
    from friction_lib.r1_tokenizer import r1_tokenizer_dir

    tokenizer = load_tokenizer(str(r1_tokenizer_dir(TALK_TEMPLATE_REVISION)))
    return render_modelfile(
        "talk",
        TALK_GGUF,
        gguf_adds_bos=TALK_GGUF_ADDS_BOS,
        fmt=r1_chat_format(tokenizer),
        header="Rendered from DeepSeek's February 2025 chat template (deepseek-ai's tokenizer_config.json since\n"
        "then), which pre-fills <think>; the template inside the R1-Distill GGUFs does not. `friction export`\n"
        "derives export/Modelfile from the tokenizer training used; where the two differ, use that one.\n"
        "Written by `python -m friction_lib.export talk-modelfile`. Create the GGUF with\n"
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


def _split_command(line: str) -> tuple[str, str, str]:
    """'PARAMETER stop "x"' -> ('PARAMETER', 'stop', '"x"'); 'FROM ./a.gguf' -> ('FROM', '', './a.gguf')."""
    command, _, value = line.strip().partition(" ")
    value = value.lstrip(" ")
    name = ""
    if command.upper() == "PARAMETER":
        name, _, value = value.partition(" ")
        value = value.lstrip(" ")
    return command, name, value


def _triple_quoted(rest: str, command: str) -> tuple[str, str]:
    """The \"\"\"block\"\"\" that starts on the first line of `rest`, and the text after its line."""
    start = rest.index('"""')
    end = rest.find('"""', start + 3)
    if end == -1:
        raise FrictionError(f"Unterminated triple-quoted {command} in the Modelfile.")
    return rest[start : end + 3], rest[end + 3 :].partition("\n")[2]


_FIELDS = {"FROM": "from_", "TEMPLATE": "template", "SYSTEM": "system", "ADAPTER": "adapter"}


def parse_modelfile(text: str) -> ParsedModelfile:
    """Read a Modelfile the way Ollama's parser does, for the commands this project writes.

    A value is a bare word, a "quoted string", or a \"\"\"triple-quoted\"\"\" block that may span
    lines and keeps its inner text byte for byte (trailing newline included).
    """
    parsed = ParsedModelfile()
    rest = text
    while rest:
        line, _, after = rest.partition("\n")
        if not line.strip() or line.strip().startswith("#"):
            rest = after
            continue
        command, name, value = _split_command(line)
        if value.startswith('"""'):
            value, rest = _triple_quoted(rest, command)
        else:
            rest = after
        value = _unquote(value)
        if command.upper() in _FIELDS:
            setattr(parsed, _FIELDS[command.upper()], value)
        elif command.upper() == "PARAMETER":
            parsed.parameters.setdefault(name.lower(), []).append(value)
        else:
            raise FrictionError(f"Unknown Modelfile command {command!r}.")
    return parsed
