"""Stochastic optimal control problems: dynamics, costs, noise, start law and Hamiltonian.

    minimise  J(u) = E[ int_t^T L(s, X_s, u_s) ds + g(X_T) ],   dX = f(s, X, u) ds + sigma dW,

over feedback controls u. The value Phi(t, x) (the optimal J from X_t = x) solves the HJB equation

    d_t Phi + tr(D Hess_x Phi) + H(t, x, grad_x Phi) = 0,   Phi(T, x) = g(x),   D = sigma sigma' / 2,
    H(t, x, p) = min_u { L(t, x, u) + p' f(t, x, u) },     u*(t, x, p) = argmin of the same,

and the optimal feedback is u*(t, x, grad_x Phi(t, x)) (Pontryagin's principle; Li, Verma and
Ruthotto, SIAM SISC 2024). Each problem states u*(t, x, p) in closed form. The 2-D problems
also state H and g in UFL, for the finite-element reference (`ctdl.soc.fem_hjb`).

Problems: `hjb_lq` (Han, Jentzen and E 2018, any dimension, lambda, noise and target),
`obstacle` (2-D, a Gaussian obstacle), `lqr` (2-D linear-quadratic, Riccati is exact) and
`quadcopter` (12-D, deterministic with sigma = 0). `make_problem(name, **args)` builds one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor


def as_sigma(sigma: float | Sequence | Tensor, dim: int) -> Tensor:
    """sigma as a (dim, dim) float64 matrix: a scalar means sigma I, a (dim,) vector a diagonal."""
    s = torch.as_tensor(sigma, dtype=torch.float64)
    if s.ndim == 0:
        return s * torch.eye(dim, dtype=torch.float64)
    if s.shape == (dim,):
        return torch.diag(s)
    if s.shape == (dim, dim):
        return s.clone()
    raise ValueError(
        f"sigma must be a scalar, a ({dim},) diagonal or a ({dim}, {dim}) matrix for a "
        f"problem of dimension {dim}; got shape {tuple(s.shape)}"
    )


def as_vector(value: float | Sequence | Tensor | None, dim: int, name: str) -> Tensor:
    """A (dim,) float64 vector from a scalar (every coordinate), a sequence or None (zero)."""
    v = (
        torch.zeros(dim, dtype=torch.float64)
        if value is None
        else torch.as_tensor(value, dtype=torch.float64)
    )
    if v.ndim == 0:
        return v.expand(dim).clone()
    if v.shape != (dim,):
        raise ValueError(
            f"{name} must be a scalar or have shape ({dim},) for a problem of dimension "
            f"{dim}; got shape {tuple(v.shape)}"
        )
    return v


class ControlProblem:
    """A control problem (f, L, g, sigma, start law, u*); subclasses define the five methods below."""

    name = "problem"
    horizon: float = 1.0
    args: dict = {}  # the keywords it was built with (set by make_problem)

    def __init__(self, dim: int, control_dim: int, sigma: float | Sequence | Tensor) -> None:
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.dim, self.control_dim = dim, control_dim
        self.sigma = as_sigma(sigma, dim)

    # ----------------------------------------------------------------- what a problem defines
    def drift(self, t: Tensor | float, x: Tensor, u: Tensor) -> Tensor:
        """f(t, x, u), shape (n, dim)."""
        raise NotImplementedError

    def running_cost(self, t: Tensor | float, x: Tensor, u: Tensor) -> Tensor:
        """L(t, x, u), shape (n,)."""
        raise NotImplementedError

    def terminal_cost(self, x: Tensor) -> Tensor:
        """g(x), shape (n,)."""
        raise NotImplementedError

    def optimal_control(self, t: Tensor | float, x: Tensor, p: Tensor) -> Tensor:
        """u*(t, x, p) = argmin_u { L + p' f }, shape (n, control_dim)."""
        raise NotImplementedError

    def sample_start(
        self, n: int, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float64
    ) -> Tensor:
        """n draws of X_0, shape (n, dim)."""
        raise NotImplementedError

    # ------------------------------------------------------------------------- derived
    def hamiltonian(self, t: Tensor | float, x: Tensor, p: Tensor) -> Tensor:
        """H(t, x, p) = L(t, x, u*) + p' f(t, x, u*), shape (n,)."""
        u = self.optimal_control(t, x, p)
        return self.running_cost(t, x, u) + (p * self.drift(t, x, u)).sum(-1)

    def terminal_gradient(self, x: Tensor) -> Tensor:
        """grad g(x), shape (n, dim) (by autograd; keeps the graph when grad mode is on)."""
        keep = torch.is_grad_enabled()
        with torch.enable_grad():
            xr = x if x.requires_grad else x.detach().requires_grad_()
            (grad,) = torch.autograd.grad(self.terminal_cost(xr).sum(), xr, create_graph=keep)
        return grad if keep else grad.detach()

    def terminal_trace(self, x: Tensor) -> Tensor:
        """tr(D Hess g(x)), shape (n,) (by autograd, one backward pass per coordinate; problems with a
        closed form override it)."""
        D = self.diffusion(x)
        keep = torch.is_grad_enabled()
        with torch.enable_grad():
            xr = x if x.requires_grad else x.detach().requires_grad_()
            grad = self.terminal_gradient(xr)
            if not grad.requires_grad:  # g is at most linear
                return x.new_zeros(len(x))
            rows = [
                torch.autograd.grad(grad[:, i].sum(), xr, create_graph=keep, retain_graph=True)[0]
                for i in range(self.dim)
            ]
        hess = torch.stack(rows, dim=1)  # (n, d, d)
        out = torch.einsum("ij,nji->n", D, hess)
        return out if keep else out.detach()

    def diffusion(self, like: Tensor) -> Tensor:
        """D = sigma sigma' / 2 in the dtype and device of `like`."""
        s = self.sigma.to(like)
        return 0.5 * s @ s.T

    @property
    def deterministic(self) -> bool:
        return bool((self.sigma == 0).all())

    def check_state(self, x: Tensor, name: str = "x") -> None:
        """A ValueError naming both shapes unless x is (n, dim)."""
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(
                f"{name} must have shape (n, {self.dim}) for the {self.name} problem of "
                f"dimension {self.dim}; got {tuple(x.shape)}"
            )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dim={self.dim}, control_dim={self.control_dim})"


