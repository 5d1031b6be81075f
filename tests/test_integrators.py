"""Numerical identities of ctdl.integrators: orders of convergence, gradients, reversibility."""

import math

import numpy as np
import pytest
import torch
import torchdiffeq
from torch import nn

from ctdl.dynamics import HamiltonianLayer
from ctdl.integrators import known_methods, odeint


@pytest.fixture(autouse=True)
def float64():
    """These are float64 identities; restore the default afterwards for the other test files."""
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def observed_order(method, func, y0, exact, T=1.0, steps=(8, 16, 32, 64)):
    """Slope of log(error) against log(h) from a least-squares fit."""
    t = torch.tensor([0.0, T])
    errors = []
    for n in steps:
        yT = odeint(func, y0, t, method=method, steps=n)
        yT = yT[-1] if isinstance(yT, torch.Tensor) else tuple(part[-1] for part in yT)
        err = sum(
            (a - b).abs().max().item()
            for a, b in zip(
                (yT,) if isinstance(yT, torch.Tensor) else yT,
                (exact,) if isinstance(exact, torch.Tensor) else exact,
                strict=True,
            )
        )
        errors.append(err)
    h = [T / n for n in steps]
    return np.polyfit(np.log(h), np.log(errors), 1)[0]


def growth(t, y):
    """y' = cos(t) y, y(t) = y0 exp(sin t): a non-autonomous test problem."""
    return torch.cos(t) * y


@pytest.mark.parametrize("method, order", [("euler", 1), ("rk4", 4)])
def test_order_of_convergence(method, order):
    y0 = torch.tensor([1.0, -0.5, 2.0])
    exact = y0 * math.exp(math.sin(1.0))
    assert observed_order(method, growth, y0, exact) == pytest.approx(order, abs=0.15)


class Oscillator(nn.Module):
    """Separable H = p^2/2 + q^2/2: dq = p, dp = -q; q = cos t, p = -sin t from (1, 0)."""

    def dq(self, t, p):
        return p

    def dp(self, t, q):
        return -q

    def forward(self, t, state):
        q, p = state
        return self.dq(t, p), self.dp(t, q)


def test_leapfrog_is_second_order():
    y0 = (torch.tensor([1.0]), torch.tensor([0.0]))
    T = 2.0
    exact = (torch.tensor([math.cos(T)]), torch.tensor([-math.sin(T)]))
    assert observed_order("leapfrog", Oscillator(), y0, exact, T=T) == pytest.approx(2.0, abs=0.1)


def test_leapfrog_is_time_reversible_for_nonlinear_time_dependent_field():
    torch.manual_seed(0)
    f = HamiltonianLayer(6, pieces=3)
    q0, p0 = torch.randn(10, 6), torch.randn(10, 6)
    qT, pT = (s[-1] for s in odeint(f, (q0, p0), torch.tensor([0.0, 1.0]), method="leapfrog", steps=9))
    qb, pb = (s[-1] for s in odeint(f, (qT, pT), torch.tensor([1.0, 0.0]), method="leapfrog", steps=9))
    assert (qT - q0).abs().max() > 1e-2  # the flow moved the state
    assert torch.allclose(qb, q0, atol=1e-12) and torch.allclose(pb, p0, atol=1e-12)
    # RK4 is not reversible: the same round trip leaves an error far above rounding
    qT, pT = (s[-1] for s in odeint(f, (q0, p0), torch.tensor([0.0, 1.0]), method="rk4", steps=9))
    qb, _ = (s[-1] for s in odeint(f, (qT, pT), torch.tensor([1.0, 0.0]), method="rk4", steps=9))
    assert (qb - q0).abs().max() > 1e-10


def test_tuple_state_matches_separate_solves_and_outputs_at_all_times():
    y0, z0 = torch.randn(4, 3), torch.randn(4)
    t = torch.tensor([0.0, 0.25, 0.6, 1.0])
    ys, zs = odeint(lambda t, s: (growth(t, s[0]), -s[1]), (y0, z0), t, method="rk4", steps=40)
    assert ys.shape == (4, 4, 3) and zs.shape == (4, 4)
    assert torch.allclose(ys, odeint(growth, y0, t, method="rk4", steps=40))
    assert torch.allclose(ys[:, 0, 0], y0[0, 0] * torch.exp(torch.sin(t)), atol=1e-7)
    assert torch.allclose(zs[:, 1], z0[1] * torch.exp(-t), atol=1e-7)


def test_steps_spread_over_output_intervals():
    calls = []
    t = torch.tensor([0.0, 0.5, 1.0])

    def f(t, y):
        calls.append(float(t))
        return y

    odeint(f, torch.ones(1), t, method="euler", steps=10)
    assert len(calls) == 10 and calls[5] == pytest.approx(0.5)


