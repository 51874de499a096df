"""One generation API over three real engines, and `friction serve`.

- `TransformersEngine`: batched `generate` with left padding, greedy or sampled, and a streamer.
- `LlamaCppEngine`: llama.cpp (the engine inside Ollama) on a GGUF file, through llama-cpp-python.
- `OpenAIEngine`: any OpenAI-compatible endpoint (Ollama, a llama.cpp server, vLLM, OpenAI).

All three return the same `Generation` records: `generate` in prompt order, `generate_each` as each one is
finished (what a resumable eval writes down). `settings` says what an engine ran (model file and its sha256,
or the served model, and the sampling settings). A prompt that does not fit the model's context with the
requested new tokens is refused before anything is generated (`PromptTooLong`). `start_server` runs
llama.cpp's OpenAI-compatible server on 127.0.0.1: the offline stand-in for Ollama.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from friction_lib.chat import (
    build_messages,
    prompt_prefills_think,
    render_prompt,
    split_reasoning,
    system_prompt,
)
from friction_lib.errors import FrictionError
from friction_lib.processes import forward_signals, start_child, stop_child

ENGINES = ("transformers", "llamacpp", "openai")
DEFAULT_MAX_NEW_TOKENS = 192
OLLAMA_URL = "http://localhost:11434/v1"
# Seconds to wait for a server before giving up (`--timeout`): a workshop default, so a server that accepts but
# never answers is reported in half a minute, not after the client's retries of 10-minute waits.
DEFAULT_TIMEOUT = 30.0


@dataclass
class Generation:
    prompt: str
    reasoning: str
    answer: str
    raw: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float  # wall time of this record; in a batch, the batch's time shared evenly
    engine: str
    model: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Engine(Protocol):
    name: str
    model_name: str

    def generate(
        self,
        prompts: Sequence[str],
        system: str | None = ...,
        max_new_tokens: int = ...,
        temperature: float = ...,
        progress: bool = ...,
    ) -> list[Generation]: ...

    def generate_each(
        self,
        prompts: Sequence[str],
        system: str | None = ...,
        max_new_tokens: int = ...,
        temperature: float = ...,
    ) -> Iterator[tuple[int, Generation]]: ...

    def stream(
        self, prompt: str, system: str | None = ..., max_new_tokens: int = ..., temperature: float = ...
    ) -> Iterator[str]: ...

    def settings(self, temperature: float = ...) -> dict[str, Any]: ...


class PromptTooLong(FrictionError):
    """A prompt that does not fit the model's context together with the new tokens asked for.

    `index` is its place in the prompts given; `detail` is the reason without it (eval adds `file:line`)."""

    def __init__(self, index: int, tokens: int, max_new_tokens: int, limit: int, source: str):
        self.index = index
        self.detail = (
            f"the prompt is {tokens:,} tokens long in the chat template; with {max_new_tokens} new tokens that is "
            f"more than the model's context of {limit:,} tokens ({source}). Shorten the prompt, or ask for fewer "
            "new tokens."
        )
        super().__init__(f"Prompt {index + 1}: {self.detail}")


def _check_fits(lengths: Iterator[int], max_new_tokens: int, limit: int | None, source: str) -> None:
    """Raise PromptTooLong for the first prompt whose tokens plus `max_new_tokens` exceed `limit`."""
    if limit is None:
        return
    for index, tokens in enumerate(lengths):
        if tokens + max_new_tokens > limit:
            raise PromptTooLong(index, tokens, max_new_tokens, limit, source)


def _generate_all(
    engine: Engine,
    prompts: Sequence[str],
    system: str | None,
    max_new_tokens: int,
    temperature: float,
    progress: bool,
) -> list[Generation]:
    """`generate_each` collected in prompt order, with a progress bar."""
    bar = _progress(len(prompts), f"generate ({engine.name})", progress)
    out: list[Generation | None] = [None] * len(prompts)
    try:
        for index, generation in engine.generate_each(prompts, system, max_new_tokens, temperature):
            out[index] = generation
            bar.update(1)
    finally:
        bar.close()
    return [g for g in out if g is not None]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(2**24):
            digest.update(chunk)
    return digest.hexdigest()


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def _record(engine: str, model: str, prompt: str, raw: str, prefilled: bool, pt: int, ct: int, s: float):
    parsed = split_reasoning(raw, prefilled=prefilled)
    return Generation(
        prompt=prompt,
        reasoning=parsed.reasoning,
        answer=parsed.answer,
        raw=raw,
        prompt_tokens=pt,
        completion_tokens=ct,
        seconds=s,
        engine=engine,
        model=model,
    )


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, unit="prompt")


# --------------------------------------------------------------------------- transformers

BASE_ADAPTER = "__base__"  # PEFT's name for "no adapter" in a mixed-adapter batch


@dataclass(frozen=True)
class Row:
    """One prompt of a batch, with its system prompt and, on a PEFT model, the adapter that answers it."""

    prompt: str
    system: str | None = None
    adapter: str | None = None  # a PEFT adapter name, or BASE_ADAPTER; None: the model as loaded


@dataclass
class RowText:
    """A row's text so far. `seconds`, `batch` and `prompt_tokens` are set once the row is `done`: when it
    emits its stop token (streaming), else when its batch ends. A done row no longer changes."""

    text: str = ""
    tokens: int = 0  # new tokens, the stop token included
    prompt_tokens: int = 0
    prefilled: bool = False  # the rendered prompt opened the <think> block itself
    seconds: float = 0.0  # from its batched call's start to its own end (streaming: its stop token)
    batch: int = 0  # rows generated together in that call
    done: bool = False


def _step_streamer() -> Any:
    """A transformers streamer for a whole batch: each step's new token of every row, on a queue."""
    import queue

    from transformers.generation.streamers import BaseStreamer

    class StepStreamer(BaseStreamer):
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

    return StepStreamer()


