"""Lightning callbacks: figures, guards, evaluation hooks (imported as ctdl.callbacks)."""

from .density_figure import DensityFigure
from .diffusion_figure import DiffusionSamplesFigure, sample_grid_figure
from .ema import EMAWeights
from .figure import FigureCallback
from .finite_loss import FiniteLossGuard, NonFiniteLossError
from .pde_control_figure import PDEControlFigure
from .plateau import PlateauHalving
from .posterior_figure import PosteriorFigure
from .prediction_writer import PredictionWriter
from .run_checkpoint import RunCheckpoint
from .soc_figure import ControlFigure
from .transport_figure import TransportFigure

__all__ = [
    "ControlFigure",
    "FigureCallback",
    "DensityFigure",
    "DiffusionSamplesFigure",
    "sample_grid_figure",
    "EMAWeights",
    "FiniteLossGuard",
    "NonFiniteLossError",
    "PDEControlFigure",
    "PlateauHalving",
    "PosteriorFigure",
    "PredictionWriter",
    "RunCheckpoint",
    "TransportFigure",
]
