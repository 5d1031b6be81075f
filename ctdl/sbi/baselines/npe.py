"""sbi's neural posterior estimation (NPE: SNPE with a neural spline flow, sbi's defaults;
Greenberg, Nonnenmacher, Macke 2019; Durkan et al. 2019) trained on given simulations: the
baseline amortised posterior of the sbibm benchmark (Lueckmann et al. 2021). Needs the sbi extra."""

from __future__ import annotations

import time

import torch
from torch import Generator, Tensor


class NPEPosterior:
    """A trained NPE posterior in raw units: `sample(n, y)`, with its training seconds and epochs."""

    device = torch.device("cpu")

    def __init__(self, posterior, train_s: float, epochs: int) -> None:
        self.posterior, self.train_s, self.epochs = posterior, train_s, epochs

    def sample(self, n: int, y: Tensor, *, generator: Generator | None = None) -> Tensor:
        """n samples (n, dim) of pi(theta | y) for one raw observation y (q,). sbi draws from torch's
        global generator: with `generator` it is seeded from the generator's seed for this draw
        (and restored afterwards), without it the global stream continues."""
        y = torch.as_tensor(y).float()
        if generator is None:
            return self.posterior.sample((n,), x=y, show_progress_bars=False)
        with torch.random.fork_rng():
            torch.manual_seed(generator.initial_seed())
            return self.posterior.sample((n,), x=y, show_progress_bars=False)


def train_npe(theta: Tensor, y: Tensor, prior, seed: int = 0, density_estimator: str = "nsf") -> NPEPosterior:
    """NPE on the pairs theta (n, d), y (n, q) (raw units) with sbi's defaults: early stopping on
    its own 10% validation split, no epoch limit. torch's global generator is seeded with `seed`
    first (sbi draws its split and initialisation from it)."""
    try:
        from sbi.inference import SNPE
    except ImportError as error:
        raise ImportError("the NPE baseline needs sbi: pip install 'ctdl[sbi]'") from error
    torch.manual_seed(seed)
    inference = SNPE(prior=prior, density_estimator=density_estimator)
    t0 = time.perf_counter()
    estimator = inference.append_simulations(theta.float(), y.float()).train(
        max_num_epochs=10**6, show_train_summary=False
    )
    seconds = time.perf_counter() - t0
    return NPEPosterior(
        inference.build_posterior(estimator), seconds, inference.summary["epochs_trained"][-1]
    )
