"""The A/B/C demo's renderers: what `friction_lib.demo` produced, shown three ways.

- `comparison_html()` / `save_html()`: static HTML (inline styles) for Jupyter, papermill runs, `runs/`
  and the screenshot (`scripts/screenshot.py`);
- `demo_ui()`: the live ipywidgets demo, tokens streaming into the columns (Jupyter, Colab, the stage);
- `comparison_renderable()`: rich panels for `friction demo` in the terminal;
- `scoreboard()`: the labels of a set of comparisons as a plain-text table (notebook 01, `friction demo`).
"""

from __future__ import annotations

import html
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from friction_lib.demo import (
    COLUMN_KEYS,
    DEFAULT_COLUMNS,
    ColumnResult,
    Comparison,
    DemoConfig,
    DemoPrompt,
    check_prompt,
    column_title,
    load_demo_prompts,
    memory_problem,
    stream_comparison,
)
from friction_lib.errors import FrictionError
from friction_lib.files import write_atomic

# --------------------------------------------------------------------------- HTML

# Readable from the back of a room: large type, high contrast, one colour per label.
LABEL_COLOURS = {
    "COMPLY": "#3b82f6",
    "CHALLENGE": "#f97316",
    "CLARIFY": "#a855f7",
    "REFUSE": "#ef4444",
    "ABSTAIN": "#14b8a6",
    "PARTIAL": "#eab308",
    "DEGENERATE": "#6b7280",
    "ERROR": "#ef4444",
    "NOT TRAINED YET": "#94a3b8",
}
_SANS = "'DejaVu Sans', Verdana, Arial, sans-serif"
_MONO = "'DejaVu Sans Mono', Menlo, Consolas, monospace"
# Inline styles, not a <style> block: notebook viewers strip <style> from untrusted (e.g. papermill-run)
# outputs, but keep style attributes, so the executed notebooks in runs/ look the same as the live demo.
STYLES: dict[str, str] = {
    "fx-page": "background:#0b0d12;padding:18px;display:flex;flex-direction:column;gap:22px;",
    "fx-comparison": f"background:#0b0d12;color:#f5f5f5;font-family:{_SANS};font-size:22px;line-height:1.4;"
    "padding:18px 20px 22px;border-radius:14px;margin:0;display:flex;flex-direction:column;",
    "fx-prompt": "font-size:28px;font-weight:700;margin:0 0 6px;color:#ffffff;",
    "fx-meta": "font-size:17px;color:#c7cad1;margin:0 0 14px;letter-spacing:.02em;",
    "fx-grid": "display:flex;gap:16px;align-items:stretch;flex:1 1 auto;min-height:0;",
    "fx-col": "flex:1 1 0;min-width:0;background:#171a22;border:2px solid #2c3140;border-radius:12px;"
    "padding:14px 16px;color:#f5f5f5;display:flex;flex-direction:column;min-height:0;",
    # Title and chip on one line; in a narrow column the chip moves under the title (never over it).
    "fx-head": "display:flex;flex-wrap:wrap;justify-content:space-between;align-items:flex-start;gap:4px 10px;",
    "fx-title": "font-size:24px;font-weight:700;color:#ffffff;",
    "fx-sub": "font-size:15px;color:#b4b9c4;margin-bottom:10px;",
    "fx-chip": "display:inline-block;flex-shrink:0;margin-left:auto;font-size:17px;font-weight:800;color:#0b0d12;padding:3px 12px;"
    "border-radius:999px;white-space:nowrap;letter-spacing:.04em;",
    "fx-check": "font-size:15px;color:#c7cad1;text-align:right;white-space:nowrap;",
    # The reasoning and the answer: the part of a column that gives way when the board has a height limit (`fit`);
    # it scrolls, anchored at the bottom (column-reverse), so the newest text stays in view while it streams.
    "fx-body": "display:flex;flex-direction:column-reverse;overflow-y:auto;flex:0 1 auto;min-height:0;",
    "fx-reasoning": f"display:block;background:#221c0b;border-left:6px solid #facc15;border-radius:8px;"
    f"padding:8px 12px;margin:0 0 12px;color:#fde68a;font-family:{_MONO};font-size:18px;",
    "fx-summary": f"cursor:pointer;font-weight:700;color:#facc15;font-family:{_SANS};",
    "fx-reasoning-text": "white-space:pre-wrap;margin-top:6px;",
    "fx-answer": "white-space:pre-wrap;font-size:22px;color:#ffffff;",
    "fx-none": "color:#9aa0ab;font-style:italic;",
    "fx-error": "background:#3b0d0d;border:2px solid #ef4444;color:#fecaca;border-radius:8px;padding:10px 12px;"
    "white-space:pre-wrap;font-size:19px;",
    "fx-notice": "background:#13233b;border:2px dashed #60a5fa;color:#dbeafe;border-radius:8px;padding:10px 12px;"
    "white-space:pre-wrap;font-size:19px;",
    "fx-foot": "font-size:15px;color:#b4b9c4;margin-top:10px;",
    "fx-message": f"background:#13233b;color:#dbeafe;border-left:6px solid #60a5fa;font-size:24px;"
    f"padding:16px 20px;border-radius:10px;font-family:{_SANS};",
    "fx-cursor": "color:#facc15;",
}
TUNED_BORDER = "#f97316"  # the fine-tuned column is framed in orange


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _at(cls: str, extra: str = "") -> str:
    """`class` and inline `style` attributes for an element of the demo."""
    return f'class="{cls}" style="{STYLES[cls]}{extra}"'


