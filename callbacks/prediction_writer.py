"""What `ctdl predict` computes, written to files a user can open: one .npy per output and a CSV.

The contract (`ctdl.protocols.Predictor`): a module's ``predict_step`` returns a dict of named
tensors, each batch first, (batch, ...), with the same batch size for every name. Names are
identifiers (letters, digits, underscores; not ``index``): they become file and column names.
Every task's predict goes through this writer: ODENetClassifier writes class probabilities and
labels, OTFlow log-densities (and, with ``predict_samples``, samples).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from torch import Tensor

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
CSV_NAME = "predictions.csv"


class PredictionWriter(BasePredictionWriter):
    """Save every output of ``predict_step`` under `output_dir` (the ``ctdl`` command: ``<run>/predict/``).

    Files, written when predict ends, rows in the order of the predict loader (ctdl's datamodules
    predict their test split, in order):

    - ``<name>.npy``: one output over all batches, shape (N, ...) with N the samples predicted
      (``numpy.load``); floats stay float32 / float64 (bfloat16 and float16 become float32),
      integers and booleans keep their type.
    - ``predictions.csv``: a header row, then one row per sample: ``index`` (the sample's index in
      the predict dataset), then for an output with one value per sample (N,) the column
      ``<name>``, for a vector per sample (N, k) the columns ``<name>_0`` .. ``<name>_<k-1>``;
      outputs with more dimensions per sample (images) are in their .npy only.

    Under DDP every process writes the rows it predicted, with ``.rank<r>`` before the extension
    (``probs.rank1.npy``); ``index`` in its CSV says which samples they are. A second predict
    dataloader k > 0 writes with ``.dataloader<k>`` likewise.
    """

    def __init__(self, output_dir: str | Path | None = None) -> None:
        """
        Args:
            output_dir: where the files go; default ``<trainer.log_dir>/predict``.
        """
        super().__init__(write_interval="batch")
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self._outputs: dict[int, dict[str, list[np.ndarray]]] = {}
        self._indices: dict[int, list[np.ndarray]] = {}

    # --------------------------------------------------------------------------- collect
    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._outputs, self._indices = {}, {}

    def write_on_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        prediction: Any,
        batch_indices: Sequence[int] | None,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        """Check one batch's outputs against the contract and keep them (on the CPU, as numpy)."""
        arrays = check_predictions(prediction, type(pl_module).__name__)
        outputs = self._outputs.setdefault(dataloader_idx, {})
        if outputs and set(outputs) != set(arrays):
            raise ValueError(
                f"{type(pl_module).__name__}.predict_step returned the outputs {sorted(arrays)} "
                f"in batch {batch_idx} but {sorted(outputs)} before; every batch must "
                "return the same names"
            )
        for name, array in arrays.items():
            outputs.setdefault(name, []).append(array)
        n = len(next(iter(arrays.values())))
        seen = sum(len(i) for i in self._indices.get(dataloader_idx, []))
        index = np.asarray(
            batch_indices
            if batch_indices is not None and len(batch_indices) == n
            else np.arange(seen, seen + n),
            dtype=np.int64,
        )
        self._indices.setdefault(dataloader_idx, []).append(index)

    # ----------------------------------------------------------------------------- write
    def on_predict_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        out_dir = self.output_dir or Path(trainer.log_dir or trainer.default_root_dir) / "predict"
        for dataloader_idx, outputs in self._outputs.items():
            suffix = (f".dataloader{dataloader_idx}" if dataloader_idx else "") + (
                f".rank{trainer.global_rank}" if trainer.world_size > 1 else ""
            )
            arrays = {name: np.concatenate(parts) for name, parts in outputs.items()}
            index = np.concatenate(self._indices[dataloader_idx])
            paths = write_predictions(out_dir, arrays, index, suffix)
            shapes = ", ".join(f"{name} {tuple(a.shape)}" for name, a in arrays.items())
            print(
                f"ctdl predict: {len(index)} samples -> {out_dir} ({', '.join(p.name for p in paths)}; "
                f"{shapes})",
                flush=True,
            )
        self._outputs, self._indices = {}, {}


def check_predictions(prediction: Any, module: str = "the module") -> dict[str, np.ndarray]:
    """The outputs of one ``predict_step`` as numpy arrays, after checking the contract."""
    how = (
        "return a dict of named tensors, each (batch, ...), e.g. {'probs': probs, 'label': label} "
        "(ctdl.protocols.Predictor)"
    )
    if not isinstance(prediction, dict) or not prediction:
        got = "an empty dict" if isinstance(prediction, dict) else f"a {type(prediction).__name__}"
        raise TypeError(f"{module}.predict_step returned {got}; ctdl predict expects it to {how}")
    arrays, sizes = {}, {}
    for name, value in prediction.items():
        if not isinstance(name, str) or not NAME.fullmatch(name) or name == "index":
            raise ValueError(
                f"{module}.predict_step returned an output named {name!r}; names are "
                "identifiers (letters, digits, underscores; not 'index'): they become file "
                "and column names"
            )
        if not isinstance(value, Tensor) or value.ndim == 0:
            got = "a 0-d tensor" if isinstance(value, Tensor) else f"a {type(value).__name__}"
            raise TypeError(
                f"{module}.predict_step returned {got} for {name!r}; ctdl predict expects it to {how}"
            )
        value = value.detach().cpu()
        if value.dtype in (torch.bfloat16, torch.float16):
            value = value.float()
        arrays[name], sizes[name] = value.numpy(), value.shape[0]
    if len(set(sizes.values())) > 1:
        raise ValueError(
            f"{module}.predict_step returned outputs with different batch sizes {sizes}; "
            "every output is (batch, ...) with the batch of the input first"
        )
    return arrays


def write_predictions(
    out_dir: Path, arrays: dict[str, np.ndarray], index: np.ndarray, suffix: str = ""
) -> list[Path]:
    """Write ``<name><suffix>.npy`` for every array and ``predictions<suffix>.csv`` (and remove the
    ``.npy`` files of the same suffix an earlier predict left that this one does not write); returns
    the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, array in arrays.items():
        paths.append(out_dir / f"{name}{suffix}.npy")
        np.save(paths[-1], array)
    header, columns = ["index"], [index]
    for name, array in arrays.items():
        if array.ndim == 1:
            header.append(name)
            columns.append(array)
        elif array.ndim == 2:
            header += [f"{name}_{k}" for k in range(array.shape[1])]
            columns += list(array.T)
    for old in out_dir.glob("*.npy"):  # an earlier predict's outputs that this one does not have
        if old not in paths and old.name[old.name.index(".") :] == f"{suffix}.npy":
            old.unlink()
    paths.append(out_dir / f"{Path(CSV_NAME).stem}{suffix}.csv")
    formats = [_format(c.dtype) for c in columns]
    with open(paths[-1], "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        for row in zip(*columns, strict=True):
            writer.writerow([fmt(v) for fmt, v in zip(formats, row, strict=True)])
    return paths


def _format(dtype: np.dtype):
    """How a CSV cell shows a value of `dtype` (floats with the digits that round-trip)."""
    if np.issubdtype(dtype, np.floating):
        digits = 17 if dtype == np.float64 else 9
        return lambda v: format(float(v), f".{digits}g")
    if np.issubdtype(dtype, np.bool_):
        return lambda v: str(int(v))
    return str
