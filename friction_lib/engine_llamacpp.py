"""The llama.cpp engine (the engine inside Ollama) on a GGUF file, through llama-cpp-python.

The chat template comes from the GGUF's own metadata, rendered as `create_chat_completion` renders it, so a
prompt's length is checked against `n_ctx` before anything is generated.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from friction_lib.chat import build_messages, prompt_prefills_think, system_prompt
from friction_lib.errors import FrictionError
from friction_lib.generation import (
    DEFAULT_MAX_NEW_TOKENS,
    Generation,
    check_fits,
    file_sha256,
    generate_all,
    make_generation,
    package_version,
)


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
        check_fits((n for n, _ in shapes), max_new_tokens, limit, source)
        return [prefilled for _, prefilled in shapes]

    def settings(self, temperature: float = 0.0) -> dict[str, Any]:
        """The GGUF (path, size, sha256), the context and threads, llama-cpp-python's version, sampling."""
        if self._sha256 is None:
            self._sha256 = file_sha256(self.gguf)
        return {
            "engine": self.name,
            "model": self.model_name,
            "gguf": str(self.gguf),
            "gguf_bytes": self.gguf.stat().st_size,
            "gguf_sha256": self._sha256,
            "n_ctx": self.n_ctx,
            "n_threads": self.n_threads,
            "versions": {"llama-cpp-python": package_version("llama-cpp-python")},
            "sampling": self._sampling(temperature),
        }

    @staticmethod
    def _sampling(temperature: float) -> dict[str, Any]:
        return {"temperature": temperature, "top_k": 1 if temperature == 0 else 40, "seed": 0}

    generate = generate_all

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
            yield index, make_generation(self.name, self.model_name, prompt, raw, prefills[index],
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
