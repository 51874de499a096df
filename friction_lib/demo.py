"""The A/B/C demo's runner: one prompt, several models side by side, the reasoning kept apart.

Columns (pick any, in this order):
- `base`: the base model with the project's neutral system prompt (`chat.SYSTEM_PROMPT`);
- `prompted`: the same base model, asked in words to push back (`system="friction"`);
- `tuned`: the same base model with the friction LoRA adapter, neutral system prompt;
- `endpoint`: any OpenAI-compatible endpoint (Ollama, a llama.cpp server, vLLM), e.g. the
  predecessor's `leonvanbokhorst/deepseek-r1-disagreement` on Ollama.

The base model is loaded once per process and cached per (engine, model, adapter). The base, prompted
and tuned rows of a prompt run as one batch of `TransformersEngine.stream_rows` on the adapter-carrying
model, with PEFT's `adapter_names=["__base__", "__base__", "default"]`: no second copy of the weights,
and on a CPU one batch of three costs far less than three single calls (`scripts/bench_lab.py --row-costs`).
Streamed, each column ends at its own stop token, with its own time and label, while the others go on.

`compare()` runs prompts in batches, `stream_comparison()` streams one prompt (`on_update` gets the
partial `Comparison` as tokens arrive); `cli_demo()` is `friction demo`. The renderers of the results
(HTML, the ipywidgets demo, rich panels) are in `friction_lib.display`.

A column that fails (an endpoint that is down, a missing adapter) shows its problem in that
column only; the others still render. Labels come from the eval's rule classifier
(`friction_lib.classify.classify`) when it is importable, else no chip is shown.
"""

from __future__ import annotations

import importlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from friction_lib.chat import THINK_CLOSE, THINK_OPEN, split_reasoning
from friction_lib.engines import (
    BASE_ADAPTER,
    DEFAULT_TIMEOUT,
    OpenAIEngine,
    Row,
    TransformersEngine,
)
from friction_lib.errors import FrictionError

# OpenMP threads that spin while they wait make torch 5-15x slower on a busy 2-core laptop (measured:
# 20 tokens in 21-40 s spinning vs 2.8 s passive). Only takes effect if torch is not imported yet.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

COLUMN_KEYS: tuple[str, ...] = ("base", "prompted", "tuned", "endpoint")
DEFAULT_COLUMNS: tuple[str, ...] = ("base", "prompted", "tuned")
# A new prompt's comparison is complete when its longest column ends, and the base model often rambles to the
# limit: each token is a decoding step of the three-row batch (about 0.1 s on 2 cores). 80 tokens keep a new prompt
# within the talk's 10 s (9.0 s) and leave the shipped adapter's reasoning line and answer whole on 21 of the 25
# demo prompts (64: 12) (docs/demo.md, "Time to a comparison"; scripts/bench_lab.py).
DEFAULT_MAX_NEW_TOKENS = 80
ADAPTER_NAME = "friction-smollm2-135m"
ADAPTER_COMMAND = (
    "make adapter   (or: friction train --profile cpu --data data/friction_train.jsonl "
    "--out models/friction-smollm2-135m)"
)
DEMO_PROMPTS_NAME = "demo_prompts.jsonl"
REQUIRED_FIELDS: tuple[str, ...] = ("id", "prompt", "category", "expected", "source")
EXPECTED_VALUES: tuple[str, ...] = ("challenge", "clarify", "refuse", "abstain", "comply")
# The fixed prompts of the static (papermill) comparison: one per kind of friction, one control.
SHOWCASE_IDS: tuple[str, ...] = (
    "demo-fp-01",
    "demo-amb-01",
    "demo-harm-01",
    "demo-unc-01",
    "demo-syc-01",
    "demo-ctl-01",
)
EMPTY_PROMPT_MESSAGE = (
    "Type a question first, or pick one of the demo prompts. "
    "Try one with a false premise, e.g. “Why did Shakespeare write Don Quixote in English?”"
)

# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class DemoConfig:
    """What the columns run on. `adapter=None` means the shipped one (`models/friction-smollm2-135m`)."""

    model: str = "cpu"  # profile (cpu, colab, talk) or an HF folder
    adapter: str | Path | None = None
    base_url: str | None = None  # OpenAI-compatible endpoint for the `endpoint` column
    endpoint_model: str | None = None  # None: the first model the endpoint serves
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    temperature: float = 0.0
    endpoint_timeout: float = DEFAULT_TIMEOUT  # seconds the endpoint may take to answer

    def adapter_dir(self) -> Path:
        return Path(self.adapter) if self.adapter else default_adapter_dir()


def default_adapter_dir() -> Path:
    """The shipped adapter: `models/friction-smollm2-135m` in the repository."""
    from friction_lib.models import repo_root

    return (repo_root() or Path.cwd()) / "models" / ADAPTER_NAME


def default_prompts_path() -> Path:
    from friction_lib.models import repo_root

    return (repo_root() or Path.cwd()) / "data" / DEMO_PROMPTS_NAME


class MissingAdapter(FrictionError):
    """The tuned column has no adapter yet: shown as a to-do with the command, not as a failure."""


def _shown_path(path: Path) -> str:
    from friction_lib.models import repo_root

    root = repo_root()
    try:
        return str(path.resolve().relative_to(root)) if root else str(path)
    except ValueError:
        return str(path)


def missing_adapter_message(adapter: Path) -> str | None:
    """None if the adapter is there; else what is missing and the command that makes it."""
    if (adapter / "adapter_config.json").exists():
        return None
    return f"No fine-tuned adapter at {_shown_path(adapter)} yet. Make it with:\n{ADAPTER_COMMAND}"


def check_prompt(prompt: str | None) -> str | None:
    """None if the prompt can be asked; else a gentle message saying what to do."""
    return None if prompt and prompt.strip() else EMPTY_PROMPT_MESSAGE


# Free memory a click needs per local column, beyond the weights already loaded: the row's KV cache and logits.
# On the cpu profile (SmolLM2-135M: 30 layers, 3 KV heads of 64 in fp32) a 600-token row holds 30 x 2 x 192 x 4 B
# x 600 = 28 MB of KV cache; the allowance leaves room for the larger profiles' rows and the allocator's slack.
# Measured (`scripts/bench_demo.py --max-new-tokens 80,256 --nice -10`, cpu profile, 3 columns): a new prompt
# raises the peak RSS by 42 MiB streamed at 80 tokens and 77 MiB at 256, about 26 MiB a column at most.
MEMORY_PER_COLUMN = 256 * 2**20


def memory_problem(columns: Sequence[str], available: int | None = None) -> str | None:
    """None if `available` bytes (default: psutil's free memory) are enough for the local columns among
    `columns`; else one line naming free vs needed and the fix."""
    local = [key for key in columns if key != "endpoint"]
    if available is None:
        import psutil

        available = int(psutil.virtual_memory().available)
    needed = len(local) * MEMORY_PER_COLUMN
    if available >= needed:
        return None
    return (
        f"Only {available / 2**20:,.0f} MB of memory is free and the {len(local)} local model column(s) need about "
        f"{needed / 2**20:,.0f} MB: untick a column or close other programs, then press Run."
    )


def column_title(key: str, config: DemoConfig) -> tuple[str, str]:
    """(title, subtitle) of a column, for the header."""
    from friction_lib.models import BASE_MODEL_IDS

    base = BASE_MODEL_IDS.get(config.model, str(config.model)).split("/")[-1]
    if key == "base":
        return "Base", f"{base} · neutral system prompt"
    if key == "prompted":
        return "Prompt-only friction", f"{base} · asked in words to push back"
    if key == "tuned":
        return "Fine-tuned friction", f"{base} + {config.adapter_dir().name} · neutral system prompt"
    if key == "endpoint":
        return (
            "Endpoint",
            f"{config.endpoint_model or 'first served model'} @ {config.base_url or '(no URL)'}",
        )
    raise FrictionError(f"Unknown column {key!r}. Valid columns: {', '.join(COLUMN_KEYS)}.")


