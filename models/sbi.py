"""Conditional OT-Flow for simulation-based inference (Wang, Verma, Baptista, Marzouk, Ruthotto,
arXiv 2310.16975): one potential flow Phi(theta, t, y) learns the posterior pi(theta | y) for every
observation y at once (amortised) from simulated pairs (theta, y).

Training is OTFlow's with the condition: theta (standardised) flows to N(0, I) on [0, 1] along
-grad_theta Phi(., t, y); loss = alpha_L L + alpha_C (-log p(theta | y)) + alpha_R R. Posterior
samples integrate back from t = 1 to 0 for the observed y. The standardisation (from the
datamodule's training split, `ctdl.protocols.PosteriorData`) is stored in the checkpoint, so the
public methods take raw y and return raw theta; the raw-unit posterior is the plain
`ctdl.sbi.FlowPosterior`, the metrics `ctdl.sbi.evaluate`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ctdl.protocols import PosteriorData, ReferencePosteriors
from ctdl.sbi import FlowPosterior, PosteriorScaling
from ctdl.sbi.evaluate import reference_c2st

from .otflow import OTFlow


class ConditionalOTFlow(OTFlow):
    """Amortised posterior estimation. In raw units: `sample_posterior(n, y)`, `log_prob(theta, y)`,
    `map_estimate(y)` (`posterior`, a `ctdl.sbi.FlowPosterior`, is the same without Lightning).
    Logs OTFlow's metrics (val/nll is -log p(theta | y) in standardised units); at test, where the
    data ships reference posteriors (sbibm), `test/c2st` (mean over the observations) and
    `test/c2st_obs<i>`. ``ctdl predict`` writes `posterior_samples` (observations,
    posterior_samples, dim) for each observation the datamodule serves."""

    def __init__(
        self,
        dim: int = 2,
        cond_dim: int = 2,
        width: int = 64,
        eval_steps: int = 32,
        log_params: bool = False,
        posterior_samples: int = 10_000,
        c2st_observations: list[int] | None = None,
        **otflow,
    ) -> None:
        """
        Args:
            dim: parameters d (linked from the datamodule); cond_dim: statistics q (linked).
            width: width m of the potential's ResNet.
            eval_steps: RK4 steps for validation, log_prob and sampling.
            log_params: the flow models log theta (taken from the datamodule at fit).
            posterior_samples: samples per observation for C2ST and ``ctdl predict``.
            c2st_observations: which reference observations C2ST uses (default: all).
            otflow: OTFlow's other arguments (depth, rank, alpha_L, alpha_C, alpha_R, steps,
                test_steps, trace, clamp, lr, weight_decay, scheduler), passed through.
        """
        if cond_dim < 1:
            raise ValueError(f"a posterior needs observations: cond_dim must be >= 1, got {cond_dim}")
        if otflow.get("predict_samples"):
            raise ValueError(
                "predict_samples does not apply to ConditionalOTFlow: `ctdl predict` writes "
                "posterior_samples for each observation (set --model.posterior_samples)"
            )
        super().__init__(dim=dim, cond_dim=cond_dim, width=width, eval_steps=eval_steps, **otflow)
        self.scaling = PosteriorScaling(dim, cond_dim, log_params)

    def setup(self, stage: str) -> None:
        """At fit, take the standardisation from the datamodule (a checkpoint brings its own)."""
        data = getattr(self._trainer, "datamodule", None)
        if stage == "fit" and isinstance(data, PosteriorData) and data.theta_mean is not None:
            self.scaling.set(data.theta_mean, data.theta_std, data.y_mean, data.y_std, data.log_params)
            self.hparams.log_params = bool(data.log_params)

    # ------------------------------------------------------------------- raw-unit interface
    @property
    def posterior(self) -> FlowPosterior:
        """The raw-unit posterior over this model's flow and scaling (shared, not copied)."""
        return FlowPosterior(self.flow, self.scaling, steps=self.hparams.eval_steps)

    def sample_posterior(
        self, n: int, y: Tensor, *, steps: int | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """n samples (n, dim) of pi(theta | y) for one raw observation y (q,)."""
        return self.posterior.sample(n, y, steps=steps, generator=generator)

    def log_prob(self, theta: Tensor, y: Tensor, *, steps: int | None = None) -> Tensor:
        """log pi(theta | y) in raw units (batch,): theta (batch, d); y (q,) or (batch, q)."""
        return self.posterior.log_prob(theta, y, steps=steps)

    def map_estimate(
        self, y: Tensor, *, iterations: int = 200, starts: int = 256, steps: int | None = None, seed: int = 0
    ) -> Tensor:
        """argmax_theta log pi(theta | y) (dim,): Adam on u from the best of `starts` posterior
        samples, maximising the raw-unit log density."""
        return self.posterior.map_estimate(y, iterations=iterations, starts=starts, steps=steps, seed=seed)

    # ------------------------------------------------------------------------ evaluation
    def on_test_epoch_end(self) -> None:
        """C2ST against the reference posterior of each observation the data ships."""
        data = getattr(self._trainer, "datamodule", None)
        if not isinstance(data, ReferencePosteriors):
            return
        scores = reference_c2st(
            self.posterior, data, self.hparams.c2st_observations, self.hparams.posterior_samples
        )
        for i, score in scores.items():
            self.log(f"test/c2st_obs{i}", score)
        self.log("test/c2st", sum(scores.values()) / len(scores))

    def predict_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> dict[str, Tensor]:
        """Posterior samples (batch, posterior_samples, dim) for each raw observation of the batch,
        seeded with the batch index and the position in the batch."""
        y = batch[0]
        first = batch_idx * 1_000_000
        samples = [
            self.sample_posterior(
                self.hparams.posterior_samples,
                yi,
                generator=torch.Generator(device=self.device).manual_seed(first + k),
            )
            for k, yi in enumerate(y)
        ]
        return {"posterior_samples": torch.stack(samples)}
