"""The A/B/C demo: one prompt, several models side by side, the reasoning visible.

Columns (pick any, in this order):
- `base`: the base model with the project's neutral system prompt (`chat.SYSTEM_PROMPT`);
- `prompted`: the same base model, asked in words to push back (`system="friction"`);
- `tuned`: the same base model with the friction LoRA adapter, neutral system prompt;
- `endpoint`: any OpenAI-compatible endpoint (Ollama, a llama.cpp server, vLLM), e.g. the
  predecessor's `leonvanbokhorst/deepseek-r1-disagreement` on Ollama.

The base model is loaded once per process and cached per (engine, model, adapter). The base, prompted
and tuned rows of a prompt run as one batched `generate` on the adapter-carrying model, with PEFT's
`adapter_names=["__base__", "__base__", "default"]`: no second copy of the weights, and on a CPU one
batch of three costs about as much as 1.3 single calls.

Three front ends share the same results (`ColumnResult`, `Comparison`):
- `demo_ui()`: ipywidgets, tokens streaming into the columns (Jupyter, Colab, the stage);
- `comparison_html()` / `save_html()`: static HTML for papermill runs, `runs/` and the screenshot;
- `cli_demo()`: `friction demo`, rich panels in the terminal.

A column that fails (an endpoint that is down, a missing adapter) shows its problem in that
column only; the others still render. Labels come from the eval's rule classifier
(`friction_lib.classify.classify`) when it is importable, else no chip is shown.
"""

from __future__ import annotations

import html
import importlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from friction_lib.chat import split_reasoning
from friction_lib.errors import FrictionError
from friction_lib.files import write_atomic

# OpenMP threads that spin while they wait make torch 5-15x slower on a busy 2-core laptop (measured:
# 20 tokens in 21-40 s spinning vs 2.8 s passive). Only takes effect if torch is not imported yet.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

COLUMN_KEYS: tuple[str, ...] = ("base", "prompted", "tuned", "endpoint")
DEFAULT_COLUMNS: tuple[str, ...] = ("base", "prompted", "tuned")
# Long enough for a short <think> block and a first answer; short enough that one prompt across three
# columns of the 135M model stays within the talk's 10 s budget on 2 cores (scripts/bench_demo.py).
DEFAULT_MAX_NEW_TOKENS = 96
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
CHROMIUM_INSTALL = "apt-get install -y chromium"
CHROMIUM_FLAGS: tuple[str, ...] = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
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
    endpoint_timeout: float = 120.0

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
BASE_ADAPTER = "__base__"  # PEFT's name for "no adapter" in a mixed batch
BATCH_SIZE = 24  # rows per generate call: the whole showcase (6 prompts x 3 columns) in one batch


def clear_cache() -> None:
    _ENGINES.clear()


def local_engine(model: str = "cpu", adapter: Path | None = None) -> Any:
    """The transformers engine for `model`, with `adapter` attached when given. Loaded once.

    With an adapter, the same engine serves the base columns too: their rows run with PEFT's
    `adapter_names=["__base__", ...]`, so base and fine-tuned share one copy of the weights. A plain
    engine loaded earlier is upgraded in place when the adapter appears, never loaded twice.
    """
    from friction_lib.engines import TransformersEngine

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


def endpoint_engine(base_url: str, model: str | None = None, timeout: float = 120.0) -> Any:
    """An OpenAI-compatible endpoint; no retries, so a server that is down is reported at once."""
    from friction_lib.engines import OpenAIEngine

    key = ("openai", f"{base_url}#{model or ''}", None)
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
    seconds: float = 0.0  # wall time of the generate call that produced it (what the audience waited)
    batch: int = 1  # answers generated together in that call
    tokens: int = 0
    truncated: bool = False  # stopped at max_new_tokens
    reasoning_closed: bool = True
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


