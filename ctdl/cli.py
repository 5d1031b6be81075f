"""The `ctdl` command: LightningCLI in subclass mode over every task's model and datamodule.

    ctdl fit --config configs/odenet/peaks.yaml
    ctdl fit --model ODENetClassifier --data Toy2DClassification --trainer.max_epochs 5
    ctdl test --config configs/odenet/peaks.yaml --ckpt_path runs/odenet/peaks/version_0/checkpoints/last.ckpt

Each run writes one directory, runs/<config folder>/<config name>/version_<k>/, holding the
resolved config.yaml, checkpoints/ (last.ckpt: the latest state; best-*.ckpt by `checkpoint.monitor`),
metrics.csv, TensorBoard events and figures/. `fit --ckpt_path .../last.ckpt` resumes in the
same directory; `test`/`validate`/`predict` with a checkpoint of a run log to <run>/<subcommand>/.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

import ctdl.callbacks  # noqa: F401  (registers the callbacks for short names)
import ctdl.datamodules  # noqa: F401  (registers every DataModule for --data <Name>)
import ctdl.models  # noqa: F401  (registers every LightningModule for --model <Name>)
from ctdl.callbacks import FiniteLossGuard, RunCheckpoint


class _AppendingWriter(ExperimentWriter):
    """CSV writer that keeps an existing metrics.csv (resumed runs append to it)."""

    def _check_log_dir_exists(self) -> None:
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as file:
                header = next(csv.reader(file), [])
            self.metrics_keys = sorted(header)


class ResumableCSVLogger(CSVLogger):
    """CSVLogger whose metrics.csv survives a resume into the same run folder."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment


class CTDLCLI(LightningCLI):
    """LightningCLI with ctdl's run directories, checkpointing and NaN guard always on."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument("--run_name", type=str | None, default=None,
                            help="run folder under runs_dir (default: <config folder>/<config name>)")
        parser.add_argument("--runs_dir", type=str, default="runs", help="where run folders go")
        parser.add_argument("--init_from", type=str | None, default=None,
                            help="a checkpoint whose weights the model starts from (a new run: fresh "
                                 "optimiser and schedule, step 0; to resume a run use --ckpt_path)")
        parser.add_lightning_class_args(RunCheckpoint, "checkpoint")
        parser.set_defaults({
            "checkpoint.save_last": True,
            "checkpoint.monitor": "val/loss",
            "checkpoint.mode": "min",
            "checkpoint.filename": "best-epoch{epoch:03d}-step{step}",
            "checkpoint.auto_insert_metric_name": False,
        })
        parser.add_lightning_class_args(FiniteLossGuard, "nan_guard")
        # evaluation under no_grad, not inference_mode: flows that differentiate inside their
        # forward pass (OT-Flow's autograd and Hutchinson traces) must work in validation/test
        parser.set_defaults({"trainer.inference_mode": False})

    def _active_config(self) -> Any:
        """The parsed config of the running subcommand (the whole config when run=False)."""
        return self.config[self.subcommand] if self.subcommand else self.config

    def _run_name(self, cfg: Any) -> str:
        if cfg.get("run_name"):
            return cfg.run_name
        configs = cfg.get("config") or []
        if configs:
            path = Path(str(configs[-1]))
            return f"{path.parent.name}/{path.stem}" if path.parent.name else path.stem
        model = cfg.model.class_path.rsplit(".", 1)[-1] if cfg.get("model") else "model"
        data = cfg.data.class_path.rsplit(".", 1)[-1] if cfg.get("data") else "data"
        return f"{model}/{data}"

    def _loggers(self) -> list[L.pytorch.loggers.Logger]:
        cfg = self._active_config()
        ckpt = cfg.get("ckpt_path")
        run_dir = None
        if ckpt and Path(ckpt).parent.name == "checkpoints":
            run_dir = Path(ckpt).resolve().parent.parent
        if run_dir is not None and self.subcommand == "fit":  # resume in the same run folder
            save_dir, name, version = str(run_dir.parent), "", run_dir.name
        elif run_dir is not None:  # evaluate a saved run: log beside it
            save_dir, name, version = str(run_dir), "", self.subcommand
        else:
            save_dir, name = cfg.runs_dir, self._run_name(cfg)
            version = TensorBoardLogger(save_dir, name=name).version  # next free version_<k>
            version = f"version_{version}" if isinstance(version, int) else version
        return [TensorBoardLogger(save_dir, name=name, version=version, default_hp_metric=False),
                ResumableCSVLogger(save_dir, name=name, version=version)]

    def _report(self) -> None:
        """Tell the user where this run's files are (rank zero only)."""
        trainer = self.trainer
        log_dir = trainer.log_dir  # a collective under DDP: every rank must ask for it
        if not trainer.is_global_zero or log_dir is None or trainer.fast_dev_run:
            return
        run_dir = Path(log_dir)
        lines = [f"run folder:  {run_dir}", f"metrics:     {run_dir / 'metrics.csv'} "
                 f"(TensorBoard: tensorboard --logdir {run_dir})"]
        ckpt = trainer.checkpoint_callback
        if self.subcommand == "fit" and ckpt is not None and ckpt.best_model_path:
            score = float(ckpt.best_model_score)
            lines.append(f"checkpoints: best {ckpt.best_model_path} ({ckpt.monitor} = {score:.4f}), "
                         f"last {ckpt.dirpath}/last.ckpt")
        figures = sorted((run_dir / "figures").glob("*.png"))
        if figures:
            lines.append(f"figures:     {run_dir / 'figures'} ({', '.join(f.name for f in figures[-3:])})")
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()
                   if k.startswith(("val/", "test/")) and v.numel() == 1}
        if metrics:
            lines.append("metrics now: " + ", ".join(f"{k} = {v:.4f}" for k, v in sorted(metrics.items())))
        print("\n".join(["", "ctdl " + str(self.subcommand), *lines]), flush=True)

    def after_fit(self) -> None:
        self._report()

    def after_validate(self) -> None:
        self._report()

    def after_test(self) -> None:
        self._report()

    def instantiate_classes(self) -> None:
        super().instantiate_classes()
        cfg = self._active_config()
        if cfg.get("init_from"):
            if str(self.trainer.precision) == "64-true":
                self.model.double()  # as the trainer will: float64 weights then load without rounding
            load_weights(self.model, cfg.init_from)

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Any]) -> L.Trainer:
        if config.get("logger") in (None, True):
            config["logger"] = self._loggers()
        return super()._instantiate_trainer(config, callbacks)


def load_weights(model: L.LightningModule, checkpoint: str | Path) -> None:
    """Copy a checkpoint's weights into `model` (same architecture; dtypes follow the model)."""
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"--init_from: no checkpoint at {path}; runs keep theirs in "
                                "runs/<config folder>/<config name>/version_<k>/checkpoints/")
    state = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise ValueError(f"--init_from {path}: its weights do not fit this model; build the model with "
                         f"the settings the checkpoint was trained with (hparams.yaml beside it)\n{error}"
                         ) from error


def run_cli(args: list[str] | None = None, run: bool = True) -> CTDLCLI:
    """Build (and by default run) the CLI; `args` replaces sys.argv[1:] (used by the tests)."""
    return CTDLCLI(
        L.LightningModule,
        L.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": True},
        args=args,
        run=run,
    )


def main() -> None:
    """Console entry point `ctdl`. Under DDP the process group is destroyed before exit, so the
    gloo/NCCL threads do not outlive the interpreter (an unjoined thread aborts the process)."""
    try:
        run_cli()
    finally:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    main()
