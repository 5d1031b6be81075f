"""The simulation-based-inference picture: a learned posterior against reference samples, and what
its draws predict.

For an observation y the model's samples of pi(theta | y) are shown as a corner (pair) plot next
to reference samples of the same posterior (sbibm's reference posteriors, or samples from another
method such as SMC-ABC read from an .npy file), with the true parameters marked where the data
knows them: 1-D histograms on the diagonal, overlaid scatter below it, contours of smoothed 2-D
histograms above it. Positive parameters modelled as log theta are shown as log theta.

Where the data's simulator returns the time series behind its statistics (the stochastic
Lotka-Volterra model: predators X and prey Y), a posterior predictive panel simulates one series
at each of a few posterior draws and shows them as thin lines with their pointwise median and
5-95% band, next to a simulation at the true parameters (Wang, Verma, Baptista, Marzouk, Ruthotto
2023, conditional OT-Flow; Papamakarios, Sterratt, Murray 2019).
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_warn
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from torch import Tensor

from ctdl.protocols import (
    KnownParameters,
    NamedParameters,
    ObservedData,
    PosteriorData,
    PosteriorModel,
    PredictiveSimulator,
    ReferencePosteriors,
)

from .density_figure import _box_smooth
from .figure import FigureCallback, distinct_indices

REFERENCE_COLOR = "#1f77b4"
MODEL_COLOR = "#ff7f0e"
TRUE_COLOR = "black"


def _wrap(title: str, fig: Figure, fontsize: float = 9) -> str:
    """Title lines broken to fit the figure's width (about 0.55 fontsize points per character)."""
    width = max(int(fig.get_figwidth() * 72 / (0.55 * fontsize)), 20)
    return "\n".join(part for line in title.split("\n") for part in textwrap.wrap(line, width) or [""])


@dataclass
class _Context:
    """What every figure of one draw needs from the datamodule."""

    data: ObservedData
    log_params: bool
    names: list[str] | None
    predictive: bool


