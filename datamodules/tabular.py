"""The MAF paper's tabular density sets (Papamakarios, Pavlakou, Murray 2017, "Masked
autoregressive flow for density estimation"): POWER, GAS, HEPMASS, MINIBOONE, BSDS300, read from
the files of the MAF archive (zenodo record 1161203) with the MAF code's preprocessing and splits,
so that published negative log-likelihoods compare."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import torch
from torch.utils.data import TensorDataset

from .base import TensorDataModule

TABULAR_DIMS = {"power": 6, "gas": 8, "hepmass": 21, "miniboone": 43, "bsds300": 63}
"""Dimension of each MAF data set after preprocessing."""

TABULAR_FILES = {
    "power": ["power/data.npy"],
    "gas": ["gas/ethylene_CO.pickle"],
    "hepmass": ["hepmass/1000_train.csv", "hepmass/1000_test.csv"],
    "miniboone": ["miniboone/data.npy"],
    "bsds300": ["BSDS300/BSDS300.hdf5"],
}
"""Files each data set reads, relative to the unpacked MAF archive (data_dir)."""

TABULAR_BATCH = {"power": 10_000, "gas": 2_000, "hepmass": 2_000, "miniboone": 2_000, "bsds300": 300}
"""Published OT-Flow batch sizes (Onken et al. 2021), the default batch_size."""

MAF_ARCHIVE = "zenodo record 1161203 (https://zenodo.org/record/1161203, data.tar.gz, ~857 MB)"

Splits = tuple[np.ndarray, np.ndarray, np.ndarray]


def _split_tail(data: np.ndarray, frac: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """(head, tail) with the last int(frac * N) rows as the tail, as in the MAF code."""
    n_tail = int(frac * data.shape[0])
    return data[: data.shape[0] - n_tail], data[data.shape[0] - n_tail :]


def _train_val_test(data: np.ndarray) -> Splits:
    """MAF's split: test = last 10%, validation = last 10% of the rest, train = the remainder."""
    rest, test = _split_tail(data)
    train, val = _split_tail(rest)
    return train, val, test


def _standardise(splits: Splits, ref: np.ndarray, ddof: int) -> Splits:
    mu, s = ref.mean(axis=0), ref.std(axis=0, ddof=ddof)
    return tuple((a - mu) / s for a in splits)


def repeated_min_features(data: np.ndarray, max_count: int = 5) -> np.ndarray:
    """Indices of the columns the MAF code drops as having "too many re-occurring values".

    The MAF code (hepmass.py, and miniboone.py's recorded preprocessing) sorts each column's
    value counts by value and takes the FIRST count, i.e. how often the column's SMALLEST value
    occurs, and drops the column when that exceeds 5. This reproduces that criterion exactly
    (not the most frequent value), since the published dimensions (21, 43) depend on it.
    """
    col_min = data.min(axis=0)
    counts = (data == col_min[None, :]).sum(axis=0)
    return np.flatnonzero(counts > max_count)


def preprocess_power(data: np.ndarray) -> Splits:
    """POWER (UCI household electric power consumption) as in MAF's power.py.

    data: the archive's power/data.npy, (N, 8) columns [global active power, global reactive
    power, voltage, global intensity, sub-metering 1-3, time]. A RandomState(42) shuffles the
    rows; reactive power and intensity are dropped; uniform noise U[0, a) dequantises the
    columns (a = 0.001 active power, 0.01 voltage, 1 sub-metering, 0 time), drawn in MAF's
    order from the same RandomState; split 90/10 then 90/10 from the tail; standardised with
    the mean and (population) std of train + validation. Returns (train, val, test), 6 columns.
    """
    data = np.asarray(data, dtype=np.float64)
    if data.ndim != 2 or data.shape[1] != 8:
        raise ValueError(f"POWER: expected power/data.npy of shape (N, 8), got {data.shape}")
    rng = np.random.RandomState(42)
    data = data[rng.permutation(len(data))]  # same permutation and RNG state as rng.shuffle(data)
    data = np.delete(data, [1, 3], axis=1)
    n = len(data)
    voltage = 0.01 * rng.rand(n, 1)
    active = 0.001 * rng.rand(n, 1)
    metering = rng.rand(n, 3)
    data = data + np.hstack([active, voltage, metering, np.zeros((n, 1))])
    train, val, test = _train_val_test(data)
    return _standardise((train, val, test), np.vstack([train, val]), ddof=0)


def _correlated_counts(df: pd.DataFrame) -> np.ndarray:
    return (df.corr().to_numpy() > 0.98).sum(axis=1)


