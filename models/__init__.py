"""LightningModules, one per task (imported as ctdl.models)."""

from .odenet import ODENetClassifier
from .otflow import OTFlow

__all__ = ["ODENetClassifier", "OTFlow"]
