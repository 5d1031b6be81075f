"""The optimiser every task uses: AdamW with an optional per-step cosine decay to zero.

The cosine follows the run's progress p = max(step / max_steps, elapsed / max_time): a run capped
by wall-clock time (`--trainer.max_time`) anneals to zero at its time limit just as a run capped by
steps does at its last step, instead of stopping with the learning rate still high.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import lightning as L
import torch
from lightning.pytorch.callbacks import Timer

SCHEDULERS = ("cosine", "none")


def check_scheduler(name: str) -> None:
    """Raise a clear error for an unknown scheduler name."""
    if name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; known: {', '.join(SCHEDULERS)}")


def run_progress(trainer: L.Trainer) -> Callable[[int], float]:
    """p(step) in [0, 1]: the larger of the step fraction and, with a max_time, the time fraction."""
    total = max(1, int(trainer.estimated_stepping_batches))
    timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)

    def progress(step: int) -> float:
        p = step / total
        remaining = timer.time_remaining("train") if timer is not None else None
        if remaining is not None:
            elapsed = timer.time_elapsed("train")
            p = max(p, elapsed / max(elapsed + remaining, 1e-9))
        return min(1.0, p)

    return progress


def adamw_with_schedule(module: L.LightningModule):
    """configure_optimizers for a module whose hparams hold lr, weight_decay and scheduler:
    lr_k = lr * (1 + cos(pi p_k)) / 2 with p_k the run's progress (`run_progress`)."""
    h = module.hparams
    opt = torch.optim.AdamW(module.parameters(), lr=h.lr, weight_decay=h.weight_decay)
    if h.scheduler == "none":
        return opt
    progress = run_progress(module.trainer)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 0.5 * (1.0 + math.cos(math.pi * progress(k))))
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
