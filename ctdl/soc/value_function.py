"""A value network for a control problem: feedback control, controlled paths and the HJB losses.

Phi(t, x) is the OT-Flow potential (`ctdl.potential.Potential`, exact gradient and Hessian trace).
Its feedback control is u(t, x) = u*(t, x, grad_x Phi(t, x)) (the Hamiltonian's minimiser, in
closed form per problem). Paths X_0, ..., X_N on the grid t_k = k h, h = T / N, by Euler-Maruyama

    X_{k+1} = X_k + f(t_k, X_k, u_k) h + sigma sqrt(h) xi_k,     C_{k+1} = C_k + L(t_k, X_k, u_k) h,

with u_k the feedback control ("pmp": Pontryagin-informed sampling; the paths stay in the graph,
so the cost J = C_N + g(X_N) backpropagates through the SDE) or u_k = 0 ("random_walk": the
uncontrolled dynamics, detached). The sampling decides where the HJB penalties (bsde, terminal,
terminal_grad, hjb) are evaluated; the loss terms are the same for both: with "random_walk" the cost
and phi0_gap come from controlled paths drawn beside the random walk from the same starts. The loss
terms of Li, Verma and Ruthotto (SIAM SISC 2024), each per path (mean over the batch in the model):

    cost       J = C_N + g(X_N), the realised cost on controlled paths
    bsde       sum_k (Phi(t_{k+1}, X_{k+1}) - Phi(t_k, X_k) - grad Phi_k'(X_{k+1} - X_k) + H_k h)^2,
               the discrete Ito identity of a solution of the HJB equation (with the running cost of
               each path, not of the batch);
    terminal   |Phi(T, X_N) - g(X_N)|
    terminal_grad  |grad Phi(T, X_N) - grad g(X_N)|  (absolute values: g reaches thousands on the
               quadcopter, where squares would swamp the other terms)
    hjb        h sum_k (d_t Phi + tr(D Hess Phi) + H(t, x, grad Phi))^2 at (t_k, X_k), D = sigma sigma'/2
               applied once, the trace exact (`Potential.grad_laplacian` with directions sigma / sqrt 2);
    phi0_gap   |Phi(0, X_0) - J|: an absolute value, as the terminal terms, because J's
               spread (tens on the obstacle problem) made its square swamp the other terms.
For a pmp path H_k h = L_k h + grad Phi_k' f_k h, so the bsde residual is Phi_{k+1} - Phi_k + L_k h
- grad Phi_k' sigma sqrt(h) xi_k: the same identity written for the noise actually drawn.
Only J backpropagates through the paths (into Phi through the feedback u); the penalties are
evaluated on detached paths and J is detached in phi0_gap: they fit Phi where the paths go,
and pulling the paths (or J) towards where Phi happens to fit would raise the cost.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ctdl.potential import Potential

from .evaluate import realised_cost
from .paths import Paths, controlled_paths
from .problems import ControlProblem

SAMPLING = ("pmp", "random_walk")
LOSS_TERMS = ("cost", "bsde", "terminal", "terminal_grad", "hjb", "phi0_gap")


def check_sampling(sampling: str) -> None:
    if sampling not in SAMPLING:
        raise ValueError(f"unknown sampling {sampling!r}; known: {', '.join(SAMPLING)}")


TERMINAL = ("penalty", "exact")


class ValueFunction(nn.Module):
    """Phi(t, x) for `problem`, its feedback control, its paths and loss terms (see the module doc).

    With N = scale * (the potential):
    terminal="penalty": Phi = N, with Phi(T) = g taught by the terminal terms.
    terminal="exact":   Phi(t, x) = g(x) + (T - t) N(t, x), so Phi(T) = g holds by construction and
    the terminal terms vanish; then grad Phi = grad g + (T - t) grad N, d_t Phi = -N + (T - t) d_t N
    and tr(D Hess Phi) = tr(D Hess g) + (T - t) tr(D Hess N), all exact.

    `scale` is a fixed output scale: a value in the thousands (the quadcopter's) and its gradient
    in the tens are then O(1) functions of the weights, which Adam's steps of about lr in each
    weight reach in hundreds of iterations instead of tens of thousands. The output weights start
    divided by it (w / scale, A / sqrt(scale)), so the initial N, and the initial feedback, are
    those of scale 1."""

    def __init__(
        self,
        problem: ControlProblem,
        width: int = 64,
        depth: int = 3,
        rank: int | str | None = None,
        terminal: str = "penalty",
        scale: float = 1.0,
    ) -> None:
        super().__init__()
        if terminal not in TERMINAL:
            raise ValueError(f"unknown terminal {terminal!r}; known: {', '.join(TERMINAL)}")
        if not scale > 0:
            raise ValueError(f"the value scale must be positive, got {scale}")
        self.problem, self.terminal, self.scale = problem, terminal, float(scale)
        self.potential = Potential(problem.dim, width, depth=depth, rank=rank)
        with torch.no_grad():
            self.potential.w.div_(self.scale), self.potential.A.div_(math.sqrt(self.scale))
        self.match_level()

    @torch.no_grad()
    def match_level(self, n: int = 256, seed: int = 0) -> None:
        """Shift the potential's constant so that Phi starts at the terminal cost's level over n start
        draws (mean N(T, x0) = mean g(x0) for "penalty", mean N(0, x0) = 0 for "exact"): the ResNet
        alone starts near width * log 2, far from the value's level on most problems."""
        x0 = self.problem.sample_start(n, torch.Generator().manual_seed(seed)).to(self.potential.w)
        if self.terminal == "penalty":
            gap = self.problem.terminal_cost(x0).mean() - self.network(self.problem.horizon, x0).mean()
        else:
            gap = -self.network(0.0, x0).mean()
        self.potential.c0.add_((gap / self.scale).to(self.potential.c0))

    def network(self, t: Tensor | float, x: Tensor) -> Tensor:
        """N(t, x) = scale * potential(x, t), shape (n,)."""
        return self.scale * self.potential(x, t)

    @property
    def dim(self) -> int:
        return self.problem.dim

    def _remaining(self, t: Tensor | float, x: Tensor) -> Tensor:
        """T - t as (n,)."""
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device).reshape(-1).expand(len(x))
        return self.problem.horizon - t

    def forward(self, t: Tensor | float, x: Tensor) -> Tensor:
        """Phi(t, x), shape (n,)."""
        self.problem.check_state(x)
        N = self.network(t, x)
        if self.terminal == "penalty":
            return N
        return self.problem.terminal_cost(x) + self._remaining(t, x) * N

    def gradient(self, t: Tensor | float, x: Tensor) -> Tensor:
        """grad_x Phi(t, x), shape (n, d)."""
        grad = self.scale * self.potential.gradient(x, t)[0]
        if self.terminal == "penalty":
            return grad
        return self.problem.terminal_gradient(x) + self._remaining(t, x).unsqueeze(1) * grad

    def control(self, t: Tensor | float, x: Tensor) -> Tensor:
        """The feedback control u*(t, x, grad_x Phi(t, x)), shape (n, control_dim)."""
        self.problem.check_state(x)
        return self.problem.optimal_control(t, x, self.gradient(t, x))

    def paths(
        self, x0: Tensor, steps: int, sampling: str = "pmp", generator: torch.Generator | None = None
    ) -> Paths:
        """Euler-Maruyama paths from x0 (n, d) with `steps` steps on [0, T]."""
        check_sampling(sampling)
        control = self.control if sampling == "pmp" else None
        with torch.set_grad_enabled(torch.is_grad_enabled() and sampling == "pmp"):
            return controlled_paths(self.problem, control, x0, steps, generator)

    def hjb_terms(self, t: Tensor, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(Phi, grad_x Phi, H(t, x, grad Phi), the HJB residual d_t Phi + tr(D Hess Phi) + H) at
        the points (t_i, x_i); shapes (n,), (n, d), (n,), (n,)."""
        problem = self.problem
        directions = problem.sigma.to(x) / math.sqrt(2.0)
        derivatives = self.potential.grad_laplacian(x, t, directions=directions)
        grad, d_t, trace = (self.scale * v for v in derivatives)
        phi = self.network(t, x)
        if self.terminal == "exact":
            rest = self._remaining(t, x)
            grad = problem.terminal_gradient(x) + rest.unsqueeze(1) * grad
            d_t = rest * d_t - phi
            trace = problem.terminal_trace(x) + rest * trace
            phi = problem.terminal_cost(x) + rest * phi
        hamiltonian = problem.hamiltonian(t, x, grad)
        return phi, grad, hamiltonian, d_t + trace + hamiltonian

    def loss_terms(
        self,
        x0: Tensor,
        steps: int,
        sampling: str = "pmp",
        generator: torch.Generator | None = None,
        hjb: bool = True,
    ) -> dict[str, Tensor]:
        """The per-path loss terms of the module doc, each (n,); the penalties on the `sampling` paths,
        cost and phi0_gap on controlled ones; the terminal terms only for terminal="penalty"; the hjb
        term only with `hjb` (without it no Hessian trace is computed: a cheaper step)."""
        paths = self.paths(x0, steps, sampling, generator)
        N, n, d = paths.states.shape[0] - 1, *x0.shape
        h = self.problem.horizon / N
        t_all = paths.times.repeat_interleave(n)
        states = paths.states.detach()  # the penalties fit Phi where the paths go, they do not steer them
        flat = states.reshape(-1, d)
        if hjb:
            phi, grad, hamiltonian, residual = self.hjb_terms(t_all, flat)
        else:
            phi, grad = self(t_all, flat), self.gradient(t_all, flat)
            hamiltonian = self.problem.hamiltonian(t_all, flat, grad)
        phi, grad = phi.view(N + 1, n), grad.view(N + 1, n, d)
        hamiltonian = hamiltonian.view(N + 1, n)[:-1]
        dX = states[1:] - states[:-1]
        bsde = (phi[1:] - phi[:-1] - (grad[:-1] * dX).sum(-1) + hamiltonian * h).square().sum(0)
        terms = {"bsde": bsde}
        if hjb:
            terms["hjb"] = h * residual.view(N + 1, n)[:-1].square().sum(0)
        if self.terminal == "penalty":
            xT = states[-1]
            terms["terminal"] = (phi[-1] - self.problem.terminal_cost(xT)).abs()
            terms["terminal_grad"] = torch.linalg.vector_norm(
                grad[-1] - self.problem.terminal_gradient(xT), dim=-1
            )
        controlled = paths if sampling == "pmp" else self.paths(x0, steps, "pmp", generator)
        cost = realised_cost(self.problem, controlled)
        terms["cost"] = cost
        terms["phi0_gap"] = (phi[0] - cost.detach()).abs()  # phi[0] = Phi(0, X_0) on either paths
        return terms
