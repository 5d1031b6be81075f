"""OT-Flow (Onken, Wu Fung, Li, Ruthotto, AAAI 2021): density estimation with the potential flow
v = -grad Phi. The plain model is `ctdl.flows.PotentialFlow` over `ctdl.potential.Potential`
(shared with conditional OT-Flow and control); this package adds the task's loss
(`otflow_loss`), its metrics (`evaluate`), the 2-D toy densities (`toys`) and the comparators
(`baselines`)."""

from ..flows import PotentialFlow
from ..potential import Potential
from .evaluate import edge_bands, fresh_excess, fresh_log_prob, fresh_points, inverse_error, kl_gap
from .loss import clamp_parameters, otflow_loss
from .toys import TOY_NAMES, TOYS_WITH_DENSITY, make_toy_density, toy_log_density

__all__ = [
    "TOYS_WITH_DENSITY",
    "TOY_NAMES",
    "Potential",
    "PotentialFlow",
    "clamp_parameters",
    "edge_bands",
    "fresh_excess",
    "fresh_log_prob",
    "fresh_points",
    "inverse_error",
    "kl_gap",
    "make_toy_density",
    "otflow_loss",
    "toy_log_density",
]
