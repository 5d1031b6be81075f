"""Sample-quality metrics for diffusion models that need no download: a Frechet distance on the
features of a small CNN classifier trained here (cached on disk), and the exact KL and W2
distances of a sample covariance to a Gaussian field's known covariance. The energy distance and
the Gaussian formulas live in `ctdl.metrics`.

Images on finer grids are scored on the classifier's grid after `ctdl.diffusion.resample` (Fourier
restriction), the one operator between grids.
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

import torch
from torch import Tensor, nn

from ctdl.metrics import frechet_distance, gaussian_w2_squared, mean_and_covariance

from .priors import FourierPrior, resample


class FeatureCNN(nn.Module):
    """A small CNN classifier for (batch, channels, n, n) images, n divisible by 4:
    [conv3x3 - GELU - avgpool2] x 2 (width, 2 width channels) -> linear to `features` -> GELU ->
    linear to the classes. `features(x)` is the penultimate layer (before the last GELU)."""

    def __init__(
        self,
        channels: int = 1,
        resolution: int = 28,
        num_classes: int = 10,
        width: int = 16,
        features: int = 64,
    ) -> None:
        super().__init__()
        if resolution % 4:
            raise ValueError(f"FeatureCNN needs a grid divisible by 4, got {resolution}")
        self.channels, self.resolution, self.num_classes = channels, resolution, num_classes
        self.body = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1),
            nn.GELU(),
            nn.AvgPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.GELU(),
            nn.AvgPool2d(2),
            nn.Flatten(),
            nn.Linear(2 * width * (resolution // 4) ** 2, features),
        )
        self.head = nn.Sequential(nn.GELU(), nn.Linear(features, num_classes))

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features (batch, features)."""
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        """Class logits (batch, num_classes)."""
        return self.head(self.body(x))


def train_feature_classifier(
    images: Tensor,
    labels: Tensor,
    epochs: int = 2,
    width: int = 16,
    batch_size: int = 128,
    lr: float = 2e-3,
    seed: int = 0,
) -> FeatureCNN:
    """A `FeatureCNN` trained by Adam on cross-entropy for `epochs` passes over (images, labels),
    initialised and shuffled from `seed` alone (the global RNG is left untouched); eval mode."""
    if images.ndim != 4 or labels.shape != images.shape[:1]:
        raise ValueError(
            f"train_feature_classifier needs images (n, C, H, W) and labels (n,), got "
            f"{tuple(images.shape)} and {tuple(labels.shape)}"
        )
    labels = labels.long()
    # trains even when called under no_grad or Lightning's inference mode (e.g. at the end of test)
    with torch.random.fork_rng(devices=[]), torch.inference_mode(False), torch.enable_grad():
        torch.manual_seed(seed)
        net = FeatureCNN(images.shape[1], images.shape[-1], int(labels.max()) + 1, width)
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        gen = torch.Generator().manual_seed(seed)
        for _ in range(epochs):
            for idx in torch.randperm(len(images), generator=gen).split(batch_size):
                loss = nn.functional.cross_entropy(net(images[idx].float().clone()), labels[idx].clone())
                opt.zero_grad()
                loss.backward()
                opt.step()
    return net.eval()