def parse_columns(text: str | Sequence[str]) -> list[str]:
    """'base,prompted' -> ['base', 'prompted'], checked, duplicates dropped, order kept."""
    items = text.split(",") if isinstance(text, str) else list(text)
    keys = [k.strip() for k in items if k.strip()]
    unknown = [k for k in keys if k not in COLUMN_KEYS]
    if unknown:
        raise FrictionError(f"Unknown model column(s) {', '.join(unknown)}. Valid: {', '.join(COLUMN_KEYS)}.")
    if not keys:
        raise FrictionError(f"No model columns chosen. Pick some of: {', '.join(COLUMN_KEYS)}.")
    return list(dict.fromkeys(keys))


# --------------------------------------------------------------------------- demo prompts


@dataclass(frozen=True)
class DemoPrompt:
    id: str
    prompt: str
    category: str
    expected: str
    source: str


def load_demo_prompts(path: str | Path | None = None) -> list[DemoPrompt]:
    """Read `data/demo_prompts.jsonl` (the eval's format); every bad line is reported as file:line."""
    p = Path(path) if path else default_prompts_path()
    if not p.is_file():
        raise FrictionError(f"{p}: demo prompt file not found. It ships as data/{DEMO_PROMPTS_NAME}.")
    prompts: list[DemoPrompt] = []
    problems: list[str] = []
    for number, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"{p}:{number}: invalid JSON ({exc.msg})")
            continue
        if not isinstance(data, dict):
            problems.append(f"{p}:{number}: expected a JSON object")
            continue
        missing = [k for k in REQUIRED_FIELDS if not isinstance(data.get(k), str) or not data[k].strip()]
        if missing:
            problems.append(f"{p}:{number}: missing or empty field(s) {', '.join(missing)}")
        elif data["expected"] not in EXPECTED_VALUES:
            problems.append(f"{p}:{number}: expected must be one of {', '.join(EXPECTED_VALUES)}")
        else:
            prompts.append(DemoPrompt(*(data[k].strip() for k in REQUIRED_FIELDS)))
    if problems:
        raise FrictionError("\n".join([*problems, f"Fix these lines in {p}."]))
    return prompts


def showcase(prompts: Sequence[DemoPrompt], ids: Sequence[str] = SHOWCASE_IDS) -> list[DemoPrompt]:
    """The prompts with these ids, in this order (unknown ids are an error, not silently skipped)."""
    by_id = {p.id: p for p in prompts}
    unknown = [i for i in ids if i not in by_id]
    if unknown:
        raise FrictionError(f"Unknown demo prompt id(s) {', '.join(unknown)}; see data/{DEMO_PROMPTS_NAME}.")
    return [by_id[i] for i in ids]


# --------------------------------------------------------------------------- models, loaded once

# (engine, model, adapter) -> engine. Lives as long as the kernel, so cells and clicks reuse it.
_ENGINES: dict[tuple[str, str, str | None], Any] = {}
BATCH_SIZE = 24  # rows per generate call: the whole showcase (6 prompts x 3 columns) in one batch


def clear_cache() -> None:
    _ENGINES.clear()


def local_engine(model: str = "cpu", adapter: Path | None = None) -> Any:
    """The transformers engine for `model`, with `adapter` attached when given. Loaded once.

    With an adapter, the same engine serves the base columns too: their rows run with PEFT's
    `adapter_names=["__base__", ...]`, so base and fine-tuned share one copy of the weights. A plain
    engine loaded earlier is upgraded in place when the adapter appears, never loaded twice.
    """
    key = ("transformers", model, str(adapter) if adapter else None)
    if key in _ENGINES:
        return _ENGINES[key]
    plain_key = ("transformers", model, None)
    plain = _ENGINES.get(plain_key)
    if adapter is None:
        _ENGINES[key] = TransformersEngine.load(model, batch_size=BATCH_SIZE)
    elif plain is not None and not has_adapter(plain.model):
        from friction_lib.models import attach_adapter

        peft_model = attach_adapter(plain.model, adapter)  # injects LoRA layers into the same weights
        peft_model.eval()
        name = f"{model}+{adapter.name}"
        _ENGINES[key] = TransformersEngine(
            peft_model, plain.tokenizer, batch_size=BATCH_SIZE, model_name=name
        )
        _ENGINES[plain_key] = _ENGINES[key]  # the plain weights now carry LoRA layers: base rows use __base__
    else:
        _ENGINES[key] = TransformersEngine.load(model, adapter=adapter, batch_size=BATCH_SIZE)
    return _ENGINES[key]