def _chip(result: ColumnResult) -> str:
    """The label chip: the classifier's label, "…" while the column streams, ERROR, or NOT TRAINED YET."""
    if result.error:
        label = "ERROR"
    elif result.notice:
        label = "NOT TRAINED YET"
    elif result.running:
        return f"<span {_at('fx-chip', 'background:#facc15;')}>…</span>"
    elif result.label:
        label = result.label
    else:
        return ""
    colour = LABEL_COLOURS.get(label, "#9ca3af")
    reason = _esc(result.label_reason) if result.label_reason else "rule classifier (friction_lib.classify)"
    return f'<span {_at("fx-chip", f"background:{colour};")} title="{reason}">{_esc(label)}</span>'


def _verdict(result: ColumnResult, expected: str | None) -> str:
    """Under the chip, on one line: whether the label is the behaviour the prompt calls for."""
    if not expected or result.error or result.running or not result.label:
        return ""
    hit = result.label == expected.upper()
    return (
        f"<div {_at('fx-check')}>{'✓ as expected' if hit else '✗ expected ' + _esc(expected.upper())}</div>"
    )


# The live widget's board is at most this tall (`fit`): the window less JupyterLab's bars (about 120 px) and the
# board's own margins, so it fits a projector-sized window (1280x800: 600 px); each column's text scrolls inside.
FIT_HEIGHT = "max(420px, calc(100vh - 200px))"
FIT_BODY_MIN = "96px"  # three lines of answer, however narrow the columns
CURSOR = "▌"


def _reasoning_html(result: ColumnResult) -> str:
    """The reasoning block: a <details> that is open, with the streaming cursor while nothing else shows."""
    cursor = f"<span {_at('fx-cursor')}>{CURSOR}</span>" if result.running and not result.answer else ""
    if result.reasoning:
        words = len(result.reasoning.split())
        state = "" if result.reasoning_closed else " · unfinished"
        summary = f"reasoning ({words} words{state})"
        inner = _esc(result.reasoning) + cursor
    elif result.running and not result.answer:
        waiting = "(thinking…)" if result.think_tags else "(waiting for the first tokens…)"
        summary, inner = "reasoning", f"<span {_at('fx-none')}>{waiting}</span>{cursor}"
    else:
        what = "an empty reasoning block" if result.think_tags else "no reasoning block"
        summary, inner = "reasoning", f"<span {_at('fx-none')}>({what}: it answered straight away)</span>"
    return (
        f"<details {_at('fx-reasoning')} open><summary {_at('fx-summary')}>{summary}</summary>"
        f"<div {_at('fx-reasoning-text')}>{inner}</div></details>"
    )


def _answer_html(result: ColumnResult) -> str:
    if result.answer:
        cursor = f"<span {_at('fx-cursor')}>{CURSOR}</span>" if result.running else ""
        return f"<div {_at('fx-answer')}>{_esc(result.answer)}{cursor}</div>"
    if result.running:
        return f"<div {_at('fx-answer')}></div>"
    note = "(no answer: the reasoning used up the token budget)"
    return f"<div {_at('fx-answer')}><span {_at('fx-none')}>{note}</span></div>"


