"""The client of any OpenAI-compatible endpoint (Ollama, a llama.cpp server, vLLM, OpenAI).

Timeouts and bounded retries, a few requests in flight at once, and errors that name the URL and the fix.
Reasoning a server returns in a field of its own (`reasoning_content`, `reasoning`) is put back in <think>.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from typing import Any

from friction_lib.chat import build_messages, system_prompt
from friction_lib.errors import FrictionError
from friction_lib.generation import (
    DEFAULT_MAX_NEW_TOKENS,
    Generation,
    generate_all,
    make_generation,
    package_version,
)

OLLAMA_URL = "http://localhost:11434/v1"
# Seconds to wait for a server before giving up (`--timeout`): a workshop default, so a server that accepts but
# never answers is reported in half a minute, not after the client's retries of 10-minute waits.
DEFAULT_TIMEOUT = 30.0


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

    @contextmanager
    def _request(self, refused: Callable[[Any], str]) -> Iterator[None]:
        """A request's failures as one-line FrictionErrors: a server that is down or silent (`_down`), or an
        HTTP error status, told by `refused(exc)`."""
        import openai

        try:
            yield
        except (openai.APIConnectionError, openai.APITimeoutError) as exc:
            raise self._down(exc) from exc
        except openai.APIStatusError as exc:
            raise FrictionError(refused(exc)) from exc

    def served_models(self) -> list[str]:
        """The model names the server lists at /models (a server that is down is a FrictionError)."""
        with self._request(
            lambda exc: f"{self.base_url} answered {exc.status_code} to /models; pass --model NAME."
        ):
            return [m.id for m in self.client.models.list().data]

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
            "versions": {"openai": package_version("openai")},
            # Only these are sent: the server's other defaults apply (Ollama's and llama.cpp's server's
            # repeat_penalty is 1.1, vLLM's repetition_penalty 1.0), which is what its users get.
            "sampling": {"temperature": temperature, "seed": 0, "other settings": "the server's defaults"},
        }

    def _one(self, prompt: str, system: str | None, max_new_tokens: int, temperature: float) -> Generation:
        t0 = time.perf_counter()
        with self._request(
            lambda exc: (
                f"{self.base_url} answered HTTP {exc.status_code} for model {self.model_name!r}: "
                f"{exc.message}"
            )
        ):
            out = self.client.chat.completions.create(
                model=self.model_name,
                messages=build_messages(prompt, system_prompt(system)),  # type: ignore[arg-type]
                max_tokens=max_new_tokens,
                temperature=temperature,
                seed=0,
            )
        message: Any = out.choices[0].message
        content = message.content or ""
        # Servers with a reasoning parser (Ollama, vLLM) return the reasoning in a separate field.
        reasoning = getattr(message, "reasoning_content", None) or getattr(message, "reasoning", None)
        raw = f"<think>\n{reasoning}\n</think>\n\n{content}" if reasoning else content
        usage = out.usage
        return make_generation(
            self.name,
            self.model_name,
            prompt,
            raw,
            False,
            usage.prompt_tokens if usage else 0,
            usage.completion_tokens if usage else 0,
            time.perf_counter() - t0,
        )

    generate = generate_all

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
        with self._request(lambda exc: f"{self.base_url} answered HTTP {exc.status_code}: {exc.message}"):
            chunks: Any = self.client.chat.completions.create(
                model=self.model_name,
                messages=build_messages(prompt, system_prompt(system)),  # type: ignore[arg-type]
                max_tokens=max_new_tokens,
                temperature=temperature,
                stream=True,
            )
            yield from _with_think_tags(chunks)


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
