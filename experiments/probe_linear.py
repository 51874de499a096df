"""Is "push back or not" readable from the frozen base model at all? A linear probe on its hidden states.

For every training prompt (system prompt, chat template, then "<think>\\n") the base model's hidden states at
layers 10, 20 and 30 are taken at the last position and averaged over the prompt; a logistic regression
(L2, LBFGS) is fitted on the training prompts (push-back types vs `none`) and scored on the dev prompts
(`expected` != comply). A dev AUC near 0.5 would mean the 135M model cannot tell the two apart, whatever the
fine-tuning; well above it means the information is there for LoRA to use. About 5 minutes on one core.

    .venv/bin/python experiments/probe_linear.py [--train data/friction_train.jsonl] [--dev data/eval/dev.jsonl]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

LAYERS = (10, 20, 30)


def fit_logistic(x, y, lam: float):  # type: ignore[no-untyped-def]
    """L2-regularised logistic regression by LBFGS: returns (weights, bias)."""
    import torch

    w = torch.zeros(x.shape[1], requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=200)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(x @ w + b, y) + lam * (w**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach(), b.detach()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", default="data/friction_train.jsonl")
    parser.add_argument("--dev", default="data/eval/dev.jsonl")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM

    from friction_lib import chat, models

    torch.set_num_threads(args.threads)
    source, _ = models.resolve_model_source("cpu")
    tokenizer = models.load_tokenizer(source)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32).eval()

    def features(prompts: list[str]) -> np.ndarray:
        rows = []
        with torch.no_grad():
            for prompt in prompts:
                text = chat.render_prompt(tokenizer, chat.build_messages(prompt)) + "<think>\n"
                ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
                hidden = model(ids, output_hidden_states=True).hidden_states
                parts = [hidden[layer][0, -1] for layer in LAYERS] + [
                    hidden[layer][0].mean(0) for layer in LAYERS
                ]
                rows.append(torch.cat(parts).numpy())
        return np.array(rows)

    train = [json.loads(line) for line in Path(args.train).read_text(encoding="utf-8").splitlines()]
    dev = [json.loads(line) for line in Path(args.dev).read_text(encoding="utf-8").splitlines()]
    x_train = features([r["user_input"] for r in train])
    y_train = np.array([r["friction_type"] != "none" for r in train])
    x_dev = features([r["prompt"] for r in dev])
    y_dev = np.array([r["expected"] != "comply" for r in dev])
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    xt = torch.tensor((x_train - mean) / std, dtype=torch.float32)
    xd = torch.tensor((x_dev - mean) / std, dtype=torch.float32)
    yt = torch.tensor(y_train, dtype=torch.float32)
    print(f"{len(train)} training prompts ({int(y_train.sum())} push-back), {len(dev)} dev prompts")
    for lam in (1e-1, 1e-2, 1e-3):
        w, b = fit_logistic(xt, yt, lam)
        with torch.no_grad():
            s_dev, s_train = (xd @ w + b).numpy(), (xt @ w + b).numpy()
        pos, neg = s_dev[y_dev], s_dev[~y_dev]
        auc = float(np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg]))
        print(
            f"L2 {lam:g}: train accuracy {np.mean((s_train > 0) == y_train):.3f}, dev AUC {auc:.3f}, "
            f"dev accuracy {np.mean((s_dev > 0) == y_dev):.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
