"""Tests of the density-estimation data: FFJORD's toys and their true densities, the MAF tabular
sets (on small files in the archive's formats), and the 64-d digits."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from ctdl.datamodules import DigitsDensity, TabularDensity, Toy2DDensity, make_toy_density, toy_log_density
from ctdl.datamodules.tabular import (
    TABULAR_DIMS,
    load_tabular,
    preprocess_hepmass,
    preprocess_power,
    repeated_min_features,
)
from ctdl.protocols import KnownDensity, true_log_density

from .maf_files import write_bsds300, write_gas, write_hepmass, write_power

TOYS = ["8gaussians", "checkerboard", "swissroll", "pinwheel", "2spirals", "circles", "moons", "rings"]

# ----------------------------------------------------------------------------- 2-D toys


@pytest.mark.parametrize("name", TOYS)
def test_toy_shape_finite_and_exact_count(name):
    for n in (0, 1, 1003):  # 1003 is odd and not a multiple of 4 or 5 (pinwheel, 2spirals, rings)
        x = make_toy_density(name, n, np.random.default_rng(0))
        assert x.shape == (n, 2) and x.dtype == np.float64
        assert np.isfinite(x).all()
    x = make_toy_density(name, 2000, np.random.default_rng(0))
    assert 0.5 < x.std() < 3.5 and np.abs(x).max() < 6.0  # FFJORD's scale: everything in about [-4, 4]^2


@pytest.mark.parametrize("name", TOYS)
def test_toy_depends_only_on_the_passed_generator(name):
    np.random.seed(1)  # the global state must not matter (FFJORD's 2spirals/checkerboard used it)
    a = make_toy_density(name, 500, np.random.default_rng(7))
    np.random.seed(2)
    b = make_toy_density(name, 500, np.random.default_rng(7))
    c = make_toy_density(name, 500, np.random.default_rng(8))
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)
    assert np.array_equal(make_toy_density(name, 500, 7), a)  # an int seed means default_rng(seed)


def test_toy_unknown_names_and_missing_densities():
    with pytest.raises(ValueError, match="known: 8gaussians, checkerboard, swissroll"):
        make_toy_density("spiral", 10, 0)
    with pytest.raises(NotImplementedError, match="known for: 8gaussians, checkerboard, circles, rings"):
        toy_log_density("moons", torch.zeros(3, 2))
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        toy_log_density("8gaussians", torch.zeros(3, 3))


@pytest.mark.parametrize("name", ["8gaussians", "checkerboard", "circles", "rings"])
def test_true_density_integrates_to_one(name):
    h = 0.01  # midpoints of a grid aligned with the checkerboard's squares
    s = torch.arange(-6 + h / 2, 6, h, dtype=torch.float64)
    grid = torch.cartesian_prod(s, s)
    mass = toy_log_density(name, grid).exp().sum().item() * h * h
    assert mass == pytest.approx(1.0, rel=0.01)


def _bin_probabilities(name, lo, hi, bins, sub=8):
    """Probability of each of bins x bins squares under the true density (sub x sub midpoints each)."""
    h = (hi - lo) / (bins * sub)
    s = torch.arange(lo + h / 2, hi, h, dtype=torch.float64)
    p = toy_log_density(name, torch.cartesian_prod(s, s)).exp().reshape(bins * sub, bins * sub) * h * h
    return p.reshape(bins, sub, bins, sub).sum(dim=(1, 3)).numpy()


@pytest.mark.parametrize("name", ["8gaussians", "checkerboard", "circles", "rings"])
def test_true_density_matches_sample_histogram(name):
    n, lo, hi, bins = 100_000, -6.0, 6.0, 24
    x = make_toy_density(name, n, np.random.default_rng(3))
    counts, _, _ = np.histogram2d(x[:, 0], x[:, 1], bins=bins, range=[[lo, hi], [lo, hi]])
    tv = 0.5 * np.abs(counts / n - _bin_probabilities(name, lo, hi, bins)).sum()
    assert tv < 0.02  # sampling noise alone gives about 0.005; a wrong scale or centre gives > 0.2


def test_mean_log_density_of_samples_is_minus_the_entropy():
    x = torch.from_numpy(make_toy_density("8gaussians", 50_000, np.random.default_rng(4)))
    var = (0.5 / 1.414) ** 2  # well separated components: H = log 8 + log(2 pi e var)
    entropy = math.log(8) + math.log(2 * math.pi * math.e * var)
    assert -toy_log_density("8gaussians", x).mean().item() == pytest.approx(entropy, abs=0.03)
    y = torch.from_numpy(make_toy_density("checkerboard", 50_000, np.random.default_rng(4)))
    assert torch.allclose(
        toy_log_density("checkerboard", y), torch.tensor(-math.log(32.0), dtype=torch.float64)
    )


def test_checkerboard_samples_fill_exactly_its_eight_squares():
    x = make_toy_density("checkerboard", 40_000, np.random.default_rng(5))
    assert np.isfinite(toy_log_density("checkerboard", torch.from_numpy(x)).numpy()).all()
    cells = np.floor(x / 2).astype(int)
    assert ((cells.sum(axis=1) % 2) == 0).all() and cells.min() == -2 and cells.max() == 1
    _, counts = np.unique(cells, axis=0, return_counts=True)
    assert len(counts) == 8 and np.abs(counts / len(x) - 1 / 8).max() < 0.01
    off = torch.tensor([[1.0, -1.0], [3.0, 1.0], [4.5, 0.5], [0.0, -4.01]])  # white squares, outside
    assert torch.isinf(toy_log_density("checkerboard", off)).all()


def test_toy2d_density_module_splits_batches_and_seeding():
    dm = Toy2DDensity("checkerboard", n_train=600, n_val=100, n_test=50, batch_size=256, seed=3)
    assert dm.dim == 2 and dm.input_shape == [2] and dm.name == "checkerboard" and dm.has_log_density
    dm.setup()
    assert [len(d) for d in (dm.train_dataset, dm.val_dataset, dm.test_dataset)] == [600, 100, 50]
    batch = next(iter(dm.train_dataloader()))
    assert isinstance(batch, list | tuple) and len(batch) == 1
    assert batch[0].shape == (256, 2) and batch[0].dtype == torch.float32
    assert torch.isfinite(dm.log_density(dm.val_dataset.tensors[0].double())).all()
    same = Toy2DDensity("checkerboard", n_train=600, n_val=100, n_test=50, seed=3)
    other = Toy2DDensity("checkerboard", n_train=600, n_val=100, n_test=50, seed=4)
    same.setup()
    other.setup()
    assert torch.equal(same.train_dataset.tensors[0], dm.train_dataset.tensors[0])
    assert not torch.allclose(other.train_dataset.tensors[0], dm.train_dataset.tensors[0])
    assert not torch.allclose(dm.train_dataset.tensors[0][:50], dm.test_dataset.tensors[0])
    assert isinstance(dm, KnownDensity) and not isinstance(DigitsDensity(), KnownDensity)
    assert true_log_density(dm) == dm.log_density and true_log_density(Toy2DDensity("moons")) is None
    with pytest.raises(ValueError, match="known: 8gaussians"):
        Toy2DDensity("banana")
    with pytest.raises(NotImplementedError):
        Toy2DDensity("moons").log_density(torch.zeros(2, 2))


# ----------------------------------------------------------------------------- MAF tabular


def test_power_columns_shuffle_noise_split_and_standardisation(tmp_path):
    data = write_power(tmp_path)
    dm = TabularDensity("power", data_dir=str(tmp_path))
    assert dm.dim == 6 and dm.input_shape == [6] and dm.batch_size == 10_000
    dm.setup()
    train, val, test = (d.tensors[0] for d in (dm.train_dataset, dm.val_dataset, dm.test_dataset))
    assert (len(train), len(val), len(test)) == (810, 90, 100)  # int(0.1 N) test, int(0.1 rest) val
    assert train.dtype == torch.float32 and train.shape[1] == 6
    fit = torch.cat([train, val]).double()
    assert fit.mean(0).abs().max() < 1e-5 and (fit.std(0, correction=0) - 1).abs().max() < 1e-5
    out = torch.cat([train, val, test]).double().numpy()
    kept = data[np.random.RandomState(42).permutation(len(data))][:, [0, 2, 4, 5, 6, 7]]
    noise_std = [0.001, 0.01, 1.0, 1.0, 1.0, 0.0]  # U[0, a) has std a / sqrt(12)
    for k in range(6):
        slope, icpt = np.polyfit(kept[:, k], out[:, k], 1)
        resid = (out[:, k] - slope * kept[:, k] - icpt) / slope
        assert resid.std() == pytest.approx(noise_std[k] / math.sqrt(12), rel=0.15, abs=1e-5)
    raw = np.load(tmp_path / "power" / "data.npy")
    shuffled = raw.copy()
    np.random.RandomState(42).shuffle(shuffled)  # MAF's in-place shuffle: the same permutation
    assert np.array_equal(shuffled[:, [0, 2, 4, 5, 6, 7]], kept)
    assert np.array_equal(preprocess_power(raw)[2], preprocess_power(raw)[2])  # fixed RandomState(42)


def test_gas_drops_labels_and_correlated_sensors_then_standardises(tmp_path):
    kept = write_gas(tmp_path)
    dm = TabularDensity("GAS", data_dir=str(tmp_path))
    dm.setup()
    assert dm.name == "gas" and dm.dim == 8 and dm.batch_size == 2000
    parts = [d.tensors[0].double().numpy() for d in (dm.train_dataset, dm.val_dataset, dm.test_dataset)]
    assert [len(p) for p in parts] == [810, 90, 100]
    expected = (kept - kept.mean(0)) / kept.std(0, ddof=1)  # whole-data standardisation, no shuffle
    np.testing.assert_allclose(np.concatenate(parts), expected, atol=1e-5)


def test_gas_unreadable_pickle_says_how_to_convert_it(tmp_path):
    (tmp_path / "gas").mkdir()
    (tmp_path / "gas" / "ethylene_CO.pickle").write_bytes(b"written by a pandas from 2017")
    with pytest.raises(RuntimeError, match=r"could not read .*ethylene_CO.pickle.*re-save it once"):
        load_tabular("gas", tmp_path)


@pytest.mark.parametrize("mass_values", [True, False])
def test_hepmass_signal_rows_dropped_features_split_and_standardisation(tmp_path, mass_values):
    sig, sig_test = write_hepmass(tmp_path, mass_values)
    dm = TabularDensity("hepmass", data_dir=str(tmp_path))
    dm.setup()
    train, val, test = (
        d.tensors[0].double().numpy() for d in (dm.train_dataset, dm.val_dataset, dm.test_dataset)
    )
    n_val = int(0.1 * len(sig))
    assert (len(train), len(val), len(test)) == (len(sig) - n_val, n_val, len(sig_test))
    assert train.shape[1] == val.shape[1] == test.shape[1] == 21
    mu, s = sig.mean(0), sig.std(0, ddof=1)
    np.testing.assert_allclose(np.concatenate([train, val]), (sig - mu) / s, atol=1e-5)
    np.testing.assert_allclose(test, (sig_test - mu) / s, atol=1e-5)


def test_hepmass_rejects_mismatched_columns():
    tr = pd.DataFrame(np.ones((4, 5)))
    te = pd.DataFrame(np.ones((4, 8)))
    with pytest.raises(ValueError, match="4 feature columns and 1000_test.csv 7"):
        preprocess_hepmass(tr, te)


def test_repeated_values_criterion_is_mafs_count_of_the_smallest_value():
    col_rare_min = np.r_[-5.0, np.full(20, 1.0)]  # most frequent value repeats, smallest does not
    col_rep_min = np.r_[np.full(6, -5.0), np.arange(15.0)]  # smallest value 6 times
    col_ok = np.r_[np.full(5, -5.0), np.arange(16.0)]  # smallest value 5 times
    data = np.stack([col_rare_min, col_rep_min, col_ok], axis=1)
    assert repeated_min_features(data).tolist() == [1]


@pytest.mark.parametrize("raw", [False, True])
def test_miniboone_split_standardisation_and_raw_cleaning(tmp_path, raw):
    rng = np.random.default_rng(3)
    clean = rng.standard_normal((500, 43)) * rng.uniform(0.1, 10, 43) + rng.uniform(-5, 5, 43)
    data = clean
    if raw:  # UCI's 50 columns: 7 with a repeated smallest value, 20 placeholder rows (-999)
        discrete, bad = [3, 9, 10, 23, 34, 45, 49], np.zeros(520, bool)
        bad[[17, 201, 203, *range(320, 337)]] = True
        data = np.empty((520, 50))
        data[np.ix_(~bad, np.setdiff1d(np.arange(50), discrete))] = clean
        data[np.ix_(~bad, discrete)] = rng.integers(0, 3, (500, 7))
        data[bad] = rng.standard_normal((20, 50))
        data[bad, 0] = -999.0
    (tmp_path / "miniboone").mkdir()
    np.save(tmp_path / "miniboone" / "data.npy", data)
    dm = TabularDensity("miniboone", data_dir=str(tmp_path))
    dm.setup()
    parts = [d.tensors[0].double().numpy() for d in (dm.train_dataset, dm.val_dataset, dm.test_dataset)]
    assert [len(p) for p in parts] == [405, 45, 50] and parts[0].shape[1] == 43
    ref = clean[:450]  # train + validation, in file order (no shuffle)
    np.testing.assert_allclose(np.concatenate(parts), (clean - ref.mean(0)) / ref.std(0), atol=1e-5)


def test_bsds300_reads_the_three_hdf5_datasets(tmp_path):
    arrays = write_bsds300(tmp_path, (("train", 40), ("validation", 10), ("test", 20)))
    dm = TabularDensity("bsds300", data_dir=str(tmp_path))
    dm.setup()
    assert dm.dim == 63 and dm.batch_size == 300
    assert torch.equal(dm.val_dataset.tensors[0], torch.from_numpy(arrays["validation"]))
    assert len(dm.train_dataset) == 40 and len(dm.test_dataset) == 20


def test_missing_archive_error_says_where_and_what(tmp_path):
    where = tmp_path / "nowhere"
    dm = TabularDensity("power", data_dir=str(where))
    for call in (dm.prepare_data, dm.setup):
        with pytest.raises(FileNotFoundError) as err:
            call()
        msg = str(err.value)
        assert str(where) in msg and "does not exist" in msg and "power/data.npy" in msg
        assert "1161203" in msg and "data.tar.gz" in msg and f"{where}/power/data.npy" in msg
    (tmp_path / "hepmass").mkdir()
    (tmp_path / "hepmass" / "1000_train.csv").write_text("# label,f0\n1,0.5\n")
    with pytest.raises(FileNotFoundError, match=r"lacks hepmass/1000_test\.csv"):
        TabularDensity("hepmass", data_dir=str(tmp_path)).setup()


def test_tabular_loader_subsample_and_bad_input(tmp_path):
    write_power(tmp_path)
    full = TabularDensity("power", data_dir=str(tmp_path), batch_size=64)
    full.setup()
    small = TabularDensity("power", data_dir=str(tmp_path), batch_size=64, max_train=100, seed=1)
    small.setup()
    x_full, x_small = full.train_dataset.tensors[0], small.train_dataset.tensors[0]
    assert len(x_small) == 100 and len(small.test_dataset) == len(full.test_dataset)
    assert all((x_full == row).all(1).any() for row in x_small)  # a subset of the full training split
    again = TabularDensity("power", data_dir=str(tmp_path), max_train=100, seed=1)
    again.setup()
    assert torch.equal(again.train_dataset.tensors[0], x_small)
    batch = next(iter(small.train_dataloader()))
    assert len(batch) == 1 and batch[0].shape == (64, 6) and batch[0].dtype == torch.float32
    with pytest.raises(ValueError, match="known: power, gas, hepmass, miniboone, bsds300"):
        TabularDensity("cifar10")
    np.save(tmp_path / "power" / "data.npy", np.zeros((50, 7)))
    with pytest.raises(ValueError, match=r"shape \(N, 8\)"):
        TabularDensity("power", data_dir=str(tmp_path)).setup()
    assert TABULAR_DIMS == {"power": 6, "gas": 8, "hepmass": 21, "miniboone": 43, "bsds300": 63}


# ----------------------------------------------------------------------------- digits


def test_digits_density_dims_split_standardisation_and_dequantisation():
    from sklearn.datasets import load_digits

    dm = DigitsDensity(batch_size=100, seed=0)
    assert dm.dim == 64 and dm.input_shape == [64]
    dm.setup()
    train, val, test = (d.tensors[0] for d in (dm.train_dataset, dm.val_dataset, dm.test_dataset))
    assert (len(train), len(val), len(test)) == (1257, 180, 360) and train.dtype == torch.float32
    assert train.mean(0).abs().max() < 1e-4 and (train.std(0, correction=0) - 1).abs().max() < 1e-4
    assert dm.mean.shape == dm.std.shape == (64,) and (dm.std >= 1e-3).all()
    assert dm.log_det_standardise == pytest.approx(-dm.std.double().log().sum().item(), rel=1e-5)
    u = dm.to_unit(torch.cat([train, val, test]).double())
    assert u.min() > -1e-5 and u.max() < 1 + 1e-5
    levels = torch.floor(u * 17 + 1e-9).clamp(0, 16).long().flatten()
    ref = torch.bincount(torch.from_numpy(load_digits().data.astype(np.int64)).flatten(), minlength=17)
    assert (torch.bincount(levels, minlength=17) - ref).abs().max() <= 3  # dequantisation keeps the level
    assert len(torch.unique(u)) > 0.99 * u.numel()  # continuous, not 17 values
    assert len(next(iter(dm.train_dataloader()))) == 1


def test_digits_density_seeding():
    a, b, c = DigitsDensity(seed=5), DigitsDensity(seed=5), DigitsDensity(seed=6)
    for dm in (a, b, c):
        dm.setup()
    assert torch.equal(a.train_dataset.tensors[0], b.train_dataset.tensors[0])
    assert not torch.allclose(a.test_dataset.tensors[0], c.test_dataset.tensors[0])
    with pytest.raises(ValueError, match="no digits for training"):
        DigitsDensity(n_val=1000, n_test=900)


def test_power_matches_mafs_steps_literally(tmp_path):
    """MAF's power.py steps in its own order (in-place shuffle, np.delete, noise drawn voltage,
    active power, sub-metering), so the RandomState draws line up exactly."""
    data = write_power(tmp_path, n=300)
    rng = np.random.RandomState(42)
    ref = data.copy()
    rng.shuffle(ref)
    ref = np.delete(np.delete(ref, 3, axis=1), 1, axis=1)
    n = len(ref)
    voltage, active, metering = 0.01 * rng.rand(n, 1), 0.001 * rng.rand(n, 1), rng.rand(n, 3)
    ref = ref + np.hstack((active, voltage, metering, np.zeros((n, 1))))
    test, rest = ref[-30:], ref[:-30]
    val, train = rest[-27:], rest[:-27]
    mu, s = rest.mean(0), rest.std(0)
    for got, want in zip(preprocess_power(data), (train, val, test), strict=True):
        np.testing.assert_allclose(got, (want - mu) / s, rtol=0, atol=1e-12)
