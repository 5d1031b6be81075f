"""The VP SDE with trace-class noise, its reverse-time samplers and its probability-flow ODE.

Forward (Song et al., ICLR 2021; in function space Hagemann et al. 2023, arXiv 2303.04772):

    dX = -1/2 beta(t) X dt + sqrt(beta(t)) C^(1/2) dW,   beta(t) = beta_min + (beta_max - beta_min) t,

on [0, T] (T = 1, beta 0.1 -> 20), C the prior's covariance on the grid (`priors`). Closed form:
    alpha(t) = exp(-1/2 int_0^t beta) = exp(-1/2 (beta_min t + (beta_max - beta_min) t^2 / 2)),
    X_t = alpha(t) X_0 + sqrt(v(t)) C^(1/2) xi,   v(t) = 1 - alpha(t)^2,   xi ~ N(0, I).
Reverse time (Anderson 1982), with s(x, t) = grad log p_t(x) and C s the preconditioned score:
    dX = [-1/2 beta X - beta C s(X, t)] dt + sqrt(beta) C^(1/2) dW_bar   (t from T down to eps),
    probability flow:  dx/dt = -1/2 beta x - 1/2 beta C s(x, t),
    d/dt log p_t(x(t)) = -div(dx/dt)   (exact divergence by autograd, or Hutchinson's estimator).
A score is called as score(x, t) with x (batch, channels, n1, n2) and per-sample times t of
shape (batch,). With preconditioned=True it returns C s directly (a network trained by
denoising score matching with C never inverted); otherwise the samplers apply C.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ..integrators import ColouredNoise, odeint, sdeint
from .priors import FourierPrior, WhitePrior, apply_multiplier

ScoreFn = Callable[[Tensor, Tensor], Tensor]


class VPSDE:
    """The variance-preserving SDE with linear beta(t) on [0, T]; see the module docstring."""

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, T: float = 1.0) -> None:
        if not 0 <= beta_min <= beta_max or T <= 0:
            raise ValueError(
                f"VPSDE needs 0 <= beta_min <= beta_max and T > 0; got beta_min={beta_min}, "
                f"beta_max={beta_max}, T={T}"
            )
        self.beta_min, self.beta_max, self.T = float(beta_min), float(beta_max), float(T)

    def beta(self, t: Tensor | float) -> Tensor:
        """beta(t) = beta_min + (beta_max - beta_min) t."""
        return self.beta_min + (self.beta_max - self.beta_min) * torch.as_tensor(t)

    def int_beta(self, t: Tensor | float) -> Tensor:
        """int_0^t beta = beta_min t + (beta_max - beta_min) t^2 / 2."""
        t = torch.as_tensor(t)
        return self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t**2

    def alpha(self, t: Tensor | float) -> Tensor:
        """The mean coefficient alpha(t) = exp(-1/2 int_0^t beta): E[X_t | X_0] = alpha X_0."""
        return torch.exp(-0.5 * self.int_beta(t))

    def variance(self, t: Tensor | float) -> Tensor:
        """v(t) = 1 - alpha(t)^2: Cov[X_t | X_0] = v(t) C."""
        return -torch.expm1(-self.int_beta(t))

    def drift(self, x: Tensor, t: Tensor | float) -> Tensor:
        """f(x, t) = -1/2 beta(t) x (t a scalar or per-sample (batch,))."""
        return -0.5 * _per_sample(self.beta(t).to(x), x) * x

    def diffusion(self, t: Tensor | float) -> Tensor:
        """g(t) = sqrt(beta(t)), multiplying C^(1/2) dW."""
        return self.beta(t).sqrt()

    def perturb(
        self,
        x0: Tensor,
        t: Tensor,
        prior: FourierPrior | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        """A draw of X_t given X_0 = x0 at per-sample times t (batch,).

        Returns (x_t, noise) with noise = C^(1/2) xi (grid white noise xi ~ N(0, I) when prior is
        None) and x_t = alpha(t) x0 + sqrt(v(t)) noise.
        """
        _check_images(x0, "perturb")
        t = _times(t, x0)
        xi = torch.randn(
            x0.shape,
            generator=generator,
            dtype=x0.dtype,
            device=x0.device if generator is None else generator.device,
        ).to(x0.device)
        noise = xi if prior is None else prior.sqrt_cov(xi)
        a = _per_sample(self.alpha(t), x0)
        return a * x0 + _per_sample(self.variance(t).sqrt(), x0) * noise, noise


def _check_images(x: Tensor, who: str) -> None:
    if not isinstance(x, Tensor) or x.ndim != 4 or not x.is_floating_point():
        got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{who} expects a floating-point tensor (batch, channels, n1, n2), got {got}")


def _times(t: Tensor | float, x: Tensor) -> Tensor:
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    t = t.expand(x.shape[0]) if t.ndim == 0 else t
    if t.shape != (x.shape[0],):
        raise ValueError(f"t must be a scalar or of shape (batch,) = ({x.shape[0]},), got {tuple(t.shape)}")
    return t


def _per_sample(c: Tensor, x: Tensor) -> Tensor:
    """A scalar or (batch,) coefficient shaped to broadcast over x (batch, ...)."""
    return c.reshape(-1, *([1] * (x.ndim - 1))) if c.ndim == 1 else c


def _preconditioned_score(score: ScoreFn, prior: FourierPrior, preconditioned: bool) -> ScoreFn:
    """(x, t) -> C s(x, t), with t expanded to (batch,)."""

    def call(x: Tensor, t: Tensor) -> Tensor:
        out = score(x, _times(t, x))
        if out.shape != x.shape:
            raise ValueError(f"the score returned shape {tuple(out.shape)}; expected x's {tuple(x.shape)}")
        return out if preconditioned else prior.cov(out)

    return call


def _start(prior: FourierPrior, shape: tuple[int, ...], sde: VPSDE, generator, dtype, device) -> Tensor:
    if len(shape) != 4:
        raise ValueError(f"shape must be (batch, channels, n1, n2), got {tuple(shape)}")
    x = prior.sample(shape[0], shape[-2:], generator=generator, channels=shape[1], dtype=dtype, device=device)
    return math.sqrt(float(sde.variance(sde.T))) * x


def sample_euler_maruyama(
    score: ScoreFn,
    prior: FourierPrior,
    shape: tuple[int, ...],
    sde: VPSDE | None = None,
    steps: int = 200,
    eps: float = 1e-3,
    preconditioned: bool = False,
    generator: torch.Generator | None = None,
    x_T: Tensor | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Reverse-time Euler-Maruyama from t = T down to eps (sdeint with decreasing t), x_T ~ N(0, v(T) C).

    x <- x - h [-1/2 beta x - beta C s(x, t)] + sqrt(beta h) C^(1/2) z per step of size h = (T - eps)/steps.
    Returns x at t = eps, of `shape` (batch, channels, n1, n2).
    """
    sde = sde or VPSDE()
    x = _start(prior, shape, sde, generator, dtype, device) if x_T is None else x_T
    cs = _preconditioned_score(score, prior, preconditioned)

    def drift(t: Tensor, y: Tensor) -> Tensor:
        b = sde.beta(t).to(y)
        return -0.5 * b * y - b * cs(y, t)

    t = torch.tensor([sde.T, eps], dtype=x.dtype, device=x.device)
    noise = ColouredNoise(prior.sqrt_cov, generator=generator)
    return sdeint(drift, lambda t, y: sde.diffusion(t).to(y), x, t, steps=steps, noise=noise)[-1]


