"""The chat format, in one place: the system prompts, rendering with the model's own
template, and splitting a completion into reasoning and answer.

Every step (training, eval, the demo, deployment) imports from here, so the model
sees exactly the same conversation shape everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"

# The project's one system prompt. Training, eval, the demo and every Modelfile use it.
# It is deliberately neutral: it asks for visible reasoning, not for push-back, so that
# any push-back a fine-tuned model shows was learned from the data.
SYSTEM_PROMPT = "You are a thoughtful assistant. Think briefly inside <think></think>, then give your answer."

# The "prompt-only friction" baseline: the same base model, asked in words to push back.
# The A/B/C demo and the eval compare it with fine-tuning.
FRICTION_SYSTEM_PROMPT = (
    SYSTEM_PROMPT + " Push back when it helps the user: correct a false premise, ask a clarifying "
    "question when a request is ambiguous, say plainly when something is uncertain or unknowable, "
    "disagree with reasons when asked to approve a wrong claim or a bad plan, and refuse harmful "
    "requests with a reason and a safer alternative. When a request is clear and safe, simply help."
)

SYSTEM_PROMPTS = {"default": SYSTEM_PROMPT, "friction": FRICTION_SYSTEM_PROMPT}

# Special tokens that may leak into decoded text from engines that do not strip them.
_LEAKED_TOKENS = (
    "<|im_end|>",
    "<|im_start|>",
    "<|endoftext|>",
    "<｜end▁of▁sentence｜>",
    "<｜Assistant｜>",
    "<｜User｜>",
)


def system_prompt(name_or_text: str | None) -> str:
    """`default`, `friction`, or a literal system prompt."""
    if name_or_text is None:
        return SYSTEM_PROMPT
    return SYSTEM_PROMPTS.get(name_or_text, name_or_text)


def build_messages(user: str, system: str | None = SYSTEM_PROMPT) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": user})
    return messages


def render_prompt(tokenizer: Any, messages: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
    """Render messages with the model's own chat template, as text."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            "This tokenizer has no chat template. Use an instruct model, or prepare the embedded one "
            "with `friction chat --engine transformers --model cpu`."
        )
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=add_generation_prompt
    )


def prompt_prefills_think(rendered_prompt: str) -> bool:
    """True when the template opens the reasoning block itself (the R1-distill templates do)."""
    return rendered_prompt.rstrip().endswith(THINK_OPEN)


_PLACEHOLDER = "\u2063FRICTION_ASSISTANT_TURN\u2063"


def render_for_training(tokenizer: Any, messages: list[dict[str, str]]) -> dict[str, str]:
    """Split a conversation whose last turn is the assistant's into `prompt` and `completion` text.

    The completion keeps the `<think>` block. Some templates (DeepSeek-R1-Distill) strip
    `<think>...</think>` from assistant turns, which would silently remove the reasoning from the
    training target, so the assistant turn is rendered from a placeholder and the real text is put
    back verbatim. If the template pre-fills `<think>\\n` in the prompt, the completion does not
    repeat it.
    """
    if not messages or messages[-1]["role"] != "assistant":
        raise ValueError("render_for_training needs a conversation that ends with an assistant turn.")
    target = messages[-1]["content"]
    prompt = render_prompt(tokenizer, messages[:-1], add_generation_prompt=True)
    full = render_prompt(tokenizer, [*messages[:-1], {"role": "assistant", "content": _PLACEHOLDER}], False)
    at = full.index(_PLACEHOLDER)
    turn_end = full[at + len(_PLACEHOLDER) :]
    prefix = full[:at]
    # Whatever the template adds to an assistant turn beyond the generation prompt (rare).
    extra = prefix[len(prompt) :] if prefix.startswith(prompt) else ""
    if prompt_prefills_think(prompt):
        stripped = target.lstrip()
        if stripped.startswith(THINK_OPEN):
            target = stripped[len(THINK_OPEN) :].lstrip("\n")
    return {"prompt": prompt, "completion": extra + target + turn_end}


def format_target(reasoning: str, answer: str) -> str:
    """The assistant text the model is trained to write: reasoning block, then the answer."""
    return f"{THINK_OPEN}\n{reasoning.strip()}\n{THINK_CLOSE}\n\n{answer.strip()}"


@dataclass(frozen=True)
class Parsed:
    reasoning: str
    answer: str
    closed: bool  # the reasoning block was closed (or there was none)


def split_reasoning(text: str, prefilled: bool = False) -> Parsed:
    """Split a completion into reasoning and answer.

    Handles: no `<think>` at all (all answer); an unclosed `<think>` (all reasoning, no answer);
    a completion that is reasoning only; and templates that pre-fill `<think>\\n` in the prompt,
    so the completion starts inside the block and only `</think>` appears (`prefilled=True`, or
    detected from a lone `</think>`).
    """
    for token in _LEAKED_TOKENS:
        text = text.replace(token, "")
    text = text.strip()
    open_at = text.find(THINK_OPEN)
    close_at = text.find(THINK_CLOSE)
    if open_at == -1 and close_at == -1:
        if prefilled:
            return Parsed(reasoning=text, answer="", closed=False)
        return Parsed(reasoning="", answer=text, closed=True)
    if open_at != -1 and (close_at == -1 or open_at < close_at):
        before = text[:open_at].strip()
        rest = text[open_at + len(THINK_OPEN) :]
        close_at = rest.find(THINK_CLOSE)
        if close_at == -1:
            return Parsed(reasoning=rest.strip(), answer=before, closed=False)
        answer = (before + "\n" + rest[close_at + len(THINK_CLOSE) :]).strip()
        return Parsed(reasoning=rest[:close_at].strip(), answer=_strip_tags(answer), closed=True)
    # A lone </think>: the prompt opened the block.
    reasoning = text[:close_at].strip()
    answer = text[close_at + len(THINK_CLOSE) :].strip()
    return Parsed(reasoning=reasoning, answer=_strip_tags(answer), closed=True)


def _strip_tags(text: str) -> str:
    return text.replace(THINK_OPEN, "").replace(THINK_CLOSE, "").strip()
