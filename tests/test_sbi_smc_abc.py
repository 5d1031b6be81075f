"""SMC-ABC (ctdl.sbi.baselines.smc_abc) on a toy model with a known posterior: y = log theta + 0.3 Z
in 2-D, log theta uniform on [-3, 3]^2. The posterior is N(y_obs, 0.3^2 I) truncated to the box
(the truncation is more than 6 standard deviations away), and the ABC posterior at tolerance eps
adds to it a uniform draw from the ellipse |b / s| <= eps (s the scale of the statistics): per
coordinate the variance 0.3^2 + (eps s_k)^2 / (d + 2)."""

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from ctdl.sbi.baselines.smc_abc import ABCResult, _log_kernel_mixture, smc_abc

BOX = (-3.0, 3.0)
SIGMA = 0.3
Y_OBS = np.array([0.5, -1.0])


def toy_prior(n: int, rng: np.random.Generator) -> np.ndarray:
    return np.exp(rng.uniform(*BOX, size=(n, 2)))


class ToySimulator:
    """y = log theta + SIGMA Z; a fraction `fail` of the rows fails (NaN). Counts its rows."""

    def __init__(self, fail: float = 0.0) -> None:
        self.fail, self.rows, self.calls, self.inside = fail, 0, 0, True

    def __call__(self, theta: np.ndarray, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        u = np.log(theta)
        self.rows += u.shape[0]
        self.calls += 1
        self.inside &= bool(np.all((u >= BOX[0]) & (u <= BOX[1])))
        y = u + SIGMA * rng.standard_normal(u.shape)
        y[rng.random(u.shape[0]) < self.fail] = np.nan
        return y


def run(sim=None, **kwargs) -> ABCResult:
    options = dict(particles=200, eps0=3.0, scale_simulations=2000, min_batch=200, seed=0)
    return smc_abc(sim or ToySimulator(), toy_prior, BOX, Y_OBS, **{**options, **kwargs})


def test_posterior_approaches_the_exact_one_as_eps_shrinks():
    coarse = run(particles=1000, eps_final=1.0)
    fine = run(particles=1000, eps_final=0.1)
    assert fine.stop_reason == "final tolerance" and fine.epsilons[-1] == pytest.approx(0.1)
    exact_abc_std = np.sqrt(SIGMA**2 + (0.1 * fine.scale_std) ** 2 / 4)
    assert np.abs(fine.mean() - Y_OBS).max() < 0.05
    assert np.abs(fine.std() - exact_abc_std).max() < 0.035
    assert np.abs(fine.std() - SIGMA).max() < 0.05
    assert np.abs(coarse.std() - SIGMA).min() > 2 * np.abs(fine.std() - SIGMA).max()
    assert np.abs(fine.scale_std - np.sqrt(36 / 12 + SIGMA**2)).max() < 0.1  # the prior predictive std


def test_counts_every_simulation_and_none_outside_the_prior():
    sim = ToySimulator(fail=0.1)
    res = run(sim, max_rounds=5)
    assert res.stop_reason == "rounds" and len(res.epsilons) == 5
    assert res.simulations == sim.rows == res.scale_simulations + res.simulations_per_round.sum()
    assert sim.inside and res.outside_prior_per_round.sum() > 0
    assert np.all(res.failed_per_round > 0)  # failed simulations are counted ...
    assert np.all(np.isfinite(res.samples))  # ... and rejected
    assert np.all((res.samples >= BOX[0]) & (res.samples <= BOX[1]))
    rate = res.simulations_per_round * res.acceptance_rates
    assert np.all(rate >= 200 - 1e-9)


def test_budget_stops_with_the_last_complete_population():
    sim = ToySimulator()
    res = run(sim, eps_final=0.01, max_simulations=20_000)
    assert res.stop_reason == "simulation budget"
    assert res.simulations == sim.rows <= 20_000
    unfinished = res.unfinished["simulations"] if res.unfinished else 0
    assert res.simulations == res.scale_simulations + res.simulations_per_round.sum() + unfinished
    assert res.samples.shape == (200, 2) and res.epsilons[-1] > 0.01


def test_schedule_rounds_and_final_eps():
    res = run(decay=0.5, eps_final=0.5)
    np.testing.assert_allclose(res.epsilons, [3.0, 1.5, 0.75, 0.5])
    assert res.stop_reason == "final tolerance"
    res = run(max_rounds=3, decay=0.85)
    np.testing.assert_allclose(res.epsilons, [3.0, 2.55, 2.1675])


def test_weights_and_ess_resampling():
    default = run(max_rounds=6)
    assert default.weights.sum() == pytest.approx(1.0)
    np.testing.assert_array_equal(default.resampled, default.ess < 0.5 * 200)
    never = run(max_rounds=6, resample_ess=0.0)
    assert not never.resampled.any() and never.weights.sum() == pytest.approx(1.0)
    assert never.weights.std() > 0 and never.ess[-1] < 200
    always = run(max_rounds=6, resample_ess=1.0)
    assert always.resampled[1:].all() and not always.resampled[0]  # round 0 has equal weights
    np.testing.assert_allclose(always.weights, 1 / 200)


def test_importance_weights_match_a_direct_sum():
    rng = np.random.default_rng(1)
    x, centres = rng.normal(size=(7, 3)), rng.normal(size=(5, 3))
    w = rng.random(5)
    w /= w.sum()
    a = rng.normal(size=(3, 3))
    cov = a @ a.T + 0.5 * np.eye(3)
    direct = np.log(
        [sum(wj * multivariate_normal(c, cov).pdf(xi) for wj, c in zip(w, centres, strict=True)) for xi in x]
    )
    np.testing.assert_allclose(
        _log_kernel_mixture(x, centres, np.log(w), np.linalg.cholesky(cov), block=3), direct, rtol=1e-10
    )


def test_seeds_repeat():
    a, b, c = run(max_rounds=3), run(max_rounds=3), run(max_rounds=3, seed=1)
    np.testing.assert_array_equal(a.samples, b.samples)
    np.testing.assert_array_equal(a.weights, b.weights)
    assert a.simulations == b.simulations
    assert not np.array_equal(a.samples, c.samples)


def test_given_scale_simulates_no_prior_set():
    sim = ToySimulator()
    res = run(sim, max_rounds=2, scale=(np.zeros(2), np.ones(2)))
    assert res.scale_simulations == 0 and res.simulations == sim.rows == res.simulations_per_round.sum()


def test_bad_input():
    with pytest.raises(ValueError, match="observation has 3 entries but the simulator returns 2 statistics"):
        smc_abc(ToySimulator(), toy_prior, BOX, np.zeros(3), particles=10, max_rounds=1)
    with pytest.raises(ValueError, match="particles must be an integer >= 2, got 1"):
        run(particles=1, max_rounds=1)
    for decay in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match=rf"decay must be in \(0, 1\), got {decay}"):
            run(decay=decay, max_rounds=1)
    with pytest.raises(ValueError, match="at least one of eps_final, max_simulations and max_rounds"):
        run()
    with pytest.raises(ValueError, match="observation must be a finite vector"):
        smc_abc(ToySimulator(), toy_prior, BOX, np.array([0.0, np.nan]), max_rounds=1)
    with pytest.raises(ValueError, match="log theta in the prior box"):
        smc_abc(ToySimulator(), lambda n, rng: np.exp(rng.uniform(0, 5, (n, 2))), BOX, Y_OBS, max_rounds=1)
    with pytest.raises(ValueError, match="ran out before the first population"):
        run(max_simulations=2100, eps0=0.01, max_rounds=2)
