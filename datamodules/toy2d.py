"""Two-dimensional toy classification data sets (peaks, ellipses, moons, swiss roll).

The 2-D problems used to show how continuous ResNets bend the plane (Haber & Ruthotto 2017,
"Stable architectures for deep neural networks"; Ruthotto & Haber 2020, "Deep neural
networks motivated by partial differential equations"). Every sample depends only on the
seed: train, validation and test come from three independent child streams of
``numpy.random.SeedSequence(seed)``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import numpy as np
import torch
from torch.utils.data import TensorDataset

from .base import Splits, TensorDataModule

Sampler = Callable[[np.random.Generator, list[int], float], list[np.ndarray]]


def peaks(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """MATLAB's peaks function.

    z = 3(1-x)^2 exp(-x^2-(y+1)^2) - 10(x/5 - x^3 - y^5) exp(-x^2-y^2) - 1/3 exp(-(x+1)^2-y^2)
    """
    return (
        3 * (1 - x) ** 2 * np.exp(-(x**2) - (y + 1) ** 2)
        - 10 * (x / 5 - x**3 - y**5) * np.exp(-(x**2) - y**2)
        - np.exp(-((x + 1) ** 2) - y**2) / 3
    )


@cache
def peaks_range(grid: int = 1201) -> tuple[float, float]:
    """Minimum and maximum of peaks over [-3, 3]^2, taken on a grid x grid mesh."""
    s = np.linspace(-3.0, 3.0, grid)
    z = peaks(*np.meshgrid(s, s))
    return float(z.min()), float(z.max())


def peaks_labels(xy: np.ndarray, n_classes: int = 5) -> np.ndarray:
    """Class of each point (N, 2): index of its equal-width band of peaks between min and max."""
    lo, hi = peaks_range()
    z = peaks(xy[:, 0], xy[:, 1])
    band = np.floor((z - lo) / (hi - lo) * n_classes)
    return np.clip(band, 0, n_classes - 1).astype(np.int64)


def _peaks(rng: np.random.Generator, counts: list[int], noise: float) -> list[np.ndarray]:
    """Uniform points on [-3, 3]^2 by rejection: keep the first counts[k] that fall in band k."""
    k = len(counts)
    kept: list[list[np.ndarray]] = [[] for _ in range(k)]
    have = [0] * k
    batch = max(10_000, 20 * sum(counts))
    while any(h < c for h, c in zip(have, counts, strict=True)):
        xy = rng.uniform(-3.0, 3.0, size=(batch, 2))
        lab = peaks_labels(xy, k)
        for c in range(k):
            pts = xy[lab == c][: counts[c] - have[c]]
            kept[c].append(pts)
            have[c] += len(pts)
    return [np.concatenate(p)[: counts[c]] for c, p in enumerate(kept)]


def _ellipses(rng: np.random.Generator, counts: list[int], noise: float) -> list[np.ndarray]:
    """Radius U[c, c+1] for class c, uniform angle, second coordinate times 0.4."""
    out = []
    for c, n in enumerate(counts):
        r = rng.uniform(c, c + 1.0, size=n)
        phi = rng.uniform(0.0, 2 * np.pi, size=n)
        out.append(np.stack([r * np.cos(phi), 0.4 * r * np.sin(phi)], axis=1))
    return out


def _moons(rng: np.random.Generator, counts: list[int], noise: float) -> list[np.ndarray]:
    """Upper half circle (cos t, sin t) and lower one (1 - cos t, 1/2 - sin t), t ~ U[0, pi]."""
    t0 = rng.uniform(0.0, np.pi, size=counts[0])
    t1 = rng.uniform(0.0, np.pi, size=counts[1])
    upper = np.stack([np.cos(t0), np.sin(t0)], axis=1)
    lower = np.stack([1.0 - np.cos(t1), 0.5 - np.sin(t1)], axis=1)
    return [p + noise * rng.standard_normal(p.shape) for p in (upper, lower)]


def _swissroll(rng: np.random.Generator, counts: list[int], noise: float) -> list[np.ndarray]:
    """Two interleaved spiral arms t (cos t, sin t) / 3 pi, the second rotated by pi.

    t = pi/2 + 5 pi/2 sqrt(u), u ~ U[0, 1] (sqrt gives uniform density along the arm).
    """
    out = []
    for c, n in enumerate(counts):
        t = np.pi / 2 + 2.5 * np.pi * np.sqrt(rng.uniform(0.0, 1.0, size=n))
        arm = (t / (3 * np.pi))[:, None] * np.stack([np.cos(t), np.sin(t)], axis=1)
        arm = -arm if c == 1 else arm
        out.append(arm + noise * rng.standard_normal(arm.shape))
    return out


TOY2D: dict[str, tuple[list[str], Sampler]] = {
    "peaks": ([f"band {k}" for k in range(5)], _peaks),
    "ellipses": (["inner", "outer"], _ellipses),
    "moons": (["upper", "lower"], _moons),
    "swissroll": (["arm 0", "arm 1"], _swissroll),
}
"""name -> (class names, sampler(rng, points per class, noise) -> list of (n_c, 2) arrays)."""


def _lookup(name: str) -> tuple[list[str], Sampler]:
    if name not in TOY2D:
        raise ValueError(f"unknown toy data set {name!r}; known: {', '.join(TOY2D)}")
    return TOY2D[name]


def make_toy2d(
    name: str, n: int, seed: int | np.random.Generator, noise: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw n labelled points of a 2-D toy set; returns x (n, 2) float32 and y (n,) int64.

    The n points are split as equally as possible over the classes (the first n mod K
    classes get one more) and returned in a random order. ``seed`` is an int or a numpy
    Generator; the result depends on nothing else.
    """
    class_names, sampler = _lookup(name)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    k = len(class_names)
    counts = [n // k + (c < n % k) for c in range(k)]
    parts = sampler(rng, counts, noise)
    x = np.concatenate(parts).reshape(-1, 2)
    y = np.concatenate([np.full(m, c, dtype=np.int64) for c, m in enumerate(counts)])
    perm = rng.permutation(n)
    return torch.from_numpy(x[perm]).float(), torch.from_numpy(y[perm])


class Toy2DClassification(TensorDataModule):
    """2-D toy classification data (peaks, ellipses, moons, swissroll) held in memory.

    Peaks: MATLAB's peaks on [-3, 3]^2 in 5 equal-width bands of z; ellipses: radius
    U[0, 1] vs U[1, 2], second coordinate times 0.4; moons and swissroll: two classes with
    Gaussian noise of standard deviation ``noise``. Train, validation and test come from
    independent child streams of ``SeedSequence(seed)``.
    """

    def __init__(
        self,
        dataset: str = "peaks",
        n_train: int = 2000,
        n_val: int = 1000,
        n_test: int = 1000,
        batch_size: int = 128,
        noise: float = 0.0,
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        """Configure the data set.

        Args:
            dataset: one of "peaks", "ellipses", "moons", "swissroll".
            n_train: number of training points (split equally over the classes).
            n_val: number of validation points.
            n_test: number of test points.
            batch_size: mini-batch size of every loader.
            noise: standard deviation of Gaussian noise (moons and swissroll only).
            seed: the only source of randomness (data and training-loader shuffling).
            num_workers: DataLoader worker processes.
        """
        super().__init__(batch_size=batch_size, seed=seed, num_workers=num_workers)
        self.save_hyperparameters()
        self.class_names = list(_lookup(dataset)[0])
        self.dataset = dataset
        self.n_train, self.n_val, self.n_test = n_train, n_val, n_test
        self.noise = noise
        self.dim = 2
        self.input_shape = [2]
        self.num_classes = len(self.class_names)

    def make_splits(self) -> Splits:
        """The three splits, each from its own child stream of the seed."""
        sizes = (self.n_train, self.n_val, self.n_test)
        return tuple(
            TensorDataset(*make_toy2d(self.dataset, n, rng, self.noise))
            for n, rng in zip(sizes, self.streams(3), strict=True)
        )
