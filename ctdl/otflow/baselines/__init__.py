"""Comparators of OT-Flow: an FFJORD-style continuous normalising flow (`FFJORDStyleCNF`). The
original OT-Flow code (github.com/EmoryMLIP/OT-Flow) is fetched, not shipped: the speed
benchmark imports it from a checkout."""

from .ffjord import ConcatField, FFJORDStyleCNF

__all__ = ["ConcatField", "FFJORDStyleCNF"]
