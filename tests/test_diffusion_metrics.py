"""Diffusion sample-quality metrics and figures: energy distance, Frechet distance, Gaussian KL / W2
against closed forms, the field metrics against the dense formulas, the cached feature classifier,
the model's test metrics (exact score against a wrong one, and through `ctdl test`), the figures."""

import math
import time
from pathlib import Path

import pytest
import torch

from ctdl.callbacks import DiffusionSamplesFigure, sample_grid_figure
from ctdl.datamodules import GaussianFields
from ctdl.diffusion import (
    ClassifierFrechet,
    dense_covariance,
    field_covariance_distances,
    make_prior,
    resample,
)
from ctdl.metrics import (
    energy_distance,
    frechet_distance,
    gaussian_kl,
    gaussian_w2_squared,
    mean_and_covariance,
)
from ctdl.models import MultilevelDiffusion

from .helpers import ROOT, check_png, figure_trainer
from .test_diffusion_model import SMALL_FIELDS, exact_model

FIELD = make_prior("bessel", scale=4000.0, s=40.0, p=2.5)  # GaussianFields' default Sigma


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------- the plain metrics
def test_energy_distance_is_zero_for_a_set_with_itself_and_grows_with_a_shift():
    x, y = torch.randn(300, 1, 6, 6, generator=gen(0)), torch.randn(300, 1, 6, 6, generator=gen(1))
    assert energy_distance(x, x) == 0.0
    assert energy_distance(x, y) == pytest.approx(energy_distance(y, x), rel=1e-12)
    shifted = [energy_distance(x, y + s) for s in (0.0, 0.25, 0.5, 1.0)]
    assert all(a < b for a, b in zip(shifted, shifted[1:], strict=False))
    # 1-D closed form: D^2(N(0, 1), N(1, 1)) = 2 E|N(1, 2)| - 2 E|N(0, 2)| (the V-statistic's bias is 1 / n)
    g = gen(0)
    a, b = torch.randn(8000, 1, generator=g), torch.randn(8000, 1, generator=g) + 1.0
    s = math.sqrt(2)
    folded = s * math.sqrt(2 / math.pi) * math.exp(-1 / 4) + 1.0 * math.erf(1 / 2)  # E|N(1, 2)|
    exact = 2 * (folded - s * math.sqrt(2 / math.pi))
    assert energy_distance(a, b) == pytest.approx(exact, abs=0.02)
    with pytest.raises(ValueError, match="one sample shape"):
        energy_distance(x, torch.randn(5, 1, 7, 7))


def test_frechet_distance_is_zero_for_identical_features_and_exact_for_shifts_and_scales():
    f = torch.randn(500, 12, generator=gen(0)) @ torch.randn(12, 12, generator=gen(1)) + 0.3
    assert frechet_distance(f, f) < 1e-8 * torch.trace(mean_and_covariance(f)[1]).item()
    shift = torch.linspace(-1, 1, 12)
    assert frechet_distance(f, f + shift) == pytest.approx(shift.pow(2).sum().item(), rel=1e-6)
    mean, cov = mean_and_covariance(f)
    expected = 0.25 * (mean.pow(2).sum() + torch.trace(cov)).item()  # (1 - a)^2 (|m|^2 + tr S), a = 1.5
    assert frechet_distance(f, 1.5 * f) == pytest.approx(expected, rel=1e-6)


