"""A short training on sbibm's gaussian_linear must recover its analytic posterior.

theta ~ N(0, 0.1 I_10), y | theta ~ N(theta, 0.1 I_10), so pi(theta | y) = N(y / 2, 0.05 I_10). The
tolerances are set from that answer: each posterior mean within 0.3 posterior standard deviations,
each variance within 30% of 0.05, each correlation below 0.2 in size. The prior, the likelihood
N(y, 0.1 I) or a flow that ignores y fails every one of them (a mean off by |y_i| / 2, a variance 2x).
"""

from __future__ import annotations

import pytest
import torch

from tests.helpers import ROOT

POSTERIOR_VAR = 0.05


def moment_errors(samples: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Worst standardised mean error, worst relative variance error, largest |correlation|."""
    mean, cov = samples.mean(0), torch.cov(samples.T)
    sd = cov.diagonal().sqrt()
    corr = cov / (sd[:, None] * sd[None, :])
    return {
        "mean": ((mean - y / 2).abs() / POSTERIOR_VAR**0.5).max().item(),
        "var": (cov.diagonal() / POSTERIOR_VAR - 1).abs().max().item(),
        "corr": (corr - torch.eye(len(y))).abs().max().item(),
    }


def within(errors: dict[str, float]) -> bool:
    return errors["mean"] < 0.3 and errors["var"] < 0.3 and errors["corr"] < 0.2


def test_the_tolerance_rejects_wrong_posteriors_and_accepts_exact_draws():
    g = torch.Generator().manual_seed(0)
    y = torch.randn(10, generator=g) * 0.2**0.5
    exact = y / 2 + POSTERIOR_VAR**0.5 * torch.randn(4000, 10, generator=g)
    prior = 0.1**0.5 * torch.randn(4000, 10, generator=g)
    likelihood = y + 0.1**0.5 * torch.randn(4000, 10, generator=g)
    assert within(moment_errors(exact, y))
    assert not within(moment_errors(prior, y)) and not within(moment_errors(likelihood, y))


@pytest.fixture
def one_thread():
    """Small matrices train fastest on one thread (and share the cores with nothing)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_short_training_recovers_the_gaussian_linear_posterior(cli, one_thread):
    from ctdl.datamodules import SBIBMTask

    config = ["--config", str(ROOT / "configs/sbi/gaussian_linear.yaml")]
    budget = [*("--data.n_test", "40", "--trainer.max_steps", "800", "--trainer.val_check_interval", "200")]
    fit = cli("fit", *config, *budget)
    best = fit.trainer.checkpoint_callback.best_model_path
    model = type(fit.model).load_from_checkpoint(best).eval()
    data = SBIBMTask("gaussian_linear", num_simulations=100)
    for i in (1, 2):
        y = data.observation(i)
        reference = data.reference_posterior(i)[:4000].double()
        assert within(moment_errors(reference, y.double())), "the analytic posterior is sbibm's"
        samples = model.sample_posterior(4000, y, generator=torch.Generator().manual_seed(i)).double()
        errors = moment_errors(samples, y.double())
        assert within(errors), f"observation {i}: {errors}"