def _token_steps(model: Any, inputs: Any, kwargs: dict[str, Any]) -> Iterator[list[list[int]]]:
    """`model.generate` in a thread; after each step, every row's new token ids so far (errors re-raised here)."""
    import torch

    streamer, failure = _step_streamer(), []

    def work() -> None:
        try:
            with torch.inference_mode():
                model.generate(**inputs, **kwargs, streamer=streamer)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            failure.append(exc)
            streamer.end()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    steps: list[list[int]] = [[] for _ in range(len(inputs["input_ids"]))]
    while (step := streamer.queue.get()) is not None:
        for row, token in enumerate(step):
            steps[row].append(token)
        yield steps
    thread.join()
    if failure:
        raise failure[0]


class TransformersEngine:
    """Batched generation with transformers. Prompts are sorted by length so each batch pads little."""

    name = "transformers"

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 16, model_name: str = "transformers"):
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.model_name = model_name
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token

    @classmethod
    def load(cls, model: str = "cpu", adapter: str | Path | None = None, batch_size: int = 16):
        from friction_lib.models import load_model

        loaded, tokenizer = load_model(model, adapter=adapter)
        name = model if adapter is None else f"{model}+{Path(adapter).name}"
        return cls(loaded, tokenizer, batch_size=batch_size, model_name=name)

    def _render(self, prompt: str, system: str | None) -> str:
        return render_prompt(self.tokenizer, build_messages(prompt, system_prompt(system)))

    def _gen_kwargs(self, max_new_tokens: int, temperature: float) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "max_new_tokens": max_new_tokens,
            "pad_token_id": self.tokenizer.pad_token_id,
            "eos_token_id": self.tokenizer.eos_token_id,
        }
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature, top_p=0.95)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        return kwargs

    def context_limit(self) -> tuple[int | None, str]:
        """(tokens the model can attend to, where that figure comes from); (None, "") when nothing says."""
        limits = []
        positions = getattr(self.model.config, "max_position_embeddings", None)
        if positions:
            limits.append((int(positions), "config.max_position_embeddings"))
        declared = getattr(self.tokenizer, "model_max_length", None)
        if declared and declared < 10**7:  # transformers' "no limit" placeholder is about 1e30
            limits.append((int(declared), "tokenizer.model_max_length"))
        return min(limits) if limits else (None, "")

    def _check_fits(self, rendered: Sequence[str], max_new_tokens: int) -> None:
        limit, source = self.context_limit()
        lengths = (len(self.tokenizer(text, add_special_tokens=False)["input_ids"]) for text in rendered)
        _check_fits(lengths, max_new_tokens, limit, source)

    def settings(self, temperature: float = 0.0) -> dict[str, Any]:
        """What this engine runs: the model, its dtype and device, batch size, library versions, sampling."""
        parameter = next(self.model.parameters())
        sampling = {"do_sample": False} if temperature <= 0 else {"do_sample": True, "temperature": temperature,
                                                                   "top_p": 0.95}  # fmt: skip
        return {
            "engine": self.name,
            "model": self.model_name,
            "dtype": str(parameter.dtype).removeprefix("torch."),
            "device": str(parameter.device),
            "batch_size": self.batch_size,
            "versions": {name: _version(name) for name in ("transformers", "torch", "peft")},
            "sampling": sampling,
        }

    def _decode(self, ids: list[int]) -> tuple[str, int]:
        """(text, tokens generated): everything up to and including the first stop token."""
        eos = self.tokenizer.eos_token_id
        n = ids.index(eos) + 1 if eos in ids else len(ids)
        return self.tokenizer.decode(ids[:n], skip_special_tokens=True), n

    def stream_rows(
        self,
        rows: Sequence[Row],
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        temperature: float = 0.0,
        stream: bool = True,
    ) -> Iterator[list[RowText]]:
        """Every row in batches of `batch_size`, sorted by length; yields the rows' texts (one list, in the
        order of `rows`) after every generated token when `stream`, and after every finished batch. Streaming,
        a row is `done` at its stop token, with its own seconds, while the rest of its batch goes on; it is not
        taken out of the batch (a decoding step reads all the weights whatever the batch, docs/demo.md).

        Rows may mix system prompts and, on a PEFT model, adapters (PEFT's `adapter_names`), so a base and
        a fine-tuned answer come out of one batch and one copy of the weights.
        """
        self.model.eval()
        rendered = [self._render(r.prompt, r.system) for r in rows]
        self._check_fits(rendered, max_new_tokens)
        order = sorted(range(len(rows)), key=lambda i: len(rendered[i]))
        out = [RowText(prefilled=prompt_prefills_think(text)) for text in rendered]
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            yield from self._batch(
                rows, [rendered[i] for i in idx], idx, out, max_new_tokens, temperature, stream
            )

    def _batch(
        self,
        rows: Sequence[Row],
        texts: list[str],
        idx: list[int],
        out: list[RowText],
        max_new_tokens: int,
        temperature: float,
        stream: bool,
    ) -> Iterator[list[RowText]]:
        import torch

        device = next(self.model.parameters()).device
        inputs = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        kwargs = self._gen_kwargs(max_new_tokens, temperature)
        if any(rows[i].adapter for i in idx):
            kwargs["adapter_names"] = [rows[i].adapter or BASE_ADAPTER for i in idx]
        prompt_tokens = inputs["attention_mask"].sum(dim=1).tolist()
        t0 = time.perf_counter()
        steps: list[list[int]] = []
        if stream:
            for steps in _token_steps(self.model, inputs, kwargs):
                seconds = time.perf_counter() - t0
                for row, (i, ids) in enumerate(zip(idx, steps, strict=True)):
                    if not out[i].done:  # a row that emitted its stop token is final, with its own time
                        out[i] = self._row_text(ids, prompt_tokens[row], out[i].prefilled, seconds, len(idx))
                yield out
        else:
            with torch.inference_mode():
                generated = self.model.generate(**inputs, **kwargs)
            steps = generated[:, inputs["input_ids"].shape[1] :].tolist()
        seconds = time.perf_counter() - t0
        for row, (i, ids) in enumerate(zip(idx, steps, strict=True)):
            if not out[i].done:
                out[i] = self._row_text(ids, prompt_tokens[row], out[i].prefilled, seconds, len(idx), True)
        yield out

    def _row_text(
        self, ids: list[int], prompts: int, prefilled: bool, seconds: float, batch: int, end: bool = False
    ) -> RowText:
        """A row's text after these new token ids; done at its stop token, or at the end of the batch."""
        text, n = self._decode(ids)
        if end or self.tokenizer.eos_token_id in ids:
            return RowText(text, n, prompts, prefilled, seconds, batch, done=True)
        return RowText(text, n, prompts, prefilled)

    def generate(
        self,
        prompts: Sequence[str],
        system: str | None = None,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        temperature: float = 0.0,
        progress: bool = False,
    ) -> list[Generation]:
        return _generate_all(self, prompts, system, max_new_tokens, temperature, progress)

    def generate_each(
        self,
        prompts: Sequence[str],
        system: str | None = None,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        temperature: float = 0.0,
    ) -> Iterator[tuple[int, Generation]]:
        """(index, Generation) for each prompt, a batch at a time (length-sorted batches of `batch_size`)."""
        sent: set[int] = set()
        for out in self.stream_rows([Row(p, system) for p in prompts], max_new_tokens, temperature, False):
            for i, r in enumerate(out):
                if r.done and i not in sent:
                    sent.add(i)
                    yield i, _record(self.name, self.model_name, prompts[i], r.text, r.prefilled,
                                     r.prompt_tokens, r.tokens, r.seconds / max(1, r.batch))  # fmt: skip

    def stream(
        self,
        prompt: str,
        system: str | None = None,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        temperature: float = 0.0,
    ) -> Iterator[str]:
        """Yield text pieces as they are generated (for live demos)."""
        from transformers import TextIteratorStreamer

        self.model.eval()
        rendered = self._render(prompt, system)
        self._check_fits([rendered], max_new_tokens)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        inputs = self.tokenizer(rendered, return_tensors="pt", add_special_tokens=False)
        inputs = inputs.to(next(self.model.parameters()).device)
        kwargs = dict(**inputs, streamer=streamer, **self._gen_kwargs(max_new_tokens, temperature))
        thread = threading.Thread(target=self.model.generate, kwargs=kwargs, daemon=True)
        thread.start()
        yield from streamer
        thread.join()


