"""Sample-based distances between distributions."""

from __future__ import annotations

from torch import Tensor


def c2st(x: Tensor, y: Tensor, seed: int = 1) -> float:
    """Classifier two-sample test (Lopez-Paz & Oquab 2017) as sbibm computes it: the 5-fold
    cross-validated accuracy of an MLP telling the samples x (n, d) from y (m, d) apart, on
    z-scored inputs. 0.5: indistinguishable; 1.0: fully separated. Needs the sbi extra (sbibm)."""
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"c2st needs two sample sets (n, d) and (m, d), got {tuple(x.shape)} and "
                         f"{tuple(y.shape)}")
    try:
        from sbibm.metrics import c2st as sbibm_c2st
    except ImportError as error:
        raise ImportError("c2st uses sbibm's implementation: pip install 'ctdl[sbi]'") from error
    x, y = x.detach().float().cpu(), y.detach().float().cpu()
    return float(sbibm_c2st(x, y, seed=seed))
