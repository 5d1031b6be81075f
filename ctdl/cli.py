"""The `ctdl` command: LightningCLI in subclass mode over every task's model and datamodule.

    ctdl fit --config configs/odenet/peaks.yaml
    ctdl fit --model ODENetClassifier --data Toy2DClassification --trainer.max_epochs 5
    ctdl test --config configs/odenet/peaks.yaml --ckpt_path runs/odenet/peaks/version_0/checkpoints/last.ckpt
    ctdl predict --config configs/odenet/peaks.yaml --ckpt_path <the same checkpoint>

Each run writes one directory, <runs_dir>/<config folder>/<config name>/version_<k>/ (runs_dir:
`--runs_dir`, else `--trainer.default_root_dir`, else runs/), holding the resolved config.yaml,
checkpoints/ (last.ckpt: the latest state; best-*.ckpt by `checkpoint.monitor`), metrics.csv,
TensorBoard events and figures/. `fit --ckpt_path .../last.ckpt` resumes in the same directory;
`test`/`validate`/`predict` with a checkpoint of a run log to <run>/<subcommand>/, and `predict`
writes its outputs to <run>/predict/ (`ctdl.callbacks.PredictionWriter`: a .npy per output and
predictions.csv).

The data's facts are written once, in the data section: the model's `dim`, `input_shape` and
`num_classes` (where its class takes them) come from the datamodule (`ctdl.protocols.DATA_FACTS`).
Checkpoints are read with `torch.load(weights_only=True)`: tensors and plain containers only.
"""

from __future__ import annotations

import csv
import importlib
import inspect
import pickle
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
from jsonargparse import Namespace
from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

