"""`friction eval` on what users run: a GGUF through llama.cpp, and a model behind a real OpenAI-compatible server
(`friction serve`, started on 127.0.0.1 by the test session), with the same files, classifier and McNemar as the
transformers run; and every bad input about engines: a GGUF that does not load, a server that is down or that
serves no model by that name, a prompt longer than the model's context.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from friction_lib import engines
from friction_lib.cli import main
from friction_lib.errors import FrictionError
from friction_lib.evaluate import RUN_FILES, EngineSpec, load_run, run_eval

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "data" / "eval" / "quick.jsonl"

pytestmark = pytest.mark.engine


def _eval(*args: str) -> int:
    return main(["eval", "--prompts", str(QUICK), "--per-group", "1", "--max-new-tokens", "16", *args])


@pytest.fixture(scope="module")
def gguf_run(tmp_path_factory) -> Path:
    """The embedded GGUF scored through llama.cpp by the real CLI: 10 prompts, 16 new tokens each."""
    out = tmp_path_factory.mktemp("llamacpp") / "run"
    assert _eval("--engine", "llamacpp", "--out", str(out), "--threads", "1") == 0
    return out


def test_llamacpp_engine_scores_the_embedded_gguf(gguf_run):
    from friction_lib.models import embedded_gguf_path

    for name in RUN_FILES:
        assert (gguf_run / name).stat().st_size > 0, name
    run = load_run(gguf_run)
    results, rows = run["results"], run["responses"]
    settings = results["engine_settings"]
    assert results["engine"] == settings["engine"] == "llamacpp"
    assert settings["gguf_sha256"] == hashlib.sha256(embedded_gguf_path().read_bytes()).hexdigest()
    assert settings["sampling"] == {"temperature": 0.0, "top_k": 1, "seed": 0} and settings["n_ctx"] == 2048
    assert results["name"] == "SmolLM2-135M-Instruct.Q4_1" and results["overall"]["n"] == 10
    assert all(0 < r["completion_tokens"] <= 16 for r in rows)
    assert "llamacpp (SmolLM2-135M-Instruct.Q4_1.gguf, sha256" in (gguf_run / "report.md").read_text()
    assert not (gguf_run.parent / "run.partial.jsonl").exists()  # a complete run keeps no partial answers


@pytest.mark.slow
def test_openai_engine_scores_through_a_real_friction_serve(llama_server, gguf_run, tmp_path, capsys):
    """The same prompts through the server of the same GGUF, with McNemar against the llama.cpp run."""
    out = tmp_path / "served"
    code = _eval("--engine", "openai", "--base-url", llama_server.base_url, "--concurrency", "3",
                 "--base-run", str(gguf_run), "--out", str(out))  # fmt: skip
    assert code == 0
    assert f"McNemar vs {gguf_run}" in capsys.readouterr().out
    results = load_run(out)["results"]
    settings = results["engine_settings"]
    assert settings["served_model"] == llama_server.alias and settings["base_url"] == llama_server.base_url
    assert settings["concurrency"] == 3 and settings["sampling"]["temperature"] == 0.0
    assert results["mcnemar"]["lenient"]["n_pairs"] == 10
    assert [r["id"] for r in load_run(out)["responses"]] == [r["id"] for r in load_run(gguf_run)["responses"]]


# --------------------------------------------------------------------------- bad input


def test_a_file_that_is_not_a_gguf_is_named(tmp_path, capsys):
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"PK\x03\x04 not a model" * 100)
    assert _eval("--engine", "llamacpp", "--gguf", str(fake), "--out", str(tmp_path / "out")) == 2
    err = capsys.readouterr().err.strip()
    assert f"{fake} is not a GGUF file" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_a_truncated_gguf_is_named_with_the_fix(tmp_path):
    from friction_lib.models import embedded_gguf_path

    cut = tmp_path / "cut.gguf"
    cut.write_bytes(embedded_gguf_path().read_bytes()[: 2**20])
    with pytest.raises(FrictionError, match=f"{cut}: llama.cpp could not load this GGUF .*export it again"):
        engines.LlamaCppEngine(cut)


def test_a_server_that_is_down_is_named(tmp_path, capsys):
    url = f"http://127.0.0.1:{engines.free_port()}/v1"
    assert _eval("--engine", "openai", "--base-url", url, "--timeout", "2", "--retries", "0",
                 "--out", str(tmp_path / "out")) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert url in err and "friction serve" in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial.jsonl").exists()


@pytest.mark.slow
def test_a_model_the_server_does_not_serve_lists_those_it_does(llama_server, tmp_path, capsys):
    assert _eval("--engine", "openai", "--base-url", llama_server.base_url, "--model", "friction-r1-7b",
                 "--out", str(tmp_path / "out")) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert f"{llama_server.base_url} serves no model named 'friction-r1-7b'" in err
    assert f"it serves: {llama_server.alias}" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--engine", "llamacpp", "--adapter", "models/x"], "--adapter goes with --engine transformers"),
        (["--gguf", "x.gguf"], "--gguf goes with --engine llamacpp"),
        (["--base-url", "http://127.0.0.1:9/v1"], "--base-url goes with --engine openai"),
        (["--engine", "llamacpp", "--model", "cpu"], "pass --gguf FILE, not --model"),
        (["--engine", "openai", "--retries", "-1"], "--retries must be at least 0"),
    ],
)
def test_options_that_do_not_go_with_the_engine(args, message, tmp_path, capsys):
    assert _eval(*args, "--out", str(tmp_path / "out")) == 2
    assert message in capsys.readouterr().err


def test_a_prompt_longer_than_the_context_is_refused_before_generating(transformers_engine):
    huge = "word " * 300_000  # about 1.5 MB: the model once tried to allocate 44 GB for such a prompt
    with pytest.raises(
        engines.PromptTooLong, match=r"context of 8,192 tokens \(config.max_position_embeddings\)"
    ):
        transformers_engine.generate(["Hi.", huge], max_new_tokens=8)
    with pytest.raises(engines.PromptTooLong, match="Prompt 1: the prompt is"):
        list(transformers_engine.stream(huge, max_new_tokens=8))


def test_llamacpp_refuses_a_prompt_past_n_ctx_instead_of_cutting_the_answer(tmp_path):
    engine = engines.LlamaCppEngine(n_ctx=256, n_threads=1)
    fits = "Say hello." + " ok" * 40
    with pytest.raises(engines.PromptTooLong, match=r"n_ctx 256 of SmolLM2-135M-Instruct.Q4_1.gguf"):
        engine.generate([fits], max_new_tokens=200)  # fits alone, not with 200 new tokens
    assert engine.generate([fits], max_new_tokens=8)[0].completion_tokens > 0


def test_eval_names_file_and_line_of_a_prompt_too_long(transformers_engine, tmp_path):
    lines = [json.dumps({"id": f"p{i}", "prompt": "Why is the sky green?", "category": "false_premise",
                         "expected": "challenge", "source": "team"}) for i in range(2)]  # fmt: skip
    lines.insert(1, json.dumps({"id": "long", "prompt": "why " * 9000, "category": "false_premise",
                                "expected": "challenge", "source": "team"}))  # fmt: skip
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("\n".join(lines) + "\n")
    with pytest.raises(FrictionError, match=rf"{prompts}:2 \(id 'long'\): the prompt is [\d,]+ tokens long"):
        run_eval(prompts, tmp_path / "out", engine=transformers_engine, max_new_tokens=8, progress=False)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial.jsonl").exists()


def test_engine_spec_loads_each_engine_kind(llamacpp_engine):
    with pytest.raises(FrictionError, match="Valid engines: transformers, llamacpp, openai"):
        EngineSpec(engine="vllm").check()
    spec = EngineSpec(engine="llamacpp", threads=1, n_ctx=512)
    engine = spec.load()
    assert engine.n_ctx == 512 and engine.settings()["n_threads"] == 1
