"""Strong and weak orders of the SDE steppers, from the slope of log(error) against log(h).

Strong errors use fixed Brownian paths (coarse increments are sums of fine ones) and exact
solutions on the same path. Weak errors use the schemes' exact expectations on these linear
SDEs, computed by running the solver on a few deterministic increment sequences (no Monte Carlo
noise in the slope): for geometric Brownian motion a binomial tree of two-point increments, for
Ornstein-Uhlenbeck 2N + 1 runs (the schemes are linear in the increments there). A Monte Carlo
check with common random numbers confirms the bias that Brownian increments give.
"""

import math

import numpy as np
import pytest
import torch

from ctdl.integrators import sdeint

T = 1.0
MU, SIGMA = 0.5, 0.8  # geometric Brownian motion dY = mu Y dt + sigma Y dW
THETA, S, KAPPA, Y0 = 2.0, 0.7, 1.0, 1.5  # OU dY = -theta Y dt + s e^{kappa t} dW


@pytest.fixture(autouse=True)
def float64():
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def slope(steps, errors):
    """Least-squares slope of log(error) against log(h), h = T / steps."""
    return np.polyfit(np.log([T / n for n in steps]), np.log(errors), 1)[0]


def coarse(dW_fine, steps):
    """Increments over `steps` equal steps of the Brownian path with fine increments dW_fine."""
    return dW_fine.view(steps, dW_fine.shape[0] // steps, *dW_fine.shape[1:]).sum(1)


def solve(method, drift, diffusion, y0, steps, noise):
    return sdeint(drift, diffusion, y0, torch.tensor([0.0, T]), method=method, steps=steps, noise=noise)


def gbm_paths(paths, fine, seed):
    """Fine Brownian increments and the exact GBM Y(T) = exp((mu - sigma^2/2) T + sigma W(T))."""
    gen = torch.Generator().manual_seed(seed)
    dW = torch.randn(fine, paths, generator=gen) * math.sqrt(T / fine)
    return dW, torch.exp((MU - SIGMA**2 / 2) * T + SIGMA * dW.sum(0))


def ou_paths(paths, fine, seed):
    """Fine increments dW_k and the exact OU (constant s) on the same path.

    Over a step of length d: Y' = e^{-theta d} Y + s I with I = int e^{-theta (t' - u)} dW(u),
    drawn jointly with dW: Var I = (1 - e^{-2 theta d}) / (2 theta), Cov(I, dW) = (1 - e^{-theta d}) / theta.
    """
    gen = torch.Generator().manual_seed(seed)
    d = T / fine
    dW = torch.randn(fine, paths, generator=gen) * math.sqrt(d)
    var_i, cov = (1 - math.exp(-2 * THETA * d)) / (2 * THETA), (1 - math.exp(-THETA * d)) / THETA
    integral = cov / d * dW + math.sqrt(var_i - cov**2 / d) * torch.randn(fine, paths, generator=gen)
    y = torch.full((paths,), Y0)
    for k in range(fine):
        y = math.exp(-THETA * d) * y + S * integral[k]
    return dW, y


def test_euler_maruyama_strong_order_one_half_on_geometric_brownian_motion():
    dW, exact = gbm_paths(4000, 256, seed=0)
    steps = (16, 32, 64, 128, 256)
    errors = [
        (
            solve(
                "euler_maruyama",
                lambda t, y: MU * y,
                lambda t, y: SIGMA * y,
                torch.ones(4000),
                n,
                coarse(dW, n),
            )[-1]
            - exact
        )
        .abs()
        .mean()
        .item()
        for n in steps
    ]
    assert slope(steps, errors) == pytest.approx(0.5, abs=0.08)


@pytest.mark.parametrize("method", ["euler_maruyama", "heun"])
def test_strong_order_one_on_ornstein_uhlenbeck(method):
    """Additive noise: the Milstein correction g g' vanishes, so Euler-Maruyama has strong order 1."""
    dW, exact = ou_paths(4000, 256, seed=1)
    steps = (16, 32, 64, 128, 256)
    errors = [
        (
            solve(
                method,
                lambda t, y: -THETA * y,
                lambda t, y: torch.full_like(y, S),
                torch.full((4000,), Y0),
                n,
                coarse(dW, n),
            )[-1]
            - exact
        )
        .abs()
        .mean()
        .item()
        for n in steps
    ]
    assert slope(steps, errors) == pytest.approx(1.0, abs=0.05)


def binomial_expectation(run, steps, phi):
    """E phi(Y_N) for Euler-Maruyama on GBM, exactly, for phi(y) = y^p with p <= 3.

    Y_N = y0 prod_k (1 + mu h + sigma dW_k) is a product of independent factors, so E Y_N^p only
    needs E dW^q for q <= p <= 3, which the two-point increments +-sqrt(h) share with N(0, h).
    Factors commute: a path's Y_N depends only on its number j of up-steps, drawn with
    probability C(N, j) / 2^N. `run(increments)` solves one path per column (steps, N + 1).
    """
    k, j = torch.arange(steps)[:, None], torch.arange(steps + 1)[None, :]
    dW = math.sqrt(T / steps) * torch.where(k < j, 1.0, -1.0)
    weights = torch.tensor([math.comb(steps, i) / 2**steps for i in range(steps + 1)])
    return (weights * phi(run(dW))).sum().item()


def test_euler_maruyama_weak_order_one_on_geometric_brownian_motion():
    """E Y(T) = e^{mu T}, E Y(T)^2 = e^{(2 mu + sigma^2) T}; the scheme's E Y_N^p exactly."""
    steps = (16, 32, 64, 128, 256)

    def run(dW):
        return solve(
            "euler_maruyama",
            lambda t, y: MU * y,
            lambda t, y: SIGMA * y,
            torch.ones(dW.shape[1]),
            dW.shape[0],
            dW,
        )[-1]

    for power, exact in ((1, math.exp(MU * T)), (2, math.exp((2 * MU + SIGMA**2) * T))):
        errors = [abs(binomial_expectation(run, n, lambda y, p=power: y**p) - exact) for n in steps]
        assert slope(steps, errors) == pytest.approx(1.0, abs=0.05), power


def test_euler_maruyama_weak_error_by_monte_carlo_matches_the_exact_bias():
    """Monte Carlo with common random numbers and the exact Y(T) on the same path as a control
    variate: the estimated bias of E Y(T)^p matches the scheme's exact bias within 4 standard errors.

    E Y_N = (1 + mu h)^N, E Y_N^2 = ((1 + mu h)^2 + sigma^2 h)^N.
    """
    dW, exact = gbm_paths(20_000, 32, seed=2)
    for n in (4, 8, 16, 32):
        yN = solve(
            "euler_maruyama",
            lambda t, y: MU * y,
            lambda t, y: SIGMA * y,
            torch.ones(20_000),
            n,
            coarse(dW, n),
        )[-1]
        h = T / n
        moments = (
            (1, (1 + MU * h) ** n, math.exp(MU * T)),
            (2, ((1 + MU * h) ** 2 + SIGMA**2 * h) ** n, math.exp((2 * MU + SIGMA**2) * T)),
        )
        for p, scheme, true in moments:
            d = yN**p - exact**p
            se = d.std().item() / math.sqrt(d.numel())
            assert abs(scheme - true) > 3 * se  # the bias stands out of the Monte Carlo error
            assert d.mean().item() == pytest.approx(scheme - true, abs=4 * se)


def expectation(run, steps):
    """E Q(dW_1..dW_N), dW_k ~ N(0, h), for Q quadratic in the increments, from 2N + 1 runs.

    Q = a + b.dW + dW' A dW gives E Q = a + h tr A, and A_kk = (Q(e_k) + Q(-e_k)) / 2 - a.
    `run(increments)` solves one path per column of increments (steps, 2N + 1).
    """
    eye = torch.eye(steps)
    q = run(torch.cat([torch.zeros(steps, 1), eye, -eye], 1))
    a, plus, minus = q[0], q[1 : steps + 1], q[steps + 1 :]
    return (a + (T / steps) * ((plus + minus) / 2 - a).sum()).item()


@pytest.mark.parametrize("method, order", [("euler_maruyama", 1.0), ("heun", 2.0)])
def test_weak_order_on_ornstein_uhlenbeck_with_running_cost(method, order):
    """dY = -theta Y dt + s e^{kappa t} dW, dC = Y^2 dt (no noise): E Y(T), E Y(T)^2 and E C(T).

    m(t) = y0 e^{-theta t}, v(t) = s^2 e^{-2 theta t} (e^{2 a t} - 1) / (2 a), a = theta + kappa,
    E C(T) = int_0^T m^2 + v dt. The time-dependent noise also checks that heun averages g over a step.
    """
    a = THETA + KAPPA
    mean = Y0 * math.exp(-THETA * T)
    var = S**2 * math.exp(-2 * THETA * T) * (math.exp(2 * a * T) - 1) / (2 * a)
    cost = Y0**2 * (1 - math.exp(-2 * THETA * T)) / (2 * THETA) + S**2 / (2 * a) * (
        (math.exp(2 * KAPPA * T) - 1) / (2 * KAPPA) - (1 - math.exp(-2 * THETA * T)) / (2 * THETA)
    )
    drift = lambda t, y: (-THETA * y[0], y[0] ** 2)  # noqa: E731
    diffusion = lambda t, y: (S * torch.exp(KAPPA * t) * torch.ones_like(y[0]), None)  # noqa: E731
    steps = (16, 32, 64, 128)
    errors = {"mean": [], "second moment": [], "running cost": []}
    for n in steps:

        def run(dW, n=n):
            paths = dW.shape[1]
            return solve(method, drift, diffusion, (torch.full((paths,), Y0), torch.zeros(paths)), n, dW)

        errors["mean"].append(abs(expectation(lambda dW: run(dW)[0][-1], n) - mean))
        errors["second moment"].append(abs(expectation(lambda dW: run(dW)[0][-1] ** 2, n) - mean**2 - var))
        errors["running cost"].append(abs(expectation(lambda dW: run(dW)[1][-1], n) - cost))
    for what, errs in errors.items():
        assert slope(steps, errs) == pytest.approx(order, abs=0.12), what
