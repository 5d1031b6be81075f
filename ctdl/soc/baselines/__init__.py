"""Comparators of the value network: the Deep BSDE method (Han, Jentzen and E 2018)."""

from .deep_bsde import DeepBSDE, train_deep_bsde

__all__ = ["DeepBSDE", "train_deep_bsde"]
