"""The A/B/C demo's runner: demo prompts, column plans, batched and streamed comparisons on the embedded
model, bad input (empty prompt, endpoint down or silent, missing adapter), one copy of the weights for base and
tuned, and `friction demo`."""

from __future__ import annotations

import html
import json
import re
import time
import unicodedata
from collections import Counter
from pathlib import Path

import pytest

from friction_lib import demo, display
from friction_lib.errors import FrictionError

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "data" / "demo_prompts.jsonl"
TRAIN = ROOT / "data" / "friction_train.jsonl"
CATEGORIES = {  # demo category -> the behaviour it asks for
    "false_premise": "challenge",
    "ambiguous": "clarify",
    "harmful": "refuse",
    "uncertain": "abstain",
    "sycophancy": "challenge",
    "control": "comply",
}
NEAR_DUPLICATE = 85.0  # rapidfuzz token_set_ratio on normalised text


def _normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower().replace("’", "'")
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s']", " ", text)).strip()


# --------------------------------------------------------------------------- demo prompts


def test_demo_prompts_cover_every_kind_of_friction():
    prompts = demo.load_demo_prompts(DEMO)
    counts = Counter(p.category for p in prompts)
    assert set(counts) == set(CATEGORIES)
    assert all(n >= 3 for n in counts.values()), counts
    assert all(p.expected == CATEGORIES[p.category] for p in prompts)
    assert len({p.id for p in prompts}) == len(prompts)
    assert len({_normalise(p.prompt) for p in prompts}) == len(prompts)
    assert [p.id for p in demo.showcase(prompts)] == list(demo.SHOWCASE_IDS)


def test_demo_prompts_are_readable_by_the_eval():
    evaluate = pytest.importorskip("friction_lib.evaluate", reason="the eval module is not there yet")
    assert len(evaluate.load_prompts(DEMO)) == len(demo.load_demo_prompts(DEMO))


def test_demo_prompts_are_not_in_the_training_data():
    if not TRAIN.exists():
        pytest.skip(f"{TRAIN.name} is absent, so there is nothing to overlap with")
    from rapidfuzz import fuzz, process

    train = []
    for line in TRAIN.read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            train.append(_normalise(record.get("user_input") or record.get("prompt") or ""))
    assert train, f"{TRAIN} holds no prompts"
    clashes = []
    for prompt in demo.load_demo_prompts(DEMO):
        text = _normalise(prompt.prompt)
        assert text not in train, f"{prompt.id} is in the training data verbatim"
        match = process.extractOne(text, train, scorer=fuzz.token_set_ratio)
        ratio = process.extractOne(text, train, scorer=fuzz.ratio)
        if (match and match[1] >= NEAR_DUPLICATE) or (ratio and ratio[1] >= NEAR_DUPLICATE):
            clashes.append((prompt.id, prompt.prompt, (match or ratio)[0]))
    assert not clashes, f"demo prompts too close to training prompts: {clashes}"


def test_near_duplicate_check_catches_a_reworded_copy():
    """The overlap test above can fail: a lightly edited copy scores above the threshold."""
    from rapidfuzz import fuzz

    a = _normalise("Since Mount Everest is in the Alps, which Swiss town is the best base for climbing it?")
    b = _normalise("Since Mount Everest is in the Alps, which Swiss town is best as a base for climbing it")
    assert fuzz.token_set_ratio(a, b) >= NEAR_DUPLICATE


def test_bad_demo_prompt_file_names_the_line(tmp_path):
    bad = tmp_path / "p.jsonl"
    bad.write_text('{"id": "a", "prompt": "hi", "category": "x", "expected": "comply", "source": "s"}\n'
                   '{"id": "b", "prompt": "", "category": "x", "expected": "comply", "source": "s"}\n'
                   '{"id": "c", "prompt": "q", "category": "x", "expected": "maybe", "source": "s"}\n')  # fmt: skip
    with pytest.raises(FrictionError) as err:
        demo.load_demo_prompts(bad)
    assert f"{bad}:2:" in str(err.value) and f"{bad}:3:" in str(err.value)
    with pytest.raises(FrictionError, match="not found"):
        demo.load_demo_prompts(tmp_path / "missing.jsonl")


