"""Function data for multilevel diffusion: Gaussian random fields with a known score at every grid,
and MNIST / Fashion-MNIST images as functions on the unit torus.

A field is a real function on T^2 = [0, 1)^2 held as its point values on an n x n grid, the
convention of `ctdl.diffusion.priors`; `ctdl.diffusion.resample` (Fourier restriction /
trigonometric interpolation) moves it between grids.
"""

from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from ctdl.diffusion import VPSDE, FourierPrior, exact_gaussian_score, make_prior, resample

from .base import Splits, TensorDataModule
from .images import ImageClassification

DEFAULT_FIELD_PRIOR = {"scale": 4000.0, "s": 40.0, "p": 2.5}


class GaussianFields(TensorDataModule):
    """Gaussian random fields X0 ~ N(0, Sigma) on an n x n periodic grid, Sigma a Fourier-multiplier
    prior of `ctdl.diffusion` (default bessel: Sigma = 4000 (40 I - Delta)^(-2.5), pointwise variance
    ~0.9, smooth fields). With a noise prior C that is also a Fourier multiplier, p_t = N(0, alpha^2
    Sigma + v C) and the score is known in closed form at every grid (`exact_score`). Batches are (x,),
    x of shape (batch, 1, n, n); the three splits are independent draws from `seed`.
    """

    def __init__(
        self,
        resolution: int = 32,
        covariance: str = "bessel",
        covariance_args: dict | None = None,
        num_train: int = 8192,
        num_val: int = 512,
        num_test: int = 512,
        batch_size: int = 64,
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        """
        Args:
            resolution: the grid n (fields are n x n).
            covariance: the data covariance Sigma, a prior of `ctdl.diffusion.PRIORS` by name
                (named apart from the model's noise `prior`, which is another operator C).
            covariance_args: its keywords (default {scale: 4000, s: 40, p: 2.5} for bessel).
            num_train, num_val, num_test: fields per split.
            batch_size, seed, num_workers: as in `TensorDataModule`.
        """
        super().__init__(batch_size=batch_size, seed=seed, num_workers=num_workers)
        if resolution < 2:
            raise ValueError(f"resolution must be >= 2, got {resolution}")
        if min(num_train, num_val, num_test) < 1:
            raise ValueError(
                f"every split needs at least one field; got num_train={num_train}, "
                f"num_val={num_val}, num_test={num_test}"
            )
        self.save_hyperparameters()
        default = dict(DEFAULT_FIELD_PRIOR) if covariance == "bessel" else {}
        args = dict(covariance_args) if covariance_args is not None else default
        self.data_prior: FourierPrior = make_prior(covariance, **args)
        self.resolution = int(resolution)
        self.num_train, self.num_val, self.num_test = num_train, num_val, num_test
        self.input_shape = [1, self.resolution, self.resolution]

    def sample(
        self, n: int, resolution: int | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """n fresh fields (n, 1, r, r) at the grid r (default: the data's), float32."""
        return self.data_prior.sample(n, resolution or self.resolution, generator=generator)

    def exact_score(self, noise: FourierPrior, sde: VPSDE | None = None):
        """(x, t) -> grad log p_t(x) at any grid for the VP SDE with noise prior C = `noise`."""
        return exact_gaussian_score(self.data_prior, noise, sde)

    def make_splits(self) -> Splits:
        seeds = [int(r.integers(2**62)) for r in self.streams(3)]
        sizes = (self.num_train, self.num_val, self.num_test)
        return tuple(
            TensorDataset(self.sample(m, generator=torch.Generator().manual_seed(s)))
            for m, s in zip(sizes, seeds, strict=True)
        )  # type: ignore[return-value]


class DiffusionImages(TensorDataModule):
    """MNIST or Fashion-MNIST as functions for diffusion: the 28x28 images of
    `ImageClassification`'s IDX loader (same files, same missing-data error, same seeded split:
    n_val of the 60k training images for validation, the official 10k for test), scaled from
    [0, 1] to [-1, 1] (2 x - 1) and, when `resolution` != 28, resampled to resolution x resolution
    by `ctdl.diffusion.resample` (trigonometric interpolation up, Fourier restriction down).
    Batches are (x,), x of shape (batch, 1, r, r); labels are dropped from the batches but kept,
    with the native 28x28 images, for the metrics (`labelled_images`, `ctdl.protocols.LabelledImages`).
    """

    def __init__(
        self,
        dataset: str = "fashion_mnist",
        data_dir: str | None = None,
        download: bool = False,
        resolution: int = 28,
        n_val: int = 5000,
        n_train: int | None = None,
        batch_size: int = 64,
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        """
        Args:
            dataset: "fashion_mnist" or "mnist".
            data_dir: folder with the four IDX files (default as in `ImageClassification`:
                /usr/share/datasets/fashion-mnist, Debian's dataset-fashion-mnist, or data/mnist).
            download: fetch the files with torchvision when missing.
            resolution: the grid r (even) the images are resampled to.
            n_val: validation images taken from the training set.
            n_train: keep only the first n_train training images (default all).
            batch_size, seed, num_workers: as in `TensorDataModule`.
        """
        super().__init__(batch_size=batch_size, seed=seed, num_workers=num_workers)
        self.save_hyperparameters()
        if dataset not in ("fashion_mnist", "mnist"):
            raise ValueError(f"unknown image data set {dataset!r} for diffusion; known: fashion_mnist, mnist")
        if resolution < 2 or resolution % 2:
            raise ValueError(f"resolution must be an even grid >= 2 (Fourier resampling), got {resolution}")
        self.images = ImageClassification(
            dataset=dataset,
            data_dir=data_dir,
            download=download,
            batch_size=batch_size,
            n_val=n_val,
            seed=seed,
            normalize=False,
        )
        self.dataset, self.resolution, self.n_train = dataset, int(resolution), n_train
        self.input_shape = [1, self.resolution, self.resolution]
        self.native_resolution = int(self.images.input_shape[-1])
        self._labelled: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def prepare_data(self) -> None:
        self.images.prepare_data()

    @property
    def reference_key(self) -> str:
        """Names the data set and its split for caches (`ctdl.protocols.LabelledImages`)."""
        return f"{self.dataset}_split{self.seed}_n{self.n_train if self.n_train is not None else 'all'}"

    def labelled_images(self, stage: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(images (n, 1, 28, 28) in [-1, 1] on the native grid, labels (n,)) of a split ("train",
        "val", "test"; the same images as the split, before resampling): `ctdl.protocols.LabelledImages`."""
        if stage not in self._labelled:
            raise RuntimeError(
                f"DiffusionImages: no {stage!r} images; call setup() first (stages: train, val, test)"
            )
        return self._labelled[stage]

    def make_splits(self) -> Splits:
        out = []
        for stage, split in zip(("train", "val", "test"), self.images.make_splits(), strict=True):
            x, y = split.tensors[0], split.tensors[1]
            if stage == "train" and self.n_train is not None:
                x, y = x[: self.n_train], y[: self.n_train]
            x = 2 * x - 1
            self._labelled[stage] = (x, y)
            if self.resolution != x.shape[-1]:
                x = resample(x, self.resolution)
            out.append(TensorDataset(x.contiguous()))
        return tuple(out)  # type: ignore[return-value]
