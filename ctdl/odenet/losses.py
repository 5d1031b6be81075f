"""The training loss of an ODE-Net classifier:

    loss = cross-entropy + alpha/2 ||theta||^2 + beta * sum_k ||theta_{k+1} - theta_k||^2 / dt,

the last term (beta = `smoothness`) the blocks' smoothness of theta(t) in time (`ODEBlock.smoothness`).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from .network import ODENet


def regularizer(net: ODENet, alpha: float, smoothness: float = 0.0) -> Tensor:
    """alpha/2 ||theta||^2 + smoothness * sum of the blocks' smoothness in time."""
    reg = 0.5 * alpha * sum(p.pow(2).sum() for p in net.parameters())
    if smoothness > 0:
        reg = reg + smoothness * sum(b.smoothness() for b in net.blocks)
    return reg


def classification_loss(
    net: ODENet, logits: Tensor, y: Tensor, alpha: float, smoothness: float = 0.0
) -> tuple[Tensor, Tensor]:
    """(loss, cross-entropy) of the logits of a batch with labels y: cross-entropy + `regularizer`."""
    ce = F.cross_entropy(logits, y)
    return ce + regularizer(net, alpha, smoothness), ce
