"""Hugging Face releases: stage the model (adapter, merged weights, GGUFs) or the dataset, and push it.

- `friction publish --repo USER/NAME [--what adapter,merged,gguf] [--push] [--public]` stages a model
  repository: the adapter at the root (so `PeftModel.from_pretrained(base, "USER/NAME")` works), the
  merged model at the root or in `merged/`, the GGUFs with their Modelfiles and verification.json in
  `gguf/`, and a README.md model card (`friction_lib.cards`).
- `friction data push --repo USER/NAME [--push] [--public]` stages a dataset repository: one parquet
  file per split (the split `friction train` makes, `train_data.split_records`) and a dataset card.

Both are dry runs by default: they write the exact folder that would be uploaded and print it. With
`--push` they need `HF_TOKEN` in the environment (checked before anything is written) and create the
repository private unless `--public`. `upload_folder` with hf_xet resumes an interrupted upload when
the same command is run again; an unreachable hub is a one-line error and the staged folder is kept.

Paths in an export folder's export.json are data: they must stay inside that folder (`files.inside`), and the
adapter path it records is never followed. Staging writes only new files inside a staging folder that the
tool made (`files.staged_folder`); a foreign `--stage` folder is refused.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from friction_lib.adapters import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME, check_adapter_weights
from friction_lib.cards import build_dataset_card, build_model_card
from friction_lib.errors import FrictionError
from friction_lib.files import MARKER, inside, made_by_tool, staged_folder
from friction_lib.models import BASE_MODEL_IDS, PROFILES

WHAT_CHOICES = ("adapter", "merged", "gguf")
# Copied from the adapter folder as they are (adapter_config.json is rewritten: the hub id of the base).
ADAPTER_COPIED = (
    WEIGHTS_NAME,
    "adapter_model.bin",
    CARD_NAME,
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
)
# export.json's ollama_name goes into the card's shell commands: a plain name only
OLLAMA_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
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


def hub_arguments(parser: Any, kind: str) -> None:
    """The options both release commands share: where to stage, whether to upload, and the visibility."""
    parser.add_argument(
        "--stage", help=f"staging folder (default runs/hub/{kind}-USER__NAME; only one friction made)"
    )
    parser.add_argument("--push", action="store_true", help="upload (needs HF_TOKEN)")
    parser.add_argument("--public", action="store_true", help="make the repository public (default private)")


def report(folder: Path, url: str | None, public: bool, push_command: str) -> None:
    print(f"Staged {folder}:\n{folder_listing(folder)}")
    if url:
        print(f"Uploaded to {url} ({'public' if public else 'private'}).")
    else:
        print(f"Dry run: nothing uploaded. To upload: HF_TOKEN=... {push_command}")


def hub_error(exc: Exception, endpoint: str, folder: Path, token: str) -> str:
    """One line for a failed upload: what went wrong and the fix; the token never appears in it."""
    import httpx2
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
    if isinstance(exc, (httpx2.TransportError, ConnectionError, TimeoutError)):
        return (
            f"Could not reach the Hugging Face Hub at {endpoint} ({type(exc).__name__}: {detail}). Check the "
            f"network connection (and HF_ENDPOINT if you set it). {kept}"
        )
    return f"The upload to {endpoint} failed ({type(exc).__name__}: {detail}). {kept}"


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


# --------------------------------------------------------------------------- the eval results for the card


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


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FrictionError(
            f"{path} is damaged (not valid JSON: {exc}). Run `friction export` again."
        ) from None


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
    manifest = _load_json(inside(export_dir, "export.json", str(path)))
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
    if "adapter" in what and (adapter_dir is None or not (adapter_dir / CONFIG_NAME).exists()):
        recorded = manifest.get("adapter") if manifest else None
        note = (
            f" export.json records {recorded!r} as provenance only; it is never followed." if recorded else ""
        )
        raise FrictionError(
            f"--what adapter needs --adapter DIR with {CONFIG_NAME} (got {adapter_dir}).{note}"
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
    if not sources.training_card and export_dir is not None and (export_dir / CARD_NAME).exists():
        sources.training_card = _load_json(inside(export_dir, CARD_NAME, "the export folder"))
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
    check_adapter_weights(adapter_dir)  # a truncated adapter must not reach --push
    for name in ADAPTER_COPIED:
        if (adapter_dir / name).exists():
            stage_file(stage, adapter_dir / name, name)
    # The hub id of the base, not the trainer's local path (the Hub's model tree reads this field).
    adapter_config = json.loads((adapter_dir / CONFIG_NAME).read_text())
    adapter_config["base_model_name_or_path"] = BASE_MODEL_IDS[profile]
    stage_text(stage, CONFIG_NAME, json.dumps(adapter_config, indent=2))


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
        data = _load_json(inside(export_dir, name, "the export folder"))
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
    hub_arguments(parser, "model")
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
    report(folder, url, args.public, f"friction publish --repo {args.repo} --what {args.what} ... --push")
    return 0


# --------------------------------------------------------------------------- dataset


def record_row(record: Any) -> dict[str, Any]:
    """One dataset row: the record's fields plus `messages`, the training conversation (for TRL)."""
    from friction_lib.schema import to_messages

    row = record.model_dump(mode="json")
    row["messages"] = to_messages(record)
    return row


def build_dataset(records: Sequence[Any], validation_fraction: float = 0.1, seed: int = 42) -> Any:
    """Train and validation splits of `records`: the split `friction train` makes (`train_data.split_records`)."""
    from datasets import Dataset, DatasetDict

    from friction_lib.train_data import split_records

    if not 0 < validation_fraction < 1:
        raise FrictionError(f"--validation must be between 0 and 1, got {validation_fraction}.")
    train, validation = split_records(list(records), validation_fraction, seed)
    train_set = Dataset.from_list([record_row(r) for r in train])
    validation_set = Dataset.from_list([record_row(r) for r in validation], features=train_set.features)
    return DatasetDict({"train": train_set, "validation": validation_set})


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
        card = build_dataset_card(repo_id, dataset, source, license_id, None, validation_fraction, seed)
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
    hub_arguments(parser, "dataset")
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
    report(folder, url, args.public, f"friction data push --repo {args.repo} --push")
    return 0
