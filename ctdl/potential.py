"""The OT-Flow potential with its exact gradient and Laplacian (Onken et al., AAAI 2021).

    Phi(s) = w' N(s) + 1/2 s' (A'A) s + c' s + b,     s = (x, t, y) in R^{d + 1 + q},

with the ResNet  u_0 = sigma(K_0 s + b_0),  u_i = u_{i-1} + h sigma(K_i u_{i-1} + b_i)
(i = 1..M, h = 1/M, M = depth - 1), N(s) = u_M, and the activation
sigma(a) = log(2 cosh a),  sigma' = tanh,  sigma'' = 1 - tanh^2.

Gradient (reverse sweep): z_M = w,  z_{i-1} = z_i + h K_i' (sigma'(a_i) * z_i),
    grad_s Phi = K_0' (sigma'(a_0) * z_0) + A'A s + c.
Laplacian over the x-block only (forward sweep of J_i = d u_i / d x, an m x d matrix):
    J_0 = diag(sigma'(a_0)) K_0 E,                        tr_0 = (sigma''(a_0) * z_0)' rowsq(K_0 E)
    tr_i = h (sigma''(a_i) * z_i)' rowsq(K_i J_{i-1}),    J_i = J_{i-1} + h diag(sigma'(a_i)) K_i J_{i-1}
    tr(Hess_x Phi) = sum_i tr_i + ||A E||_F^2,
where E selects the x-coordinates and rowsq(B)_k = sum_j B_kj^2. Cost O(depth m^2 d) per sample,
exact, no trace estimator; losses backpropagate through it, also twice (the two fused steps'
hand-written backwards are themselves torch ops on saved inputs and outputs).
The conditioning input y enters s but not the trace (conditional OT-Flow, Wang et al. 2023).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def log_cosh(a: Tensor) -> Tensor:
    """sigma(a) = log(2 cosh a) = log(e^a + e^-a), overflow-free (one fused op)."""
    return torch.logaddexp(a, -a)


def _common_dtype(*tensors: Tensor) -> tuple[Tensor, ...]:
    """Cast to one dtype (the widest), so the hand-written backwards below also hold under
    autocast (bf16-mixed), where some inputs arrive in bfloat16 and others in float32."""
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    return tuple(t.to(dtype) for t in tensors)


class _ScaledRows(torch.autograd.Function):
    """J[l, n, j] = s[l, n] * B[l, j]: the first Jacobian diag(sigma'(a_0)) K_0 E of every sample,
    laid out (m, n, d). The backward contracts with batched matrix products instead of
    materialising two more (m, n, d) temporaries."""

    @staticmethod
    def forward(ctx, s: Tensor, B: Tensor) -> Tensor:
        ctx.save_for_backward(s, B)
        s, B = _common_dtype(s, B)
        return s.unsqueeze(2) * B.unsqueeze(1)

    @staticmethod
    def backward(ctx, dJ: Tensor):
        s, B = _common_dtype(*ctx.saved_tensors)
        dJ = dJ.to(s.dtype)
        ds = torch.bmm(dJ, B.unsqueeze(2)).squeeze(2) if ctx.needs_input_grad[0] else None
        dB = torch.bmm(s.unsqueeze(1), dJ).squeeze(1) if ctx.needs_input_grad[1] else None
        return ds, dB


class _WeightedSquaredNorms(torch.autograd.Function):
    """(sum_k w[k, n] ||(K J)[k, n, :]||^2 for each n,  K J) with J laid out (m, n, d).

    K J is one (m x m) @ (m x n*d) product; the backward needs two more and one pass over
    (m, n, d), where plain autograd of `(w * (K @ J).pow(2).sum(2)).sum(0)` needs several."""

    @staticmethod
    def forward(ctx, K: Tensor, J: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:
        inputs = (K, J, w)
        K, J, w = _common_dtype(K, J, w)
        m, n, d = J.shape
        KJ = (K @ J.reshape(m, n * d)).view(m, n, d)
        sq = torch.linalg.vector_norm(KJ, dim=2).square()  # (m, n)
        ctx.save_for_backward(*inputs, KJ)  # inputs and outputs only: double backward stays exact
        return (w * sq).sum(0), KJ

    @staticmethod
    def backward(ctx, g: Tensor, dKJ_out: Tensor | None):
        *inputs, KJ = ctx.saved_tensors
        K, J, w = _common_dtype(*inputs)
        m, n, d = J.shape
        dKJ = KJ * (2.0 * w * g.to(w.dtype)).unsqueeze(2)
        if dKJ_out is not None:
            dKJ = dKJ + dKJ_out.to(KJ.dtype)
        flat = dKJ.reshape(m, n * d)
        dK = flat @ J.reshape(m, n * d).T if ctx.needs_input_grad[0] else None
        dJ = (K.T @ flat).view(m, n, d) if ctx.needs_input_grad[1] else None
        dw = g * torch.linalg.vector_norm(KJ, dim=2).square() if ctx.needs_input_grad[2] else None
        return dK, dJ, dw


class Potential(nn.Module):
    """Phi(x, t, y) with `grad_laplacian` returning (grad_x Phi, d_t Phi, tr Hess_x Phi) exactly.

    `rank` is the number of rows of A in the quadratic part 1/2 s'A'As, s = (x, t, y): at most
    dim + 1 + cond_dim; None takes min(10, that), "full" all of it."""

    def __init__(
        self, dim: int, width: int, depth: int = 2, rank: int | str | None = None, cond_dim: int = 0
    ) -> None:
        super().__init__()
        if depth < 2:
            raise ValueError(f"depth must be >= 2 (an opening layer and residual layers), got {depth}")
        self.dim, self.width, self.depth, self.cond_dim = dim, width, depth, cond_dim
        n_in = dim + 1 + cond_dim
        self.rank = {None: min(10, n_in), "full": n_in}.get(rank, rank)
        if not isinstance(self.rank, int) or not 1 <= self.rank <= n_in:
            raise ValueError(
                f'rank must be an integer in [1, {n_in}] (dim + 1 + cond_dim), "full" or None, got {rank!r}'
            )
        self.h = 1.0 / (depth - 1)
        self.K0 = nn.Parameter(torch.empty(width, n_in))
        self.b0 = nn.Parameter(torch.empty(width))
        self.K = nn.Parameter(torch.empty(depth - 1, width, width))
        self.b = nn.Parameter(torch.empty(depth - 1, width))
        self.w = nn.Parameter(torch.ones(width))
        self.A = nn.Parameter(torch.empty(self.rank, n_in))
        self.c = nn.Parameter(torch.zeros(n_in))
        self.c0 = nn.Parameter(torch.zeros(()))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """nn.Linear's uniform init for the layers, Xavier for A; w = 1, c = 0, b = 0."""
        for weight, bias in [(self.K0, self.b0), *zip(self.K, self.b, strict=True)]:
            bound = 1.0 / math.sqrt(weight.shape[-1])
            nn.init.uniform_(weight, -bound, bound)
            nn.init.uniform_(bias, -bound, bound)
        nn.init.xavier_uniform_(self.A)
        with torch.no_grad():
            self.w.fill_(1.0), self.c.zero_(), self.c0.zero_()

    @torch.no_grad()
    def widened(self, width: int) -> Potential:
        """The same Phi with `width` units: function-preserving widening (Net2Net, Chen et al. 2016).

        The old units keep their weights; the new ones get fresh rows of K_0, b_0, K_i and b_i,
        while their output weights w and the columns of K_i through which old units would read
        them are zero. So Phi, its gradient and Laplacian are unchanged, and the new units still
        learn: d Phi / d w_new = u_new(s) is not zero. Returns a new Potential (same dtype and
        device); this one is not changed."""
        if width < self.width:
            raise ValueError(f"widen: width {width} is smaller than the potential's {self.width}")
        wide = Potential(self.dim, width, self.depth, self.rank, self.cond_dim).to(self.A)
        m = self.width
        for name in ("A", "c", "c0"):
            getattr(wide, name).copy_(getattr(self, name))
        wide.K0[:m], wide.b0[:m], wide.b[:, :m] = self.K0, self.b0, self.b
        wide.K[:, :m, :m] = self.K
        wide.K[:, :m, m:] = 0.0
        wide.w[:m], wide.w[m:] = self.w, 0.0
        wide.c0.requires_grad_(self.c0.requires_grad)
        return wide

    def _inputs(self, x: Tensor, t: Tensor | float, y: Tensor | None) -> Tensor:
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (batch, {self.dim}), got {tuple(x.shape)}")
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device).reshape(-1, 1).expand(x.shape[0], 1)
        parts = [x, t]
        if self.cond_dim:
            if y is None or y.shape != (x.shape[0], self.cond_dim):
                got = None if y is None else tuple(y.shape)
                raise ValueError(f"y must have shape ({x.shape[0]}, {self.cond_dim}), got {got}")
            parts.append(y)
        elif y is not None:
            raise ValueError("this potential has cond_dim=0 but a conditioning input y was given")
        return torch.cat(parts, dim=1)

    def _resnet(self, s: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """Pre-activations a_0..a_M and states u_0..u_{M-1} of the ResNet N."""
        a = [torch.addmm(self.b0, s, self.K0.T)]
        u = [log_cosh(a[0])]
        for i in range(self.depth - 1):
            a.append(torch.addmm(self.b[i], u[-1], self.K[i].T))
            if i < self.depth - 2:
                u.append(u[-1] + self.h * log_cosh(a[-1]))
        return a, u

    def forward(self, x: Tensor, t: Tensor | float, y: Tensor | None = None) -> Tensor:
        """Phi(x, t, y), shape (batch,)."""
        s = self._inputs(x, t, y)
        a, u = self._resnet(s)
        N = u[-1] + self.h * log_cosh(a[-1])
        As = s @ self.A.T
        return N @ self.w + 0.5 * As.pow(2).sum(1) + s @ self.c + self.c0

    def _reverse(self, s: Tensor) -> tuple[list[Tensor], list[Tensor], Tensor]:
        """tanh(a_i) = sigma'(a_i), the backprop vectors z_i, and grad_s Phi (reverse sweep)."""
        a, _ = self._resnet(s)
        dsig = [torch.tanh(ai) for ai in a]
        z = [None] * len(a)  # z_M = w, z_{i-1} = z_i + h K_i' (sigma'(a_i) * z_i)
        z[-1] = self.w.expand(s.shape[0], -1)
        for i in range(len(a) - 1, 0, -1):
            z[i - 1] = torch.addmm(z[i], dsig[i] * z[i], self.K[i - 1], alpha=self.h)
        grad_s = torch.addmm(torch.addmm(self.c, dsig[0] * z[0], self.K0), s @ self.A.T, self.A)
        return dsig, z, grad_s

    def gradient(self, x: Tensor, t: Tensor | float, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(grad_x Phi (batch, d), d_t Phi (batch,)) by the reverse sweep alone: O(depth m^2) a sample."""
        grad_s = self._reverse(self._inputs(x, t, y))[2]
        return grad_s[:, : self.dim], grad_s[:, self.dim]

    SMALL_DIM = 4  # up to this d, one column of J at a time is faster than the (m, n, d) layout

    def _trace_per_coordinate(self, dsig: list[Tensor], z: list[Tensor], K0x: Tensor) -> Tensor:
        """sum_i tr_i for i >= 1 with the columns J[:, :, j] (batch, m) of the Jacobian kept apart."""
        cols = [dsig[0] * K0x[:, j] for j in range(K0x.shape[1])]
        trace = 0.0
        for i in range(1, len(dsig)):
            weight = (1 - dsig[i] ** 2) * z[i]
            KJ = [col @ self.K[i - 1].T for col in cols]
            trace = trace + self.h * sum((weight * kj.square()).sum(1) for kj in KJ)
            if i < len(dsig) - 1:
                cols = [col + self.h * dsig[i] * kj for col, kj in zip(cols, KJ, strict=True)]
        return trace

    def _trace_stacked(self, dsig: list[Tensor], z: list[Tensor], K0x: Tensor) -> Tensor:
        """sum_i tr_i for i >= 1 with J stored as J[l, n, j] = d u_l / d x_j of sample n, so that
        K_i J is ONE (m x m) @ (m x n*d) matrix product (and its backward two more)."""
        J = _ScaledRows.apply(dsig[0].T, K0x)  # (m, n, d)
        trace = 0.0
        for i in range(1, len(dsig)):
            weight = ((1 - dsig[i] ** 2) * z[i]).T  # (m, n)
            term, KJ = _WeightedSquaredNorms.apply(self.K[i - 1], J, weight)
            trace = trace + self.h * term
            if i < len(dsig) - 1:
                J = J + self.h * dsig[i].T.unsqueeze(2) * KJ
        return trace

    def grad_laplacian(
        self, x: Tensor, t: Tensor | float, y: Tensor | None = None, directions: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """(grad_x Phi (batch, d), d_t Phi (batch,), tr Hess_x Phi (batch,)), all exact.

        With `directions` M (d, k) the trace is tr(M' Hess_x Phi M) = tr(M M' Hess_x Phi), the
        Laplacian of Phi(M z) in z: the diffusion term tr(D Hess Phi) of an SDE with D = M M'
        (E M in place of E in the sweeps above, same cost with k columns)."""
        d = self.dim
        s = self._inputs(x, t, y)
        dsig, z, grad_s = self._reverse(s)

        K0x, Ax = self.K0[:, :d], self.A[:, :d]
        if directions is not None:
            if directions.ndim != 2 or directions.shape[0] != d:
                raise ValueError(f"directions must have shape ({d}, k), got {tuple(directions.shape)}")
            directions = directions.to(K0x)
            K0x, Ax = K0x @ directions, Ax @ directions
        trace = ((1 - dsig[0] ** 2) * z[0]) @ K0x.pow(2).sum(1)
        if K0x.shape[1] <= self.SMALL_DIM:
            trace = trace + self._trace_per_coordinate(dsig, z, K0x)
        else:
            trace = trace + self._trace_stacked(dsig, z, K0x)
        trace = trace + Ax.pow(2).sum()
        return grad_s[:, :d], grad_s[:, d], trace


TRACE_METHODS = ("exact", "autograd", "hutchinson")


def check_trace(trace: str) -> None:
    """Raise a ValueError naming the known trace methods unless `trace` is one of them."""
    if trace not in TRACE_METHODS:
        raise ValueError(f"unknown trace method {trace!r}; known methods: {', '.join(TRACE_METHODS)}")


def potential_derivatives(
    potential: Potential,
    x: Tensor,
    t: Tensor | float,
    y: Tensor | None = None,
    trace: str = "exact",
    noise: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """(grad_x Phi, d_t Phi, tr Hess_x Phi) with the trace computed by `trace`:

    exact       the hand-derived sweeps of `Potential.grad_laplacian` (O(depth m^2 d), exact);
    autograd    d backward passes through grad_x Phi, as a plain CNF computes tr(dv/dx) (exact);
    hutchinson  FFJORD's estimator eps' Hess eps with one backward pass (unbiased, noisy);
                `noise` (batch, d) is eps, drawn once per solve by the caller.
    The gradient itself is always exact. Works under torch.no_grad (it re-enables grad locally).
    """
    if trace == "exact":
        return potential.grad_laplacian(x, t, y)
    check_trace(trace)
    if trace == "hutchinson" and (noise is None or noise.shape != x.shape):
        got = None if noise is None else tuple(noise.shape)
        raise ValueError(f"trace='hutchinson' needs noise of shape {tuple(x.shape)}, got {got}")
    keep_graph = torch.is_grad_enabled()
    with torch.enable_grad():
        if not x.requires_grad:
            x = x.detach().requires_grad_()
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device).reshape(-1).expand(x.shape[0]).clone()
        t.requires_grad_()
        grad_x, d_t = torch.autograd.grad(potential(x, t, y).sum(), (x, t), create_graph=True)
        if trace == "autograd":
            rows = [
                torch.autograd.grad(grad_x[:, i].sum(), x, create_graph=keep_graph, retain_graph=True)[0][
                    :, i
                ]
                for i in range(x.shape[1])
            ]
            lap = torch.stack(rows, dim=1).sum(1)
        else:
            hess_eps = torch.autograd.grad(
                (grad_x * noise).sum(), x, create_graph=keep_graph, retain_graph=True
            )[0]
            lap = (hess_eps * noise).sum(1)
    if not keep_graph:
        grad_x, d_t, lap = grad_x.detach(), d_t.detach(), lap.detach()
    return grad_x, d_t, lap
