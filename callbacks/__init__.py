"""Lightning callbacks: figures, guards, evaluation hooks (imported as ctdl.callbacks)."""

from .finite_loss import FiniteLossGuard, NonFiniteLossError
from .transport_figure import TransportFigure

__all__ = ["FiniteLossGuard", "NonFiniteLossError", "TransportFigure"]
