"""The plumbing every figure callback shares: when to draw, on which rank, where the PNG goes.

A subclass says what it draws (`_inputs` gathers what the figure needs, `_figure` draws it) and
sets the class attributes `name` (file prefix and TensorBoard tag), `headline` and `metric` (the
title: headline, epoch, val/<metric> and on test also test/<metric>), `epoch_hook` (which epoch
end counts for `every_n_epochs`) and `reuse_unchanged` (copy, do not redraw, at fit end).

This class reads `trainer.log_dir` on every rank (a collective under DDP), draws on global rank
zero only, in eval mode under `torch.no_grad` (the training mode is restored afterwards), saves
`<log_dir>/figures/<name>_epoch{epoch:03d}.png`, `<name>_final.png` and `<name>_test.png`, adds
the figure to every TensorBoard logger under the tag `name`, and warns once when it cannot draw.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_warn
from matplotlib.figure import Figure
from torch import Tensor
from torch.utils.data import TensorDataset

from ctdl.protocols import SplitData, missing_members, split


def distinct_indices(values: list[int] | None, name: str, minimum: int = 0) -> list[int] | None:
    """`values` as a list of ints (None stays None); a ValueError unless it is a non-empty list of
    distinct indices >= minimum."""
    if values is None:
        return None
    values = [int(v) for v in values]
    if not values or min(values) < minimum or len(set(values)) != len(values):
        raise ValueError(f"{name} must be a non-empty list of distinct indices >= {minimum}, got {values}")
    return values


class FigureCallback(L.Callback):
    """Base class of the figure callbacks; see the module docstring."""

    name: ClassVar[str]  # file prefix and TensorBoard tag, e.g. "transport"
    metric: ClassVar[str]  # title shows val/<metric> (and test/<metric> on test), e.g. "acc"
    headline: ClassVar[str]  # start of the title; {model} and {stage} are filled in
    epoch_hook: ClassVar[str] = "validation"  # "validation" or "train": the epoch end that counts
    # at fit end, copy the last epoch figure if the model has not changed since (same global
    # step) instead of drawing it again
    reuse_unchanged: ClassVar[bool] = False

    def __init__(self, every_n_epochs: int = 0, dpi: int = 120) -> None:
        if every_n_epochs < 0:
            raise ValueError(f"every_n_epochs must be >= 0 (0 = only at fit end), got {every_n_epochs}")
        self.every_n_epochs, self.dpi = every_n_epochs, dpi
        self._warned = False
        self._last: tuple[int, Path] | None = None  # (global_step, path) of the last epoch figure

    # ------------------------------------------------------------------- subclass API
    def _inputs(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> Any | None:
        """What `_figure` needs (on global rank zero, before eval mode), or None after `_skip`."""
        raise NotImplementedError

    def _figure(
        self, trainer: L.Trainer, pl_module: L.LightningModule, inputs: Any, stage: str, epoch: int | None
    ) -> Figure:
        """The figure, drawn in eval mode under torch.no_grad."""
        raise NotImplementedError

    def _fit_end_names(self, epoch: int) -> list[str]:
        """The files written at the end of fit."""
        return [f"{self.name}_final.png"]

    # --------------------------------------------------------------------------- hooks
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.epoch_hook == "train":
            self._epoch_end(trainer, pl_module)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.epoch_hook == "validation":
            self._epoch_end(trainer, pl_module)

    def _epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.every_n_epochs <= 0 or trainer.sanity_checking:
            return
        if (trainer.current_epoch + 1) % self.every_n_epochs != 0:
            return
        epoch = trainer.current_epoch
        paths = self._draw(trainer, pl_module, "val", [f"{self.name}_epoch{epoch:03d}.png"], epoch=epoch)
        self._last = (trainer.global_step, paths[0]) if paths else None

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = max(trainer.current_epoch - 1, 0)  # current_epoch counts the finished epochs here
        names = self._fit_end_names(epoch)
        last = self._last
        if self.reuse_unchanged and last is not None and last[0] == trainer.global_step and last[1].is_file():
            # the model has not changed since the last epoch figure: copy it, do not redraw
            trainer.log_dir  # noqa: B018  (a collective under DDP: every rank must ask for it)
            if not trainer.is_global_zero:
                return
            paths = [last[1].with_name(name) for name in names]
            for path in paths:
                shutil.copyfile(last[1], path)
        else:
            paths = self._draw(trainer, pl_module, "val", names, epoch=epoch)
        if paths:
            print(f"{type(self).__name__}: saved {paths[-1]}")

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # after fit, current_epoch counts the finished epochs; a bare test (or one from a
        # checkpoint, whose loop state Lightning does not restore for test) has 0 and no epoch
        epoch = trainer.current_epoch - 1 if trainer.current_epoch > 0 else None
        self._draw(trainer, pl_module, "test", [f"{self.name}_test.png"], epoch=epoch)

    # ------------------------------------------------------------------------- helpers
    def _skip(self, reason: str) -> None:
        if not self._warned:
            rank_zero_warn(f"{type(self).__name__} draws nothing: {reason}")
            self._warned = True

    def _conforms(self, obj: object, protocol: type, role: str) -> bool:
        """Whether `obj` is a `protocol` (one of ctdl.protocols); if not, `_skip` naming what it lacks."""
        if isinstance(obj, protocol):
            return True
        lacks = " / ".join(missing_members(obj, protocol))
        self._skip(
            f"{role} ({type(obj).__name__}) is not a {protocol.__name__} (ctdl.protocols): it lacks {lacks}"
        )
        return False

    def _samples(
        self, trainer: L.Trainer, stage: str, n: int, labels: bool = False
    ) -> tuple[Tensor, Tensor | None] | None:
        """First n samples of the datamodule's `<stage>_dataset` (a `SplitData` datamodule) and, if
        `labels`, their integer labels (None where the samples carry none); None after `_skip` if
        they cannot be read."""
        dm = trainer.datamodule
        if not self._conforms(dm, SplitData, "the datamodule"):
            return None
        ds = split(dm, stage)
        if ds is None:
            self._skip(f"the datamodule's {stage}_dataset is None (not set up)")
            return None
        try:
            if isinstance(ds, TensorDataset):
                x = ds.tensors[0][:n]
                y = ds.tensors[1][:n] if labels and len(ds.tensors) > 1 else None
            else:
                items = [ds[i] for i in range(min(n, len(ds)))]
                x = torch.stack(
                    [torch.as_tensor(it[0] if isinstance(it, (tuple, list)) else it) for it in items]
                )
                labelled = (
                    labels and bool(items) and isinstance(items[0], (tuple, list)) and len(items[0]) > 1
                )
                y = torch.as_tensor([int(it[1]) for it in items]) if labelled else None
        except (TypeError, ValueError, IndexError, RuntimeError) as err:
            self._skip(f"could not read samples from {stage}_dataset ({err})")
            return None
        return x, y

    def _title(
        self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str, epoch: int | None, extra: str = ""
    ) -> str:
        """`headline` and `extra`, then the epoch and val/<metric> (also test/<metric> on test)."""
        title = self.headline.format(model=type(pl_module).__name__, stage=stage) + extra
        if epoch is not None:
            title += f", epoch {epoch}"
        metrics = trainer.callback_metrics
        prefixes = ("val", "test") if stage == "test" else ("val",)
        for key in (f"{prefix}/{self.metric}" for prefix in prefixes):
            if key in metrics:
                title += f", {key} = {float(metrics[key]):.3f}"
        return title

    def _draw(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        stage: str,
        names: list[str],
        epoch: int | None,
    ) -> list[Path]:
        log_dir = trainer.log_dir  # a collective under DDP: every rank must ask for it
        if not trainer.is_global_zero:
            return []
        inputs = self._inputs(trainer, pl_module, stage)
        if inputs is None:
            return []
        was_training = pl_module.training
        pl_module.eval()
        try:
            with torch.no_grad():
                fig = self._figure(trainer, pl_module, inputs, stage, epoch)
        finally:
            pl_module.train(was_training)

        out_dir = Path(log_dir or trainer.default_root_dir) / "figures"
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = [out_dir / name for name in names]
        for path in paths:
            fig.savefig(path, dpi=self.dpi)
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_figure(self.name, fig, global_step=trainer.global_step, close=False)
        fig.clear()
        return paths
