from __future__ import annotations

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
