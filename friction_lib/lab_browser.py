"""JupyterLab in headless Chromium: what tests/test_lab.py checks and scripts/bench_lab.py times.

Playwright's Python package drives the system's Chromium (`executable_path`, Debian's `chromium`); nothing is
downloaded. Every step waits on what the page shows, the way a person would:

- `browser()`: a headless Chromium page (closed, with its processes, on exit).
- `open_notebook()`: a notebook opened in JupyterLab, its kernel idle.
- `run_all()`: Run ▸ Run All Cells, then the time each code cell finished (and the first demo comparison).
- `run_widget()`: the live demo: pick a prompt (and a token budget, `set_max_tokens()`), press Run, record the
  columns at every change of the board (`start_widget()`: only pick and press Run).
- `window_screenshot()`: the window as the audience sees the board (docs/demo_live.png).
- `output_images()`: the images in the notebook's outputs, with their rendered sizes.

The demo's page structure it relies on (from `friction_lib.display`) is in `DEMO_JS`: columns are elements
with `data-column`, the reasoning a `<details>`, the label chip `.fx-chip`, the streaming cursor `.fx-cursor`.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from friction_lib.errors import FrictionError

PLAYWRIGHT_INSTALL = "pip install -r requirements.txt (playwright)"
# Functions the page runs, the one place that knows the demo's DOM. `fxColumns(root)`: the demo columns under
# `root`, each with its generated text so far (placeholders and the cursor left out).
DEMO_JS = """
window.fxText = (el) => {
  if (!el) return '';
  const copy = el.cloneNode(true);
  copy.querySelectorAll('.fx-none, .fx-cursor').forEach((e) => e.remove());
  return copy.textContent;
};
window.fxColumns = (root) => Array.from(root.querySelectorAll('[data-column]')).map((col) => {
  const find = (selector) => col.querySelector(selector);
  const body = window.fxText(find('.fx-reasoning-text')) + '\\n' + window.fxText(find('.fx-answer'));
  return {
    key: col.getAttribute('data-column'), body: body, text: body.length - 1, cursor: !!find('.fx-cursor'),
    reasoning: !!find('details'), chip: find('.fx-chip') ? find('.fx-chip').innerText.trim() : '',
    foot: find('.fx-foot') ? find('.fx-foot').innerText.trim() : '',
  };
});
window.fxNotebook = () => document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook');
window.fxCellPrompts = () => Array.from(window.fxNotebook().querySelectorAll('.jp-CodeCell'))
  .map((cell) => (cell.querySelector('.jp-InputPrompt') || {textContent: ''}).textContent.trim());
"""
# Run in the page: record when each code cell gets its execution count, and when the first comparison
# (three finished columns in an output) appears; times in seconds from the call.
WATCH_CELLS_JS = """
() => {
  const t0 = performance.now();
  window.fxRun = {done: {}, firstComparison: null};
  if (window.fxRunObserver) window.fxRunObserver.disconnect();
  const check = () => {
    const now = (performance.now() - t0) / 1000;
    window.fxCellPrompts().forEach((p, i) => {
      if (/\\[\\d+\\]/.test(p) && !(i in window.fxRun.done)) window.fxRun.done[i] = now;
    });
    if (window.fxRun.firstComparison === null) {
      for (const out of window.fxNotebook().querySelectorAll('.jp-OutputArea-output')) {
        const cols = window.fxColumns(out);
        if (cols.length >= 3 && cols.every((c) => !c.cursor && c.chip)) { window.fxRun.firstComparison = now; break; }
      }
    }
  };
  window.fxRunObserver = new MutationObserver(check);
  window.fxRunObserver.observe(window.fxNotebook(), {subtree: true, childList: true, characterData: true});
}
"""
# Run in the page: snapshot the demo board's columns at every change, with times from the call.
WATCH_BOARD_JS = """
(board) => {
  const t0 = performance.now();
  window.fxBoardLog = [];
  if (window.fxBoardObserver) window.fxBoardObserver.disconnect();
  window.fxBoardObserver = new MutationObserver(() => {
    window.fxBoardLog.push({t: (performance.now() - t0) / 1000, columns: window.fxColumns(board)});
  });
  window.fxBoardObserver.observe(board, {subtree: true, childList: true, characterData: true});
}
"""


@contextlib.contextmanager
def browser(width: int = 1600, height: int = 1000) -> Iterator[Any]:
    """A browser context in headless Chromium (the system's); the browser and its processes end with the block."""
    from friction_lib.browser import CHROMIUM_FLAGS, CHROMIUM_INSTALL, find_chromium

    chromium = find_chromium()
    if chromium is None:
        raise FrictionError(f"Headless Chromium is not installed. Install it with: {CHROMIUM_INSTALL}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        raise FrictionError(f"Playwright is not installed: {PLAYWRIGHT_INSTALL}") from exc
    args = [flag for flag in CHROMIUM_FLAGS if not flag.startswith("--headless")]
    with sync_playwright() as playwright:
        chrome = playwright.chromium.launch(executable_path=chromium, args=args)
        try:
            context = chrome.new_context(viewport={"width": width, "height": height})
            context.add_init_script(DEMO_JS)
            yield context
        finally:
            chrome.close()


def open_notebook(context: Any, lab: Any, name: str, timeout: float = 120.0) -> Any:
    """Open notebooks/`name` in a new tab, alone in a workspace of its own, and wait until the server says
    its kernel is idle; returns the page."""
    page = context.new_page()
    page.goto(lab.url(f"lab/workspaces/{Path(name).stem}/tree/{name}"))
    page.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=timeout * 1000)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sessions = [s for s in lab.api("api/sessions") if s.get("path", "").endswith(name)]
        if sessions and (sessions[0].get("kernel") or {}).get("execution_state") == "idle":
            return page
        time.sleep(0.25)
    raise FrictionError(
        f"The kernel of {name} was not idle within {timeout:.0f} s; the server's log: {lab.log}"
    )


def _menu(page: Any, menu: str, item: str) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text=menu).first.click()
    page.locator(".lm-Menu-itemLabel", has_text=item).first.click()


