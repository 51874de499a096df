"""The adapter folder: one owner for its file names, its config and training card, finding one, and merging it.

A LoRA adapter folder as `friction train` (or `train select`) writes it:
- `adapter_config.json` and `adapter_model.safetensors`: PEFT's two files;
- `training_card.json`: what the run did (profile, config, data sha256, losses, times);
- `loss.png` (and, after `train select`, `selection.json` and `selection.png`).

One merge serves training (`--merge`), export and evaluation: the base in 16-bit plus the adapter,
`merge_and_unload`. A pre-quantised 4-bit hub base cannot be merged losslessly, so its 16-bit original is
loaded instead (`merge_source`).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from friction_lib.errors import FrictionError
from friction_lib.files import new_file_mode, write_atomic, write_json
from friction_lib.models import BASE_MODEL_IDS, PROFILES, Profile, get_profile

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
ADAPTER_FILES = (CONFIG_NAME, WEIGHTS_NAME)
CARD_NAME = "training_card.json"
LOSS_PNG = "loss.png"
EXPORT_NAMES = {"cpu": "friction-smollm2-135m", "colab": "friction-r1-1.5b", "talk": "friction-r1-7b"}
TRAIN_HINT = "Train one with `friction train --profile cpu --out DIR`, or use the shipped one in models/."


def is_adapter(folder: str | Path) -> bool:
    return all((Path(folder) / name).is_file() for name in ADAPTER_FILES)


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FrictionError(
            f"{path} is damaged ({what} is not valid JSON: {exc}). Retrain, or copy the folder again."
        ) from None
    if not isinstance(data, dict):
        raise FrictionError(f"{path} is damaged ({what} should be a JSON object). Retrain the adapter.")
    return data


def read_adapter_config(adapter: str | Path) -> dict[str, Any]:
    """The adapter's PEFT config; a missing, weightless or damaged folder is a clear error."""
    path = Path(adapter)
    config = path / CONFIG_NAME
    if not path.is_dir() or not config.exists():
        raise FrictionError(f"No adapter at {path} ({CONFIG_NAME} is missing). {TRAIN_HINT}")
    if not any((path / name).exists() for name in (WEIGHTS_NAME, "adapter_model.bin")):
        raise FrictionError(f"The adapter at {path} has a config but no weights ({WEIGHTS_NAME}).")
    return _read_json(config, CONFIG_NAME)


def check_adapter_weights(adapter: str | Path) -> list[str]:
    """The tensor names in the adapter's safetensors file; a truncated or damaged file is a clear error."""
    weights = Path(adapter) / WEIGHTS_NAME
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(weights), framework="pt") as handle:
            return list(handle.keys())
    except (SafetensorError, OSError) as exc:
        raise FrictionError(
            f"{weights} is damaged ({exc}); it may have been cut off while copying or by a full disk. "
            "Retrain the adapter or copy it again."
        ) from None


def read_training_card(adapter: str | Path) -> dict[str, Any]:
    card = Path(adapter) / CARD_NAME
    return _read_json(card, CARD_NAME) if card.exists() else {}


def detect_profile(adapter: str | Path) -> str:
    """The profile an adapter was trained on: training_card.json, else its base model name, else cpu."""
    card = read_training_card(adapter)
    for candidate in (card.get("profile"), (card.get("config") or {}).get("profile")):
        if isinstance(candidate, str) and candidate in PROFILES:
            return candidate
    base = str(read_adapter_config(adapter).get("base_model_name_or_path") or "")
    for name, profile in PROFILES.items():
        if base and (base == profile.model_id or base == BASE_MODEL_IDS[name]):
            return name
    return "cpu"


def find_adapter(run_dir: str | Path | None = None, profile: str = "cpu") -> Path | None:
    """The newest trained adapter under `run_dir` for `profile`, else the shipped one in models/."""
    from friction_lib.models import repo_root

    if run_dir and Path(run_dir).is_dir():
        root = Path(run_dir)
        found = [
            p.parent
            for p in root.rglob(CONFIG_NAME)
            if not any(part.startswith(("export", "hub")) for part in p.relative_to(root).parts)
        ]
        found = [
            p for p in found if detect_profile(p) == profile and not read_training_card(p).get("untrained")
        ]
        if found:
            return max(found, key=lambda p: (p / CONFIG_NAME).stat().st_mtime)
    shipped = (repo_root() or Path.cwd()) / "models" / EXPORT_NAMES[profile]
    return shipped if (shipped / CONFIG_NAME).exists() else None


# --------------------------------------------------------------------------- writing adapter folders


def cast_adapter_weights(weights: Path, dtype: str = "bf16") -> Path:
    """Rewrite an adapter's safetensors file with its tensors as `dtype` (atomically; no-op if already so)."""
    import torch
    from safetensors.torch import load_file, save

    target = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[dtype]
    tensors = load_file(str(weights))
    if any(t.dtype != target for t in tensors.values()):
        write_atomic(
            weights, save({k: v.to(target).contiguous() for k, v in tensors.items()}, {"format": "pt"})
        )
    os.chmod(weights, new_file_mode())  # safetensors writes 0600; the adapter is an ordinary file
    return weights


def save_adapter(model: Any, folder: Path, dtype: str = "bf16") -> Path:
    """`save_pretrained` the LoRA adapter, with its weights stored as `dtype` (PEFT upcasts on load)."""
    model.save_pretrained(str(folder))
    (folder / "README.md").unlink(missing_ok=True)  # PEFT's empty model-card template; the card says more
    cast_adapter_weights(folder / WEIGHTS_NAME, dtype)
    return folder


