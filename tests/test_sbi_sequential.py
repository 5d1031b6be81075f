"""Sequential rounds (TSNPE): the truncated prior, a round's simulations, and extra pairs in the data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import kstest

from ctdl.sbi import TruncatedPrior
from ctdl.sbi.truncation import draw_round

from .helpers import ROOT


class Gaussian:
    """A stand-in posterior N(mean, sd^2) in one dimension (whatever y)."""

    def __init__(self, mean: float, sd: float) -> None:
        self.law = torch.distributions.Normal(torch.tensor(mean, dtype=torch.float64), sd)

    def sample(self, n, y, *, generator=None):
        return self.law.mean + self.law.stddev * torch.randn(n, 1, generator=generator, dtype=torch.float64)

    def log_prob(self, theta, y):
        return self.law.log_prob(theta[:, 0])


def uniform_prior(n: int, seed: int) -> torch.Tensor:
    """U[-1, 1]."""
    return 2 * torch.rand(n, 1, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) - 1


@pytest.mark.parametrize("mean", [0.3, 0.95], ids=["inside", "cut by the support"])
def test_the_truncated_prior_is_the_prior_on_the_highest_probability_region(mean):
    """For q = N(m, 0.1^2) and epsilon = 0.01 the region is |theta - m| <= 2.576 sd; the truncated
    uniform prior is uniform on its intersection with [-1, 1], and the acceptance is its length / 2."""
    sd, z = 0.1, 2.5758
    truncated = TruncatedPrior(
        Gaussian(mean, sd), torch.zeros(1), uniform_prior, epsilon=0.01, samples=40_000
    )
    low, high = max(mean - z * sd, -1.0), min(mean + z * sd, 1.0)
    theta = truncated.sample(4000, seed=1)[:, 0].numpy()
    assert theta.shape == (4000,)
    assert theta.min() > low - 0.01 and theta.max() < high + 0.01
    assert kstest(theta, "uniform", args=(low, high - low)).pvalue > 1e-3
    assert truncated.acceptance == pytest.approx((high - low) / 2, abs=0.02)
    assert truncated.contains(torch.tensor([[mean], [mean + 4 * sd]], dtype=torch.float64)).tolist() == [
        True,
        False,
    ]


def test_rounds_redraw_and_count_failed_simulations():
    truncated = TruncatedPrior(Gaussian(0.3, 0.1), torch.zeros(1), uniform_prior, epsilon=0.01, samples=2000)

    def simulate_at(theta, seed):  # simulations fail above 0.4
        y = theta.clone()
        y[theta[:, 0] > 0.4] = torch.nan
        return y

    done = draw_round(truncated, simulate_at, 500, seed=3)
    assert done.theta.shape == (500, 1) and torch.equal(done.theta, done.y)
    assert (done.theta <= 0.4).all()
    assert done.failed > 50 and done.simulations == 500 + done.failed  # every simulation counted
    assert done.threshold == truncated.threshold and 0 < done.acceptance < 1


def test_the_truncated_prior_says_what_to_fix():
    with pytest.raises(ValueError, match="epsilon must be in"):
        TruncatedPrior(Gaussian(0.0, 1.0), torch.zeros(1), uniform_prior, epsilon=0.0)
    with pytest.raises(ValueError, match="use at least 10000"):
        TruncatedPrior(Gaussian(0.0, 1.0), torch.zeros(1), uniform_prior, epsilon=1e-3, samples=500)
    tiny = TruncatedPrior(
        Gaussian(0.3, 1e-4), torch.zeros(1), uniform_prior, epsilon=0.01, samples=2000, batch=1000
    )
    with pytest.raises(RuntimeError, match="prior mass is too small for rejection sampling"):
        tiny.sample(100, seed=0, max_draws=5000)


def test_extra_simulations_join_training_and_validation_in_the_budgets_units(tmp_path):
    pytest.importorskip("sbibm")
    from ctdl.datamodules import SBIBMTask

    plain = SBIBMTask(task="gaussian_linear", num_simulations=100, n_test=20)
    plain.setup()
    theta = plain.sample_prior(50, seed=7)
    y = plain.simulate_at(theta, seed=8)
    assert theta.shape == (50, 10) and y.shape == (50, 10) and not torch.equal(theta, y)
    np.savez(tmp_path / "round2.npz", theta=theta.numpy(), y=y.numpy())
    more = SBIBMTask(
        task="gaussian_linear", num_simulations=100, n_test=20, extra_simulations=str(tmp_path / "round2.npz")
    )
    more.setup()
    assert (len(more.train_dataset), len(more.val_dataset)) == (90 + 45, 10 + 5)
    assert torch.equal(more.theta_mean, plain.theta_mean) and torch.equal(more.y_std, plain.y_std)
    u, v = more.train_dataset.tensors
    assert torch.equal(u[:90], plain.train_dataset.tensors[0])
    extra = torch.cat([u[90:], more.val_dataset.tensors[0][10:]])
    expected = ((theta - plain.theta_mean) / plain.theta_std).float()
    assert torch.allclose(extra.sort(0).values, expected.sort(0).values)  # every extra pair, once

    np.savez(tmp_path / "bad.npz", theta=theta[:, :3].numpy(), y=y.numpy())
    with pytest.raises(
        ValueError, match=r"theta must be \(m, 10\) and y \(m, 10\) .* got \(50, 3\) and \(50, 10\)"
    ):
        SBIBMTask(
            task="gaussian_linear", num_simulations=100, extra_simulations=str(tmp_path / "bad.npz")
        ).setup()
    with pytest.raises(FileNotFoundError, match="no file at .*missing.npz"):
        SBIBMTask(
            task="gaussian_linear", num_simulations=100, extra_simulations=str(tmp_path / "missing.npz")
        ).setup()


def test_a_round_fits_through_the_cli_from_the_previous_rounds_weights(cli, tmp_path):
    pytest.importorskip("sbibm")
    small = [
        *("--config", ROOT / "configs" / "sbi" / "two_moons.yaml"),
        *("--data.num_simulations", "200", "--data.n_test", "20", "--data.batch_size", "50"),
        *("--model.posterior_samples", "200", "--trainer.val_check_interval", "2"),
    ]
    first = cli("fit", *small, "--trainer.max_steps", "2")
    last = first.trainer.checkpoint_callback.dirpath + "/last.ckpt"
    data = first.datamodule
    truncated = TruncatedPrior(
        first.model.posterior, data.observation(1), data.sample_prior, epsilon=0.01, samples=2000, batch=2000
    )
    done = draw_round(truncated, data.simulate_at, 100, seed=1)
    np.savez(tmp_path / "round2.npz", theta=done.theta.numpy(), y=done.y.numpy())
    second = cli(
        "fit",
        *small,
        "--trainer.max_steps",
        "2",
        "--data.extra_simulations",
        tmp_path / "round2.npz",
        "--init_from",
        last,
    )
    assert len(second.datamodule.train_dataset) == 180 + 90 and second.trainer.global_step == 2


def test_lotka_volterra_draws_its_prior_and_simulates_at_given_rates():
    from ctdl.datamodules import LotkaVolterra
    from ctdl.sbi.lotka_volterra import simulate_statistics

    data = LotkaVolterra(num_simulations=100, cache_dir=None, workers=1)
    theta = data.sample_prior(300, seed=4)
    assert theta.shape == (300, 4) and theta.log().min() >= -5 and theta.log().max() <= 2
    torch.testing.assert_close(data.sample_prior(300, seed=4), theta)
    y = data.simulate_at(theta, seed=5)
    expected = torch.from_numpy(simulate_statistics(theta.numpy(), 5, workers=1))
    torch.testing.assert_close(y, expected, equal_nan=True)
    assert 0 < torch.isnan(y).any(1).sum() < 300  # some prior draws fail, as NaN rows
