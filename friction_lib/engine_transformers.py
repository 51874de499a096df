"""The transformers engine: batched generation with left padding, greedy or sampled, and streaming.

`TransformersEngine.stream_rows` runs rows (a prompt, its system prompt and, on a PEFT model, its adapter) in
length-sorted batches and yields every row's text as it is generated (the demo's columns); `generate_each`
turns the finished rows into `Generation` records.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from friction_lib.chat import build_messages, prompt_prefills_think, render_prompt, system_prompt
from friction_lib.generation import (
    DEFAULT_MAX_NEW_TOKENS,
    Generation,
    check_fits,
    generate_all,
    make_generation,
    package_version,
)

BASE_ADAPTER = "__base__"  # PEFT's name for "no adapter" in a mixed-adapter batch


@dataclass(frozen=True)
class Row:
    """One prompt of a batch, with its system prompt and, on a PEFT model, the adapter that answers it."""

    prompt: str
    system: str | None = None
    adapter: str | None = None  # a PEFT adapter name, or BASE_ADAPTER; None: the model as loaded


@dataclass
class RowText:
    """A row's text so far. `seconds`, `batch` and `prompt_tokens` are set once the row is `done`: when it
    emits its stop token (streaming), else when its batch ends. A done row no longer changes."""

    text: str = ""
    tokens: int = 0  # new tokens, the stop token included
    prompt_tokens: int = 0
    prefilled: bool = False  # the rendered prompt opened the <think> block itself
    seconds: float = 0.0  # from its batched call's start to its own end (streaming: its stop token)
    batch: int = 0  # rows generated together in that call
    done: bool = False


def _step_streamer() -> Any:
    """A transformers streamer for a whole batch: each step's new token of every row, on a queue."""
    import queue

    from transformers.generation.streamers import BaseStreamer

    class StepStreamer(BaseStreamer):
        def __init__(self) -> None:
            self.queue: queue.Queue[list[int] | None] = queue.Queue()
            self.prompt_seen = False

        def put(self, value: Any) -> None:
            if not self.prompt_seen:  # generate() first sends the prompt itself
                self.prompt_seen = True
                return
            self.queue.put(value.reshape(-1).tolist())

        def end(self) -> None:
            self.queue.put(None)

    return StepStreamer()


def _token_steps(model: Any, inputs: Any, kwargs: dict[str, Any]) -> Iterator[list[list[int]]]:
    """`model.generate` in a thread; after each step, every row's new token ids so far (errors re-raised here)."""
    import torch

    streamer, failure = _step_streamer(), []

    def work() -> None:
        try:
            with torch.inference_mode():
                model.generate(**inputs, **kwargs, streamer=streamer)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            failure.append(exc)
            streamer.end()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    steps: list[list[int]] = [[] for _ in range(len(inputs["input_ids"]))]
    while (step := streamer.queue.get()) is not None:
        for row, token in enumerate(step):
            steps[row].append(token)
        yield steps
    thread.join()
    if failure:
        raise failure[0]