# --------------------------------------------------------------------------- llama.cpp


def load_gguf(path: Path, n_ctx: int, n_threads: int | None) -> Any:
    """llama-cpp-python's Llama on `path`; a file that is not a loadable GGUF is a FrictionError naming it."""
    try:
        from llama_cpp import Llama
    except ImportError as exc:
        raise FrictionError(
            "llama-cpp-python is not installed. Run `make venv` (it builds it once)."
        ) from exc
    with open(path, "rb") as handle:
        magic = handle.read(4)
    size = path.stat().st_size / 2**20
    if magic != b"GGUF":
        raise FrictionError(
            f"{path} is not a GGUF file (it starts with {magic!r}, not b'GGUF'; {size:.1f} MB). Pass a .gguf "
            "written by `friction export` or downloaded whole."
        )
    try:
        return Llama(  # every layer on a GPU when llama.cpp was built for one (as verification loads it)
            model_path=str(path),
            n_ctx=n_ctx,
            n_threads=n_threads or os.cpu_count(),
            n_gpu_layers=-1,
            verbose=False,
        )
    except (ValueError, RuntimeError, OSError) as exc:
        raise FrictionError(
            f"{path}: llama.cpp could not load this GGUF ({exc}; {size:.1f} MB on disk). A download or export "
            "cut short leaves a damaged file: export it again with `friction export`, or download it again."
        ) from None


