"""LightningDataModules of ctdl: toy 2-D sets, image classification, density estimation, simulation
pairs for posterior estimation, start points of control problems, instances of a PDE."""

from .digits_density import DigitsDensity
from .function_data import DiffusionImages, GaussianFields
from .images import ImageClassification
from .lotka_volterra import LotkaVolterra
from .pde_control_instances import PDEInstances
from .sbibm_tasks import SBIBMTask
from .simulation import SimulationData
from .soc_starts import ControlStarts
from .tabular import TabularDensity
from .toy2d import Toy2DClassification, make_toy2d
from .toy_density import Toy2DDensity, make_toy_density, toy_log_density

__all__ = [
    "ControlStarts",
    "DiffusionImages",
    "DigitsDensity",
    "GaussianFields",
    "ImageClassification",
    "LotkaVolterra",
    "PDEInstances",
    "SBIBMTask",
    "SimulationData",
    "TabularDensity",
    "Toy2DClassification",
    "Toy2DDensity",
    "make_toy2d",
    "make_toy_density",
    "toy_log_density",
]
