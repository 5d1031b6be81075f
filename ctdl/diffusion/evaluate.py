"""Sample quality of a diffusion model: the metrics its tests and benchmarks report.

`sample_quality` draws n samples at each scoring grid from a sampler and scores them by what the data
provides (`ctdl.protocols`), each metric next to its floor (the same metric of data against data):

- `SplitData`: energy_mmd = `ctdl.metrics.energy_distance` to the first n test samples, after
  `resample` to the data's grid; energy_mmd_floor = that of the first n validation samples;
- `LabelledImages`: the scoring grid is the native one (28 for MNIST); fid_classifier = the Frechet
  distance on the features of a classifier trained on the training split (`ClassifierFrechet.cached`,
  `metrics.py`), fid_floor = that of the first n test images;
- `GaussianFieldData`: cov_kl and cov_w2 = `field_covariance_distances` (`metrics.py`) of the samples
  to the known covariance at their own grid; cov_kl_floor, cov_w2_floor = those of n exact draws.

A grid r other than the data's adds the suffix _r to the names.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ctdl.metrics import energy_distance
from ctdl.protocols import GaussianFieldData, LabelledImages, SplitData, split

from .metrics import ClassifierFrechet, field_covariance_distances
from .priors import resample

# sampler(n, resolution, generator) -> (n, channels, r, r) samples
Sampler = Callable[[int, int, torch.Generator], Tensor]


@torch.no_grad()
def sample_quality(
    sampler: Sampler,
    data: object,
    n: int,
    grids: list[int],
    data_grid: int | None,
    seed: int = 0,
    device: torch.device | str | None = None,
    classifier_epochs: int = 2,
    cov_shrinkage: float = 0.01,
    metric_cache_dir: str | None = "data/cache",
) -> dict[str, float]:
    """Sample-quality metrics (see the module) of n samples `sampler(n, r, generator)` at each grid r of
    `grids`, with one generator on `device` seeded with `seed` drawing them in turn; `data_grid` is the
    data's own grid (None: no split data to compare with). `classifier_epochs` and `metric_cache_dir`:
    training and cache of the Frechet classifier; `cov_shrinkage`: of the Gaussian-field KL when the
    sample covariance is singular."""
    if not grids:
        raise ValueError("sample_quality needs resolutions when the model has no input_shape")
    out: dict[str, float] = {}
    reference = score_grid = frechet = None
    if isinstance(data, LabelledImages):
        train_x, train_y = data.labelled_images("train")
        reference, score_grid = data.labelled_images("test")[0][:n], data.native_resolution
        frechet = ClassifierFrechet.cached(
            train_x, train_y, key=data.reference_key, cache_dir=metric_cache_dir, epochs=classifier_epochs
        )
        out["fid_floor"] = frechet(reference)
        out["energy_mmd_floor"] = energy_distance(data.labelled_images("val")[0][:n], reference)
    elif isinstance(data, SplitData) and split(data, "test") is not None and data_grid is not None:
        first = [first_inputs(split(data, s), n) for s in ("val", "test")]
        reference, score_grid = first[1], data_grid
        if first[0] is not None:
            out["energy_mmd_floor"] = energy_distance(first[0], reference)
    gen = torch.Generator(device=device).manual_seed(seed)
    for r in grids:
        suffix = "" if r == data_grid else f"_{r}"
        x = sampler(n, r, gen).float().cpu()
        if reference is not None:
            restricted = x if r == score_grid else resample(x, score_grid)
            out[f"energy_mmd{suffix}"] = energy_distance(restricted, reference)
        if frechet is not None:
            out[f"fid_classifier{suffix}"] = frechet(x)
        if isinstance(data, GaussianFieldData):
            exact = data.data_prior.sample(n, r, generator=torch.Generator().manual_seed(seed + 1))
            for key, fields in (("", x), ("_floor", exact)):
                dist = field_covariance_distances(fields, data.data_prior, cov_shrinkage)
                out[f"cov_kl{key}{suffix}"], out[f"cov_w2{key}{suffix}"] = dist["kl"], dist["w2"]
    return out


def first_inputs(ds, n: int) -> Tensor | None:
    """The inputs of the first n samples of a map-style dataset (None for no dataset)."""
    if ds is None:
        return None
    items = [ds[i] for i in range(min(n, len(ds)))]
    return torch.stack([torch.as_tensor(it[0] if isinstance(it, (tuple, list)) else it) for it in items])