class LlamaCppEngine:
    """llama.cpp on a GGUF file. The chat template comes from the GGUF's own metadata."""

    name = "llamacpp"

    def __init__(self, gguf: str | Path | None = None, n_ctx: int = 2048, n_threads: int | None = None):
        from friction_lib.models import embedded_gguf_path

        path = Path(gguf) if gguf else embedded_gguf_path()
        if not path.is_file():
            raise FrictionError(
                f"No GGUF file at {path}. Export one with `friction export`, or use the embedded model."
            )
        self.gguf = path
        self.model_name = path.stem
        self.n_ctx = n_ctx
        self.n_threads = n_threads or os.cpu_count()
        self.llm = load_gguf(path, n_ctx, self.n_threads)
        self._formatter = _gguf_chat_formatter(self.llm)
        self._sha256: str | None = None

    def _messages(self, prompt: str, system: str | None) -> list[dict[str, str]]:
        return build_messages(prompt, system_prompt(system))

    def _prompt(self, prompt: str, system: str | None) -> tuple[int, bool]:
        """(prompt tokens, whether the template opens <think> itself), as create_chat_completion renders it."""
        if self._formatter is None:  # no template in the GGUF: llama-cpp-python falls back to its own format
            text = "\n".join(m["content"] for m in self._messages(prompt, system))
            return len(self.llm.tokenize(text.encode(), add_bos=True, special=True)), False
        rendered = self._formatter(messages=self._messages(prompt, system))
        ids = self.llm.tokenize(rendered.prompt.encode(), add_bos=not rendered.added_special, special=True)
        return len(ids), prompt_prefills_think(rendered.prompt)

    def _check_fits(self, prompts: Sequence[str], system: str | None, max_new_tokens: int) -> list[bool]:
        """Whether each prompt's template pre-fills <think>; PromptTooLong when one does not fit n_ctx
        (llama-cpp-python would silently cut the new tokens to what is left)."""
        shapes = [self._prompt(p, system) for p in prompts]
        limit, source = (
            self.n_ctx - 1,
            f"n_ctx {self.n_ctx} of {self.gguf.name}, less the one token llama.cpp keeps",
        )
        _check_fits((n for n, _ in shapes), max_new_tokens, limit, source)
        return [prefilled for _, prefilled in shapes]

    def settings(self, temperature: float = 0.0) -> dict[str, Any]:
        """The GGUF (path, size, sha256), the context and threads, llama-cpp-python's version, sampling."""
        if self._sha256 is None:
            self._sha256 = _sha256(self.gguf)
        return {
            "engine": self.name,
            "model": self.model_name,
            "gguf": str(self.gguf),
            "gguf_bytes": self.gguf.stat().st_size,
            "gguf_sha256": self._sha256,
            "n_ctx": self.n_ctx,
            "n_threads": self.n_threads,
            "versions": {"llama-cpp-python": _version("llama-cpp-python")},
            "sampling": self._sampling(temperature),
        }

    @staticmethod
    def _sampling(temperature: float) -> dict[str, Any]:
        return {"temperature": temperature, "top_k": 1 if temperature == 0 else 40, "seed": 0}

    def generate(
        self,
        prompts: Sequence[str],
        system: str | None = None,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        temperature: float = 0.0,
        progress: bool = False,
    ) -> list[Generation]:
        return _generate_all(self, prompts, system, max_new_tokens, temperature, progress)

    def generate_each(
        self,
        prompts: Sequence[str],
        system: str | None = None,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        temperature: float = 0.0,
    ) -> Iterator[tuple[int, Generation]]:
        """(index, Generation) for each prompt in turn (llama.cpp answers one prompt at a time)."""
        prefills = self._check_fits(prompts, system, max_new_tokens)
        for index, prompt in enumerate(prompts):
            t0 = time.perf_counter()
            out: Any = self.llm.create_chat_completion(
                messages=self._messages(prompt, system),  # type: ignore[arg-type]
                max_tokens=max_new_tokens,
                **self._sampling(temperature),
            )
            raw = out["choices"][0]["message"]["content"] or ""
            usage = out.get("usage", {})
            yield index, _record(self.name, self.model_name, prompt, raw, prefills[index],
                                 usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0),
                                 time.perf_counter() - t0)  # fmt: skip

    def stream(
        self,
        prompt: str,
        system: str | None = None,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        temperature: float = 0.0,
    ) -> Iterator[str]:
        self._check_fits([prompt], system, max_new_tokens)
        chunks: Any = self.llm.create_chat_completion(
            messages=self._messages(prompt, system),  # type: ignore[arg-type]
            max_tokens=max_new_tokens,
            temperature=temperature,
            top_k=1 if temperature == 0 else 40,
            stream=True,
        )
        for chunk in chunks:
            piece = chunk["choices"][0]["delta"].get("content")
            if piece:
                yield piece


