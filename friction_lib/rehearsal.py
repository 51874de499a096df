"""A CPU rehearsal of the talk path: everything the 7B talk model goes through, on a tiny model, in minutes.

`friction rehearsal --out DIR` (`make rehearsal`) runs the talk profile's own code end to end, except CUDA and
Unsloth's kernels:

1. `build_tiny_r1`: a seeded, random-weight Qwen2ForCausalLM (DeepSeek-R1-Distill-Qwen's architecture: 152,064
   tokens, its RoPE base and norm epsilon; 2 layers, hidden size 256 so q4_k_m quantises without fallbacks)
   saved with the real R1 tokenizer (`r1_tokenizer`, chat template revision of your choice);
2. `check_render`: one micro record rendered with that tokenizer's template and its label mask;
3. `train.train`: a few QLoRA steps (NF4 through bitsandbytes' CPU backend, the transformers + PEFT + TRL path)
   on data/micro/friction_micro.jsonl with the talk profile's settings, less what `CPU_CHANGES` lists (a local
   model folder lets the talk profile start without CUDA: the GPU check is for the profile's own 7B);
4. `export.export_adapter(profile="talk", base_model=...)`: merge, GGUF conversion (qwen2), q4_k_m, the
   Modelfile in the chat format derived from the tokenizer, and `verify.verify_export` through llama.cpp;
5. `serve_one_chat`: `friction serve`'s server (`engines.start_server`) answering one chat request through the
   openai client (`engines.OpenAIEngine`).

It writes rehearsal.json (everything) and rehearsal.md (the verification table and the timings) into --out,
last: a folder without them is a run that did not finish.

A random model never stops on its own, and the verification checks that the model does. So the weights are
random except a few reserved directions of the residual stream that script one reply: after any prompt the
model writes `<think>\\n</think>\\n\\nNo.` and then its end-of-sentence token (after a prompt that pre-fills
`<think>\\n`, it continues from there). The layers never write to those directions, so the script survives
training, conversion and quantisation, and the served answer can be checked exactly.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

from friction_lib.chat import THINK_CLOSE, THINK_OPEN, prompt_prefills_think, render_for_training
from friction_lib.errors import FrictionError
from friction_lib.files import check_output_folder, mark_output, output_lock, write_atomic

SCRIPT = (THINK_OPEN, "\n", THINK_CLOSE, "\n\n", "No", ".")  # the scripted reply, one token each
SCRIPTED_ANSWER = "No."
# 2 layers, hidden size 256 (K-quant blocks are 256 wide, so q4_k_m quantises every tensor), 4 heads of 64.
TINY_LAYERS, TINY_HIDDEN, TINY_FFN, TINY_HEADS, TINY_KV_HEADS = 2, 256, 512, 4, 2
SCRIPT_SCALE = 2.0
# The talk profile's settings that a 2-core CPU cannot run or need not repeat, and why.
CPU_CHANGES: dict[str, tuple[Any, str]] = {
    "max_steps": (2, "a handful of optimizer steps, not 7 epochs"),
    "max_length": (512, "the micro records are far shorter (the report's `truncated` is 0)"),
    "compare_prompts": (False, "a random model's answers before and after say nothing"),
}
MICRO_DATA = Path("data") / "micro" / "friction_micro.jsonl"


def _tiny_config(tokenizer: Any) -> Any:
    from transformers import Qwen2Config

    from friction_lib.r1_tokenizer import r1_metadata

    meta = r1_metadata()
    return Qwen2Config(
        vocab_size=len(meta["tokenizer.ggml.tokens"]),
        hidden_size=TINY_HIDDEN,
        intermediate_size=TINY_FFN,
        num_hidden_layers=TINY_LAYERS,
        num_attention_heads=TINY_HEADS,
        num_key_value_heads=TINY_KV_HEADS,
        max_position_embeddings=int(meta["qwen2.context_length"]),
        rope_parameters={"rope_type": "default", "rope_theta": float(meta["qwen2.rope.freq_base"])},
        rms_norm_eps=float(f"{meta['qwen2.attention.layer_norm_rms_epsilon']:.6g}"),  # float32 in the GGUF
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def script_reply(model: Any, script: list[int], eos: int, scale: float = SCRIPT_SCALE) -> None:
    """Reserve residual directions 0..len(script) so that greedy decoding writes `script`, then `eos`.

    Direction 0 is set in every token's embedding but the script's; direction k+1 in the k-th script token's
    only. The output head maps direction k to the script's k-th token (the last one to `eos`). Attention and MLP
    outputs are zeroed on those directions, so what the last position holds there is its own token's.
    """
    import torch

    reserved = list(range(len(script) + 1))
    with torch.no_grad():
        embed, head = model.model.embed_tokens.weight, model.lm_head.weight
        embed[:, reserved] = 0.0
        head[:, reserved] = 0.0
        embed[:, 0] = scale
        for k, token in enumerate(script):
            embed[token, 0] = 0.0
            embed[token, k + 1] = scale
        for k, token in enumerate([*script, eos]):
            head[token, k] = scale
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight[reserved, :] = 0.0
            layer.mlp.down_proj.weight[reserved, :] = 0.0


def build_tiny_r1(folder: str | Path, revision: str, seed: int = 0) -> Path:
    """A tiny random-weight R1-Distill-Qwen-shaped model with the real R1 tokenizer, saved as an HF folder."""
    import torch
    from transformers import Qwen2ForCausalLM

    from friction_lib.models import load_tokenizer
    from friction_lib.r1_tokenizer import r1_tokenizer_dir

    tokenizer = load_tokenizer(str(r1_tokenizer_dir(revision)))
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(_tiny_config(tokenizer))
    script = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in SCRIPT]
    if any(len(ids) != 1 for ids in script):
        raise FrictionError(f"The scripted reply {SCRIPT} is not one token per piece in this tokenizer.")
    script_reply(model, [ids[0] for ids in script], tokenizer.eos_token_id)
    folder = Path(folder)
    model.bfloat16().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def check_render(tokenizer: Any, data: Path) -> dict[str, Any]:
    """The first record rendered with the tokenizer's chat template, and what of it the loss sees."""
    from friction_lib.modelfile import r1_chat_format
    from friction_lib.schema import to_messages
    from friction_lib.train_data import encode_example, load_records, loss_text

    messages = to_messages(load_records(data)[0])
    parts = render_for_training(tokenizer, messages)
    example = encode_example(tokenizer, messages)
    n_prompt = example["prompt_tokens"]
    trained = loss_text(tokenizer, example)
    prefills = r1_chat_format(tokenizer).prefills_think
    passed = (
        prompt_prefills_think(parts["prompt"]) == prefills
        and all(label == -100 for label in example["labels"][:n_prompt])
        and example["labels"][n_prompt:] == example["input_ids"][n_prompt:]
        and trained.startswith("" if prefills else THINK_OPEN)
        and trained.endswith(tokenizer.eos_token)
    )
    return {
        "passed": passed,
        "prefills_think": prefills,
        "prompt_tokens": n_prompt,
        "loss_tokens": len(example["input_ids"]) - n_prompt,
        "prompt_end": parts["prompt"][-40:],
        "loss_start": trained[:60],
    }


