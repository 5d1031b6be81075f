"""Lightning callbacks: figures, guards, evaluation hooks (imported as ctdl.callbacks)."""

from .density_figure import DensityFigure
from .finite_loss import FiniteLossGuard, NonFiniteLossError
from .transport_figure import TransportFigure

__all__ = ["DensityFigure", "FiniteLossGuard", "NonFiniteLossError", "TransportFigure"]
