from __future__ import annotations

import pytest

from friction_lib.chat import (
    FRICTION_SYSTEM_PROMPT,
    SYSTEM_PROMPT,
    build_messages,
    format_target,
    prompt_prefills_think,
    render_for_training,
    render_prompt,
    split_reasoning,
    system_prompt,
)

# The DeepSeek-R1-Distill chat template (abridged to what matters): it drops everything up to </think>
# from assistant turns and, in recent revisions, pre-fills "<think>\n" in the generation prompt.
R1_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'system' %}{{ m['content'] }}"
    "{% elif m['role'] == 'user' %}{{ '<｜User｜>' + m['content'] }}"
    "{% elif m['role'] == 'assistant' %}{% set c = m['content'] %}"
    "{% if '</think>' in c %}{% set c = c.split('</think>')[-1] %}{% endif %}"
    "{{ '<｜Assistant｜>' + c + '<｜end▁of▁sentence｜>' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<｜Assistant｜><think>\\n' }}{% endif %}"
)


class FakeR1Tokenizer:
    """Renders the real R1 template text with jinja2, as transformers does (explicit test double)."""

    chat_template = R1_TEMPLATE

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False):
        import jinja2

        env = jinja2.Environment()
        return env.from_string(self.chat_template).render(
            messages=messages,
            add_generation_prompt=add_generation_prompt,
            bos_token="<｜begin▁of▁sentence｜>",
        )


def test_split_no_think_is_all_answer():
    p = split_reasoning("Paris is the capital of France.")
    assert p.reasoning == "" and p.answer == "Paris is the capital of France." and p.closed


def test_split_closed_think():
    p = split_reasoning("<think>\nThe user assumes X.\n</think>\n\nThat's not quite right.")
    assert p.reasoning == "The user assumes X."
    assert p.answer == "That's not quite right."


def test_split_unclosed_think_is_reasoning_only():
    p = split_reasoning("<think>I am still thinking about this")
    assert p.reasoning == "I am still thinking about this" and p.answer == "" and not p.closed


def test_split_prefilled_think_lone_close():
    p = split_reasoning("the premise is false\n</think>\nNo, it is not visible.")
    assert p.reasoning == "the premise is false" and p.answer == "No, it is not visible."


def test_split_prefilled_flag_without_close_is_reasoning():
    p = split_reasoning("still reasoning", prefilled=True)
    assert p.reasoning == "still reasoning" and p.answer == "" and not p.closed


def test_split_strips_leaked_special_tokens():
    p = split_reasoning("<think>a</think>answer<|im_end|>")
    assert p.answer == "answer"


def test_system_prompt_names():
    assert system_prompt(None) == SYSTEM_PROMPT
    assert system_prompt("friction") == FRICTION_SYSTEM_PROMPT
    assert system_prompt("Be terse.") == "Be terse."
    assert FRICTION_SYSTEM_PROMPT.startswith(SYSTEM_PROMPT)


def test_render_prompt_uses_model_template(tokenizer):
    text = render_prompt(tokenizer, build_messages("Hi there"))
    assert text.startswith("<|im_start|>system\n" + SYSTEM_PROMPT)
    assert text.endswith("<|im_start|>assistant\n")
    assert not prompt_prefills_think(text)


def test_render_for_training_chatml_keeps_reasoning(tokenizer):
    target = format_target("The user assumes the Wall is visible.", "It is not visible from the Moon.")
    parts = render_for_training(
        tokenizer, [*build_messages("Why is the Wall visible?"), {"role": "assistant", "content": target}]
    )
    assert parts["completion"].startswith("<think>\nThe user assumes")
    assert parts["completion"].endswith("<|im_end|>\n")
    assert "Why is the Wall visible?" in parts["prompt"] and parts["prompt"].endswith(
        "<|im_start|>assistant\n"
    )


def test_render_for_training_r1_template_keeps_think_and_no_double_prefill():
    tok = FakeR1Tokenizer()
    target = format_target("Reasoning here.", "Final answer.")
    parts = render_for_training(tok, [*build_messages("Q?"), {"role": "assistant", "content": target}])
    # The template itself would have dropped the reasoning:
    full = tok.apply_chat_template([*build_messages("Q?"), {"role": "assistant", "content": target}])
    assert "Reasoning here." not in full
    assert prompt_prefills_think(parts["prompt"])
    assert parts["completion"].startswith("Reasoning here.\n</think>")
    assert parts["completion"].endswith("Final answer.<｜end▁of▁sentence｜>")
    assert "｜" in parts["prompt"]  # fullwidth bars, not ASCII


def test_render_for_training_needs_assistant_turn(tokenizer):
    with pytest.raises(ValueError, match="assistant"):
        render_for_training(tokenizer, build_messages("Q?"))
