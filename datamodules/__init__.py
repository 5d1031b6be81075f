"""LightningDataModules of ctdl: toy 2-D sets, image classification."""

from .images import ImageClassification
from .toy2d import Toy2DClassification, make_toy2d

__all__ = ["ImageClassification", "Toy2DClassification", "make_toy2d"]