def column_html(result: ColumnResult, expected: str | None = None, fit: bool = False) -> str:
    """One column: header with label chip, the reasoning block (<details>), the answer, and its own footer
    (tokens and seconds) as soon as it has ended. `fit`: the text scrolls inside the column (the widget)."""
    key = _esc(result.key)
    frame = f"border-color:{TUNED_BORDER};" if result.key == "tuned" else ""
    open_col = f'<div {_at("fx-col", frame)} data-column="{key}">'
    head = (
        f"<div {_at('fx-head')}><div {_at('fx-title')}>{_esc(result.title)}</div>{_chip(result)}</div>"
        f"{_verdict(result, expected)}<div {_at('fx-sub')}>{_esc(result.subtitle)}</div>"
    )
    if result.error:
        return f"{open_col}{head}<div {_at('fx-error')}>⚠ {_esc(result.error)}</div></div>"
    if result.notice:
        return f"{open_col}{head}<div {_at('fx-notice')}>{_esc(result.notice)}</div></div>"
    limit = f"min-height:{FIT_BODY_MIN};" if fit else ""
    body = f"<div {_at('fx-body', limit)}><div>{_reasoning_html(result)}{_answer_html(result)}</div></div>"
    foot = ""
    if not result.running and result.tokens:
        together = f' title="generated in one batch of {result.batch} answers"' if result.batch > 1 else ""
        foot = f"<div {_at('fx-foot')}{together}>{_timing(result)}</div>"
    return f"{open_col}{head}{body}{foot}</div>"


def _timing(result: ColumnResult) -> str:
    """'47 tokens · 16.8 s': the column's own tokens and seconds (from the start of its batch to its end)."""
    cut = f" · the {result.tokens}-token limit" if result.truncated else ""
    return f"{result.tokens} tokens · {result.seconds:.1f} s{cut}"


def _one_comparison_html(comparison: Comparison, fit: bool = False) -> str:
    meta = []
    if comparison.category:
        meta.append(f"category: {comparison.category.replace('_', ' ')}")
    if comparison.expected:
        meta.append(f"good behaviour: {comparison.expected}")
    meta_html = f"<div {_at('fx-meta')}>{_esc(' · '.join(meta))}</div>" if meta else ""
    columns = "".join(column_html(r, comparison.expected, fit) for r in comparison.results)
    limit = f"max-height:{FIT_HEIGHT};" if fit else ""
    return (
        f"<section {_at('fx-comparison', limit)}><div {_at('fx-prompt')}>“{_esc(comparison.prompt)}”</div>"
        f"{meta_html}<div {_at('fx-grid')}>{columns}</div></section>"
    )


def comparison_html(comparisons: Comparison | Sequence[Comparison], fit: bool = False) -> str:
    """Self-contained HTML (inline styles) for one comparison or several, for Jupyter or a page. `fit` (the live
    widget, on a projector): a comparison is at most `FIT_HEIGHT` tall, its columns' text scrolls inside them."""
    items = [comparisons] if isinstance(comparisons, Comparison) else list(comparisons)
    return f"<div {_at('fx-page')}>" + "".join(_one_comparison_html(c, fit) for c in items) + "</div>"


def message_html(text: str) -> str:
    """A gentle note in the demo's style (an empty prompt, nothing chosen)."""
    return f"<div {_at('fx-message')}>{_esc(text)}</div>"


KERNEL_LOST = (
    "⚠ The kernel stopped (out of memory?), so this demo no longer runs. Kernel → Restart Kernel and Run All "
    "Cells; untick a column or lower MAX_NEW_TOKENS to use less memory."
)
# Leads every value of the live widget's board. Hidden (inline, so a frontend that drops <style> keeps it hidden)
# until ipywidgets marks the board's view `jupyter-widgets-disconnected`, which JupyterLab's widget manager does
# when the kernel dies and the server restarts it; then the message shows, the stale columns fade, no cursor.
KERNEL_WATCH = (
    "<style>.jupyter-widgets-disconnected .fx-lost{display:block !important}"
    ".jupyter-widgets-disconnected .fx-page{opacity:.35}"
    ".jupyter-widgets-disconnected .fx-cursor{display:none}</style>"
    f'<div class="fx-lost" style="{STYLES["fx-error"]}display:none;margin:0 0 10px;" role="alert">'
    f"{_esc(KERNEL_LOST)}</div>"
)


def page_html(
    comparisons: Sequence[Comparison], title: str = "Push-Back AI: base vs prompt vs fine-tune"
) -> str:
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_esc(title)}</title></head>"
        f'<body style="margin:0;background:#0b0d12">{comparison_html(comparisons)}</body></html>'
    )