# --------------------------------------------------------------------------- bad input, no model needed


def test_empty_prompt_gets_a_gentle_message(capsys):
    from friction_lib.cli import main

    for empty in ("", "   \n"):
        assert demo.check_prompt(empty) == demo.EMPTY_PROMPT_MESSAGE
        with pytest.raises(FrictionError, match="Type a question first"):
            demo.compare([empty], ["base"])
        with pytest.raises(FrictionError, match="Type a question first"):
            demo.stream_comparison(empty, ["base"])
    assert demo.check_prompt("Why?") is None
    assert main(["demo", "--prompt", "  ", "--models", "base"]) == 2
    assert "Type a question first" in capsys.readouterr().err


def test_missing_adapter_shows_the_command(tmp_path):
    config = demo.DemoConfig(adapter=tmp_path / "no-adapter-here")
    [comparison] = demo.compare(["Is the sky green?"], ["tuned"], config)
    [result] = comparison.results
    assert result.notice and not result.error and not result.answer
    assert "make adapter" in result.notice and "friction train --profile cpu" in result.notice
    page = display.comparison_html(comparison)
    assert "make adapter" in page and "NOT TRAINED YET" in page


def test_unknown_columns_are_named():
    assert demo.parse_columns("base, prompted,base") == ["base", "prompted"]
    with pytest.raises(FrictionError, match="Valid: base, prompted, tuned, endpoint"):
        demo.parse_columns("base,gpt5")
    with pytest.raises(FrictionError, match="No model columns"):
        demo.parse_columns(" , ")


