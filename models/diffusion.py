"""Multilevel (function-space) score-based diffusion (Hagemann, Mildenberger, Ruthotto, Steidl, Yang,
arXiv 2303.04772) as a thin LightningModule over `ctdl.diffusion` (VP SDE, Fourier-multiplier priors,
FNO / U-Net score networks, reverse-time samplers).

Denoising score matching with C never inverted (`ctdl.diffusion.losses`): the network eps_theta(x_t, t)
predicts the noise C^(1/2) xi of x_t = alpha(t) x0 + sqrt(v(t)) C^(1/2) xi, and C grad log p_t =
-eps_theta / sqrt(v) is the preconditioned score the samplers take (`ctdl.diffusion.sampling`);
sample quality is `ctdl.diffusion.evaluate.sample_quality`.

Multilevel training (`ctdl.diffusion.schedule`): with `resolutions` [r_1, ..., r_m] (coarse to fine)
and `schedule_steps` [s_1, ..., s_{m-1}] (increasing global steps), a training batch is resampled by
`ctdl.diffusion.resample` (Fourier restriction / trigonometric interpolation) to r_1 before step
s_1, to r_2 before s_2, ..., and to r_m after: the same (resolution-free) weights are warm-started on
the coarse grids. Validation is always at the data's own resolution.
"""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import torch
from torch import Tensor

from ctdl.diffusion import (
    VPSDE,
    FourierPrior,
    build_score_network,
    check_even_grids,
    check_network,
    check_network_grid,
    check_sampler,
    check_schedule,
    dsm_loss,
    make_prior,
    preconditioned_score,
    resample,
    resolution_at,
    sample_quality,
)
from ctdl.diffusion import sample as sample_fields

from .optim import adamw_with_schedule, check_scheduler


