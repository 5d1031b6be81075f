"""The ODE-Net picture: 2-D data transported by the network's ODE, and its decision regions.

A continuous ResNet moves each sample along du/dt = f(t, u; theta(t)) from u(0) = K_in y to
u(T), where a linear classifier separates the classes (Haber & Ruthotto 2017, "Stable
architectures for deep neural networks"; Ruthotto & Haber 2020, "Deep neural networks
motivated by partial differential equations"). The figure shows the validation points at
n_times equally spaced times of the first ODE block, coloured by label, and in a last panel
the argmax of the logits over the input plane with the same points on top.
"""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from torch import Tensor

from ctdl.protocols import TransportModel

from .figure import FigureCallback

_PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)


def _class_colors(n: int) -> list[str]:
    """n distinct colours (tab10 repeated beyond 10 classes)."""
    return [_PALETTE[k % len(_PALETTE)] for k in range(max(n, 1))]


class TransportFigure(FigureCallback):
    """Draw the features of 2-D inputs through time and the decision regions as one PNG.

    Works with a model that is a `ctdl.protocols.TransportModel` (`features(x, n_times)`: one
    (n_times, batch, width) tensor per stage, its final time `T`, its `head`; as
    `ODENetClassifier`) and a `SplitData` datamodule whose samples are 2-D vectors; for anything
    else it warns once and draws nothing. Features of width > 2 are shown in the 2 leading principal
    directions of the final-time features (one projection for all panels).

    Files go to `<log_dir>/figures/`: `transport_epoch{epoch:03d}.png` (every `every_n_epochs`
    validation epochs and at the end of fit), `transport_final.png` (end of fit) and
    `transport_test.png` (end of test); each figure is also added to every TensorBoard logger
    under the tag "transport".
    """

    name = "transport"
    metric = "acc"
    headline = "{model}: {stage} data through the first ODE block"
    epoch_hook = "validation"

    def __init__(
        self,
        every_n_epochs: int = 0,
        n_points: int = 500,
        n_times: int = 5,
        grid_size: int = 200,
        dpi: int = 120,
    ) -> None:
        """
        Args:
            every_n_epochs: draw after every n-th validation epoch; 0 draws only at fit end.
            n_points: the first n_points samples of the validation (test) set are shown.
            n_times: panels of transported features, equally spaced in [0, T] (at least 2).
            grid_size: the decision regions are evaluated on grid_size x grid_size points.
            dpi: resolution of the PNG.
        """
        super().__init__(every_n_epochs=every_n_epochs, dpi=dpi)
        if n_points < 1:
            raise ValueError(f"n_points must be >= 1, got {n_points}")
        if n_times < 2:
            raise ValueError(f"n_times must be >= 2 (the panels include t=0 and t=T), got {n_times}")
        if grid_size < 2:
            raise ValueError(f"grid_size must be >= 2, got {grid_size}")
        self.n_points, self.n_times, self.grid_size = n_points, n_times, grid_size

    def _fit_end_names(self, epoch: int) -> list[str]:
        return [f"transport_epoch{epoch:03d}.png", "transport_final.png"]

    def _inputs(
        self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str
    ) -> tuple[Tensor, Tensor | None] | None:
        """First n_points (inputs, labels) of the datamodule's `<stage>_dataset`, or None (after a
        warning) if the model is not a TransportModel or the inputs are not 2-D vectors."""
        if not self._conforms(pl_module, TransportModel, "the model"):
            return None
        data = self._samples(trainer, stage, self.n_points, labels=True)
        if data is None:
            return None
        x, y = data
        if x.ndim != 2 or x.shape[1] != 2:
            self._skip(f"the inputs are not 2-D vectors (sample shape {list(x.shape[1:])})")
            return None
        if len(x) == 0:
            self._skip(f"{stage}_dataset is empty")
            return None
        return x, y

    def _figure(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        inputs: tuple[Tensor, Tensor | None],
        stage: str,
        epoch: int | None,
    ) -> Figure:
        x, y = inputs
        device, dtype = pl_module.device, pl_module.dtype
        x = x.to(device=device, dtype=dtype)
        stages = pl_module.features(x, self.n_times)
        u = stages[0].float().cpu()  # (n_times, batch, width)
        u = u.reshape(u.shape[0], u.shape[1], -1)
        width = u.shape[-1]

        # decision regions on the input plane: bounding box of the data plus a 10 % margin
        xs = x.float().cpu()
        lo, hi = xs.min(0).values, xs.max(0).values
        pad = 0.1 * (hi - lo).clamp_min(1e-6)
        lo, hi = lo - pad, hi + pad
        g0 = torch.linspace(float(lo[0]), float(hi[0]), self.grid_size)
        g1 = torch.linspace(float(lo[1]), float(hi[1]), self.grid_size)
        grid = torch.stack(torch.meshgrid(g0, g1, indexing="xy"), -1).reshape(-1, 2)
        logits = torch.cat(
            [pl_module(chunk.to(device=device, dtype=dtype)).float().cpu() for chunk in grid.split(8192)]
        )
        n_classes = logits.shape[-1]
        regions = logits.argmax(-1).reshape(self.grid_size, self.grid_size).numpy()

        labels = y.cpu().long().numpy() if y is not None else np.zeros(len(x), dtype=np.int64)
        if y is not None:
            n_classes = max(n_classes, int(labels.max()) + 1)
        colors = _class_colors(n_classes)
        point_colors = [colors[k] for k in labels]

        # 2-D coordinates of the features: as they are, padded, or PCA of u(T)
        pca = width > 2
        if pca:
            mean = u[-1].mean(0)
            _, _, vh = torch.linalg.svd(u[-1] - mean, full_matrices=False)
            coords = (u - mean) @ vh[:2].T
        elif width == 2:
            coords = u
        else:
            coords = torch.cat([u, torch.zeros_like(u)], -1)
        coords = coords.numpy()
        c_lo, c_hi = coords.reshape(-1, 2).min(0), coords.reshape(-1, 2).max(0)
        c_pad = 0.05 * np.maximum(c_hi - c_lo, 1e-6)
        c_lo, c_hi = c_lo - c_pad, c_hi + c_pad

        times = np.linspace(0.0, float(pl_module.T), self.n_times)
        n_panels = self.n_times + 1
        fig = Figure(figsize=(3.3 * n_panels, 3.9), layout="constrained")
        axes = fig.subplots(1, n_panels)
        cmap = ListedColormap(colors[:n_classes])

        # the classifier's regions in feature space at t = T (one stage of 2-D features only)
        shade_last = not pca and width == 2 and len(stages) == 1

        for i, ax in enumerate(axes[:-1]):
            if i == self.n_times - 1 and shade_last:
                f0 = torch.linspace(float(c_lo[0]), float(c_hi[0]), self.grid_size)
                f1 = torch.linspace(float(c_lo[1]), float(c_hi[1]), self.grid_size)
                fgrid = torch.stack(torch.meshgrid(f0, f1, indexing="xy"), -1).reshape(-1, 2)
                fcls = pl_module.head(fgrid.to(device=device, dtype=dtype)).argmax(-1).cpu()
                ax.imshow(
                    fcls.reshape(self.grid_size, self.grid_size).numpy(),
                    origin="lower",
                    extent=(c_lo[0], c_hi[0], c_lo[1], c_hi[1]),
                    cmap=cmap,
                    vmin=-0.5,
                    vmax=n_classes - 0.5,
                    alpha=0.25,
                    aspect="auto",
                    interpolation="nearest",
                )
            ax.scatter(coords[i, :, 0], coords[i, :, 1], c=point_colors, s=7, linewidths=0)
            ax.set_xlim(c_lo[0], c_hi[0])
            ax.set_ylim(c_lo[1], c_hi[1])
            title = f"features u(t), t = {times[i]:.2f}"
            if pca:
                title += f"\nPCA of u(T): {width} -> 2 dims"
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("PC 1" if pca else "u_1", fontsize=8)
            ax.set_ylabel("PC 2" if pca else ("u_2" if width == 2 else "0"), fontsize=8)
            ax.tick_params(labelsize=7)

        ax = axes[-1]
        ax.imshow(
            regions,
            origin="lower",
            extent=(float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1])),
            cmap=cmap,
            vmin=-0.5,
            vmax=n_classes - 0.5,
            alpha=0.35,
            aspect="auto",
            interpolation="nearest",
        )
        if n_classes > 1:
            ax.contour(
                g0.numpy(),
                g1.numpy(),
                regions,
                levels=np.arange(n_classes - 1) + 0.5,
                colors="k",
                linewidths=0.6,
            )
        xs_np = xs.numpy()
        ax.scatter(xs_np[:, 0], xs_np[:, 1], c=point_colors, s=8, edgecolors="k", linewidths=0.2)
        ax.set_xlim(float(lo[0]), float(hi[0]))
        ax.set_ylim(float(lo[1]), float(hi[1]))
        ax.set_title(f"decision regions (argmax of logits)\n{stage} data", fontsize=9)
        ax.set_xlabel("x_1", fontsize=8)
        ax.set_ylabel("x_2", fontsize=8)
        ax.tick_params(labelsize=7)
        if y is not None:
            shown = sorted(set(labels.tolist()))
            handles = [
                Line2D([], [], marker="o", linestyle="", color=colors[k], label=f"class {k}") for k in shown
            ]
            ax.legend(handles=handles, fontsize=7, loc="upper right", framealpha=0.8)

        fig.suptitle(self._title(trainer, pl_module, stage, epoch), fontsize=11)
        return fig
