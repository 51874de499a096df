from __future__ import annotations

import os

import pytest

from friction_lib import cli


def test_help_lists_every_command(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in cli.COMMANDS:
        assert name in out


def test_every_command_resolves_to_a_function():
    import importlib

    for name, (module, function, _) in cli.COMMANDS.items():
        assert callable(getattr(importlib.import_module(module), function)), name


def test_unknown_command_exits_2(capsys):
    assert cli.main(["frobnicate"]) == 2
    assert "unknown command" in capsys.readouterr().err


def test_two_word_commands_resolve():
    assert cli.resolve(["eval", "compare", "a", "b"]) == ("eval compare", ["a", "b"])
    assert cli.resolve(["eval", "--prompts", "x"]) == ("eval", ["--prompts", "x"])
    assert cli.resolve(["data", "curate", "f"]) == ("data curate", ["f"])


def test_friction_error_is_a_message_not_a_traceback(capsys):
    assert cli.main(["chat", "hi", "--engine", "nope"]) == 2
    err = capsys.readouterr().err
    assert "Unknown engine 'nope'" in err and "Traceback" not in err


def test_empty_prompt_is_gentle(capsys):
    assert cli.main(["chat", "   "]) == 2
    assert "empty" in capsys.readouterr().err


@pytest.mark.engine
@pytest.mark.parametrize("engine", ["transformers", "llamacpp"])
def test_chat_prints_reasoning_and_answer(engine, capsys):
    assert cli.main(["chat", "What is 2+2?", "--engine", engine, "--max-new-tokens", "16"]) == 0
    out = capsys.readouterr().out
    assert "reasoning" in out and "answer" in out and engine in out


@pytest.mark.engine
def test_chat_openai_through_served_model(llama_server, capsys):
    assert cli.main(["chat", "What is 2+2?", "--engine", "openai", "--base-url", llama_server.base_url,
                     "--model", llama_server.alias, "--max-new-tokens", "16"]) == 0  # fmt: skip
    assert "answer" in capsys.readouterr().out


def test_chat_openai_down(capsys):
    from friction_lib.engines import free_port

    url = f"http://127.0.0.1:{free_port()}/v1"
    assert cli.main(["chat", "hi", "--engine", "openai", "--base-url", url]) == 2
    assert "friction serve" in capsys.readouterr().err


# --------------------------------------------------------------------------- failures of the environment (#19)


def _truncated_safetensors(tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    path = tmp_path / "w.safetensors"
    save_file({"w": torch.zeros(64)}, str(path))
    os.truncate(path, path.stat().st_size // 2)
    load_file(str(path))


def _truncated_torch_file(tmp_path):
    import torch

    path = tmp_path / "optimizer.pt"
    torch.save({"w": torch.zeros(64)}, path)
    os.truncate(path, path.stat().st_size // 2)
    torch.load(path)


def _closed_port_url() -> str:
    from friction_lib.engines import free_port

    return f"http://127.0.0.1:{free_port()}/v1"


def _openai_down(tmp_path):
    import openai

    openai.OpenAI(base_url=_closed_port_url(), api_key="x", max_retries=0, timeout=5).models.list()


def _file_for_a_folder(tmp_path):
    (tmp_path / "notes").write_text("")
    open(tmp_path / "notes" / "x.jsonl", "w")


def _broken_pipe(tmp_path):
    read, write = os.pipe()
    os.close(read)
    try:
        os.write(write, b"x")
    finally:
        os.close(write)


# (name, a function that meets the failure for real, words the message must have)
REAL_FAILURES = [
    ("not-utf-8", lambda tmp: b"caf\xe9".decode("utf-8"), "not UTF-8 text"),
    ("missing-file", lambda tmp: open(tmp / "missing.jsonl"), f"No such file or folder at {{tmp}}{os.sep}missing"),
    ("folder-for-a-file", lambda tmp: open(tmp, "w"), "A folder is in the way at {tmp}"),
    ("file-for-a-folder", _file_for_a_folder, "A file is in the way at {tmp}"),
    ("damaged-safetensors", _truncated_safetensors, "safetensors file is damaged"),
    ("damaged-torch-file", _truncated_torch_file, "PyTorch file could not be read"),
    ("httpx-down", lambda tmp: __import__("httpx").get(_closed_port_url()), "Could not reach the server"),
    ("openai-down", _openai_down, "Could not reach the server"),
    ("requests-down", lambda tmp: __import__("requests").get(_closed_port_url(), timeout=5), "Could not reach"),
    ("hub-offline", lambda tmp: __import__("huggingface_hub").hf_hub_download("nobody/nothing", "x.json",
     cache_dir=tmp), "The Hugging Face Hub failed"),
    ("out-of-memory", lambda tmp: bytearray(1 << 62), "Out of memory"),
    ("broken-pipe", _broken_pipe, "output was closed"),
]  # fmt: skip


@pytest.mark.faults
@pytest.mark.parametrize(("name", "meet", "words"), REAL_FAILURES, ids=[c[0] for c in REAL_FAILURES])
def test_failures_of_the_environment_are_one_line_naming_the_fix(name, meet, words, tmp_path):
    with pytest.raises(Exception) as info:
        meet(tmp_path)
    text = cli.explain(info.value)
    assert text is not None and "\n" not in text, f"{name}: {info.value!r}"
    assert words.format(tmp=tmp_path) in text and text.rstrip().endswith(".")


@pytest.mark.faults
def test_a_bug_keeps_its_traceback(monkeypatch):
    """What FAILURES does not know is a bug: the CLI lets it through, traceback and all."""
    with pytest.raises(ValueError) as info:
        int("twelve")
    assert cli.explain(info.value) is None
    monkeypatch.setitem(cli.COMMANDS, "boom", ("json", "loads", "a command with a bug"))
    with pytest.raises(TypeError):
        cli.main(["boom"])  # json.loads([]) raises TypeError


@pytest.mark.faults
def test_an_explained_cause_explains_the_error_raised_from_it(tmp_path):
    try:
        try:
            open(tmp_path / "missing.yaml")
        except FileNotFoundError as exc:
            raise RuntimeError("could not start") from exc
    except RuntimeError as exc:
        assert "No such file or folder at" in (cli.explain(exc) or "")


@pytest.mark.faults
@pytest.mark.parametrize("how", ["flag", "environment"])
def test_debug_shows_the_traceback_then_the_message(how, tmp_path, monkeypatch, capsys):
    args = ["data", "curate", "data/micro/friction_micro.jsonl", "--out", str(tmp_path)]
    assert cli.main(args) == 2
    plain = capsys.readouterr().err
    assert "Traceback" not in plain and plain.startswith("friction data curate: --out")
    if how == "flag":
        args.append("--debug")
    else:
        monkeypatch.setenv("FRICTION_DEBUG", "1")
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback") and err.splitlines()[-1] == plain.strip()
