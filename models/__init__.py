"""LightningModules, one per task (imported as ctdl.models)."""

from .odenet import ODENetClassifier

__all__ = ["ODENetClassifier"]