@dataclass
class RunAll:
    """What "Run all" took: seconds from the click to each code cell's end, and to the first comparison."""

    cells: dict[int, float]
    first_comparison: float | None
    seconds: float
    sources: list[str] = field(default_factory=list)


def run_all(page: Any, timeout: float = 600.0) -> RunAll:
    """Run ▸ Run All Cells; wait until every code cell has run. A cell that fails raises with its error."""
    page.evaluate(WATCH_CELLS_JS)
    _menu(page, "Run", "Run All Cells")
    finished = (
        "() => !!window.fxNotebook().querySelector('[data-mime-type=\"application/vnd.jupyter.error\"]')"
        " || window.fxCellPrompts().every((p) => /\\[\\d+\\]/.test(p))"
    )
    page.wait_for_function(finished, timeout=timeout * 1000, polling=250)
    errors = page.locator('.jp-Notebook [data-mime-type="application/vnd.jupyter.error"]')
    if errors.count():
        raise FrictionError(f"A cell failed in the browser: {errors.first.inner_text()[-1500:]}")
    state = page.evaluate("() => window.fxRun")
    sources = page.evaluate(
        "() => Array.from(window.fxNotebook().querySelectorAll('.jp-CodeCell .jp-InputArea-editor'))"
        ".map((e) => e.innerText)"
    )
    cells = {int(k): float(v) for k, v in state["done"].items()}
    return RunAll(cells, state["firstComparison"], max(cells.values(), default=0.0), sources)


@dataclass
class WidgetRun:
    """One click of the live demo's Run: the board's columns at every change, the final columns, seconds."""

    snapshots: list[dict[str, Any]]
    final: list[dict[str, Any]]
    seconds: float

    def first_text(self) -> float | None:
        """Seconds from the click until some column showed generated text."""
        return next(
            (s["t"] for s in self.snapshots if any(c["cursor"] and c["text"] for c in s["columns"])), None
        )

    def column_times(self) -> dict[str, dict[str, float | None]]:
        """Per column, seconds from the click to its last new text and to the moment its cursor went off."""
        times: dict[str, dict[str, float | None]] = {}
        for snap in self.snapshots:
            for col in snap["columns"]:
                mine = times.setdefault(col["key"], {"last_text": None, "cursor_off": None, "text": 0})
                if col["text"] != mine["text"]:
                    mine["last_text"], mine["text"] = snap["t"], col["text"]
                if col["cursor"]:
                    mine["cursor_off"] = None
                elif mine["cursor_off"] is None:
                    mine["cursor_off"] = snap["t"]
        return {k: {"last_text": v["last_text"], "cursor_off": v["cursor_off"]} for k, v in times.items()}

    def growth(self) -> dict[str, list[int]]:
        """Per column, the distinct text lengths it showed while its cursor was on (streaming)."""
        seen: dict[str, list[int]] = {}
        for snap in self.snapshots:
            for col in snap["columns"]:
                lengths = seen.setdefault(col["key"], [])
                if col["cursor"] and (not lengths or lengths[-1] != col["text"]):
                    lengths.append(col["text"])
        return seen


