"""OT-Flow: a continuous normalizing flow v = -grad Phi with transport cost and HJB penalty
(Onken, Wu Fung, Li, Ruthotto, AAAI 2021).

ODE on [0, 1] for the state (x, l, L, R), started at (x0, 0, 0, 0) with x0 a data sample:

    dx/dt = -grad_x Phi(x, t),           dl/dt = -tr Hess_x Phi(x, t)   (= div v),
    dL/dt = 1/2 |grad_x Phi|^2,          dR/dt = | -d_t Phi + 1/2 |grad_x Phi|^2 |   (HJB residual).

C = 1/2 |x(1)|^2 + d/2 log(2 pi) - l(1) is the negative log-likelihood of x0 in nats;
loss = alpha_L mean L + alpha_C mean C + alpha_R mean R. Classic RK4 with fixed steps
(`steps` in training, `eval_steps` for validation, test and sampling).
"""

from __future__ import annotations

import math

import lightning as L
import torch
from torch import Tensor

from ctdl.integrators import odeint
from ctdl.potential import TRACE_METHODS, Potential, potential_derivatives

from .optim import adamw_with_schedule, check_scheduler


class OTFlow(L.LightningModule):
    """Density estimation with OT-Flow. Logs train/loss, val/nll, val/nll_train_steps (val/nll
    with the training step count), test/nll, test/transport, test/hjb, test/inv_err, and
    test/nll_true and test/gap (the KL gap) when the datamodule knows its true density.
    After training: `log_prob(x)`, `sample(n)`, `forward(x)`."""

    def __init__(
        self,
        dim: int = 2,
        width: int = 32,
        depth: int = 2,
        rank: int | None = None,
        alpha_L: float = 1.0,
        alpha_C: float = 100.0,
        alpha_R: float = 5.0,
        steps: int = 8,
        eval_steps: int = 16,
        test_steps: int | None = None,
        trace: str = "exact",
        clamp: float | None = None,
        lr: float = 0.01,
        weight_decay: float = 0.0,
        scheduler: str = "cosine",
    ) -> None:
        """
        Args:
            dim: dimension d of the data.
            width: width m of the potential's ResNet.
            depth: layers of the ResNet (nTh; 2 in every published run).
            rank: rank of A (default min(10, d + 1)).
            alpha_L, alpha_C, alpha_R: weights of transport cost, NLL and HJB penalty.
            steps: RK4 steps on [0, 1] in training.
            eval_steps: RK4 steps for validation, log_prob and sampling.
            test_steps: RK4 steps for testing (default: eval_steps).
            trace: "exact" (hand-derived), "autograd" (d backward passes) or "hutchinson".
            clamp: clamp every parameter to [-clamp, clamp] after each step (published: 1.5).
            lr: Adam learning rate.
            weight_decay: AdamW weight decay.
            scheduler: "cosine" (per step, to zero) or "none".
        """
        super().__init__()
        self.save_hyperparameters()
        if trace not in TRACE_METHODS:
            raise ValueError(f"unknown trace method {trace!r}; known methods: {', '.join(TRACE_METHODS)}")
        check_scheduler(scheduler)
        self.dim = dim
        self.potential = Potential(dim, width, depth=depth, rank=rank)

    # ----------------------------------------------------------------------------- the flow
    def check_input(self, x: Tensor) -> None:
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(
                f"the data has samples of shape {list(x.shape[1:])} but the model was built for "
                f"dim={self.dim}; set model.dim to the data's dimension (the datamodule's dim)"
            )
        dtype = self.potential.A.dtype
        if x.dtype != dtype:
            raise TypeError(f"x is {x.dtype} but the model's parameters are {dtype}; "
                            f"pass x.to({dtype}) or convert the model with .to({x.dtype})")

    def _field(self, noise: Tensor | None):
        """The right-hand side of the (x, l, L, R) system; `noise` is Hutchinson's probe."""

        def f(t: Tensor, state: tuple[Tensor, Tensor, Tensor, Tensor]):
            x = state[0]
            grad, d_t, lap = potential_derivatives(self.potential, x, t, trace=self.hparams.trace,
                                                   noise=noise)
            kinetic = 0.5 * grad.pow(2).sum(1)
            return -grad, -lap, kinetic, (kinetic - d_t).abs()

        return f

    def integrate(self, x: Tensor, steps: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(x(1), l(1), L(1), R(1)) from x(0) = x and l = L = R = 0."""
        self.check_input(x)
        zeros = x.new_zeros(x.shape[0])
        noise = torch.randn_like(x) if self.hparams.trace == "hutchinson" else None
        t = torch.tensor([0.0, 1.0], dtype=x.dtype, device=x.device)
        out = odeint(self._field(noise), (x, zeros, zeros, zeros), t, method="rk4", steps=steps)
        return tuple(part[-1] for part in out)

    def _velocity(self, t: Tensor, x: Tensor) -> Tensor:
        """v(x, t) = -grad_x Phi(x, t) (gradient only: no trace needed to move points)."""
        return -self.potential.gradient(x, t)[0]

    def _map(self, x: Tensor, steps: int | None, t0: float, t1: float) -> Tensor:
        self.check_input(x)
        t = torch.tensor([t0, t1], dtype=x.dtype, device=x.device)
        return odeint(self._velocity, x, t, method="rk4", steps=steps or self.hparams.eval_steps)[-1]

    def forward(self, x: Tensor, steps: int | None = None) -> Tensor:
        """The flow map F: data x -> latent z = x(1)."""
        return self._map(x, steps, 0.0, 1.0)

    def inverse(self, z: Tensor, steps: int | None = None) -> Tensor:
        """F^{-1}: latent z -> data, integrating dx/dt = -grad Phi backwards from t = 1 to 0."""
        return self._map(z, steps, 1.0, 0.0)

    def nll_terms(self, x: Tensor, steps: int) -> tuple[Tensor, Tensor, Tensor]:
        """Per-sample (C, L, R): NLL in nats, transport cost, HJB penalty."""
        z, l, cost_L, cost_R = self.integrate(x, steps)
        C = 0.5 * z.pow(2).sum(1) + 0.5 * self.dim * math.log(2 * math.pi) - l
        return C, cost_L, cost_R

    def log_prob(self, x: Tensor, steps: int | None = None) -> Tensor:
        """Natural-log density of the model at x, shape (batch,)."""
        return -self.nll_terms(x, steps or self.hparams.eval_steps)[0]

    @torch.no_grad()
    def sample(self, n: int, steps: int | None = None, generator: torch.Generator | None = None) -> Tensor:
        """n samples, shape (n, dim): z ~ N(0, I) pushed through F^{-1}."""
        p = next(self.parameters())
        z = torch.randn(n, self.dim, generator=generator, dtype=p.dtype, device=p.device)
        return self.inverse(z, steps)

    # ------------------------------------------------------------------------------ training
    def loss_terms(self, x: Tensor, steps: int) -> dict[str, Tensor]:
        C, cost_L, cost_R = self.nll_terms(x, steps)
        h = self.hparams
        loss = h.alpha_L * cost_L.mean() + h.alpha_C * C.mean() + h.alpha_R * cost_R.mean()
        return {"loss": loss, "nll": C.mean(), "transport": cost_L.mean(), "hjb": cost_R.mean()}

    def training_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        terms = self.loss_terms(batch[0], self.hparams.steps)
        self.log_dict({f"train/{k}": v for k, v in terms.items()}, prog_bar=True, batch_size=len(batch[0]))
        return terms["loss"]

    @torch.no_grad()
    def clamp_parameters(self) -> None:
        """Clamp every parameter to [-clamp, clamp] (no-op when clamp is None)."""
        if self.hparams.clamp is not None:
            for p in self.parameters():
                p.clamp_(-self.hparams.clamp, self.hparams.clamp)

    def optimizer_step(self, *args, **kwargs) -> None:
        """The optimiser's step, then the clamp: so callbacks that read the weights after the step
        (EMAWeightAveraging) see them inside the box."""
        super().optimizer_step(*args, **kwargs)
        self.clamp_parameters()

    def _eval_step(self, batch: tuple[Tensor, ...], stage: str) -> None:
        x = batch[0]
        h = self.hparams
        steps = (h.test_steps or h.eval_steps) if stage == "test" else h.eval_steps
        terms = self.loss_terms(x, steps)
        logs = {f"{stage}/{k}": v for k, v in terms.items()}
        if stage == "val" and h.steps != steps:
            # The NLL the training discretisation reports on the same data: far below val/nll means
            # the optimiser exploits the coarse steps' error in the log-determinant.
            logs["val/nll_train_steps"] = self.nll_terms(x, h.steps)[0].mean()
        if stage == "test":
            back = self.inverse(self.forward(x, steps), steps)
            logs["test/inv_err"] = (back - x).norm(dim=1).mean()
            true_density = self._true_log_density()
            if true_density is not None:  # KL gap E[-log p_model] - E[-log p_true] >= 0
                logs["test/nll_true"] = -true_density(x).to(x.dtype).mean()
                logs["test/gap"] = logs["test/nll"] - logs["test/nll_true"]
        self.log_dict(logs, prog_bar=stage == "val", batch_size=len(x), sync_dist=True)

    def _true_log_density(self):
        """The datamodule's closed-form log density where it has one (e.g. 8gaussians), else None."""
        data = getattr(self._trainer, "datamodule", None)
        return data.log_density if getattr(data, "has_log_density", False) else None

    def validation_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def predict_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        """`ctdl predict` samples the model: as many samples as the batch holds."""
        return self.sample(len(batch[0]))

    def configure_optimizers(self):
        return adamw_with_schedule(self)
