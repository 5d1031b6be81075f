"""The optimiser every task uses: AdamW with an optional per-step cosine decay to zero."""

from __future__ import annotations

import lightning as L
import torch

SCHEDULERS = ("cosine", "none")


def check_scheduler(name: str) -> None:
    """Raise a clear error for an unknown scheduler name."""
    if name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; known: {', '.join(SCHEDULERS)}")


def adamw_with_schedule(module: L.LightningModule):
    """configure_optimizers for a module whose hparams hold lr, weight_decay and scheduler."""
    h = module.hparams
    opt = torch.optim.AdamW(module.parameters(), lr=h.lr, weight_decay=h.weight_decay)
    if h.scheduler == "none":
        return opt
    total = max(1, int(module.trainer.estimated_stepping_batches))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
