"""An FFJORD-style continuous normalising flow (Grathwohl et al., ICLR 2019), OT-Flow's peer:

    dx/dt = f(x, t),    d log p / dt = -tr(df/dx),    -log p(x) = 1/2 |z|^2 + d/2 log 2 pi + int tr,

with a free-form field f (an MLP on the concatenation (x, t)), dopri5 (rtol = atol = 1e-5) and
Hutchinson's trace estimator eps' (df/dx) eps in training (one Gaussian probe per solve), the
exact trace by d backward passes in evaluation.
"""

from __future__ import annotations

import math

import torch
import torchdiffeq
from torch import Tensor, nn


class ConcatField(nn.Module):
    """FFJORD-style concatenated field: an MLP on (x, t) with tanh, every layer reading t again."""

    def __init__(self, dim: int, hidden: int = 64, layers: int = 3) -> None:
        super().__init__()
        sizes = [dim + 1] + [hidden] * layers
        self.layers = nn.ModuleList(
            nn.Linear(a + (1 if i else 0), b)
            for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True))
        )
        self.out = nn.Linear(hidden + 1, dim)

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        """f(x, t), shape (batch, dim)."""
        tt = t.expand(x.shape[0], 1)
        h = torch.cat([x, tt], 1)
        for i, layer in enumerate(self.layers):
            h = torch.tanh(layer(h if i == 0 else torch.cat([h, tt], 1)))
        return self.out(torch.cat([h, tt], 1))


class FFJORDStyleCNF(nn.Module):
    """`nll(x, exact=False)`: -log p(x) per sample, Hutchinson's trace unless `exact`."""

    def __init__(self, dim: int, rtol: float = 1e-5, atol: float = 1e-5) -> None:
        super().__init__()
        self.dim, self.field, self.rtol, self.atol = dim, ConcatField(dim), rtol, atol
        self.probe, self.exact = None, False

    def augmented(self, t: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        """(f(x, t), -tr df/dx) for the state (x, log-density change)."""
        x, _ = state
        with torch.enable_grad():
            x = x if x.requires_grad else x.detach().requires_grad_()
            v = self.field(t, x)
            if self.exact:
                div = sum(
                    torch.autograd.grad(v[:, i].sum(), x, create_graph=True)[0][:, i] for i in range(self.dim)
                )
            else:
                hv = torch.autograd.grad((v * self.probe).sum(), x, create_graph=True)[0]
                div = (hv * self.probe).sum(1)
        return v, -div

    def nll(self, x: Tensor, exact: bool = False) -> Tensor:
        """-log p(x) in nats, shape (batch,): one dopri5 solve of the augmented system on [0, 1]."""
        self.exact, self.probe = exact, torch.randn_like(x)
        t = torch.tensor([0.0, 1.0], dtype=x.dtype)
        z, dlogp = (
            s[-1]
            for s in torchdiffeq.odeint(
                self.augmented,
                (x, torch.zeros(len(x), dtype=x.dtype)),
                t,
                method="dopri5",
                rtol=self.rtol,
                atol=self.atol,
            )
        )
        return 0.5 * z.pow(2).sum(1) + 0.5 * self.dim * math.log(2 * math.pi) + dlogp
