"""Checks of the optional extra sbibm (`ctdl[sbi]`); the DOLFINx checks (`ctdl[pde]`) are in
tests/test_pde_control_core.py.

Each test is skipped when its extra is not installed, so the core suite passes without them.
"""

from __future__ import annotations

import importlib.util

import pytest

HAS_SBIBM = importlib.util.find_spec("sbibm") is not None


# --------------------------------------------------------------------------- sbibm


@pytest.mark.skipif(not HAS_SBIBM, reason="needs the sbi extra: pip install 'ctdl[sbi]'")
def test_sbibm_two_moons_reference_posterior_and_c2st():
    """C2ST is ~0.5 between two halves of the reference posterior and ~1 against the prior."""
    import sbibm
    import torch
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