def sample_predictor_corrector(
    score: ScoreFn,
    prior: FourierPrior,
    shape: tuple[int, ...],
    sde: VPSDE | None = None,
    steps: int = 200,
    snr: float = 0.16,
    corrector_steps: int = 1,
    eps: float = 1e-3,
    preconditioned: bool = False,
    generator: torch.Generator | None = None,
    x_T: Tensor | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Predictor-corrector sampling (Song et al. 2021, Alg. 2/4) with a preconditioned Langevin corrector.

    At each t_i (T down to eps): `corrector_steps` Langevin steps
        x <- x + e C s(x, t_i) + sqrt(2 e) C^(1/2) z,  e = 2 a_i (snr ||C^(1/2) z|| / ||C s||)^2,
    a_i = 1 - beta(t_i) (T - eps) / steps, then one reverse Euler-Maruyama step t_i -> t_{i+1}
    through sdeint. Langevin with preconditioner C leaves p_t invariant up to O(e). The norms are
    averaged over the batch (as in Song et al.'s code): a per-sample e would depend on the state
    and bias the invariant law (by ~20% on the dominant modes in our Gaussian test).
    """
    sde = sde or VPSDE()
    if snr <= 0 or corrector_steps < 0:
        raise ValueError(
            f"snr must be positive and corrector_steps >= 0; got snr={snr}, corrector_steps={corrector_steps}"
        )
    dt = (sde.T - eps) / steps
    if float(sde.beta(torch.tensor(sde.T))) * dt >= 1:
        raise ValueError(
            f"predictor-corrector sampling needs steps > beta_max (T - eps) = "
            f"{float(sde.beta(torch.tensor(sde.T))) * (sde.T - eps):.1f}, so that the corrector's "
            f"a_i = 1 - beta(t_i) dt stays positive; got steps={steps}"
        )
    x = _start(prior, shape, sde, generator, dtype, device) if x_T is None else x_T
    cs = _preconditioned_score(score, prior, preconditioned)
    noise = ColouredNoise(prior.sqrt_cov, generator=generator)

    def drift(t: Tensor, y: Tensor) -> Tensor:
        b = sde.beta(t).to(y)
        return -0.5 * b * y - b * cs(y, t)

    grid = torch.linspace(sde.T, eps, steps + 1, dtype=x.dtype, device=x.device)
    for i in range(steps):
        t = grid[i]
        a = 1.0 - float(sde.beta(t)) * dt
        for _ in range(corrector_steps):
            g = cs(x, t)
            z = noise.sqrt_cov(noise.standard_normal(x))
            ratio = z.flatten(1).norm(dim=1).mean() / g.flatten(1).norm(dim=1).mean().clamp_min(1e-30)
            e = 2 * a * (snr * ratio) ** 2
            x = x + e * g + (2 * e).sqrt() * z
        x = sdeint(drift, lambda t, y: sde.diffusion(t).to(y), x, grid[i : i + 2], noise=noise)[-1]
    return x


def probability_flow(
    score: ScoreFn,
    prior: FourierPrior,
    x: Tensor,
    t0: float,
    t1: float,
    sde: VPSDE | None = None,
    steps: int = 100,
    method: str = "rk4",
    preconditioned: bool = False,
) -> Tensor:
    """Solve the probability-flow ODE dx/dt = -1/2 beta (x + C s(x, t)) from t0 to t1 (either
    direction) with ctdl.integrators.odeint; returns x(t1)."""
    sde = sde or VPSDE()
    _check_images(x, "probability_flow")
    cs = _preconditioned_score(score, prior, preconditioned)

    def velocity(t: Tensor, y: Tensor) -> Tensor:
        return -0.5 * sde.beta(t).to(y) * (y + cs(y, t))

    t = torch.tensor([t0, t1], dtype=x.dtype, device=x.device)
    return odeint(velocity, x, t, method=method, steps=steps)[-1]


DIVERGENCES = ("exact", "hutchinson")


def log_likelihood(
    score: ScoreFn,
    prior: FourierPrior,
    x: Tensor,
    sde: VPSDE | None = None,
    steps: int = 100,
    method: str = "rk4",
    divergence: str = "exact",
    eps: float = 1e-3,
    preconditioned: bool = False,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """log p_eps(x) in nats (density of the grid values) by the probability-flow ODE (Song et al. 2021).

    Integrates (x, l) from eps to T with dl/dt = div v(x, t) and returns
    (log N(x_T; 0, v(T) C_h) + l_T, x_T), each per sample. divergence="exact" sums D autograd
    vector-Jacobian products (small grids); "hutchinson" uses E[z' J z] with one Rademacher z per
    solve (Grathwohl et al., FFJORD 2019). For evaluation: the graph is not kept.
    """
    if divergence not in DIVERGENCES:
        raise ValueError(f"unknown divergence {divergence!r}; known: {', '.join(DIVERGENCES)}")
    sde = sde or VPSDE()
    _check_images(x, "log_likelihood")
    cs = _preconditioned_score(score, prior, preconditioned)
    probe = None
    if divergence == "hutchinson":
        probe = (
            torch.randint(
                0,
                2,
                x.shape,
                generator=generator,
                dtype=x.dtype,
                device=x.device if generator is None else generator.device,
            ).to(x.device)
            * 2
            - 1
        )

    def field(t: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        y = state[0].detach().requires_grad_(True)
        with torch.enable_grad():
            v = -0.5 * sde.beta(t).to(y) * (y + cs(y, t))
            if probe is not None:
                (vjp,) = torch.autograd.grad(v, y, probe)
                div = (vjp * probe).flatten(1).sum(1)
            else:
                flat = v.flatten(1)
                div = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
                for i in range(flat.shape[1]):
                    (row,) = torch.autograd.grad(flat[:, i].sum(), y, retain_graph=True)
                    div = div + row.flatten(1)[:, i]
        return v.detach(), div.detach()

    t = torch.tensor([eps, sde.T], dtype=x.dtype, device=x.device)
    zero = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    xs, ls = odeint(field, (x.detach(), zero), t, method=method, steps=steps)
    x_T, l_T = xs[-1], ls[-1]
    v_T = float(sde.variance(sde.T))
    d = x[0].numel()
    log_prior = prior.log_prob(x_T / math.sqrt(v_T)) - 0.5 * d * math.log(v_T)
    return log_prior + l_T, x_T


def exact_gaussian_score(
    data: FourierPrior, noise: FourierPrior | None = None, sde: VPSDE | None = None
) -> ScoreFn:
    """The score of p_t when X_0 ~ N(0, Sigma) with Sigma = data's covariance (commuting with C):

        p_t = N(0, alpha^2 Sigma + v C),   grad log p_t(x) = -(alpha^2 Sigma + v C)^+ x,

    applied per Fourier mode at any grid (pseudo-inverse on modes where both vanish).
    """
    sde = sde or VPSDE()
    noise = noise or WhitePrior(1.0)

    def score(x: Tensor, t: Tensor) -> Tensor:
        _check_images(x, "exact_gaussian_score")
        t = _times(t, x)
        grid = tuple(x.shape[-2:])
        n = grid[0] * grid[1]
        sig = data.eigenvalues(grid, device=x.device) * n
        lam = noise.eigenvalues(grid, device=x.device) * n
        a2 = sde.alpha(t.double()) ** 2
        total = a2[:, None, None, None] * sig + sde.variance(t.double())[:, None, None, None] * lam
        inv = torch.where(total > 0, 1.0 / total.clamp_min(1e-300), torch.zeros_like(total))
        return -apply_multiplier(x, inv.to(x.dtype))

    return score
