"""One generation API over three real engines, and `friction serve`.

- `TransformersEngine`: batched `generate` with left padding, greedy or sampled, and a streamer.
- `LlamaCppEngine`: llama.cpp (the engine inside Ollama) on a GGUF file, through llama-cpp-python.
- `OpenAIEngine`: any OpenAI-compatible endpoint (Ollama, a llama.cpp server, vLLM, OpenAI).

All three return the same `Generation` records. `start_server` runs llama.cpp's
OpenAI-compatible server on 127.0.0.1: the offline stand-in for Ollama.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
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

ENGINES = ("transformers", "llamacpp", "openai")
DEFAULT_MAX_NEW_TOKENS = 192
OLLAMA_URL = "http://localhost:11434/v1"


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

    def stream(
        self, prompt: str, system: str | None = ..., max_new_tokens: int = ..., temperature: float = ...
    ) -> Iterator[str]: ...


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

    def generate(
        self,
        prompts: Sequence[str],
        system: str | None = None,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        temperature: float = 0.0,
        progress: bool = False,
    ) -> list[Generation]:
        import torch

        self.model.eval()
        rendered = [self._render(p, system) for p in prompts]
        order = sorted(range(len(prompts)), key=lambda i: len(rendered[i]))
        results: list[Generation | None] = [None] * len(prompts)
        device = next(self.model.parameters()).device
        bar = _progress(len(prompts), f"generate ({self.name})", progress)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            batch = self.tokenizer(
                [rendered[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False
            ).to(device)
            t0 = time.perf_counter()
            with torch.inference_mode():
                out = self.model.generate(**batch, **self._gen_kwargs(max_new_tokens, temperature))
            seconds = (time.perf_counter() - t0) / len(idx)
            width = batch["input_ids"].shape[1]
            for row, i in enumerate(idx):
                new = out[row, width:]
                n_new = int((new != self.tokenizer.pad_token_id).sum())
                if self.tokenizer.pad_token_id == self.tokenizer.eos_token_id and n_new < len(new):
                    n_new += 1  # the stop token itself
                raw = self.tokenizer.decode(new, skip_special_tokens=True)
                results[i] = _record(
                    self.name,
                    self.model_name,
                    prompts[i],
                    raw,
                    prompt_prefills_think(rendered[i]),
                    int(batch["attention_mask"][row].sum()),
                    n_new,
                    seconds,
                )
            bar.update(len(idx))
        bar.close()
        return [r for r in results if r is not None]

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
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        inputs = self.tokenizer(self._render(prompt, system), return_tensors="pt", add_special_tokens=False)
        inputs = inputs.to(next(self.model.parameters()).device)
        kwargs = dict(**inputs, streamer=streamer, **self._gen_kwargs(max_new_tokens, temperature))
        thread = threading.Thread(target=self.model.generate, kwargs=kwargs, daemon=True)
        thread.start()
        yield from streamer
        thread.join()


# --------------------------------------------------------------------------- llama.cpp


class LlamaCppEngine:
    """llama.cpp on a GGUF file. The chat template comes from the GGUF's own metadata."""

    name = "llamacpp"

    def __init__(self, gguf: str | Path | None = None, n_ctx: int = 2048, n_threads: int | None = None):
        from friction_lib.models import embedded_gguf_path

        path = Path(gguf) if gguf else embedded_gguf_path()
        if not path.exists():
            raise FrictionError(
                f"No GGUF file at {path}. Export one with `friction export`, or use the embedded model."
            )
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise FrictionError(
                "llama-cpp-python is not installed. Run `make venv` (it builds it once)."
            ) from exc
        self.gguf = path
        self.model_name = path.stem
        self.llm = Llama(
            model_path=str(path), n_ctx=n_ctx, n_threads=n_threads or os.cpu_count(), verbose=False
        )

    def _messages(self, prompt: str, system: str | None) -> list[dict[str, str]]:
        return build_messages(prompt, system_prompt(system))

    def generate(
        self,
        prompts: Sequence[str],
        system: str | None = None,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        temperature: float = 0.0,
        progress: bool = False,
    ) -> list[Generation]:
        results = []
        bar = _progress(len(prompts), f"generate ({self.name})", progress)
        for prompt in prompts:
            t0 = time.perf_counter()
            out: Any = self.llm.create_chat_completion(
                messages=self._messages(prompt, system),  # type: ignore[arg-type]
                max_tokens=max_new_tokens,
                temperature=temperature,
                top_k=1 if temperature == 0 else 40,
                seed=0,
            )
            raw = out["choices"][0]["message"]["content"] or ""
            usage = out.get("usage", {})
            results.append(
                _record(
                    self.name,
                    self.model_name,
                    prompt,
                    raw,
                    False,
                    usage.get("prompt_tokens", 0),
                    usage.get("completion_tokens", 0),
                    time.perf_counter() - t0,
                )
            )
            bar.update(1)
        bar.close()
        return results

    def stream(
        self,
        prompt: str,
        system: str | None = None,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        temperature: float = 0.0,
    ) -> Iterator[str]:
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


