"""The Modelfile: chat formats, Ollama's TEMPLATE, rendering and parsing Modelfiles, and Ollama's prompt.

- `CHAT_FORMATS`: per base model's chat format (ChatML for SmolLM2, DeepSeek-R1 for the R1 distills), the Go
  TEMPLATE, one stop per turn delimiter, BOS, the `<think>` pre-fill and sampling defaults;
- `render_modelfile` / `parse_modelfile`: FROM, TEMPLATE, SYSTEM, PARAMETER lines, written and read back the
  way Ollama's parser reads them; `talk_modelfile_text` is the repository's top-level `Modelfile`;
- `render_go_template` and `ollama_prompt`: the subset of Go's text/template the TEMPLATEs use, executed the
  way Ollama's server builds a prompt, so a check can test the file Ollama will read.

The pre-fill choice, explicitly: a served prompt ends exactly where the training prompt ended
(`chat.render_for_training`). ChatML (SmolLM2) does not open `<think>`: the model was trained to
write `<think>` itself. The DeepSeek-R1-Distill template pre-fills `<think>\\n` after
`<｜Assistant｜>`, so training prompts end with it and the Modelfile's TEMPLATE does too; the
served output then starts inside the reasoning block (no opening tag, only `</think>`), which
`chat.split_reasoning` handles.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from friction_lib.chat import SYSTEM_PROMPT, THINK_OPEN
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

# The top-level Modelfile points at the talk model's q4_k_m.
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
    fmt = chat_format_for(prof)
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


def _go_parse_if(tokens: list[tuple[str, str]], i: int, cond: list[str]) -> tuple[Any, int]:
    """The `if` whose action is tokens[i]: its (condition, body) branches and else body; i of its `end`."""
    branches = []
    while True:
        body, i, closer = _go_parse(tokens, i + 1, ("end", "else"))
        branches.append((cond, body))
        closer_words = _go_words(closer)
        if closer_words[0] == "end":
            return ("if", branches, []), i
        if closer_words[1:2] == ["if"]:
            cond = closer_words[2:]
            continue
        else_body, i, _ = _go_parse(tokens, i + 1, ("end",))
        return ("if", branches, else_body), i


def _go_parse(tokens: list[tuple[str, str]], i: int, stops: tuple[str, ...]) -> tuple[list[Any], int, str]:
    """Nodes from tokens[i] up to an action in `stops` (returned with its index), or to the end."""
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
            node, i = _go_parse_if(tokens, i, words[1:])
            nodes.append(node)
        elif head == "range":
            body, i, _ = _go_parse(tokens, i + 1, ("end",))
            nodes.append(("range", words[1:], body))
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
