"""The `friction` command: a thin dispatcher over the step modules.

Each command is one function `cli_<name>(argv) -> int` in the module that owns the step; it builds
its own argparse parser. Problems the user can fix (FrictionError) are printed as one clear
message with a non-zero exit, never as a traceback.
"""

from __future__ import annotations

import importlib
import sys

# command words -> (module, function, one-line help). Two-word commands come first in lookup.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "serve": ("friction_lib.engines", "cli_serve", "start llama.cpp's OpenAI-compatible server on 127.0.0.1"),
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


def usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = ["usage: friction <command> [options]   (friction <command> --help for its options)", ""]
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
    except FrictionError as exc:
        print(f"friction {name}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nfriction {name}: interrupted; what was already written is kept.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