def test_backward_in_time_inverts_forward():
    y0 = torch.randn(5)
    y1 = odeint(growth, y0, torch.tensor([0.0, 1.0]), method="rk4", steps=64)[-1]
    yb = odeint(growth, y1, torch.tensor([1.0, 0.0]), method="rk4", steps=64)[-1]
    assert torch.allclose(yb, y0, atol=1e-8)


def test_other_methods_go_to_torchdiffeq():
    y0 = torch.tensor([1.0])
    yT = odeint(growth, y0, torch.tensor([0.0, 1.0]), method="dopri5", rtol=1e-10, atol=1e-12)[-1]
    assert yT.item() == pytest.approx(math.exp(math.sin(1.0)), rel=1e-9)
    mid = odeint(growth, y0, torch.tensor([0.0, 1.0]), method="midpoint", steps=16)[-1]
    ref = torchdiffeq.odeint(
        growth, y0, torch.tensor([0.0, 1.0]), method="midpoint", options={"step_size": 1 / 16}
    )[-1]
    assert torch.allclose(mid, ref, atol=1e-14)


class Linear(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.A = nn.Parameter(0.5 * torch.randn(d, d))

    def forward(self, t, y):
        return torch.tanh(y @ self.A.T) + torch.sin(t) * y


def test_gradcheck_through_fixed_step_solve():
    torch.manual_seed(0)
    y0 = torch.randn(3, 4, requires_grad=True)
    A = (0.5 * torch.randn(4, 4)).requires_grad_()

    def solve(y0, A):
        return odeint(
            lambda t, y: torch.tanh(y @ A.T) + torch.sin(t) * y,
            y0,
            torch.tensor([0.0, 0.5, 1.0]),
            method="rk4",
            steps=8,
        )

    assert torch.autograd.gradcheck(solve, (y0, A))


@pytest.mark.parametrize("method, steps", [("rk4", 40), ("euler", 200)])
def test_adjoint_gradient_matches_backprop_and_finite_differences(method, steps):
    torch.manual_seed(0)
    f = Linear(4)
    y0 = torch.randn(3, 4, requires_grad=True)
    t = torch.tensor([0.0, 0.3, 1.0])

    def loss(adjoint):
        out = odeint(f, y0, t, method=method, steps=steps, adjoint=adjoint)
        return out[1].pow(2).sum() + out[-1].sin().sum()

    g_adj = torch.autograd.grad(loss(True), (y0, f.A))
    g_bp = torch.autograd.grad(loss(False), (y0, f.A))
    tol = 1e-6 if method == "rk4" else 1e-2  # both approximate the same continuous gradient
    for a, b in zip(g_adj, g_bp, strict=True):
        assert torch.allclose(a, b, rtol=tol, atol=tol)


def test_gradcheck_through_adjoint():
    torch.manual_seed(1)
    f = Linear(3)
    y0 = torch.randn(2, 3, requires_grad=True)

    def solve(y):
        return odeint(f, y, torch.tensor([0.0, 1.0]), method="rk4", steps=40, adjoint=True)

    assert torch.autograd.gradcheck(solve, (y0,), atol=1e-6)


def test_adjoint_uses_classic_rk4_like_the_forward_solve():
    f = Linear(3)
    y0 = torch.randn(2, 3)
    t = torch.tensor([0.0, 1.0])
    a = odeint(f, y0, t, method="rk4", steps=5, adjoint=True)
    b = odeint(f, y0, t, method="rk4", steps=5)
    c = torchdiffeq.odeint(f, y0, t, method="rk4", options={"step_size": 0.2})  # 3/8 rule
    assert torch.allclose(a, b, atol=1e-14)
    assert not torch.allclose(a, c, atol=1e-10)


def test_bad_input_errors():
    y0 = torch.ones(2)
    t = torch.tensor([0.0, 1.0])
    with pytest.raises(ValueError, match="unknown ODE method 'rk5'.*dopri5.*euler.*leapfrog.*rk4"):
        odeint(growth, y0, t, method="rk5")
    assert {"euler", "rk4", "leapfrog", "dopri5"} <= set(known_methods())
    with pytest.raises(ValueError, match="steps is for fixed-step methods"):
        odeint(growth, y0, t, method="dopri5", steps=10)
    with pytest.raises(ValueError, match="1-D tensor"):
        odeint(growth, y0, torch.tensor(1.0))
    with pytest.raises(TypeError, match="separable two-state field"):
        odeint(lambda t, s: s, (y0, y0), t, method="leapfrog")
    with pytest.raises(ValueError, match="no adjoint"):
        odeint(Oscillator(), (y0, y0), t, method="leapfrog", adjoint=True)


def test_steps_is_the_exact_total_over_uneven_intervals():
    from ctdl.integrators.grid import step_counts

    for times, steps in [([0.0, 1 / 3, 2 / 3, 1.0], 8), ([0.0, 0.1, 1.0], 10), ([0.0, 0.5, 1.0], 2)]:
        counts = step_counts(torch.tensor(times), steps)
        assert sum(counts) == steps and min(counts) >= 1
