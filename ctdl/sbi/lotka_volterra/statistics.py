"""The 9 summary statistics of a recorded Lotka-Volterra series (Papamakarios et al. 2019; Wang et
al. 2023): means, log variances, autocorrelations at lags 1 and 2, and the cross-correlation."""

from __future__ import annotations

import numpy as np

STATISTICS = ("mean_x", "mean_y", "log_var_x", "log_var_y", "acf1_x", "acf2_x", "acf1_y", "acf2_y", "xcorr")
"""Names of the 9 summary statistics, in order."""


def summary_statistics(series: np.ndarray) -> np.ndarray:
    """The 9 summary statistics of recorded series (..., N, 2) of (X, Y); returns (..., 9).

    With means m, variances v (ddof = 0) and standardised series x~_t = (x_t - m_x) / sqrt(v_x)
    (y~ likewise), the statistics are (Papamakarios et al. 2019; Wang et al. 2023)

        m_x, m_y, log(v_x + 1), log(v_y + 1),
        a_x(1), a_x(2), a_y(1), a_y(2),    a(l) = sum_{t=0}^{N-1-l} x~_t x~_{t+l} / (N - 1),
        c = sum_t x~_t y~_t / (N - 1)      (the cross-correlation at lag 0).

    A constant series (v = 0) has no standardised form (0 / 0); we take x~ = 0 for it, so its
    autocorrelations and its cross-correlation with the other species are 0: it has no fluctuation
    that could be correlated with anything, and the statistics stay finite (NaN is kept for failed
    simulations only). NaN in a series gives NaN statistics.
    """
    series = np.asarray(series, dtype=np.float64)
    if series.ndim < 2 or series.shape[-1] != 2 or series.shape[-2] < 3:
        raise ValueError(f"series must have shape (..., N, 2) with N >= 3, got {series.shape}")
    n = series.shape[-2]
    s = np.ascontiguousarray(np.moveaxis(series, -1, -2))  # (..., 2, N)
    mean = s.mean(axis=-1)
    c = s - mean[..., None]
    var = np.einsum("...k,...k->...", c, c) / n
    std = np.sqrt(var)
    z = c * np.divide(1.0, std, out=np.zeros_like(std), where=std > 0)[..., None]

    def dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.einsum("...k,...k->...", a, b) / (n - 1)

    a1, a2 = dot(z[..., :-1], z[..., 1:]), dot(z[..., :-2], z[..., 2:])
    cols = [
        mean[..., 0],
        mean[..., 1],
        np.log(var[..., 0] + 1),
        np.log(var[..., 1] + 1),
        a1[..., 0],
        a2[..., 0],
        a1[..., 1],
        a2[..., 1],
        dot(z[..., 0, :], z[..., 1, :]),
    ]
    return np.stack(cols, axis=-1)
