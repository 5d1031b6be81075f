"""LightningModules, one per task (imported as ctdl.models)."""

from .diffusion import MultilevelDiffusion
from .odenet import ODENetClassifier
from .otflow import OTFlow
from .pde_control import SourceMitigation
from .sbi import ConditionalOTFlow
from .soc import StochasticOptimalControl

__all__ = [
    "ConditionalOTFlow",
    "MultilevelDiffusion",
    "ODENetClassifier",
    "OTFlow",
    "SourceMitigation",
    "StochasticOptimalControl",
]
