"""LightningDataModules of ctdl: toy 2-D sets, image classification, density estimation."""

from .density import DigitsDensity, TabularDensity, Toy2DDensity, make_toy_density, toy_log_density
from .images import ImageClassification
from .toy2d import Toy2DClassification, make_toy2d

__all__ = [
    "DigitsDensity",
    "ImageClassification",
    "TabularDensity",
    "Toy2DClassification",
    "Toy2DDensity",
    "make_toy2d",
    "make_toy_density",
    "toy_log_density",
]
