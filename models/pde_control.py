"""Amortized feedback control of the source-mitigation PDE (`ctdl.pde.AdvectionDiffusion`): one policy
for every (velocity, source) instance, trained through the differentiable finite-element rollout.

policy = "value": Phi(t, u; v, f) (`ctdl.pde.QuadraticValue`) with the Hamiltonian's feedback
    a* = clip((B_k u)' S^{-T} grad Phi / alpha, 0, a_max); loss = alpha_cost J + alpha_hjb hjb.
policy = "direct": a = a_max sigmoid(CNN(u, v, f, t)) (`ctdl.pde.DirectPolicy`); loss = J.
"""

from __future__ import annotations

import time

import lightning as L
import torch
from torch import Tensor

from ctdl.pde import AdvectionDiffusion, rollout
from ctdl.pde.networks import DirectPolicy, QuadraticValue, check_grid
from ctdl.pde.objective import loss_terms, policy_rollout

from .optim import adamw_with_schedule, check_scheduler

POLICIES = ("value", "direct")


class SourceMitigation(L.LightningModule):
    """A feedback policy for the source-mitigation PDE. Batches are instance parameters (params,)
    (`ctdl.datamodules.PDEInstances`). Logs train/loss, train/cost, train/hjb and train/pde_solves
    (linear solves, forward and adjoint, of all training so far); val/cost and val/cost_ratio (J over
    the uncontrolled cost); at test also test/cost_uncontrolled and test/decision_ms (one feedback
    decision for one instance)."""

    def __init__(
        self,
        policy: str = "value",
        pde_args: dict | None = None,
        grid: int | None = None,
        width: int = 16,
        output_scale: float = 1.0,
        time_basis: int = 6,
        alpha_cost: float = 1.0,
        alpha_hjb: float = 0.01,
        lr: float = 3e-3,
        weight_decay: float = 0.0,
        scheduler: str = "cosine",
    ) -> None:
        """
        Args:
            policy: "value" (value function and Hamiltonian feedback) or "direct" (a CNN policy).
            pde_args: keywords of `ctdl.pde.AdvectionDiffusion` (linked from the datamodule by `ctdl`).
            grid: the networks' input images are grid x grid; must be the problem's cells + 1 (default).
            width: channels of the first convolution.
            output_scale: factor on the value network's outputs.
            time_basis: Chebyshev polynomials in t of the value's coefficients.
            alpha_cost, alpha_hjb: weights of J and of the discrete HJB residual (value policy).
            lr, weight_decay, scheduler: AdamW and its per-step schedule.
        """
        if policy not in POLICIES:
            raise ValueError(f"unknown policy {policy!r}; known policies: {', '.join(POLICIES)}")
        check_scheduler(scheduler)
        super().__init__()
        self.problem = AdvectionDiffusion(**(pde_args or {}))
        check_grid(self.problem, grid)
        self.save_hyperparameters()
        self.hparams.grid = self.problem.grid
        self.policy = (
            QuadraticValue(self.problem, width, output_scale, time_basis)
            if policy == "value"
            else DirectPolicy(self.problem, width)
        )
        self.train_solves = 0

    # ------------------------------------------------------------------------------ the policy
    def control(self, params: Tensor) -> Tensor:
        """The rates a (B, N, K) of the learned feedback along each instance's controlled path."""
        with torch.no_grad():
            path, _ = policy_rollout(self.problem, self.policy, self.problem.instances(params))
        return path.controls.transpose(0, 1)

    def costs(self, params: Tensor) -> tuple[Tensor, Tensor]:
        """J under the learned feedback and without control, (B,) each."""
        inst = self.problem.instances(params)
        with torch.no_grad():
            path, _ = policy_rollout(self.problem, self.policy, inst)
            zero = torch.zeros(self.problem.steps, len(inst), self.problem.num_actuators, dtype=torch.float64)
            return path.cost, rollout(self.problem, inst, zero).cost

    # ------------------------------------------------------------------------------ training
    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        self._solves_before = self.problem.solves

    def training_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        params = batch[0]
        terms, _ = loss_terms(self.problem, self.policy, self.problem.instances(params))
        terms = {k: v.mean() for k, v in terms.items()}
        loss = sum(self.hparams[f"alpha_{k}"] * v for k, v in terms.items())
        self.log_dict(
            {"train/loss": loss, **{f"train/{k}": v for k, v in terms.items()}},
            prog_bar=True,
            batch_size=len(params),
        )
        return loss.float()

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        self.train_solves += self.problem.solves - self._solves_before  # forward and adjoint solves
        self.log(
            "train/pde_solves", float(self.train_solves * self.trainer.world_size), batch_size=len(batch[0])
        )

    def _eval_step(self, batch: tuple[Tensor, ...], stage: str) -> None:
        params = batch[0]
        cost, free = self.costs(params)
        logs = {f"{stage}/cost": cost.mean(), f"{stage}/cost_ratio": (cost / free).mean()}
        if stage == "test":
            logs["test/cost_uncontrolled"] = free.mean()
            logs["test/decision_ms"] = torch.tensor(self.decision_ms(params[:1]))
        self.log_dict(
            {k: v.float() for k, v in logs.items()},
            prog_bar=stage == "val",
            batch_size=len(params),
            sync_dist=True,
        )

    def decision_ms(self, params: Tensor, repeats: int = 5) -> float:
        """Milliseconds for one feedback decision (network, gradient and law) for one instance at t = T/2."""
        inst = self.problem.instances(params)
        u = torch.rand(1, self.problem.size, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        t = 0.5 * self.problem.horizon
        with torch.no_grad():
            start = time.perf_counter()
            for _ in range(repeats):
                if isinstance(self.policy, QuadraticValue):
                    self.policy.control(inst, self.policy.coefficients(inst, torch.tensor([t])).at(0), u)
                else:
                    self.policy.control(inst, u, t)
        return 1000 * (time.perf_counter() - start) / repeats

    def validation_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def predict_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> dict[str, Tensor]:
        """`ctdl predict`: the rates (batch, N, K) of the learned feedback and the cost J (batch,) for each
        instance of the batch (the datamodule's test instances)."""
        params = batch[0]
        return {"rates": self.control(params), "cost": self.costs(params)[0]}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["train_pde_solves"] = self.train_solves

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.train_solves = int(checkpoint.get("train_pde_solves", 0))

    def configure_optimizers(self):
        return adamw_with_schedule(self)
