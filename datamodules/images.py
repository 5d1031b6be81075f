"""Small image classification data sets: scikit-learn digits, MNIST, Fashion-MNIST.

digits ships with scikit-learn (1,797 images of 8x8, no download). MNIST and Fashion-MNIST
are read from the four IDX files of LeCun et al. / Xiao et al. 2017 (plain or .gz), either
directly in ``data_dir`` or in torchvision's layout ``data_dir/<MNIST|FashionMNIST>/raw``.
Debian's package ``dataset-fashion-mnist`` installs Fashion-MNIST in
/usr/share/datasets/fashion-mnist.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

from .base import Splits, TensorDataModule

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
IDX_MAGIC = {"images": 2051, "labels": 2049}  # 0x00000803: ubyte, 3 dims; 0x00000801: 1 dim

FASHION_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
DIGIT_CLASSES = [str(d) for d in range(10)]

# name -> (input shape, class names, default data_dir, torchvision subfolder)
IMAGE_DATASETS: dict[str, tuple[list[int], list[str], str | None, str | None]] = {
    "digits": ([1, 8, 8], DIGIT_CLASSES, None, None),
    "mnist": ([1, 28, 28], DIGIT_CLASSES, "data/mnist", "MNIST"),
    "fashion_mnist": (
        [1, 28, 28], FASHION_CLASSES, "/usr/share/datasets/fashion-mnist", "FashionMNIST"
    ),
}  # fmt: skip


def read_idx(path: str | Path, expected_magic: int | None = None) -> np.ndarray:
    """Read one IDX file (plain or gzip) into a uint8 array.

    Format (LeCun's MNIST page): big-endian int32 magic = 0x0000 | type 0x08 (ubyte) | ndim,
    then ndim big-endian int32 sizes, then the data in C order.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4:
        raise ValueError(f"{path}: too short to be an IDX file ({len(raw)} bytes)")
    magic = int.from_bytes(raw[:4], "big")
    ndim = raw[3]
    if raw[:2] != b"\x00\x00" or raw[2] != 0x08 or ndim == 0:
        raise ValueError(
            f"{path}: bad IDX magic number {magic} (0x{magic:08x}); expected 0x000008NN "
            "(unsigned bytes, NN dimensions), e.g. 2051 for images or 2049 for labels"
        )
    if expected_magic is not None and magic != expected_magic:
        raise ValueError(f"{path}: IDX magic number {magic}, expected {expected_magic}")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    if len(raw) - offset != int(np.prod(shape)):
        raise ValueError(
            f"{path}: header says shape {shape} ({int(np.prod(shape))} bytes), "
            f"file holds {len(raw) - offset} data bytes"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(shape)


def find_idx_files(data_dir: str | Path, subfolder: str | None = None) -> dict[str, Path]:
    """Locate the four IDX files (plain or .gz) in data_dir or data_dir/<subfolder>/raw.

    Returns key -> path for the keys of IDX_FILES; a missing key means the file was not found.
    """
    dirs = [Path(data_dir)] + ([Path(data_dir) / subfolder / "raw"] if subfolder else [])
    found: dict[str, Path] = {}
    for key, stem in IDX_FILES.items():
        for d in dirs:
            hits = [d / name for name in (stem, stem + ".gz") if (d / name).is_file()]
            if hits:
                found[key] = hits[0]
                break
    return found


def _missing_files_error(dataset: str, data_dir: Path, subfolder: str, missing: list[str]):
    how = [
        f"  - pass --data.download true (torchvision downloads into {data_dir}/{subfolder}/raw),",
        f"  - or copy the IDX files (plain or .gz) into {data_dir}.",
    ]
    if dataset == "fashion_mnist":
        how.insert(
            0,
            "  - sudo apt install dataset-fashion-mnist "
            "(files land in /usr/share/datasets/fashion-mnist, the default data_dir),",
        )
    return FileNotFoundError(
        f"{dataset}: IDX files not found in {data_dir} nor in {data_dir / subfolder / 'raw'}; "
        f"expected {', '.join(IDX_FILES.values())} (each plain or .gz), "
        f"missing: {', '.join(missing)}. To get them:\n" + "\n".join(how)
    )


def _lookup(name: str) -> tuple[list[int], list[str], str | None, str | None]:
    if name not in IMAGE_DATASETS:
        raise ValueError(f"unknown image data set {name!r}; known: {', '.join(IMAGE_DATASETS)}")
    return IMAGE_DATASETS[name]


class ImageClassification(TensorDataModule):
    """Image classification data (digits, MNIST, Fashion-MNIST) held in memory as tensors.

    Images are float32 in [0, 1] of shape (N, 1, H, W) (digits: values / 16); with
    ``normalize`` they are standardised with the training split's scalar mean and std.
    digits: seeded split train / n_val (180) / 360 of sklearn's 1,797 images. MNIST and
    Fashion-MNIST: a seeded n_val (5,000) of the 60k training images for validation, the
    official 10k for test.
    """

    def __init__(
        self,
        dataset: str = "digits",
        data_dir: str | None = None,
        download: bool = False,
        batch_size: int = 128,
        n_val: int | None = None,
        seed: int = 0,
        num_workers: int = 0,
        normalize: bool = True,
    ) -> None:
        """Configure the data set.

        Args:
            dataset: one of "digits", "mnist", "fashion_mnist".
            data_dir: folder with the IDX files (or torchvision's <root>); default
                /usr/share/datasets/fashion-mnist for fashion_mnist, data/mnist for mnist.
            download: fetch MNIST / Fashion-MNIST with torchvision into data_dir if missing.
            batch_size: mini-batch size of every loader.
            n_val: validation images taken from the training set (default 180 for digits,
                5000 otherwise).
            seed: the only source of randomness (split and training-loader shuffling).
            num_workers: DataLoader worker processes.
            normalize: standardise with the training split's mean and std.
        """
        super().__init__(batch_size=batch_size, seed=seed, num_workers=num_workers)
        self.save_hyperparameters()
        shape, names, default_dir, self._subfolder = _lookup(dataset)
        self.dataset = dataset
        self.data_dir = Path(data_dir if data_dir is not None else default_dir or ".")
        self.download = download
        self.n_val = n_val if n_val is not None else (180 if dataset == "digits" else 5000)
        self.normalize = normalize
        self.input_shape = list(shape)
        self.num_classes = len(names)
        self.class_names = list(names)
        self.mean, self.std = 0.0, 1.0

    def prepare_data(self) -> None:
        """Download MNIST / Fashion-MNIST with torchvision when asked and not present."""
        if self.dataset == "digits" or not self.download:
            return
        if len(find_idx_files(self.data_dir, self._subfolder)) == len(IDX_FILES):
            return
        from torchvision import datasets

        cls = datasets.MNIST if self.dataset == "mnist" else datasets.FashionMNIST
        for train in (True, False):
            cls(root=str(self.data_dir), train=train, download=True)

    def _load_idx(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        found = find_idx_files(self.data_dir, self._subfolder)
        missing = [IDX_FILES[k] for k in IDX_FILES if k not in found]
        if missing:
            raise _missing_files_error(self.dataset, self.data_dir, self._subfolder, missing)
        arr = {
            k: read_idx(p, IDX_MAGIC["images" if k.endswith("images") else "labels"])
            for k, p in found.items()
        }
        for split in ("train", "test"):
            n_img, n_lab = len(arr[f"{split}_images"]), len(arr[f"{split}_labels"])
            if n_img != n_lab:
                raise ValueError(f"{self.data_dir}: {n_img} {split} images but {n_lab} labels")

        def images(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(a.copy()).float().div_(255.0).unsqueeze(1)

        def labels(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(a.astype(np.int64))

        return (
            images(arr["train_images"]), labels(arr["train_labels"]),
            images(arr["test_images"]), labels(arr["test_labels"]),
        )  # fmt: skip

    def _load_digits(self) -> tuple[torch.Tensor, torch.Tensor]:
        from sklearn.datasets import load_digits

        d = load_digits()
        x = torch.from_numpy(d.data).float().div_(16.0).reshape(-1, 1, 8, 8)
        return x, torch.from_numpy(d.target.astype(np.int64))

    def make_splits(self) -> Splits:
        """Load the images and make the seeded train / validation (/ test for digits) split."""
        gen = torch.Generator().manual_seed(self.seed)
        if self.dataset == "digits":
            x, y = self._load_digits()
            n_test = 360
            if self.n_val + n_test >= len(x):
                raise ValueError(f"n_val={self.n_val} leaves no digits for training")
            perm = torch.randperm(len(x), generator=gen)
            test_idx, perm = perm[:n_test], perm[n_test:]
            x_test, y_test = x[test_idx], y[test_idx]
        else:
            x, y, x_test, y_test = self._load_idx()
            if self.n_val >= len(x):
                raise ValueError(f"n_val={self.n_val} must be < {len(x)} training images")
            perm = torch.randperm(len(x), generator=gen)
        val_idx, train_idx = perm[: self.n_val], perm[self.n_val :]
        x_train, y_train, x_val, y_val = x[train_idx], y[train_idx], x[val_idx], y[val_idx]
        if self.normalize:
            self.mean, self.std = x_train.mean().item(), x_train.std().item()
            for t in (x_train, x_val, x_test):  # fresh copies (advanced indexing): in place
                t.sub_(self.mean).div_(self.std)
        return TensorDataset(x_train, y_train), TensorDataset(x_val, y_val), TensorDataset(x_test, y_test)
