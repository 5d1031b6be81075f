"""The density-estimation picture: data against a flow's samples, density and latent codes.

A normalizing flow F maps data x to a latent z = F(x) that should be N(0, I); its density is
log p(x) = log N(F(x); 0, I) + log |det dF/dx| (for OT-Flow, Onken, Wu Fung, Li, Ruthotto,
AAAI 2021, the log-determinant is the integrated trace of the Hessian of the potential), and
samples are F^{-1}(z) with z ~ N(0, I). For 2-D data the figure has four panels in the style of
FFJORD (Grathwohl et al. 2019) and OT-Flow: data samples, model samples, exp(log p) on a grid,
and the data pushed to the latent space next to the standard normal's 1-, 2- and 3-sigma
circles. For d > 2 it is a corner plot of a few coordinates: pairwise scatter and 2-D
histogram contours of model samples against data, and 1-D histograms on the diagonal.
"""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Circle
from torch import Tensor

from ctdl.protocols import Flow

from .figure import FigureCallback, distinct_indices

DATA_COLOR = "#1f77b4"
MODEL_COLOR = "#ff7f0e"


def _box_smooth(h: np.ndarray) -> np.ndarray:
    """3x3 moving average with zero padding (a light smoothing of a 2-D histogram)."""
    p = np.pad(h, 1)
    return sum(p[i : i + h.shape[0], j : j + h.shape[1]] for i in range(3) for j in range(3)) / 9.0


