"""The `friction` command: a thin dispatcher over the step modules.

Each command is one function `cli_<name>(argv) -> int` in the module that owns the step; it builds
its own argparse parser. Problems the user can fix are printed as one clear message with a non-zero
exit, never as a traceback: a FrictionError (exit 2), and the failures of the environment in `FAILURES`
(a full or read-only disk, a permission, a missing path, bytes that are not UTF-8, a damaged weights file,
a server or hub that cannot be reached, no memory left; exit 1). Anything else is a bug and keeps its
traceback. `friction --debug ...` or FRICTION_DEBUG=1 prints the traceback of every failure.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import traceback
from pathlib import Path

# command words -> (module, function, one-line help). Two-word commands come first in lookup.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "serve": ("friction_lib.serve", "cli_serve", "start llama.cpp's OpenAI-compatible server on 127.0.0.1"),
    "chat": (
        "friction_lib.engines",
        "cli_chat",
        "ask one prompt through an engine; prints reasoning and answer",
    ),
    "prepare": ("friction_lib.models", "cli_prepare", "write the embedded model once as an HF folder"),
    "demo": ("friction_lib.demo", "cli_demo", "A/B/C comparison in the terminal: base, prompted, tuned"),
    "generate": (
        "friction_lib.generate",
        "cli_generate",
        "generate friction records via any OpenAI endpoint",
    ),
    "data curate": ("friction_lib.curate", "cli_curate", "validate, deduplicate and filter a dataset"),
    "data pairs": (
        "friction_lib.pairs",
        "cli_pairs",
        "build DPO preference pairs (chosen vs rejected) from the data",
    ),
    "data push": ("friction_lib.publish", "cli_data_push", "stage (or push) the dataset to the HF Hub"),
    "train": ("friction_lib.train", "cli_train", "QLoRA fine-tuning (CPU or CUDA, one code path)"),
    "train select": (
        "friction_lib.train_select",
        "cli_train_select",
        "keep the checkpoint with the best J on the dev set",
    ),
    "eval": ("friction_lib.evaluate", "cli_eval", "score a model on eval prompts; results.json + plots"),
    "eval compare": ("friction_lib.evaluate", "cli_eval_compare", "side-by-side table of eval runs"),
    "eval validate-classifier": (
        "friction_lib.evaluate",
        "cli_validate_classifier",
        "agreement of the rule classifier with XSTest human labels",
    ),
    "export": ("friction_lib.export", "cli_export", "merge, GGUF, quantise, Modelfile, verify"),
    "publish": (
        "friction_lib.publish",
        "cli_publish",
        "stage (or push) the model and its card to the HF Hub",
    ),
    "workshop": ("friction_lib.workshop", "cli_workshop", "run the notebook chain with papermill"),
    "rehearsal": (
        "friction_lib.rehearsal",
        "cli_rehearsal",
        "the talk path on CPU: tiny R1 model, QLoRA, GGUF, verify, serve",
    ),
    "bench generate": (
        "friction_lib.bench",
        "cli_bench_generate",
        "tokens/s: per-prompt vs batched vs llama.cpp",
    ),
    "bench generate-data": (
        "friction_lib.bench",
        "cli_bench_generate_data",
        "records/min at concurrency 1 and 4",
    ),
}


_HUB = frozenset(
    {"HfHubHTTPError", "OfflineModeIsEnabled", "LocalEntryNotFoundError", "RepositoryNotFoundError"}
)
_NETWORK = frozenset(
    {"TransportError", "NetworkError", "TimeoutException", "APIConnectionError", "ConnectionError", "Timeout",
     "URLError", "MaxRetryError", "TimeoutError"}
)  # fmt: skip
_ANY: frozenset[str] = frozenset()

# Failures a user can cause and fix, most specific first: (class names, one of which must be in the exception's
# MRO, or _ANY; a regex its text must match, "" for any text; the message). {where} is " at PATH" when the error
# names a file, {detail} the first line of its own text.
FAILURES: tuple[tuple[frozenset[str], str, str], ...] = (
    (_ANY, r"No space left on device|os error 28|Errno 28", "The disk is full{where} ({detail}). Free some "
     "space or write to another disk, then run the same command again: what was finished is kept."),
    (frozenset({"BrokenPipeError"}), "", "The output was closed before the command finished (a pipe such as "
     "`| head`). Run it without the pipe to see everything."),
    (_HUB, "", "The Hugging Face Hub failed ({detail}). Check the network, the repo id and HF_TOKEN; offline, "
     "use the cpu profile (HF_HUB_OFFLINE=1)."),
    (_NETWORK, "", "Could not reach the server ({detail}). Check --base-url and that the server runs (e.g. "
     "`friction serve`), or raise --timeout."),
    (frozenset({"PermissionError"}), "", "Permission denied{where}. Choose a file or folder you may use, or "
     "fix its permissions."),
    (frozenset({"OSError"}), r"Read-only file system|Errno 30", "The file system is read-only{where}. Choose "
     "an output on a writable disk."),
    (frozenset({"FileNotFoundError"}), "", "No such file or folder{where}. Check the path."),
    (frozenset({"OSError"}), r"Errno (21|16)\]", "A folder is in the way{where}: the command needs a file "
     "name there. Give a file path."),
    (frozenset({"NotADirectoryError"}), "", "A file is in the way{where}: the command needs a folder there. "
     "Check the path."),
    (frozenset({"UnicodeDecodeError"}), "", "A file is not UTF-8 text ({detail}). Save it as UTF-8 "
     "(FRICTION_DEBUG=1 shows where it was read)."),
    (frozenset({"SafetensorError"}), "", "A .safetensors file is damaged or cut off ({detail}). Make it again "
     "with the command that wrote it (friction train or train select)."),
    (frozenset({"RuntimeError"}), r"PytorchStream(Reader|Writer)|inline_container", "A PyTorch file could not "
     "be read or written ({detail}). A full disk? Free some space; a damaged checkpoint: run friction train "
     "again, it resumes from the last complete one."),
    (frozenset({"OutOfMemoryError", "MemoryError"}), "", "Out of memory ({detail}). Lower batch_size or "
     "max_length in the config, or use a smaller profile or model."),
)  # fmt: skip


def explain(exc: BaseException) -> str | None:
    """The one-line message for a failure the user can fix (`FAILURES`), or None: a bug, keep the traceback.

    An exception raised `from` another is explained by the first one in that chain that `FAILURES` knows.
    """
    seen: BaseException | None = exc
    for _ in range(4):
        if seen is None:
            return None
        names = {cls.__name__ for cls in type(seen).__mro__}
        text = str(seen)
        for classes, pattern, message in FAILURES:
            if (not classes or classes & names) and (not pattern or re.search(pattern, text)):
                detail = (text.strip().splitlines() or [type(seen).__name__])[0][:200]
                return message.format(where=_where(seen), detail=detail)
        seen = seen.__cause__
    return None


_OWN_FILE = re.compile(r"^\..*\.(tmp|lock)$|\.partial-\d+-")  # files.write_atomic's, output_lock's, staging's


def _where(exc: BaseException) -> str:
    """` at PATH`: the path the error names (a rename's target), or for the tool's own temporary or lock file
    beside an output, the folder it was in; "" when the error names no path."""
    name = getattr(exc, "filename2", None) or getattr(exc, "filename", None)
    if not name:
        return ""
    path = Path(str(name))
    return f" at {path.parent if _OWN_FILE.search(path.name) else path}"


def debug_wanted(argv: list[str]) -> bool:
    """`--debug` anywhere on the command line (it is removed), or FRICTION_DEBUG=1."""
    found = "--debug" in argv
    while "--debug" in argv:
        argv.remove("--debug")
    return found or os.environ.get("FRICTION_DEBUG", "") not in ("", "0")


def _end_progress_bars() -> None:
    """Close the tqdm bars a failure left open: each ends its line, so the message starts on a line of its own."""
    std = sys.modules.get("tqdm.std")
    for bar in list(getattr(getattr(std, "tqdm", None), "_instances", None) or ()):
        bar.close()


def usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = [
        "usage: friction [--debug] <command> [options]   (friction <command> --help for its options)",
        "",
    ]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, _, help_) in COMMANDS.items()]
    return "\n".join(lines)


def resolve(argv: list[str]) -> tuple[str, list[str]] | None:
    if len(argv) >= 2 and f"{argv[0]} {argv[1]}" in COMMANDS:
        return f"{argv[0]} {argv[1]}", argv[2:]
    if argv and argv[0] in COMMANDS:
        return argv[0], argv[1:]
    return None


def main(argv: list[str] | None = None) -> int:
    from friction_lib.errors import FrictionError

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = debug_wanted(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    found = resolve(argv)
    if found is None:
        groups = {name.split()[0] for name in COMMANDS}
        hint = f" Try `friction {argv[0]} --help`." if argv[0] in groups else ""
        print(f"friction: unknown command {' '.join(argv[:2])!r}.{hint}\n\n{usage()}", file=sys.stderr)
        return 2
    name, rest = found
    module_name, function, _ = COMMANDS[name]
    try:
        handler = getattr(importlib.import_module(module_name), function)
        return int(handler(rest) or 0)
    except KeyboardInterrupt:
        print(f"\nfriction {name}: interrupted; what was already written is kept.", file=sys.stderr)
        return 130
    except Exception as exc:
        failure = exc
    known = str(failure) if isinstance(failure, FrictionError) else explain(failure)
    if known is None:
        raise failure  # a bug: its traceback is what a report needs
    _end_progress_bars()
    if debug:
        traceback.print_exception(failure)
    print(f"friction {name}: {known}", file=sys.stderr)
    return 2 if isinstance(failure, FrictionError) else 1


if __name__ == "__main__":
    sys.exit(main())
