"""The PDE control picture for one instance: the concentration u(t) without and with the learned
feedback at four times (actuators as circles, sources as crosses), and the actuators' rates a_k(t)."""

from __future__ import annotations

import lightning as L
import torch
from matplotlib.figure import Figure

from ctdl.pde_control import rollout
from ctdl.protocols import PDEController

from .figure import FigureCallback


class PDEControlFigure(FigureCallback):
    """Draws `pde_control_final.png` (fit end), `pde_control_test.png` (test) and, with every_n_epochs,
    `pde_control_epoch*.png`, for instance `index` of the split."""

    name = "pde_control"
    metric = "cost"
    headline = "{model}: concentration without and with control, {stage} instance"

    def __init__(self, every_n_epochs: int = 0, index: int = 0, dpi: int = 120) -> None:
        super().__init__(every_n_epochs, dpi)
        if index < 0:
            raise ValueError(f"index must be >= 0, got {index}")
        self.index = index

    def _inputs(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str):
        if not self._conforms(pl_module, PDEController, "the model"):
            return None
        samples = self._samples(trainer, stage, self.index + 1)
        return None if samples is None else samples[0][self.index : self.index + 1]

    def _figure(self, trainer, pl_module, params, stage, epoch) -> Figure:
        problem = pl_module.problem
        inst = problem.instances(params)
        rates = pl_module.control(params)  # (1, N, K)
        controlled = rollout(problem, inst, rates.transpose(0, 1))
        free = rollout(problem, inst, torch.zeros_like(rates).transpose(0, 1))
        N = problem.steps
        shown = [N // 4, N // 2, 3 * N // 4, N]
        vmax = float(free.states[shown].max())
        fig = Figure(figsize=(14, 6.2), layout="constrained")
        grid = fig.add_gridspec(2, 5)
        src = params[0, problem.velocity_modes**2 :].reshape(-1, 3)
        src = src[src[:, 2] > 0]
        for row, (path, label) in enumerate(((free, "no control"), (controlled, "learned feedback"))):
            for col, n in enumerate(shown):
                ax = fig.add_subplot(grid[row, col])
                im = ax.imshow(
                    problem.to_image(path.states[n, 0]).numpy(),
                    origin="lower",
                    extent=(0, 1, 0, 1),
                    vmin=0,
                    vmax=vmax,
                    cmap="viridis",
                )
                ax.scatter(*problem.actuators.T, s=120, facecolors="none", edgecolors="w", linewidths=1.2)
                ax.scatter(src[:, 0], src[:, 1], marker="x", c="r", s=30)
                ax.set_title(f"{label}, t = {n * problem.dt:.2f}", fontsize=9)
                ax.set_xticks([])
                ax.set_yticks([])
            fig.colorbar(im, ax=ax, fraction=0.046)
        ax = fig.add_subplot(grid[:, 4])
        t = torch.arange(N) * problem.dt
        for k in range(problem.num_actuators):
            ax.plot(
                t,
                rates[0, :, k],
                label=f"a_{k + 1} at ({problem.actuators[k, 0]:.2f}, {problem.actuators[k, 1]:.2f})",
            )
        ax.set_xlabel("t")
        ax.yaxis.set_label_position("right")
        ax.set_ylabel("absorption rate a_k(t)")
        ax.set_ylim(-0.02 * problem.a_max, 1.05 * problem.a_max)
        ax.legend(fontsize=7)
        ax.set_title(f"J = {controlled.cost.item():.3f} (no control {free.cost.item():.3f})", fontsize=9)
        return fig