def _gguf_chat_formatter(llm: Any) -> Any:
    """The GGUF's own chat template as llama-cpp-python renders it for create_chat_completion, or None."""
    from llama_cpp import llama_chat_format

    template = llm.metadata.get("tokenizer.chat_template")
    if not template:
        return None
    eos, bos = llm.token_eos(), llm.token_bos()
    return llama_chat_format.Jinja2ChatFormatter(
        template=template,
        eos_token=llm._model.token_get_text(eos) if eos != -1 else "",
        bos_token=llm._model.token_get_text(bos) if bos != -1 else "",
        stop_token_ids=[eos],
    )


# --------------------------------------------------------------------------- OpenAI-compatible


class OpenAIEngine:
    """Any OpenAI-compatible endpoint, with timeouts and bounded retries."""

    name = "openai"

    def __init__(
        self,
        base_url: str = OLLAMA_URL,
        model: str | None = None,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = 2,
        concurrency: int = 4,
        check_model: bool = False,
    ):
        """`check_model`: ask the server's /models now, and refuse a `model` it does not list (naming those
        it does); without it a named model is taken as given (a hosted API may accept names it does not list)."""
        from openai import OpenAI

        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        key = api_key or os.environ.get("OPENAI_API_KEY") or "not-needed-locally"
        self.client = OpenAI(base_url=self.base_url, api_key=key, timeout=timeout, max_retries=max_retries)
        self.concurrency = concurrency
        self.max_retries = max_retries
        if model is None:
            self.model_name = self._first_model()
        else:
            self.model_name = self._check_model(model) if check_model else model

    def _down(self, exc: Exception) -> FrictionError:
        import openai

        if isinstance(exc, openai.APITimeoutError):
            return FrictionError(
                f"No answer from {self.base_url} within {self.timeout:g} s: the server took the request but did "
                "not reply. Check that it is not stuck, or wait longer with --timeout SECONDS."
            )
        return FrictionError(
            f"No OpenAI-compatible server answered at {self.base_url} ({type(exc).__name__}). "
            "Start one: `friction serve` (llama.cpp, offline, prints its URL), or `ollama serve` "
            f"(then use --base-url {OLLAMA_URL})."
        )

    def served_models(self) -> list[str]:
        """The model names the server lists at /models (a server that is down is a FrictionError)."""
        import openai

        try:
            return [m.id for m in self.client.models.list().data]
        except (openai.APIConnectionError, openai.APITimeoutError) as exc:
            raise self._down(exc) from exc
        except openai.APIStatusError as exc:
            raise FrictionError(
                f"{self.base_url} answered {exc.status_code} to /models; pass --model NAME."
            ) from exc

    def _first_model(self) -> str:
        models = self.served_models()
        if not models:
            raise FrictionError(f"{self.base_url} serves no models; pass --model NAME.")
        return models[0]

    def _check_model(self, model: str) -> str:
        """`model` if the server lists it (Ollama's NAME for NAME:latest too); else the models it does serve."""
        try:
            models = self.served_models()
        except FrictionError as exc:
            if "to /models" not in str(exc):
                raise
            return model  # a server without /models: the first request will say
        if model in models or f"{model}:latest" in models:
            return model
        there = ", ".join(models) if models else "none"
        raise FrictionError(
            f"{self.base_url} serves no model named {model!r}; it serves: {there}. Pass --model with one of those."
        )

    def settings(self, temperature: float = 0.0) -> dict[str, Any]:
        """The endpoint, the served model's name, concurrency and retries, and the sampling settings sent."""
        return {
            "engine": self.name,
            "model": self.model_name,
            "base_url": self.base_url,
            "served_model": self.model_name,
            "concurrency": self.concurrency,
            "max_retries": self.max_retries,
            "timeout_s": self.timeout,
            "versions": {"openai": _version("openai")},
            # Only these are sent: the server's other defaults apply (Ollama's and llama.cpp's server's
            # repeat_penalty is 1.1, vLLM's repetition_penalty 1.0), which is what its users get.
            "sampling": {"temperature": temperature, "seed": 0, "other settings": "the server's defaults"},
        }

    def _one(self, prompt: str, system: str | None, max_new_tokens: int, temperature: float) -> Generation:
        import openai

        t0 = time.perf_counter()
        try:
            out = self.client.chat.completions.create(
                model=self.model_name,
                messages=build_messages(prompt, system_prompt(system)),  # type: ignore[arg-type]
                max_tokens=max_new_tokens,
                temperature=temperature,
                seed=0,
            )
        except (openai.APIConnectionError, openai.APITimeoutError) as exc:
            raise self._down(exc) from exc
        except openai.APIStatusError as exc:
            raise FrictionError(
                f"{self.base_url} answered HTTP {exc.status_code} for model {self.model_name!r}: {exc.message}"
            ) from exc
        message: Any = out.choices[0].message
        content = message.content or ""
        # Servers with a reasoning parser (Ollama, vLLM) return the reasoning in a separate field.
        reasoning = getattr(message, "reasoning_content", None) or getattr(message, "reasoning", None)
        raw = f"<think>\n{reasoning}\n</think>\n\n{content}" if reasoning else content
        usage = out.usage
        return _record(
            self.name,
            self.model_name,
            prompt,
            raw,
            False,
            usage.prompt_tokens if usage else 0,
            usage.completion_tokens if usage else 0,
            time.perf_counter() - t0,
        )

    def generate(
        self,
        prompts: Sequence[str],
        system: str | None = None,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        temperature: float = 0.0,
        progress: bool = False,
    ) -> list[Generation]:
        return _generate_all(self, prompts, system, max_new_tokens, temperature, progress)

    def generate_each(
        self,
        prompts: Sequence[str],
        system: str | None = None,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        temperature: float = 0.0,
    ) -> Iterator[tuple[int, Generation]]:
        """(index, Generation) as each request finishes; at most `concurrency` requests in flight, each retried
        up to `max_retries` times by the client. On a failure the requests not yet sent are cancelled."""
        with ThreadPoolExecutor(max_workers=max(1, self.concurrency)) as pool:
            futures = {
                pool.submit(self._one, prompt, system, max_new_tokens, temperature): index
                for index, prompt in enumerate(prompts)
            }
            try:
                for future in as_completed(futures):
                    yield futures[future], future.result()
            finally:
                for future in futures:
                    future.cancel()

    def stream(
        self,
        prompt: str,
        system: str | None = None,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        temperature: float = 0.0,
    ) -> Iterator[str]:
        """Text pieces as they arrive; reasoning a server sends in its own field is wrapped in <think>."""
        import openai

        try:
            chunks: Any = self.client.chat.completions.create(
                model=self.model_name,
                messages=build_messages(prompt, system_prompt(system)),  # type: ignore[arg-type]
                max_tokens=max_new_tokens,
                temperature=temperature,
                stream=True,
            )
            yield from _with_think_tags(chunks)
        except (openai.APIConnectionError, openai.APITimeoutError) as exc:
            raise self._down(exc) from exc
        except openai.APIStatusError as exc:
            raise FrictionError(f"{self.base_url} answered HTTP {exc.status_code}: {exc.message}") from exc