def _finish(
    result: ColumnResult, prompt: str, raw: str, tokens: int, seconds: float, config: DemoConfig
) -> None:
    parsed = split_reasoning(raw)
    result.reasoning, result.answer, result.reasoning_closed = parsed.reasoning, parsed.answer, parsed.closed
    result.tokens, result.seconds = tokens, seconds
    result.truncated = tokens >= config.max_new_tokens
    result.running = False
    result.label, result.label_reason = label_answer(parsed.answer, prompt)


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


@dataclass(frozen=True)
class _Row:
    """One generation of a local model: a prompt, a system prompt and an adapter (or the base)."""

    result: ColumnResult
    prompt: str
    system: str
    adapter: str | None


def _generation_kwargs(tokenizer: Any, config: DemoConfig) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "max_new_tokens": config.max_new_tokens,
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    if config.temperature > 0:
        kwargs.update(do_sample=True, temperature=config.temperature, top_p=0.95)
    else:
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    return kwargs


def _decode(tokenizer: Any, ids: list[int]) -> tuple[str, int]:
    """(text, tokens generated): everything up to and including the first end-of-turn token."""
    eos = tokenizer.eos_token_id
    n = ids.index(eos) + 1 if eos in ids else len(ids)
    return tokenizer.decode(ids[:n], skip_special_tokens=True), n


def _row_streamer() -> Any:
    """A transformers streamer for a whole batch: each step's new token of every row, on a queue."""
    import queue

    from transformers.generation.streamers import BaseStreamer

    class RowStreamer(BaseStreamer):
        def __init__(self) -> None:
            self.queue: queue.Queue[list[int] | None] = queue.Queue()
            self.prompt_seen = False

        def put(self, value: Any) -> None:
            if not self.prompt_seen:  # generate() first sends the prompt itself
                self.prompt_seen = True
                return
            self.queue.put(value.reshape(-1).tolist())

        def end(self) -> None:
            self.queue.put(None)

    return RowStreamer()


def _stream_generate(
    model: Any, batch: Any, kwargs: dict[str, Any], on_ids: Callable[[list[list[int]]], None]
) -> Any:
    """`model.generate` in a thread; `on_ids` gets every row's new token ids after each step."""
    import threading

    import torch

    streamer, failure, holder = _row_streamer(), [], []

    def work() -> None:
        try:
            with torch.inference_mode():
                holder.append(model.generate(**batch, **kwargs, streamer=streamer))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            failure.append(exc)
            streamer.end()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    steps: list[list[int]] = []
    while (step := streamer.queue.get()) is not None:
        steps = steps or [[] for _ in step]
        for row, token in enumerate(step):
            steps[row].append(token)
        on_ids(steps)
    thread.join()
    if failure:
        raise failure[0]
    return holder[0]


