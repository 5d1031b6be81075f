"""Amortized feedback control of the source-mitigation PDE (`ctdl.pde_control.AdvectionDiffusion`):
one policy for every (velocity, source) instance, trained through the differentiable finite-element
rollout; the evaluation is `ctdl.pde_control.evaluate`.

policy = "value": Phi(t, u; v, f) (`ctdl.pde_control.QuadraticValue`) with the Hamiltonian's feedback
    a* = clip((B_k u)' S^{-T} grad Phi / alpha, 0, a_max); loss = alpha_cost J + alpha_hjb hjb.
policy = "direct": a = a_max sigmoid(CNN(u, v, f, t)) (`ctdl.pde_control.DirectPolicy`); loss = J.
"""

from __future__ import annotations

import lightning as L
import torch
from torch import Tensor

from ctdl.pde_control import AdvectionDiffusion, evaluate
from ctdl.pde_control.networks import DirectPolicy, QuadraticValue, check_grid
from ctdl.pde_control.objective import loss_terms, policy_rollout

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
            pde_args: keywords of `ctdl.pde_control.AdvectionDiffusion` (linked from the datamodule by
                `ctdl`).
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
        cost, free = evaluate.costs(self.problem, self.policy, params)
        logs = {f"{stage}/cost": cost.mean(), f"{stage}/cost_ratio": (cost / free).mean()}
        if stage == "test":
            logs["test/cost_uncontrolled"] = free.mean()
            logs["test/decision_ms"] = torch.tensor(
                evaluate.decision_ms(self.problem, self.policy, params[:1])
            )
        self.log_dict(
            {k: v.float() for k, v in logs.items()},
            prog_bar=stage == "val",
            batch_size=len(params),
            sync_dist=True,
        )

    def validation_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def predict_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> dict[str, Tensor]:
        """`ctdl predict`: the rates (batch, N, K) of the learned feedback and the cost J (batch,) for each
        instance of the batch (the datamodule's test instances)."""
        params = batch[0]
        return {"rates": self.control(params), "cost": evaluate.costs(self.problem, self.policy, params)[0]}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["train_pde_solves"] = self.train_solves

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.train_solves = int(checkpoint.get("train_pde_solves", 0))

    def configure_optimizers(self):
        return adamw_with_schedule(self)
