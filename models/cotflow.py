"""Conditional OT-Flow for simulation-based inference (Wang, Verma, Baptista, Marzouk, Ruthotto,
arXiv 2310.16975): one potential flow Phi(theta, t, y) learns the posterior pi(theta | y) for every
observation y at once (amortised) from simulated pairs (theta, y).

Training is OTFlow's with the condition: theta (standardised) flows to N(0, I) on [0, 1] along
-grad_theta Phi(., t, y); loss = alpha_L L + alpha_C (-log p(theta | y)) + alpha_R R. Posterior
samples integrate back from t = 1 to 0 for the observed y. The standardisation (from the
datamodule's training split, `ctdl.protocols.PosteriorData`) is stored in the checkpoint, so the
public methods take raw y and return raw theta.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ctdl.metrics import c2st
from ctdl.protocols import PosteriorData, ReferencePosteriors
from ctdl.scaling import PosteriorScaling

from .otflow import OTFlow


class ConditionalOTFlow(OTFlow):
    """Amortised posterior estimation. In raw units: `sample_posterior(y, n)`, `log_prob(theta, y)`,
    `map_estimate(y)`. Logs OTFlow's metrics (val/nll is -log p(theta | y) in standardised units);
    at test, where the data ships reference posteriors (sbibm), `test/c2st` (mean over the
    observations) and `test/c2st_obs<i>`. ``ctdl predict`` writes `posterior_samples`
    (observations, posterior_samples, dim) for each observation the datamodule serves."""

    def __init__(
        self,
        dim: int = 2,
        cond_dim: int = 2,
        width: int = 64,
        depth: int = 2,
        rank: int | None = None,
        alpha_L: float = 1.0,
        alpha_C: float = 100.0,
        alpha_R: float = 5.0,
        steps: int = 8,
        eval_steps: int = 32,
        test_steps: int | None = None,
        trace: str = "exact",
        clamp: float | None = None,
        lr: float = 0.01,
        weight_decay: float = 0.0,
        scheduler: str = "cosine",
        log_params: bool = False,
        posterior_samples: int = 10_000,
        c2st_observations: list[int] | None = None,
    ) -> None:
        """
        Args:
            dim: parameters d (linked from the datamodule); cond_dim: statistics q (linked).
            width, depth, rank, alpha_L, alpha_C, alpha_R, steps, eval_steps, test_steps, trace,
                clamp, lr, weight_decay, scheduler: as OTFlow.
            log_params: the flow models log theta (taken from the datamodule at fit).
            posterior_samples: samples per observation for C2ST and ``ctdl predict``.
            c2st_observations: which reference observations C2ST uses (default: all).
        """
        super().__init__(
            dim=dim,
            width=width,
            depth=depth,
            rank=rank,
            alpha_L=alpha_L,
            alpha_C=alpha_C,
            alpha_R=alpha_R,
            steps=steps,
            eval_steps=eval_steps,
            test_steps=test_steps,
            trace=trace,
            clamp=clamp,
            lr=lr,
            weight_decay=weight_decay,
            scheduler=scheduler,
            cond_dim=cond_dim,
        )
        if cond_dim < 1:
            raise ValueError(f"a posterior needs observations: cond_dim must be >= 1, got {cond_dim}")
        self.save_hyperparameters()
        self.scaling = PosteriorScaling(dim, cond_dim, log_params)

    def setup(self, stage: str) -> None:
        """At fit, take the standardisation from the datamodule (a checkpoint brings its own)."""
        data = getattr(self._trainer, "datamodule", None)
        if stage == "fit" and isinstance(data, PosteriorData) and data.theta_mean is not None:
            self.scaling.set(data.theta_mean, data.theta_std, data.y_mean, data.y_std, data.log_params)
            self.hparams.log_params = bool(data.log_params)

    # ------------------------------------------------------------------- raw-unit interface
    @torch.no_grad()
    def sample_posterior(
        self, y: Tensor, n: int, steps: int | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """n samples (n, dim) of pi(theta | y) for one raw observation y (q,)."""
        v = self.scaling.observation(y)
        if v.ndim != 1:
            raise ValueError(
                f"sample_posterior takes one observation (shape ({self.hparams.cond_dim},)), "
                f"got shape {tuple(v.shape)}"
            )
        u = self.flow.sample(n, v, steps=steps or self.hparams.eval_steps, generator=generator)
        return self.scaling.to_params(u)

    def log_prob(self, theta: Tensor, y: Tensor, steps: int | None = None) -> Tensor:
        """log pi(theta | y) in raw units (batch,): theta (batch, d); y (q,) or (batch, q)."""
        u = self.scaling.from_params(theta)
        v = self.scaling.observation(y)
        log_p = self.flow.log_prob(u, v, steps=steps or self.hparams.eval_steps)
        return log_p + self.scaling.log_det(theta.to(u))

    def map_estimate(
        self, y: Tensor, iterations: int = 200, starts: int = 256, steps: int | None = None, seed: int = 0
    ) -> Tensor:
        """argmax_theta log pi(theta | y) (dim,): Adam on u from the best of `starts` posterior
        samples, maximising the raw-unit log density."""
        gen = torch.Generator(device=self.device).manual_seed(seed)
        candidates = self.sample_posterior(y, starts, steps, gen)
        with torch.no_grad():
            best = self.log_prob(candidates, y, steps).argmax()
        u = self.scaling.from_params(candidates[best : best + 1]).clone().requires_grad_()
        opt = torch.optim.Adam([u], lr=0.02)
        v = self.scaling.observation(y)
        with torch.enable_grad():
            for _ in range(iterations):
                theta = self.scaling.to_params(u)
                loss = -(
                    self.flow.log_prob(u, v, steps=steps or self.hparams.eval_steps)
                    + self.scaling.log_det(theta)
                )
                opt.zero_grad()
                loss.sum().backward()
                opt.step()
        return self.scaling.to_params(u.detach())[0]

    # ------------------------------------------------------------------------ evaluation
    def on_test_epoch_end(self) -> None:
        """C2ST against the reference posterior of each observation the data ships."""
        data = getattr(self._trainer, "datamodule", None)
        if not isinstance(data, ReferencePosteriors):
            return
        chosen = self.hparams.c2st_observations or list(range(1, data.num_observations + 1))
        scores = []
        for i in chosen:
            reference = data.reference_posterior(i)
            gen = torch.Generator(device=self.device).manual_seed(i)
            samples = self.sample_posterior(
                data.observation(i), min(self.hparams.posterior_samples, len(reference)), generator=gen
            )
            score = c2st(samples, reference[: len(samples)], seed=i)
            self.log(f"test/c2st_obs{i}", score)
            scores.append(score)
        self.log("test/c2st", sum(scores) / len(scores))

    def predict_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> dict[str, Tensor]:
        """Posterior samples (batch, posterior_samples, dim) for each raw observation of the batch,
        seeded with the batch index and the position in the batch."""
        y = batch[0]
        first = batch_idx * 1_000_000
        samples = [
            self.sample_posterior(
                yi,
                self.hparams.posterior_samples,
                generator=torch.Generator(device=self.device).manual_seed(first + k),
            )
            for k, yi in enumerate(y)
        ]
        return {"posterior_samples": torch.stack(samples)}