def rehearsal_config(model_dir: Path) -> Any:
    """The talk profile's training settings on the tiny model, with `CPU_CHANGES`."""
    from friction_lib import train

    talk = {k: v for k, v in train.make_config("talk").to_dict().items() if k != "profile"}
    talk.update({key: value for key, (value, _why) in CPU_CHANGES.items()})
    return train.make_config("talk", **{**talk, "model": str(model_dir)})


def serve_one_chat(gguf: Path) -> dict[str, Any]:
    """`friction serve` on the GGUF, one chat request through the openai client, then the server stops."""
    from friction_lib.engines import OpenAIEngine, start_server
    from friction_lib.verify import VERIFY_PROMPTS

    server = start_server(gguf, port=0)
    try:
        engine = OpenAIEngine(base_url=server.base_url, concurrency=1)
        reply = engine.generate([VERIFY_PROMPTS[0]], max_new_tokens=32)[0]
    finally:
        server.stop()
    return {
        "passed": reply.answer == SCRIPTED_ANSWER,
        "model": engine.model_name,
        "raw": reply.raw,
        "answer": reply.answer,
        "completion_tokens": reply.completion_tokens,
    }


def _timed(seconds: dict[str, float], key: str, t0: float) -> float:
    now = time.perf_counter()
    seconds[key] = round(now - t0, 1)
    return now