def endpoint_engine(base_url: str, model: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> Any:
    """An OpenAI-compatible endpoint; no retries, so a server that is down is reported at once."""
    key = ("openai", f"{base_url}#{model or ''}#{timeout:g}", None)
    if key not in _ENGINES:
        _ENGINES[key] = OpenAIEngine(base_url, model=model, timeout=timeout, max_retries=0, concurrency=2)
    return _ENGINES[key]


def has_adapter(model: Any) -> bool:
    """True for a PEFT model (one that can run rows with and without its adapter)."""
    return hasattr(model, "disable_adapter") and hasattr(model, "peft_config")


@dataclass(frozen=True)
class ColumnPlan:
    """How a column runs: which engine, which system prompt, and (local models) which adapter."""

    engine: Any
    system: str
    adapter: str | None  # PEFT adapter name for its rows, BASE_ADAPTER for none; None on a plain model
    local: bool


def column_plan(key: str, config: DemoConfig) -> ColumnPlan:
    """The plan for a column; FrictionError (MissingAdapter for a missing adapter) if it cannot run."""
    if key == "endpoint":
        if not config.base_url:
            raise FrictionError(
                "No endpoint URL. Give one, e.g. http://localhost:11434/v1 (Ollama) or the URL "
                "`friction serve` prints."
            )
        engine = endpoint_engine(config.base_url, config.endpoint_model, config.endpoint_timeout)
        return ColumnPlan(engine, "default", None, local=False)
    adapter = config.adapter_dir()
    if key == "tuned":
        message = missing_adapter_message(adapter)
        if message:
            raise MissingAdapter(message)
        engine = local_engine(config.model, adapter)
        return ColumnPlan(engine, "default", getattr(engine.model, "active_adapter", "default"), local=True)
    if key not in ("base", "prompted"):
        raise FrictionError(f"Unknown column {key!r}. Valid columns: {', '.join(COLUMN_KEYS)}.")
    system = "default" if key == "base" else "friction"
    engine = None
    if missing_adapter_message(adapter) is None:
        try:  # share the adapter-carrying model; a broken adapter only fails the tuned column
            engine = local_engine(config.model, adapter)
        except FrictionError:
            engine = None
    if engine is None:
        engine = local_engine(config.model, None)
    return ColumnPlan(engine, system, BASE_ADAPTER if has_adapter(engine.model) else None, local=True)


def warm_up(columns: Sequence[str], config: DemoConfig) -> dict[str, str | None]:
    """Load what the columns need now (not at the first click). Returns column -> problem or None."""
    problems: dict[str, str | None] = {}
    for key in columns:
        try:
            column_plan(key, config)
            problems[key] = None
        except FrictionError as exc:
            problems[key] = str(exc)
    return problems


# --------------------------------------------------------------------------- results and labels


@dataclass
class ColumnResult:
    key: str
    title: str
    subtitle: str
    reasoning: str = ""
    answer: str = ""
    label: str | None = None  # the rule classifier's label, when it is available
    label_reason: str = ""
    error: str | None = None
    notice: str | None = None  # not a failure, a to-do (the adapter is not trained yet)
    seconds: float = 0.0  # from the start of its generation to its own end: its stop token, or the limit
    batch: int = 1  # answers generated together in that call
    tokens: int = 0
    truncated: bool = False  # stopped at max_new_tokens
    reasoning_closed: bool = True
    think_tags: bool = False  # the text had a <think> block, even an empty one
    running: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Comparison:
    prompt: str
    results: list[ColumnResult] = field(default_factory=list)
    category: str | None = None
    expected: str | None = None
    prompt_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**{k: v for k, v in asdict(self).items() if k != "results"},
                "results": [r.to_dict() for r in self.results]}  # fmt: skip


def _classifier() -> Callable[[str, str], Any] | None:
    """The eval's rule classifier, imported lazily; None if it is not there (then no label chips)."""
    try:
        module = importlib.import_module("friction_lib.classify")
    except Exception:  # noqa: BLE001 - a missing or broken optional module only hides the chips
        return None
    function = getattr(module, "classify", None)
    return function if callable(function) else None