def copy_adapter(source: Path, folder: Path, dtype: str = "bf16") -> Path:
    """Copy an adapter's two PEFT files (e.g. from a checkpoint) into `folder`, weights cast to `dtype`."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ADAPTER_FILES:
        shutil.copy2(source / name, folder / name)
    cast_adapter_weights(folder / WEIGHTS_NAME, dtype)
    return folder


# --------------------------------------------------------------------------- merging


def merge_source(profile: Profile) -> str:
    """What to load in 16-bit for the merge. A pre-quantised 4-bit hub base (bnb-4bit) cannot be
    merged losslessly, so its 16-bit original (BASE_MODEL_IDS) is loaded instead; same modules."""
    if profile.model_id == "embedded":
        return profile.name
    if "bnb-4bit" in profile.model_id or "4bit" in profile.model_id.lower():
        return BASE_MODEL_IDS[profile.name]
    return profile.model_id


def _check_all_adapter_weights_loaded(peft_model: Any, adapter: Path) -> None:
    """PEFT only warns when saved adapter tensors find no module; a silent no-op merge is worse."""
    if not (adapter / WEIGHTS_NAME).exists():
        return
    saved = check_adapter_weights(adapter)

    # Saved names drop the adapter name: ...q_proj.lora_A.weight is ...q_proj.lora_A.default.weight once
    # loaded, and a modules_to_save copy lives under .modules_to_save.default.
    def plain(key: str) -> str:
        return key.replace(".modules_to_save.default.", ".").replace(".default.", ".")

    names = {plain(key) for key in peft_model.state_dict()}
    missing = [key for key in saved if plain(key) not in names]
    if missing:
        raise FrictionError(
            f"The adapter at {adapter} does not match this base model: {len(missing)} of {len(saved)} "
            f"saved tensors have no matching module (e.g. {missing[0]}). Export with the --model "
            "profile the adapter was trained on."
        )


def merge_adapter(
    adapter: str | Path, base: str | Profile, out_dir: str | Path, dtype: str = "bfloat16"
) -> Path:
    """Base in 16-bit + adapter -> merge_and_unload -> a plain HF folder (weights + tokenizer).

    `base` is a profile (name or Profile; a 4-bit hub base becomes its 16-bit original) or a model folder or
    hub id. The tokenizer is the one saved next to the adapter, else the base's.
    """
    import torch

    from friction_lib.models import attach_adapter, load_model, load_tokenizer

    prof = base if isinstance(base, Profile) else get_profile(base) if base in PROFILES else None
    source = merge_source(prof) if prof is not None else str(base)
    adapter = Path(adapter)
    read_adapter_config(adapter)
    check_adapter_weights(adapter)
    model, base_tokenizer = load_model(source, quant="none", dtype=getattr(torch, dtype))
    peft_model = attach_adapter(model, adapter)
    _check_all_adapter_weights_loaded(peft_model, adapter)
    merged = peft_model.merge_and_unload()
    if (adapter / "tokenizer_config.json").exists():
        tokenizer = load_tokenizer(str(adapter))
    elif prof is None or prof.model_id == "embedded":
        tokenizer = base_tokenizer
    else:
        tokenizer = load_tokenizer(prof.model_id)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out)
    tokenizer.save_pretrained(out)
    config_path = out / "config.json"
    config = json.loads(config_path.read_text())
    config.pop("quantization_config", None)
    write_json(config_path, config)
    return out


def merge_for_inference(model: Any) -> Any:
    """Fold a loaded LoRA adapter into full-precision base weights: the same outputs, no adapter cost per step.

    A 4-bit (quantised) base is left as it is: merging into it would round the adapter away.
    """
    if not hasattr(model, "merge_and_unload") or getattr(model, "is_loaded_in_4bit", False):
        return model
    if getattr(getattr(model, "base_model", None), "is_loaded_in_4bit", False):
        return model
    merged = model.merge_and_unload()
    merged.eval()
    return merged


# --------------------------------------------------------------------------- a small real adapter for tests

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def make_test_adapter(
    out_dir: str | Path,
    r: int = 8,
    target_modules: Sequence[str] = LORA_TARGETS,
    scale: float = 0.02,
    seed: int = 0,
    model: Any = None,
) -> Path:
    """A real (untrained) LoRA adapter on the embedded model, for tests and for a first look at export.

    LoRA initialises B to zero, which would make the merge a no-op; B is filled with small seeded
    noise so the merged weights differ from the base. It is not a friction model: it only makes
    the export path exercisable before a trained adapter exists.
    """
    import torch
    from peft import LoraConfig, get_peft_model

    from friction_lib.models import load_model

    if model is None:
        model, _ = load_model("cpu")
    config = LoraConfig(r=r, lora_alpha=2 * r, target_modules=list(target_modules), task_type="CAUSAL_LM")
    with torch.random.fork_rng(
        devices=[]
    ):  # A's init draws from the global generator: seed it, then restore it
        torch.manual_seed(seed)
        peft_model = get_peft_model(model, config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * scale)
    out = Path(out_dir)
    peft_model.save_pretrained(str(out))
    peft_model.unload()  # give the caller its base model back without LoRA layers
    write_json(
        out / CARD_NAME,
        {
            "profile": "cpu",
            "untrained": True,
            "note": "test adapter from make_test_adapter",
            "r": r,
            "seed": seed,
        },
    )
    return out
