"""Density-estimation data: FFJORD's 2-D toys, the MAF tabular sets, scikit-learn's digits.

- 2-D toys (Grathwohl et al. 2019, "FFJORD", lib/toy_data.py): 8gaussians, checkerboard,
  swissroll, pinwheel, 2spirals, circles, moons, rings, in FFJORD's scales so that figures
  compare with the published ones. Unlike the original, every point is drawn from the numpy
  Generator that is passed in (FFJORD's 2spirals and checkerboard use the global numpy state,
  swissroll, circles and moons call scikit-learn without a random state), every generator
  returns exactly n points (pinwheel and 2spirals dropped n mod 5 and n mod 2), and rings,
  circles and moons draw uniform angles instead of a fixed lattice of angles (so the
  data are i.i.d. draws of a density; FFJORD's rings also built one ring's x from another
  ring's angles, and its 2spirals made the second spiral the mirror image of the first one's
  very points). The true density is available in closed form for 8gaussians and checkerboard.
- Tabular sets (Papamakarios, Pavlakou, Murray 2017, "Masked autoregressive flow for density
  estimation"): POWER, GAS, HEPMASS, MINIBOONE, BSDS300 read from the files of the MAF archive
  (zenodo record 1161203) with the MAF code's preprocessing and splits, so published negative
  log-likelihoods compare.
- digits: scikit-learn's 1,797 8x8 digits as a 64-d density, uniformly dequantised and
  standardised per pixel.
"""

from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import torch
from torch.utils.data import TensorDataset

from .base import TensorDataModule

# ============================================================================ 2-D toys

TOY_NAMES = ["8gaussians", "checkerboard", "swissroll", "pinwheel", "2spirals", "circles", "moons", "rings"]
TOYS_WITH_DENSITY = ["8gaussians", "checkerboard"]

_8G_SCALE = 1.414  # FFJORD divides by 1.414 (not sqrt 2); kept so the scale matches exactly
_8G_RADIUS = 4.0 / _8G_SCALE
_8G_STD = 0.5 / _8G_SCALE
_CHECKER_AREA = 32.0  # 8 squares of side 2


def _8g_centers() -> np.ndarray:
    """The 8 means (8, 2): radius 4 / 1.414 at angles 0, 45, ..., 315 degrees."""
    phi = np.arange(8) * np.pi / 4
    return _8G_RADIUS * np.stack([np.cos(phi), np.sin(phi)], axis=1)


