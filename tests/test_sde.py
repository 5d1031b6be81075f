"""sdeint's interface: tuple states with running costs, backward time, noise objects, seeds, errors."""

import math

import pytest
import torch
import torchdiffeq

from ctdl.integrators import (
    SDE_METHODS,
    BrownianNoise,
    ColouredNoise,
    EulerMaruyama,
    StochasticHeun,
    odeint,
    sdeint,
)

THETA, S = 2.0, 0.7  # Ornstein-Uhlenbeck dY = -theta Y dt + s dW


@pytest.fixture(autouse=True)
def float64():
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def ou_drift(t, y):
    return -THETA * y


def ou_diffusion(t, y):
    return torch.full_like(y, S)


def test_registry_and_orders():
    assert SDE_METHODS == {"euler_maruyama": EulerMaruyama, "heun": StochasticHeun}
    assert (EulerMaruyama.strong_order, EulerMaruyama.weak_order) == (0.5, 1.0)
    assert (StochasticHeun.strong_order, StochasticHeun.weak_order) == (1.0, 2.0)


def test_ornstein_uhlenbeck_mean_and_variance_with_brownian_noise():
    """E Y(T) = y0 e^{-theta T}, Var Y(T) = s^2 (1 - e^{-2 theta T}) / (2 theta), drawn with a seed."""
    T = 1.0
    yT = sdeint(
        ou_drift,
        ou_diffusion,
        torch.full((20_000,), 1.5),
        torch.tensor([0.0, T]),
        method="heun",
        steps=64,
        seed=1,
    )[-1]
    var = S**2 * (1 - math.exp(-2 * THETA * T)) / (2 * THETA)
    assert yT.mean().item() == pytest.approx(1.5 * math.exp(-THETA * T), abs=4 * math.sqrt(var / 20_000))
    assert yT.var().item() == pytest.approx(var, rel=4 * math.sqrt(2 / 20_000))


@pytest.mark.parametrize("method, ode_method", [("euler_maruyama", "euler"), ("heun", "heun2")])
def test_tuple_state_without_noise_is_the_ode_solve(method, ode_method):
    """With g = 0 (None on the running cost) the SDE steppers are Euler and Heun's ODE method."""
    # seeded and of moderate size: y' = y^3 / 10 from a large unseeded draw blew up to NaN before t = 1
    y0 = 0.5 * torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    c0 = torch.zeros(5)
    t = torch.tensor([0.0, 0.4, 1.0])

    def field(t, s):
        return -torch.sin(t) * s[0] + s[0] ** 3 / 10, s[0].pow(2).sum(-1)

    ys, cs = sdeint(field, lambda t, s: (torch.zeros_like(s[0]), None), (y0, c0), t, method=method, steps=20)
    if ode_method == "euler":
        ref = odeint(field, (y0, c0), t, method="euler", steps=20)
    else:  # torchdiffeq's heun2 on the same grid: steps of 0.05
        ref = torchdiffeq.odeint(field, (y0, c0), t, method="heun2", options={"step_size": 0.05})
    assert ys.shape == (3, 5, 3) and cs.shape == (3, 5)
    assert torch.allclose(ys, ref[0], atol=1e-12) and torch.allclose(cs, ref[1], atol=1e-12)


def test_running_cost_matches_its_exact_expectation():
    """dY = -theta Y dt + s dW, dC = Y^2 dt with no noise on C: with D = (1 - e^{-2 theta T}) / (2 theta),
    E C(T) = y0^2 D + s^2 / (2 theta) (T - D)."""
    T, y0, n = 1.0, 1.5, 20_000
    decay = (1 - math.exp(-2 * THETA * T)) / (2 * THETA)
    exact = y0**2 * decay + S**2 / (2 * THETA) * (T - decay)
    ys, cs = sdeint(
        lambda t, s: (ou_drift(t, s[0]), s[0] ** 2),
        lambda t, s: (ou_diffusion(t, s[0]), None),
        (torch.full((n,), y0), torch.zeros(n)),
        torch.tensor([0.0, T]),
        method="heun",
        steps=32,
        seed=5,
    )
    cost = cs[-1]
    assert cost.mean().item() == pytest.approx(exact, abs=4 * cost.std().item() / math.sqrt(n))
    assert torch.equal(cs[0], torch.zeros(n))


