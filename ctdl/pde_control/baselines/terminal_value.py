"""The terminal-value feedback: the Hamiltonian's feedback law of Phi(t, u) = gamma ||u||^2 at every t.

That is the value policy (`ctdl.pde_control.QuadraticValue`) at its zero start, before any training:
the law a_k* = clip((B_k u)' S^{-T} grad Phi / alpha, 0, a_max) with grad Phi = 2 gamma M u already
uses the model's dynamics (S^{-T} and B_k), so it is the trivial baseline of the value policy.
"""

from __future__ import annotations

from ..networks import QuadraticValue
from ..problem import AdvectionDiffusion

__all__ = ["terminal_value_feedback"]


def terminal_value_feedback(problem: AdvectionDiffusion) -> QuadraticValue:
    """The untrained value policy: its fields start at zero, so Phi = gamma ||u||^2 at every time."""
    return QuadraticValue(problem)