def _with_think_tags(chunks: Any) -> Iterator[str]:
    """The content of streamed chunks, with a `reasoning_content` / `reasoning` field put back in <think>."""
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


def make_engine(
    engine: str,
    model: str = "cpu",
    adapter: str | Path | None = None,
    base_url: str | None = None,
    batch_size: int = 16,
    timeout: float = DEFAULT_TIMEOUT,
) -> Engine:
    """Build an engine by name. `model` is a profile, an HF folder, or (llamacpp) a .gguf file.

    An endpoint gets one try per call (no retries): a command run by hand reports a problem at once."""
    if engine == "transformers":
        return TransformersEngine.load(model, adapter=adapter, batch_size=batch_size)
    if engine == "llamacpp":
        if adapter is not None:
            raise FrictionError(
                "The llamacpp engine runs a merged GGUF; export the adapter with `friction export`."
            )
        return LlamaCppEngine(None if model == "cpu" else model)
    if engine == "openai":
        name = None if model == "cpu" else model
        return OpenAIEngine(base_url or OLLAMA_URL, model=name, timeout=timeout, max_retries=0)
    raise FrictionError(f"Unknown engine {engine!r}. Valid engines: {', '.join(ENGINES)}.")


# --------------------------------------------------------------------------- serve


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def check_port_free(port: int, host: str = "127.0.0.1") -> None:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise FrictionError(
                f"Port {port} on {host} is already in use. Pick another with --port, or stop what runs there."
            ) from exc