class HJBLQ(ControlProblem):
    """The high-dimensional linear-quadratic-logarithmic benchmark (Han, Jentzen and E, PNAS 2018):

        dX = 2 sqrt(lam) u dt + sigma dW,  L = |u|^2,  g(x) = ln((1 + |x - target|^2) / 2),  T = 1,

    so u* = -sqrt(lam) p, H = -lam |p|^2 and d_t Phi + sigma^2/2 Lap Phi - lam |grad Phi|^2 = 0
    (lam = 1, sigma = sqrt(2) is the published problem). Start at the origin or N(0, start_std^2 I).
    Exact value by the Cole-Hopf transform: `ctdl.soc.references.hjb_lq_value`."""

    name = "hjb_lq"

    def __init__(
        self,
        dim: int = 100,
        lam: float = 1.0,
        sigma: float = math.sqrt(2.0),
        target: float | Sequence | None = None,
        start: str = "origin",
        start_std: float = 0.5,
    ) -> None:
        if torch.as_tensor(sigma).ndim != 0:
            raise ValueError(
                f"hjb_lq takes a scalar sigma (the Cole-Hopf reference needs isotropic noise); "
                f"got shape {tuple(torch.as_tensor(sigma).shape)}"
            )
        if lam < 0:
            raise ValueError(f"lam must be >= 0, got {lam}")
        if start not in ("origin", "gaussian"):
            raise ValueError(f"start must be 'origin' or 'gaussian', got {start!r}")
        super().__init__(dim, dim, sigma)
        self.lam, self.noise, self.start, self.start_std = float(lam), float(sigma), start, float(start_std)
        self.target = as_vector(target, dim, "target")

    def drift(self, t, x, u):
        return 2.0 * math.sqrt(self.lam) * u

    def running_cost(self, t, x, u):
        return u.square().sum(-1)

    def terminal_cost(self, x):
        return torch.log1p((x - self.target.to(x)).square().sum(-1)) - math.log(2.0)

    def terminal_gradient(self, x):
        r = x - self.target.to(x)
        return 2.0 * r / (1.0 + r.square().sum(-1, keepdim=True))

    def terminal_trace(self, x):
        r = x - self.target.to(x)
        q = 1.0 + r.square().sum(-1)
        D = self.diffusion(x)
        return 2.0 * torch.diagonal(D).sum() / q - 4.0 * ((r @ D) * r).sum(-1) / q.square()

    def optimal_control(self, t, x, p):
        return -math.sqrt(self.lam) * p

    def hamiltonian(self, t, x, p):
        return -self.lam * p.square().sum(-1)

    def sample_start(self, n, generator=None, dtype=torch.float64):
        if self.start == "origin":
            return torch.zeros(n, self.dim, dtype=dtype)
        return self.start_std * torch.randn(n, self.dim, generator=generator, dtype=torch.float64).to(dtype)