def label_answer(answer: str, prompt: str) -> tuple[str | None, str]:
    """(label, reason) from `friction_lib.classify.classify(answer, prompt)`, or (None, '')."""
    classify = _classifier()
    if classify is None:
        return None, ""
    try:
        verdict = classify(answer, prompt)
    except Exception as exc:  # noqa: BLE001 - a classifier bug must not break the demo
        return None, f"classifier failed: {exc}"
    return str(getattr(verdict, "label", verdict)), str(getattr(verdict, "reason", ""))


def hold_back_partial_tag(raw: str) -> str:
    """`raw` without a trailing piece of `<think>` or `</think>` (`<`, `<think`, `</`, `</think`): streamed
    text arrives a token at a time, and half a tag is neither reasoning nor answer yet."""
    for cut in range(min(len(raw), len(THINK_CLOSE) - 1), 0, -1):
        tail = raw[-cut:]
        if any(tag.startswith(tail) and tag != tail for tag in (THINK_OPEN, THINK_CLOSE)):
            return raw[:-cut]
    return raw


def _show_text(result: ColumnResult, raw: str) -> None:
    parsed = split_reasoning(raw)
    result.reasoning, result.answer, result.reasoning_closed = parsed.reasoning, parsed.answer, parsed.closed
    result.think_tags = THINK_OPEN in raw or THINK_CLOSE in raw


def _show_partial(result: ColumnResult, raw: str) -> None:
    _show_text(result, hold_back_partial_tag(raw))


def _finish(
    result: ColumnResult, prompt: str, raw: str, tokens: int, seconds: float, config: DemoConfig
) -> None:
    _show_text(result, raw)
    result.tokens, result.seconds = tokens, seconds
    result.truncated = tokens >= config.max_new_tokens
    result.running = False
    result.label, result.label_reason = label_answer(result.answer, prompt)


def _blank(key: str, config: DemoConfig) -> ColumnResult:
    title, subtitle = column_title(key, config)
    return ColumnResult(key=key, title=title, subtitle=subtitle)


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, FrictionError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


# --------------------------------------------------------------------------- running


def _as_items(prompts: Sequence[str | DemoPrompt]) -> list[Comparison]:
    items = []
    for p in prompts:
        if isinstance(p, DemoPrompt):
            items.append(Comparison(p.prompt, category=p.category, expected=p.expected, prompt_id=p.id))
        else:
            items.append(Comparison(str(p)))
    return items


def _plan_columns(
    comparisons: Sequence[Comparison], keys: Sequence[str], config: DemoConfig
) -> dict[str, ColumnPlan | Exception]:
    """Give every comparison a result per column (failed at once where the column cannot run);
    return column -> plan (or the exception)."""
    plans: dict[str, ColumnPlan | Exception] = {}
    for key in keys:
        try:
            plans[key] = column_plan(key, config)
        except Exception as exc:  # noqa: BLE001 - one column's failure must not hide the others
            plans[key] = exc
    for comparison in comparisons:
        comparison.results = [_blank(key, config) for key in keys]
        for result in comparison.results:
            plan = plans[result.key]
            if isinstance(plan, Exception):
                _fail(result, plan)
    return plans


def _start(
    prompts: Sequence[str | DemoPrompt], columns: Sequence[str], config: DemoConfig
) -> tuple[list[Comparison], dict[str, ColumnPlan | Exception]]:
    """The comparisons to fill in and the plan of every column; an empty prompt is refused."""
    keys = parse_columns(columns)
    comparisons = _as_items(prompts)
    if any(check_prompt(c.prompt) for c in comparisons):
        raise FrictionError(EMPTY_PROMPT_MESSAGE)
    return comparisons, _plan_columns(comparisons, keys, config)


def _fail(result: ColumnResult, exc: BaseException) -> None:
    result.running = False
    if isinstance(exc, MissingAdapter):
        result.notice = str(exc)
    else:
        result.error = _error_text(exc)