def save_html(path: str | Path, comparisons: Sequence[Comparison], title: str | None = None) -> Path:
    """Write the comparisons as one standalone HTML page (atomic). Also writes a JSON twin beside it."""
    out = Path(path)
    write_atomic(out, page_html(comparisons, title) if title else page_html(comparisons))
    write_atomic(out.with_suffix(".json"), json.dumps([c.to_dict() for c in comparisons], indent=2))
    return out


# --------------------------------------------------------------------------- widget UI


@dataclass
class _Controls:
    """The widgets of the live demo."""

    picker: Any
    text: Any
    boxes: dict[str, Any]
    url: Any
    model_name: Any
    tokens: Any
    run: Any
    board: Any


def _controls(
    config: DemoConfig,
    prompts: Sequence[DemoPrompt],
    columns: Sequence[str],
    endpoint_url: str,
    endpoint_model: str,
) -> _Controls:
    import ipywidgets as w

    half, wide = w.Layout(width="48%"), {"description_width": "initial"}  # labels in full ("Endpoint URL")
    options = [("✎ type your own below", "")] + [(f"[{p.category}] {p.prompt}", p.id) for p in prompts]
    return _Controls(
        picker=w.Dropdown(options=options, value=prompts[0].id if prompts else "", description="Prompt",
                          layout=w.Layout(width="98%")),
        text=w.Textarea(value=prompts[0].prompt if prompts else "", placeholder="Ask anything…",
                        layout=w.Layout(width="98%", height="70px")),
        boxes={key: w.Checkbox(value=key in columns, description=column_title(key, config)[0], indent=False,
                               layout=w.Layout(width="auto")) for key in COLUMN_KEYS},
        url=w.Text(value=config.base_url or endpoint_url, description="Endpoint URL", layout=half, style=wide),
        model_name=w.Text(value=config.endpoint_model or endpoint_model, description="Model", layout=half,
                          style=wide),
        tokens=token_slider(config.max_new_tokens),
        run=w.Button(description="Run ▶", button_style="primary", layout=w.Layout(width="160px", height="44px")),
        board=w.HTML(value=KERNEL_WATCH + message_html("Pick a prompt (or type one), choose the models, then press Run.")),
    )  # fmt: skip


def token_slider(value: int) -> Any:
    """The widget's token budget: steps of 8 from 8 (any other value keeps its own, e.g. smoke mode's 24)."""
    import ipywidgets as w

    step = 8 if value % 8 == 0 else 1
    return w.IntSlider(value=value, min=min(8, value), max=max(512, value), step=step, description="Max tokens",
                       style={"description_width": "initial"})  # fmt: skip


def _show(ui: _Controls, board: str) -> None:
    """Put `board` (HTML) on the widget's board, after the hidden kernel-stopped message."""
    ui.board.value = KERNEL_WATCH + board


def _run_clicked(ui: _Controls, config: DemoConfig, by_id: dict[str, DemoPrompt], interval: float) -> None:
    """The Run button: stream the typed (or picked) prompt through the ticked columns into the board."""
    chosen = [key for key, box in ui.boxes.items() if box.value]
    question = ui.text.value.strip()
    problem = check_prompt(question) or (None if chosen else "Tick at least one model to compare.")
    problem = problem or memory_problem(chosen)
    if problem:
        _show(ui, message_html(problem))
        return
    picked = by_id.get(ui.picker.value)
    item: str | DemoPrompt = picked if picked and picked.prompt == question else question
    run_config = replace(config, max_new_tokens=int(ui.tokens.value), base_url=ui.url.value.strip() or None,
                         endpoint_model=ui.model_name.value.strip() or None)  # fmt: skip
    ui.run.disabled, ui.run.description = True, "Running…"
    try:
        stream_comparison(item, chosen, run_config, interval=interval,
                          on_update=lambda c: _show(ui, comparison_html(c, fit=True)))  # fmt: skip
    except FrictionError as exc:
        _show(ui, message_html(str(exc)))
    finally:
        ui.run.disabled, ui.run.description = False, "Run ▶"


def _enable_colab_widgets() -> None:
    import sys

    if "google.colab" in sys.modules:  # Colab renders ipywidgets 8 only through its custom widget manager
        from google.colab import output  # type: ignore[import-not-found]

        output.enable_custom_widget_manager()


