"""The metrics OT-Flow's tests and benchmarks report, over any flow with the signature
`log_prob(x, y=None, *, steps=None)`, `forward` and `inverse` alike (a `PotentialFlow` or `OTFlow`):

- the KL gap  E_p[-log p_model] - E_p[-log p_true] = KL(p_true || p_model) >= 0 on samples of p;
- the inversion error ||F^{-1}(F(x)) - x|| per sample;
- fresh toy samples independent of a datamodule's splits, the model's log density on them in
  chunks, and the excess log p_true - log p_model whose mean is the gap;
- the checkerboard's gap split by distance to the squares' edges.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .toys import make_toy_density, toy_log_density

DECISION_STREAM = 7  # the fresh set every quality and ablation row of the benchmarks is measured on
EDGE_BANDS = (0.0, 0.025, 0.05, 0.1, 0.2, 0.4, 1.0)


def kl_gap(log_p_model: Tensor, log_p_true: Tensor) -> Tensor:
    """E[-log p_model] - E[-log p_true] over samples of p_true: KL(p_true || p_model), in nats."""
    return log_p_true.mean() - log_p_model.mean()


@torch.no_grad()
def inverse_error(flow, x: Tensor, y: Tensor | None = None, *, steps: int | None = None) -> Tensor:
    """||F^{-1}(F(x; y); y) - x|| per sample, shape (batch,)."""
    return (flow.inverse(flow(x, y, steps=steps), y, steps=steps) - x).norm(dim=1)


@torch.no_grad()
def chunked_log_prob(
    flow, x: Tensor, y: Tensor | None = None, *, steps: int | None = None, chunk: int = 10_000
) -> Tensor:
    """log p(x | y) in chunks of `chunk` points (bounds the memory), shape (batch,)."""
    if y is None or y.ndim == 1:
        return torch.cat([flow.log_prob(c, y, steps=steps) for c in x.split(chunk)])
    return torch.cat(
        [flow.log_prob(c, v, steps=steps) for c, v in zip(x.split(chunk), y.split(chunk), strict=True)]
    )


def fresh_points(name: str, n: int, stream: int, seed: int = 0) -> Tensor:
    """n fresh float32 points (n, 2) of a toy density from child stream 3 + stream of
    SeedSequence(seed). A `Toy2DDensity` with that seed draws its three splits from child streams
    0, 1, 2, so these points are independent of them, and different streams of each other."""
    if stream < 0:
        raise ValueError(f"stream must be >= 0, got {stream}")
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(3 + stream,)))
    return torch.from_numpy(make_toy_density(name, n, rng)).float()


def fresh_log_prob(
    flow,
    name: str,
    *,
    steps: int | None = None,
    seed: int = 0,
    stream: int = DECISION_STREAM,
    n: int = 100_000,
) -> tuple[Tensor, Tensor]:
    """n fresh float64 samples of toy `name` and the flow's log density on them (chunks of 10k),
    with `steps` RK4 steps; the flow must be in float64."""
    fresh = fresh_points(name, n, stream, seed).double()
    return fresh, chunked_log_prob(flow, fresh, steps=steps)


def fresh_excess(
    flow,
    name: str,
    *,
    steps: int | None = None,
    seed: int = 0,
    stream: int = DECISION_STREAM,
    n: int = 100_000,
) -> tuple[Tensor, Tensor]:
    """The fresh samples of `fresh_log_prob` and log p_true - log p_model on each (its mean is the
    KL gap); for toys whose density is known."""
    fresh, log_p = fresh_log_prob(flow, name, steps=steps, seed=seed, stream=stream, n=n)
    return fresh, toy_log_density(name, fresh).double() - log_p


def edge_bands(x: Tensor, excess: Tensor) -> list[dict]:
    """The checkerboard's gap split by each point's distance to the nearest edge of its square
    (squares of side 2 with corners on even integers, so the distance is at most 1): per band,
    its probability mass, its contribution to the gap (sum of log p_true - log p_model over the
    band, divided by all points) and the mean excess inside it."""
    r = torch.remainder(x, 2.0)
    distance = torch.minimum(r, 2.0 - r).min(dim=1).values
    band = torch.bucketize(distance, torch.tensor(EDGE_BANDS[1:-1], dtype=x.dtype), right=True)
    rows = []
    for i, (lo, hi) in enumerate(zip(EDGE_BANDS[:-1], EDGE_BANDS[1:], strict=True)):
        inside = band == i
        rows.append(
            {
                "distance": f"[{lo}, {hi}{']' if hi == EDGE_BANDS[-1] else ')'}",
                "mass": round(inside.double().mean().item(), 4),
                "gap_contribution": round(excess[inside].sum().item() / len(excess), 4),
                "mean_excess": round(excess[inside].mean().item(), 4) if inside.any() else None,
            }
        )
    return rows