def test_gaussian_kl_and_w2_are_zero_for_the_exact_covariance_and_closed_form_for_a_scaled_one():
    sigma, d = dense_covariance(FIELD, 8), 64
    # dense_covariance is C_h of the resolution convention: its eigenvalues are n^2 lambda_k
    assert torch.allclose(
        torch.linalg.eigvalsh(sigma),
        (d * FIELD.eigenvalues(8)).flatten().sort().values,
        rtol=1e-8,
        atol=1e-14,
    )
    zero = torch.zeros(d, dtype=torch.float64)
    assert abs(gaussian_kl(zero, sigma, zero, sigma)) < 1e-8
    assert gaussian_w2_squared(zero, sigma, zero, sigma) < 1e-8 * torch.trace(sigma).item()
    for c in (0.5, 2.0):
        kl = d / 2 * (c - 1 - math.log(c))
        assert gaussian_kl(zero, c * sigma, zero, sigma) == pytest.approx(kl, rel=1e-8)
        w2 = (math.sqrt(c) - 1) ** 2 * torch.trace(sigma).item()
        assert gaussian_w2_squared(zero, c * sigma, zero, sigma) == pytest.approx(w2, rel=1e-6)
    m = torch.full((d,), 0.1, dtype=torch.float64)  # a mean shift adds m' Sigma^-1 m / 2 and |m|^2
    kl = 0.5 * (m @ torch.linalg.solve(sigma, m)).item()
    assert gaussian_kl(m, sigma, zero, sigma) == pytest.approx(kl, rel=1e-6)
    assert gaussian_w2_squared(m, sigma, zero, sigma) == pytest.approx(m.pow(2).sum().item(), rel=1e-6)
    assert gaussian_kl(zero, sigma * torch.diag((torch.arange(d) > 0).double()), zero, sigma) == math.inf


@pytest.mark.parametrize(
    "prior", [FIELD, make_prior("laplacian", scale=1.0, p=2.0)], ids=["bessel", "laplacian"]
)
def test_field_covariance_distances_match_the_dense_formulas_and_their_floor(prior):
    sigma = dense_covariance(prior, 8)
    zero = torch.zeros(64, dtype=torch.float64)
    for n, scale in ((20, 1.0), (40, 1.2), (400, 1.0), (400, 1.2)):  # n <= d = 64: shrinkage; n > d: none
        x = scale * prior.sample(n, 8, generator=gen(n), dtype=torch.float64) + 0.01
        got = field_covariance_distances(x, prior, shrinkage=0.05)
        mean, cov = mean_and_covariance(x)
        eps = 0.05 if n <= 64 else 0.0
        assert got["shrinkage"] == eps
        kl = gaussian_kl(mean, (1 - eps) * cov + eps * sigma, zero, sigma)  # dense d x d formulas
        w2 = math.sqrt(gaussian_w2_squared(mean, cov, zero, sigma) / 64)
        assert got["kl"] == pytest.approx(kl, rel=1e-6) and got["w2"] == pytest.approx(w2, rel=1e-5)
    few = prior.sample(20, 8, generator=gen(0))
    assert field_covariance_distances(few, prior, shrinkage=0.0)["kl"] == math.inf
    # many exact draws: near 0; the scaled field sqrt(c) x: the closed form d/2 (c - 1 - log c) on top
    x = FIELD.sample(20_000, 8, generator=gen(5), dtype=torch.float64)
    exact, scaled = field_covariance_distances(x, FIELD), field_covariance_distances(1.2 * x, FIELD)
    assert exact["kl"] < 0.2 and exact["w2"] < 0.02
    assert scaled["kl"] - exact["kl"] == pytest.approx(32 * (1.44 - 1 - math.log(1.44)), rel=0.03)
    w2 = 0.2 * math.sqrt(FIELD.trace(8))  # |sqrt(c) - 1| sqrt(tr Sigma_h / d)
    assert scaled["w2"] == pytest.approx(w2, rel=0.03)


