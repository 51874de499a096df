"""The three engines, for real: transformers and llama.cpp on the embedded model, and the openai client
against a llama.cpp server that the test session starts on a free loopback port."""

from __future__ import annotations

import socket

import pytest

from friction_lib import engines
from friction_lib.errors import FrictionError

PROMPTS = ["Say hello.", "Why is the Great Wall of China visible from the Moon? Explain briefly.", "2+2?"]

pytestmark = pytest.mark.engine


def _check_records(results, engine_name):
    assert [r.prompt for r in results] == PROMPTS  # order kept even though batches are length-sorted
    for r in results:
        assert r.engine == engine_name
        assert r.raw.strip(), "empty generation"
        assert r.answer or r.reasoning
        assert r.prompt_tokens > 0 and 0 < r.completion_tokens <= 24
        assert r.seconds > 0


def test_transformers_batched(transformers_engine):
    results = transformers_engine.generate(PROMPTS, max_new_tokens=24)
    _check_records(results, "transformers")


def test_transformers_batched_matches_single_greedy(transformers_engine, cpu_model):
    single = engines.TransformersEngine(*cpu_model, batch_size=1)
    prompt = ["What is the capital of France?"]
    a = single.generate(prompt, max_new_tokens=16)[0].raw
    b = transformers_engine.generate(prompt, max_new_tokens=16)[0].raw
    assert a == b


def test_transformers_stream_equals_generate(transformers_engine):
    streamed = "".join(transformers_engine.stream("Name a colour.", max_new_tokens=12))
    generated = transformers_engine.generate(["Name a colour."], max_new_tokens=12)[0].raw
    assert streamed.strip() == generated.strip()


def test_transformers_sampling_runs(transformers_engine):
    result = transformers_engine.generate(["Tell me a word."], max_new_tokens=8, temperature=0.9)[0]
    assert result.completion_tokens > 0


def test_llamacpp(llamacpp_engine):
    _check_records(llamacpp_engine.generate(PROMPTS, max_new_tokens=24), "llamacpp")


def test_llamacpp_stream_equals_generate(llamacpp_engine):
    streamed = "".join(llamacpp_engine.stream("Name a fruit.", max_new_tokens=12))
    generated = llamacpp_engine.generate(["Name a fruit."], max_new_tokens=12)[0].raw
    assert streamed.strip() == generated.strip()


def test_openai_client_against_real_llama_server(llama_server):
    engine = engines.OpenAIEngine(llama_server.base_url)
    assert engine.model_name == llama_server.alias
    _check_records(engine.generate(PROMPTS, max_new_tokens=24), "openai")
    assert "".join(engine.stream("Say hi.", max_new_tokens=8)).strip()


def test_openai_endpoint_down_names_url_and_fix():
    port = engines.free_port()
    with pytest.raises(FrictionError) as err:
        engines.OpenAIEngine(f"http://127.0.0.1:{port}/v1", timeout=2, max_retries=0)
    message = str(err.value)
    assert f"127.0.0.1:{port}" in message and "friction serve" in message and "ollama serve" in message


def test_port_in_use_names_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(FrictionError, match=f"Port {port}"):
            engines.start_server(port=port)


def test_unknown_engine_lists_valid():
    with pytest.raises(FrictionError, match="transformers, llamacpp, openai"):
        engines.make_engine("vllm")


def test_missing_gguf(tmp_path):
    with pytest.raises(FrictionError, match="No GGUF file"):
        engines.LlamaCppEngine(tmp_path / "nope.gguf")
