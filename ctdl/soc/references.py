"""Reference solutions of the control problems: Cole-Hopf (HJB-LQ) and Riccati (LQR).

Cole-Hopf (Han, Jentzen and E 2018). For d_t Phi + sigma^2/2 Lap Phi - lam |grad Phi|^2 = 0,
Phi(T) = g, the substitution w = exp(-a Phi) with a = 2 lam / sigma^2 gives the backward heat
equation d_t w + sigma^2/2 Lap w = 0, hence

    Phi(t, x) = -(1/a) ln E[ exp(-a g(x + sigma sqrt(T - t) Z)) ],   Z ~ N(0, I),

exact by quadrature (`hjb_lq_value_quadrature`, below; `hjb_lq_gradient` its gradient, the
reference feedback), and estimated by Monte Carlo as a check with the delta-method standard error
(1/a) s_w / (mean_w sqrt(M)) of the M weights w = exp(-a g). As lam -> 0 it tends to
E[g(x + sigma sqrt(T - t) Z)]. For large lam the mean is carried by rare draws and the Monte Carlo
estimate is biased; `hjb_lq_value_quadrature` is exact for the radial g = ln((1 + |x - x*|^2) / 2):
with s = sigma sqrt(T - t), |x - x* + s Z|^2 = s^2 Q, Q ~ noncentral chi-square(d, |x - x*|^2 / s^2),
a 1-D integral.

Riccati. For f = A x + B u, L = x'Qx + u'Ru, g = x'Gx and constant sigma the value is
Phi(t, x) = x' P(t) x + r(t) with

    -P' = Q + P A + A' P - P B R^{-1} B' P,  P(T) = G,     -r' = tr(sigma sigma' P),  r(T) = 0,

and u* = -R^{-1} B' P x; solved by classic RK4 backwards on a fine grid, linear in between.

Finite elements (the obstacle problem): `ctdl.soc.fem_hjb.fem_value_2d`.
`reference_value(problem)` picks the reference of a problem (None for the quadcopter).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import Tensor

from .problems import HJBLQ, LQR, ControlProblem, Obstacle, as_vector


def _cole_hopf_inputs(t: float | Tensor, x: Tensor, lam: float, horizon: float) -> tuple[Tensor, Tensor]:
    """Checked points x (n, d) as float64 on the CPU and the time to go tau = T - t (n,)."""
    if x.ndim != 2:
        raise ValueError(f"x must have shape (n, d), got {tuple(x.shape)}")
    if lam < 0:
        raise ValueError(f"lam must be >= 0, got {lam}")
    x = x.detach().to(torch.float64).cpu()
    tau = (horizon - torch.as_tensor(t, dtype=torch.float64).reshape(-1)).expand(x.shape[0])
    if (tau < -1e-12).any():
        raise ValueError(f"t must lie in [0, {horizon}]")
    return x, tau


def hjb_lq_value(
    t: float | Tensor,
    x: Tensor,
    lam: float = 1.0,
    target: float | Sequence | Tensor | None = None,
    sigma: float = math.sqrt(2.0),
    samples: int = 100_000,
    horizon: float = 1.0,
    seed: int = 0,
    chunk: int = 10_000,
) -> tuple[Tensor, Tensor]:
    """(Phi(t, x), its Monte Carlo standard error), each (n,) float64, for the HJB-LQ problem
    g(x) = ln((1 + |x - target|^2) / 2) by Cole-Hopf with `samples` normal draws per point
    (the same draws for every point: common random numbers across x and t).

    Args:
        t: a time in [0, horizon], or (n,) times, one per point.
        x: points (n, d).
        lam: the coefficient lambda of |grad Phi|^2 (>= 0; 0 gives E[g]).
        target: the minimiser of g (scalar, (d,) or None for the origin).
        sigma: the scalar noise of dX = ... dt + sigma dW.
    """
    x, tau = _cole_hopf_inputs(t, x, lam, horizon)
    n, d = x.shape
    scale = (sigma * tau.clamp_min(0).sqrt()).unsqueeze(1)  # (n, 1)
    target = as_vector(target, d, "target")
    a = 2.0 * lam / sigma**2
    gen = torch.Generator().manual_seed(seed)
    # running sums of w / w_max, w^2 / w_max^2 per point with a running shift for stability
    shift = torch.full((n,), -math.inf, dtype=torch.float64)
    s1 = torch.zeros(n, dtype=torch.float64)
    s2 = torch.zeros(n, dtype=torch.float64)
    done = 0
    while done < samples:
        m = min(chunk, samples - done)
        z = torch.randn(m, d, generator=gen, dtype=torch.float64)
        # |x + s z - target|^2 = |x - target|^2 + 2 s (x - target).z + s^2 |z|^2, without an (n, m, d) array
        r = x - target
        sq = r.square().sum(1, keepdim=True) + 2 * scale * (r @ z.T) + scale.square() * z.square().sum(1)
        g = torch.log1p(sq) - math.log(2.0)  # (n, m)
        v = -a * g if a > 0 else g
        if a > 0:
            new_shift = torch.maximum(shift, v.max(1).values)
            s1 = s1 * torch.exp(shift - new_shift) + torch.exp(v - new_shift.unsqueeze(1)).sum(1)
            s2 = s2 * torch.exp(2 * (shift - new_shift)) + torch.exp(2 * (v - new_shift.unsqueeze(1))).sum(1)
            shift = new_shift
        else:
            s1, s2 = s1 + v.sum(1), s2 + v.square().sum(1)
        done += m
    mean, var = (
        s1 / samples,
        (s2 / samples - (s1 / samples).square()).clamp_min(0) * samples / max(samples - 1, 1),
    )
    if a > 0:
        value = -(torch.log(mean) + shift) / a
        stderr = var.sqrt() / (mean * math.sqrt(samples)) / a
    else:
        value, stderr = mean, var.sqrt() / math.sqrt(samples)
    return value, stderr


def hjb_lq_value_quadrature(
    t: float | Tensor,
    x: Tensor,
    lam: float = 1.0,
    target: float | Sequence | Tensor | None = None,
    sigma: float = math.sqrt(2.0),
    horizon: float = 1.0,
    resolution: float = 0.05,
) -> Tensor:
    """Phi(t, x), (n,) float64, of HJB-LQ by exact 1-D quadrature of the Cole-Hopf formula:

        Phi = -(1/a) ln int ((1 + s^2 q) / 2)^(-a) p(q) dq   (a = 2 lam / sigma^2 > 0),
        Phi = int ln((1 + s^2 q) / 2) p(q) dq                  (lam = 0),

    with p the noncentral chi-square density (d degrees of freedom, noncentrality |x - x*|^2 / s^2)
    and s = sigma sqrt(T - t); Phi(T, x) = g(x). The integral runs in u = ln q (trapezoid, log-sum-exp)
    over [ln(1e-12 m), ln(m + 40 sd)], m and sd the mean and standard deviation of q, with a step of
    `resolution` * sd / m, so the tilted mass of any lam stays inside the grid and is resolved.
    """
    from scipy import stats

    x, tau = _cole_hopf_inputs(t, x, lam, horizon)
    n, d = x.shape
    r2 = (x - as_vector(target, d, "target")).square().sum(1)
    a = 2.0 * lam / sigma**2
    values = torch.log1p(r2) - math.log(2.0)  # tau = 0: Phi = g
    for i in torch.nonzero(tau > 1e-14).flatten().tolist():
        s2 = sigma**2 * tau[i].item()
        nc = r2[i].item() / s2
        mean, sd = d + nc, math.sqrt(2.0 * (d + 2.0 * nc))
        lo, hi = math.log(1e-12 * mean), math.log(mean + 40.0 * sd)
        u = torch.linspace(
            lo, hi, max(2001, int((hi - lo) / (resolution * sd / mean)) + 1), dtype=torch.float64
        )
        q = u.exp()
        logpdf = stats.ncx2.logpdf(q.numpy(), d, nc) if nc > 0 else stats.chi2.logpdf(q.numpy(), d)
        log_density = torch.from_numpy(logpdf) + u  # dq = q du
        log_du = math.log(float(u[1] - u[0]))
        log_g = torch.log1p(s2 * q) - math.log(2.0)
        trapezoid = torch.ones_like(u)
        trapezoid[[0, -1]] = 0.5
        if a > 0:
            log_terms = log_density - a * log_g + trapezoid.log() + log_du
            values[i] = -torch.logsumexp(log_terms, 0) / a
        else:
            values[i] = (log_g * (log_density + trapezoid.log() + log_du).exp()).sum()
    return values


def hjb_lq_gradient(
    t: float | Tensor,
    x: Tensor,
    lam: float = 1.0,
    target: float | Sequence | Tensor | None = None,
    sigma: float = math.sqrt(2.0),
    horizon: float = 1.0,
    step: float = 1e-4,
) -> Tensor:
    """grad_x Phi(t, x), (n, d) float64, of HJB-LQ from the exact quadrature. Phi is radial,
    Phi = F(T - t, r) with r = |x - x*|, so grad Phi = (x - x*) / r * dF/dr, the derivative by
    central differences F(r + h) - F(r - h) / 2h along the ray (h = `step` * max(1, r); one-sided
    from r = h where r < h, where the gradient is O(r) anyway)."""
    x, tau = _cole_hopf_inputs(t, x, lam, horizon)
    d = x.shape[1]
    delta = x - as_vector(target, d, "target")
    r = delta.norm(dim=1)
    h = step * r.clamp_min(1.0)
    unit = torch.where(r.unsqueeze(1) > 0, delta / r.clamp_min(1e-300).unsqueeze(1), 0.0)
    centre = r.clamp_min(h)  # the derivative at r < h is taken at h: |grad| <= |dF/dr (h)| there
    e1 = torch.zeros(d, dtype=torch.float64)
    e1[0] = 1.0
    ends = torch.cat([(centre + h).unsqueeze(1) * e1, (centre - h).unsqueeze(1) * e1])
    times = torch.cat([tau, tau])
    f = hjb_lq_value_quadrature(horizon - times, ends, lam=lam, sigma=sigma, horizon=horizon)
    slope = (f[: len(r)] - f[len(r) :]) / (2 * h)
    slope = torch.where(r >= h, slope, slope * r / h)  # dF/dr is linear in r near 0
    return slope.unsqueeze(1) * unit


class RiccatiSolution:
    """P(t) and r(t) of an LQR problem on a grid of `steps` RK4 steps from T back to 0."""

    def __init__(self, problem: LQR, steps: int = 4000) -> None:
        self.problem, self.steps = problem, steps
        A, B, Q, G = problem.A, problem.B, problem.Q, problem.G
        BRB = B @ problem.R_inv @ B.T
        SS = problem.sigma @ problem.sigma.T
        T = problem.horizon

        def rhs(P: Tensor) -> tuple[Tensor, Tensor]:  # d/ds of (P, r) in s = T - t
            return Q + P @ A + A.T @ P - P @ BRB @ P, torch.trace(SS @ P)

        h = T / steps
        P, r = G.clone(), torch.zeros((), dtype=torch.float64)
        Ps, rs = [P], [r]
        for _ in range(steps):
            k1 = rhs(P)
            k2 = rhs(P + 0.5 * h * k1[0])
            k3 = rhs(P + 0.5 * h * k2[0])
            k4 = rhs(P + h * k3[0])
            P = P + h / 6 * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0])
            r = r + h / 6 * (k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1])
            Ps.append(P), rs.append(r)
        self.P = torch.stack(Ps[::-1])  # P at t = 0, h, ..., T
        self.r = torch.stack(rs[::-1])
        self.times = torch.linspace(0.0, T, steps + 1, dtype=torch.float64)

    def _at(self, table: Tensor, t: Tensor) -> Tensor:
        pos = (t / self.problem.horizon * self.steps).clamp(0, self.steps)
        lo = pos.floor().long().clamp(max=self.steps - 1)
        w = (pos - lo).reshape(-1, *([1] * (table.ndim - 1)))
        return (1 - w) * table[lo] + w * table[lo + 1]

    def matrices(self, t: float | Tensor, n: int) -> tuple[Tensor, Tensor]:
        """(P(t) (n, 2, 2), r(t) (n,)) at one time or (n,) times."""
        t = torch.as_tensor(t, dtype=torch.float64).reshape(-1).expand(n)
        return self._at(self.P, t), self._at(self.r, t)

    def value(self, t: float | Tensor, x: Tensor) -> Tensor:
        """Phi(t, x) = x'P(t)x + r(t), (n,) float64."""
        x = x.detach().to(torch.float64).cpu()
        P, r = self.matrices(t, len(x))
        return torch.einsum("ni,nij,nj->n", x, P, x) + r

    def control(self, t: float | Tensor, x: Tensor) -> Tensor:
        """u*(t, x) = -R^{-1} B' P(t) x, (n, m) float64."""
        x = x.detach().to(torch.float64).cpu()
        P, _ = self.matrices(t, len(x))
        K = self.problem.R_inv @ self.problem.B.T  # (m, 2)
        return -torch.einsum("mi,nij,nj->nm", K, P, x)

    def expected_cost(self) -> float:
        """E[Phi(0, X_0)] over the start law N(start, start_std^2 I): the optimal expected cost."""
        P0, r0 = self.P[0], self.r[0]
        m, s2 = self.problem.start, self.problem.start_std**2
        return float(m @ P0 @ m + s2 * torch.trace(P0) + r0)


