"""Which engine an eval run scores, settled from the command line and loaded only once --out is known to be free.

- `transformers`: a profile or HF folder, optionally with a PEFT adapter (folded into the weights first);
- `llamacpp`: a GGUF file (`--gguf`; default the embedded SmolLM2-135M), e.g. what `friction export` wrote;
- `openai`: a model behind any OpenAI-compatible server (`--base-url`, `--model`): Ollama, vLLM, `friction serve`.

Every engine gets the same prompts, classifier and files; `identity` is what a run's answers are answers *of*
(the resumable answers file checks it).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from friction_lib.engines import DEFAULT_TIMEOUT, ENGINES, OLLAMA_URL
from friction_lib.errors import FrictionError

DEFAULT_EVAL_BATCH_SIZE = 100  # decoding a 135M model on CPU is memory-bound: a big batch costs little more
DEFAULT_CONCURRENCY = 4
DEFAULT_RETRIES = 2
DEFAULT_N_CTX = 2048


@dataclass(frozen=True)
class EngineSpec:
    """An engine to load: `friction eval --engine ...` and its options."""

    engine: str = "transformers"
    model: str | None = None  # transformers: profile or HF folder (default cpu); openai: served model name
    adapter: str | Path | None = None
    gguf: str | Path | None = None
    base_url: str | None = None
    batch_size: int = DEFAULT_EVAL_BATCH_SIZE
    threads: int | None = None
    n_ctx: int = DEFAULT_N_CTX
    concurrency: int = DEFAULT_CONCURRENCY
    retries: int = DEFAULT_RETRIES
    timeout: float = DEFAULT_TIMEOUT

    def check(self) -> None:
        """Options that do not go with the engine, or out of range: one line naming the fix."""
        if self.engine not in ENGINES:
            raise FrictionError(f"Unknown engine {self.engine!r}. Valid engines: {', '.join(ENGINES)}.")
        only = {"--adapter": ("transformers", self.adapter), "--gguf": ("llamacpp", self.gguf),
                "--base-url": ("openai", self.base_url)}  # fmt: skip
        for option, (engine, value) in only.items():
            if value is not None and self.engine != engine:
                hint = (
                    " (export the adapter with `friction export`, then --gguf FILE)"
                    if option == "--adapter"
                    else ""
                )
                raise FrictionError(
                    f"{option} goes with --engine {engine}, not --engine {self.engine}{hint}."
                )
        if self.engine == "llamacpp" and self.model is not None:
            raise FrictionError("--engine llamacpp runs a GGUF file: pass --gguf FILE, not --model.")
        for flag, number, low in (("--concurrency", self.concurrency, 1), ("--retries", self.retries, 0),
                                  ("--n-ctx", self.n_ctx, 64), ("--batch-size", self.batch_size, 1)):  # fmt: skip
            if number < low:
                raise FrictionError(f"{flag} must be at least {low}, got {number}.")

    def load(self) -> Any:
        """The engine, loaded (minutes for a big model: call it once --out is checked and held)."""
        self.check()
        if self.engine == "llamacpp":
            from friction_lib.engines import LlamaCppEngine

            # One core is left free by default (as verify does): llama.cpp's threads spin while they wait.
            threads = self.threads or max(1, (os.cpu_count() or 2) - 1)
            return LlamaCppEngine(self.gguf, n_ctx=self.n_ctx, n_threads=threads)
        if self.engine == "openai":
            from friction_lib.engines import OpenAIEngine

            return OpenAIEngine(
                self.base_url or OLLAMA_URL,
                model=self.model,
                timeout=self.timeout,
                max_retries=self.retries,
                concurrency=self.concurrency,
                check_model=True,
            )
        return _load_transformers(self.model or "cpu", self.adapter, self.batch_size, self.threads)


def _load_transformers(model: str, adapter: str | Path | None, batch_size: int, threads: int | None) -> Any:
    from friction_lib.engines import TransformersEngine

    if threads:
        import torch

        torch.set_num_threads(threads)
    engine = TransformersEngine.load(model, adapter=adapter, batch_size=batch_size)
    if adapter:
        from friction_lib.adapters import merge_for_inference

        engine.model = merge_for_inference(engine.model)  # the same outputs, no adapter cost per step
    return engine


def model_identity(model: str, adapter: str | Path | None = None) -> str:
    """The model under test as a comparable name: a profile becomes its base model id."""
    from friction_lib.models import BASE_MODEL_IDS, PROFILES

    base, _, rest = model.partition("+")  # TransformersEngine.load names a tuned model "cpu+adapter"
    name = BASE_MODEL_IDS.get(base, PROFILES[base].model_id) if base in PROFILES else base
    suffix = Path(adapter).name if adapter else rest
    return f"{name}+{suffix}" if suffix else name


def engine_settings(engine: Any, temperature: float) -> dict[str, Any]:
    """`engine.settings(...)`, or the little an engine without it says about itself."""
    if hasattr(engine, "settings"):
        return dict(engine.settings(temperature))
    name = getattr(engine, "name", type(engine).__name__)
    return {"engine": name, "model": engine.model_name, "sampling": {"temperature": temperature}}


def adapter_sha256(adapter: str | Path | None) -> str | None:
    """sha256 of an adapter's weights (a retrained adapter in the same folder is another model)."""
    if not adapter:
        return None
    weights = sorted(Path(adapter).glob("adapter_model.*"))
    if not weights:
        return None
    return hashlib.sha256(weights[0].read_bytes()).hexdigest()


def default_run_name(adapter: str | Path | None, system: str, engine: Any = None) -> str:
    """base, prompt-only or fine-tuned; a GGUF or served model is named after itself."""
    if engine is not None and getattr(engine, "name", "transformers") in ("llamacpp", "openai"):
        return engine.model_name + (" prompt-only" if system == "friction" else "")
    if adapter:
        return "fine-tuned"
    return "prompt-only" if system == "friction" else "base"
