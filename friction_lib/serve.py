"""`friction serve`: llama.cpp's OpenAI-compatible server on 127.0.0.1, the offline stand-in for Ollama.

`start_server` runs `python -m llama_cpp.server` in a child process that dies with its parent and waits until
it answers; `free_port` and `check_port_free` pick and check its port.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from friction_lib.errors import FrictionError
from friction_lib.processes import forward_signals, start_child, stop_child


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def check_port_free(port: int, host: str = "127.0.0.1") -> None:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise FrictionError(
                f"Port {port} on {host} is already in use. Pick another with --port, or stop what runs there."
            ) from exc


class Server:
    """A llama.cpp OpenAI-compatible server in a child process; use as a context manager."""

    def __init__(self, process: subprocess.Popen[Any], host: str, port: int, alias: str, log: Path):
        self.process = process
        self.host = host
        self.port = port
        self.alias = alias
        self.log = log

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def stop(self) -> None:
        stop_child(self.process)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_server(
    gguf: str | Path | None = None,
    port: int | None = None,
    host: str = "127.0.0.1",
    n_ctx: int = 2048,
    startup_timeout: float = 120.0,
) -> Server:
    """Start `python -m llama_cpp.server` on host:port and wait until /v1/models answers."""
    import urllib.error
    import urllib.request

    from friction_lib.models import embedded_gguf_path

    path = Path(gguf) if gguf else embedded_gguf_path()
    if not path.exists():
        raise FrictionError(f"No GGUF file at {path}. Export one with `friction export`, or omit --gguf.")
    if port is None or port == 0:
        port = free_port(host)
    else:
        check_port_free(port, host)
    alias = path.stem
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"friction-serve-{port}.log"
    cmd = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(path), "--model_alias", alias,
        "--host", host, "--port", str(port), "--n_ctx", str(n_ctx),
        # Prompt reading was 4x faster with one batch thread per two cores on a 2-core machine.
        "--n_threads_batch", str(max(1, (os.cpu_count() or 2) // 2)),
    ]  # fmt: skip
    with open(log, "w") as handle:  # its own process group, and it dies with this process (even by kill -9)
        process = start_child(cmd, stdout=handle, stderr=subprocess.STDOUT)
    server = Server(process, host, port, alias, log)
    deadline = time.monotonic() + startup_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise FrictionError(
                f"The llama.cpp server exited at start (code {process.returncode}); see {log}:\n"
                + log.read_text()[-1500:]
            )
        try:
            with urllib.request.urlopen(f"{server.base_url}/models", timeout=2) as response:
                if response.status == 200:
                    return server
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.3)
    server.stop()
    raise FrictionError(f"The llama.cpp server did not answer within {startup_timeout:.0f} s; see {log}.")


def cli_serve(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="friction serve",
        description="Serve a GGUF with llama.cpp's OpenAI-compatible server on 127.0.0.1 "
        "(the offline stand-in for Ollama). Ctrl-C stops it.",
    )
    parser.add_argument("--gguf", help="GGUF file to serve (default: the embedded SmolLM2-135M-Instruct)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    parser.add_argument("--n-ctx", type=int, default=2048)
    args = parser.parse_args(argv)
    server = start_server(args.gguf, port=args.port, n_ctx=args.n_ctx)
    print(f"Serving {server.alias} at {server.base_url}  (model name: {server.alias})", flush=True)
    print(
        f'Try: friction chat "Is the Great Wall visible from the Moon?" --engine openai --base-url {server.base_url}'
    )
    with server, forward_signals(server.process):  # SIGTERM / Ctrl-C stop the server first
        try:
            # poll, not wait(): a wait() interrupted by the signal holds the lock stop_child needs to reap it
            while server.process.poll() is None:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
    return 0