class DensityFigure(FigureCallback):
    """Draw a density model against its data as one PNG.

    Works with a model that is a `ctdl.protocols.Flow` (`sample(n, generator)` -> (n, d),
    `log_prob(x)` -> (n,), `forward(x)` the map to the latent space; as `OTFlow`) and a datamodule
    that is `ctdl.protocols.SplitData` whose samples are d-vectors; for anything else it warns
    once and draws nothing. Everything is computed in the model's dtype and on its device, with a
    seeded generator (and the global RNG forked, so training's random stream is untouched).

    Files go to `<log_dir>/figures/`: `density_epoch{epoch:03d}.png` (every `every_n_epochs`
    training epochs, never during the sanity check), `density_final.png` (end of fit) and
    `density_test.png` (end of test); each figure is also added to every TensorBoard logger
    under the tag "density".
    """

    name = "density"
    metric = "nll"
    headline = "{model}: model against {stage} data"
    epoch_hook = "train"
    reuse_unchanged = True  # the final figure is a copy of the last epoch figure if nothing changed

    def __init__(
        self,
        every_n_epochs: int = 0,
        n_samples: int = 2000,
        grid_size: int = 100,
        coords: list[int] | None = None,
        dpi: int = 120,
        seed: int = 0,
        chunk_size: int = 4096,
    ) -> None:
        """
        Args:
            every_n_epochs: draw after every n-th training epoch; 0 draws only at fit end.
            n_samples: data points shown (the first n_samples of the validation / test set) and
                model samples drawn (as many as there are data points shown).
            grid_size: for 2-D data the density is evaluated on grid_size x grid_size points.
            coords: for d > 2, the coordinates shown in the corner plot (default the first 4).
            dpi: resolution of the PNG.
            seed: seed of the generator used for sampling (the figures are reproducible).
            chunk_size: points per call of log_prob / forward (bounds the memory).
        """
        super().__init__(every_n_epochs=every_n_epochs, dpi=dpi)
        if n_samples < 1:
            raise ValueError(f"n_samples must be >= 1, got {n_samples}")
        if grid_size < 2:
            raise ValueError(f"grid_size must be >= 2, got {grid_size}")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        coords = distinct_indices(coords, "coords")
        self.n_samples, self.grid_size = n_samples, grid_size
        self.coords, self.seed, self.chunk_size = coords, seed, chunk_size

    def _inputs(
        self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str
    ) -> tuple[Tensor, list[int]] | None:
        """First n_samples points (n, d) of the datamodule's `<stage>_dataset` and the coordinates
        shown, or None (after a warning) if the model or the data do not fit."""
        if not self._conforms(pl_module, Flow, "the model"):
            return None
        data = self._samples(trainer, stage, self.n_samples)
        if data is None:
            return None
        x = data[0]
        if len(x) == 0:
            self._skip(f"{stage}_dataset is empty")
            return None
        if x.ndim != 2:
            self._skip(f"the samples are not vectors (sample shape {list(x.shape[1:])})")
            return None
        d = x.shape[1]
        if d > 2:
            coords = self.coords if self.coords is not None else list(range(min(4, d)))
            if max(coords) >= d:
                self._skip(f"coords {coords} do not fit the data's dimension {d} (indices 0..{d - 1})")
                return None
        else:
            coords = list(range(d))
        return x, coords

    def _figure(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        inputs: tuple[Tensor, list[int]],
        stage: str,
        epoch: int | None,
    ) -> Figure:
        x, coords = inputs
        devices = [pl_module.device] if pl_module.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed)
            x = x.to(device=pl_module.device, dtype=pl_module.dtype)
            samples = self._sample(pl_module, len(x))
            if x.shape[1] == 2:
                return self._figure_2d(trainer, pl_module, x, samples, stage, epoch)
            return self._figure_corner(trainer, pl_module, x, samples, coords, stage, epoch)

    def _sample(self, pl_module: L.LightningModule, n: int) -> Tensor:
        """n model samples (n, d) on the model's device, from a generator seeded with `seed`."""
        gen = torch.Generator(device=pl_module.device).manual_seed(self.seed)
        return pl_module.sample(n, generator=gen).detach().reshape(n, -1)

    def _chunked(self, fn, x: Tensor) -> Tensor:
        return torch.cat([fn(chunk).detach() for chunk in x.split(self.chunk_size)])

    # ------------------------------------------------------------------------- 2-D
    def _figure_2d(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        x: Tensor,
        samples: Tensor,
        stage: str,
        epoch: int | None,
    ) -> Figure:
        device, dtype = x.device, x.dtype
        lo, hi = x.min(0).values, x.max(0).values
        pad = 0.1 * (hi - lo).clamp_min(1e-6)
        lo, hi = (lo - pad).cpu().double().numpy(), (hi + pad).cpu().double().numpy()
        extent = (lo[0], hi[0], lo[1], hi[1])

        g0 = torch.linspace(lo[0], hi[0], self.grid_size, dtype=dtype, device=device)
        g1 = torch.linspace(lo[1], hi[1], self.grid_size, dtype=dtype, device=device)
        grid = torch.stack(torch.meshgrid(g0, g1, indexing="xy"), -1).reshape(-1, 2)
        logp = self._chunked(pl_module.log_prob, grid).reshape(self.grid_size, self.grid_size)
        dens = logp.double().exp().cpu().numpy()
        cell = (hi[0] - lo[0]) / (self.grid_size - 1) * (hi[1] - lo[1]) / (self.grid_size - 1)
        mass = float(np.nansum(dens) * cell)
        z = self._chunked(pl_module, x).double().cpu().numpy()

        xs, ss = x.double().cpu().numpy(), samples.double().cpu().numpy()
        inside = ((ss >= lo) & (ss <= hi)).all(1).mean()

        fig = Figure(figsize=(14.0, 3.9), layout="constrained")
        axes = fig.subplots(1, 4)
        ax = axes[0]
        ax.scatter(xs[:, 0], xs[:, 1], s=3, c=DATA_COLOR, alpha=0.6, linewidths=0)
        ax.set_title(f"{stage} data ({len(xs)} points)", fontsize=9)
        ax = axes[1]
        ax.scatter(ss[:, 0], ss[:, 1], s=3, c=MODEL_COLOR, alpha=0.6, linewidths=0)
        ax.set_title(f"model samples ({len(ss)}; {100 * inside:.0f}% in the box)", fontsize=9)
        ax = axes[2]
        im = ax.imshow(
            dens, origin="lower", extent=extent, cmap="viridis", aspect="auto", interpolation="nearest"
        )
        fig.colorbar(im, ax=ax, shrink=0.85).ax.tick_params(labelsize=7)
        ax.set_title(f"model density exp(log p)\nmass in the box {mass:.3f}", fontsize=9)
        for ax in axes[:3]:
            ax.set_xlim(lo[0], hi[0])
            ax.set_ylim(lo[1], hi[1])
            ax.set_xlabel("x_1", fontsize=8)
            ax.set_ylabel("x_2", fontsize=8)
            ax.tick_params(labelsize=7)

        ax = axes[3]
        ax.scatter(z[:, 0], z[:, 1], s=3, c=DATA_COLOR, alpha=0.6, linewidths=0)
        for r, style in ((1.0, "-"), (2.0, "--"), (3.0, ":")):
            ax.add_patch(Circle((0.0, 0.0), r, fill=False, color="k", linestyle=style, linewidth=0.9))
        finite = z[np.isfinite(z).all(1)]
        r_max = max(4.0, float(np.quantile(np.abs(finite), 0.99)) * 1.05) if len(finite) else 4.0
        ax.set_xlim(-r_max, r_max)
        ax.set_ylim(-r_max, r_max)
        ax.set_aspect("equal")
        ax.set_title("data pushed to the latent space F(x)\nN(0, I) circles r = 1, 2, 3", fontsize=9)
        ax.set_xlabel("z_1", fontsize=8)
        ax.set_ylabel("z_2", fontsize=8)
        ax.tick_params(labelsize=7)
        fig.suptitle(self._title(trainer, pl_module, stage, epoch), fontsize=11)
        return fig

    # ----------------------------------------------------------------------- d > 2
    def _figure_corner(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        x: Tensor,
        samples: Tensor,
        coords: list[int],
        stage: str,
        epoch: int | None,
    ) -> Figure:
        d, k = x.shape[1], len(coords)
        xs = x.double().cpu().numpy()[:, coords]
        ss = samples.double().cpu().numpy()[:, coords]
        # axis limits from the data (robust quantiles plus a margin), shared by model and data
        q_lo, q_hi = np.quantile(xs, 0.005, axis=0), np.quantile(xs, 0.995, axis=0)
        pad = 0.15 * np.maximum(q_hi - q_lo, 1e-6)
        lo, hi = q_lo - pad, q_hi + pad
        bins = int(np.clip(np.sqrt(len(xs)), 10, 30))  # ~ sqrt(n) bins: few points, coarse bins
        inside = ((ss >= lo) & (ss <= hi)).all(1).mean()

        size = max(2.2 * k, 4.0)
        fig = Figure(figsize=(size, size + 0.4), layout="constrained")
        axes = np.atleast_2d(fig.subplots(k, k, squeeze=False))
        for i in range(k):
            for j in range(k):
                ax = axes[i, j]
                ax.tick_params(labelsize=6)
                if i == j:
                    edges = np.linspace(lo[i], hi[i], bins + 1)
                    ax.hist(xs[:, i], bins=edges, density=True, color=DATA_COLOR, alpha=0.45)
                    ax.hist(
                        ss[:, i], bins=edges, density=True, histtype="step", color=MODEL_COLOR, linewidth=1.3
                    )
                    ax.set_xlim(lo[i], hi[i])
                    ax.set_yticks([])
                elif i > j:  # lower triangle: overlaid scatter
                    ax.scatter(xs[:, j], xs[:, i], s=2, c=DATA_COLOR, alpha=0.45, linewidths=0)
                    ax.scatter(ss[:, j], ss[:, i], s=2, c=MODEL_COLOR, alpha=0.45, linewidths=0)
                    ax.set_xlim(lo[j], hi[j])
                    ax.set_ylim(lo[i], hi[i])
                else:  # upper triangle: contours of smoothed 2-D histograms
                    rng = [[lo[j], hi[j]], [lo[i], hi[i]]]
                    for pts, color in ((xs, DATA_COLOR), (ss, MODEL_COLOR)):
                        h, ex, ey = np.histogram2d(pts[:, j], pts[:, i], bins=bins, range=rng)
                        h = _box_smooth(h).T
                        if h.max() > 0:
                            cx, cy = 0.5 * (ex[1:] + ex[:-1]), 0.5 * (ey[1:] + ey[:-1])
                            ax.contour(
                                cx,
                                cy,
                                h,
                                levels=h.max() * np.array([0.1, 0.3, 0.6]),
                                colors=color,
                                linewidths=0.9,
                            )
                    ax.set_xlim(lo[j], hi[j])
                    ax.set_ylim(lo[i], hi[i])
                if i == k - 1:
                    ax.set_xlabel(f"x_{coords[j]}", fontsize=8)
                if j == 0 and i > 0:
                    ax.set_ylabel(f"x_{coords[i]}", fontsize=8)
        handles = [
            Line2D([], [], marker="o", linestyle="", color=DATA_COLOR, label=f"{stage} data"),
            Line2D([], [], marker="o", linestyle="", color=MODEL_COLOR, label="model samples"),
        ]
        axes[0, -1 if k > 1 else 0].legend(handles=handles, fontsize=7, loc="upper right", framealpha=0.85)
        shown = ", ".join(str(c) for c in coords)
        extra = (
            f"\ncoordinates {shown} of d = {d}; {len(xs)} points each, "
            f"{100 * inside:.0f}% of the model samples in view"
        )
        fig.suptitle(self._title(trainer, pl_module, stage, epoch, extra), fontsize=10)
        return fig
