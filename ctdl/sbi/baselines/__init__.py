"""The comparators of amortised posterior estimation: SMC-ABC (`smc_abc`, a reference posterior for
one observation at a high simulation cost) and sbi's NPE (`npe`, neural posterior estimation with a
spline flow on the same simulations)."""

from .npe import NPEPosterior, train_npe
from .smc_abc import ABCResult, resample_population, smc_abc

__all__ = ["ABCResult", "NPEPosterior", "resample_population", "smc_abc", "train_npe"]
