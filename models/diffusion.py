"""Multilevel (function-space) score-based diffusion (Hagemann, Mildenberger, Ruthotto, Steidl, Yang,
arXiv 2303.04772) as a thin LightningModule over `ctdl.diffusion` (VP SDE, Fourier-multiplier priors,
FNO / U-Net score networks, reverse-time samplers).

Denoising score matching with C never inverted. The forward VP SDE gives, in closed form,

    x_t = alpha(t) x0 + sqrt(v(t)) n,   n = C^(1/2) xi,  xi ~ N(0, I) grid white noise,

so grad log p(x_t | x0) = -(v C)^(-1) sqrt(v) n and C grad log p(x_t | x0) = -n / sqrt(v). The network
eps_theta(x_t, t) predicts the NOISE n; the loss

    loss = E_{t ~ U(t_min, T), x0, xi} mean_pixels (eps_theta(x_t, t) - C^(1/2) xi)^2

(the mean over grid points is ||.||^2 in L2 of the unit torus, the same at every resolution) is
minimised by eps*(x, t) = E[n | x_t = x], and then C grad log p_t(x) = -eps*(x, t) / sqrt(v(t)): the
preconditioned score that the samplers take (`preconditioned=True`). Only C^(1/2) is applied (to
draw n), never C^(-1) or C^(-1/2). This is the paper's loss 1/2 || a sqrt(v)/g + A xi ||^2 with the
network output a = -g n / sqrt(v) rescaled to the noise.

Multilevel training: with `resolutions` [r_1, ..., r_m] (coarse to fine) and `schedule_steps`
[s_1, ..., s_{m-1}] (increasing global steps), a training batch is resampled by
`ctdl.diffusion.resample` (Fourier restriction / trigonometric interpolation) to r_1 before step
s_1, to r_2 before s_2, ..., and to r_m after: the same (resolution-free) weights are warm-started on
the coarse grids. Validation is always at the data's own resolution.
"""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import torch
from torch import Tensor, nn

from ctdl.diffusion import (
    VPSDE,
    ClassifierFrechet,
    FNOScore,
    FourierPrior,
    UNetScore,
    check_grid,
    field_covariance_distances,
    make_prior,
    resample,
    sample_euler_maruyama,
    sample_predictor_corrector,
)
from ctdl.metrics import energy_distance
from ctdl.protocols import GaussianFieldData, LabelledImages, SplitData, split

from .optim import adamw_with_schedule, check_scheduler

NETWORKS: dict[str, type[nn.Module]] = {"fno": FNOScore, "unet": UNetScore}
SAMPLERS = ("em", "pc")


def check_network(name: str) -> None:
    """A clear error for an unknown score network name."""
    if name not in NETWORKS:
        raise ValueError(f"unknown score network {name!r}; known networks: {', '.join(sorted(NETWORKS))}")


