"""Reverse-time sampling by name, in chunks: `sample` draws n fields from a preconditioned score with
`sample_euler_maruyama` ("em") or `sample_predictor_corrector` ("pc"), at most `batch_size` at a
time one after the other from the same generator (bounds the memory of many samples on fine grids).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .priors import FourierPrior
from .sde import VPSDE, ScoreFn, sample_euler_maruyama, sample_predictor_corrector

SAMPLERS = ("em", "pc")


def check_sampler(name: str) -> None:
    """A clear error for an unknown sampler name."""
    if name not in SAMPLERS:
        raise ValueError(
            f"unknown sampler {name!r}; known samplers: {', '.join(SAMPLERS)} "
            "(Euler-Maruyama, predictor-corrector)"
        )


def chunk_sizes(n: int, batch_size: int | None) -> list[int]:
    """n split into chunks of at most batch_size (None: one chunk of n)."""
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be a positive number of samples or None, got {batch_size}")
    if batch_size is None or n <= batch_size:
        return [n]
    return [batch_size] * (n // batch_size) + ([n % batch_size] if n % batch_size else [])


def sample(
    score: ScoreFn,
    prior: FourierPrior,
    sde: VPSDE,
    shape: tuple[int, int, int, int],
    steps: int,
    eps: float,
    sampler: str = "em",
    generator: torch.Generator | None = None,
    snr: float = 0.16,
    batch_size: int | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """shape[0] samples (n, channels, n1, n2) by the reverse-time `sampler` with `steps` steps from
    t = T down to `eps`, noise from `prior` at that grid and the preconditioned score C s = `score`;
    drawn in chunks of at most `batch_size` (default: all at once)."""
    check_sampler(sampler)
    n, *field = shape
    kwargs = dict(
        sde=sde, steps=steps, eps=eps, preconditioned=True, generator=generator, dtype=dtype, device=device
    )
    out = []
    for m in chunk_sizes(n, batch_size):
        if sampler == "em":
            out.append(sample_euler_maruyama(score, prior, (m, *field), **kwargs))
        else:
            out.append(sample_predictor_corrector(score, prior, (m, *field), snr=snr, **kwargs))
    return out[0] if len(out) == 1 else torch.cat(out)