class Problem2D(ControlProblem):
    """A 2-D problem that the finite-element reference can solve on the box `domain`^2: it also
    states H(x, p) and g(x) in UFL (x the spatial coordinate, p the gradient)."""

    domain: tuple[float, float] = (-3.0, 3.0)

    def ufl_hamiltonian(self, x, p):
        raise NotImplementedError

    def ufl_terminal(self, x):
        raise NotImplementedError


class TargetCost:
    """g(x) = weight |x - target|^2 with its gradient and tr(D Hess g) = 2 weight tr D in closed form
    (a mixin for problems that set `weight` and `target`)."""

    def terminal_cost(self, x):
        return self.weight * (x - self.target.to(x)).square().sum(-1)

    def terminal_gradient(self, x):
        return 2.0 * self.weight * (x - self.target.to(x))

    def terminal_trace(self, x):
        return (2.0 * self.weight * torch.diagonal(self.diffusion(x)).sum()).expand(len(x))


class Obstacle(TargetCost, Problem2D):
    """Steer through a Gaussian obstacle (Li, Verma and Ruthotto 2024, section 5.2):

        f = u,  L = |u|^2 / 2 + height N(x; 0, width I),  g = weight |x - (1.5, 1.5)|^2,
        sigma = [[0.2, -0.4], [-0.4, 0.2]],  X_0 = (-1.5, -1.5) + N(0, I),  T = 1,

    with N the Gaussian density; u* = -p, H = -|p|^2 / 2 + height N(x)."""

    name = "obstacle"

    def __init__(
        self,
        height: float = 50.0,
        width: float = 0.4,
        weight: float = 50.0,
        target: Sequence[float] = (1.5, 1.5),
        start: Sequence[float] = (-1.5, -1.5),
        start_std: float = 1.0,
        sigma: float | Sequence = ((0.2, -0.4), (-0.4, 0.2)),
    ) -> None:
        super().__init__(2, 2, sigma)
        self.height, self.width, self.weight, self.start_std = (
            float(height),
            float(width),
            float(weight),
            float(start_std),
        )
        self.target, self.start = as_vector(target, 2, "target"), as_vector(start, 2, "start")

    def obstacle(self, x: Tensor) -> Tensor:
        return self.height * torch.exp(-x.square().sum(-1) / (2 * self.width)) / (2 * math.pi * self.width)

    def drift(self, t, x, u):
        return u

    def running_cost(self, t, x, u):
        return 0.5 * u.square().sum(-1) + self.obstacle(x)

    def optimal_control(self, t, x, p):
        return -p

    def sample_start(self, n, generator=None, dtype=torch.float64):
        z = torch.randn(n, 2, generator=generator, dtype=torch.float64)
        return (self.start + self.start_std * z).to(dtype)

    def ufl_hamiltonian(self, x, p):
        import ufl

        bump = self.height * ufl.exp(-ufl.dot(x, x) / (2 * self.width)) / (2 * math.pi * self.width)
        return -0.5 * ufl.dot(p, p) + bump

    def ufl_terminal(self, x):
        import ufl

        r = x - ufl.as_vector([float(v) for v in self.target])
        return self.weight * ufl.dot(r, r)


