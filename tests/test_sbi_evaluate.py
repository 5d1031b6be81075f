"""ctdl.sbi without Lightning: the raw-unit posterior wrapper, the evaluation metrics, the baselines'
helpers, and the budget's simulations a baseline shares with the datamodule."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from ctdl.datamodules import SBIBMTask
from ctdl.sbi import FlowPosterior, PosteriorScaling
from ctdl.sbi.baselines import NPEPosterior, resample_population, train_npe
from ctdl.sbi.evaluate import compare_moments, reference_c2st, sampling_seconds

from .test_sbi_model import perturbed_model

HAS_SBIBM = importlib.util.find_spec("sbibm") is not None
needs_sbibm = pytest.mark.skipif(not HAS_SBIBM, reason="needs the sbi extra: pip install 'ctdl[sbi]'")


def test_flow_posterior_is_the_models_raw_unit_interface():
    model = perturbed_model(dim=2)
    model.hparams.eval_steps = 4
    posterior = model.posterior
    assert isinstance(posterior, FlowPosterior) and posterior.flow is model.flow and posterior.steps == 4
    assert not any(k.startswith("posterior.") for k in model.state_dict())  # checkpoints keep their keys
    y = torch.tensor([1.0, -1.0], dtype=torch.float64)
    gen = torch.Generator().manual_seed(3)
    samples = posterior.sample(50, y, generator=gen)
    torch.testing.assert_close(
        samples, model.sample_posterior(50, y, generator=torch.Generator().manual_seed(3)), rtol=0, atol=0
    )
    torch.testing.assert_close(posterior.log_prob(samples, y), model.log_prob(samples, y), rtol=0, atol=0)
    with pytest.raises(ValueError, match="the flow models 2 parameters given 2 statistics, the scaling 3"):
        FlowPosterior(model.flow, PosteriorScaling(3, 2))


def test_compare_moments_and_resampling():
    gen = torch.Generator().manual_seed(0)
    ours = torch.randn(4000, 2, generator=gen, dtype=torch.float64) * torch.tensor([1.0, 2.0])
    theirs = ours + torch.tensor([0.5, 3.0])
    rows = compare_moments(ours, theirs)
    assert [r["within_one_reference_std"] for r in rows] == [True, False]
    assert rows[1]["reference_mean"] - rows[1]["mean"] == pytest.approx(3.0)
    assert rows[0]["std"] == pytest.approx(rows[0]["reference_std"])
    with pytest.raises(ValueError, match=r"compare_moments needs two sample sets .* \(5, 3\)"):
        compare_moments(ours, torch.zeros(5, 3))
    population = np.arange(6.0).reshape(3, 2)
    picked = resample_population(population, np.array([0.0, 2.0, 0.0]), seed=1)
    assert (picked == population[1]).all()
    np.testing.assert_array_equal(
        resample_population(population, np.ones(3), seed=4),
        resample_population(population, np.ones(3), seed=4),
    )


def test_sampling_seconds_returns_the_median_and_the_seeded_samples():
    model = perturbed_model(dim=2)
    posterior = FlowPosterior(model.flow, model.scaling, steps=4)
    y = torch.zeros(2, dtype=torch.float64)
    seconds, samples = sampling_seconds(posterior, y, 20, repeats=3, seed=5)
    assert seconds > 0
    torch.testing.assert_close(samples, posterior.sample(20, y, generator=torch.Generator().manual_seed(5)))


def test_simulate_budget_gives_the_pairs_of_the_training_and_validation_splits():
    data = SBIBMTask("two_moons", num_simulations=200, n_test=20, seed=7)
    data.setup("fit")
    theta, y = data.simulate_budget()
    assert theta.shape == (200, 2) and y.shape == (200, 2)
    u = torch.cat([data.train_dataset.tensors[0], data.val_dataset.tensors[0]])
    raw = (u.double() * data.theta_std + data.theta_mean).sort(0).values
    torch.testing.assert_close(raw, theta.sort(0).values, atol=1e-5, rtol=1e-5)
    budget, test, split = data.split_seeds()
    assert len({budget, test, split}) == 3 and data.split_seeds() == (budget, test, split)


@needs_sbibm
def test_reference_c2st_scores_each_observation_with_its_seed():
    class Reference:
        """Two observations whose reference posteriors are N(0, 1) and N(5, 1) in 2-D."""

        num_observations = 2

        def observation(self, i):
            return torch.full((2,), float(i))

        def reference_posterior(self, i):
            gen = torch.Generator().manual_seed(100 + i)
            return torch.randn(400, 2, generator=gen) + (0.0 if i == 1 else 5.0)

    class Standard:
        """Samples N(0, 1) whatever the observation."""

        device = torch.device("cpu")
        seeds: list = []

        def sample(self, n, y, *, generator=None):
            self.seeds.append(generator.initial_seed())
            return torch.randn(n, 2, generator=generator)

    sampler = Standard()
    scores = reference_c2st(sampler, Reference(), n_samples=300)
    assert sampler.seeds == [1, 2] and set(scores) == {1, 2}
    assert scores[1] < 0.65 and scores[2] > 0.95
    assert list(reference_c2st(sampler, Reference(), observations=[2])) == [2]


@needs_sbibm
def test_sbibm_two_moons_reference_posterior_and_c2st():
    """C2ST is ~0.5 between two halves of the reference posterior and ~1 against the prior."""
    import sbibm
    from sbibm.metrics import c2st

    torch.manual_seed(0)
    task = sbibm.get_task("two_moons")
    ref = task.get_reference_posterior_samples(num_observation=1)
    assert ref.shape == (10_000, 2)
    ref = ref[torch.randperm(ref.shape[0])]

    n = 1000
    same = float(c2st(ref[:n], ref[n : 2 * n], seed=1, n_folds=2))
    prior_samples = task.get_prior()(num_samples=n)
    assert prior_samples.shape == (n, 2)
    different = float(c2st(ref[:n], prior_samples, seed=1, n_folds=2))
    assert same < 0.6, same
    assert different > 0.9, different


@pytest.mark.slow
@needs_sbibm
def test_npe_baseline_trains_on_given_pairs_and_samples_seeded():
    data = SBIBMTask("gaussian_linear", num_simulations=300, seed=0)
    theta, y = data.simulate_budget()
    npe = train_npe(theta, y, data.task.get_prior_dist(), seed=0, density_estimator="mdn")
    assert isinstance(npe, NPEPosterior) and npe.epochs >= 1 and npe.train_s > 0
    obs = data.observation(1)
    a = npe.sample(50, obs, generator=torch.Generator().manual_seed(2))
    b = npe.sample(50, obs, generator=torch.Generator().manual_seed(2))
    assert a.shape == (50, 10) and torch.equal(a, b)
    state = torch.random.get_rng_state()
    npe.sample(5, obs, generator=torch.Generator().manual_seed(3))
    assert torch.equal(torch.random.get_rng_state(), state)  # the global stream is left alone