import ctdl.callbacks  # noqa: F401  (registers the callbacks for short names)
import ctdl.datamodules  # noqa: F401  (registers every DataModule for --data <Name>)
import ctdl.models  # noqa: F401  (registers every LightningModule for --model <Name>)
from ctdl.callbacks import FiniteLossGuard, PredictionWriter, RunCheckpoint
from ctdl.protocols import DATA_FACTS


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
    """LightningCLI with ctdl's run directories, checkpointing, NaN guard and prediction writer
    always on, the data's facts linked into the model, and checkpoints loaded weights-only."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._link_conflicts: list[str] = []  # filled while parsing (see _DataFact)
        self._model_flags: list[str] = []  # the command line's --model.* options
        super().__init__(*args, **kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--run_name",
            type=str | None,
            default=None,
            help="run folder under runs_dir (default: <config folder>/<config name>)",
        )
        parser.add_argument(
            "--runs_dir",
            type=str | None,
            default=None,
            help="where run folders go (default: --trainer.default_root_dir if given, else runs)",
        )
        parser.add_argument(
            "--init_from",
            type=str | None,
            default=None,
            help="a checkpoint whose weights the model starts from (a new run: fresh "
            "optimiser and schedule, step 0; to resume a run use --ckpt_path); read "
            "with torch.load(weights_only=True)",
        )
        parser.add_argument(
            "--init_from_trusted",
            type=bool,
            default=False,
            help="read --init_from with torch.load(weights_only=False): unpickling runs "
            "code from the file, so only for a checkpoint whose origin you trust",
        )
        parser.add_lightning_class_args(RunCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.save_last": True,
                "checkpoint.monitor": "val/loss",
                "checkpoint.mode": "min",
                "checkpoint.filename": "best-epoch{epoch:03d}-step{step}",
                "checkpoint.auto_insert_metric_name": False,
            }
        )
        parser.add_lightning_class_args(FiniteLossGuard, "nan_guard")
        # evaluation under no_grad, not inference_mode: flows that differentiate inside their
        # forward pass (OT-Flow's autograd and Hutchinson traces) must work in validation/test
        parser.set_defaults({"trainer.inference_mode": False})
        for fact in DATA_FACTS:
            parser.link_arguments(
                ("data", "model"),
                f"model.init_args.{fact}",
                apply_on="parse",
                compute_fn=_DataFact(fact, self._link_conflicts),
            )

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        self._model_flags = _model_flags(sys.argv[1:] if args is None else args)
        super().parse_arguments(parser, args)

    def _parse_ckpt_path(self) -> None:
        """Lightning puts a --ckpt_path checkpoint's model hyper-parameters over the config; the
        command line's own --model.* flags then go over those, so that e.g. `ctdl predict --ckpt_path
        ... --model.predict_samples true` does what it says."""
        super()._parse_ckpt_path()
        sub = self.config.get("subcommand")
        if sub and self.config[sub].get("ckpt_path") and self._model_flags:
            self.config = self.parser.parse_args([sub, *self._model_flags], namespace=self.config)

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

    def _runs_dir(self, cfg: Any) -> str:
        """--runs_dir, else --trainer.default_root_dir, else runs; both given and different: an error."""
        runs_dir, root = cfg.get("runs_dir"), cfg.trainer.get("default_root_dir")
        if runs_dir and root and Path(runs_dir).resolve() != Path(str(root)).resolve():
            raise ValueError(
                f"--runs_dir {runs_dir} and --trainer.default_root_dir {root} disagree: both say where run "
                "folders go; give one of them (or the same folder to both)"
            )
        return str(runs_dir or root or "runs")

    def _log_location(self) -> tuple[str, str, str]:
        """(save_dir, name, version) of this run's logs: save_dir/name/version is the log folder."""
        cfg = self._active_config()
        ckpt = cfg.get("ckpt_path")
        run_dir = None
        if ckpt and Path(ckpt).parent.name == "checkpoints":
            run_dir = Path(ckpt).resolve().parent.parent
        if run_dir is not None and self.subcommand == "fit":  # resume in the same run folder
            return str(run_dir.parent), "", run_dir.name
        if run_dir is not None:  # evaluate a saved run: log beside it
            return str(run_dir), "", str(self.subcommand)
        save_dir, name = self._runs_dir(cfg), self._run_name(cfg)
        version = TensorBoardLogger(save_dir, name=name).version  # next free version_<k>
        return save_dir, name, f"version_{version}" if isinstance(version, int) else str(version)

    def _report(self) -> None:
        """Tell the user where this run's files are (rank zero only)."""
        trainer = self.trainer
        log_dir = trainer.log_dir  # a collective under DDP: every rank must ask for it
        if not trainer.is_global_zero or log_dir is None or trainer.fast_dev_run:
            return
        run_dir = Path(log_dir)
        lines = [
            f"run folder:  {run_dir}",
            f"metrics:     {run_dir / 'metrics.csv'} (TensorBoard: tensorboard --logdir {run_dir})",
        ]
        ckpt = trainer.checkpoint_callback
        if self.subcommand == "fit" and ckpt is not None and ckpt.best_model_path:
            score = float(ckpt.best_model_score)
            lines.append(
                f"checkpoints: best {ckpt.best_model_path} ({ckpt.monitor} = {score:.4f}), "
                f"last {ckpt.dirpath}/last.ckpt"
            )
        figures = sorted((run_dir / "figures").glob("*.png"))
        if figures:
            lines.append(f"figures:     {run_dir / 'figures'} ({', '.join(f.name for f in figures[-3:])})")
        metrics = {
            k: float(v)
            for k, v in trainer.callback_metrics.items()
            if k.startswith(("val/", "test/")) and v.numel() == 1
        }
        if metrics:
            lines.append("metrics now: " + ", ".join(f"{k} = {v:.4f}" for k, v in sorted(metrics.items())))
        print("\n".join(["", "ctdl " + str(self.subcommand), *lines]), flush=True)

    def after_fit(self) -> None:
        self._report()

    def after_validate(self) -> None:
        self._report()

    def after_test(self) -> None:
        self._report()

    def before_instantiate_classes(self) -> None:
        if self._link_conflicts:
            raise ValueError("\n".join(dict.fromkeys(self._link_conflicts)))
        cfg = self._active_config()
        self._runs_dir(cfg)  # disagreeing --runs_dir and --trainer.default_root_dir fail before any work

    def instantiate_classes(self) -> None:
        super().instantiate_classes()
        cfg = self._active_config()
        if self.subcommand and self.config_init[self.subcommand].get("weights_only", False) is None:
            # --ckpt_path is read weights-only (Lightning's own default would follow torch's and
            # TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD); --weights_only false is the explicit way out
            self.config_init[self.subcommand]["weights_only"] = True
        if cfg.get("init_from"):
            if str(self.trainer.precision) == "64-true":
                self.model.double()  # as the trainer will: float64 weights then load without rounding
            load_weights(self.model, cfg.init_from, trusted=cfg.get("init_from_trusted", False))

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Any]) -> L.Trainer:
        if config.get("fast_dev_run") and not config.get("default_root_dir"):
            # fast_dev_run swaps the loggers for a dummy, and checkpoints and figures would go to
            # default_root_dir, the working directory: keep them under the runs folder instead
            cfg = self._active_config()
            config["default_root_dir"] = str(Path(self._runs_dir(cfg)) / self._run_name(cfg) / "fast_dev_run")
        if config.get("logger") in (None, True) or self.subcommand == "predict":
            save_dir, name, version = self._log_location()
            if config.get("logger") in (None, True):
                config["logger"] = [
                    TensorBoardLogger(save_dir, name=name, version=version, default_hp_metric=False),
                    ResumableCSVLogger(save_dir, name=name, version=version),
                ]
            given = [
                c
                for c in [*callbacks, *(config.get("callbacks") or [])]
                if isinstance(c, BasePredictionWriter)
            ]
            if self.subcommand == "predict" and not given:
                log_dir = Path(save_dir) / name / version
                callbacks.append(PredictionWriter(log_dir if version == "predict" else log_dir / "predict"))
        return super()._instantiate_trainer(config, callbacks)


class _DataFact:
    """Link `fact` (e.g. dim) from the data section to the model: the value a datamodule of the
    configured class states, if the model's class takes `fact` and the datamodule states it
    (`ctdl.protocols.DATA_FACTS`); otherwise the model's own value, unchanged.

    The datamodule is built from its config (its __init__ only records settings). A value the
    config gives the model that differs both from its class default and from the data's is a
    contradiction, recorded in `conflicts` (the CLI stops with it before building anything).
    """

    def __init__(self, fact: str, conflicts: list[str]) -> None:
        self.fact, self.conflicts = fact, conflicts
        self.__name__ = f"data_{fact}"  # how jsonargparse names the link in --help

    def __call__(self, data: Namespace | None, model: Namespace | None) -> Any:
        model_args = (model.get("init_args") if model is not None else None) or Namespace()
        given = model_args.get(self.fact)
        if data is None or model is None or not data.get("class_path") or not model.get("class_path"):
            return given
        params = inspect.signature(_import(model.class_path)).parameters
        if self.fact not in params:
            return given  # the link is ignored for a model that does not take it
        datamodule = _build(data)
        if not isinstance(datamodule, DATA_FACTS[self.fact]):
            return given
        value = getattr(datamodule, self.fact)
        default = params[self.fact].default
        if given is not None and _plain(given) not in (_plain(default), _plain(value)):
            model_name, data_name = model.class_path.rsplit(".", 1)[-1], type(datamodule).__name__
            fact, given, value = self.fact, _plain(given), _plain(value)
            self.conflicts.append(
                f"model.{fact} = {given} contradicts the data: {data_name} has {fact} = {value}. "
                f"{model_name} takes {fact} from the datamodule; leave --model.{fact} (and {fact} in the "
                f"config's model section) out, or choose data with {fact} = {given}"
            )
        return value


def _model_flags(args: Any) -> list[str]:
    """The --model.<key> options of a command line (with their values), in order."""
    if not isinstance(args, (list, tuple)):
        return []
    args, flags = [str(a) for a in args], []
    for i, arg in enumerate(args):
        if arg.startswith("--model."):
            flags.append(arg)
            if "=" not in arg and i + 1 < len(args) and not args[i + 1].startswith("--"):
                flags.append(args[i + 1])
    return flags


def _import(class_path: str) -> type:
    module, name = class_path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


def _build(data: Namespace) -> Any:
    """The datamodule a data section configures."""
    init_args = data.get("init_args") or Namespace()
    kwargs = init_args.as_dict() if isinstance(init_args, Namespace) else dict(init_args)
    return _import(data.class_path)(**kwargs)


def _plain(value: Any) -> Any:
    """Lists and tuples compare as lists (input_shape: [1, 8, 8] == (1, 8, 8))."""
    return list(value) if isinstance(value, (list, tuple)) else value


class UntrustedCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds Python objects that a weights-only load refuses to unpickle."""


SAFE_GLOBALS: list[Callable[..., Any] | type] = []
"""Types beyond torch's weights-only defaults that ctdl checkpoints may hold. A ctdl checkpoint
(weights, optimiser and scheduler states, loop counters, callbacks' states such as the EMA average
and the checkpoint callback's bookkeeping, hyper-parameters as plain dicts) holds only tensors,
numbers, strings and plain containers, which torch accepts without help: the list is empty."""


def load_checkpoint(path: str | Path, trusted: bool = False) -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)`` (tensors and plain containers only, so
    the file cannot run code); with `trusted`, ``weights_only=False`` (any pickle: trusted files only)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"--init_from: no checkpoint at {path}; runs keep theirs in "
            "runs/<config folder>/<config name>/version_<k>/checkpoints/"
        )
    if trusted:
        return torch.load(path, map_location="cpu", weights_only=False)
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        found = re.search(r"Unsupported global: GLOBAL (\S+) was not", str(error))
        what = f"it names {found.group(1)}" if found else str(error).strip().splitlines()[0]
        raise UntrustedCheckpointError(
            f"refused to load {path}: it holds Python objects that are not tensors or plain containers "
            f"({what}), and unpickling them could run "
            "code from the file. ctdl's own checkpoints hold none. If you trust where the file comes from, "
            "load it with --init_from_trusted true (torch.load(weights_only=False)); otherwise ask its "
            "author for a checkpoint of plain tensors"
        ) from None


def load_weights(model: L.LightningModule, checkpoint: str | Path, trusted: bool = False) -> None:
    """Copy a checkpoint's weights into `model` (same architecture; dtypes follow the model); the
    file is read weights-only unless `trusted` (see `load_checkpoint`)."""
    path = Path(checkpoint)
    state = load_checkpoint(path, trusted=trusted)["state_dict"]
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise ValueError(
            f"--init_from {path}: its weights do not fit this model; build the model with "
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
