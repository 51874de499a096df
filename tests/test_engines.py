"""The three engines, for real: transformers and llama.cpp on the embedded model, and the openai client
against a llama.cpp server that the test session starts on a free loopback port; `friction serve` stopped by
SIGTERM and SIGKILL, and `--timeout` against a server that never answers."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import psutil
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


@contextlib.contextmanager
def _refusing_server(status: int):
    """A real HTTP server on 127.0.0.1 that answers every request with `status` and an OpenAI error body."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _refuse(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            data = json.dumps({"error": {"message": "scripted refusal", "type": "scripted"}}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _refuse

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def test_openai_error_statuses_name_the_url_and_what_was_asked():
    with _refusing_server(503) as url:
        engine = engines.OpenAIEngine(url, model="m", timeout=5, max_retries=0)
        with pytest.raises(
            FrictionError, match=rf"^{re.escape(url)} answered 503 to /models; pass --model NAME"
        ):
            engine.served_models()
        with pytest.raises(FrictionError, match=rf"^{re.escape(url)} answered HTTP 503 for model 'm': "):
            engine.generate(["Hi."])
        with pytest.raises(FrictionError, match=rf"^{re.escape(url)} answered HTTP 503: "):
            "".join(engine.stream("Hi."))


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


def test_transformers_stream_rows_streams_every_row_then_matches_generate(transformers_engine):
    rows = [engines.Row(p) for p in PROMPTS]
    states = [[(r.text, r.tokens, r.done) for r in out] for out in transformers_engine.stream_rows(rows, 12)]
    assert len(states) > 12, "one state per generated token, not only the finished batch"
    for row in range(len(rows)):
        tokens = [state[row][1] for state in states]
        assert tokens == sorted(tokens) and 0 < tokens[-1] <= 12  # the text only grows
    final = list(transformers_engine.stream_rows(rows, 12, stream=False))[-1]
    assert all(r.done and r.batch == len(rows) and r.seconds > 0 for r in final)
    assert [r.text for r in final] == [text for text, _, _ in states[-1]]
    assert [r.text for r in final] == [
        g.raw for g in transformers_engine.generate(PROMPTS, max_new_tokens=12)
    ]


def test_transformers_rows_mix_system_prompts_in_one_batch(transformers_engine):
    prompt = "Is the Great Wall of China visible from the Moon?"
    rows = [engines.Row(prompt, "default"), engines.Row(prompt, "friction")]
    *_, final = transformers_engine.stream_rows(rows, 16, stream=False)
    assert [r.batch for r in final] == [2, 2]
    assert final[0].prompt_tokens < final[1].prompt_tokens  # each row got its own system prompt
    assert final[0].text.strip()
    # the longer row has no padding, so it is what the friction prompt alone gives
    assert final[1].text == transformers_engine.generate([prompt], "friction", max_new_tokens=16)[0].raw


# --------------------------------------------------------------------------- talking to servers


def test_chat_gives_up_on_a_silent_server_after_timeout(silent_server, root):
    """A server that accepts the connection and never answers: `friction chat` stops after --timeout."""
    command = [sys.executable, "-m", "friction_lib.cli", "chat", "hi", "--engine", "openai",
               "--base-url", silent_server, "--timeout", "2"]  # fmt: skip
    started = time.monotonic()
    done = subprocess.run(command, cwd=root, env=_env(root), capture_output=True, text=True, timeout=60)
    elapsed = time.monotonic() - started
    assert done.returncode != 0
    [message] = done.stderr.strip().splitlines()
    assert silent_server in message and "--timeout" in message and "within 2 s" in message
    assert elapsed < 20, f"took {elapsed:.0f} s"


def test_timeout_must_be_positive(capsys):
    from friction_lib.cli import main

    with pytest.raises(SystemExit):
        main(["chat", "hi", "--engine", "openai", "--timeout", "0"])
    assert "above 0" in capsys.readouterr().err


def _env(root: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(root), "PYTHONUNBUFFERED": "1"}


def _start_serve(root: Path, tmp_path: Path) -> tuple[subprocess.Popen[str], int, list[psutil.Process]]:
    """`friction serve --port 0` as a real process; (process, port, its children) once the port answers."""
    env = {**_env(root), "TMPDIR": str(tmp_path)}
    with (tmp_path / "serve.err").open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "friction_lib.cli", "serve", "--port", "0"], cwd=root,
                                env=env, stdout=subprocess.PIPE, stderr=log, text=True)  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout or []], daemon=True).start()
    try:
        first = lines.get(timeout=180)
    except queue.Empty:
        _kill([proc, *psutil.Process(proc.pid).children(recursive=True)])
        pytest.fail(f"friction serve printed nothing in 180 s: {(tmp_path / 'serve.err').read_text()[-800:]}")
    port = int(re.search(r"127\.0\.0\.1:(\d+)/v1", first).group(1))
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=10) as response:
        assert response.status == 200
    return proc, port, psutil.Process(proc.pid).children(recursive=True)


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _gone(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _kill(processes: list) -> None:
    for p in processes:
        with contextlib.suppress(Exception):
            p.kill()


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_stopping_serve_stops_the_llama_cpp_server(sig, root, tmp_path):
    proc, port, children = _start_serve(root, tmp_path)
    try:
        assert children, "friction serve runs llama.cpp's server as a child process"
        assert _port_open(port)
        proc.send_signal(sig)
        proc.wait(timeout=10)  # a stop that waits out stop_child's 10 s grace is a bug
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (_port_open(port) or not all(_gone(c) for c in children)):
            time.sleep(0.2)
        assert not _port_open(port), f"port {port} still answers after {sig.name} to friction serve"
        assert all(_gone(c) for c in children), f"llama.cpp server still running after {sig.name}"
    finally:
        _kill([proc, *children])
