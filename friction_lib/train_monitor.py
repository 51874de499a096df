"""What a training run measures while it runs: peak memory, memory now, and a progress bar with the loss.

`PeakMemory` samples the process's resident memory (psutil) and, on CUDA, reads the max allocated; the progress
callback times the optimizer steps alone (no evaluation, no checkpoints) for the card's tokens per second.
"""

from __future__ import annotations

import threading
import time
from typing import Any


class PeakMemory:
    """Peak resident memory of this process (psutil, sampled) and, on CUDA, max allocated."""

    def __init__(self, interval: float = 0.2):
        import psutil

        self._process = psutil.Process()
        self.interval = interval
        self.peak_rss = self._process.memory_info().rss
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> int:
        rss = self._process.memory_info().rss
        self.peak_rss = max(self.peak_rss, rss)
        return rss

    def __enter__(self) -> PeakMemory:
        from friction_lib.models import cuda_available

        if cuda_available():
            import torch

            torch.cuda.reset_peak_memory_stats()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()

    @staticmethod
    def cuda_max_allocated() -> int | None:
        from friction_lib.models import cuda_available

        if not cuda_available():
            return None
        import torch

        return int(torch.cuda.max_memory_allocated())


def memory_now() -> dict[str, float]:
    import psutil

    figures = {"rss_mib": round(psutil.Process().memory_info().rss / 2**20, 1)}
    from friction_lib.models import cuda_available

    if cuda_available():
        import torch

        figures["cuda_allocated_mib"] = round(torch.cuda.memory_allocated() / 2**20, 1)
    return figures


def progress_callback_class() -> Any:
    from tqdm.auto import tqdm
    from transformers import TrainerCallback

    class LossProgress(TrainerCallback):
        """A tqdm bar over optimizer steps with the latest train and eval loss."""

        def __init__(self) -> None:
            self.bar: Any = None
            self.start_step = 0
            self.start_tokens = 0
            self.postfix: dict[str, str] = {}
            self.step_seconds = 0.0  # forward/backward/optimizer time only (no evaluation, no checkpoints)
            self.step_durations: list[float] = []
            self._step_started: float | None = None

        def on_train_begin(self, args, state, control, **kwargs):
            self.start_step = state.global_step
            self.start_tokens = state.num_input_tokens_seen
            self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc="train", unit="step")

        def on_step_begin(self, args, state, control, **kwargs):
            self._step_started = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if self._step_started is not None:
                self.step_durations.append(time.perf_counter() - self._step_started)
                self.step_seconds += self.step_durations[-1]
                self._step_started = None
            if self.bar is not None:
                self.bar.update(state.global_step - self.bar.n)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if self.bar is None or not logs:
                return
            if "loss" in logs:
                self.postfix["loss"] = f"{float(logs['loss']):.3f}"
            if "eval_loss" in logs:
                self.postfix["eval_loss"] = f"{float(logs['eval_loss']):.3f}"
                self.bar.write(f"step {state.global_step}: eval loss {float(logs['eval_loss']):.4f}")
            self.bar.set_postfix(self.postfix)

        def on_train_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.close()

    return LossProgress