def _generate_rows(
    engine: Any, rows: Sequence[_Row], config: DemoConfig, on_step: Callable[[list[str]], None] | None = None
) -> list[tuple[str, int, float, int]]:
    """Every row in as few batched `generate` calls as possible: (raw text, tokens, seconds, batch) per row.

    Rows may mix system prompts and, on a PEFT model, adapters (`adapter_names`), so base, prompted
    and fine-tuned columns of one prompt are a single batch. With `on_step`, the batch is generated
    in a thread and `on_step` gets every row's text so far after each step (for streaming).
    """
    import torch

    from friction_lib.chat import build_messages, render_prompt, system_prompt

    tokenizer, model = engine.tokenizer, engine.model
    rendered = [render_prompt(tokenizer, build_messages(r.prompt, system_prompt(r.system))) for r in rows]
    order = sorted(range(len(rows)), key=lambda i: len(rendered[i]))
    size = max(1, int(getattr(engine, "batch_size", 8)))
    device = next(model.parameters()).device
    out: list[tuple[str, int, float, int]] = [("", 0, 0.0, 0)] * len(rows)
    partial = ["" for _ in rows]
    for start in range(0, len(order), size):
        idx = order[start : start + size]
        batch = tokenizer(
            [rendered[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False
        ).to(device)
        kwargs = _generation_kwargs(tokenizer, config)
        if has_adapter(model):
            kwargs["adapter_names"] = [rows[i].adapter or BASE_ADAPTER for i in idx]
        t0 = time.perf_counter()
        if on_step is None:
            with torch.inference_mode():
                generated = model.generate(**batch, **kwargs)
        else:

            def on_ids(steps: list[list[int]], idx: list[int] = idx) -> None:
                for row, ids in enumerate(steps):
                    partial[idx[row]] = _decode(tokenizer, ids)[0]
                on_step(partial)

            generated = _stream_generate(model, batch, kwargs, on_ids)
        seconds = time.perf_counter() - t0
        width = batch["input_ids"].shape[1]
        for row, i in enumerate(idx):
            text, n = _decode(tokenizer, generated[row, width:].tolist())
            out[i] = (text, n, seconds, len(idx))
    return out


def _plan_columns(
    comparisons: Sequence[Comparison], keys: Sequence[str], config: DemoConfig
) -> dict[str, Any]:
    """Give every comparison a blank result per column; return column -> plan (or the exception)."""
    plans: dict[str, Any] = {}
    for comparison in comparisons:
        comparison.results = [_blank(key, config) for key in keys]
    for key in keys:
        try:
            plans[key] = column_plan(key, config)
        except Exception as exc:  # noqa: BLE001 - one column's failure must not hide the others
            plans[key] = exc
    return plans


def _fail(result: ColumnResult, exc: BaseException) -> None:
    result.running = False
    if isinstance(exc, MissingAdapter):
        result.notice = str(exc)
    else:
        result.error = _error_text(exc)


def _local_groups(comparisons: Sequence[Comparison], plans: dict[str, Any]) -> list[tuple[Any, list[_Row]]]:
    """The rows of every local column, grouped by engine (normally one group: one model in memory)."""
    groups: dict[int, tuple[Any, list[_Row]]] = {}
    for comparison in comparisons:
        for result in comparison.results:
            plan = plans[result.key]
            if isinstance(plan, ColumnPlan) and plan.local:
                rows = groups.setdefault(id(plan.engine), (plan.engine, []))[1]
                rows.append(_Row(result, comparison.prompt, plan.system, plan.adapter))
    return list(groups.values())


def _prompt_of(comparisons: Sequence[Comparison], result: ColumnResult) -> str:
    return next(c.prompt for c in comparisons if any(r is result for r in c.results))


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
    keys = parse_columns(columns)
    comparisons = _as_items(prompts)
    if any(check_prompt(c.prompt) for c in comparisons):
        raise FrictionError(EMPTY_PROMPT_MESSAGE)
    plans = _plan_columns(comparisons, keys, config)
    for comparison in comparisons:
        for result in comparison.results:
            if isinstance(plans[result.key], Exception):
                _fail(result, plans[result.key])
    for engine, rows in _local_groups(comparisons, plans):
        try:
            generated = _generate_rows(engine, rows, config)
            for row, (raw, tokens, seconds, batch) in zip(rows, generated, strict=True):
                _finish(row.result, row.prompt, raw, tokens, seconds, config)
                row.result.batch = batch
        except Exception as exc:  # noqa: BLE001 - one engine's failure must not hide the endpoint
            for row in rows:
                _fail(row.result, exc)
    if isinstance(plans.get("endpoint"), ColumnPlan):
        plan = plans["endpoint"]
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
    return comparisons


def _stream_endpoint(engine: Any, prompt: str, system: str | None, config: DemoConfig) -> Iterator[str]:
    """Text pieces from an OpenAI-compatible endpoint; reasoning sent in its own field is wrapped in <think>."""
    import openai

    from friction_lib.chat import build_messages, system_prompt

    try:
        chunks: Any = engine.client.chat.completions.create(
            model=engine.model_name,
            messages=build_messages(prompt, system_prompt(system)),  # type: ignore[arg-type]
            max_tokens=config.max_new_tokens,
            temperature=config.temperature,
            stream=True,
        )
        thinking = False
        for chunk in chunks:
            if not chunk.choices:
                continue
            delta: Any = chunk.choices[0].delta
            reasoning = getattr(delta, "reasoning_content", None) or getattr(delta, "reasoning", None)
            if reasoning:
                if not thinking:
                    thinking = True
                    yield "<think>\n"
                yield reasoning
            if delta.content:
                if thinking:
                    thinking = False
                    yield "\n</think>\n\n"
                yield delta.content
        if thinking:
            yield "\n</think>\n\n"
    except (openai.APIConnectionError, openai.APITimeoutError) as exc:
        raise engine._down(exc) from exc
    except openai.APIStatusError as exc:
        raise FrictionError(f"{engine.base_url} answered HTTP {exc.status_code}: {exc.message}") from exc


def _show_partial(result: ColumnResult, raw: str) -> None:
    parsed = split_reasoning(raw)
    result.reasoning, result.answer, result.reasoning_closed = parsed.reasoning, parsed.answer, parsed.closed


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
    [comparison] = _as_items([prompt])
    if check_prompt(comparison.prompt):
        raise FrictionError(EMPTY_PROMPT_MESSAGE)
    plans = _plan_columns([comparison], parse_columns(columns), config)
    last = 0.0

    def update(force: bool = False) -> None:
        nonlocal last
        if on_update and (force or time.perf_counter() - last >= interval):
            last = time.perf_counter()
            on_update(comparison)

    for result in comparison.results:
        if isinstance(plans[result.key], Exception):
            _fail(result, plans[result.key])
        else:
            result.running = True
    update(force=True)
    for engine, rows in _local_groups([comparison], plans):

        def on_step(partial: list[str], rows: list[_Row] = rows) -> None:
            for row, raw in zip(rows, partial, strict=True):
                _show_partial(row.result, raw)
            update()

        try:
            generated = _generate_rows(engine, rows, config, on_step=on_step)
            for row, (raw, tokens, seconds, batch) in zip(rows, generated, strict=True):
                _finish(row.result, row.prompt, raw, tokens, seconds, config)
                row.result.batch = batch
        except Exception as exc:  # noqa: BLE001 - one engine's failure must not hide the endpoint
            for row in rows:
                _fail(row.result, exc)
        update(force=True)
    plan = plans.get("endpoint")
    if isinstance(plan, ColumnPlan):
        result = next(r for r in comparison.results if r.key == "endpoint")
        t0, raw, pieces = time.perf_counter(), "", 0
        try:
            for piece in _stream_endpoint(plan.engine, comparison.prompt, plan.system, config):
                raw, pieces = raw + piece, pieces + 1
                _show_partial(result, raw)
                update()
            _finish(result, comparison.prompt, raw, pieces, time.perf_counter() - t0, config)
        except Exception as exc:  # noqa: BLE001 - an endpoint that is down shows in its column only
            _fail(result, exc)
        update(force=True)
    return comparison


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
    "fx-page": "background:#0b0d12;padding:18px;",
    "fx-comparison": f"background:#0b0d12;color:#f5f5f5;font-family:{_SANS};font-size:22px;line-height:1.4;"
    "padding:18px 20px 22px;border-radius:14px;margin:0 0 22px;",
    "fx-prompt": "font-size:28px;font-weight:700;margin:0 0 6px;color:#ffffff;",
    "fx-meta": "font-size:17px;color:#c7cad1;margin:0 0 14px;letter-spacing:.02em;",
    "fx-grid": "display:flex;gap:16px;align-items:stretch;",
    "fx-col": "flex:1 1 0;min-width:0;background:#171a22;border:2px solid #2c3140;border-radius:12px;"
    "padding:14px 16px;color:#f5f5f5;",
    "fx-head": "display:flex;justify-content:space-between;align-items:flex-start;gap:10px;margin-bottom:10px;",
    "fx-title": "font-size:24px;font-weight:700;color:#ffffff;",
    "fx-sub": "font-size:15px;color:#b4b9c4;",
    "fx-chip": "display:inline-block;font-size:17px;font-weight:800;color:#0b0d12;padding:3px 12px;"
    "border-radius:999px;white-space:nowrap;letter-spacing:.04em;",
    "fx-check": "font-size:15px;color:#c7cad1;margin-top:4px;text-align:right;",
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


def _chip(result: ColumnResult, expected: str | None) -> str:
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
    chip = f'<span {_at("fx-chip", f"background:{colour};")} title="{reason}">{_esc(label)}</span>'
    if expected and not result.error and result.label:
        hit = result.label == expected.upper()
        verdict = "✓ as expected" if hit else "✗ expected " + _esc(expected.upper())
        chip += f"<div {_at('fx-check')}>{verdict}</div>"
    return f"<div>{chip}</div>"


def column_html(result: ColumnResult, expected: str | None = None) -> str:
    """One column: header with label chip, the reasoning block (<details>), then the answer."""
    key = _esc(result.key)
    frame = f"border-color:{TUNED_BORDER};" if result.key == "tuned" else ""
    open_col = f'<div {_at("fx-col", frame)} data-column="{key}">'
    head = (
        f"<div {_at('fx-head')}><div><div {_at('fx-title')}>{_esc(result.title)}</div>"
        f"<div {_at('fx-sub')}>{_esc(result.subtitle)}</div></div>{_chip(result, expected)}</div>"
    )
    if result.error:
        return f"{open_col}{head}<div {_at('fx-error')}>⚠ {_esc(result.error)}</div></div>"
    if result.notice:
        return f"{open_col}{head}<div {_at('fx-notice')}>{_esc(result.notice)}</div></div>"
    cursor = f"<span {_at('fx-cursor')}>▌</span>" if result.running else ""
    if result.reasoning:
        words = len(result.reasoning.split())
        state = "" if result.reasoning_closed else " · unfinished"
        summary = f"reasoning ({words} words{state})"
        inner = _esc(result.reasoning) + (cursor if result.running and not result.answer else "")
    else:
        summary = "reasoning"
        inner = f"<span {_at('fx-none')}>(no reasoning block: it answered straight away)</span>"
        if result.running and not result.answer:
            inner = f"<span {_at('fx-none')}>(waiting for the first tokens…)</span>"
    details = (
        f"<details {_at('fx-reasoning')} open><summary {_at('fx-summary')}>{summary}</summary>"
        f"<div {_at('fx-reasoning-text')}>{inner}</div></details>"
    )
    if result.answer:
        answer = _esc(result.answer) + (cursor if result.running else "")
    elif result.running:
        answer = ""
    else:
        answer = f"<span {_at('fx-none')}>(no answer: the reasoning used up the token budget)</span>"
    foot = ""
    if not result.running and result.tokens:
        cut = f" · stopped at the {result.tokens}-token limit" if result.truncated else ""
        foot = f"<div {_at('fx-foot')}>{_timing(result)}{cut}</div>"
    return f"{open_col}{head}{details}<div {_at('fx-answer')}>{answer}</div>{foot}</div>"


def _timing(result: ColumnResult) -> str:
    together = f" (batch of {result.batch} answers)" if result.batch > 1 else ""
    return f"{result.tokens} tokens · {result.seconds:.1f} s{together}"


def _one_comparison_html(comparison: Comparison) -> str:
    meta = []
    if comparison.category:
        meta.append(f"category: {comparison.category.replace('_', ' ')}")
    if comparison.expected:
        meta.append(f"good behaviour: {comparison.expected}")
    meta_html = f"<div {_at('fx-meta')}>{_esc(' · '.join(meta))}</div>" if meta else ""
    columns = "".join(column_html(r, comparison.expected) for r in comparison.results)
    return (
        f"<section {_at('fx-comparison')}><div {_at('fx-prompt')}>“{_esc(comparison.prompt)}”</div>"
        f"{meta_html}<div {_at('fx-grid')}>{columns}</div></section>"
    )


def comparison_html(comparisons: Comparison | Sequence[Comparison]) -> str:
    """Self-contained HTML (inline styles) for one comparison or several, for Jupyter or a page."""
    items = [comparisons] if isinstance(comparisons, Comparison) else list(comparisons)
    return f"<div {_at('fx-page')}>" + "".join(_one_comparison_html(c) for c in items) + "</div>"


def message_html(text: str) -> str:
    """A gentle note in the demo's style (an empty prompt, nothing chosen)."""
    return f"<div {_at('fx-message')}>{_esc(text)}</div>"


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


# --------------------------------------------------------------------------- headless Chromium


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _chromium(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    binary = find_chromium()
    if binary is None:
        raise FrictionError(f"Headless Chromium is not installed. Install it with: {CHROMIUM_INSTALL}")
    with tempfile.TemporaryDirectory(prefix="friction-chromium-") as profile:
        cmd = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise FrictionError(f"Chromium did not finish within {timeout:.0f} s: {' '.join(cmd)}") from exc


def dump_dom(html_path: str | Path, timeout: float = 60.0) -> str:
    """The DOM of an HTML file as headless Chromium parsed it."""
    done = _chromium(["--dump-dom", Path(html_path).resolve().as_uri()], timeout)
    if done.returncode != 0 or "<html" not in done.stdout:
        raise FrictionError(
            f"Chromium could not render {html_path} (exit {done.returncode}): {done.stderr[-800:]}"
        )
    return done.stdout


def screenshot(
    html_path: str | Path,
    png_path: str | Path,
    width: int = 1600,
    height: int = 1200,
    timeout: float = 90.0,
    crop: bool = True,
) -> Path:
    """A PNG of the HTML page rendered by headless Chromium at width x height (empty bottom cropped)."""
    out = Path(png_path).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}-tmp.png")
    done = _chromium(
        [f"--screenshot={tmp}", f"--window-size={width},{height}", "--force-device-scale-factor=1",
         Path(html_path).resolve().as_uri()],
        timeout,
    )  # fmt: skip
    if done.returncode != 0 or not tmp.exists():
        raise FrictionError(
            f"Chromium could not screenshot {html_path} (exit {done.returncode}): {done.stderr[-800:]}"
        )
    if crop:
        _crop_bottom(tmp)
    os.replace(tmp, out)
    return out


def _crop_bottom(png: Path, margin: int = 24) -> None:
    """Cut the empty page background below the last comparison (the window is taller than the page)."""
    from PIL import Image, ImageChops

    with Image.open(png) as image:
        rgb = image.convert("RGB")
    background = Image.new("RGB", rgb.size, rgb.getpixel((rgb.width - 1, rgb.height - 1)))
    box = ImageChops.difference(rgb, background).getbbox()
    if box and box[3] + margin < rgb.height:
        rgb.crop((0, 0, rgb.width, box[3] + margin)).save(png)


# --------------------------------------------------------------------------- widget UI


def demo_ui(
    config: DemoConfig | None = None,
    prompts: Sequence[DemoPrompt] | None = None,
    columns: Sequence[str] = DEFAULT_COLUMNS,
    endpoint_url: str = "http://localhost:11434/v1",
    endpoint_model: str = "leonvanbokhorst/deepseek-r1-disagreement",
    interval: float = 0.15,
) -> Any:
    """The live demo: pick or type a prompt, choose the models, Run; tokens stream into the columns.

    Models are loaded once per kernel (see `local_engine`) and reused by every click and cell.
    """
    import sys

    import ipywidgets as w

    if "google.colab" in sys.modules:  # Colab renders ipywidgets 8 only through its custom widget manager
        from google.colab import output  # type: ignore[import-not-found]

        output.enable_custom_widget_manager()
    config = config or DemoConfig()
    prompts = list(prompts) if prompts is not None else load_demo_prompts()
    big = w.Layout(width="98%")
    picker = w.Dropdown(
        options=[("✎ type your own below", "")] + [(f"[{p.category}] {p.prompt}", p.id) for p in prompts],
        value=prompts[0].id if prompts else "",
        description="Prompt",
        layout=big,
    )
    text = w.Textarea(value=prompts[0].prompt if prompts else "", placeholder="Ask anything…",
                      layout=w.Layout(width="98%", height="70px"))  # fmt: skip
    boxes = {key: w.Checkbox(value=key in columns, description=column_title(key, config)[0], indent=False,
                             layout=w.Layout(width="auto")) for key in COLUMN_KEYS}  # fmt: skip
    url = w.Text(
        value=config.base_url or endpoint_url, description="Endpoint URL", layout=w.Layout(width="48%")
    )
    model_name = w.Text(
        value=config.endpoint_model or endpoint_model, description="Model", layout=w.Layout(width="48%")
    )
    tokens = w.IntSlider(value=config.max_new_tokens, min=16, max=512, step=16, description="Max tokens")
    run = w.Button(description="Run ▶", button_style="primary", layout=w.Layout(width="160px", height="44px"))
    board = w.HTML(value=message_html("Pick a prompt (or type one), choose the models, then press Run."))
    by_id = {p.id: p for p in prompts}

    def on_pick(change: dict[str, Any]) -> None:
        if change["new"]:
            text.value = by_id[change["new"]].prompt

    def on_run(_button: Any) -> None:
        chosen = [k for k, box in boxes.items() if box.value]
        question = text.value.strip()
        if check_prompt(question):
            board.value = message_html(EMPTY_PROMPT_MESSAGE)
            return
        if not chosen:
            board.value = message_html("Tick at least one model to compare.")
            return
        picked = by_id.get(picker.value)
        item: str | DemoPrompt = picked if picked and picked.prompt == question else question
        run_config = replace(config, max_new_tokens=int(tokens.value), base_url=url.value.strip() or None,
                             endpoint_model=model_name.value.strip() or None)  # fmt: skip
        run.disabled, run.description = True, "Running…"
        try:
            stream_comparison(
                item,
                chosen,
                run_config,
                on_update=lambda c: setattr(board, "value", comparison_html(c)),
                interval=interval,
            )
        except FrictionError as exc:
            board.value = message_html(str(exc))
        finally:
            run.disabled, run.description = False, "Run ▶"

    picker.observe(on_pick, names="value")
    run.on_click(on_run)
    models_row = w.HBox([w.HTML("<b style='font-size:16px;margin-right:12px'>Models:</b>"), *boxes.values()])
    return w.VBox([picker, text, models_row, w.HBox([url, model_name]), w.HBox([tokens, run]), board])


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
        foot = _timing(result) + (" · cut at the limit" if result.truncated else "")
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


def cli_demo(argv: list[str]) -> int:
    import argparse

    from rich.console import Console

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
    parser.add_argument("--max-new-tokens", type=int, default=DEFAULT_MAX_NEW_TOKENS)
    parser.add_argument("--html", help="also write the comparison as a standalone HTML page here")
    parser.add_argument("--width", type=int, help="terminal width for the panels (default: the terminal's)")
    args = parser.parse_args(argv)  # fmt: skip

    columns = parse_columns(args.models)
    if args.base_url and "endpoint" not in columns:
        columns.append("endpoint")
    if args.prompt is not None:
        message = next((check_prompt(p) for p in args.prompt if check_prompt(p)), None)
        if message:
            raise FrictionError(message)
        known = {p.prompt: p for p in load_demo_prompts()} if default_prompts_path().exists() else {}
        items: list[str | DemoPrompt] = [known.get(p.strip(), p) for p in args.prompt]
    else:
        items = list(showcase(load_demo_prompts(), SHOWCASE_IDS[:3]))
    if args.max_new_tokens < 1:
        raise FrictionError("--max-new-tokens must be at least 1.")
    config = DemoConfig(model=args.model, adapter=args.adapter, base_url=args.base_url,
                        endpoint_model=args.endpoint_model, max_new_tokens=args.max_new_tokens)  # fmt: skip
    console = Console(width=args.width) if args.width else Console()
    with console.status(f"Running {len(items)} prompt(s) through {', '.join(columns)}…"):
        comparisons = compare(items, columns, config)
    for comparison in comparisons:
        console.print(comparison_renderable(comparison))
    if args.html:
        console.print(f"HTML: {save_html(args.html, comparisons)}")
    return 0
