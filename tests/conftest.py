"""Shared fixtures: the real embedded model, loaded once per session, and a real llama.cpp server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never download from a hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported: no spinning threads


def pytest_configure(config: pytest.Config) -> None:
    # Registered here, not in pyproject.toml: a change there rebuilds .venv (make's stamp depends on it).
    config.addinivalue_line(
        "markers", "drift: builds TRL's config or trainer; `make drift` reruns it on the GPU path's versions"
    )


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def embedded_model_dir() -> Path:
    """The embedded SmolLM2-135M-Instruct as a plain HF folder (prepared once, cached)."""
    from friction_lib.models import prepare_embedded_model

    return prepare_embedded_model(verbose=False)


@pytest.fixture(scope="session")
def cpu_model(embedded_model_dir):
    """(model, tokenizer) of the embedded model in eval mode, shared by the whole session."""
    from friction_lib.models import load_model

    return load_model("cpu")


@pytest.fixture(scope="session")
def tokenizer(cpu_model):
    return cpu_model[1]


@pytest.fixture(scope="session")
def transformers_engine(cpu_model):
    from friction_lib.engines import TransformersEngine

    model, tok = cpu_model
    return TransformersEngine(model, tok, batch_size=8, model_name="cpu")


@pytest.fixture(scope="session")
def llamacpp_engine():
    from friction_lib.engines import LlamaCppEngine

    return LlamaCppEngine()


@pytest.fixture(scope="session")
def llama_server() -> Iterator:
    """A real llama.cpp OpenAI-compatible server on a free 127.0.0.1 port, stopped at the end."""
    from friction_lib.engines import start_server

    server = start_server(port=0)
    try:
        yield server
    finally:
        server.stop()
