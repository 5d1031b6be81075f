"""LightningModules, one per task (imported as ctdl.models)."""

from .cotflow import ConditionalOTFlow
from .odenet import ODENetClassifier
from .otflow import OTFlow

__all__ = ["ConditionalOTFlow", "ODENetClassifier", "OTFlow"]
