"""Tests of the toy 2-D and image datamodules: determinism, labels, IDX parsing, errors."""

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from ctdl.datamodules import ImageClassification, Toy2DClassification, make_toy2d
from ctdl.datamodules.base import TensorDataModule
from ctdl.datamodules.images import read_idx
from ctdl.protocols import SplitData

TOYS = ["peaks", "ellipses", "moons", "swissroll"]
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


# ----------------------------------------------------------------------------- toy 2-D


@pytest.mark.parametrize("name", TOYS)
def test_toy_shapes_dtypes_and_balance(name):
    x, y = make_toy2d(name, 103, seed=1, noise=0.1)
    k = 5 if name == "peaks" else 2
    assert x.shape == (103, 2) and x.dtype == torch.float32
    assert y.shape == (103,) and y.dtype == torch.int64
    counts = torch.bincount(y, minlength=k)
    assert len(counts) == k and counts.max() - counts.min() <= 1
    assert torch.isfinite(x).all()


@pytest.mark.parametrize("name", TOYS)
def test_toy_same_seed_same_tensors_other_seed_differs(name):
    x1, y1 = make_toy2d(name, 200, seed=7, noise=0.05)
    x2, y2 = make_toy2d(name, 200, seed=7, noise=0.05)
    x3, _ = make_toy2d(name, 200, seed=8, noise=0.05)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.allclose(x1, x3)


def _matlab_peaks(x, y):
    return (
        3 * (1 - x) ** 2 * np.exp(-(x**2) - (y + 1) ** 2)
        - 10 * (x / 5 - x**3 - y**5) * np.exp(-(x**2) - y**2)
        - 1 / 3 * np.exp(-((x + 1) ** 2) - y**2)
    )


def test_peaks_labels_are_bands_of_peaks():
    x, y = make_toy2d("peaks", 500, seed=3)
    assert torch.equal(torch.bincount(y), torch.full((5,), 100))
    assert x.abs().max() <= 3.0
    pts = x.double().numpy()
    z = _matlab_peaks(pts[:, 0], pts[:, 1])
    zmin, zmax = -6.5511, 8.1062  # extrema of peaks on [-3, 3]^2
    edges = zmin + (zmax - zmin) * np.arange(6) / 5
    expected = np.clip(np.searchsorted(edges, z, side="right") - 1, 0, 4)
    far_from_edge = np.abs(z[:, None] - edges[None, 1:5]).min(axis=1) > 1e-3
    assert far_from_edge.mean() > 0.95
    np.testing.assert_array_equal(y.numpy()[far_from_edge], expected[far_from_edge])


def test_ellipses_radii_by_class():
    x, y = make_toy2d("ellipses", 400, seed=0)
    r = torch.sqrt(x[:, 0] ** 2 + (x[:, 1] / 0.4) ** 2)
    assert (r[y == 0] <= 1 + 1e-5).all() and (r[y == 1] >= 1 - 1e-5).all()
    assert (r[y == 1] <= 2 + 1e-5).all()


def test_noise_changes_moons():
    x0, _ = make_toy2d("moons", 300, seed=0, noise=0.0)
    x1, _ = make_toy2d("moons", 300, seed=0, noise=0.2)
    r0 = torch.sqrt(x0[:, 0] ** 2 + x0[:, 1] ** 2)
    assert (r0 <= 2.3).all() and not torch.allclose(x0, x1)


def test_unknown_toy_name_lists_known_ones():
    with pytest.raises(ValueError) as err:
        make_toy2d("checkerboard", 10, seed=0)
    assert all(name in str(err.value) for name in TOYS)
    with pytest.raises(ValueError, match="peaks"):
        Toy2DClassification(dataset="rings")


def test_toy_datamodule_splits_and_loaders():
    dm = Toy2DClassification("ellipses", n_train=60, n_val=40, n_test=20, batch_size=16, seed=5)
    assert dm.input_shape == [2] and dm.num_classes == 2 and len(dm.class_names) == 2
    dm.setup("fit")
    sizes = [len(d) for d in (dm.train_dataset, dm.val_dataset, dm.test_dataset)]
    assert sizes == [60, 40, 20]
    # disjoint streams: splits are not copies of each other
    assert not torch.allclose(dm.train_dataset.tensors[0][:20], dm.val_dataset.tensors[0][:20])
    assert not torch.allclose(dm.val_dataset.tensors[0][:20], dm.test_dataset.tensors[0])
    xb, yb = next(iter(dm.train_dataloader()))
    assert xb.shape == (16, 2) and yb.shape == (16,)
    # val / test not shuffled, predict = test
    xv, _ = next(iter(dm.val_dataloader()))
    assert torch.equal(xv, dm.val_dataset.tensors[0][:16])
    xp, _ = next(iter(dm.predict_dataloader()))
    assert torch.equal(xp, dm.test_dataset.tensors[0][:16])

    dm2 = Toy2DClassification("ellipses", n_train=60, n_val=40, n_test=20, batch_size=16, seed=5)
    dm2.setup("fit")
    for a, b in zip(
        (dm.train_dataset, dm.val_dataset, dm.test_dataset),
        (dm2.train_dataset, dm2.val_dataset, dm2.test_dataset),
        strict=True,
    ):
        assert torch.equal(a.tensors[0], b.tensors[0]) and torch.equal(a.tensors[1], b.tensors[1])
    assert torch.equal(next(iter(dm2.train_dataloader()))[0], xb)

    dm3 = Toy2DClassification("ellipses", n_train=60, n_val=40, n_test=20, seed=6)
    dm3.setup("fit")
    assert not torch.allclose(dm3.train_dataset.tensors[0], dm.train_dataset.tensors[0])