class Server:
    """A llama.cpp OpenAI-compatible server in a child process; use as a context manager."""

    def __init__(self, process: subprocess.Popen[Any], host: str, port: int, alias: str, log: Path):
        self.process = process
        self.host = host
        self.port = port
        self.alias = alias
        self.log = log

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def stop(self) -> None:
        stop_child(self.process)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_server(
    gguf: str | Path | None = None,
    port: int | None = None,
    host: str = "127.0.0.1",
    n_ctx: int = 2048,
    startup_timeout: float = 120.0,
) -> Server:
    """Start `python -m llama_cpp.server` on host:port and wait until /v1/models answers."""
    import urllib.error
    import urllib.request

    from friction_lib.models import embedded_gguf_path

    path = Path(gguf) if gguf else embedded_gguf_path()
    if not path.exists():
        raise FrictionError(f"No GGUF file at {path}. Export one with `friction export`, or omit --gguf.")
    if port is None or port == 0:
        port = free_port(host)
    else:
        check_port_free(port, host)
    alias = path.stem
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"friction-serve-{port}.log"
    cmd = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(path), "--model_alias", alias,
        "--host", host, "--port", str(port), "--n_ctx", str(n_ctx),
        # Prompt reading was 4x faster with one batch thread per two cores on a 2-core machine.
        "--n_threads_batch", str(max(1, (os.cpu_count() or 2) // 2)),
    ]  # fmt: skip
    with open(log, "w") as handle:  # its own process group, and it dies with this process (even by kill -9)
        process = start_child(cmd, stdout=handle, stderr=subprocess.STDOUT)
    server = Server(process, host, port, alias, log)
    deadline = time.monotonic() + startup_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise FrictionError(
                f"The llama.cpp server exited at start (code {process.returncode}); see {log}:\n"
                + log.read_text()[-1500:]
            )
        try:
            with urllib.request.urlopen(f"{server.base_url}/models", timeout=2) as response:
                if response.status == 200:
                    return server
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.3)
    server.stop()
    raise FrictionError(f"The llama.cpp server did not answer within {startup_timeout:.0f} s; see {log}.")


