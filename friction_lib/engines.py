"""One generation API over three real engines: choose one by name (`make_engine`), and `friction chat`.

- `TransformersEngine` (engine_transformers.py): batched `generate` with left padding, greedy or sampled, and a
  streamer.
- `LlamaCppEngine` (engine_llamacpp.py): llama.cpp (the engine inside Ollama) on a GGUF file, through
  llama-cpp-python.
- `OpenAIEngine` (engine_openai.py): any OpenAI-compatible endpoint (Ollama, a llama.cpp server, vLLM, OpenAI).

All three return the same `Generation` records (generation.py): `generate` in prompt order, `generate_each` as
each one is finished (what a resumable eval writes down). `settings` says what an engine ran (model file and its
sha256, or the served model, and the sampling settings). A prompt that does not fit the model's context with the
requested new tokens is refused before anything is generated (`PromptTooLong`). `start_server` (serve.py) runs
llama.cpp's OpenAI-compatible server on 127.0.0.1: the offline stand-in for Ollama.

`add_timeout_argument` gives every command that talks to a server its `--timeout`. This module re-exports the
names above, so `from friction_lib.engines import ...` reaches all of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from friction_lib.engine_llamacpp import LlamaCppEngine, load_gguf
from friction_lib.engine_openai import DEFAULT_TIMEOUT, OLLAMA_URL, OpenAIEngine
from friction_lib.engine_transformers import BASE_ADAPTER, Row, RowText, TransformersEngine
from friction_lib.errors import FrictionError
from friction_lib.generation import DEFAULT_MAX_NEW_TOKENS, Engine, Generation, PromptTooLong
from friction_lib.serve import Server, check_port_free, cli_serve, free_port, start_server

__all__ = [
    "BASE_ADAPTER",
    "DEFAULT_MAX_NEW_TOKENS",
    "DEFAULT_TIMEOUT",
    "ENGINES",
    "OLLAMA_URL",
    "Engine",
    "Generation",
    "LlamaCppEngine",
    "OpenAIEngine",
    "PromptTooLong",
    "Row",
    "RowText",
    "Server",
    "TransformersEngine",
    "add_timeout_argument",
    "check_port_free",
    "cli_chat",
    "cli_serve",
    "free_port",
    "load_gguf",
    "make_engine",
    "start_server",
]

ENGINES = ("transformers", "llamacpp", "openai")


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