def _local_groups(
    comparisons: Sequence[Comparison], plans: dict[str, ColumnPlan | Exception]
) -> list[tuple[Any, list[ColumnResult], list[Row]]]:
    """The rows of every local column, grouped by engine (normally one group: one model in memory)."""
    groups: dict[int, tuple[Any, list[ColumnResult], list[Row]]] = {}
    for comparison in comparisons:
        for result in comparison.results:
            plan = plans[result.key]
            if isinstance(plan, ColumnPlan) and plan.local:
                _, results, rows = groups.setdefault(id(plan.engine), (plan.engine, [], []))
                results.append(result)
                rows.append(Row(comparison.prompt, plan.system, plan.adapter))
    return list(groups.values())


def _run_local(
    engine: Any,
    results: list[ColumnResult],
    rows: list[Row],
    config: DemoConfig,
    update: Callable[[bool], None] | None = None,
) -> None:
    """One engine's rows in as few batches as it allows; with `update`, the partial text of every row is
    shown after each generated token, and a row that stops (its stop token) is finished at once, with its
    own time and label, while the others go on (`update(True)` then). A failure shows in these columns only."""
    finished: set[int] = set()
    try:
        for texts in engine.stream_rows(rows, config.max_new_tokens, config.temperature, update is not None):
            ended = False
            for i, (result, row, text) in enumerate(zip(results, rows, texts, strict=True)):
                if text.done and i not in finished:  # each column ends on its own
                    _finish(result, row.prompt, text.text, text.tokens, text.seconds, config)
                    result.batch, ended = text.batch, True
                    finished.add(i)
                elif not text.done:
                    _show_partial(result, text.text)
            if update is not None:
                update(ended)
    except Exception as exc:  # noqa: BLE001 - one engine's failure must not hide the endpoint
        for result in results:
            _fail(result, exc)


def _endpoint_batch(
    plan: ColumnPlan, comparisons: Sequence[Comparison], config: DemoConfig, progress: bool
) -> None:
    """The endpoint column of every comparison, through the endpoint's `generate`."""
    results = [r for c in comparisons for r in c.results if r.key == "endpoint"]
    try:
        generations = plan.engine.generate(
            [c.prompt for c in comparisons], system=plan.system, max_new_tokens=config.max_new_tokens,
            temperature=config.temperature, progress=progress,
        )  # fmt: skip
        for result, comparison, gen in zip(results, comparisons, generations, strict=True):
            _finish(result, comparison.prompt, gen.raw, gen.completion_tokens, gen.seconds, config)
            result.batch = 1
    except Exception as exc:  # noqa: BLE001 - an endpoint that is down shows in its column only
        for result in results:
            _fail(result, exc)


def compare(
    prompts: Sequence[str | DemoPrompt],
    columns: Sequence[str] = DEFAULT_COLUMNS,
    config: DemoConfig | None = None,
    progress: bool = False,
) -> list[Comparison]:
    """Every prompt through every column; the local columns of all prompts share batched generate calls.

    A failing column gets an error (or a to-do notice) in its own results, never an exception.
    """
    config = config or DemoConfig()
    comparisons, plans = _start(prompts, columns, config)
    for engine, results, rows in _local_groups(comparisons, plans):
        _run_local(engine, results, rows, config)
    plan = plans.get("endpoint")
    if isinstance(plan, ColumnPlan):
        _endpoint_batch(plan, comparisons, config, progress)
    return comparisons


def _stream_endpoint(
    plan: ColumnPlan, comparison: Comparison, config: DemoConfig, update: Callable[[], None]
) -> None:
    """The endpoint column, streamed; reasoning sent in its own field is shown as reasoning."""
    result = next(r for r in comparison.results if r.key == "endpoint")
    t0, raw, pieces = time.perf_counter(), "", 0
    try:
        stream = plan.engine.stream(comparison.prompt, plan.system, config.max_new_tokens, config.temperature)
        for piece in stream:
            raw, pieces = raw + piece, pieces + 1
            _show_partial(result, raw)
            update()
        _finish(result, comparison.prompt, raw, pieces, time.perf_counter() - t0, config)
    except Exception as exc:  # noqa: BLE001 - an endpoint that is down shows in its column only
        _fail(result, exc)