# --------------------------------------------------------------------------- CLI


def _seconds(text: str) -> float:
    import argparse

    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds above 0, got {text!r}")
    return value


def add_timeout_argument(parser: Any, what: str = "the server") -> None:
    """`--timeout SECONDS` for a command that talks to a server (default DEFAULT_TIMEOUT)."""
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"give up when {what} has not answered within this many seconds (default %(default)g)",
    )


def cli_serve(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="friction serve",
        description="Serve a GGUF with llama.cpp's OpenAI-compatible server on 127.0.0.1 "
        "(the offline stand-in for Ollama). Ctrl-C stops it.",
    )
    parser.add_argument("--gguf", help="GGUF file to serve (default: the embedded SmolLM2-135M-Instruct)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    parser.add_argument("--n-ctx", type=int, default=2048)
    args = parser.parse_args(argv)
    server = start_server(args.gguf, port=args.port, n_ctx=args.n_ctx)
    print(f"Serving {server.alias} at {server.base_url}  (model name: {server.alias})", flush=True)
    print(
        f'Try: friction chat "Is the Great Wall visible from the Moon?" --engine openai --base-url {server.base_url}'
    )
    with server, forward_signals(server.process):  # SIGTERM / Ctrl-C stop the server first
        try:
            # poll, not wait(): a wait() interrupted by the signal holds the lock stop_child needs to reap it
            while server.process.poll() is None:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
    return 0


def cli_chat(argv: list[str]) -> int:
    import argparse

    from rich.console import Console
    from rich.panel import Panel

    parser = argparse.ArgumentParser(
        prog="friction chat", description="Ask one prompt; prints reasoning and answer."
    )
    parser.add_argument("prompt")
    parser.add_argument("--engine", default="transformers", help=f"one of: {', '.join(ENGINES)}")
    parser.add_argument(
        "--model",
        default="cpu",
        help="profile (cpu, colab, talk), HF folder, .gguf file, or served model name",
    )
    parser.add_argument("--adapter", help="PEFT adapter folder (transformers engine)")
    parser.add_argument("--base-url", help=f"OpenAI-compatible endpoint (default {OLLAMA_URL})")
    parser.add_argument("--system-prompt", default="default", help="default, friction, or literal text")
    parser.add_argument("--max-new-tokens", type=int, default=DEFAULT_MAX_NEW_TOKENS)
    parser.add_argument("--temperature", type=float, default=0.0)
    add_timeout_argument(parser, "the endpoint (--engine openai)")
    args = parser.parse_args(argv)
    if not args.prompt.strip():
        raise FrictionError('The prompt is empty; ask something, e.g. friction chat "Why is the sky green?"')
    engine = make_engine(
        args.engine, model=args.model, adapter=args.adapter, base_url=args.base_url, timeout=args.timeout
    )
    result = engine.generate(
        [args.prompt],
        system=args.system_prompt,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
    )[0]
    console = Console()
    console.print(Panel(result.reasoning or "(no reasoning)", title="reasoning", border_style="dim"))
    console.print(Panel(result.answer or "(no answer)", title="answer", border_style="green"))
    console.print(
        f"[dim]{result.engine} · {result.model} · {result.completion_tokens} tokens in {result.seconds:.1f} s[/dim]"
    )
    return 0