class ClassifierFrechet:
    """Frechet distance to a reference image set on the features of a `FeatureCNN` trained on it:

        FD(x) = |m_x - m_ref|^2 + tr S_x + tr S_ref - 2 tr (S_ref^(1/2) S_x S_ref^(1/2))^(1/2),

    (m, S) the mean and covariance of the classifier's penultimate features, `ctdl.metrics.
    frechet_distance`; the FID of Heusel et al. (2017) with a classifier trained in the project in
    place of Inception. Images on another (even) grid are first restricted to the classifier's by
    `resample`. Build it with `cached` (trains once, then loads from the cache).
    """

    def __init__(
        self,
        classifier: FeatureCNN,
        reference_mean: Tensor,
        reference_cov: Tensor,
        path: Path | None = None,
        loaded: bool = False,
    ) -> None:
        self.classifier = classifier.eval()
        self.reference_mean, self.reference_cov = reference_mean.double(), reference_cov.double()
        self.path, self.loaded = path, loaded  # the cache file, and whether it was read from there

    @property
    def resolution(self) -> int:
        return self.classifier.resolution

    @classmethod
    def cached(
        cls,
        images: Tensor,
        labels: Tensor,
        key: str,
        cache_dir: str | Path | None = "data/cache",
        epochs: int = 2,
        width: int = 16,
        seed: int = 0,
    ) -> ClassifierFrechet:
        """Train `train_feature_classifier(images, labels, epochs, width, seed=seed)` and the feature
        statistics of `images` (the reference, e.g. the training split), or load both from
        `<cache_dir>/diffusion_classifier_<key>_seed<seed>_<digest>.pt`; `key` names the data set and
        its split (e.g. "fashion_mnist_split0"), the digest hashes the images, labels and settings.
        cache_dir None: no file."""
        path = None
        if cache_dir is not None:
            digest = hashlib.sha1()
            for t in (images.contiguous().float(), labels.contiguous().long()):
                digest.update(str(tuple(t.shape)).encode())
                digest.update(t.cpu().numpy().tobytes())
            digest.update(f"{epochs},{width}".encode())
            path = Path(cache_dir) / f"diffusion_classifier_{key}_seed{seed}_{digest.hexdigest()[:12]}.pt"
            if path.is_file():
                state = torch.load(path, map_location="cpu", weights_only=True)
                net = FeatureCNN(**state["config"])
                net.load_state_dict(state["weights"])
                return cls(net, state["mean"], state["cov"], path=path, loaded=True)
        net = train_feature_classifier(images, labels, epochs=epochs, width=width, seed=seed)
        out = cls(net, torch.zeros(1), torch.zeros(1, 1), path=path)
        out.reference_mean, out.reference_cov = mean_and_covariance(out.features(images))
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            config = {
                "channels": net.channels,
                "resolution": net.resolution,
                "num_classes": net.num_classes,
                "width": width,
            }
            tmp = path.with_suffix(f".{os.getpid()}.tmp")  # ranks may write at once
            torch.save(
                {
                    "config": config,
                    "weights": net.state_dict(),
                    "mean": out.reference_mean,
                    "cov": out.reference_cov,
                },
                tmp,
            )
            tmp.replace(path)
        return out

    @torch.no_grad()
    def features(self, images: Tensor, batch_size: int = 1000) -> Tensor:
        """Features (n, k) of images (n, C, r, r), restricted to the classifier's grid first."""
        if images.ndim != 4 or images.shape[1] != self.classifier.channels:
            raise ValueError(
                f"ClassifierFrechet expects images (n, {self.classifier.channels}, r, r), got "
                f"{tuple(images.shape)}"
            )
        param = next(self.classifier.parameters())
        x = images.detach().to(param.device, param.dtype)
        if x.shape[-1] != self.resolution or x.shape[-2] != self.resolution:
            x = resample(x, self.resolution)
        return torch.cat([self.classifier.features(b) for b in x.split(batch_size)])

    @torch.no_grad()
    def accuracy(self, images: Tensor, labels: Tensor) -> float:
        """The classifier's accuracy on labelled images (a check that its features mean something)."""
        logits = self.classifier.head(self.features(images))
        return (logits.argmax(1).cpu() == labels.cpu()).double().mean().item()

    def __call__(self, images: Tensor) -> float:
        """FD of the images' features to the reference features."""
        fx = self.features(images).double().cpu()
        mean, cov = mean_and_covariance(fx)
        return gaussian_w2_squared(mean, cov, self.reference_mean, self.reference_cov)

    def between(self, x: Tensor, y: Tensor) -> float:
        """FD between the features of two image sets."""
        return frechet_distance(self.features(x), self.features(y))


def dense_covariance(prior: FourierPrior, grid: int) -> Tensor:
    """The grid covariance C_h = F^-1 diag(n^2 lambda_k) F of `prior` on an n x n grid as a dense
    (n^2, n^2) float64 matrix on the row-major flattened point values."""
    d = grid * grid
    eye = torch.eye(d, dtype=torch.float64).reshape(d, 1, grid, grid)
    return prior.cov(eye).reshape(d, d)


