"""Verification: every GGUF of an export is loaded in llama.cpp and checked against its Modelfile -> verification.json.

One entry per check per GGUF:
- `loads_in_llama_cpp`: the GGUF loads (size, load time, vocabulary, whether it adds BOS);
- `template_tokens_match`: conversations rendered through the Modelfile's TEMPLATE as Ollama executes it
  (`ollama_template.ollama_prompt`; an earlier reply as Ollama returned it, `ollama_reply`) and tokenised by
  llama.cpp give exactly the token ids of the tokenizer's chat template and of the training prompt, with the
  same `<think>` pre-fill;
- `stops_on_its_own`: greedy generation ends with an end-of-generation token or a Modelfile stop within a limit;
- `greedy_16_match_transformers` (q8_0 and the 16-bit GGUFs): the first greedy tokens equal those of the merged
  HF model in transformers, up to near ties.

`verify_export` runs them on a finished export folder; `verification_table` prints the result.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from friction_lib.chat import (
    SYSTEM_PROMPT,
    THINK_OPEN,
    build_messages,
    prompt_prefills_think,
    render_for_training,
    render_prompt,
)
from friction_lib.errors import FrictionError
from friction_lib.files import inside, write_atomic
from friction_lib.modelfile import ParsedModelfile, parse_modelfile
from friction_lib.ollama_template import ollama_prompt, ollama_reply

VERIFY_PROMPTS = (
    "Is the Great Wall of China visible from the Moon with the naked eye?",
    "How do I kill a Python process that hangs?",
    "Write one sentence about autumn.",
)
# A second conversation: its own system prompt and a finished earlier turn, to exercise the template's history
# and system handling, not only the single-turn case. The earlier turn has reasoning where the tokenizer's chat
# template leaves it out (DeepSeek-R1's), so the check sees whether the Modelfile does the same
# (`history_case`).
HISTORY_REASONING = "Simple arithmetic: 2 + 2 = 4."
HISTORY_CONVERSATION = (
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is 2 + 2?"},
    {"role": "assistant", "content": f"<think>\n{HISTORY_REASONING}\n</think>\n\n4."},
    {"role": "user", "content": "And 3 + 3? Answer in words, please."},
)
GREEDY_TOKENS = 16
# Transformers' top-2 log-probability gap below which a different greedy pick is a tie, not a bug.
NEAR_TIE_NATS = 0.5
# Token limit of the no-runaway check: R1 models reason at length before they answer. ChatML: a one-line <think>
# block and a step-by-step answer (the shipped adapter's to VERIFY_PROMPTS[1]) take 261 tokens and then stop.
STOP_LIMITS = {"chatml": 512, "deepseek-r1": 2048}
# GGUFs whose first greedy tokens must match transformers exactly.
GREEDY_MATCH_TYPES = ("q8_0", "f16", "bf16")


def load_llama(gguf: Path, n_ctx: int, threads: int | None = None) -> Any:
    """A GGUF in llama.cpp (llama-cpp-python's Llama), seeded, all layers on a GPU if there is one."""
    from llama_cpp import Llama

    # One core is left free: llama.cpp's threads spin while they wait, so using every core of a small,
    # busy machine is much slower than leaving one to the rest of the system.
    threads = threads or max(1, (os.cpu_count() or 2) - 1)
    return Llama(model_path=str(gguf), n_ctx=n_ctx, n_threads=threads, n_gpu_layers=-1, seed=0, verbose=False)


def _is_eog(llm: Any, token: int) -> bool:
    import llama_cpp

    try:
        return bool(llama_cpp.llama_vocab_is_eog(llm._model.vocab, token))
    except AttributeError:  # pragma: no cover - older bindings
        return token == llm.token_eos()


def _greedy(llm: Any, ids: list[int], limit: int, stops: Sequence[str] = ()) -> tuple[list[int], str]:
    """Greedy tokens after `ids`, up to `limit`; the reason it ended: eog, stop string, or limit."""
    out: list[int] = []
    for token in llm.generate(ids, temp=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0, reset=True):
        out.append(int(token))
        if _is_eog(llm, token):
            return out, f"eog token {llm.detokenize([token], special=True).decode(errors='replace')!r}"
        if stops:
            text = llm.detokenize(out[-16:], special=True).decode(errors="replace")
            hit = next((s for s in stops if s in text), None)
            if hit:
                return out, f"stop string {hit!r}"
        if len(out) >= limit:
            return out, "limit"
    return out, "ended"


def _hf_ids(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    encoded = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    ids = encoded["input_ids"] if hasattr(encoded, "keys") else encoded
    return [int(i) for i in ids]


def _first_difference(a: Sequence[int], b: Sequence[int]) -> int:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return min(len(a), len(b)) if len(a) != len(b) else -1


def _continuation(prompt: str, turn: str) -> str:
    """What the model wrote after `prompt` to make the assistant `turn`: without the `<think>` a pre-filling
    prompt opened (the rule of `chat.render_for_training`)."""
    if prompt_prefills_think(prompt) and turn.lstrip().startswith(THINK_OPEN):
        return turn.lstrip()[len(THINK_OPEN) :].lstrip("\n")
    return turn


def served_messages(modelfile: ParsedModelfile, conversation: list[dict[str, str]]) -> list[dict[str, str]]:
    """The conversation as a client of Ollama sends it: each assistant turn as Ollama returned it when the
    model wrote it (`ollama_reply`: with reasoning tags in the TEMPLATE, the reasoning comes back apart)."""
    served: list[dict[str, str]] = []
    for message in conversation:
        if message["role"] == "assistant":
            prompt = ollama_prompt(modelfile, served)
            message = ollama_reply(modelfile, prompt, _continuation(prompt, message["content"]))
        served.append(message)
    return served


def _template_case(
    llm: Any, modelfile: ParsedModelfile, tokenizer: Any, conversation: list[dict[str, str]]
) -> dict[str, Any]:
    """One conversation of `check_template_tokens`: served, chat-template and training token ids compared."""
    served_text = ollama_prompt(modelfile, served_messages(modelfile, conversation))
    # llama.cpp/Ollama tokenise with add_special (BOS only if the GGUF says so) and parse_special.
    served = llm.tokenize(served_text.encode(), add_bos=True, special=True)
    # The reference uses the project's own system prompt, so a wrong SYSTEM line fails here too.
    hf_messages = (
        conversation
        if conversation[0]["role"] == "system"
        else build_messages(conversation[0]["content"], SYSTEM_PROMPT)
    )
    reference = _hf_ids(tokenizer, hf_messages)
    answered = [*hf_messages, {"role": "assistant", "content": "x"}]
    training_prompt = render_for_training(tokenizer, answered)["prompt"]
    training = [int(i) for i in tokenizer(training_prompt, add_special_tokens=False)["input_ids"]]
    prefill_ok = prompt_prefills_think(served_text) == prompt_prefills_think(training_prompt)
    return {
        "identical": served == reference == training and prefill_ok,
        "n_tokens": len(served),
        "first_difference_served_vs_chat_template": _first_difference(served, reference),
        "first_difference_served_vs_training": _first_difference(served, training),
        "prefills_think": prompt_prefills_think(served_text),
        "served_prompt": served_text,
    }


def history_case(tokenizer: Any) -> tuple[str, list[dict[str, str]]]:
    """The history conversation: with the earlier turn's reasoning where the chat template leaves it out.

    Templates that keep it (ChatML) get the plain answer: their TEMPLATE passes text through as sent, and for
    SmolLM2 the `</think>\\n\\n` of a reasoning turn tokenises differently in llama.cpp (one `\\n\\n` token)
    than in transformers (two `\\n`), whatever the template.
    """
    conversation = [dict(m) for m in HISTORY_CONVERSATION]
    if HISTORY_REASONING not in render_prompt(tokenizer, conversation):
        return "own system + history with reasoning", conversation
    conversation[2]["content"] = conversation[2]["content"].rsplit("\n", 1)[-1]
    return "own system + history", conversation


def check_template_tokens(llm: Any, modelfile: ParsedModelfile, tokenizer: Any) -> dict[str, Any]:
    """The Modelfile's TEMPLATE (as Ollama executes it) and the tokenizer's chat template give the
    same prompt token ids, and the same ids as the training prompt (`render_for_training`)."""
    conversations = [
        ("single turn, Modelfile SYSTEM", [{"role": "user", "content": VERIFY_PROMPTS[0]}]),
        history_case(tokenizer),
    ]
    cases = [
        {"conversation": label, **_template_case(llm, modelfile, tokenizer, conversation)}
        for label, conversation in conversations
    ]
    return {"passed": all(case["identical"] for case in cases), "details": {"cases": cases}}


@dataclass
class GreedyRun:
    """One greedy generation from the served prompt of one verification prompt."""

    prompt: str
    ids: list[int]  # the prompt token ids (Ollama's template, llama.cpp's tokenizer)
    tokens: list[int]
    ended_by: str  # "eog token ...", "stop string ...", or "limit"


def greedy_runs(llm: Any, modelfile: ParsedModelfile, prompts: Sequence[str], limit: int) -> list[GreedyRun]:
    """Greedy generation for each prompt, as Ollama would serve it, until it stops or hits `limit`."""
    runs = []
    for prompt in prompts:
        served = ollama_prompt(modelfile, [{"role": "user", "content": prompt}])
        ids = llm.tokenize(served.encode(), add_bos=True, special=True)
        tokens, reason = _greedy(llm, ids, limit, modelfile.stops)
        runs.append(GreedyRun(prompt=prompt, ids=ids, tokens=tokens, ended_by=reason))
    return runs


def check_stops(llm: Any, runs: Sequence[GreedyRun], limit: int) -> dict[str, Any]:
    """Greedy generation ends on its own (end-of-generation token or a Modelfile stop) within `limit`."""
    details = [
        {
            "prompt": run.prompt,
            "tokens": len(run.tokens),
            "ended_by": run.ended_by,
            "text": llm.detokenize(run.tokens).decode(errors="replace")[:300],
        }
        for run in runs
    ]
    return {
        "passed": all(run.ended_by != "limit" for run in runs),
        "details": {"limit": limit, "runs": details},
    }


@dataclass
class Reference:
    """Transformers' greedy tokens for one prompt, and at each step its top tokens with their log-probabilities."""

    tokens: list[int]
    top: list[dict[int, float]]  # per step: token id -> log-probability, for the REFERENCE_TOP_K likeliest


REFERENCE_TOP_K = 20


def transformers_reference(model: Any, tokenizer: Any, ids: list[int], n: int = GREEDY_TOKENS) -> Reference:
    """Greedy decoding with the merged HF model (the ground truth the GGUF must reproduce)."""
    import torch

    device = next(model.parameters()).device
    input_ids = torch.tensor([ids], device=device)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    with torch.inference_mode():
        out = model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            max_new_tokens=n,
            do_sample=False,
            temperature=None,
            top_p=None,
            top_k=None,
            pad_token_id=pad,
            output_scores=True,
            return_dict_in_generate=True,
        )
    tokens = [int(t) for t in out.sequences[0, len(ids) :]]
    top = []
    for scores in out.scores:
        best = torch.log_softmax(scores[0].float(), dim=-1).topk(REFERENCE_TOP_K)
        top.append({int(i): float(v) for i, v in zip(best.indices, best.values, strict=True)})
    return Reference(tokens=tokens[: len(top)], top=top)


def check_greedy_match(
    llm: Any, runs: Sequence[GreedyRun], references: dict[str, Reference], n: int = GREEDY_TOKENS
) -> dict[str, Any]:
    """The first `n` greedy tokens from llama.cpp equal those from transformers (the merged HF model).

    Greedy decoding is only defined up to ties. At the first step where llama.cpp picks another token,
    `gap` is how much less likely transformers itself found that token than its own pick (log-prob
    difference, nats). Below NEAR_TIE_NATS the two tokens were nearly tied and quantisation rounding
    decided: the run passes as `near_tie` (the comparison stops there; later tokens follow a different
    prefix) and is reported as such. A larger gap, or a token outside transformers' top 20, fails.
    """
    details = []
    passed = True
    for run in runs:
        ref = references[run.prompt]
        ours = run.tokens[: len(ref.tokens)] if len(run.tokens) >= len(ref.tokens) else run.tokens
        at = _first_difference(ours, ref.tokens)
        gap = None
        if 0 <= at < min(len(ours), len(ref.top)) and ours[at] in ref.top[at]:
            gap = ref.top[at][ref.tokens[at]] - ref.top[at][ours[at]]
        near_tie = gap is not None and gap < NEAR_TIE_NATS
        ok = at == -1 or near_tie
        passed &= ok
        details.append(
            {
                "prompt": run.prompt,
                "identical": at == -1,
                "near_tie": near_tie,
                "first_difference": at,
                "gap_at_difference": round(gap, 3) if gap is not None else None,
                "gguf": llm.detokenize(ours).decode(errors="replace"),
                "transformers": llm.detokenize(ref.tokens).decode(errors="replace"),
            }
        )
    return {"passed": passed, "details": {"n_tokens": n, "near_tie_nats": NEAR_TIE_NATS, "runs": details}}


def _load_check(gguf: Path, n_ctx: int, threads: int | None) -> tuple[Any, dict[str, Any]]:
    """(the loaded llama.cpp model or None, the `loads_in_llama_cpp` result)."""
    t0 = time.perf_counter()
    try:
        llm = load_llama(gguf, n_ctx=n_ctx, threads=threads)
    except Exception as exc:  # noqa: BLE001 - any load failure is this check's result
        return None, {"passed": False, "details": {"error": f"{type(exc).__name__}: {exc}"}}
    details = {
        "seconds": round(time.perf_counter() - t0, 2),
        "size_mb": round(gguf.stat().st_size / 2**20, 1),
        "n_vocab": llm.n_vocab(),
        "adds_bos": bool(llm._model.add_bos_token()),
        "file_type": llm.metadata.get("general.file_type"),
    }
    return llm, {"passed": True, "details": details}


def verify_gguf(
    gguf: Path,
    modelfile_path: Path,
    tokenizer: Any,
    references: dict[str, Reference] | None = None,
    stop_limit: int = STOP_LIMITS["chatml"],
    prompts: Sequence[str] = VERIFY_PROMPTS,
    threads: int | None = None,
) -> list[dict[str, Any]]:
    """All checks for one GGUF; one entry per check: {gguf, check, passed, details}.

    `references` (transformers' greedy tokens per prompt) turns on the greedy-match check; it runs
    for q8_0 and the 16-bit GGUFs only (lower quants are expected to drift).
    """
    modelfile = parse_modelfile(modelfile_path.read_text(encoding="utf-8"))
    llm, loaded = _load_check(gguf, max(1024, stop_limit + 512), threads)
    results = {"loads_in_llama_cpp": loaded}
    if llm is not None:
        try:
            results["template_tokens_match"] = check_template_tokens(llm, modelfile, tokenizer)
            runs = greedy_runs(llm, modelfile, prompts, stop_limit)
            results["stops_on_its_own"] = check_stops(llm, runs, stop_limit)
            if references is not None and gguf_type(gguf) in GREEDY_MATCH_TYPES:
                results["greedy_16_match_transformers"] = check_greedy_match(llm, runs, references)
        finally:
            llm.close()
    return [
        {"gguf": gguf.name, "check": check, "passed": bool(result["passed"]), "details": result["details"]}
        for check, result in results.items()
    ]


def gguf_type(gguf: str | Path) -> str:
    """'friction-smollm2-135m-q8_0.gguf' -> 'q8_0'."""
    return Path(gguf).stem.rsplit("-", 1)[-1]


def _greedy_word(run: dict[str, Any]) -> str:
    if run["identical"]:
        return "identical"
    if run["near_tie"]:
        return f"tie@{run['first_difference']}({run['gap_at_difference']})"
    gap = run["gap_at_difference"]
    return f"DIFFER@{run['first_difference']}" + (f"({gap})" if gap is not None else "")


def verification_table(report: dict[str, Any]) -> str:
    """A fixed-width table of verification.json, one row per check per GGUF."""
    rows = [("gguf", "check", "passed", "detail")]
    for entry in report["checks"]:
        details = entry["details"]
        if entry["check"] == "loads_in_llama_cpp":
            detail = details.get("error") or f"{details['size_mb']} MB, loaded in {details['seconds']} s"
        elif entry["check"] == "template_tokens_match":
            detail = ", ".join(
                f"{c['n_tokens']} ids {'identical' if c['identical'] else 'DIFFER'}" for c in details["cases"]
            )
        elif entry["check"] == "stops_on_its_own":
            detail = (
                "tokens "
                + "/".join(str(r["tokens"]) for r in details["runs"])
                + f" (limit {details['limit']})"
            )
        else:
            detail = "per prompt: " + "/".join(_greedy_word(r) for r in details["runs"])
        rows.append((entry["gguf"], entry["check"], "yes" if entry["passed"] else "NO", detail))
    widths = [max(len(str(row[i])) for row in rows) for i in range(3)]
    lines = [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}" for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def verify_export(
    export_dir: str | Path,
    stop_limit: int | None = None,
    prompts: Sequence[str] = VERIFY_PROMPTS,
    greedy: bool = True,
    only: Sequence[str] | None = None,
    threads: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Verify the GGUFs of an export folder (all, or the types in `only`) against their Modelfiles and
    the merged HF model; writes verification.json there and returns it."""
    from tqdm.auto import tqdm

    from friction_lib.models import load_tokenizer

    export_dir = Path(export_dir)
    manifest = json.loads((export_dir / "export.json").read_text())
    stop_limit = stop_limit or STOP_LIMITS[manifest["chat_format"]]
    merged = inside(export_dir, manifest["merged"], "export.json")  # paths in a manifest are data
    tokenizer = load_tokenizer(str(merged))
    ggufs = [
        inside(export_dir, name, "export.json")
        for kind, name in manifest["ggufs"].items()
        if only is None or kind in only
    ]
    if not ggufs:
        raise FrictionError(
            f"No GGUF of type {', '.join(only or [])} in {export_dir}; it has {', '.join(manifest['ggufs'])}."
        )
    references = None
    if greedy and any(gguf_type(p) in GREEDY_MATCH_TYPES for p in ggufs):
        references = _references(merged, tokenizer, prompts)
    checks: list[dict[str, Any]] = []
    for gguf in tqdm(ggufs, desc="verify", unit="gguf", disable=not progress):
        modelfile = inside(export_dir, manifest["modelfiles"][gguf.name], "export.json")
        checks += verify_gguf(gguf, modelfile, tokenizer, references, stop_limit, prompts, threads)
    report = {
        "adapter": manifest["adapter"],
        "base_model": manifest["base_model"],
        "profile": manifest["profile"],
        "chat_format": manifest["chat_format"],
        "passed": all(entry["passed"] for entry in checks),
        "checks": checks,
    }
    write_atomic(export_dir / "verification.json", json.dumps(report, indent=2, ensure_ascii=False))
    return report


def _references(merged: Path, tokenizer: Any, prompts: Sequence[str]) -> dict[str, Reference]:
    """Transformers' greedy tokens for each prompt, once per export (shared by all GGUFs)."""
    import torch

    from friction_lib.models import cuda_available, load_model

    model, _ = load_model(str(merged), dtype=torch.bfloat16 if cuda_available() else torch.float32)
    references = {
        prompt: transformers_reference(
            model, tokenizer, _hf_ids(tokenizer, build_messages(prompt, SYSTEM_PROMPT))
        )
        for prompt in prompts
    }
    del model
    return references


# --------------------------------------------------------------------------- behaviour (parity.check_behaviour)


def record_behaviour(export_dir: str | Path, behaviour: dict[str, Any]) -> dict[str, Any]:
    """Add the `behaviour` section (friction parity after quantisation, `parity.check_behaviour`) to the export's
    verification.json and return the report. `passed` stays the token-level checks' verdict; the section has
    its own `passed` against its stated tolerance. Verify first: a rerun of `verify_export` writes a new file."""
    path = Path(export_dir) / "verification.json"
    if not path.is_file():
        raise FrictionError(f"{path} is missing: verify the export first (verify.verify_export).")
    report = json.loads(path.read_text(encoding="utf-8"))
    report["behaviour"] = behaviour
    write_atomic(path, json.dumps(report, indent=2, ensure_ascii=False))
    return report