# ---------------------------------------------------------------------- the feature classifier
def labelled_patterns(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n 28x28 images of 4 classes (a plane wave per class) with noise, in [-1, 1]-ish."""
    y = torch.randint(0, 4, (n,), generator=gen(seed))
    j = torch.arange(28, dtype=torch.float32) / 28
    waves = torch.stack(
        [
            torch.sin(2 * math.pi * (k + 1) * (j[:, None] if k % 2 else j[None, :])).expand(28, 28)
            for k in range(4)
        ]
    )
    x = 0.7 * waves[y] + 0.3 * torch.randn(n, 28, 28, generator=gen(seed + 1))
    return x.unsqueeze(1), y


def test_classifier_frechet_is_cached_restricts_finer_grids_and_has_a_floor(tmp_path):
    x, y = labelled_patterns(800, 0)
    x_test, y_test = labelled_patterns(200, 10)
    start = time.perf_counter()
    fd = ClassifierFrechet.cached(x, y, key="patterns_split0", cache_dir=tmp_path, epochs=2)
    trained = time.perf_counter() - start
    assert not fd.loaded and fd.path.is_file() and fd.path.parent == tmp_path
    assert "patterns_split0_seed0" in fd.path.name
    assert fd.accuracy(x_test, y_test) > 0.95
    again = ClassifierFrechet.cached(x, y, key="patterns_split0", cache_dir=tmp_path, epochs=2)  # loads
    assert again.loaded and again.path == fd.path
    assert torch.equal(again.features(x_test), fd.features(x_test))
    assert torch.equal(again.reference_cov, fd.reference_cov)
    other = ClassifierFrechet.cached(x[:-1], y[:-1], key="patterns_split0", cache_dir=tmp_path, epochs=2)
    assert not other.loaded and other.path != fd.path  # other data: another file
    floor = fd(x_test)
    noise = fd(torch.rand(200, 1, 28, 28, generator=gen(3)) * 2 - 1)
    wrong = fd(x_test[y_test < 2])  # half of the classes
    print(
        f"\nclassifier trained in {trained:.2f} s; floor {floor:.3f}, half the classes {wrong:.3f}, "
        f"noise {noise:.3f}"
    )
    assert floor < 0.2 * wrong and wrong < noise
    assert fd.between(x_test, x_test) < 1e-6
    # images on a finer grid are restricted to 28 by `resample`: interpolated test images score the same
    assert fd(resample(x_test, 56)) == pytest.approx(floor, rel=1e-4)


# --------------------------------------------------------------------------- the model's metrics
def test_sample_quality_separates_the_exact_score_from_a_wrong_one():
    data = GaussianFields(resolution=8, num_train=16, num_val=256, num_test=256, seed=0)
    data.setup()
    exact, wrong = exact_model(data), exact_model(data, factor=0.8)
    for model in (exact, wrong):
        model.hparams.test_samples, model.hparams.test_sample_steps = 256, 100
    good, bad = exact.sample_quality(data), wrong.sample_quality(data, resolutions=[8])
    print(f"\nexact score {good}\n0.8 x exact {bad}")
    assert set(good) == {"energy_mmd", "energy_mmd_floor", "cov_kl", "cov_kl_floor", "cov_w2", "cov_w2_floor"}
    assert good["cov_kl"] < 1.5 * good["cov_kl_floor"] and good["cov_w2"] < 1.5 * good["cov_w2_floor"]
    # measured: exact kl 4.47 (floor 4.73), w2 0.116 (0.126), energy 0.078 (0.073); 0.8 x exact: kl 9.7,
    # w2 0.29, energy 0.27
    assert bad["cov_kl"] > 2 * good["cov_kl"] and bad["cov_w2"] > 2 * good["cov_w2"]
    assert bad["energy_mmd"] > 3 * good["energy_mmd"]
    assert good["energy_mmd"] < 3 * good["energy_mmd_floor"]


def test_ctdl_test_logs_the_sample_metrics(cli, fake_mnist_dir, tmp_path):
    fields = cli(
        "test",
        *SMALL_FIELDS,
        "--model.test_samples",
        "16",
        "--model.test_sample_steps",
        "3",
        "--model.test_resolutions",
        "[16, 32]",
    ).trainer.callback_metrics
    for name in (
        "energy_mmd",
        "energy_mmd_floor",
        "cov_kl",
        "cov_kl_floor",
        "cov_w2",
        "cov_w2_floor",
        "cov_kl_32",
        "cov_w2_32",
        "energy_mmd_32",
    ):
        assert torch.isfinite(fields[f"test/{name}"]), name
    assert fields["test/cov_kl"] > fields["test/cov_kl_floor"]  # an untrained model
    images = [
        "--config",
        ROOT / "configs" / "diffusion" / "fashion_fno.yaml",
        "--data.data_dir",
        fake_mnist_dir,
        "--data.n_val",
        "100",
        "--data.batch_size",
        "50",
        "--trainer.limit_test_batches",
        "1",
        "--model.network_args",
        "{width: 4, modes: 7, layers: 1, time_dim: 8}",
        "--model.test_samples",
        "16",
        "--model.test_sample_steps",
        "2",
        "--model.classifier_epochs",
        "1",
        "--trainer.callbacks",
        "[]",
    ]
    metrics = cli("test", *images).trainer.callback_metrics
    for name in (
        "energy_mmd",
        "energy_mmd_floor",
        "fid_classifier",
        "fid_floor",
        "energy_mmd_56",
        "fid_classifier_56",
    ):
        assert torch.isfinite(metrics[f"test/{name}"]), name
    assert "test/cov_kl" not in metrics
    cache = tmp_path / "data" / "cache"  # relative to the working directory, as the other caches
    cached = list(cache.glob("diffusion_classifier_fashion_mnist_split0_nall_seed0_*.pt"))
    assert len(cached) == 1


# ---------------------------------------------------------------------------------- the figures
def test_samples_figure_adds_a_row_at_every_validation(tmp_path):
    data = GaussianFields(resolution=8, num_train=32, num_val=8, num_test=8, batch_size=8)
    model = MultilevelDiffusion(
        input_shape=[1, 8, 8],
        network_args={"width": 4, "modes": 4, "layers": 1, "time_dim": 8},
        test_samples=0,
    )
    figure = DiffusionSamplesFigure(n_samples=4, steps=3)
    trainer = figure_trainer(
        tmp_path,
        [figure],
        max_epochs=None,
        max_steps=6,
        val_check_interval=2,
        check_val_every_n_epoch=None,
        num_sanity_val_steps=1,
    )
    trainer.fit(model, data)
    assert [label for label, _ in figure.rows] == ["step 2", "step 4", "step 6"]
    assert all(x.shape == (4, 1, 8, 8) for _, x in figure.rows)
    out = Path(trainer.log_dir) / "figures"
    check_png(out / "samples_training.png", min_colours=20)
    check_png(out / "samples_final.png", min_colours=20)
    trainer.test(model, data)
    check_png(out / "samples_test.png", min_colours=20)
    assert len(figure.rows) == 3  # the test row is drawn, not kept
    restored = DiffusionSamplesFigure()
    restored.load_state_dict(figure.state_dict())
    assert [label for label, _ in restored.rows] == ["step 2", "step 4", "step 6"]


def test_sample_grid_figure_rows_models_columns_priors(tmp_path):
    def model(network, prior, **args):
        torch.manual_seed(0)
        return MultilevelDiffusion(prior=prior, network=network, network_args=args)

    models = {
        "U-Net": {
            "white": model("unet", "white", base=4, levels=3, time_dim=8),
            "bessel": model("unet", "bessel", base=4, levels=3, time_dim=8),
        },
        "FNO": {
            "white": model("fno", "white", width=4, modes=4, layers=1, time_dim=8),
            "bessel": model("fno", "bessel", width=4, modes=4, layers=1, time_dim=8),
        },
    }
    path = tmp_path / "grid" / "sample_grid.png"
    fig = sample_grid_figure(models, resolution=12, n_samples=3, steps=3, path=path)
    check_png(path, min_colours=20)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert sum("cannot sample" in t for t in texts) == 2  # U-Net (levels 3): not on 12x12, on 24x24
    assert [ax.get_title() for ax in fig.axes[:2]] == ["white", "bessel"]
    with pytest.raises(TypeError, match="GridSampler"):
        sample_grid_figure({"MLP": {"white": torch.nn.Linear(2, 2)}}, resolution=8)