def demo_ui(
    config: DemoConfig | None = None,
    prompts: Sequence[DemoPrompt] | None = None,
    columns: Sequence[str] = DEFAULT_COLUMNS,
    endpoint_url: str = "http://localhost:11434/v1",
    endpoint_model: str = "leonvanbokhorst/deepseek-r1-disagreement",
    interval: float = 0.15,
) -> Any:
    """The live demo: pick or type a prompt, choose the models, Run; tokens stream into the columns.

    Models are loaded once per kernel (see `demo.local_engine`) and reused by every click and cell.
    """
    import ipywidgets as w

    _enable_colab_widgets()
    config = config or DemoConfig()
    prompts = list(prompts) if prompts is not None else load_demo_prompts()
    ui = _controls(config, prompts, columns, endpoint_url, endpoint_model)
    by_id = {p.id: p for p in prompts}

    def on_pick(change: dict[str, Any]) -> None:
        if change["new"]:
            ui.text.value = by_id[change["new"]].prompt

    ui.picker.observe(on_pick, names="value")
    ui.run.on_click(lambda _button: _run_clicked(ui, config, by_id, interval))
    models_row = w.HBox(
        [w.HTML("<b style='font-size:16px;margin-right:12px'>Models:</b>"), *ui.boxes.values()]
    )
    return w.VBox([ui.picker, ui.text, models_row, w.HBox([ui.url, ui.model_name]), w.HBox([ui.tokens, ui.run]),
                   ui.board])  # fmt: skip


# --------------------------------------------------------------------------- terminal


def comparison_renderable(comparison: Comparison) -> Any:
    """rich: the prompt, then one column per model: a reasoning panel above an answer panel."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    grid = Table.grid(expand=True, padding=(0, 1))
    cells = []
    for result in comparison.results:
        grid.add_column(ratio=1)
        title = Text(result.title, style="bold")
        if result.error:
            title.append("  ERROR", style=f"bold {LABEL_COLOURS['ERROR']}")
            cells.append(Group(title, Text(result.subtitle, style="dim"),
                               Panel(result.error, title="error", border_style="red")))  # fmt: skip
            continue
        if result.notice:
            title.append("  NOT TRAINED YET", style="bold bright_black")
            cells.append(Group(title, Text(result.subtitle, style="dim"),
                               Panel(result.notice, title="to do", border_style="blue")))  # fmt: skip
            continue
        if result.label:
            title.append(f"  {result.label}", style=f"bold {LABEL_COLOURS.get(result.label, 'white')}")
        reasoning = result.reasoning or "(no reasoning block: it answered straight away)"
        answer = result.answer or "(no answer: the reasoning used up the token budget)"
        foot = _timing(result) + (f" · one batch of {result.batch}" if result.batch > 1 else "")
        cells.append(Group(
            title,
            Text(result.subtitle, style="dim"),
            Panel(Text(reasoning, style="yellow"), title="reasoning", border_style="yellow"),
            Panel(Text(answer), title="answer", border_style="green" if result.key == "tuned" else "blue"),
            Text(foot, style="dim"),
        ))  # fmt: skip
    grid.add_row(*cells)
    meta = " · ".join(
        x for x in (comparison.category, comparison.expected and f"good: {comparison.expected}") if x
    )
    header = Text(f"“{comparison.prompt}”", style="bold white")
    if meta:
        header.append(f"   {meta}", style="dim")
    return Panel(Group(header, grid), border_style="white")


# --------------------------------------------------------------------------- scoreboard


def _score_label(result: ColumnResult) -> str:
    return "error" if result.error else "no adapter" if result.notice else (result.label or "?")


def scoreboard(comparisons: Sequence[Comparison]) -> str:
    """The labels as a table: one row per prompt, one column per model, and how often each column gave the
    behaviour the prompt calls for (over the columns that answered)."""
    if not comparisons:
        return "(no comparisons)"
    names = [r.key for r in comparisons[0].results]
    lines = [f"{'prompt':<13} {'expected':<10}" + "".join(f"{n:<12}" for n in names)]
    hits: Counter[str] = Counter()
    answered: Counter[str] = Counter()
    for c in comparisons:
        labels = [_score_label(r) for r in c.results]
        for r, label in zip(c.results, labels, strict=True):
            answered[r.key] += not (r.error or r.notice)
            hits[r.key] += label == (c.expected or "").upper()
        lines.append(
            f"{c.prompt_id or '-':<13} {c.expected or '-':<10}" + "".join(f"{x:<12}" for x in labels)
        )
    totals = [f"{hits[n]}/{answered[n]}" if answered[n] else "-" for n in names]
    lines.append(f"{'as expected':<24}" + "".join(f"{t:<12}" for t in totals))
    return "\n".join(line.rstrip() for line in lines)