# --------------------------------------------------------------------------- OpenAI-compatible


class OpenAIEngine:
    """Any OpenAI-compatible endpoint, with timeouts and bounded retries."""

    name = "openai"

    def __init__(
        self,
        base_url: str = OLLAMA_URL,
        model: str | None = None,
        api_key: str | None = None,
        timeout: float = 120.0,
        max_retries: int = 2,
        concurrency: int = 4,
    ):
        from openai import OpenAI

        self.base_url = base_url.rstrip("/")
        key = api_key or os.environ.get("OPENAI_API_KEY") or "not-needed-locally"
        self.client = OpenAI(base_url=self.base_url, api_key=key, timeout=timeout, max_retries=max_retries)
        self.concurrency = concurrency
        self.model_name = model or self._first_model()

    def _down(self, exc: Exception) -> FrictionError:
        return FrictionError(
            f"No OpenAI-compatible server answered at {self.base_url} ({type(exc).__name__}). "
            "Start one: `friction serve` (llama.cpp, offline, prints its URL), or `ollama serve` "
            f"(then use --base-url {OLLAMA_URL})."
        )

    def _first_model(self) -> str:
        import openai

        try:
            models = self.client.models.list().data
        except (openai.APIConnectionError, openai.APITimeoutError) as exc:
            raise self._down(exc) from exc
        except openai.APIStatusError as exc:
            raise FrictionError(
                f"{self.base_url} answered {exc.status_code} to /models; pass --model NAME."
            ) from exc
        if not models:
            raise FrictionError(f"{self.base_url} serves no models; pass --model NAME.")
        return models[0].id

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
        bar = _progress(len(prompts), f"generate ({self.name})", progress)

        def task(prompt: str) -> Generation:
            result = self._one(prompt, system, max_new_tokens, temperature)
            bar.update(1)
            return result

        with ThreadPoolExecutor(max_workers=max(1, self.concurrency)) as pool:
            results = list(pool.map(task, prompts))
        bar.close()
        return results

    def stream(
        self,
        prompt: str,
        system: str | None = None,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        temperature: float = 0.0,
    ) -> Iterator[str]:
        import openai

        try:
            chunks: Any = self.client.chat.completions.create(
                model=self.model_name,
                messages=build_messages(prompt, system_prompt(system)),  # type: ignore[arg-type]
                max_tokens=max_new_tokens,
                temperature=temperature,
                stream=True,
            )
            for chunk in chunks:
                if chunk.choices and chunk.choices[0].delta.content:
                    yield chunk.choices[0].delta.content
        except (openai.APIConnectionError, openai.APITimeoutError) as exc:
            raise self._down(exc) from exc


def make_engine(
    engine: str,
    model: str = "cpu",
    adapter: str | Path | None = None,
    base_url: str | None = None,
    batch_size: int = 16,
) -> Engine:
    """Build an engine by name. `model` is a profile, an HF folder, or (llamacpp) a .gguf file."""
    if engine == "transformers":
        return TransformersEngine.load(model, adapter=adapter, batch_size=batch_size)
    if engine == "llamacpp":
        if adapter is not None:
            raise FrictionError(
                "The llamacpp engine runs a merged GGUF; export the adapter with `friction export`."
            )
        return LlamaCppEngine(None if model == "cpu" else model)
    if engine == "openai":
        return OpenAIEngine(base_url or OLLAMA_URL, model=None if model == "cpu" else model)
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

    def __init__(self, process: subprocess.Popen, host: str, port: int, alias: str, log: Path):
        self.process = process
        self.host = host
        self.port = port
        self.alias = alias
        self.log = log

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

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
    with open(log, "w") as handle:
        process = subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT)
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
    try:
        server.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
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
    args = parser.parse_args(argv)
    if not args.prompt.strip():
        raise FrictionError('The prompt is empty; ask something, e.g. friction chat "Why is the sky green?"')
    engine = make_engine(args.engine, model=args.model, adapter=args.adapter, base_url=args.base_url)
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
