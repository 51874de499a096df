"""How Ollama turns a Modelfile TEMPLATE and a chat request into a prompt, and a reply into content and thinking.

- `render_go_template`: the subset of Go's text/template that this project's TEMPLATEs use, executed as Go does;
- `ollama_prompt`: the prompt Ollama's server builds for a chat request (SYSTEM, collation, `.Thinking` per message);
- `thinking_tags`: the reasoning tags Ollama infers from a TEMPLATE (its `thinking.InferTags`). A model whose
  TEMPLATE yields both tags is "thinking"-capable: Ollama then returns the reasoning apart from the answer;
- `ollama_reply`: the assistant message Ollama returns for a generated text, which clients send back as history.

Written from Ollama's source (template/template.go, thinking/template.go, thinking/parser.go, server/routes.go),
so that a check can test the file Ollama will read, not the data it was generated from.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from friction_lib.errors import FrictionError

if TYPE_CHECKING:
    from friction_lib.modelfile import ParsedModelfile


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


_GO_CONSTANTS = {"true": True, "false": False}


def _go_value(word: str, dot: Any, root: dict[str, Any]) -> Any:
    if word.startswith('"') and word.endswith('"'):
        return json.loads(word)
    if word in _GO_CONSTANTS:
        return _GO_CONSTANTS[word]
    if word == ".":
        return dot
    base, path = (
        (root, word[2:]) if word.startswith("$.") else (dot, word[1:]) if word.startswith(".") else (None, "")
    )
    if base is None:
        raise GoTemplateError(
            f'Unsupported term {word!r} in the template (supported: .Field, $.Field, "text", true, false).'
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
    `{{ range .List }}`, `{{ end }}`, `eq A B`, `not X`, string literals, `true`, `false` and the
    `{{-`/`-}}` trim markers. Anything else raises GoTemplateError rather than being rendered wrongly.
    """
    nodes, _, _ = _go_parse(_go_lex(template), 0, ())
    out: list[str] = []
    _go_exec(nodes, data, data, out)
    return "".join(out)


# --------------------------------------------------------------------------- Ollama's server


def ollama_prompt(modelfile: ParsedModelfile, messages: list[dict[str, str]]) -> str:
    """The prompt text Ollama builds for a chat request, as Ollama's server does it.

    The Modelfile's SYSTEM is prepended when the request's first message is not a system message;
    then messages are collated (system messages joined into `.System`, consecutive same-role
    messages merged) and the TEMPLATE is executed with `.System` and `.Messages`. A message's
    `thinking` (the reasoning Ollama returned apart from the answer, sent back by the client) is its
    `.Thinking`.
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
            collated.append(dict(message))
    data = {
        "System": "\n\n".join(systems),
        "Messages": [
            {"Role": m["role"], "Content": m["content"], "Thinking": m.get("thinking", "")} for m in collated
        ],
    }
    return render_go_template(modelfile.template, data)


def _refers_to(words: list[str], field: str) -> bool:
    """A `.Field` reference (Go's FieldNode): `$.Field` and `$x.Field` are variables and do not count."""
    return any(word == f".{field}" or word.startswith(f".{field}.") for word in words)


def _take_tags(nodes: list[Any], tags: list[str]) -> None:
    if nodes and nodes[0][0] == "text":
        tags[0] = nodes[0][1].strip()
    if nodes and nodes[-1][0] == "text":
        tags[1] = nodes[-1][1].strip()


def _visit_thinking(nodes: list[Any], in_messages: bool, tags: list[str]) -> None:
    for node in nodes:
        if node[0] == "out" and in_messages and _refers_to(node[1], "Thinking"):
            _take_tags(nodes, tags)
        elif node[0] == "if":
            for k, (cond, body) in enumerate(node[1]):
                # An `else if` is an `if` alone in its else-list: that list starts with no text.
                if k == 0 and in_messages and _refers_to(cond, "Thinking"):
                    _take_tags(nodes, tags)
                _visit_thinking(body, in_messages, tags)
            _visit_thinking(node[2], in_messages, tags)
        elif node[0] == "range":
            _visit_thinking(node[2], _refers_to(node[1], "Messages"), tags)


def thinking_tags(template: str) -> tuple[str, str]:
    """The (opening, closing) reasoning tags Ollama infers from a TEMPLATE, or ("", "") (`thinking.InferTags`).

    Ollama looks for `.Thinking` inside a `range` over `.Messages` and takes the first and last text of
    the nearest list around it, trimmed; the last such reference wins. With both tags found, the model
    has Ollama's "thinking" capability: `think` defaults to true, and Ollama returns the reasoning in
    the message's `thinking`, apart from `content`.
    """
    nodes, _, _ = _go_parse(_go_lex(template), 0, ())
    tags = ["", ""]
    _visit_thinking(nodes, False, tags)
    return tags[0], tags[1]


def ollama_reply(modelfile: ParsedModelfile, prompt: str, generated: str) -> dict[str, str]:
    """The assistant message Ollama returns for `generated` (the text after `prompt`, stop token excluded).

    With reasoning tags in the TEMPLATE, Ollama's parser (thinking/parser.go) splits the text: a prompt
    that ends with the opening tag starts it inside the reasoning; leading whitespace before and after
    the reasoning is dropped. Without tags, the text comes back whole. A client sends this message back
    as history, so it is what the TEMPLATE sees for an earlier turn.
    """
    opening, closing = thinking_tags(modelfile.template)
    if not (opening and closing):
        return {"role": "assistant", "content": generated}
    text = (opening if prompt.strip().endswith(opening) else "") + generated
    if not text.lstrip().startswith(opening):
        return {"role": "assistant", "content": text}
    thinking, closed, answer = text.lstrip()[len(opening) :].lstrip().partition(closing)
    return {"role": "assistant", "thinking": thinking, "content": answer.lstrip() if closed else ""}