class LQR(Problem2D):
    """A 2-D linear-quadratic regulator, whose value is exact by the Riccati equation:

        f = A x + B u,  L = x'Qx + u'Ru,  g = x'Gx,  X_0 = start + N(0, start_std^2 I),  T = 1,

    u* = -R^{-1} B' p / 2, H = x'Qx + p'Ax - p' B R^{-1} B' p / 4. Defaults: a shear
    A = [[0, 1], [0, 0]], B = Q = R = I, G = diag(4, 1), sigma = 0.5 I, start (1, 1), start_std 0.5."""

    name = "lqr"

    def __init__(
        self,
        A=((0.0, 1.0), (0.0, 0.0)),
        B=((1.0, 0.0), (0.0, 1.0)),
        Q=((1.0, 0.0), (0.0, 1.0)),
        R=((1.0, 0.0), (0.0, 1.0)),
        G=((4.0, 0.0), (0.0, 1.0)),
        sigma: float | Sequence = 0.5,
        start: Sequence[float] = (1.0, 1.0),
        start_std: float = 0.5,
    ) -> None:
        mats = {k: torch.as_tensor(v, dtype=torch.float64) for k, v in dict(A=A, Q=Q, G=G).items()}
        for k, m in mats.items():
            if m.shape != (2, 2):
                raise ValueError(f"{k} must have shape (2, 2), got {tuple(m.shape)}")
        B, R = torch.as_tensor(B, dtype=torch.float64), torch.as_tensor(R, dtype=torch.float64)
        if B.ndim != 2 or B.shape[0] != 2 or R.shape != (B.shape[1], B.shape[1]):
            raise ValueError(f"B must be (2, m) and R (m, m); got B {tuple(B.shape)} and R {tuple(R.shape)}")
        super().__init__(2, B.shape[1], sigma)
        self.A, self.Q, self.G, self.B, self.R = mats["A"], mats["Q"], mats["G"], B, R
        self.R_inv = torch.linalg.inv(R)
        self.start, self.start_std = as_vector(start, 2, "start"), float(start_std)

    def drift(self, t, x, u):
        return x @ self.A.to(x).T + u @ self.B.to(x).T

    def running_cost(self, t, x, u):
        return ((x @ self.Q.to(x)) * x).sum(-1) + ((u @ self.R.to(x)) * u).sum(-1)

    def terminal_cost(self, x):
        return ((x @ self.G.to(x)) * x).sum(-1)

    def terminal_gradient(self, x):
        G = self.G.to(x)
        return x @ (G + G.T)

    def terminal_trace(self, x):
        G = self.G.to(x)
        return torch.trace(self.diffusion(x) @ (G + G.T)).expand(len(x))

    def optimal_control(self, t, x, p):
        return -0.5 * p @ (self.B.to(p) @ self.R_inv.to(p).T)

    def sample_start(self, n, generator=None, dtype=torch.float64):
        z = torch.randn(n, 2, generator=generator, dtype=torch.float64)
        return (self.start + self.start_std * z).to(dtype)

    def _ufl_matrix(self, M: Tensor):
        import ufl

        return ufl.as_matrix(M.tolist())

    def ufl_hamiltonian(self, x, p):
        import ufl

        BRB = self.B @ self.R_inv @ self.B.T
        return (
            ufl.dot(x, self._ufl_matrix(self.Q) * x)
            + ufl.dot(p, self._ufl_matrix(self.A) * x)
            - 0.25 * ufl.dot(p, self._ufl_matrix(BRB) * p)
        )

    def ufl_terminal(self, x):
        import ufl

        return ufl.dot(x, self._ufl_matrix(self.G) * x)


