"""What the SBI tests and benchmarks report about a learned posterior: C2ST against reference
posteriors (sbibm's, per observation), posterior moments against another method's samples
(SMC-ABC's), and the time one observation's samples take."""

from __future__ import annotations

import time
from typing import Protocol

import torch
from torch import Generator, Tensor

from ctdl.protocols import ReferencePosteriors


class PosteriorSampler(Protocol):
    """Samples pi(theta | y) in raw units (as `FlowPosterior` and `NPEPosterior`)."""

    device: torch.device

    def sample(self, n: int, y: Tensor, *, generator: Generator | None = None) -> Tensor: ...


def c2st(x: Tensor, y: Tensor, seed: int = 1) -> float:
    """Classifier two-sample test (Lopez-Paz & Oquab 2017) as sbibm computes it: the 5-fold
    cross-validated accuracy of an MLP telling the samples x (n, d) from y (m, d) apart, on
    z-scored inputs. 0.5: indistinguishable; 1.0: fully separated. Needs the sbi extra (sbibm)."""
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(
            f"c2st needs two sample sets (n, d) and (m, d), got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    try:
        from sbibm.metrics import c2st as sbibm_c2st
    except ImportError as error:
        raise ImportError("c2st uses sbibm's implementation: pip install 'ctdl[sbi]'") from error
    x, y = x.detach().float().cpu(), y.detach().float().cpu()
    return float(sbibm_c2st(x, y, seed=seed))


def reference_c2st(
    posterior: PosteriorSampler,
    data: ReferencePosteriors,
    observations: list[int] | None = None,
    n_samples: int | None = None,
    seeded: bool = True,
) -> dict[int, float]:
    """{i: C2ST} of the posterior's samples for observation i against its reference posterior, for
    the chosen observations (default all, 1..num_observations).

    n = min(n_samples, reference size) samples (all of the reference's by default), drawn from a
    generator seeded with i (with `seeded`; else from the posterior's own random stream, in order),
    against the first n reference samples; the classifier is seeded with i too."""
    chosen = observations or list(range(1, data.num_observations + 1))
    scores = {}
    for i in chosen:
        reference = data.reference_posterior(i)
        n = len(reference) if n_samples is None else min(n_samples, len(reference))
        gen = torch.Generator(device=posterior.device).manual_seed(i) if seeded else None
        samples = posterior.sample(n, data.observation(i), generator=gen)
        scores[i] = c2st(samples, reference[:n], seed=i)
    return scores


def compare_moments(samples: Tensor, reference: Tensor) -> list[dict[str, float | bool]]:
    """Per coordinate k of samples (n, d) and reference samples (m, d): both means and standard
    deviations (1 / (n - 1)) in float64, and whether |mean - reference mean| <= reference std."""
    if samples.ndim != 2 or reference.ndim != 2 or samples.shape[1] != reference.shape[1]:
        raise ValueError(
            f"compare_moments needs two sample sets (n, d) and (m, d), got {tuple(samples.shape)} "
            f"and {tuple(reference.shape)}"
        )
    ours, theirs = samples.detach().double(), reference.detach().double()
    return [
        {
            "mean": ours[:, k].mean().item(),
            "reference_mean": theirs[:, k].mean().item(),
            "std": ours[:, k].std().item(),
            "reference_std": theirs[:, k].std().item(),
            "within_one_reference_std": bool(
                (ours[:, k].mean() - theirs[:, k].mean()).abs() <= theirs[:, k].std()
            ),
        }
        for k in range(ours.shape[1])
    ]


def sampling_seconds(
    posterior: PosteriorSampler, y: Tensor, n: int, repeats: int = 3, seed: int = 0
) -> tuple[float, Tensor]:
    """The median wall-clock seconds of `repeats` draws of n samples for one observation y (each
    from a generator seeded with `seed`), and the samples of the last draw."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        samples = posterior.sample(n, y, generator=torch.Generator(device=posterior.device).manual_seed(seed))
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2], samples