def _split_counts(n: int, k: int) -> np.ndarray:
    """n split into k parts as equally as possible (the first n mod k get one more)."""
    return np.array([n // k + (i < n % k) for i in range(k)])


def _8gaussians(rng: np.random.Generator, n: int) -> np.ndarray:
    """Equal-weight mixture of N(mu_k, s^2 I): mu_k on the circle of radius 4/1.414, s = 0.5/1.414."""
    k = rng.integers(0, 8, size=n)
    return _8g_centers()[k] + _8G_STD * rng.standard_normal((n, 2))


def _checkerboard(rng: np.random.Generator, n: int) -> np.ndarray:
    """Uniform on the 8 squares of side 2 in [-4, 4]^2 where floor(x/2) + floor(y/2) is even.

    FFJORD: x1 ~ U[-2, 2), x2 ~ U[0, 1) - 2 B + (floor(x1) mod 2), B ~ Bernoulli(1/2), then times 2.
    """
    x1 = rng.uniform(-2.0, 2.0, size=n)
    x2 = rng.uniform(0.0, 1.0, size=n) - 2.0 * rng.integers(0, 2, size=n) + np.floor(x1) % 2
    return 2.0 * np.stack([x1, x2], axis=1)


def _swissroll(rng: np.random.Generator, n: int) -> np.ndarray:
    """scikit-learn's swiss roll (noise 1) in its (x, z) plane, divided by 5.

    t = 3 pi / 2 (1 + 2u), u ~ U[0, 1); point (t cos t, t sin t) + N(0, I), times 1/5.
    """
    t = 1.5 * np.pi * (1.0 + 2.0 * rng.uniform(size=n))
    roll = np.stack([t * np.cos(t), t * np.sin(t)], axis=1)
    return (roll + rng.standard_normal((n, 2))) / 5.0


def _pinwheel(rng: np.random.Generator, n: int) -> np.ndarray:
    """Five curved arms: f ~ N((1, 0), diag(0.3^2, 0.1^2)), turned by 2 pi k/5 + 0.25 exp(f_1), times 2.

    FFJORD's convention: the point is f R(a) with R(a) = [[cos a, -sin a], [sin a, cos a]]
    (a row vector times R), i.e. f turned by -a.
    """
    labels = np.repeat(np.arange(5), _split_counts(n, 5))
    f = rng.standard_normal((n, 2)) * np.array([0.3, 0.1])
    f[:, 0] += 1.0
    a = 2 * np.pi * labels / 5 + 0.25 * np.exp(f[:, 0])
    c, s = np.cos(a), np.sin(a)
    out = 2.0 * np.stack([f[:, 0] * c + f[:, 1] * s, -f[:, 0] * s + f[:, 1] * c], axis=1)
    return out[rng.permutation(n)]


def _2spirals(rng: np.random.Generator, n: int) -> np.ndarray:
    """Two point-symmetric spirals (each point on either one, i.i.d.).

    r = 3 pi sqrt(u), u ~ U[0, 1); p = (-r cos r, r sin r) + U[0, 0.5)^2, negated for the second
    spiral; x = p / 3 + N(0, 0.1^2 I).
    """
    n1 = n - n // 2
    r = np.sqrt(rng.uniform(size=(n, 1))) * 3 * np.pi
    arm = np.concatenate([-np.cos(r) * r, np.sin(r) * r], axis=1) + 0.5 * rng.uniform(size=(n, 2))
    arm[n1:] *= -1.0  # the second spiral is the first one turned by pi
    x = arm / 3.0 + 0.1 * rng.standard_normal((n, 2))
    return x[rng.permutation(n)]


def _circles(rng: np.random.Generator, n: int) -> np.ndarray:
    """scikit-learn's circles (factor 0.5, noise 0.08) times 3: radii 3 and 1.5, noise std 0.24.

    n // 2 points on the outer circle, the rest on the inner one; angles uniform.
    """
    r = np.where(np.arange(n) < n // 2, 1.0, 0.5)
    phi = rng.uniform(0.0, 2 * np.pi, size=n)
    x = np.stack([r * np.cos(phi), r * np.sin(phi)], axis=1) + 0.08 * rng.standard_normal((n, 2))
    return 3.0 * x[rng.permutation(n)]


def _moons(rng: np.random.Generator, n: int) -> np.ndarray:
    """scikit-learn's moons (noise 0.1) times 2 minus (1, 0.2).

    Upper moon (cos t, sin t), lower moon (1 - cos t, 1/2 - sin t), t ~ U[0, pi]; n // 2 upper.
    """
    t = rng.uniform(0.0, np.pi, size=n)
    upper = np.arange(n) < n // 2
    x = np.where(upper, np.cos(t), 1.0 - np.cos(t))
    y = np.where(upper, np.sin(t), 0.5 - np.sin(t))
    pts = np.stack([x, y], axis=1) + 0.1 * rng.standard_normal((n, 2))
    return (2.0 * pts - np.array([1.0, 0.2]))[rng.permutation(n)]


def _rings(rng: np.random.Generator, n: int) -> np.ndarray:
    """Four concentric rings of radii 3, 2.25, 1.5, 0.75, equally many points each, + N(0, 0.08^2 I).

    FFJORD gives the innermost ring the remainder of n / 4; so do we. Angles are uniform.
    """
    counts = np.array([n // 4] * 3 + [n - 3 * (n // 4)])
    r = np.repeat(3.0 * np.array([1.0, 0.75, 0.5, 0.25]), counts)
    phi = rng.uniform(0.0, 2 * np.pi, size=n)
    x = np.stack([r * np.cos(phi), r * np.sin(phi)], axis=1)[rng.permutation(n)]
    return x + 0.08 * rng.standard_normal((n, 2))


_TOY_SAMPLERS = {
    "8gaussians": _8gaussians,
    "checkerboard": _checkerboard,
    "swissroll": _swissroll,
    "pinwheel": _pinwheel,
    "2spirals": _2spirals,
    "circles": _circles,
    "moons": _moons,
    "rings": _rings,
}


def _check_toy(name: str) -> None:
    if name not in _TOY_SAMPLERS:
        raise ValueError(f"unknown 2-D density {name!r}; known: {', '.join(TOY_NAMES)}")


def make_toy_density(name: str, n: int, rng: np.random.Generator | int) -> np.ndarray:
    """Draw n points (n, 2) float64 of one of FFJORD's 2-D toy densities.

    Every random number comes from ``rng`` (a numpy Generator, or an int seed for
    ``numpy.random.default_rng``); the result depends on nothing else. Scales are FFJORD's.
    """
    _check_toy(name)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(rng)
    return np.ascontiguousarray(_TOY_SAMPLERS[name](rng, int(n)), dtype=np.float64)


def toy_log_density(name: str, x: torch.Tensor) -> torch.Tensor:
    """True natural-log density of a 2-D toy at x (n, 2); returns (n,) in x's dtype.

    8gaussians: log p(x) = logsumexp_k(-|x - mu_k|^2 / (2 s^2)) - log 8 - log(2 pi s^2),
    mu_k = (4/1.414)(cos k pi/4, sin k pi/4), s = 0.5/1.414.
    checkerboard: log(1/32) on the 8 squares {floor(x/2) + floor(y/2) even} inside [-4, 4)^2,
    -inf elsewhere. Other toys: NotImplementedError.
    """
    _check_toy(name)
    if name not in TOYS_WITH_DENSITY:
        raise NotImplementedError(
            f"no closed-form density for {name!r}; it is known for: {', '.join(TOYS_WITH_DENSITY)}"
        )
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"x must have shape (n, 2), got {tuple(x.shape)}")
    if not x.is_floating_point():
        x = x.double()
    if name == "8gaussians":
        mu = torch.as_tensor(_8g_centers(), dtype=x.dtype, device=x.device)
        sq = (x[:, None, :] - mu[None]).pow(2).sum(-1)
        var = _8G_STD**2
        return torch.logsumexp(-sq / (2 * var), dim=1) - math.log(8.0) - math.log(2 * math.pi * var)
    cell = torch.floor(x / 2.0)
    inside = ((x >= -4.0) & (x < 4.0)).all(dim=1) & (cell.sum(dim=1) % 2 == 0)
    out = torch.full(x.shape[:1], -math.inf, dtype=x.dtype, device=x.device)
    return out.masked_fill(inside, -math.log(_CHECKER_AREA))


class Toy2DDensity(TensorDataModule):
    """FFJORD's 2-D toy densities held in memory: batches are 1-tuples (x,) of float32 (b, 2).

    Train, validation and test come from independent child streams of ``SeedSequence(seed)``.
    ``log_density(x)`` is the true log density where it is known (8gaussians, checkerboard).
    """

    def __init__(
        self,
        dataset: str = "8gaussians",
        n_train: int = 100_000,
        n_val: int = 10_000,
        n_test: int = 10_000,
        batch_size: int = 4096,
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        """Configure the data set.

        Args:
            dataset: one of 8gaussians, checkerboard, swissroll, pinwheel, 2spirals, circles,
                moons, rings.
            n_train: number of training points.
            n_val: number of validation points.
            n_test: number of test points.
            batch_size: mini-batch size of every loader.
            seed: the only source of randomness (data and training-loader shuffling).
            num_workers: DataLoader worker processes.
        """
        super().__init__()
        _check_toy(dataset)
        self.save_hyperparameters()
        self.name = dataset
        self.n_train, self.n_val, self.n_test = n_train, n_val, n_test
        self.batch_size = batch_size
        self.seed = seed
        self.num_workers = num_workers
        self.dim = 2
        self.input_shape = [2]
        self.train_dataset: TensorDataset | None = None
        self.val_dataset: TensorDataset | None = None
        self.test_dataset: TensorDataset | None = None

    @property
    def has_log_density(self) -> bool:
        """Whether the true density of this toy is known in closed form."""
        return self.name in TOYS_WITH_DENSITY

    def log_density(self, x: torch.Tensor) -> torch.Tensor:
        """True log density at x (n, 2), shape (n,); see toy_log_density."""
        return toy_log_density(self.name, x)

    def sample(self, n: int, stream: int = 0) -> torch.Tensor:
        """n fresh float32 points (n, 2) from child stream 3 + stream of SeedSequence(seed).

        The splits use child streams 0, 1, 2, so these points are independent of them.
        """
        if stream < 0:
            raise ValueError(f"stream must be >= 0, got {stream}")
        seq = np.random.SeedSequence(self.seed, spawn_key=(3 + stream,))
        return torch.from_numpy(make_toy_density(self.name, n, np.random.default_rng(seq))).float()

    def setup(self, stage: str | None = None) -> None:
        """Draw the three splits (once) from independent streams of one seed."""
        if self.train_dataset is not None:
            return
        streams = np.random.SeedSequence(self.seed).spawn(3)
        sizes = (self.n_train, self.n_val, self.n_test)
        train, val, test = (
            TensorDataset(torch.from_numpy(make_toy_density(self.name, n, np.random.default_rng(s))).float())
            for n, s in zip(sizes, streams, strict=True)
        )
        self.train_dataset, self.val_dataset, self.test_dataset = train, val, test


# ============================================================================ MAF tabular

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
                f"GAS: pandas {pd.__version__} could not read {paths[0]} ({type(err).__name__}: {err})"
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
        super().__init__()
        self.save_hyperparameters()
        self.name = _check_tabular(dataset)
        self.data_dir = Path(data_dir)
        self.batch_size = batch_size if batch_size is not None else TABULAR_BATCH[self.name]
        self.seed = seed
        self.num_workers = num_workers
        self.max_train = max_train
        self.dim = TABULAR_DIMS[self.name]
        self.input_shape = [self.dim]
        self.train_dataset: TensorDataset | None = None
        self.val_dataset: TensorDataset | None = None
        self.test_dataset: TensorDataset | None = None

    def prepare_data(self) -> None:
        """Fail early, with directions, when the archive's files are not in data_dir."""
        missing = [f for f in TABULAR_FILES[self.name] if not (self.data_dir / f).is_file()]
        if missing:
            raise _missing_archive_error(self.name, self.data_dir, missing)

    def setup(self, stage: str | None = None) -> None:
        """Read and preprocess the files (once); optionally subsample the training rows."""
        if self.train_dataset is not None:
            return
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

        self.train_dataset, self.val_dataset, self.test_dataset = tensor(train), tensor(val), tensor(test)


# ============================================================================ digits


class DigitsDensity(TensorDataModule):
    """scikit-learn's 8x8 digits as a 64-d density: dequantised and standardised per pixel.

    u = (v + e) / 17 with v in {0..16} and e ~ U[0, 1) drawn once from the seed (so u is a
    continuous variable in [0, 1)), then x = (u - mean) / std with the training split's
    per-pixel mean and std (std at least 1e-3). A seeded permutation splits the 1,797 images
    into train / n_val / n_test. ``mean`` and ``std`` (64,) map samples back:
    u = x * std + mean; a density in x converts to one in u by log p_u = log p_x - sum(log std)
    (``log_det_standardise`` holds -sum(log std)).
    """

    def __init__(
        self,
        batch_size: int = 256,
        n_val: int = 180,
        n_test: int = 360,
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        """Configure the data set.

        Args:
            batch_size: mini-batch size of every loader.
            n_val: validation images.
            n_test: test images.
            seed: the only source of randomness (split, dequantisation noise, shuffling).
            num_workers: DataLoader worker processes.
        """
        super().__init__()
        self.save_hyperparameters()
        if n_val < 0 or n_test < 0 or n_val + n_test >= 1797:
            raise ValueError(f"n_val={n_val} and n_test={n_test} leave no digits for training (1,797 in all)")
        self.name = "digits"
        self.batch_size = batch_size
        self.n_val, self.n_test = n_val, n_test
        self.seed = seed
        self.num_workers = num_workers
        self.dim = 64
        self.input_shape = [64]
        self.mean: torch.Tensor | None = None
        self.std: torch.Tensor | None = None
        self.log_det_standardise: float | None = None
        self.train_dataset: TensorDataset | None = None
        self.val_dataset: TensorDataset | None = None
        self.test_dataset: TensorDataset | None = None

    def to_unit(self, x: torch.Tensor) -> torch.Tensor:
        """Map standardised points (n, 64) back to the dequantised pixel scale [0, 1) (not clipped)."""
        if self.mean is None or self.std is None:
            raise RuntimeError("call setup() before to_unit()")
        return x * self.std.to(x) + self.mean.to(x)

    def setup(self, stage: str | None = None) -> None:
        """Load, dequantise, split and standardise (once)."""
        if self.train_dataset is not None:
            return
        from sklearn.datasets import load_digits

        v = load_digits().data.astype(np.float64)  # (1797, 64), values 0..16
        split_seq, noise_seq = np.random.SeedSequence(self.seed).spawn(2)
        u = (v + np.random.default_rng(noise_seq).uniform(size=v.shape)) / 17.0
        perm = np.random.default_rng(split_seq).permutation(len(u))
        test_idx, val_idx = perm[: self.n_test], perm[self.n_test : self.n_test + self.n_val]
        train_idx = perm[self.n_test + self.n_val :]
        mean = u[train_idx].mean(axis=0)
        std = np.maximum(u[train_idx].std(axis=0), 1e-3)
        self.mean = torch.from_numpy(mean).float()
        self.std = torch.from_numpy(std).float()
        self.log_det_standardise = float(-np.log(std).sum())

        def tensor(idx: np.ndarray) -> TensorDataset:
            return TensorDataset(torch.from_numpy((u[idx] - mean) / std).float())

        self.train_dataset, self.val_dataset, self.test_dataset = (
            tensor(train_idx), tensor(val_idx), tensor(test_idx),
        )  # fmt: skip
