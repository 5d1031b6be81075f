"""Sample-based distances between distributions: energy distance (energy MMD), Frechet distance on
features, and the closed-form KL and 2-Wasserstein distances between Gaussians (C2ST, which only
simulation-based inference reports, is `ctdl.sbi.evaluate.c2st`)."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _check_sets(x: Tensor, y: Tensor, who: str) -> tuple[Tensor, Tensor]:
    """x (n, ...) and y (m, ...) flattened to (n, d) and (m, d) in float64; a clear error otherwise."""
    if x.ndim < 2 or y.ndim < 2 or x.shape[1:] != y.shape[1:] or len(x) < 1 or len(y) < 1:
        raise ValueError(
            f"{who} needs two non-empty sample sets (n, ...) and (m, ...) of one sample shape, "
            f"got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    return x.detach().flatten(1).double(), y.detach().flatten(1).to(x.device).double()


def energy_distance(x: Tensor, y: Tensor, chunk_size: int = 1024) -> float:
    """Energy distance (energy MMD) between the sample sets x (n, ...) and y (m, ...), flattened:

        D^2 = 2 mean_ij |x_i - y_j| - mean_ij |x_i - x_j| - mean_ij |y_i - y_j|

    (Szekely & Rizzo 2013), the V-statistic: the squared MMD of the distance kernel k(a, b) =
    -|a - b| (Sejdinovic et al. 2013), so D^2 >= 0, D^2 = 0 for identical sets, and in the limit it
    vanishes iff the distributions agree. |.| is the Euclidean norm of the flattened samples; the
    within-set sums include i = j (a set of n draws from the law of y has E D^2 = O(1/n), not 0).
    Returns D^2 (float)."""
    x, y = _check_sets(x, y, "energy_distance")

    def mean_dist(a: Tensor, b: Tensor) -> float:
        total = sum(torch.cdist(a[i : i + chunk_size], b).sum().item() for i in range(0, len(a), chunk_size))
        return total / (len(a) * len(b))

    return max(2 * mean_dist(x, y) - mean_dist(x, x) - mean_dist(y, y), 0.0)


def mean_and_covariance(x: Tensor) -> tuple[Tensor, Tensor]:
    """Sample mean (d,) and covariance (d, d) with the 1 / (n - 1) normalisation of x (n, ...)
    flattened, in float64 (n >= 2)."""
    x = x.detach().flatten(1).double()
    if len(x) < 2:
        raise ValueError(f"a sample covariance needs at least 2 samples, got {len(x)}")
    mean = x.mean(0)
    xc = x - mean
    return mean, xc.T @ xc / (len(x) - 1)


def _psd_sqrt(a: Tensor) -> Tensor:
    """The symmetric PSD square root (negative eigenvalues from round-off set to 0)."""
    w, v = torch.linalg.eigh(0.5 * (a + a.T))
    return (v * w.clamp_min(0).sqrt()) @ v.T


def gaussian_w2_squared(mean1: Tensor, cov1: Tensor, mean2: Tensor, cov2: Tensor) -> float:
    """Squared 2-Wasserstein distance between N(m1, S1) and N(m2, S2) (Dowson & Landau 1982):

        W2^2 = |m1 - m2|^2 + tr S1 + tr S2 - 2 tr (S2^(1/2) S1 S2^(1/2))^(1/2),

    for any PSD S1, S2 (singular ones too), in float64 by symmetric eigendecompositions. On the
    features of a classifier this is the Frechet distance (Heusel et al. 2017)."""
    m1, m2, s1, s2 = _gaussians("gaussian_w2_squared", mean1, mean2, cov1, cov2)
    r2 = _psd_sqrt(s2.to(s1.device))
    cross = torch.linalg.eigvalsh(r2 @ s1 @ r2).clamp_min(0).sqrt().sum()
    value = (m1 - m2.to(m1.device)).pow(2).sum() + torch.trace(s1) + torch.trace(s2.to(s1.device)) - 2 * cross
    return max(value.item(), 0.0)


def _gaussians(name: str, m1: Tensor, m2: Tensor, s1: Tensor, s2: Tensor) -> tuple[Tensor, ...]:
    """The two means (d,) and covariances (d, d) in float64, detached; a ValueError naming all shapes
    unless they share one d."""
    m1, m2, s1, s2 = (a.detach().double() for a in (m1, m2, s1, s2))
    if (
        s1.shape != s2.shape
        or s1.ndim != 2
        or s1.shape[0] != s1.shape[1]
        or m1.shape != m2.shape
        or m1.shape != s1.shape[:1]
    ):
        raise ValueError(
            f"{name} needs means (d,) and covariances (d, d) of one d, got means "
            f"{tuple(m1.shape)}, {tuple(m2.shape)} and covariances {tuple(s1.shape)}, "
            f"{tuple(s2.shape)}"
        )
    return m1, m2, s1, s2


def frechet_distance(features_x: Tensor, features_y: Tensor) -> float:
    """Frechet distance between two feature sets (n, k) and (m, k): gaussian_w2_squared of their
    sample means and covariances (the FID of Heusel et al. 2017 when the features are Inception's;
    0 for identical sets, biased upwards by O(k / n) for finite sets from one law)."""
    fx, fy = _check_sets(features_x, features_y, "frechet_distance")
    return gaussian_w2_squared(*mean_and_covariance(fx), *mean_and_covariance(fy))


def gaussian_kl(mean_p: Tensor, cov_p: Tensor, mean_q: Tensor, cov_q: Tensor, rtol: float = 1e-10) -> float:
    """KL(N(m_p, S_p) || N(m_q, S_q)) in nats on the range of S_q:

        KL = 1/2 [tr(S_q^-1 S_p) + (m_p - m_q)' S_q^-1 (m_p - m_q) - r + log det S_q - log det S_p]
           = 1/2 [sum_i (a_i - 1 - log a_i) + |W (m_p - m_q)|^2],

    a_i the eigenvalues of the whitened A = W S_p W', W = Lambda_r^(-1/2) U_r' from S_q = U Lambda U'
    restricted to its r eigenvalues > rtol * max (the directions where q has no mass are dropped).
    Infinite when A is singular (S_p is; e.g. a sample covariance of n <= r samples): an eigenvalue of A
    below 1e-12 of its largest counts as zero."""
    mp, mq, sp, sq = _gaussians("gaussian_kl", mean_p, mean_q, cov_p, cov_q)
    lam, u = torch.linalg.eigh(0.5 * (sq + sq.T))
    keep = lam > rtol * lam.max()
    w = u[:, keep].T / lam[keep].sqrt()[:, None]  # (r, d)
    a = torch.linalg.eigvalsh(w @ sp @ w.T)
    if bool((a <= 1e-12 * a.max().clamp_min(0)).any()):  # singular to round-off (a zero may come out 1e-17)
        return math.inf
    dm = w @ (mp - mq)
    return 0.5 * ((a - 1 - a.log()).sum() + dm.pow(2).sum()).item()