def widget_board(page: Any) -> Any:
    """The live demo's widget (the last `ui` output) as a locator."""
    return page.locator(".jupyter-widgets.widget-vbox").last


def set_max_tokens(ui: Any, tokens: int) -> None:
    """Type a token budget into the widget's "Max tokens" slider (its editable readout), as a person would."""
    readout = ui.locator(".widget-hslider", has_text="Max tokens").locator(".widget-readout").first
    readout.fill(str(tokens))
    readout.press("Enter")
    readout.page.wait_for_function("([el, n]) => el.textContent.trim() === n", arg=[readout.element_handle(),
                                   str(tokens)])  # fmt: skip


@dataclass
class WidgetStart:
    """A click on the live demo's Run: its widget, board and button, and when it was clicked."""

    ui: Any
    board: Any
    button: Any
    start: float


def start_widget(
    page: Any, option: str, timeout: float = 300.0, max_tokens: int | None = None
) -> WidgetStart:
    """Pick the prompt whose dropdown label contains `option` (and the token budget, if given), start recording
    the board, and press Run; returns at once."""
    ui = widget_board(page)
    ui.wait_for(timeout=timeout * 1000)
    if max_tokens is not None:
        set_max_tokens(ui, max_tokens)
    select = ui.locator("select").first
    values = select.evaluate("(s) => Array.from(s.options).map((o) => o.value)")
    value = next((v for v in values if option in v), None)
    if value is None:
        raise FrictionError(f"No demo prompt in the widget contains {option!r}")
    select.select_option(value=value)
    prompt = value.split("] ", 1)[-1]
    ui.locator("textarea").first.wait_for()
    page.wait_for_function(
        "([el, text]) => el.value === text", arg=[ui.locator("textarea").first.element_handle(), prompt]
    )
    board = ui.locator(".widget-html").last
    board.evaluate(WATCH_BOARD_JS)
    button = ui.locator("button.widget-button", has_text="Run").first
    start = time.perf_counter()
    button.click()
    return WidgetStart(ui, board, button, start)


def run_widget(page: Any, option: str, timeout: float = 300.0, max_tokens: int | None = None) -> WidgetRun:
    """`start_widget`, then record the board until the button is back (generation over)."""
    run = start_widget(page, option, timeout, max_tokens)
    board, button = run.board, run.button
    page.wait_for_function(  # the board changed since the click, the button is back, no column streams
        "([button, board]) => window.fxBoardLog.length > 0 && !button.disabled && /Run/.test(button.innerText)"
        " && window.fxColumns(board).length > 0 && window.fxColumns(board).every((c) => !c.cursor)",
        arg=[button.element_handle(), board.element_handle()],
        timeout=timeout * 1000,
        polling=100,
    )
    seconds = time.perf_counter() - run.start
    log = board.evaluate("() => window.fxBoardLog")
    final = board.evaluate("(el) => window.fxColumns(el)")
    return WidgetRun(log, final, seconds)


def window_screenshot(page: Any, path: str | Path) -> None:
    """The window as the audience sees it: the left side bar closed (Ctrl+B), the demo board scrolled to the
    window's bottom edge, with as much of the widget's controls above it as fit."""
    page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook").first.click(position={"x": 5, "y": 5})
    page.keyboard.press("Escape")
    page.keyboard.press("Control+b")
    board = widget_board(page).locator(".widget-html").last
    page.wait_for_timeout(500)
    board.evaluate("(el) => el.scrollIntoView({block: 'end'})")
    page.wait_for_timeout(300)
    page.screenshot(path=str(path))


def output_images(page: Any) -> list[dict[str, Any]]:
    """Images in the open notebook's outputs: their MIME type and rendered size."""
    found = page.evaluate(
        "() => Array.from(window.fxNotebook().querySelectorAll('.jp-OutputArea-output img')).map((img) => ({"
        "  mime: img.closest('[data-mime-type]') ? img.closest('[data-mime-type]').getAttribute('data-mime-type') : '',"
        "  width: img.naturalWidth, height: img.naturalHeight, complete: img.complete}))"
    )
    return list(found)


def dumps(value: Any) -> str:
    return json.dumps(value, default=lambda o: o.__dict__, indent=1)
