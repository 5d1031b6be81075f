"""The Deep BSDE baseline: its recursion with the exact gradient, learning a value, bad input."""

import math

import pytest
import torch

from ctdl.soc import LQR, RiccatiSolution, hjb_lq_value, make_problem
from ctdl.soc.baselines import DeepBSDE, train_deep_bsde
from ctdl.soc.evaluate import realised_cost


def _with_riccati_gradient(steps: int) -> tuple[DeepBSDE, RiccatiSolution]:
    problem = LQR(start_std=0.0)
    model = DeepBSDE(problem, steps=steps).double()
    riccati = RiccatiSolution(problem)
    model.gradient = lambda k, x: 2 * x @ riccati.matrices(k * model.h, 1)[0][0]
    with torch.no_grad():
        model.y0.fill_(float(riccati.value(0.0, model.x0[None])))
    return model, riccati


def test_the_exact_gradient_and_value_close_the_terminal_mismatch():
    """With Riccati's Phi(0, x0) and grad Phi the BSDE ends at g(X_N) up to the Euler error, which
    halves with the step; a value 1 off leaves a mismatch of 1."""
    torch.manual_seed(0)
    coarse, _ = _with_riccati_gradient(50)
    fine, _ = _with_riccati_gradient(200)
    with torch.no_grad():
        mismatch_coarse, mismatch_fine = coarse.loss(4000).sqrt(), fine.loss(4000).sqrt()
        fine.y0.add_(1.0)
        shifted = fine.loss(4000).sqrt()
    assert mismatch_fine < 0.6 * mismatch_coarse
    assert mismatch_fine < 0.1
    assert abs(shifted - 1.0) < 0.1


def test_the_value_carried_along_controlled_paths_is_riccatis():
    torch.manual_seed(0)
    model, riccati = _with_riccati_gradient(200)
    paths, values = model.controlled_paths(500, generator=torch.Generator().manual_seed(1))
    ref = riccati.value(paths.times.repeat_interleave(500), paths.states.reshape(-1, 2)).view(201, 500)
    assert torch.linalg.vector_norm(values - ref) / torch.linalg.vector_norm(ref) < 0.02
    # the realised cost's mean is the optimal expected cost Phi(0, x0)
    cost = realised_cost(model.problem, paths)
    assert abs(cost.mean() - model.y0) < 3 * cost.std() / math.sqrt(500)


@pytest.mark.slow
def test_it_learns_the_hjb_lq_value_from_the_origin():
    torch.manual_seed(0)
    problem = make_problem("hjb_lq", dim=10, lam=1.0)
    model = DeepBSDE(problem, steps=20)
    assert train_deep_bsde(model, iterations=800, lr=0.01, batch=64).iterations == 800
    exact = float(hjb_lq_value(0.0, torch.zeros(1, 10))[0])
    assert abs(model.y0.item() - exact) / exact < 0.02


def test_bad_input_says_what_to_change():
    with pytest.raises(ValueError, match="one start point.*start: origin"):
        DeepBSDE(make_problem("hjb_lq", dim=3, start="gaussian"))
    with pytest.raises(ValueError, match="needs noise"):
        DeepBSDE(make_problem("quadcopter", sigma=0.0))
    with pytest.raises(ValueError, match="steps must be"):
        DeepBSDE(make_problem("hjb_lq", dim=3), steps=0)
    with pytest.raises(ValueError, match="0..19"):
        DeepBSDE(make_problem("hjb_lq", dim=3)).gradient(20, torch.zeros(1, 3))
    with pytest.raises(ValueError, match="either iterations or seconds"):
        train_deep_bsde(DeepBSDE(make_problem("hjb_lq", dim=3)), iterations=10, seconds=1.0)
    with pytest.raises(ValueError, match="budget must be positive"):
        train_deep_bsde(DeepBSDE(make_problem("hjb_lq", dim=3)), seconds=0.0)


def test_a_wall_time_budget_stops_the_training():
    torch.manual_seed(0)
    run = train_deep_bsde(DeepBSDE(make_problem("hjb_lq", dim=3), steps=5), seconds=0.5)
    assert run.iterations > 0 and 0.5 <= run.seconds < 5.0