def preprocess_gas(df: pd.DataFrame) -> Splits:
    """GAS (UCI gas sensor array under dynamic gas mixtures, ethylene and CO) as in MAF's gas.py.

    df: the archive's gas/ethylene_CO.pickle, a DataFrame with columns Time, Meth, Eth and the
    16 sensors. Drops Meth, Eth and Time; then, while some column has a correlation > 0.98 with
    another, drops the first such column; standardises with the mean and std (ddof 1) of ALL
    rows (as MAF did); no shuffle; split 90/10 then 90/10 from the tail. 8 columns remain.
    """
    missing = [c for c in ("Meth", "Eth", "Time") if c not in df.columns]
    if missing:
        raise ValueError(f"GAS: the DataFrame lacks columns {missing}; it has {list(df.columns)}")
    df = df.drop(columns=["Meth", "Eth", "Time"]).astype(np.float64)
    counts = _correlated_counts(df)
    while np.any(counts > 1):
        df = df.drop(columns=df.columns[int(np.flatnonzero(counts > 1)[0])])
        counts = _correlated_counts(df)
    data = df.to_numpy()
    data = (data - data.mean(axis=0)) / data.std(axis=0, ddof=1)
    return _train_val_test(data)


def preprocess_hepmass(train_df: pd.DataFrame, test_df: pd.DataFrame) -> Splits:
    """HEPMASS (UCI, the "1000" set) as in MAF's hepmass.py.

    train_df / test_df: the archive's hepmass/1000_train.csv and 1000_test.csv as read by
    pandas (first column the label). Keeps the signal rows (label 1) and drops the label; the
    test file has one trailing column more than the training file, which MAF drops ("the data set
    is messed up"); standardises both with the training rows' mean and std (ddof 1); drops the
    columns whose smallest value occurs more than 5 times in the training rows (see
    repeated_min_features); the last 10% of the training rows become the validation set; no
    shuffle. 21 columns remain.
    """
    train = train_df[train_df.iloc[:, 0] == 1].iloc[:, 1:].to_numpy(dtype=np.float64)
    test = test_df[test_df.iloc[:, 0] == 1].iloc[:, 1:].to_numpy(dtype=np.float64)
    if test.shape[1] == train.shape[1] + 1:
        test = test[:, :-1]
    if test.shape[1] != train.shape[1]:
        raise ValueError(
            f"HEPMASS: 1000_train.csv has {train.shape[1]} feature columns and 1000_test.csv "
            f"{test.shape[1]}; expected the test file to have the same number or one more"
        )
    keep = np.setdiff1d(np.arange(train.shape[1]), repeated_min_features(train))
    train, test = train[:, keep], test[:, keep]
    mu, s = train.mean(axis=0), train.std(axis=0, ddof=1)
    train, test = (train - mu) / s, (test - mu) / s
    train, val = _split_tail(train)
    return train, val, test


def preprocess_miniboone(data: np.ndarray) -> Splits:
    """MINIBOONE (UCI MiniBooNE particle identification) as in MAF's miniboone.py.

    data: the archive's miniboone/data.npy (N, 43), already cleaned by MAF; the raw 50-column
    table (UCI's MiniBooNE_PID.txt without its first line) is accepted too and then cleaned the
    way MAF recorded: rows with a first feature below -100 (the -999 placeholders) are removed.
    Either way the columns whose smallest value occurs more than 5 times are dropped (a no-op on
    the archive's file). No shuffle; split 90/10 then 90/10 from the tail; standardised with
    the mean and (population) std of train + validation. 43 columns remain.
    """
    data = np.asarray(data, dtype=np.float64)
    if data.ndim != 2:
        raise ValueError(f"MINIBOONE: expected a 2-D array, got shape {data.shape}")
    if data.shape[1] == 50:
        data = data[~(data[:, 0] < -100)]
    data = np.delete(data, repeated_min_features(data), axis=1)
    train, val, test = _train_val_test(data)
    return _standardise((train, val, test), np.vstack([train, val]), ddof=0)


def load_bsds300(path: str | Path) -> Splits:
    """BSDS300 patches as in MAF's bsds300.py: the hdf5's train / validation / test datasets.

    The archive's file is already preprocessed (8x8 patches of BSDS300 images, dequantised,
    each patch minus its mean, last pixel dropped): 63 columns, used as they are.
    """
    with h5py.File(path, "r") as f:
        return tuple(np.asarray(f[k][:]) for k in ("train", "validation", "test"))


def _missing_archive_error(dataset: str, data_dir: Path, missing: list[str]) -> FileNotFoundError:
    where = data_dir.resolve()
    state = "does not exist" if not data_dir.is_dir() else f"lacks {', '.join(missing)}"
    layout = ", ".join(f"{where}/{f}" for f in TABULAR_FILES[dataset])
    return FileNotFoundError(
        f"{dataset.upper()}: looked in data_dir {where}, which {state}; {dataset.upper()} needs "
        f"{', '.join(TABULAR_FILES[dataset])} there. These are the files of the MAF archive, "
        f"{MAF_ARCHIVE}; ctdl does not download it (fetch it where there is network access and "
        f"copy it over). Unpack it (tar xzf data.tar.gz; it holds a folder data/ with power/, gas/, "
        f"hepmass/, miniboone/, BSDS300/) and point data_dir at that folder so that {layout} exist "
        f"(and likewise for the other data sets)."
    )