class PosteriorFigure(FigureCallback):
    """Draw a posterior model's samples for chosen observations against reference samples, and
    their posterior predictive series where the data can simulate them.

    Works with a model that is a `ctdl.protocols.PosteriorModel` (`sample_posterior(n, y, *,
    generator)` -> raw theta (n, dim); as `ConditionalOTFlow`) and a datamodule that is
    `ObservedData` (`observation(i)`, raw); for anything else it warns once and draws nothing. The
    reference samples of observation i are the file `reference` gives for it (raw theta (m, dim),
    .npy), else the datamodule's `reference_posterior(i)` when it is `ReferencePosteriors`, else
    none. The true parameters are marked when the datamodule is `KnownParameters`; parameters are
    named by a `NamedParameters` datamodule (else theta_1, theta_2, ...); a `PosteriorData`
    datamodule with `log_params` is shown in log theta. A `PredictiveSimulator` datamodule adds
    the posterior predictive figure. Sampling and simulation are seeded (per observation), in the
    model's dtype and on its device, with the global RNG forked so training's stream is untouched.

    Files go to `<log_dir>/figures/`, for each observation i: `posterior_obs<i>_epoch{epoch:03d}.png`
    (every `every_n_epochs` validation epochs, never during the sanity check),
    `posterior_obs<i>_final.png` (end of fit), `posterior_obs<i>_test.png` (end of test), and the
    same names with `posterior_predictive_obs<i>` for the predictive figure; each figure is also
    added to every TensorBoard logger under the tag of its file prefix.
    """

    name = "posterior"
    metric = "nll"
    headline = "{model}:"
    epoch_hook = "validation"

    def __init__(
        self,
        every_n_epochs: int = 0,
        observations: list[int] | None = None,
        n_samples: int = 2000,
        reference: str | dict[int, str] | None = None,
        reference_label: str | None = None,
        coords: list[int] | None = None,
        predictive_draws: int = 40,
        dpi: int = 120,
        seed: int = 0,
    ) -> None:
        """
        Args:
            every_n_epochs: draw after every n-th validation epoch; 0 draws only at fit end.
            observations: the observations drawn (1-based, as the datamodule numbers them); default [1].
            n_samples: posterior samples drawn per observation (and reference samples shown, at most).
            reference: .npy file of reference samples (raw theta, (m, dim)), e.g. SMC-ABC's: one path
                (one observation only) or {observation: path}. Default: the datamodule's reference
                posteriors, if it has them.
            reference_label: legend name of the reference samples (default: "reference posterior",
                or the file name).
            coords: the parameters shown in the corner plot (0-based; default the first 5).
            predictive_draws: posterior draws simulated for the predictive figure (0: no figure).
            dpi: resolution of the PNGs.
            seed: seed of the sampling and simulation (the figures are reproducible).
        """
        super().__init__(every_n_epochs=every_n_epochs, dpi=dpi)
        observations = distinct_indices([1] if observations is None else observations, "observations", 1)
        if n_samples < 2:
            raise ValueError(f"n_samples must be >= 2, got {n_samples}")
        if predictive_draws < 0:
            raise ValueError(f"predictive_draws must be >= 0, got {predictive_draws}")
        coords = distinct_indices(coords, "coords")
        if isinstance(reference, (str, Path)):
            if len(observations) > 1:
                raise ValueError(
                    f"one reference file is the posterior of one observation, but "
                    f"observations = {observations}: pass reference as "
                    "{observation: path}"
                )
            reference = {observations[0]: str(reference)}
        reference = {int(i): str(p) for i, p in (reference or {}).items()}
        if set(reference) - set(observations):
            raise ValueError(
                f"reference files for observations {sorted(set(reference) - set(observations))}"
                f", which are not drawn (observations = {observations})"
            )
        self.observations, self.n_samples, self.reference_files = observations, n_samples, reference
        self.reference_label, self.coords = reference_label, coords
        self.predictive_draws, self.seed = predictive_draws, seed
        self._references: dict[int, np.ndarray] = {}

    # ------------------------------------------------------------------------------ setup
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Read the reference files and check the observations, before any training."""
        for i, path in self.reference_files.items():
            file = Path(path)
            if not file.is_file():
                raise FileNotFoundError(
                    f"PosteriorFigure: no reference file at {file} (observation {i}): "
                    "a .npy array of raw posterior samples, one parameter vector a row"
                )
            samples = np.load(file, allow_pickle=False)
            dim = trainer.datamodule.dim if isinstance(trainer.datamodule, PosteriorData) else None
            if samples.ndim != 2 or (dim is not None and samples.shape[1] != dim):
                want = f"(m, {dim})" if dim is not None else "(m, dim)"
                raise ValueError(
                    f"PosteriorFigure: the reference file {file} holds an array of shape "
                    f"{samples.shape}; expected {want} raw parameter samples"
                )
            self._references[i] = samples.astype(np.float64)
        data = trainer.datamodule
        if isinstance(data, ObservedData):
            for i in self.observations:
                data.observation(i)  # the datamodule names its valid observations

    # ------------------------------------------------------------------------- drawing
    def _inputs(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> _Context | None:
        """The datamodule and what it tells about its parameters, or None (after a warning)."""
        if not self._conforms(pl_module, PosteriorModel, "the model"):
            return None
        data = trainer.datamodule
        if not self._conforms(data, ObservedData, "the datamodule"):
            return None
        log_params = bool(data.log_params) if isinstance(data, PosteriorData) else False
        names = list(data.param_names) if isinstance(data, NamedParameters) else None
        predictive = self.predictive_draws > 0 and isinstance(data, PredictiveSimulator)
        return _Context(data, log_params, names, predictive)

    def _draw(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        stage: str,
        names: list[str],
        epoch: int | None,
    ) -> list[Path]:
        """One corner plot (and one predictive figure) per observation; `names` carry the prefix
        `name`, which becomes `posterior_obs<i>` / `posterior_predictive_obs<i>`."""
        log_dir = trainer.log_dir  # a collective under DDP: every rank must ask for it
        if not trainer.is_global_zero:
            return []
        context = self._inputs(trainer, pl_module, stage)
        if context is None:
            return []
        out_dir = Path(log_dir or trainer.default_root_dir) / "figures"
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = []
        for i in self.observations:
            was_training = pl_module.training
            pl_module.eval()
            try:
                with torch.no_grad():
                    figures = self._figures(trainer, pl_module, context, i, stage, epoch)
            finally:
                pl_module.train(was_training)
            for tag, fig in figures:
                for name in names:
                    paths.append(out_dir / (tag + name[len(self.name) :]))
                    fig.savefig(paths[-1], dpi=self.dpi)
                for logger in trainer.loggers:
                    if isinstance(logger, TensorBoardLogger):
                        logger.experiment.add_figure(tag, fig, global_step=trainer.global_step, close=False)
                fig.clear()
        return paths

    def _figures(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        context: _Context,
        i: int,
        stage: str,
        epoch: int | None,
    ) -> list[tuple[str, Figure]]:
        devices = [pl_module.device] if pl_module.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self._seed(i))
            samples = self._sample(pl_module, context.data.observation(i), i)
        truth = self._truth(context.data, i)
        reference, label = self._reference(context.data, i)
        figures = [
            (
                f"posterior_obs{i}",
                self._corner(trainer, pl_module, context, i, samples, reference, label, truth, stage, epoch),
            )
        ]
        if context.predictive:
            fig = self._predictive(trainer, pl_module, context, i, samples, truth, stage, epoch)
            if fig is not None:
                figures.append((f"posterior_predictive_obs{i}", fig))
        return figures

    # ----------------------------------------------------------------------- samples
    def _seed(self, i: int) -> int:
        return int(np.random.SeedSequence(self.seed, spawn_key=(i,)).generate_state(1)[0])

    def _sample(self, pl_module: L.LightningModule, y: Tensor, i: int) -> Tensor:
        """n_samples raw posterior samples (n, dim) for observation i, in the model's dtype and on
        its device, from a generator seeded with `seed` and i."""
        y = torch.as_tensor(y).to(device=pl_module.device, dtype=pl_module.dtype)
        gen = torch.Generator(device=pl_module.device).manual_seed(self._seed(i))
        samples = pl_module.sample_posterior(self.n_samples, y, generator=gen)
        return samples.detach().reshape(self.n_samples, -1)

    def _truth(self, data: object, i: int) -> np.ndarray | None:
        """The raw parameters observation i was simulated at, if the data knows them."""
        if not isinstance(data, KnownParameters):
            return None
        truth = torch.as_tensor(data.true_parameters()).double().cpu().numpy()
        if truth.ndim == 1:
            return truth if i == 1 else None
        return truth[i - 1] if i <= len(truth) else None

    def _reference(self, data: object, i: int) -> tuple[np.ndarray | None, str]:
        """Up to n_samples reference samples (raw) of observation i (a seeded subset) and their label."""
        if i in self._references:
            samples = self._references[i]
            label = self.reference_label or Path(self.reference_files[i]).name
        elif isinstance(data, ReferencePosteriors):
            samples = torch.as_tensor(data.reference_posterior(i)).double().cpu().numpy()
            label = self.reference_label or "reference posterior"
        else:
            return None, ""
        if len(samples) > self.n_samples:
            keep = np.random.default_rng(self._seed(i)).choice(len(samples), self.n_samples, replace=False)
            samples = samples[np.sort(keep)]
        return samples, label

    # ------------------------------------------------------------------------ corner
    def _corner(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        context: _Context,
        i: int,
        samples: Tensor,
        reference: np.ndarray | None,
        label: str,
        truth: np.ndarray | None,
        stage: str,
        epoch: int | None,
    ) -> Figure:
        ss = samples.double().cpu().numpy()
        d = ss.shape[1]
        coords = [c for c in (self.coords or range(min(5, d))) if c < d]
        if reference is not None and reference.shape[1] != d:
            rank_zero_warn(
                f"PosteriorFigure: the reference samples of observation {i} have "
                f"{reference.shape[1]} parameters, the model's {d}; not shown"
            )
            reference = None

        def shown(a: np.ndarray) -> np.ndarray:
            a = a[:, coords]
            if context.log_params:
                with np.errstate(divide="ignore", invalid="ignore"):
                    a = np.log(a)
            return a[np.isfinite(a).all(1)]

        ss = shown(ss)
        rs = shown(reference) if reference is not None else None
        ts = shown(truth[None])[0] if truth is not None and len(shown(truth[None])) else None
        groups = [a for a in (ss, rs) if a is not None and len(a)]
        if groups:  # robust limits shared by every set: the union of their 0.5-99.5% ranges
            lo = np.min([np.quantile(a, 0.005, axis=0) for a in groups], axis=0)
            hi = np.max([np.quantile(a, 0.995, axis=0) for a in groups], axis=0)
        else:
            lo, hi = np.zeros(len(coords)), np.ones(len(coords))
        if ts is not None:
            lo, hi = np.minimum(lo, ts), np.maximum(hi, ts)
        pad = 0.1 * np.maximum(hi - lo, 1e-6)
        lo, hi = lo - pad, hi + pad
        bins = int(np.clip(np.sqrt(len(ss)), 10, 30))
        base = context.names or [f"theta_{c + 1}" for c in range(d)]
        labels = [f"log {base[c]}" if context.log_params else base[c] for c in coords]

        k = len(coords)
        size = max(2.3 * k, 4.5)
        fig = Figure(figsize=(size, size + 0.5), layout="constrained")
        axes = np.atleast_2d(fig.subplots(k, k, squeeze=False))
        sets = [(a, color) for a, color in ((rs, REFERENCE_COLOR), (ss, MODEL_COLOR)) if a is not None]
        for r in range(k):
            for c in range(k):
                ax = axes[r, c]
                ax.tick_params(labelsize=6)
                if r == c:
                    edges = np.linspace(lo[r], hi[r], bins + 1)
                    if rs is not None:
                        ax.hist(rs[:, r], bins=edges, density=True, color=REFERENCE_COLOR, alpha=0.45)
                    ax.hist(
                        ss[:, r], bins=edges, density=True, histtype="step", color=MODEL_COLOR, linewidth=1.3
                    )
                    if ts is not None:
                        ax.axvline(ts[r], color=TRUE_COLOR, linewidth=1.0, linestyle="--")
                    ax.set_xlim(lo[r], hi[r])
                    ax.set_yticks([])
                elif r > c:  # lower triangle: overlaid scatter
                    for a, color in sets:
                        ax.scatter(a[:, c], a[:, r], s=2, c=color, alpha=0.4, linewidths=0)
                elif r < c:  # upper triangle: contours of smoothed 2-D histograms
                    for a, color in sets:
                        h, ex, ey = np.histogram2d(
                            a[:, c], a[:, r], bins=bins, range=[[lo[c], hi[c]], [lo[r], hi[r]]]
                        )
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
                if r != c:
                    if ts is not None:
                        ax.plot(
                            ts[c],
                            ts[r],
                            marker="*",
                            color=TRUE_COLOR,
                            markersize=9,
                            markeredgecolor="white",
                            markeredgewidth=0.5,
                            linestyle="",
                        )
                    ax.set_xlim(lo[c], hi[c])
                    ax.set_ylim(lo[r], hi[r])
                if r == k - 1:
                    ax.set_xlabel(labels[c], fontsize=8)
                if c == 0 and r > 0:
                    ax.set_ylabel(labels[r], fontsize=8)

        handles = [Patch(color=MODEL_COLOR, label=f"{type(pl_module).__name__} ({len(ss)} samples)")]
        if rs is not None:
            handles.append(Patch(color=REFERENCE_COLOR, alpha=0.6, label=f"{label} ({len(rs)} samples)"))
        if ts is not None:
            handles.append(
                Line2D([], [], marker="*", linestyle="--", color=TRUE_COLOR, label="true parameters")
            )
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=7, frameon=False)
        inside = ((ss >= lo) & (ss <= hi)).all(1).mean() if len(ss) else 0.0
        extra = f" posterior samples for observation {i}"
        if len(coords) < d:
            extra += f" (parameters {', '.join(str(c + 1) for c in coords)} of {d})"
        extra += f"\n{100 * inside:.0f}% of the samples in view"
        if len(ss) < self.n_samples:
            extra += f", {self.n_samples - len(ss)} non-finite left out"
        title = self._title(trainer, pl_module, stage, epoch, extra)
        key = f"test/c2st_obs{i}"
        if stage == "test" and key in trainer.callback_metrics:
            title += f", {key} = {float(trainer.callback_metrics[key]):.3f}"
        fig.suptitle(_wrap(title, fig), fontsize=9)
        return fig

    # -------------------------------------------------------------------- predictive
    def _predictive(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        context: _Context,
        i: int,
        samples: Tensor,
        truth: np.ndarray | None,
        stage: str,
        epoch: int | None,
    ) -> Figure | None:
        data: PredictiveSimulator = context.data
        theta = samples[: self.predictive_draws].double().cpu()
        finite = torch.isfinite(theta).all(1)
        theta = theta[finite]
        seed = self._seed(i)
        try:
            sim = data.simulate_series(theta, seed) if len(theta) else None
            reference = (
                data.simulate_series(torch.from_numpy(truth)[None], seed) if truth is not None else None
            )
        except (ValueError, RuntimeError) as err:
            rank_zero_warn(
                f"PosteriorFigure: no posterior predictive figure for observation {i}: "
                f"the simulator refused the posterior draws ({err})"
            )
            return None
        if sim is None:
            rank_zero_warn(
                f"PosteriorFigure: no posterior predictive figure for observation {i}: "
                "every posterior draw is non-finite"
            )
            return None
        times = torch.as_tensor(sim.times).double().cpu().numpy()
        ok = ~torch.as_tensor(sim.failed).cpu().numpy().astype(bool)
        series = torch.as_tensor(sim.series).double().cpu().numpy()[ok]
        k = series.shape[2]
        fig = Figure(figsize=(5.0 * k, 4.2), layout="constrained")
        axes = np.atleast_1d(fig.subplots(1, k, squeeze=False)[0])
        for j, ax in enumerate(axes):
            name = sim.names[j] if j < len(sim.names) else f"series {j + 1}"
            if len(series):
                ax.plot(times, series[:, :, j].T, color=MODEL_COLOR, linewidth=0.5, alpha=0.35)
                q05, q50, q95 = np.nanpercentile(series[:, :, j], [5, 50, 95], axis=0)
                ax.fill_between(times, q05, q95, color=MODEL_COLOR, alpha=0.2, linewidth=0)
                ax.plot(times, q50, color="#b34700", linewidth=1.8)
            if reference is not None and not bool(torch.as_tensor(reference.failed).all()):
                ax.plot(
                    times,
                    torch.as_tensor(reference.series)[0, :, j].double().cpu().numpy(),
                    color=TRUE_COLOR,
                    linewidth=1.2,
                    linestyle="--",
                )
            ax.set_title(name, fontsize=9)
            ax.set_xlabel("t", fontsize=8)
            ax.tick_params(labelsize=7)
        handles = [
            Line2D([], [], color=MODEL_COLOR, linewidth=0.8, label="posterior draws"),
            Line2D([], [], color="#b34700", linewidth=1.8, label="median"),
            Patch(color=MODEL_COLOR, alpha=0.3, label="5-95%"),
        ]
        if reference is not None:
            handles.append(
                Line2D([], [], color=TRUE_COLOR, linestyle="--", label="simulation at the true parameters")
            )
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=7, frameon=False)

        left_out = int((~finite).sum()) + int((~ok).sum())
        extra = (
            f" posterior predictive series for observation {i}, {len(series)} simulations at "
            "posterior draws" + (f" ({left_out} draws failed or non-finite, left out)" if left_out else "")
        )
        source = f"observation {i} holds summary statistics; its own series is not part of the data" + (
            ": dashed, a fresh simulation at the true parameters it was simulated at"
            if reference is not None
            else ""
        )
        title = self._title(trainer, pl_module, stage, epoch, extra)
        fig.suptitle(_wrap(f"{title}\n{source}", fig), fontsize=9)
        return fig