ValueFn = Callable[[Tensor | float, Tensor], Tensor]


def _nan_outside(value: ValueFn, domain: tuple[float, float]) -> ValueFn:
    """`value` where x lies in the box domain^2 and NaN elsewhere (a finite-element solution only
    exists on its box; start laws and paths can leave it)."""
    lo, hi = domain

    def masked(t: Tensor | float, x: Tensor) -> Tensor:
        x = torch.as_tensor(x, dtype=torch.float64)
        inside = ((x >= lo) & (x <= hi)).all(1)
        out = torch.full((len(x),), math.nan, dtype=torch.float64)
        if inside.any():
            t = torch.as_tensor(t, dtype=torch.float64)
            out[inside] = value(t[inside] if t.ndim and t.numel() == len(x) else t, x[inside])
        return out

    return masked


_REFERENCES: dict[str, ValueFn] = {}


FEM_VERSION = 2
"""Changes whenever a cached finite-element reference for given settings changes (2: Phi at t = 0 is
the last step's, no longer the one before)."""


def reference_value(
    problem: ControlProblem,
    samples: int | None = None,
    mesh: int = 149,
    dt: float = 1e-3,
    cache_dir: str | Path | None = "data/cache",
    scheme: str = "bdf2",
) -> ValueFn | None:
    """The reference value (t, x) -> Phi(t, x) (n,) float64 of a problem, or None where there is none:
    Cole-Hopf (hjb_lq) by exact quadrature (`hjb_lq_value_quadrature`), or by Monte Carlo with
    `samples` draws when `samples` is given (a check); Riccati (lqr); finite elements on a `mesh` x
    `mesh` grid with time step `dt` and time scheme `scheme` (obstacle; NaN outside its box; minutes
    at the default 149 and 1e-3, so its snapshots are kept in `cache_dir` keyed by the problem, the
    settings and FEM_VERSION; None: no file). Built once per process for the same problem and
    settings."""
    settings = {HJBLQ: [samples], Obstacle: [mesh, dt, scheme, FEM_VERSION]}.get(type(problem), [])
    key = json.dumps([type(problem).__name__, problem.args, settings], sort_keys=True, default=str)
    if key in _REFERENCES:
        return _REFERENCES[key]
    if isinstance(problem, HJBLQ) and samples is None:

        def value(t, x, p=problem):
            return hjb_lq_value_quadrature(t, x, lam=p.lam, target=p.target, sigma=p.noise, horizon=p.horizon)
    elif isinstance(problem, HJBLQ):

        def value(t, x, p=problem):
            return hjb_lq_value(
                t, x, lam=p.lam, target=p.target, sigma=p.noise, samples=samples, horizon=p.horizon
            )[0]
    elif isinstance(problem, LQR):
        value = RiccatiSolution(problem).value
    elif isinstance(problem, Obstacle):
        from .fem_hjb import FEMValue, fem_value_2d

        path = None
        if cache_dir is not None:
            digest = hashlib.sha256(key.encode()).hexdigest()[:12]
            path = Path(cache_dir) / f"fem_{problem.name}_{mesh}_{digest}.npz"
        if path is not None and path.is_file():
            value = FEMValue.load(path, problem)
        else:
            value = fem_value_2d(problem, mesh=mesh, dt=dt, scheme=scheme)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                value.save(path)
        value = _nan_outside(value, problem.domain)
    else:
        return None
    _REFERENCES[key] = value
    return value