class MultilevelDiffusion(L.LightningModule):
    """Score-based diffusion on periodic grids with a Fourier-multiplier noise prior. Batches are
    (x,) or (x, ...) with x of shape (batch, channels, n, n). Logs train/loss, train/resolution and
    val/loss (the DSM loss at the data's resolution, with noise drawn from a generator seeded by the
    batch index: comparable between validations). After training: `noise_prediction(x, t)`,
    `preconditioned_score(x, t)` (= C grad log p_t), `sample(n, resolution, steps, sampler)`;
    `net` is the plain score network and `prior` the `ctdl.diffusion` prior (usable without Lightning).
    """

    def __init__(
        self,
        input_shape: list[int] | None = None,
        prior: str = "bessel",
        prior_args: dict | None = None,
        network: str = "fno",
        network_args: dict | None = None,
        beta_min: float = 0.1,
        beta_max: float = 20.0,
        t_min: float = 1e-3,
        resolutions: list[int] | None = None,
        schedule_steps: list[int] | None = None,
        sampler: str = "em",
        sample_steps: int = 200,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        scheduler: str = "cosine",
        test_samples: int = 64,
        test_sample_steps: int = 50,
        test_resolutions: list[int] | None = None,
        classifier_epochs: int = 2,
        cov_shrinkage: float = 0.01,
        metric_cache_dir: str | None = "data/cache",
    ) -> None:
        """
        Args:
            input_shape: [channels, n, n] of the data (linked from the datamodule by `ctdl`).
            prior: the noise prior C, a name of `ctdl.diffusion.PRIORS` (white, laplacian, bessel,
                spectral_layer, combined).
            prior_args: its keywords, e.g. {scale: 40, s: 40, p: 1.5}.
            network: the score network, "fno" (FNOScore: one set of weights for every even grid with
                n >= 2 modes) or "unet" (UNetScore: the resolution-bound baseline).
            network_args: its keywords (channels comes from input_shape), e.g. {width: 32, modes: 7}.
            beta_min, beta_max: the VP SDE's linear beta(t) on [0, 1].
            t_min: training times are t ~ U(t_min, 1); sampling stops at t_min.
            resolutions: multilevel training grids, coarse to fine (default: the data's grid only).
            schedule_steps: the global steps at which training moves to the next resolution
                (len(resolutions) - 1 increasing numbers).
            sampler: "em" (reverse Euler-Maruyama) or "pc" (predictor-corrector) for `sample`.
            sample_steps: reverse-time steps of `sample` (200 for metrics in the paper).
            lr, weight_decay, scheduler: AdamW and its per-step cosine decay.
            test_samples: samples drawn at the end of test for the sample-quality metrics
                (`sample_quality`; 0: none).
            test_sample_steps: reverse-time steps of those samples (small: `ctdl test` stays fast).
            test_resolutions: grids the metric samples are drawn at (default the data's grid only);
                a grid r other than the data's logs test/<metric>_<r>.
            classifier_epochs: training epochs of the feature classifier of the Frechet distance.
            cov_shrinkage: shrinkage eps of the Gaussian-field KL when the sample covariance is
                singular (`ctdl.diffusion.field_covariance_distances`).
            metric_cache_dir: where the trained feature classifier is cached (None: not cached).
        """
        super().__init__()
        self.save_hyperparameters()
        check_network(network)
        check_sampler(sampler)
        check_scheduler(scheduler)
        if input_shape is not None and (len(input_shape) != 3 or input_shape[1] != input_shape[2]):
            raise ValueError(f"input_shape must be [channels, n, n] (square grids), got {list(input_shape)}")
        if test_samples < 0 or test_samples == 1 or test_sample_steps < 1:
            raise ValueError(
                f"test_samples must be 0 or >= 2 and test_sample_steps >= 1, got "
                f"test_samples={test_samples}, test_sample_steps={test_sample_steps}"
            )
        if not 0 < t_min < 1:
            raise ValueError(f"t_min must lie in (0, 1), got {t_min}")
        self.channels = int(input_shape[0]) if input_shape is not None else 1
        self.prior: FourierPrior = make_prior(prior, **(prior_args or {}))
        self.sde = VPSDE(beta_min, beta_max)
        args = dict(network_args or {})
        if "channels" in args and args["channels"] != self.channels:
            raise ValueError(
                f"network_args.channels = {args['channels']} contradicts input_shape "
                f"{list(input_shape or [1])}: the images have {self.channels} channel(s)"
            )
        args["channels"] = self.channels
        self.net = build_score_network(network, **args)
        self.resolutions, self.schedule_steps = check_schedule(resolutions, schedule_steps)
        data_grid = int(input_shape[-1]) if input_shape is not None else None
        for n in self.resolutions + ([data_grid] if data_grid is not None else []):
            self.check_resolution(n)
        check_even_grids(self.resolutions, data_grid)

    # ------------------------------------------------------------------------ the networks
    def check_resolution(self, n: int) -> None:
        """A clear error for a grid n x n the score network cannot run on."""
        check_network_grid(self.hparams.network, self.net, n)

    def _check_images(self, x: Tensor, who: str) -> None:
        if not isinstance(x, Tensor) or x.ndim != 4:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"{who} expects images (batch, {self.channels}, n, n), got {got}")
        if x.shape[1] != self.channels:
            raise ValueError(
                f"{who}: the images have {x.shape[1]} channel(s) but the model was built for "
                f"{self.channels} (input_shape {self.hparams.input_shape}); give the model "
                f"the data's input_shape (the ctdl command links it)"
            )

    def forward(self, x: Tensor, t: Tensor | float) -> Tensor:
        """The noise prediction eps_theta(x, t) ~ E[C^(1/2) xi | x_t = x]."""
        return self.net(x, t)

    def noise_prediction(self, x: Tensor, t: Tensor | float) -> Tensor:
        """eps_theta(x, t), the network's estimate of the noise C^(1/2) xi in x_t."""
        return self.net(x, t)

    def preconditioned_score(self, x: Tensor, t: Tensor | float) -> Tensor:
        """C grad log p_t(x) = -eps_theta(x, t) / sqrt(v(t)) (t a float or per-sample (batch,))."""
        return preconditioned_score(self.net, self.sde, x, t)

    # ------------------------------------------------------------------------------ training
    def resolution_at(self, step: int) -> int | None:
        """The multilevel training grid at a global step (None: the data's own grid)."""
        return resolution_at(self.resolutions, self.schedule_steps, step)

    def dsm_loss(self, x0: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """`ctdl.diffusion.dsm_loss`: mean over batch and grid of (eps_theta(x_t, t) - C^(1/2) xi)^2,
        t ~ U(t_min, 1)."""
        self._check_images(x0, "MultilevelDiffusion")
        self.check_resolution(x0.shape[-1])
        return dsm_loss(self.net, self.sde, self.prior, x0, self.hparams.t_min, generator=generator)

    def training_step(self, batch: Sequence[Tensor], batch_idx: int) -> Tensor:
        x = batch[0]
        self._check_images(x, "MultilevelDiffusion.training_step")
        n = self.resolution_at(self.global_step)
        if n is not None and n != x.shape[-1]:
            x = resample(x, n)
        loss = self.dsm_loss(x)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(x))
        self.log("train/resolution", float(x.shape[-1]), batch_size=len(x))
        return loss

    def _eval_step(self, batch: Sequence[Tensor], batch_idx: int, stage: str) -> None:
        x = batch[0]
        self._check_images(x, f"MultilevelDiffusion.{stage}")
        gen = torch.Generator(device=x.device).manual_seed(10_000 + batch_idx)
        loss = self.dsm_loss(x, generator=gen)
        self.log(f"{stage}/loss", loss, prog_bar=stage == "val", batch_size=len(x), sync_dist=True)

    def validation_step(self, batch: Sequence[Tensor], batch_idx: int) -> None:
        self._eval_step(batch, batch_idx, "val")

    def test_step(self, batch: Sequence[Tensor], batch_idx: int) -> None:
        self._eval_step(batch, batch_idx, "test")

    def on_test_epoch_end(self) -> None:
        """After test/loss: `sample_quality` of `test_samples` samples against the datamodule's data,
        logged as test/<name> (every rank draws the same seeded samples)."""
        data = self.trainer.datamodule
        if self.hparams.test_samples and data is not None:
            for name, value in self.sample_quality(data).items():
                self.log(f"test/{name}", value, sync_dist=True)

    @torch.no_grad()
    def sample_quality(
        self,
        data: object,
        n: int | None = None,
        resolutions: list[int] | None = None,
        steps: int | None = None,
        seed: int = 0,
        batch_size: int | None = None,
    ) -> dict[str, float]:
        """`ctdl.diffusion.evaluate.sample_quality` of n samples (default `test_samples`, drawn with
        `test_sample_steps` steps, a generator seeded with `seed`, `batch_size` at a time: see `sample`)
        at each grid of `resolutions` (default `test_resolutions` or the data's grid; a grid r other
        than the data's adds the suffix _r to the names), by what `data` provides: energy_mmd
        (`SplitData`), fid_classifier (`LabelledImages`), cov_kl and cov_w2 (`GaussianFieldData`),
        each with its floor."""
        hp = self.hparams
        n = hp.test_samples if n is None else n
        steps = steps or hp.test_sample_steps
        data_grid = hp.input_shape[-1] if hp.input_shape is not None else None
        grids = resolutions or hp.test_resolutions or ([data_grid] if data_grid else [])

        def sampler(m: int, r: int, gen: torch.Generator) -> Tensor:
            return self.sample(m, r, steps=steps, generator=gen, batch_size=batch_size)

        return sample_quality(
            sampler,
            data,
            n,
            grids,
            data_grid,
            seed=seed,
            device=self.device,
            classifier_epochs=hp.classifier_epochs,
            cov_shrinkage=hp.cov_shrinkage,
            metric_cache_dir=hp.metric_cache_dir,
        )

    def predict_step(self, batch: Sequence[Tensor], batch_idx: int) -> dict[str, Tensor]:
        """`ctdl predict`: as many samples at the data's grid as the batch holds (generator seeded by
        the batch index and rank)."""
        x = batch[0]
        seed = batch_idx * self.trainer.world_size + self.global_rank
        gen = torch.Generator(device=x.device).manual_seed(seed)
        return {"sample": self.sample(len(x), x.shape[-1], generator=gen)}

    def configure_optimizers(self):
        return adamw_with_schedule(self)

    # ------------------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample(
        self,
        n: int,
        resolution: int | None = None,
        steps: int | None = None,
        sampler: str | None = None,
        generator: torch.Generator | None = None,
        snr: float = 0.16,
        batch_size: int | None = None,
    ) -> Tensor:
        """n samples (n, channels, r, r) at the grid r = `resolution` (default: the data's), by the
        reverse-time sampler (`em` | `pc`) with `steps` steps from t = 1 down to t_min, noise from the
        prior at that grid, and the preconditioned score -eps_theta / sqrt(v). The same weights
        serve every grid the network accepts (FNO: even, >= 2 modes). `batch_size` (default: all n at
        once) draws the samples in chunks of at most that many, one after the other from the same
        generator (bounds the memory of many samples on fine grids)."""
        sampler = sampler or self.hparams.sampler
        check_sampler(sampler)
        if resolution is None:
            if self.hparams.input_shape is None:
                raise ValueError("sample needs a resolution when the model has no input_shape")
            resolution = int(self.hparams.input_shape[-1])
        self.check_resolution(resolution)
        param = next(self.net.parameters())
        was_training = self.net.training
        self.net.eval()
        try:
            return sample_fields(
                self.preconditioned_score,
                self.prior,
                self.sde,
                (n, self.channels, resolution, resolution),
                steps=steps or self.hparams.sample_steps,
                eps=self.hparams.t_min,
                sampler=sampler,
                generator=generator,
                snr=snr,
                batch_size=batch_size,
                dtype=param.dtype,
                device=param.device,
            )
        finally:
            self.net.train(was_training)
