"""The generation record every engine returns, the engine protocol, and what the engines share.

`Generation` is one answer (reasoning, answer, raw text, token counts, seconds). `Engine` is what the three
engines (`engine_transformers`, `engine_llamacpp`, `engine_openai`) offer: `generate` in prompt order (the one
`generate_all` here), `generate_each` as each answer is finished, `stream`, and `settings`. A prompt that does
not fit the model's context with the requested new tokens is refused before anything is generated
(`PromptTooLong`, raised by `check_fits`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from friction_lib.chat import split_reasoning
from friction_lib.errors import FrictionError

DEFAULT_MAX_NEW_TOKENS = 192


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


def check_fits(lengths: Iterator[int], max_new_tokens: int, limit: int | None, source: str) -> None:
    """Raise PromptTooLong for the first prompt whose tokens plus `max_new_tokens` exceed `limit`."""
    if limit is None:
        return
    for index, tokens in enumerate(lengths):
        if tokens + max_new_tokens > limit:
            raise PromptTooLong(index, tokens, max_new_tokens, limit, source)


def generate_all(
    engine: Engine,
    prompts: Sequence[str],
    system: str | None = None,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    temperature: float = 0.0,
    progress: bool = False,
) -> list[Generation]:
    """`generate_each` collected in prompt order, with a progress bar: every engine's `generate`
    (`generate = generate_all` in its class, so `engine.generate(prompts, ...)` passes the engine itself)."""
    bar = _progress(len(prompts), f"generate ({engine.name})", progress)
    out: list[Generation | None] = [None] * len(prompts)
    try:
        for index, generation in engine.generate_each(prompts, system, max_new_tokens, temperature):
            out[index] = generation
            bar.update(1)
    finally:
        bar.close()
    return [g for g in out if g is not None]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(2**24):
            digest.update(chunk)
    return digest.hexdigest()


def package_version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def make_generation(
    engine: str, model: str, prompt: str, raw: str, prefilled: bool, pt: int, ct: int, s: float
) -> Generation:
    """A `Generation` from an engine's raw text, its reasoning split from its answer."""
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