class Quadcopter(TargetCost, ControlProblem):
    """Fly a quadcopter to a hover point (Li, Verma and Ruthotto 2024, section 5.3). State
    (position 3, angles psi/theta/phi, velocity 3, angular velocity 3), control (thrust, tau 3):

        position' = velocity,  angles' = angular velocity,  angular velocity' = tau,
        velocity' = (thrust / m) r(psi, theta, phi) - g e_z,
        r = (s_psi s_phi + c_psi s_theta c_phi,  -c_psi s_phi + s_psi s_theta c_phi,  c_theta c_phi),
        L = 2 + thrust^2 + |tau|^2,  g(x) = weight |x - (2, 2, 2, 0, ..., 0)|^2,  T = 1,

    X_0 = (-1.5, -1.5, -1.5, 0, ...) + N(0, I) on the position; sigma 0.2 on every state (0 for the
    deterministic problem). u*: thrust = -p_v' r / (2 m), tau = -p_omega / 2."""

    name = "quadcopter"

    def __init__(
        self,
        sigma: float | Sequence = 0.2,
        mass: float = 1.0,
        gravity: float = 9.81,
        weight: float = 2500.0,
        target: Sequence[float] = (2.0, 2.0, 2.0),
        start: Sequence[float] = (-1.5, -1.5, -1.5),
        start_std: float = 1.0,
    ) -> None:
        super().__init__(12, 4, sigma)
        self.mass, self.gravity, self.weight, self.start_std = (
            float(mass),
            float(gravity),
            float(weight),
            float(start_std),
        )
        self.target = torch.cat([as_vector(target, 3, "target"), torch.zeros(9, dtype=torch.float64)])
        self.start = torch.cat([as_vector(start, 3, "start"), torch.zeros(9, dtype=torch.float64)])

    @staticmethod
    def thrust_direction(angles: Tensor) -> Tensor:
        psi, theta, phi = angles.unbind(-1)
        sp, cp, st, ct, sf, cf = psi.sin(), psi.cos(), theta.sin(), theta.cos(), phi.sin(), phi.cos()
        return torch.stack([sp * sf + cp * st * cf, -cp * sf + sp * st * cf, ct * cf], dim=-1)

    def drift(self, t, x, u):
        angles, velocity, omega = x[:, 3:6], x[:, 6:9], x[:, 9:12]
        thrust, tau = u[:, :1], u[:, 1:]
        accel = thrust / self.mass * self.thrust_direction(angles)
        accel = accel - self.gravity * torch.tensor([0.0, 0.0, 1.0], dtype=x.dtype, device=x.device)
        return torch.cat([velocity, omega, accel, tau], dim=1)

    def running_cost(self, t, x, u):
        return 2.0 + u.square().sum(-1)

    def optimal_control(self, t, x, p):
        r = self.thrust_direction(x[:, 3:6])
        thrust = -(p[:, 6:9] * r).sum(-1, keepdim=True) / (2 * self.mass)
        return torch.cat([thrust, -0.5 * p[:, 9:12]], dim=1)

    def sample_start(self, n, generator=None, dtype=torch.float64):
        x = self.start.expand(n, 12).clone()
        x[:, :3] += self.start_std * torch.randn(n, 3, generator=generator, dtype=torch.float64)
        return x.to(dtype)


PROBLEMS: dict[str, type[ControlProblem]] = {
    "hjb_lq": HJBLQ,
    "obstacle": Obstacle,
    "lqr": LQR,
    "quadcopter": Quadcopter,
}


def make_problem(name: str, **args) -> ControlProblem:
    """The problem `name` built with `args` (its constructor's keywords)."""
    if name not in PROBLEMS:
        raise ValueError(f"unknown control problem {name!r}; known problems: {', '.join(sorted(PROBLEMS))}")
    problem = PROBLEMS[name](**args)
    problem.args = dict(args)
    return problem