def run_steps(folder: Path, revision: str, data: Path) -> dict[str, Any]:
    """Steps 1-5 into `folder`; returns the report."""
    from friction_lib import train
    from friction_lib.export import export_adapter
    from friction_lib.models import load_tokenizer

    seconds: dict[str, float] = {}
    t = t0 = time.perf_counter()
    model_dir = build_tiny_r1(folder / "tiny-r1", revision)
    t = _timed(seconds, "build", t)
    render = check_render(load_tokenizer(str(model_dir)), data)
    t = _timed(seconds, "render", t)
    trained = train.train(rehearsal_config(model_dir), data, folder / "adapter")
    t = _timed(seconds, "train", t)
    exported = export_adapter(
        trained.adapter_dir, folder / "export", profile="talk", quants="q4_k_m", base_model=model_dir
    )
    t = _timed(seconds, "export", t)
    seconds.update({f"export_{k}": round(v, 1) for k, v in exported.seconds.items()})
    served = serve_one_chat(exported.ggufs["q4_k_m"])
    _timed(seconds, "serve", t)
    seconds["total"] = round(time.perf_counter() - t0, 1)
    verification = exported.verification or {"passed": False, "checks": []}
    return {
        "passed": bool(render["passed"] and verification["passed"] and served["passed"]),
        "template_revision": revision,
        "render": render,
        "training": {
            "path": trained.card["path"]["described"],
            "steps": trained.card["steps"]["global_step"],
            "truncated": trained.card["dataset"]["truncated"],
            "cpu_changes": {key: {"value": v, "why": why} for key, (v, why) in CPU_CHANGES.items()},
            "final_eval_loss": trained.card["final_eval_loss"],
        },
        "verification": verification,
        "served": served,
        "seconds": seconds,
    }


def report_text(report: dict[str, Any]) -> str:
    """rehearsal.md: the verification table, the served answer and the timings."""
    from friction_lib.verify import verification_table

    timings = ", ".join(f"{key} {value:.0f} s" for key, value in report["seconds"].items())
    return "\n".join(
        [
            f"# Rehearsal of the talk path ({'passed' if report['passed'] else 'FAILED'})",
            "",
            f"Chat template revision: {report['template_revision']}; training: {report['training']['path']}; "
            f"{report['training']['steps']} steps.",
            f"Render and label mask: {'ok' if report['render']['passed'] else 'FAILED'} "
            f"({report['render']['prompt_tokens']} prompt tokens masked, {report['render']['loss_tokens']} trained).",
            "",
            "```",
            verification_table(report["verification"]),
            "```",
            "",
            f"Served (friction serve, openai client): {report['served']['raw']!r} -> answer "
            f"{report['served']['answer']!r} ({'ok' if report['served']['passed'] else 'FAILED'}).",
            "",
            f"Times: {timings}.",
            "",
        ]
    )


def run_rehearsal(
    out: str | Path, revision: str | None = None, data: str | Path | None = None, overwrite: bool = False
) -> dict[str, Any]:
    """The whole rehearsal into `out`; returns the report.

    It works in `out` itself, so that the paths its training card and export.json record stay true; the
    report is written last, so a folder without rehearsal.json is an unfinished run (kept, to look into).
    `overwrite` replaces only a folder a rehearsal made; one writer at a time.
    """
    from friction_lib.modelfile import TALK_TEMPLATE_REVISION
    from friction_lib.models import repo_root
    from friction_lib.r1_tokenizer import TEMPLATES

    revision = revision or TALK_TEMPLATE_REVISION
    if revision not in TEMPLATES:
        raise FrictionError(f"Unknown chat template revision {revision!r}. Valid: {', '.join(TEMPLATES)}.")
    data = Path(data) if data else (repo_root() or Path.cwd()) / MICRO_DATA
    folder = Path(out).resolve()
    check_output_folder(folder, overwrite, "rehearsal")
    with output_lock(folder, "rehearsal"):
        check_output_folder(folder, overwrite, "rehearsal")  # again, now that no one else writes
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        mark_output(folder, "rehearsal")
        report = run_steps(folder, revision, data)
        write_atomic(folder / "rehearsal.json", json.dumps(report, indent=2, ensure_ascii=False))
        write_atomic(folder / "rehearsal.md", report_text(report))
    return report


def cli_rehearsal(argv: list[str]) -> int:
    from friction_lib.r1_tokenizer import TEMPLATES

    parser = argparse.ArgumentParser(
        prog="friction rehearsal",
        description="Rehearse the talk path on CPU: a tiny random-weight R1-Distill-Qwen model with the real "
        "R1 tokenizer through render, QLoRA steps, merge, GGUF, q4_k_m, the Modelfile, verification and "
        "friction serve. Writes rehearsal.json and rehearsal.md.",
    )
    parser.add_argument("--out", default="runs/rehearsal", help="output folder (default runs/rehearsal)")
    parser.add_argument("--overwrite", action="store_true", help="replace an --out folder a rehearsal made")
    parser.add_argument("--revision", choices=TEMPLATES, help="R1 chat template revision (default 2025-02)")
    args = parser.parse_args(argv)
    report = run_rehearsal(args.out, args.revision, overwrite=args.overwrite)
    print(report_text(report))
    print(f"Report: {Path(args.out) / 'rehearsal.md'}")
    return 0 if report["passed"] else 1