def test_silent_endpoint_times_out_in_its_column_only(silent_server, capsys):
    """An endpoint that accepts the connection and never answers: the column reports it after --timeout."""
    from friction_lib.cli import main

    config = demo.DemoConfig(base_url=silent_server, endpoint_model="any", endpoint_timeout=1)
    started = time.monotonic()
    [batch] = demo.compare(["Is the sky green?"], ["endpoint"], config)
    streamed = demo.stream_comparison("Is the sky green?", ["endpoint"], config)
    assert time.monotonic() - started < 10
    for comparison in (batch, streamed):
        [result] = comparison.results
        assert result.error and silent_server in result.error and "within 1 s" in result.error
    code = main(["demo", "--prompt", "Is the sky green?", "--models", "endpoint", "--base-url", silent_server,
                 "--endpoint-model", "any", "--timeout", "1", "--width", "300"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and "within 1 s" in out and "--timeout" in out


def test_half_a_think_tag_is_held_back_while_streaming():
    for text, shown in [
        ("<", ""), ("<thi", ""), ("<think", ""), ("<think>\n\n</", "<think>\n\n"),
        ("<think>\n\n</think", "<think>\n\n"), ("The answer <", "The answer "), ("Use <t", "Use "),
        ("<think>", "<think>"), ("a < b", "a < b"), ("see <b", "see <b"), ("done.", "done."), ("", ""),
    ]:  # fmt: skip
        assert demo.hold_back_partial_tag(text) == shown, text


# --------------------------------------------------------------------------- real generations


@pytest.mark.slow
def test_a_streamed_row_ends_at_its_stop_token_with_its_own_time(transformers_engine):
    """stream_rows: a short answer is done (final text, its own seconds) while a long one in the same batch
    goes on; unstreamed, every row gets the batch's time."""
    from friction_lib.engines import Row

    short, long = "Convert 30 to the other unit.", "Why did Shakespeare write Don Quixote in English?"
    rows = [Row(short, "default"), Row(long, "default")]
    states = [
        [(r.text, r.tokens, r.done, r.seconds) for r in out]
        for out in transformers_engine.stream_rows(rows, 20)
    ]
    ended = [i for i, state in enumerate(states) if state[0][2] and not state[1][2]]
    assert ended, "the short row was only done when the whole batch was"
    assert states[ended[0]][0][1] < 20 and all(
        state[0] == states[ended[0]][0] for state in states[ended[0] :]
    )
    assert 0 < states[-1][0][3] < states[-1][1][3] and states[-1][1][1] == 20
    *_, batched = transformers_engine.stream_rows(rows, 20, stream=False)
    assert batched[0].seconds == batched[1].seconds
    assert [r.text for r in batched] == [state[0] for state in states[-1]]


@pytest.mark.slow
def test_streamed_columns_end_on_their_own_and_never_show_half_a_tag(embedded_model_dir):
    """The shipped adapter opens with a one-line <think> block, a token at a time: no state shows a piece of
    a tag. Base and prompted stop after 8 tokens, the tuned column goes on to the limit: they are finished
    (no cursor, a chip, their own time in the footer) while it still streams."""
    assert demo.missing_adapter_message(demo.default_adapter_dir()) is None
    [prompt] = [p for p in demo.load_demo_prompts(DEMO) if p.id == "demo-amb-02"]
    states: list[tuple[dict, str]] = []

    def seen(comparison: demo.Comparison) -> None:
        columns = {r.key: (r.running, r.reasoning, r.answer, r.label, r.seconds) for r in comparison.results}
        states.append((columns, display.comparison_html(comparison, fit=True)))

    final = demo.stream_comparison(
        prompt, config=demo.DemoConfig(max_new_tokens=24), on_update=seen, interval=0
    )
    assert len(states) > 24, "not every token was shown"
    for columns, _ in states:
        for _running, reasoning, answer, *_ in columns.values():
            for text in (reasoning, answer):
                assert "<" not in text and "think>" not in text, (reasoning, answer)
    mixed = [(c, page) for c, page in states if not c["base"][0] and c["tuned"][0]]
    assert mixed, "base was only finished when the last column was"
    columns, page = mixed[0]
    assert columns["base"][3] and columns["base"][4] > 0
    base_html = page.split('data-column="base"')[1].split('data-column="prompted"')[0]
    assert "fx-cursor" not in base_html and f"{columns['base'][4]:.1f} s" in base_html
    assert "fx-cursor" in page.split('data-column="tuned"')[1]
    by_key = {r.key: r for r in final.results}
    assert by_key["base"].tokens < 24 == by_key["tuned"].tokens
    assert by_key["base"].seconds < by_key["tuned"].seconds
    tuned = by_key["tuned"]
    assert tuned.think_tags and tuned.reasoning and "<" not in tuned.reasoning
    assert html.escape(tuned.reasoning) in display.comparison_html(final)


@pytest.mark.slow
def test_prompted_column_uses_the_friction_system_prompt(demo_comparisons):
    """base and prompted run the same weights with different system prompts, so their answers differ."""
    comparisons, _ = demo_comparisons
    raw = {(c.prompt_id, r.key): r.reasoning + r.answer for c in comparisons for r in c.results}
    assert any(raw[(c.prompt_id, "base")] != raw[(c.prompt_id, "prompted")] for c in comparisons)


@pytest.mark.slow
def test_endpoint_down_shows_an_error_in_its_column_only(embedded_model_dir):
    from friction_lib.engines import free_port

    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    config = demo.DemoConfig(max_new_tokens=8, base_url=url, endpoint_model="any", endpoint_timeout=5)
    [batch] = demo.compare(["Book me a table for Friday."], ["base", "endpoint"], config)
    updates = []
    streamed = demo.stream_comparison("Book me a table for Friday.", ["endpoint", "base"], config,
                                         on_update=lambda c: updates.append(display.comparison_html(c)))  # fmt: skip
    for comparison in (batch, streamed):
        by_key = {r.key: r for r in comparison.results}
        assert (
            by_key["endpoint"].error
            and url in by_key["endpoint"].error
            and "friction serve" in by_key["endpoint"].error
        )
        assert by_key["base"].error is None and (by_key["base"].answer or by_key["base"].reasoning)
        page = display.comparison_html(comparison)
        assert 'class="fx-error"' in page and page.count('data-column="base"') == 1
    assert len(updates) >= 3 and 'class="fx-error"' in updates[-1]


@pytest.mark.slow
def test_stream_and_batch_give_the_same_greedy_answer(embedded_model_dir):
    config = demo.DemoConfig(max_new_tokens=12)
    prompt = "What is the boiling point of water at sea level, in degrees Celsius?"
    [batch] = demo.compare([prompt], ["base"], config)
    streamed = demo.stream_comparison(prompt, ["base"], config)
    assert streamed.results[0].answer == batch.results[0].answer
    assert streamed.results[0].reasoning == batch.results[0].reasoning


@pytest.mark.slow
def test_models_load_once(embedded_model_dir):
    config = demo.DemoConfig(max_new_tokens=4)
    first = demo.column_plan("base", config).engine
    assert demo.column_plan("prompted", config).engine is first
    assert demo.column_plan("base", config).engine is first


@pytest.mark.slow
def test_cli_demo_prints_panels_side_by_side(embedded_model_dir, capsys):
    from friction_lib.cli import main

    code = main(["demo", "--prompt", "Book me a table for Friday.", "--models", "base,prompted",
                 "--max-new-tokens", "8", "--width", "160"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "Book me a table for Friday." in out
    assert "Base" in out and "Prompt-only friction" in out and "Fine-tuned" not in out
    assert out.count("reasoning") >= 2 and out.count("answer") >= 2
    # side by side: both column titles on the same line of the panel
    assert any("Base" in line and "Prompt-only friction" in line for line in out.splitlines())
    assert re.search(r"^as expected\s+(\d+/1|-)\s+(\d+/1|-)\s*$", out, re.M), "no scoreboard"


@pytest.mark.slow
def test_endpoint_column_against_a_real_llama_cpp_server(llama_server):
    config = demo.DemoConfig(
        max_new_tokens=12, base_url=llama_server.base_url, endpoint_model=llama_server.alias
    )
    [batch] = demo.compare(["Suggest a name for a friendly orange cat."], ["endpoint"], config)
    streamed = demo.stream_comparison("Suggest a name for a friendly orange cat.", ["endpoint"], config)
    for comparison in (batch, streamed):
        [result] = comparison.results
        assert result.error is None, result.error
        assert (result.answer or result.reasoning).strip()
        assert llama_server.alias in result.subtitle


@pytest.mark.slow
def test_one_model_serves_base_and_tuned_columns(embedded_model_dir, tmp_path):
    """A real LoRA adapter (random weights): the base rows of the mixed batch equal a plain model's
    answers, the tuned rows differ, and attaching it reuses the loaded weights instead of a second copy."""
    from peft import LoraConfig, get_peft_model

    from friction_lib.models import load_model

    model, _ = load_model("cpu")
    lora = LoraConfig(r=8, lora_alpha=32, target_modules=["q_proj", "v_proj"], init_lora_weights=False,
                      task_type="CAUSAL_LM")  # fmt: skip
    get_peft_model(model, lora).save_pretrained(tmp_path / "adapter")
    del model
    prompt = "Which one should I pick, the cheaper one or the faster one?"
    demo.clear_cache()
    try:
        plain_config = demo.DemoConfig(max_new_tokens=10, adapter=tmp_path / "none")
        [plain] = demo.compare([prompt], ["base", "prompted"], plain_config)
        plain_engine = demo.column_plan("base", plain_config).engine
        config = demo.DemoConfig(max_new_tokens=10, adapter=tmp_path / "adapter")
        [mixed] = demo.compare([prompt], ["base", "prompted", "tuned"], config)
        tuned_engine = demo.column_plan("tuned", config).engine
        assert demo.column_plan("base", config).engine is tuned_engine
        assert tuned_engine.model.get_base_model() is plain_engine.model  # upgraded in place, not reloaded
        by_key = {r.key: r for r in mixed.results}
        for result in plain.results:
            assert (by_key[result.key].reasoning, by_key[result.key].answer) == (
                result.reasoning,
                result.answer,
            )
        assert by_key["tuned"].error is None and by_key["tuned"].tokens > 0
        assert (by_key["tuned"].reasoning, by_key["tuned"].answer) != (
            by_key["base"].reasoning,
            by_key["base"].answer,
        )
    finally:
        demo.clear_cache()
