"""The stochastic Lotka-Volterra simulator (ctdl.sbi.lotka_volterra) and its datamodule."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import ks_2samp

from ctdl.sbi import lotka_volterra as lv
from ctdl.sbi.lotka_volterra import (
    CHUNK_SIZE,
    MAX_EVENTS,
    T_RECORD,
    THETA_STAR,
    Y_STAR,
    sample_prior,
    simulate_reference,
    simulate_series,
    simulate_statistics,
    summary_statistics,
)


def _check_moments(sample: np.ndarray, mean: float, var: float, what: str) -> None:
    """Empirical mean and variance within 5 standard errors of the exact ones."""
    n = sample.size
    m, v = sample.mean(), sample.var()
    se_mean = math.sqrt(var / n)
    se_var = math.sqrt(((sample - m) ** 2).var() / n)
    assert abs(m - mean) < 5 * se_mean, f"{what}: mean {m:.4f}, exact {mean:.4f} (se {se_mean:.4f})"
    assert abs(v - var) < 5 * se_var, f"{what}: variance {v:.4f}, exact {var:.4f} (se {se_var:.4f})"


@pytest.mark.parametrize("initial", [(50, 100), (50, 0), (400, 0)], ids=["direct", "lifetimes", "binomial"])
def test_pure_death_is_binomial(initial):
    """Only predator death on (theta_2 = 0.5): each predator lives an Exp(theta_2) time, so
    X(t) ~ Binomial(X(0), exp(-theta_2 t)) exactly, and Y never moves. With 100 idle prey the direct
    method runs; with no prey the closed-form phase does (lifetimes for few predators, binomial
    steps for many)."""
    x0, y0 = initial
    rate, k = 0.5, 5  # record 5: t = 1
    sim = simulate_series(np.tile([0.0, rate, 0.0, 0.0], (3000, 1)), seed=1, workers=1, initial=initial)
    assert not sim.failed.any()
    assert np.all(sim.series[:, :, 1] == y0)
    assert np.all(sim.series[:, 0] == (x0, y0))
    p = math.exp(-rate * T_RECORD[k])
    _check_moments(sim.series[:, k, 0], x0 * p, x0 * p * (1 - p), f"X(1) from {initial}")
    assert np.all(np.diff(sim.series[:, :, 0], axis=1) <= 0)  # a pure death process never grows


@pytest.mark.parametrize("initial", [(50, 100), (0, 100)], ids=["direct", "yule"])
def test_pure_prey_birth_is_negative_binomial(initial):
    """Only prey birth on (theta_3 = 0.05): a birth rate proportional to the count is a Yule process,
    not a Poisson one (that would need a constant rate), and its law is exact all the same:
    Y(t) - Y(0) ~ NegativeBinomial(Y(0), exp(-theta_3 t)), mean Y(0) (e^{theta_3 t} - 1), variance
    Y(0) e^{theta_3 t} (e^{theta_3 t} - 1) (larger than the mean). With 50 idle predators the direct
    method runs; with none the closed-form phase does."""
    x0, y0 = initial
    rate, k = 0.05, 50  # record 50: t = 10
    sim = simulate_series(np.tile([0.0, 0.0, rate, 0.0], (3000, 1)), seed=2, workers=1, initial=initial)
    assert not sim.failed.any()
    assert np.all(sim.series[:, :, 0] == x0)
    g = math.exp(rate * T_RECORD[k])
    _check_moments(sim.series[:, k, 1] - y0, y0 * (g - 1), y0 * g * (g - 1), f"Y(10) from {initial}")
    assert np.all(sim.events >= sim.series[:, -1, 1] - y0)  # every birth is an event (some after 29.8)


@pytest.mark.parametrize("y0", [1, 0], ids=["direct", "closed-form"])
def test_failure_rule_fires_at_event_10001(y0):
    """X(0) predators dying fast (theta_2 = 50, extinct long before T = 30) make exactly X(0)
    events: 10,000 is a simulation, 10,001 a failure (at event 10,001)."""
    theta = np.tile([0.0, 50.0, 0.0, 0.0], (2, 1))
    ok = simulate_series(theta, seed=3, workers=1, initial=(MAX_EVENTS, y0))
    assert not ok.failed.any() and np.all(ok.events == MAX_EVENTS)
    assert np.all(ok.series[:, -1, 0] == 0)
    bad = simulate_series(theta, seed=3, workers=1, initial=(MAX_EVENTS + 1, y0))
    assert bad.failed.all() and np.all(bad.events == MAX_EVENTS + 1)
    assert np.isnan(bad.series).all()


def test_failure_rule_in_the_reference_loop_and_for_exploding_prey():
    """The plain-Python loop counts events the same way; exploding prey (theta_3 = 1: Y(30) is about
    100 e^30) fail at event 10,001, in the direct method (idle predators) and in the Yule phase."""
    assert not simulate_reference([0.0, 50.0, 0.0, 0.0], 0, initial=(MAX_EVENTS, 1)).failed[0]
    ref = simulate_reference([0.0, 50.0, 0.0, 0.0], 0, initial=(MAX_EVENTS + 1, 1))
    assert ref.failed[0] and ref.events[0] == MAX_EVENTS + 1 and np.isnan(ref.series).all()
    for initial in [(50, 100), (0, 100)]:
        sim = simulate_series(np.tile([0.0, 0.0, 1.0, 0.0], (3, 1)), seed=4, workers=1, initial=initial)
        assert sim.failed.all() and np.all(sim.events == MAX_EVENTS + 1)


def test_statistics_of_a_hand_made_series():
    """X = 1, 2, 3, 4 and Y = 2, 0, 2, 0, by hand: means 2.5 and 1, variances 1.25 and 1,
    standardised X = (-1.5, -0.5, 0.5, 1.5) / sqrt(1.25), Y = (1, -1, 1, -1); sums over N - 1 = 3."""
    series = np.array([[1, 2], [2, 0], [3, 2], [4, 0]], dtype=float)
    expected = [
        2.5,
        1.0,
        math.log(2.25),
        math.log(2.0),
        (0.75 - 0.25 + 0.75) / 1.25 / 3,
        (-0.75 - 0.75) / 1.25 / 3,  # X at lags 1, 2
        -3 / 3,
        2 / 3,  # Y at lags 1, 2
        (-1.5 + 0.5 + 0.5 - 1.5) / math.sqrt(1.25) / 3,
    ]
    np.testing.assert_allclose(summary_statistics(series), expected, rtol=1e-12, atol=1e-15)
    batch = summary_statistics(np.stack([series, series[::-1]]))
    assert batch.shape == (2, 9)
    np.testing.assert_allclose(batch[0], expected, rtol=1e-12)


def test_statistics_of_a_constant_series_and_nan():
    """A constant species has variance 0: log(0 + 1) = 0 and correlations 0 (documented choice)."""
    series = np.stack([np.full(150, 7.0), np.arange(150.0) % 5], axis=1)
    stats = summary_statistics(series)
    assert stats[0] == 7.0 and stats[2] == 0.0
    assert stats[4] == stats[5] == stats[8] == 0.0
    assert np.isfinite(stats).all()
    assert np.isnan(summary_statistics(np.full((150, 2), np.nan))).all()
    with pytest.raises(ValueError, match=r"\(\.\.\., N, 2\).*\(150, 3\)"):
        summary_statistics(np.zeros((150, 3)))


@pytest.mark.parametrize(
    "theta",
    [THETA_STAR, [0.005, 0.8, 0.1, 0.005], [0.01, 0.2, 0.1, 0.05]],
    ids=["theta_star", "predators_die", "prey_die"],
)
def test_vectorised_and_one_chain_loop_agree(theta):
    """Two-sample Kolmogorov-Smirnov tests, fixed seeds: the vectorised simulator (direct method plus
    closed-form phases) against the plain-Python direct method, on each statistic and on X and Y
    at a few record times."""
    vec = simulate_series(np.tile(theta, (2000, 1)), seed=5, workers=1)
    ref = np.concatenate([simulate_reference(theta, 1000 + i).series for i in range(200)])
    columns = {
        name: (summary_statistics(vec.series)[:, j], summary_statistics(ref)[:, j])
        for j, name in enumerate(lv.STATISTICS)
    }
    for k in (10, 40, 149):
        for s, species in enumerate("XY"):
            columns[f"{species}(t={T_RECORD[k]:.1f})"] = (vec.series[:, k, s], ref[:, k, s])
    for name, (a, b) in columns.items():
        p = ks_2samp(a[~np.isnan(a)], b[~np.isnan(b)]).pvalue
        assert p > 1e-3, f"{name}: KS p-value {p:.2e}"


def test_seeds_repeat_and_workers_do_not_matter():
    theta = sample_prior(CHUNK_SIZE + 7, 0)
    done = []
    one = simulate_statistics(theta, seed=11, workers=1, progress=done.append)
    assert sum(done) == theta.shape[0]
    np.testing.assert_array_equal(one, simulate_statistics(theta, seed=11, workers=1))
    np.testing.assert_array_equal(one, simulate_statistics(theta, seed=11, workers=2))
    other = simulate_statistics(theta[:50], seed=12, workers=1)
    assert not np.allclose(other, one[:50], equal_nan=True)


def test_nan_rows_for_failed_simulations():
    theta = np.concatenate([sample_prior(300, 1), [[0.0, 0.0, 1.0, 0.0]]])  # the last one explodes
    stats = simulate_statistics(theta, seed=6, workers=1)
    sim = simulate_series(theta, seed=6, workers=1)
    assert stats.shape == (301, 9) and sim.series.shape == (301, 150, 2)
    assert sim.failed[-1] and 0 < sim.failed.sum() < 300
    np.testing.assert_array_equal(np.isnan(stats).all(axis=1), sim.failed)
    assert np.isfinite(stats[~sim.failed]).all()
    np.testing.assert_allclose(stats[~sim.failed], summary_statistics(sim.series[~sim.failed]))


def test_prior_and_observation():
    theta = sample_prior(10_000, np.random.default_rng(0))
    assert theta.shape == (10_000, 4)
    assert np.log(theta).min() >= -5 and np.log(theta).max() <= 2
    assert abs(np.log(theta).mean() + 1.5) < 0.05
    assert Y_STAR.shape == (9,) and THETA_STAR.shape == (4,)


def test_bad_input():
    with pytest.raises(ValueError, match=r"\(n, 4\).*\(5, 3\)"):
        simulate_statistics(np.ones((5, 3)), seed=0)
    with pytest.raises(ValueError, match="log"):
        simulate_statistics(-np.ones((5, 4)), seed=0)
    with pytest.raises(ValueError, match="seed"):
        simulate_statistics(np.ones((5, 4)), seed=-1)
    assert simulate_statistics(np.ones((0, 4)), seed=0).shape == (0, 9)


def test_datamodule_caches_counts_failures_and_standardises(tmp_path, monkeypatch):
    from ctdl.datamodules import lotka_volterra as lv_data
    from ctdl.datamodules.lotka_volterra import LotkaVolterra
    from ctdl.protocols import PosteriorData

    settings = dict(num_simulations=200, n_test=40, cache_dir=str(tmp_path), workers=1, batch_size=64, seed=3)
    data = LotkaVolterra(**settings)
    assert isinstance(data, PosteriorData) and data.dim == 4 and data.cond_dim == 9
    data.setup()
    assert len(list(tmp_path.glob("lotka_volterra_v*_n*_seed*.npz"))) == 2  # training pool, test split
    assert sorted(n for n, _ in data.failed_counts) == [40, 200]  # (n, seed) of each batch -> failures
    assert data.n_failed == sum(data.failed_counts.values()) > 0  # about 12% of prior draws fail
    sizes = [len(d) for d in (data.train_dataset, data.val_dataset, data.test_dataset)]
    assert sizes == [180, 20, 40]
    theta_z, y_z = data.train_dataset.tensors
    assert theta_z.shape == (180, 4) and y_z.shape == (180, 9) and theta_z.dtype == torch.float32
    torch.testing.assert_close(theta_z.mean(0), torch.zeros(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(y_z.std(0), torch.ones(9), atol=1e-4, rtol=0)
    log_theta = theta_z.double() * data.theta_std + data.theta_mean  # raw units back
    assert log_theta.min() >= -5 - 1e-5 and log_theta.max() <= 2 + 1e-5
    assert data.theta_mean.dtype == torch.float64 and data.y_std.shape == (9,)
    batch = next(iter(data.train_dataloader()))
    assert batch[0].shape == (64, 4) and batch[1].shape == (64, 9)
    torch.testing.assert_close(data.observation(), torch.from_numpy(Y_STAR))

    def no_simulating(*args, **kwargs):
        raise AssertionError("the cache was not used")

    monkeypatch.setattr(lv_data, "simulate_statistics", no_simulating)
    again = LotkaVolterra(**settings)
    again.setup()
    assert again.failed_counts == data.failed_counts
    for a, b in zip(
        (again.train_dataset, again.test_dataset), (data.train_dataset, data.test_dataset), strict=True
    ):
        torch.testing.assert_close(a.tensors, b.tensors)
