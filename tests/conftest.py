"""Shared fixtures: the real embedded model, loaded once per session, and a real llama.cpp server."""

from __future__ import annotations

import os
import re
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
    config.addinivalue_line(
        "markers",
        "faults: the fault suite of docs/faults.md (kill -9, full disk, bad bytes, ...): pytest -m faults",
    )


def fault_suite() -> set[str]:
    """The tests docs/faults.md names (`tests/test_x.py::test_name`): the fault suite of #19."""
    text = (ROOT / "docs" / "faults.md").read_text(encoding="utf-8")
    return set(re.findall(r"tests/test_\w+\.py::test_\w+", text))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The suite's tests in other files get the `faults` marker from the table, so `pytest -m faults` runs it all.
    named = fault_suite()
    for item in items:
        if item.nodeid.split("[")[0] in named:
            item.add_marker(pytest.mark.faults)


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


@pytest.fixture(scope="session")
def test_adapter(tmp_path_factory) -> Path:
    """A real (untrained) LoRA adapter on the embedded model (adapters.make_test_adapter)."""
    from friction_lib.adapters import make_test_adapter

    return make_test_adapter(tmp_path_factory.mktemp("adapter") / "adapter")


@pytest.fixture(scope="session")
def exported(test_adapter, tmp_path_factory):
    """One real `friction export` of the test adapter (f16 + q8_0, verified on two prompts), shared."""
    from friction_lib.export import export_adapter
    from friction_lib.verify import VERIFY_PROMPTS

    return export_adapter(
        test_adapter,
        tmp_path_factory.mktemp("export") / "out",
        quants="q8_0",
        verify_prompts=(VERIFY_PROMPTS[0], VERIFY_PROMPTS[2]),
        progress=False,
    )


@pytest.fixture(scope="session")
def demo_comparisons(embedded_model_dir):
    """Two showcase prompts through base, prompted and tuned on the embedded model (loaded once)."""
    from friction_lib import demo

    prompts = demo.showcase(
        demo.load_demo_prompts(ROOT / "data" / "demo_prompts.jsonl"), ["demo-fp-01", "demo-ctl-01"]
    )
    config = demo.DemoConfig(max_new_tokens=12)
    return demo.compare(prompts, demo.DEFAULT_COLUMNS, config), config


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A real server on a free 127.0.0.1 port that accepts connections and never answers: yields its /v1 URL."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:  # the 0.2 s timeout, or the socket closed at teardown
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        listener.close()