def field_covariance_distances(
    samples: Tensor, prior: FourierPrior, shrinkage: float = 0.01
) -> dict[str, float]:
    """KL and W2 between the Gaussian fit of sampled fields and the data law N(0, Sigma_h).

    samples (n, channels, r, r) (channels pooled as independent draws) give the sample mean m and
    covariance S (1 / (n - 1)); Sigma_h (= `dense_covariance(prior, r)`) is the known covariance on
    that grid. With P = N(m, S_eps) and Q = N(0, Sigma_h), d = r^2:

        kl = KL(P || Q) = 1/2 [tr(Sigma^-1 S_eps) + m' Sigma^-1 m - d + log det Sigma - log det S_eps]
           = 1/2 [sum_i (a_i - 1 - log a_i) + |Sigma^(-1/2) m|^2],
        a_i = eig(Sigma^(-1/2) S_eps Sigma^(-1/2)),
        w2 = sqrt(W2^2(N(m, S), Q) / d),
        W2^2 = |m|^2 + tr S + tr Sigma - 2 tr (Sigma^(1/2) S Sigma^(1/2))^(1/2)

    (`ctdl.metrics.gaussian_kl`, `gaussian_w2_squared`; KL on the range of Sigma_h, e.g. without the
    mean mode of a Laplacian prior; w2 in the L2 norm of the unit torus, ||u||^2 = mean_j u_j^2,
    comparable across grids). Computed without d x d matrices: Sigma_h^(+-1/2) act by FFT
    (`sqrt_cov`, `inv_sqrt_cov`) and the eigenvalues come from the n x n Gram matrix when n <= d.

    Regularisation: S has rank <= n - 1, so when n - 1 < rank(Sigma_h) some a_i = 0 and the KL is
    infinite; then S_eps = (1 - eps) S + eps Sigma_h, eps = `shrinkage` (shrinkage towards the
    target: a_i -> (1 - eps) a_i + eps, kl = 0 still for S = Sigma_h, each missing direction adds
    1/2 (eps - 1 - log eps)); otherwise S_eps = S. W2 needs none. Both grow like 1 / n for exact
    samples: compare with n draws from the data (a floor). Returns {"kl", "w2", "shrinkage"}.
    """
    if samples.ndim != 4 or samples.shape[-1] != samples.shape[-2]:
        raise ValueError(
            f"field_covariance_distances expects fields (n, channels, r, r), got {tuple(samples.shape)}"
        )
    if not 0 <= shrinkage < 1:
        raise ValueError(f"shrinkage must lie in [0, 1), got {shrinkage}")
    grid = samples.shape[-1]
    x = samples.detach().double().cpu().reshape(-1, 1, grid, grid)
    n, d = len(x), grid * grid
    if n < 2:
        raise ValueError(f"field_covariance_distances needs at least 2 fields, got {n}")
    lam = prior.eigenvalues(grid)
    rank = int((lam > 0).sum())
    mean = x.mean(0, keepdim=True)
    xc = x - mean

    def top_eigenvalues(a: Tensor, k: int) -> Tensor:  # the k largest eigenvalues of a' a / (n - 1)
        gram = a @ a.T if n <= d else a.T @ a
        return torch.linalg.eigvalsh(gram / (n - 1)).flip(0)[:k].clamp_min(0)

    k = min(n - 1, rank)
    a = top_eigenvalues(prior.inv_sqrt_cov(xc).reshape(n, d), k)
    missing = rank - k + int((a <= 0).sum())
    a = a[a > 0]
    eps = shrinkage if missing else 0.0
    whitened_mean = prior.inv_sqrt_cov(mean).pow(2).sum()
    if missing and eps == 0:
        kl = math.inf
    else:
        a = (1 - eps) * a + eps
        kl = (
            0.5
            * (
                (a - 1 - a.log()).sum() + missing * (eps - 1 - math.log(eps) if eps else 0.0) + whitened_mean
            ).item()
        )
    cross = top_eigenvalues(prior.sqrt_cov(xc).reshape(n, d), min(n - 1, d)).sqrt().sum()
    w2_squared = mean.pow(2).sum() + xc.pow(2).sum() / (n - 1) + d * lam.sum() - 2 * cross
    return {"kl": kl, "w2": math.sqrt(max(w2_squared.item(), 0.0) / d), "shrinkage": eps}