def reference_control(
    problem: ControlProblem, mesh: int = 149, dt: float = 1e-3, cache_dir: str | Path | None = "data/cache"
) -> ValueFn | None:
    """The reference feedback (t, x) -> u*(t, x, grad Phi_ref(t, x)) (n, m) float64, or None: Riccati's
    exact control (lqr); for hjb_lq, `hjb_lq_gradient` of the exact quadrature; for the obstacle,
    grad Phi_ref by central differences of the finite-element value (`reference_value(problem,
    mesh=mesh, dt=dt, cache_dir=cache_dir)`) over one mesh width, NaN outside its box."""
    if isinstance(problem, LQR):
        return RiccatiSolution(problem).control
    if isinstance(problem, HJBLQ):

        def feedback(t: Tensor | float, x: Tensor, p=problem) -> Tensor:
            grad = hjb_lq_gradient(t, x, lam=p.lam, target=p.target, sigma=p.noise, horizon=p.horizon)
            return p.optimal_control(t, x.detach().to(torch.float64).cpu(), grad)

        return feedback
    if not isinstance(problem, Obstacle):
        return None
    value = reference_value(problem, mesh=mesh, dt=dt, cache_dir=cache_dir)
    lo, hi = problem.domain
    step = (hi - lo) / mesh

    def control(t: Tensor | float, x: Tensor) -> Tensor:
        x = x.detach().to(torch.float64).cpu()
        n = len(x)
        shifts = step * torch.eye(2, dtype=torch.float64)
        points = torch.cat([x + shifts[0], x - shifts[0], x + shifts[1], x - shifts[1]])
        t = torch.as_tensor(t, dtype=torch.float64)
        times = t.repeat(4) if t.ndim and t.numel() == n else t
        v = value(times, points).view(4, n)
        grad = torch.stack([v[0] - v[1], v[2] - v[3]], dim=1) / (2 * step)
        return problem.optimal_control(t, x, grad)

    return control
