"""Stochastic optimal control with a value network and Pontryagin-informed sampling (Li, Verma and
Ruthotto, SIAM SISC 2024), as a thin LightningModule over `ctdl.soc.ValueFunction`; the test
metrics are those of `ctdl.soc.evaluate`.

loss = sum_k alpha_k mean(term_k) over the terms of `ctdl.soc.value_function` (cost, bsde,
terminal, terminal_grad, hjb, phi0_gap) on Euler-Maruyama paths from a batch of start points.
"""

from __future__ import annotations

import lightning as L
import torch
from torch import Tensor

from ctdl.soc import ValueFunction, make_problem, reference_control, reference_value
from ctdl.soc import evaluate as E
from ctdl.soc.value_function import check_sampling

from .optim import adamw_with_schedule, check_scheduler


class StochasticOptimalControl(L.LightningModule):
    """A value function Phi(t, x) and its feedback control for a control problem. Batches are start
    points (x0,) in training and (x0, Phi_ref(0, x0)) in validation and testing (NaN where the
    problem has no reference). Logs train/loss and its terms, val/loss, val/cost (the realised
    cost J of the learned feedback), val/phi0_rel_err; test/phi0_rel_err, test/traj_rel_l2 (Phi
    along controlled paths against the reference), test/cost, and where there is a
    reference test/cost_ref (the mean reference value Phi_ref(0, x0): the optimal expected cost) and
    test/cost_matched (the realised cost over the same starts: the finite-element reference lives
    on a box, which some starts leave); where the problem has a reference feedback,
    test/cost_ref_feedback and test/cost_same_noise (its realised cost and the learned one, with the
    same noise)."""

    def __init__(
        self,
        problem: str = "hjb_lq",
        problem_args: dict | None = None,
        dim: int | None = None,
        width: int = 64,
        depth: int = 3,
        rank: int | str | None = None,
        steps: int = 20,
        eval_steps: int = 50,
        sampling: str = "pmp",
        terminal: str = "penalty",
        value_scale: float = 1.0,
        alpha_cost: float = 1.0,
        alpha_bsde: float = 1.0,
        alpha_terminal: float = 1.0,
        alpha_terminal_grad: float = 1.0,
        alpha_hjb: float = 1.0,
        alpha_phi0_gap: float = 1.0,
        lr: float = 0.01,
        weight_decay: float = 0.0,
        scheduler: str = "cosine",
        traj_paths: int = 32,
        reference_samples: int | None = None,
    ) -> None:
        """
        Args:
            problem: a name of `ctdl.soc.PROBLEMS` (linked from the datamodule by `ctdl`).
            problem_args: its constructor's keywords, e.g. {dim: 100, lam: 1.0} (linked too).
            dim: the value network's state dimension; must equal the problem's (linked).
            width, depth, rank: the potential's ResNet width, layers and the rank of A ("full": d + 1).
            steps: Euler-Maruyama steps on [0, T] in training.
            eval_steps: steps in validation and testing.
            sampling: where the HJB penalties are evaluated: "pmp" (paths under the learned feedback,
                in the graph) or "random_walk" (uncontrolled paths, detached); the same loss terms
                for both (with "random_walk" the cost and phi0_gap come from controlled paths beside).
            terminal: "penalty" (Phi(T) = g taught by the terminal terms) or "exact" (Phi = g + (T - t) N
                meets it by construction; the terminal terms vanish).
            value_scale: N = value_scale * (the potential): set it near the value's level (the
                optimal cost) so that the network's own outputs are O(1).
            alpha_*: the weights of the loss terms.
            lr, weight_decay, scheduler: AdamW and its per-step cosine decay (applied once).
            traj_paths: paths of each test batch along which Phi is compared with the reference.
            reference_samples: None: the exact Cole-Hopf quadrature in testing (hjb_lq); a number:
                Monte Carlo with that many draws per point (a check).
        """
        super().__init__()
        self.save_hyperparameters()
        check_sampling(sampling)
        check_scheduler(scheduler)
        self.problem = make_problem(problem, **(problem_args or {}))
        if dim is not None and dim != self.problem.dim:
            raise ValueError(
                f"the value network's dim = {dim} does not match the {problem} problem's "
                f"dimension {self.problem.dim}; set problem_args.dim or dim so they agree"
            )
        self.value_function = ValueFunction(
            self.problem, width=width, depth=depth, rank=rank, terminal=terminal, scale=value_scale
        )

    # --------------------------------------------------------------------------- the policy
    def forward(self, t: Tensor | float, x: Tensor) -> Tensor:
        """Phi(t, x), shape (n,)."""
        return self.value_function(t, x)

    def control(self, t: Tensor | float, x: Tensor) -> Tensor:
        """The feedback control u*(t, x, grad Phi(t, x)), shape (n, control_dim)."""
        return self.value_function.control(t, x)

    def paths(self, x0: Tensor, steps: int | None = None, generator: torch.Generator | None = None):
        """Paths under the learned feedback (`ctdl.soc.Paths`), `eval_steps` by default."""
        return self.value_function.paths(x0, steps or self.hparams.eval_steps, "pmp", generator)

    # ------------------------------------------------------------------------------ training
    def loss_terms(
        self, x0: Tensor, steps: int, generator: torch.Generator | None = None
    ) -> dict[str, Tensor]:
        h = self.hparams
        hjb = h.alpha_hjb != 0  # without it the step skips the Hessian trace
        terms = {
            k: v.mean()
            for k, v in self.value_function.loss_terms(x0, steps, h.sampling, generator, hjb).items()
        }
        terms["loss"] = sum(self.hparams[f"alpha_{k}"] * v for k, v in terms.items())
        return terms

    def training_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        x0 = batch[0]
        terms = self.loss_terms(x0, self.hparams.steps)
        self.log_dict({f"train/{k}": v for k, v in terms.items()}, prog_bar=True, batch_size=len(x0))
        return terms["loss"]

    def _eval_step(self, batch: tuple[Tensor, ...], batch_idx: int, stage: str) -> None:
        x0, reference = batch[0], batch[1]
        seed = batch_idx * self.trainer.world_size + self.global_rank
        gen = torch.Generator(device=x0.device).manual_seed(seed)
        h = self.hparams
        with torch.enable_grad():  # the sampling="pmp" paths are cheap to keep; terminal_gradient needs it
            terms = self.value_function.loss_terms(x0, h.eval_steps, "pmp", gen)
        weighted = sum(h[f"alpha_{k}"] * v.mean() for k, v in terms.items())  # the training loss's terms
        logs = {f"{stage}/loss": weighted, f"{stage}/cost": terms["cost"].mean()}
        logs.update({f"{stage}/{k}": v.mean() for k, v in terms.items() if k != "cost"})
        known = torch.isfinite(reference)
        if known.any():
            ref = reference[known].to(x0)
            logs[f"{stage}/phi0_rel_err"] = E.relative_error(self(0.0, x0[known]), ref).mean()
            if stage == "test":  # the optimal expected cost and the realised one over the same starts
                logs["test/cost_ref"] = ref.mean()
                logs["test/cost_matched"] = terms["cost"][known].mean()
        if stage == "test":
            self._trajectory_error(x0, gen, logs)
            self._reference_feedback_cost(x0, seed, terms["cost"], logs)
        self.log_dict(
            {k: v.detach() for k, v in logs.items()},
            prog_bar=stage == "val",
            batch_size=len(x0),
            sync_dist=True,
        )

    def _trajectory_error(self, x0: Tensor, gen: torch.Generator, logs: dict) -> None:
        """test/traj_rel_l2 (`evaluate.trajectory_error`) along `traj_paths` controlled paths, where
        the problem has a reference."""
        value = reference_value(self.problem, samples=self.hparams.reference_samples)
        if value is None:
            return
        with torch.no_grad():
            paths = self.paths(x0[: self.hparams.traj_paths], generator=gen)
            error = E.trajectory_error(value, paths, E.values_along(self, paths))
        if error is not None:
            logs["test/traj_rel_l2"] = error

    def _reference_feedback_cost(self, x0: Tensor, seed: int, cost: Tensor, logs: dict) -> None:
        """test/cost_zero (`evaluate.zero_control_cost`: u = 0), test/cost_ref_feedback and
        test/cost_same_noise (`evaluate.reference_feedback_cost`): the reference feedback (Riccati's
        control, Cole-Hopf's gradient or the finite-element value's) and the learned one, all flown
        from the same starts with the same noise."""
        zero = E.zero_control_cost(
            self.problem, x0, self.hparams.eval_steps, torch.Generator(device=x0.device).manual_seed(seed)
        )
        if torch.isfinite(zero).any():
            logs["test/cost_zero"] = zero[torch.isfinite(zero)].mean()
        if not hasattr(self, "_ref_control"):
            self._ref_control = reference_control(self.problem)
        if self._ref_control is None:
            return
        gen = torch.Generator(device=x0.device).manual_seed(seed)  # the learned paths' noise
        pair = E.reference_feedback_cost(
            self.problem, self._ref_control, x0, self.hparams.eval_steps, gen, cost
        )
        if pair is not None:
            logs["test/cost_ref_feedback"], logs["test/cost_same_noise"] = pair

    def validation_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> None:
        self._eval_step(batch, batch_idx, "val")

    def test_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> None:
        self._eval_step(batch, batch_idx, "test")

    def predict_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> dict[str, Tensor]:
        """`ctdl predict`: the value Phi(0, x0) (batch,) and the feedback control u*(0, x0)
        (batch, control_dim) at each start of the batch (the datamodule's test starts)."""
        x0 = batch[0]
        return {"value": self(0.0, x0), "control": self.control(0.0, x0)}

    def configure_optimizers(self):
        return adamw_with_schedule(self)