def check_sampler(name: str) -> None:
    """A clear error for an unknown sampler name."""
    if name not in SAMPLERS:
        raise ValueError(
            f"unknown sampler {name!r}; known samplers: {', '.join(SAMPLERS)} "
            "(Euler-Maruyama, predictor-corrector)"
        )


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
        self.net = NETWORKS[network](**args)
        self.resolutions = [int(r) for r in resolutions] if resolutions else []
        self.schedule_steps = [int(s) for s in schedule_steps] if schedule_steps else []
        if self.resolutions and len(self.schedule_steps) != len(self.resolutions) - 1:
            raise ValueError(
                f"schedule_steps needs len(resolutions) - 1 = {len(self.resolutions) - 1} "
                f"steps (when to move to the next resolution), got {self.schedule_steps}"
            )
        if not self.resolutions and self.schedule_steps:
            raise ValueError(f"schedule_steps {self.schedule_steps} given without resolutions")
        steps = self.schedule_steps
        if any(b <= a for a, b in zip(steps, steps[1:], strict=False)) or any(s < 0 for s in steps):
            raise ValueError(f"schedule_steps must be increasing non-negative steps, got {steps}")
        grids = list(self.resolutions) + ([int(input_shape[-1])] if input_shape is not None else [])
        for n in grids:
            self.check_resolution(n)
        if self.resolutions and any(n % 2 for n in grids):
            data_grid = grids[-1] if input_shape is not None else None
            raise ValueError(
                f"multilevel training resamples in Fourier space and needs even grids; got "
                f"resolutions {self.resolutions} and data grid {data_grid}"
            )

    # ------------------------------------------------------------------------ the networks
    def check_resolution(self, n: int) -> None:
        """A clear error for a grid n x n the score network cannot run on."""
        if self.hparams.network == "fno":
            check_grid((n, n), self.net.modes, f"MultilevelDiffusion(network='fno', modes={self.net.modes})")
        else:
            factor = 2**self.net.levels
            if n % factor:
                raise ValueError(
                    f"MultilevelDiffusion(network='unet', levels={self.net.levels}): the grid "
                    f"{n}x{n} is not divisible by 2^levels = {factor}; use a grid divisible by "
                    f"{factor} or fewer levels"
                )

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
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        t = t.expand(x.shape[0]) if t.ndim == 0 else t
        v = self.sde.variance(t).to(x.dtype).reshape(-1, 1, 1, 1)
        return -self.net(x, t) / v.sqrt()

    # ------------------------------------------------------------------------------ training
    def resolution_at(self, step: int) -> int | None:
        """The multilevel training grid at a global step (None: the data's own grid)."""
        if not self.resolutions:
            return None
        level = sum(step >= s for s in self.schedule_steps)
        return self.resolutions[level]

    def dsm_loss(self, x0: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """mean over batch and grid of (eps_theta(x_t, t) - C^(1/2) xi)^2, t ~ U(t_min, 1)."""
        self._check_images(x0, "MultilevelDiffusion")
        self.check_resolution(x0.shape[-1])
        x0 = x0.float() if not x0.is_floating_point() else x0
        gen_device = x0.device if generator is None else generator.device
        u = torch.rand(x0.shape[0], generator=generator, dtype=x0.dtype, device=gen_device).to(x0.device)
        t = self.hparams.t_min + (1 - self.hparams.t_min) * u
        x_t, noise = self.sde.perturb(x0, t, self.prior, generator=generator)
        out = self.net(x_t, t)
        return (out.float() - noise.float()).pow(2).mean()

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
        """Sample-quality metrics of n samples (default `test_samples`, `test_sample_steps` steps, a
        generator seeded with `seed`, drawn `batch_size` at a time: see `sample`) at each grid of
        `resolutions` (default `test_resolutions` or the data's grid; a grid r other than the data's
        adds the suffix _r to the names), by what `data` provides (`ctdl.protocols`):

        - `SplitData`: energy_mmd = `ctdl.metrics.energy_distance` to the first n test samples, after
          `resample` to the scoring grid; energy_mmd_floor = that of the first n validation samples;
        - `LabelledImages`: the scoring grid is the native one (28 for MNIST); fid_classifier = the
          Frechet distance on the features of a classifier trained on the training split
          (`ClassifierFrechet.cached`, cached in `metric_cache_dir`), fid_floor = that of the first
          n test images;
        - `GaussianFieldData`: cov_kl and cov_w2 = `field_covariance_distances` of the samples to the
          known covariance at their own grid; cov_kl_floor, cov_w2_floor = those of n exact draws.
        """
        hp = self.hparams
        n = hp.test_samples if n is None else n
        steps = steps or hp.test_sample_steps
        data_grid = self.hparams.input_shape[-1] if self.hparams.input_shape is not None else None
        grids = resolutions or hp.test_resolutions or ([data_grid] if data_grid else [])
        if not grids:
            raise ValueError("sample_quality needs resolutions when the model has no input_shape")
        out: dict[str, float] = {}
        reference = score_grid = frechet = None
        if isinstance(data, LabelledImages):
            train_x, train_y = data.labelled_images("train")
            reference, score_grid = data.labelled_images("test")[0][:n], data.native_resolution
            frechet = ClassifierFrechet.cached(
                train_x,
                train_y,
                key=data.reference_key,
                cache_dir=hp.metric_cache_dir,
                epochs=hp.classifier_epochs,
            )
            out["fid_floor"] = frechet(reference)
            out["energy_mmd_floor"] = energy_distance(data.labelled_images("val")[0][:n], reference)
        elif isinstance(data, SplitData) and split(data, "test") is not None and data_grid is not None:
            first = [_first(split(data, s), n) for s in ("val", "test")]
            reference, score_grid = first[1], data_grid
            if first[0] is not None:
                out["energy_mmd_floor"] = energy_distance(first[0], reference)
        gen = torch.Generator(device=self.device).manual_seed(seed)
        for r in grids:
            suffix = "" if r == data_grid else f"_{r}"
            x = self.sample(n, r, steps=steps, generator=gen, batch_size=batch_size).float().cpu()
            if reference is not None:
                restricted = x if r == score_grid else resample(x, score_grid)
                out[f"energy_mmd{suffix}"] = energy_distance(restricted, reference)
            if frechet is not None:
                out[f"fid_classifier{suffix}"] = frechet(x)
            if isinstance(data, GaussianFieldData):
                exact = data.data_prior.sample(n, r, generator=torch.Generator().manual_seed(seed + 1))
                for key, fields in (("", x), ("_floor", exact)):
                    dist = field_covariance_distances(fields, data.data_prior, hp.cov_shrinkage)
                    out[f"cov_kl{key}{suffix}"], out[f"cov_w2{key}{suffix}"] = dist["kl"], dist["w2"]
        return out

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
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be a positive number of samples or None, got {batch_size}")
        if batch_size is not None and n > batch_size:
            sizes = [batch_size] * (n // batch_size) + ([n % batch_size] if n % batch_size else [])
            return torch.cat([self.sample(m, resolution, steps, sampler, generator, snr) for m in sizes])
        if resolution is None:
            if self.hparams.input_shape is None:
                raise ValueError("sample needs a resolution when the model has no input_shape")
            resolution = int(self.hparams.input_shape[-1])
        self.check_resolution(resolution)
        param = next(self.net.parameters())
        shape = (n, self.channels, resolution, resolution)
        kwargs = dict(
            sde=self.sde,
            steps=steps or self.hparams.sample_steps,
            eps=self.hparams.t_min,
            preconditioned=True,
            generator=generator,
            dtype=param.dtype,
            device=param.device,
        )
        was_training = self.net.training
        self.net.eval()
        try:
            if sampler == "em":
                return sample_euler_maruyama(self.preconditioned_score, self.prior, shape, **kwargs)
            return sample_predictor_corrector(self.preconditioned_score, self.prior, shape, snr=snr, **kwargs)
        finally:
            self.net.train(was_training)


def _first(ds, n: int) -> Tensor | None:
    """The inputs of the first n samples of a map-style dataset (None for no dataset)."""
    if ds is None:
        return None
    items = [ds[i] for i in range(min(n, len(ds)))]
    return torch.stack([torch.as_tensor(it[0] if isinstance(it, (tuple, list)) else it) for it in items])