def load_tabular(dataset: str, data_dir: str | Path) -> Splits:
    """Read one MAF data set from data_dir and preprocess it; returns (train, val, test) float64/32."""
    dataset = _check_tabular(dataset)
    data_dir = Path(data_dir)
    paths = [data_dir / f for f in TABULAR_FILES[dataset]]
    missing = [f for f, p in zip(TABULAR_FILES[dataset], paths, strict=True) if not p.is_file()]
    if missing:
        raise _missing_archive_error(dataset, data_dir, missing)
    if dataset == "power":
        return preprocess_power(np.load(paths[0]))
    if dataset == "gas":
        try:
            df = pd.read_pickle(paths[0])
        except Exception as err:
            raise RuntimeError(
                f"GAS: pandas {pd.__version__} could not read {paths[0]} ({type(err).__name__}: {err}). "
                "The archive's pickle may come from an old pandas: re-save it once with pandas 1.x, e.g. "
                "`pip install 'pandas<2'` in a scratch environment and run `import pandas as pd; "
                f"df = pd.read_pickle('{paths[0]}'); df.to_pickle('{paths[0]}', protocol=4)`"
            ) from err
        return preprocess_gas(df)
    if dataset == "hepmass":
        return preprocess_hepmass(*(pd.read_csv(p, index_col=False) for p in paths))
    if dataset == "miniboone":
        return preprocess_miniboone(np.load(paths[0]))
    return load_bsds300(paths[0])


def _check_tabular(dataset: str) -> str:
    key = dataset.lower()
    if key not in TABULAR_DIMS:
        raise ValueError(f"unknown tabular data set {dataset!r}; known: {', '.join(TABULAR_DIMS)}")
    return key


class TabularDensity(TensorDataModule):
    """The MAF tabular density sets (POWER, GAS, HEPMASS, MINIBOONE, BSDS300) held in memory.

    Read from the unpacked MAF archive in ``data_dir`` with MAF's preprocessing and splits
    (module functions preprocess_power, preprocess_gas, preprocess_hepmass,
    preprocess_miniboone, load_bsds300). Batches are 1-tuples (x,) of float32 (b, dim).
    Published split sizes: POWER 1,659,917 / 184,435 / 204,928; GAS 852,174 / 94,685 / 105,206;
    HEPMASS 315,123 / 35,013 / 174,987; MINIBOONE 29,556 / 3,284 / 3,648; BSDS300 1,000,000 /
    50,000 / 250,000.
    """

    def __init__(
        self,
        dataset: str = "power",
        data_dir: str = "data/maf",
        batch_size: int | None = None,
        seed: int = 0,
        num_workers: int = 0,
        max_train: int | None = None,
    ) -> None:
        """Configure the data set.

        Args:
            dataset: power, gas, hepmass, miniboone or bsds300 (any case).
            data_dir: the unpacked MAF archive (the folder holding power/, gas/, ...).
            batch_size: mini-batch size of every loader; default the published OT-Flow one
                (POWER 10,000, BSDS300 300, the others 2,000).
            seed: training-loader shuffling and the max_train subsample (the preprocessing
                itself is MAF's, with its fixed RandomState(42) for POWER).
            num_workers: DataLoader worker processes.
            max_train: keep a seeded random subset of this many training rows (quick runs);
                validation and test are unchanged.
        """
        name = _check_tabular(dataset)
        super().__init__(
            batch_size=batch_size if batch_size is not None else TABULAR_BATCH[name],
            seed=seed,
            num_workers=num_workers,
        )
        self.save_hyperparameters()
        self.name = name
        self.data_dir = Path(data_dir)
        self.max_train = max_train
        self.dim = TABULAR_DIMS[self.name]
        self.input_shape = [self.dim]

    def prepare_data(self) -> None:
        """Fail early, with directions, when the archive's files are not in data_dir."""
        missing = [f for f in TABULAR_FILES[self.name] if not (self.data_dir / f).is_file()]
        if missing:
            raise _missing_archive_error(self.name, self.data_dir, missing)

    def make_splits(self) -> tuple[TensorDataset, TensorDataset, TensorDataset]:
        """Read and preprocess the files; optionally subsample the training rows."""
        train, val, test = load_tabular(self.name, self.data_dir)
        for split, a in (("train", train), ("val", val), ("test", test)):
            if a.ndim != 2 or a.shape[1] != self.dim:
                raise ValueError(
                    f"{self.name.upper()}: the {split} split from {self.data_dir} has shape {a.shape} "
                    f"after preprocessing, expected (N, {self.dim}); are these the MAF archive's files?"
                )
        if self.max_train is not None and self.max_train < len(train):
            rng = np.random.default_rng(self.seed)
            train = train[np.sort(rng.choice(len(train), size=self.max_train, replace=False))]

        def tensor(a: np.ndarray) -> TensorDataset:
            return TensorDataset(torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)))

        return tensor(train), tensor(val), tensor(test)