def stream_comparison(
    prompt: str | DemoPrompt,
    columns: Sequence[str] = DEFAULT_COLUMNS,
    config: DemoConfig | None = None,
    on_update: Callable[[Comparison], None] | None = None,
    interval: float = 0.15,
) -> Comparison:
    """One prompt; `on_update` is called as tokens arrive (at most every `interval` s, and at each change
    of state). The local columns stream together from one batch; an endpoint column follows."""
    config = config or DemoConfig()
    [comparison], plans = _start([prompt], columns, config)
    last = 0.0

    def update(force: bool = False) -> None:
        nonlocal last
        if on_update and (force or time.perf_counter() - last >= interval):
            last = time.perf_counter()
            on_update(comparison)

    for result in comparison.results:
        result.running = not (result.error or result.notice)
    update(force=True)
    for engine, results, rows in _local_groups([comparison], plans):
        _run_local(engine, results, rows, config, update)
        update(force=True)
    plan = plans.get("endpoint")
    if isinstance(plan, ColumnPlan):
        _stream_endpoint(plan, comparison, config, update)
        update(force=True)
    return comparison


# --------------------------------------------------------------------------- friction demo


def _demo_parser() -> Any:
    import argparse

    from friction_lib.engines import add_timeout_argument

    parser = argparse.ArgumentParser(
        prog="friction demo",
        description="A/B/C comparison in the terminal: the base model, the same model asked to push back, "
        "and the fine-tuned adapter, with the reasoning shown above each answer.",
    )
    parser.add_argument(
        "--prompt", action="append", help="a prompt (repeatable); default: the showcase prompts"
    )
    parser.add_argument(
        "--models",
        default=",".join(DEFAULT_COLUMNS),
        help=f"comma-separated columns from: {', '.join(COLUMN_KEYS)} (default: %(default)s)",
    )
    parser.add_argument("--model", default="cpu", help="base model: profile (cpu, colab, talk) or HF folder")
    parser.add_argument(
        "--adapter", help=f"adapter folder for the tuned column (default: models/{ADAPTER_NAME})"
    )
    parser.add_argument(
        "--base-url", help="OpenAI-compatible endpoint for an extra column, e.g. http://localhost:11434/v1"
    )
    parser.add_argument("--endpoint-model", help="model name at --base-url (default: the first it serves)")
    add_timeout_argument(parser, "the endpoint (--base-url)")
    parser.add_argument("--max-new-tokens", type=int, default=DEFAULT_MAX_NEW_TOKENS)
    parser.add_argument("--html", help="also write the comparison as a standalone HTML page here")
    parser.add_argument("--width", type=int, help="terminal width for the panels (default: the terminal's)")
    return parser  # fmt: skip


def _demo_items(texts: list[str] | None) -> list[str | DemoPrompt]:
    """`--prompt` texts (a demo prompt's text keeps its category and expected behaviour), or the showcase."""
    if texts is None:
        return list(showcase(load_demo_prompts(), SHOWCASE_IDS[:3]))
    message = next((check_prompt(p) for p in texts if check_prompt(p)), None)
    if message:
        raise FrictionError(message)
    known = {p.prompt: p for p in load_demo_prompts()} if default_prompts_path().exists() else {}
    return [known.get(p.strip(), p) for p in texts]


def cli_demo(argv: list[str]) -> int:
    from rich.console import Console

    from friction_lib import display

    args = _demo_parser().parse_args(argv)
    columns = parse_columns(args.models)
    if args.base_url and "endpoint" not in columns:
        columns.append("endpoint")
    items = _demo_items(args.prompt)
    if args.max_new_tokens < 1:
        raise FrictionError("--max-new-tokens must be at least 1.")
    config = DemoConfig(model=args.model, adapter=args.adapter, base_url=args.base_url,
                        endpoint_model=args.endpoint_model, max_new_tokens=args.max_new_tokens,
                        endpoint_timeout=args.timeout)  # fmt: skip
    console = Console(width=args.width) if args.width else Console()
    with console.status(f"Running {len(items)} prompt(s) through {', '.join(columns)}…"):
        comparisons = compare(items, columns, config)
    for comparison in comparisons:
        console.print(display.comparison_renderable(comparison))
    console.print(display.scoreboard(comparisons), markup=False, highlight=False)
    if args.html:
        console.print(f"HTML: {display.save_html(args.html, comparisons)}")
    return 0
