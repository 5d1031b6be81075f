"""The control picture: controlled paths of the learned feedback and the value along them.

Left: Phi(t, X_t) along a few paths under the learned feedback u*(t, x, grad Phi), against the
problem's reference value at the same points where it has one (Cole-Hopf, Riccati, finite
elements). Right, by problem: for 2-D problems the paths over the contours of Phi(0, x) (with the
obstacle's contours and the target); for the quadcopter its 3-D flight paths; otherwise the
realised costs J of the paths against the mean reference value (the optimal expected cost).
"""

from __future__ import annotations

import lightning as L
import torch
from matplotlib.figure import Figure

from ctdl.protocols import ControlPolicy
from ctdl.soc import Obstacle, Problem2D, Quadcopter, reference_value
from ctdl.soc.evaluate import realised_cost

from .figure import FigureCallback


class ControlFigure(FigureCallback):
    """Draws `control_final.png` (fit end), `control_test.png` (test) and, with every_n_epochs,
    `control_epoch*.png`, from the first `n_paths` start points of the split."""

    name = "control"
    metric = "phi0_rel_err"
    headline = "{model}: learned feedback, {stage} starts"

    def __init__(
        self,
        every_n_epochs: int = 0,
        n_paths: int = 16,
        n_value_paths: int = 4,
        reference_samples: int | None = None,
        dpi: int = 120,
    ) -> None:
        super().__init__(every_n_epochs, dpi)
        if n_paths < 1 or not 1 <= n_value_paths <= n_paths:
            raise ValueError(
                f"need n_paths >= 1 and 1 <= n_value_paths <= n_paths, got {n_paths}, {n_value_paths}"
            )
        self.n_paths, self.n_value_paths, self.reference_samples = n_paths, n_value_paths, reference_samples

    def _inputs(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str):
        if not self._conforms(pl_module, ControlPolicy, "the model"):
            return None
        samples = self._samples(trainer, stage, self.n_paths)
        return None if samples is None else samples[0]

    def _figure(self, trainer, pl_module, x0, stage, epoch) -> Figure:
        problem = pl_module.problem
        x0 = x0.to(pl_module.device, pl_module.dtype)
        paths = pl_module.paths(x0, generator=torch.Generator(device=x0.device).manual_seed(0))
        times, states = paths.times.cpu().double(), paths.states.cpu().double()
        fig = Figure(figsize=(11, 4.6), layout="constrained")
        left = fig.add_subplot(1, 2, 1)
        k = self.n_value_paths
        t_all = times.repeat_interleave(k)
        x_all = states[:, :k].reshape(-1, problem.dim)
        phi = pl_module(t_all.to(x0), x_all.to(x0)).cpu().double().view(len(times), k)
        dm = trainer.datamodule  # the finite-element settings of the data's own reference, where it has them
        reference = reference_value(
            problem,
            samples=self.reference_samples,
            mesh=getattr(dm, "fem_mesh", 149),
            dt=getattr(dm, "fem_dt", 1e-3),
        )
        ref = None if reference is None else reference(t_all, x_all).view(len(times), k)
        for j in range(k):
            (line,) = left.plot(times, phi[:, j], lw=1.6, label="learned Phi" if j == 0 else None)
            if ref is not None:
                left.plot(
                    times,
                    ref[:, j],
                    "--",
                    color=line.get_color(),
                    lw=1.2,
                    label="reference" if j == 0 else None,
                )
        left.set_xlabel("t")
        left.set_ylabel("Phi(t, X_t)")
        left.set_title("value along controlled paths")
        left.legend(fontsize=8)
        if isinstance(problem, Problem2D):
            self._plane(fig, pl_module, problem, states, x0)
        elif isinstance(problem, Quadcopter):
            ax = fig.add_subplot(1, 2, 2, projection="3d")
            for j in range(states.shape[1]):
                ax.plot(*states[:, j, :3].T.numpy(), lw=1)
            ax.scatter(*problem.target[:3].numpy(), color="k", marker="*", s=80, label="target")
            ax.set_xlabel("x"), ax.set_ylabel("y"), ax.set_zlabel("z")
            ax.set_title("flight paths")
        else:
            right = fig.add_subplot(1, 2, 2)
            cost = realised_cost(problem, paths).cpu().double()
            right.hist(cost.numpy(), bins=20, color="#ff7f0e", alpha=0.7, label="realised J")
            right.axvline(
                float(cost.mean()), color="#ff7f0e", lw=2, label=f"mean J = {float(cost.mean()):.3f}"
            )
            if reference is not None:
                level = float(reference(0.0, x0.cpu().double()).mean())
                right.axvline(level, color="k", ls="--", label=f"reference E Phi(0, x0) = {level:.3f}")
            right.set_xlabel("cost J of a path")
            right.set_title("realised costs of the learned feedback")
            right.legend(fontsize=8)
        fig.suptitle(self._title(trainer, pl_module, stage, epoch), fontsize=10)
        return fig

    def _plane(self, fig: Figure, pl_module, problem: Problem2D, states, x0) -> None:
        ax = fig.add_subplot(1, 2, 2)
        lo, hi = problem.domain
        grid = torch.linspace(lo, hi, 101, dtype=torch.float64)
        X, Y = torch.meshgrid(grid, grid, indexing="xy")
        pts = torch.stack([X.reshape(-1), Y.reshape(-1)], 1)
        phi = pl_module(0.0, pts.to(x0)).cpu().double().view(101, 101)
        cs = ax.contourf(X.numpy(), Y.numpy(), phi.numpy(), levels=30, cmap="viridis")
        fig.colorbar(cs, ax=ax, label="Phi(0, x)")
        if isinstance(problem, Obstacle):
            ax.contour(
                X.numpy(),
                Y.numpy(),
                problem.obstacle(pts).view(101, 101).numpy(),
                levels=4,
                colors="w",
                linewidths=0.8,
            )
        for j in range(states.shape[1]):
            ax.plot(states[:, j, 0].numpy(), states[:, j, 1].numpy(), color="#ff7f0e", lw=1)
        ax.scatter(states[0, :, 0].numpy(), states[0, :, 1].numpy(), color="w", s=12, zorder=3)
        target = getattr(problem, "target", None)
        if target is not None:
            ax.scatter([float(target[0])], [float(target[1])], color="r", marker="*", s=120, zorder=3)
        ax.set_xlim(lo, hi), ax.set_ylim(lo, hi), ax.set_aspect("equal")
        ax.set_title("paths over the value at t = 0")
