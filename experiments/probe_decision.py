"""Does a checkpoint's first <think> token tell push-back prompts from the rest? A one-forward-pass probe.

Adapters trained with `reasoning: decision` open their <think> block with "Push back: ..." or "No push-back
needed." This script feeds each prompt (system prompt, chat template, then "<think>\\n"), reads the
log-probabilities of the two first tokens, "Push" and "No", and prints:

- AUC: how often a target prompt gets a higher Push-minus-No score than a control (0.5 = no discrimination);
- the share of targets and controls whose greedy first token is "Push", overall and per category.

It needs no generation, so it takes seconds per checkpoint where a dev eval takes minutes. Prompts are eval
JSONL (`expected` = comply for controls) or the training JSONL (`friction_type` = none for controls).

    .venv/bin/python experiments/probe_decision.py runs/a3/checkpoints/checkpoint-40 [more adapters] \
        [--prompts data/eval/dev.jsonl | --prompts data/friction_train.jsonl --sample 100] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import random
from collections import defaultdict
from pathlib import Path


def load_items(path: Path, sample: int = 0) -> list[tuple[str, bool, str]]:
    """(prompt, is_target, category) from eval or training JSONL; `sample` > 0: that many, seeded shuffle."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    if sample:
        random.Random(0).shuffle(rows)
        rows = rows[:sample]
    items = []
    for row in rows:
        if "expected" in row:
            items.append((row["prompt"], row["expected"] != "comply", row["category"]))
        else:
            items.append((row["user_input"], row["friction_type"] != "none", row["friction_type"]))
    return items


def auc(pos: list[float], neg: list[float]) -> float:
    """Probability that a random target outscores a random control (ties count half)."""
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / max(1, len(pos) * len(neg))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "adapters", nargs="+", help="adapter folders (e.g. runs/a3/checkpoints/checkpoint-40)"
    )
    parser.add_argument("--prompts", default="data/eval/dev.jsonl")
    parser.add_argument("--sample", type=int, default=0, help="score N prompts of the file (seeded shuffle)")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()

    import torch
    from peft import PeftModel

    from friction_lib import chat, models

    if args.threads:
        torch.set_num_threads(args.threads)
    items = load_items(Path(args.prompts), args.sample)
    source, _ = models.resolve_model_source("cpu")
    tokenizer = models.load_tokenizer(source)
    push, no = (tokenizer.encode(word, add_special_tokens=False)[0] for word in ("Push", "No"))
    texts = [chat.render_prompt(tokenizer, chat.build_messages(p)) + "<think>\n" for p, _, _ in items]
    for adapter in args.adapters:
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
        model = PeftModel.from_pretrained(model, adapter).eval()
        scores = []
        with torch.no_grad():
            for text in texts:
                ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
                logp = torch.log_softmax(model(ids).logits[0, -1], -1)
                scores.append(float(logp[push] - logp[no]))
        pos = [s for s, (_, target, _) in zip(scores, items, strict=True) if target]
        neg = [s for s, (_, target, _) in zip(scores, items, strict=True) if not target]
        print(
            f"{adapter}: AUC {auc(pos, neg):.3f}  first token 'Push' on "
            f"{sum(s > 0 for s in pos)}/{len(pos)} targets, {sum(s > 0 for s in neg)}/{len(neg)} controls"
        )
        per: dict[str, list[list[float]]] = defaultdict(lambda: [[], []])
        for s, (_, target, category) in zip(scores, items, strict=True):
            per[category][0 if target else 1].append(s)
        for category, (p, n) in sorted(per.items()):
            print(
                f"  {category:<14} targets Push {sum(s > 0 for s in p):>2}/{len(p):<3} "
                f"controls Push {sum(s > 0 for s in n):>2}/{len(n):<3}"
                + (f" AUC {auc(p, n):.2f}" if p and n else "")
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