class TransformersEngine:
    """Batched generation with transformers. Prompts are sorted by length so each batch pads little."""

    name = "transformers"

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 16, model_name: str = "transformers"):
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.model_name = model_name
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token

    @classmethod
    def load(cls, model: str = "cpu", adapter: str | Path | None = None, batch_size: int = 16):
        from friction_lib.models import load_model

        loaded, tokenizer = load_model(model, adapter=adapter)
        name = model if adapter is None else f"{model}+{Path(adapter).name}"
        return cls(loaded, tokenizer, batch_size=batch_size, model_name=name)

    def _render(self, prompt: str, system: str | None) -> str:
        return render_prompt(self.tokenizer, build_messages(prompt, system_prompt(system)))

    def _gen_kwargs(self, max_new_tokens: int, temperature: float) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "max_new_tokens": max_new_tokens,
            "pad_token_id": self.tokenizer.pad_token_id,
            "eos_token_id": self.tokenizer.eos_token_id,
        }
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature, top_p=0.95)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        return kwargs

    def context_limit(self) -> tuple[int | None, str]:
        """(tokens the model can attend to, where that figure comes from); (None, "") when nothing says."""
        limits = []
        positions = getattr(self.model.config, "max_position_embeddings", None)
        if positions:
            limits.append((int(positions), "config.max_position_embeddings"))
        declared = getattr(self.tokenizer, "model_max_length", None)
        if declared and declared < 10**7:  # transformers' "no limit" placeholder is about 1e30
            limits.append((int(declared), "tokenizer.model_max_length"))
        return min(limits) if limits else (None, "")

    def _check_fits(self, rendered: Sequence[str], max_new_tokens: int) -> None:
        limit, source = self.context_limit()
        lengths = (len(self.tokenizer(text, add_special_tokens=False)["input_ids"]) for text in rendered)
        check_fits(lengths, max_new_tokens, limit, source)

    def settings(self, temperature: float = 0.0) -> dict[str, Any]:
        """What this engine runs: the model, its dtype and device, batch size, library versions, sampling."""
        parameter = next(self.model.parameters())
        sampling = {"do_sample": False} if temperature <= 0 else {"do_sample": True, "temperature": temperature,
                                                                   "top_p": 0.95}  # fmt: skip
        return {
            "engine": self.name,
            "model": self.model_name,
            "dtype": str(parameter.dtype).removeprefix("torch."),
            "device": str(parameter.device),
            "batch_size": self.batch_size,
            "versions": {name: package_version(name) for name in ("transformers", "torch", "peft")},
            "sampling": sampling,
        }

    def _decode(self, ids: list[int]) -> tuple[str, int]:
        """(text, tokens generated): everything up to and including the first stop token."""
        eos = self.tokenizer.eos_token_id
        n = ids.index(eos) + 1 if eos in ids else len(ids)
        return self.tokenizer.decode(ids[:n], skip_special_tokens=True), n

    def stream_rows(
        self,
        rows: Sequence[Row],
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        temperature: float = 0.0,
        stream: bool = True,
    ) -> Iterator[list[RowText]]:
        """Every row in batches of `batch_size`, sorted by length; yields the rows' texts (one list, in the
        order of `rows`) after every generated token when `stream`, and after every finished batch. Streaming,
        a row is `done` at its stop token, with its own seconds, while the rest of its batch goes on; it is not
        taken out of the batch (a decoding step reads all the weights whatever the batch, docs/demo.md).

        Rows may mix system prompts and, on a PEFT model, adapters (PEFT's `adapter_names`), so a base and
        a fine-tuned answer come out of one batch and one copy of the weights.
        """
        self.model.eval()
        rendered = [self._render(r.prompt, r.system) for r in rows]
        self._check_fits(rendered, max_new_tokens)
        order = sorted(range(len(rows)), key=lambda i: len(rendered[i]))
        out = [RowText(prefilled=prompt_prefills_think(text)) for text in rendered]
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            yield from self._batch(
                rows, [rendered[i] for i in idx], idx, out, max_new_tokens, temperature, stream
            )

    def _batch(
        self,
        rows: Sequence[Row],
        texts: list[str],
        idx: list[int],
        out: list[RowText],
        max_new_tokens: int,
        temperature: float,
        stream: bool,
    ) -> Iterator[list[RowText]]:
        import torch

        device = next(self.model.parameters()).device
        inputs = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        kwargs = self._gen_kwargs(max_new_tokens, temperature)
        if any(rows[i].adapter for i in idx):
            kwargs["adapter_names"] = [rows[i].adapter or BASE_ADAPTER for i in idx]
        prompt_tokens = inputs["attention_mask"].sum(dim=1).tolist()
        t0 = time.perf_counter()
        steps: list[list[int]] = []
        if stream:
            for steps in _token_steps(self.model, inputs, kwargs):
                seconds = time.perf_counter() - t0
                for row, (i, ids) in enumerate(zip(idx, steps, strict=True)):
                    if not out[i].done:  # a row that emitted its stop token is final, with its own time
                        out[i] = self._row_text(ids, prompt_tokens[row], out[i].prefilled, seconds, len(idx))
                yield out
        else:
            with torch.inference_mode():
                generated = self.model.generate(**inputs, **kwargs)
            steps = generated[:, inputs["input_ids"].shape[1] :].tolist()
        seconds = time.perf_counter() - t0
        for row, (i, ids) in enumerate(zip(idx, steps, strict=True)):
            if not out[i].done:
                out[i] = self._row_text(ids, prompt_tokens[row], out[i].prefilled, seconds, len(idx), True)
        yield out

    def _row_text(
        self, ids: list[int], prompts: int, prefilled: bool, seconds: float, batch: int, end: bool = False
    ) -> RowText:
        """A row's text after these new token ids; done at its stop token, or at the end of the batch."""
        text, n = self._decode(ids)
        if end or self.tokenizer.eos_token_id in ids:
            return RowText(text, n, prompts, prefilled, seconds, batch, done=True)
        return RowText(text, n, prompts, prefilled)

    generate = generate_all

    def generate_each(
        self,
        prompts: Sequence[str],
        system: str | None = None,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        temperature: float = 0.0,
    ) -> Iterator[tuple[int, Generation]]:
        """(index, Generation) for each prompt, a batch at a time (length-sorted batches of `batch_size`)."""
        sent: set[int] = set()
        for out in self.stream_rows([Row(p, system) for p in prompts], max_new_tokens, temperature, False):
            for i, r in enumerate(out):
                if r.done and i not in sent:
                    sent.add(i)
                    yield i, make_generation(self.name, self.model_name, prompts[i], r.text, r.prefilled,
                                             r.prompt_tokens, r.tokens, r.seconds / max(1, r.batch))  # fmt: skip

    def stream(
        self,
        prompt: str,
        system: str | None = None,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        temperature: float = 0.0,
    ) -> Iterator[str]:
        """Yield text pieces as they are generated (for live demos)."""
        from transformers import TextIteratorStreamer

        self.model.eval()
        rendered = self._render(prompt, system)
        self._check_fits([rendered], max_new_tokens)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        inputs = self.tokenizer(rendered, return_tensors="pt", add_special_tokens=False)
        inputs = inputs.to(next(self.model.parameters()).device)
        kwargs = dict(**inputs, streamer=streamer, **self._gen_kwargs(max_new_tokens, temperature))
        thread = threading.Thread(target=self.model.generate, kwargs=kwargs, daemon=True)
        thread.start()
        yield from streamer
        thread.join()