def test_the_base_owns_loader_settings_and_makes_the_splits_once():
    class Counting(TensorDataModule):
        calls = 0

        def make_splits(self):
            Counting.calls += 1
            sizes = (10, 4, 3)
            return tuple(
                TensorDataset(torch.from_numpy(rng.normal(size=(n, 2))))
                for n, rng in zip(sizes, self.streams(3), strict=True)
            )

    dm = Counting(batch_size=4, seed=2, num_workers=0)
    assert isinstance(dm, SplitData) and (dm.batch_size, dm.seed, dm.num_workers) == (4, 2, 0)
    with pytest.raises(RuntimeError, match="call setup"):
        dm.train_dataloader()
    dm.setup("fit")
    first = dm.train_dataset
    dm.setup("test")
    assert Counting.calls == 1 and dm.train_dataset is first
    assert [len(b[0]) for b in dm.train_dataloader()] == [4, 4, 2]
    assert torch.equal(next(iter(dm.predict_dataloader()))[0], dm.test_dataset.tensors[0])

    class Missing(TensorDataModule):
        pass

    with pytest.raises(NotImplementedError, match=r"Missing must define make_splits\(\)"):
        Missing(batch_size=2).setup()
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        Counting(batch_size=0)


# ----------------------------------------------------------------------------- images


