"""Lightning callbacks: figures, guards, evaluation hooks (imported as ctdl.callbacks)."""

from .finite_loss import FiniteLossGuard, NonFiniteLossError

__all__ = ["FiniteLossGuard", "NonFiniteLossError"]
