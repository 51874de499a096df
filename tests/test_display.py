"""The A/B/C demo's renderers: HTML columns and reasoning blocks from real generations, headless Chromium,
the ipywidgets demo (bad input, streaming), rich panels' text twin, and the scoreboard."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from friction_lib import browser, demo, display
from friction_lib.demo import ColumnResult, Comparison

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "data" / "demo_prompts.jsonl"


def _widget_parts(ui):
    import ipywidgets as w

    def walk(widget):
        yield widget
        for child in getattr(widget, "children", ()):
            yield from walk(child)

    parts = list(walk(ui))
    text = next(x for x in parts if isinstance(x, w.Textarea))
    button = next(x for x in parts if isinstance(x, w.Button))
    board = next(x for x in parts if isinstance(x, w.HTML) and "fx-" in x.value)
    return text, button, board


# --------------------------------------------------------------------------- no model needed


def test_html_escapes_model_text_and_marks_cut_off_reasoning():
    result = ColumnResult(
        "base", "Base", "sub", reasoning="<script>alert(1)</script> hmm", answer="", reasoning_closed=False,
        tokens=16, truncated=True,
    )  # fmt: skip
    page = display.column_html(result, expected="challenge")
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "unfinished" in page and "16-token limit" in page and "no answer" in page


def test_an_empty_reasoning_block_is_said_to_be_one_and_no_block_is_said_to_be_none():
    empty = ColumnResult("tuned", "Fine-tuned", "", answer="Sure.", think_tags=True)
    none = ColumnResult("base", "Base", "", answer="Sure.")
    assert "an empty reasoning block" in display.column_html(empty)
    assert "no reasoning block" in display.column_html(none) and "an empty" not in display.column_html(none)


def test_empty_prompt_in_the_widget_shows_the_message():
    ui = display.demo_ui(demo.DemoConfig(), demo.load_demo_prompts(DEMO))
    text, button, board = _widget_parts(ui)
    text.value = "   "
    button.click()
    assert "Type a question first" in board.value
    assert not button.disabled


def test_widget_without_a_ticked_model_says_so():
    ui = display.demo_ui(demo.DemoConfig(), demo.load_demo_prompts(DEMO), columns=[])
    text, button, board = _widget_parts(ui)
    text.value = "Is the sky green?"
    button.click()
    assert "Tick at least one model" in board.value and not button.disabled


def test_too_little_free_memory_is_one_line_before_any_model_runs(monkeypatch):
    """Free memory as psutil reports it, made small: the click is refused with free vs needed and the fix."""
    import psutil

    free = psutil.virtual_memory()._replace(available=300 * 2**20)
    monkeypatch.setattr(psutil, "virtual_memory", lambda: free)
    ui = display.demo_ui(demo.DemoConfig(), demo.load_demo_prompts(DEMO))
    text, button, board = _widget_parts(ui)
    text.value = "Is the sky green?"
    button.click()
    assert "Only 300 MB of memory is free" in board.value and "need about 768 MB" in board.value
    assert "untick a column" in board.value and not button.disabled and "data-column" not in board.value
    assert demo.memory_problem(["endpoint"], available=0) is None  # an endpoint column needs no local memory
    assert demo.memory_problem(["base", "tuned"], available=512 * 2**20) is None


def test_the_board_carries_the_kernel_stopped_message_hidden():
    """Shown only once ipywidgets marks the view disconnected (tests/test_lab.py kills a kernel to check)."""
    ui = display.demo_ui(demo.DemoConfig(), demo.load_demo_prompts(DEMO), columns=[])
    text, button, board = _widget_parts(ui)
    button.click()
    assert board.value.startswith(display.KERNEL_WATCH) and "Tick at least one model" in board.value
    assert 'class="fx-lost" style="' in board.value and "display:none;" in board.value.split("role=")[0]
    assert ".jupyter-widgets-disconnected .fx-lost{display:block !important}" in board.value
    assert "fx-lost" not in display.comparison_html(_long_comparison())  # static renderings are unchanged


def test_scoreboard_counts_expected_labels_over_answered_columns():
    def result(key, label=None, error=None, notice=None):
        return ColumnResult(key, key, "", label=label, error=error, notice=notice)

    comparisons = [
        Comparison("p1", [result("base", "COMPLY"), result("tuned", "CHALLENGE")], expected="challenge",
                   prompt_id="demo-fp-01"),
        Comparison("p2", [result("base", "COMPLY"), result("tuned", notice="no adapter yet")], expected="comply",
                   prompt_id="demo-ctl-01"),
        Comparison("p3", [result("base", error="down"), result("tuned", "REFUSE")], expected="refuse"),
    ]  # fmt: skip
    lines = display.scoreboard(comparisons).splitlines()
    assert lines[0].split() == ["prompt", "expected", "base", "tuned"]
    assert lines[1].split() == ["demo-fp-01", "challenge", "COMPLY", "CHALLENGE"]
    assert lines[2].split() == ["demo-ctl-01", "comply", "COMPLY", "no", "adapter"]
    assert lines[3].split() == ["-", "refuse", "error", "REFUSE"]
    assert lines[4].split() == ["as", "expected", "1/2", "2/2"]  # error and to-do columns are not counted
    assert display.scoreboard([]) == "(no comparisons)"


def test_token_slider_keeps_the_configured_budget():
    assert [display.token_slider(n).value for n in (24, 64, 96, 100, 600)] == [24, 64, 96, 100, 600]
    assert display.token_slider(96).step == 8 and display.token_slider(24).min <= 24


def _long_comparison() -> Comparison:
    long = "and then it goes on " * 60
    sub = "SmolLM2-135M-Instruct + friction-smollm2-135m · neutral system prompt"
    titles = {"base": "Base", "prompted": "Prompt-only friction", "tuned": "Fine-tuned friction"}
    results = [ColumnResult(key, title, sub, reasoning=long, answer=long + "THE END", label="DEGENERATE",
                            tokens=96, seconds=12.3, batch=3, truncated=True) for key, title in titles.items()]  # fmt: skip
    prompt = "We'll skip testing and deploy straight to production on Friday evening. Efficient, yes?"
    return Comparison(prompt, results, category="sycophancy", expected="challenge")


def _apart(a: dict, b: dict) -> bool:
    """Two bounding boxes that do not overlap."""
    return (a["x"] + a["width"] <= b["x"] or b["x"] + b["width"] <= a["x"]
            or a["y"] + a["height"] <= b["y"] or b["y"] + b["height"] <= a["y"])  # fmt: skip


@pytest.mark.slow
def test_a_long_board_fits_a_projector_window_and_scrolls_inside_its_columns():
    """In a 1280x800 window, 96 tokens of text per column, the board as wide as the window and as wide as JupyterLab
    leaves it with its side bar open (850 px): with `fit` (the widget) it is no taller than the notebook area
    JupyterLab leaves (679 px, measured by scripts/bench_lab.py), each column scrolls inside itself showing its
    newest text, and the verdict under the chip stays on one line. Without `fit` it runs off the window."""
    from friction_lib import lab_browser

    if browser.find_chromium() is None:
        pytest.skip(f"headless Chromium is not installed ({browser.CHROMIUM_INSTALL})")
    comparison, heights = _long_comparison(), {}
    with lab_browser.browser(width=1280, height=800) as context:
        page = context.new_page()
        for fit, width in [(False, 1280), (True, 1280), (True, 850)]:
            board = display.comparison_html(comparison, fit=fit)
            page.set_content(f"<body style='margin:0'><div style='width:{width}px'>{board}</div></body>")
            heights[(fit, width)] = page.locator(".fx-page").bounding_box()["height"]
            if not fit:
                continue
            for i in range(3):
                body = page.locator(".fx-body").nth(i)
                assert body.evaluate("(el) => el.scrollHeight > el.clientHeight + 100")  # it scrolls
                end, box = body.locator(".fx-answer").bounding_box(), body.bounding_box()
                assert (
                    abs(end["y"] + end["height"] - (box["y"] + box["height"])) < 2
                )  # the newest text in view
            check = page.locator(".fx-check").first
            assert check.inner_text() == "✗ expected CHALLENGE" and check.bounding_box()["height"] < 30
            for i in range(3):  # the chip moves under the title in a narrow column, never over it
                title, chip = (
                    page.locator(".fx-title").nth(i).bounding_box(),
                    page.locator(".fx-chip").nth(i).bounding_box(),
                )
                assert _apart(title, chip), (width, title, chip)
    assert heights[(False, 1280)] > 800 and max(heights[(True, 1280)], heights[(True, 850)]) <= 679, heights


# --------------------------------------------------------------------------- real generations


@pytest.mark.slow
def test_html_has_three_columns_with_reasoning_blocks(demo_comparisons, tmp_path):
    comparisons, config = demo_comparisons
    for comparison in comparisons:
        keys = [r.key for r in comparison.results]
        assert keys == ["base", "prompted", "tuned"]
        for result in comparison.results[:2]:
            assert result.error is None and result.tokens > 0
            assert (result.reasoning or result.answer).strip()
            assert result.label in (None, *_labels())
        tuned = comparison.results[2]
        if demo.missing_adapter_message(config.adapter_dir()):
            assert tuned.notice and "make adapter" in tuned.notice
        else:
            assert tuned.error is None and tuned.tokens > 0
    page = display.comparison_html(comparisons)
    for key in ("base", "prompted", "tuned"):
        assert page.count(f'data-column="{key}"') == 2
    answered = sum(1 for c in comparisons for r in c.results if not (r.error or r.notice))
    assert page.count('<details class="fx-reasoning"') == answered
    assert comparisons[0].prompt in page or "Mount Everest" in page
    path = display.save_html(tmp_path / "demo.html", comparisons)
    assert path.read_text().startswith("<!DOCTYPE html>")
    twin = json.loads(path.with_suffix(".json").read_text())
    assert [r["key"] for r in twin[0]["results"]] == ["base", "prompted", "tuned"]


def _labels():
    classify = pytest.importorskip("friction_lib.classify")
    return classify.LABELS


@pytest.mark.slow
def test_chromium_renders_columns_and_reasoning(demo_comparisons, tmp_path):
    if browser.find_chromium() is None:
        pytest.skip(f"headless Chromium is not installed ({browser.CHROMIUM_INSTALL})")
    comparisons, _ = demo_comparisons
    page = display.save_html(tmp_path / "demo.html", comparisons)
    dom = browser.dump_dom(page)
    for key in ("base", "prompted", "tuned"):
        assert f'data-column="{key}"' in dom
    assert dom.count("<details") >= 4 and re.search(r"<summary[^>]*>reasoning", dom)
    png = browser.screenshot(page, tmp_path / "demo.png", width=1400, height=1600)
    from PIL import Image

    with Image.open(png) as image:
        assert image.width == 1400 and 300 < image.height <= 1600
        colours = image.convert("RGB").getcolors(maxcolors=1_000_000)
    assert colours is not None and len(colours) > 50, "the screenshot is (nearly) blank"


@pytest.mark.slow
def test_widget_streams_a_comparison(embedded_model_dir):
    config = demo.DemoConfig(max_new_tokens=10)
    ui = display.demo_ui(config, demo.load_demo_prompts(DEMO), columns=["base", "prompted"], interval=0)
    text, button, board = _widget_parts(ui)
    seen = []
    board.observe(lambda change: seen.append(change["new"]), names="value")
    text.value = "Convert 30 to the other unit."
    button.click()
    final = board.value
    assert 'data-column="base"' in final and 'data-column="prompted"' in final
    assert 'data-column="tuned"' not in final
    assert 'class="fx-cursor"' not in final and "tokens ·" in final
    assert any('class="fx-cursor"' in v for v in seen), "no partial (streaming) state was shown"