def test_digits_shapes_and_splits():
    dm = ImageClassification("digits", batch_size=32, seed=0)
    assert dm.input_shape == [1, 8, 8] and dm.num_classes == 10
    assert dm.class_names == [str(d) for d in range(10)]
    dm.setup("fit")
    sizes = [len(d) for d in (dm.train_dataset, dm.val_dataset, dm.test_dataset)]
    assert sizes == [1797 - 180 - 360, 180, 360]
    x, y = dm.train_dataset.tensors
    assert x.shape == (1257, 1, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert abs(x.mean().item()) < 1e-4 and abs(x.std().item() - 1) < 1e-4
    xb, yb = next(iter(dm.train_dataloader()))
    assert xb.shape == (32, 1, 8, 8) and yb.min() >= 0 and yb.max() <= 9


def test_digits_seeded_split_and_raw_range():
    a = ImageClassification("digits", n_val=100, seed=1, normalize=False)
    b = ImageClassification("digits", n_val=100, seed=1, normalize=False)
    c = ImageClassification("digits", n_val=100, seed=2, normalize=False)
    for dm in (a, b, c):
        dm.setup("fit")
    assert len(a.val_dataset) == 100 and len(a.train_dataset) == 1797 - 100 - 360
    assert torch.equal(a.val_dataset.tensors[0], b.val_dataset.tensors[0])
    assert not torch.equal(a.val_dataset.tensors[0], c.val_dataset.tensors[0])
    x = a.train_dataset.tensors[0]
    assert x.min() >= 0 and x.max() <= 1 and x.max() == 1


def test_unknown_image_dataset_lists_known_ones():
    with pytest.raises(ValueError) as err:
        ImageClassification("cifar10")
    assert all(n in str(err.value) for n in ("digits", "mnist", "fashion_mnist"))


def _idx_bytes(magic: int, arr: np.ndarray) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(n.to_bytes(4, "big") for n in arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def _write_idx(folder: Path, compress: bool, n_train: int = 12, n_test: int = 5, seed: int = 0):
    rng = np.random.default_rng(seed)
    data = {
        "train-images-idx3-ubyte": (2051, rng.integers(0, 256, (n_train, 28, 28))),
        "train-labels-idx1-ubyte": (2049, rng.integers(0, 10, n_train)),
        "t10k-images-idx3-ubyte": (2051, rng.integers(0, 256, (n_test, 28, 28))),
        "t10k-labels-idx1-ubyte": (2049, rng.integers(0, 10, n_test)),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, (magic, arr) in data.items():
        raw = _idx_bytes(magic, arr)
        if compress:
            (folder / (name + ".gz")).write_bytes(gzip.compress(raw))
        else:
            (folder / name).write_bytes(raw)
    return {name: arr for name, (_, arr) in data.items()}


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_plain_and_gz(tmp_path, compress):
    data = _write_idx(tmp_path, compress)
    suffix = ".gz" if compress else ""
    images = read_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", expected_magic=2051)
    labels = read_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}")
    assert images.shape == (12, 28, 28) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, data["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(labels, data["t10k-labels-idx1-ubyte"])


def test_read_idx_wrong_magic(tmp_path):
    labels = np.arange(5)
    (tmp_path / "a").write_bytes(_idx_bytes(2051, labels.reshape(5, 1, 1)))
    with pytest.raises(ValueError, match="magic number 2051, expected 2049"):
        read_idx(tmp_path / "a", expected_magic=2049)
    (tmp_path / "b").write_bytes(b"\x1f\x8b\x08\x00" + bytes(20))
    with pytest.raises(ValueError, match="bad IDX magic number"):
        read_idx(tmp_path / "b")
    (tmp_path / "c").write_bytes(_idx_bytes(2049, labels)[:-1])
    with pytest.raises(ValueError, match="shape"):
        read_idx(tmp_path / "c")


@pytest.mark.parametrize(
    ("dataset", "sub", "compress"),
    [
        ("mnist", "", False),
        ("mnist", "MNIST/raw", True),
        ("fashion_mnist", "FashionMNIST/raw", False),
    ],
)
def test_idx_datamodule_layouts(tmp_path, dataset, sub, compress):
    data = _write_idx(tmp_path / sub if sub else tmp_path, compress)
    dm = ImageClassification(dataset, data_dir=str(tmp_path), n_val=3, normalize=False, seed=0)
    assert dm.input_shape == [1, 28, 28] and dm.num_classes == 10
    dm.setup("fit")
    assert [len(dm.train_dataset), len(dm.val_dataset), len(dm.test_dataset)] == [9, 3, 5]
    x_test, y_test = dm.test_dataset.tensors
    assert x_test.shape == (5, 1, 28, 28) and x_test.dtype == torch.float32
    expected = torch.from_numpy(data["t10k-images-idx3-ubyte"]).float() / 255
    torch.testing.assert_close(x_test[:, 0], expected)
    assert y_test.tolist() == data["t10k-labels-idx1-ubyte"].tolist()
    # train + val is a permutation of the 12 training images
    train_x = torch.cat([dm.train_dataset.tensors[0], dm.val_dataset.tensors[0]])[:, 0]
    all_x = torch.from_numpy(data["train-images-idx3-ubyte"]).float() / 255
    assert sorted(train_x.sum((1, 2)).tolist()) == pytest.approx(sorted(all_x.sum((1, 2)).tolist()))

    normed = ImageClassification(dataset, data_dir=str(tmp_path), n_val=3, seed=0)
    normed.setup("fit")
    xt = normed.train_dataset.tensors[0]
    assert abs(xt.mean().item()) < 1e-5 and abs(xt.std().item() - 1) < 1e-4


def test_missing_fashion_files_say_how_to_get_them(tmp_path):
    missing = tmp_path / "nowhere"
    dm = ImageClassification("fashion_mnist", data_dir=str(missing))
    with pytest.raises(FileNotFoundError) as err:
        dm.setup("fit")
    msg = str(err.value)
    assert str(missing) in msg and "apt install dataset-fashion-mnist" in msg
    assert "train-images-idx3-ubyte" in msg and "download" in msg


def test_missing_mnist_files_say_download(tmp_path):
    _write_idx(tmp_path, compress=False)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    dm = ImageClassification("mnist", data_dir=str(tmp_path))
    with pytest.raises(FileNotFoundError) as err:
        dm.setup("fit")
    msg = str(err.value)
    assert str(tmp_path) in msg and "--data.download true" in msg
    assert "missing: t10k-labels-idx1-ubyte." in msg


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="Debian's dataset-fashion-mnist not installed")
def test_debian_fashion_mnist_loads():
    dm = ImageClassification("fashion_mnist", n_val=5000, seed=0)
    assert dm.class_names[0] == "T-shirt/top" and dm.class_names[9] == "Ankle boot"
    dm.setup("fit")
    sizes = [len(d) for d in (dm.train_dataset, dm.val_dataset, dm.test_dataset)]
    assert sizes == [55000, 5000, 10000]
    x, y = dm.test_dataset.tensors
    assert x.shape == (10000, 1, 28, 28) and x.dtype == torch.float32
    assert torch.equal(torch.bincount(y), torch.full((10,), 1000))  # test set is balanced
    assert abs(dm.train_dataset.tensors[0].mean().item()) < 1e-3
    assert 0.2 < dm.mean < 0.4 and 0.25 < dm.std < 0.45
