"""OT-Flow's training objective over a `PotentialFlow` (Onken et al., AAAI 2021, Eq. 8):

    J = alpha_L E[L] + alpha_C E[C] + alpha_R E[R],

C = -log p(x | y) in nats, L the transport cost 1/2 int |grad_x Phi|^2 dt and R the HJB penalty
int | -d_t Phi + 1/2 |grad_x Phi|^2 | dt of each sample (the (x, l, L, R) system of ctdl.flows).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..flows import PotentialFlow


def otflow_loss(
    flow: PotentialFlow,
    x: Tensor,
    y: Tensor | None = None,
    *,
    steps: int | None = None,
    alpha_L: float = 1.0,
    alpha_C: float = 100.0,
    alpha_R: float = 5.0,
) -> dict[str, Tensor]:
    """{"loss": J, "nll": E[C], "transport": E[L], "hjb": E[R]} on the batch x (given y), with
    `steps` RK4 steps (default the flow's)."""
    C, cost_L, cost_R = flow.nll_terms(x, y, steps=steps)
    nll, transport, hjb = C.mean(), cost_L.mean(), cost_R.mean()
    loss = alpha_L * transport + alpha_C * nll + alpha_R * hjb
    return {"loss": loss, "nll": nll, "transport": transport, "hjb": hjb}


@torch.no_grad()
def clamp_parameters(module: nn.Module, bound: float | None) -> None:
    """Clamp every parameter of `module` to [-bound, bound] (the published box is 1.5; None: no-op)."""
    if bound is not None:
        for p in module.parameters():
            p.clamp_(-bound, bound)