@pytest.mark.parametrize("method", ["euler_maruyama", "heun"])
def test_backward_in_time_is_the_forward_solve_of_the_reversed_sde(method):
    """With tau = 1 - t, stepping t from 1 down to 0 (h < 0) is stepping tau up with drift
    -f(1 - tau, y) and diffusion g(1 - tau) on the same increments."""
    y0 = torch.randn(6, 2)
    dW = 0.2 * torch.randn(10, 6, 2)

    def f(t, y):
        return torch.cos(3 * t) * y + torch.sin(y)

    def g(t, y):
        return (1 + t) * torch.ones_like(y)

    times = []
    back = sdeint(
        lambda t, y: times.append(float(t)) or f(t, y),
        g,
        y0,
        torch.tensor([1.0, 0.5, 0.0]),
        method=method,
        steps=10,
        noise=dW,
    )
    fwd = sdeint(
        lambda s, y: -f(1 - s, y),
        lambda s, y: g(1 - s, y),
        y0,
        torch.tensor([0.0, 0.5, 1.0]),
        method=method,
        steps=10,
        noise=dW,
    )
    assert back.shape == (3, 6, 2) and torch.allclose(back, fwd, atol=1e-12)
    assert times[0] == 1.0 and all(a > b for a, b in zip(times[::2], times[2::2], strict=False))


def test_backward_brownian_increments_have_variance_abs_h():
    """dY = dW from t = 1 back to t = 0: Y(0) - Y(1) ~ N(0, 1), and half of that at t = 0.5."""
    ys = sdeint(
        lambda t, y: torch.zeros_like(y),
        lambda t, y: torch.ones_like(y),
        torch.zeros(20_000),
        torch.tensor([1.0, 0.5, 0.0]),
        steps=8,
        seed=0,
    )
    assert ys[1].var().item() == pytest.approx(0.5, rel=0.04)  # 4 standard errors, sqrt(2 / n) each
    assert ys[2].var().item() == pytest.approx(1.0, rel=0.04)


def test_seeded_runs_repeat():
    def run(**kw):
        return sdeint(
            lambda t, y: -y, lambda t, y: y, torch.ones(3), torch.tensor([0.0, 1.0]), steps=10, **kw
        )

    assert torch.equal(run(seed=3), run(seed=3)) and not torch.equal(run(seed=3), run(seed=4))
    gen = lambda: torch.Generator().manual_seed(7)  # noqa: E731
    assert torch.equal(run(generator=gen()), run(generator=gen()))
    assert torch.equal(run(noise=BrownianNoise(seed=7)), run(generator=gen()))


