"""Diffusion pictures: samples over the course of training, and the grid of models x priors.

`DiffusionSamplesFigure` draws, at every validation, one row of samples of a `GridSampler` (as
`MultilevelDiffusion`) from the same seeded noise, under the rows of the earlier validations: how
the samples form during training. `sample_grid_figure` draws the figure of Hagemann et al. (2023)
for trained models: rows = score networks (e.g. U-Net, FNO), columns = noise priors, each cell a
row of samples at the training grid and one at `factor` times it (the same seeds).
Fields are shown as grey images of their first channel.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from ctdl.protocols import GridSampler

from .figure import FigureCallback


def tile(samples: Tensor, pad: int = 1) -> np.ndarray:
    """Samples (n, C, r, r) side by side as one (r, n (r + pad) - pad) array of channel 0, NaN
    between them (drawn as the background)."""
    x = samples.detach().float().cpu()[:, 0].numpy()
    n, r = x.shape[0], x.shape[-1]
    out = np.full((r, n * (r + pad) - pad), np.nan)
    for i in range(n):
        out[:, i * (r + pad) : i * (r + pad) + r] = x[i]
    return out


def _value_range(arrays: Sequence[Tensor | np.ndarray], value_range: tuple[float, float] | None):
    if value_range is not None:
        return value_range
    values = np.concatenate(
        [np.asarray(a.detach().cpu() if isinstance(a, Tensor) else a).ravel() for a in arrays]
    )
    values = values[np.isfinite(values)]
    hi = float(np.quantile(np.abs(values), 0.995)) if len(values) else 1.0
    return -hi, hi


def _show(ax, image: np.ndarray, vrange: tuple[float, float]) -> None:
    ax.imshow(image, cmap="gray", vmin=vrange[0], vmax=vrange[1], interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def sample_grid_figure(
    models: Mapping[str, Mapping[str, GridSampler]],
    resolution: int,
    n_samples: int = 4,
    steps: int | None = 200,
    factor: int = 2,
    seed: int = 0,
    value_range: tuple[float, float] | None = None,
    title: str | None = None,
    path: str | Path | None = None,
) -> Figure:
    """The grid of trained models: rows = the outer keys of `models` (e.g. "U-Net", "FNO"), columns
    = the inner keys (e.g. the prior names), cell = `n_samples` samples of that model at
    `resolution` (upper strip) and at `factor` * resolution (lower strip), each from a generator
    seeded with `seed` (every cell sees the same seeds), `steps` reverse-time steps. A model that
    cannot run on a grid (`check_resolution` raises) gets the reason in its strip; a missing cell
    stays empty. value_range: the grey scale (default per cell, shared by its two grids: +- the
    99.5% quantile of |its samples|).
    Saves a PNG at `path` when given; returns the figure."""
    rows = list(models)
    cols = list(dict.fromkeys(c for row in models.values() for c in row))
    if not rows or not cols:
        raise ValueError("sample_grid_figure needs at least one model: {row: {column: model}}")
    grids = (resolution, factor * resolution)
    strips: dict[tuple[str, str, int], np.ndarray | str] = {}
    for row in rows:
        for col, model in models[row].items():
            if not isinstance(model, GridSampler):
                raise TypeError(
                    f"models[{row!r}][{col!r}] ({type(model).__name__}) is not a "
                    "ctdl.protocols.GridSampler (check_resolution, sample)"
                )
            for r in grids:
                try:
                    model.check_resolution(r)
                except ValueError as err:
                    strips[row, col, r] = str(err)
                    continue
                gen = torch.Generator(device=_device(model)).manual_seed(seed)
                strips[row, col, r] = tile(model.sample(n_samples, r, steps=steps, generator=gen))
    fig = Figure(figsize=(1.0 + 0.8 * n_samples * len(cols), 0.3 + 1.7 * len(rows)), layout="constrained")
    axes = fig.subplots(2 * len(rows), len(cols), squeeze=False)
    for i, row in enumerate(rows):
        for j, col in enumerate(cols):
            cell = [s for r in grids if not isinstance(s := strips.get((row, col, r), ""), str)]
            vrange = _value_range(cell or [np.ones(1)], value_range)  # one scale for both grids of a cell
            for k, r in enumerate(grids):
                ax = axes[2 * i + k, j]
                ax.set_xticks([])
                ax.set_yticks([])
                strip = strips.get((row, col, r))
                if strip is None:
                    ax.axis("off")
                elif isinstance(strip, str):
                    reason = textwrap.fill(strip, 60, max_lines=3, placeholder=" ...")
                    ax.text(
                        0.5,
                        0.5,
                        f"{r}x{r}: cannot sample\n{reason}",
                        ha="center",
                        va="center",
                        fontsize=6,
                        transform=ax.transAxes,
                    )
                else:
                    _show(ax, strip, vrange)
                if j == 0:
                    ax.set_ylabel(f"{row}\n{r}x{r}", fontsize=8)
                if i == 0 and k == 0:
                    ax.set_title(col, fontsize=9)
    fig.suptitle(
        title
        or f"samples at {resolution}x{resolution} (upper) and {grids[1]}x{grids[1]} (lower), {steps} steps",
        fontsize=10,
    )
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
    return fig


def _device(model: Any) -> torch.device:
    params = getattr(model, "parameters", None)
    param = next(params(), None) if callable(params) else None
    return param.device if param is not None else torch.device("cpu")


class DiffusionSamplesFigure(FigureCallback):
    """Samples over the course of training as one PNG: a row of `n_samples` samples (same seed each
    time, `steps` reverse-time steps, at `resolution`, default the data's grid) is added at every
    `every_n_validations`-th validation (never in the sanity check), labelled by the global step,
    under the earlier rows. Place it before `EMAWeights` in the callback list to sample with the
    averaged weights that validation uses. The rows are kept in the callback's checkpoint state.

    Works with a model that is a `ctdl.protocols.GridSampler` (as `MultilevelDiffusion`); the grey
    scale is the value range of the validation data (a `SplitData` datamodule) or +-3. Files go
    to `<log_dir>/figures/`: `samples_training.png` (rewritten at each validation),
    `samples_final.png` (end of fit) and `samples_test.png` (end of test: the rows so far and a
    test row); each also goes to every TensorBoard logger under the tag "samples".
    """

    name = "samples"
    metric = "loss"
    headline = "{model}: samples during training"
    epoch_hook = "validation"
    reuse_unchanged = True

    def __init__(
        self,
        every_n_validations: int = 1,
        n_samples: int = 8,
        steps: int = 50,
        resolution: int | None = None,
        seed: int = 0,
        dpi: int = 120,
    ) -> None:
        """
        Args:
            every_n_validations: add a row after every n-th validation; 0: only at the end of fit.
            n_samples: samples per row.
            steps: reverse-time steps per sample (few: a training figure, not a metric).
            resolution: the grid of the samples (default the model's data grid).
            seed: seed of the sampling generator (every row from the same noise).
            dpi: resolution of the PNG.
        """
        super().__init__(every_n_epochs=every_n_validations, dpi=dpi)
        if n_samples < 1 or steps < 1:
            raise ValueError(f"n_samples and steps must be >= 1, got {n_samples} and {steps}")
        self.n_samples, self.steps, self.resolution, self.seed = n_samples, steps, resolution, seed
        self.rows: list[tuple[str, Tensor]] = []
        self._validations = 0

    def _epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.every_n_epochs <= 0 or trainer.sanity_checking:
            return
        self._validations += 1
        if self._validations % self.every_n_epochs:
            return
        paths = self._draw(
            trainer, pl_module, "val", [f"{self.name}_training.png"], epoch=trainer.current_epoch
        )
        self._last = (trainer.global_step, paths[0]) if paths else None

    def _inputs(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> Any | None:
        if not self._conforms(pl_module, GridSampler, "the model"):
            return None
        data = self._samples(trainer, "val", 256)
        x = data[0] if data is not None else None
        if x is None or not len(x):
            return (-3.0, 3.0)
        return (float(x.min()), float(x.max()))

    def _figure(
        self, trainer: L.Trainer, pl_module: L.LightningModule, inputs: Any, stage: str, epoch: int | None
    ) -> Figure:
        gen = torch.Generator(device=pl_module.device).manual_seed(self.seed)
        x = pl_module.sample(self.n_samples, self.resolution, steps=self.steps, generator=gen).cpu()
        row = (f"{stage} step {trainer.global_step}" if stage == "test" else f"step {trainer.global_step}", x)
        rows = [*self.rows, row]
        if stage != "test":
            self.rows = rows
        fig = Figure(
            figsize=(max(6.0, 1.2 + 0.9 * self.n_samples), 0.8 + 0.95 * len(rows)), layout="constrained"
        )
        axes = fig.subplots(len(rows), 1, squeeze=False)[:, 0]
        for ax, (label, samples) in zip(axes, rows, strict=True):
            _show(ax, tile(samples), inputs)
            ax.set_ylabel(label, fontsize=8, rotation=0, ha="right", va="center")
        grid = x.shape[-1]
        title = self._title(trainer, pl_module, stage, epoch, f" ({grid}x{grid}, {self.steps} steps)")
        fig.suptitle(textwrap.fill(title, 80), fontsize=9)
        return fig

    def state_dict(self) -> dict[str, Any]:
        return {"rows": [(label, x.clone()) for label, x in self.rows], "validations": self._validations}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = list(state_dict.get("rows", []))
        self._validations = int(state_dict.get("validations", 0))