def fourier_sqrt_cov(d):
    """A xi = irfft(lambda_k rfft(xi)), lambda_k = (1 + k^2)^-1: a smooth periodic (trace-class) noise."""
    lam = 1.0 / (1.0 + torch.arange(d // 2 + 1) ** 2)
    return lambda xi: torch.fft.irfft(lam * torch.fft.rfft(xi, dim=-1), n=d, dim=-1)


def test_coloured_noise_covariance_is_A_At_abs_h():
    d, h = 8, -0.3
    sqrt_cov = fourier_sqrt_cov(d)
    A = sqrt_cov(torch.eye(d)).T  # column i is A e_i
    noise = ColouredNoise(sqrt_cov, seed=0)
    dW = noise.increment(torch.tensor(0.0), h, torch.zeros(200_000, d))
    cov = dW.T @ dW / dW.shape[0]
    assert torch.allclose(cov, A @ A.T * abs(h), atol=0.01 * abs(h))
    assert not torch.allclose(cov, torch.eye(d) * abs(h), atol=0.1 * abs(h))  # it is coloured

    # through sdeint: dY = dW^Q over [0, 2] gives Cov Y(2) = A A^T 2
    yT = sdeint(
        lambda t, y: torch.zeros_like(y),
        lambda t, y: torch.ones_like(y),
        torch.zeros(100_000, d),
        torch.tensor([0.0, 2.0]),
        steps=4,
        noise=ColouredNoise(sqrt_cov, seed=1),
    )[-1]
    assert torch.allclose(yT.T @ yT / yT.shape[0], 2 * A @ A.T, atol=0.03)


def test_callable_and_fixed_noise():
    y0 = torch.zeros(2, 3)
    ones = lambda t, y: torch.ones_like(y)  # noqa: E731
    zero = lambda t, y: torch.zeros_like(y)  # noqa: E731
    # a callable (t, h, like) -> dW: here dW = h, so Y(1) = 1
    yT = sdeint(
        zero, ones, y0, torch.tensor([0.0, 1.0]), steps=4, noise=lambda t, h, like: torch.full_like(like, h)
    )
    assert torch.allclose(yT[-1], torch.ones(2, 3))
    # fixed increments: Y is the running sum of the increments
    dW = torch.randn(4, 2, 3)
    ys = sdeint(zero, ones, y0, torch.tensor([0.0, 0.5, 1.0]), steps=4, noise=dW)
    assert torch.allclose(ys[1], dW[:2].sum(0)) and torch.allclose(ys[2], dW.sum(0))


def test_unknown_method_lists_the_known_ones():
    known = "known methods: euler_maruyama, heun$"
    with pytest.raises(ValueError, match=f"unknown SDE method 'milstein'; {known}"):
        sdeint(ou_drift, ou_diffusion, torch.ones(1), torch.tensor([0.0, 1.0]), method="milstein")


def test_bad_input_errors():
    y0, t = torch.ones(4, 2), torch.tensor([0.0, 1.0])
    with pytest.raises(ValueError, match=r"1-D tensor of at least 2 output times, got shape \(\)"):
        sdeint(ou_drift, ou_diffusion, y0, torch.tensor(1.0))
    with pytest.raises(TypeError, match="floating-point"):
        sdeint(ou_drift, ou_diffusion, torch.ones(4, dtype=torch.long), t)
    with pytest.raises(ValueError, match=r"drift's part 0 has shape \(4, 3\); expected .* \(4, 2\)"):
        sdeint(lambda t, y: torch.ones(4, 3), ou_diffusion, y0, t)
    with pytest.raises(
        ValueError, match="diffusion must return a tuple of 2 parts matching the state; got a tuple of 1"
    ):
        sdeint(lambda t, s: s, lambda t, s: (s[0],), (y0, y0), t)
    with pytest.raises(ValueError, match=r"fixed increment number 1 .* shape \(3,\); expected .* \(4, 2\)"):
        sdeint(ou_drift, ou_diffusion, y0, t, steps=2, noise=torch.zeros(2, 3))
    with pytest.raises(ValueError, match="ran out after 2 draws"):
        sdeint(ou_drift, ou_diffusion, y0, t, steps=3, noise=torch.zeros(2, 4, 2))
    with pytest.raises(ValueError, match="2 of the 4 fixed increments were not used"):
        sdeint(ou_drift, ou_diffusion, y0, t, steps=2, noise=torch.zeros(4, 4, 2))
    with pytest.raises(ValueError, match="seed and generator are for the default Brownian noise"):
        sdeint(ou_drift, ou_diffusion, y0, t, noise=BrownianNoise(), seed=1)
    with pytest.raises(ValueError, match=r"method='heun' needs additive noise.*part 0.*euler_maruyama"):
        sdeint(ou_drift, lambda t, y: 0.5 * y, y0, t, method="heun", steps=4, seed=0)
