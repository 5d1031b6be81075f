"""Gaussian priors N(0, C) on periodic grids, C a Fourier multiplier (Hagemann et al. 2023, Sect. 4).

Resolution convention (one, at every grid size). A field is a real function u on the unit torus
T^2 = [0, 1)^2 and a grid of n1 x n2 points holds its POINTWISE VALUES u(j1/n1, j2/n2). C has
the eigenfunctions e_k(x) = exp(2 pi i k.x) for integer wavenumbers k in Z^2 and eigenvalues
lambda_k, so u = sum_k sqrt(lambda_k) xi_k e_k with xi_k standard (complex) normal. A grid
keeps the wavenumbers k_i in {-n_i/2, ..., n_i/2 - 1} (torch.fft.fftfreq(n_i) * n_i; the
Nyquist mode -n_i/2 of an even grid is kept) and drops the rest. Hence, at every grid size:

    u_hat_k = fft2(u, norm="forward")_k  (the k-th Fourier coefficient of u),  E|u_hat_k|^2 = lambda_k,
    E u(x)^2 = sum_{k on the grid} lambda_k = tr C truncated to the grid,

so the same function sampled at 32 and at 64 has the same statistics on the common modes.
On the grid, C_h = F^-1 diag(n1 n2 lambda_k) F (F the DFT) acts on the vector of point values
and `sqrt_cov` applies C_h^(1/2) = F^-1 diag(sqrt(n1 n2 lambda_k)) F to grid white noise
xi ~ N(0, I). Multipliers are even in k, so C_h^(1/2) is real and symmetric.

The Laplacian is the torus's: -Delta e_k = 4 pi^2 |k|^2 e_k (not a finite-difference symbol,
which would change with n). C is trace class iff sum_k lambda_k < infinity: for
scale (-Delta)^(-p) and (s I - Delta)^(-p) on T^2 that is p > 1 (= d / 2). The paper
parameterises the SQUARE ROOT, A = scale_A (-Delta)^(-p_A), C = A A^T, where the condition reads
p_A > 1/2; here C itself is given: scale = scale_A^2, p = 2 p_A. White noise (lambda_k = scale)
is not trace class: its pointwise variance is scale * n1 * n2 (grid white noise N(0, I) at a
reference grid n0 is scale = 1 / n0^2).

Priors: `white`, `laplacian`, `bessel`, `spectral_layer`, `combined`; `PRIORS` maps a name to
its class and `make_prior(name, **args)` builds one. `resample` moves a field between grids.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

Grid = int | tuple[int, int]


def grid_shape(grid: Grid) -> tuple[int, int]:
    """(n1, n2) from an int n (square grid) or a pair; each a positive integer."""
    shape = (grid, grid) if isinstance(grid, int) else tuple(grid)
    if len(shape) != 2 or not all(isinstance(n, int) and n >= 1 for n in shape):
        raise ValueError(f"grid must be a positive int n or a pair (n1, n2) of positive ints, got {grid!r}")
    return shape  # type: ignore[return-value]


def wavenumbers(
    grid: Grid, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None
) -> tuple[Tensor, Tensor]:
    """Integer wavenumbers (k1, k2) of the grid's modes in fft2 layout, each of shape (n1, n2)."""
    n1, n2 = grid_shape(grid)
    k1 = torch.fft.fftfreq(n1, d=1.0 / n1, dtype=dtype, device=device)
    k2 = torch.fft.fftfreq(n2, d=1.0 / n2, dtype=dtype, device=device)
    return torch.meshgrid(k1, k2, indexing="ij")


def apply_multiplier(x: Tensor, multiplier: Tensor) -> Tensor:
    """F^-1 diag(m) F x over the last two axes, m even in k, given in fft2 layout (n1, n2)."""
    n2 = x.shape[-1]
    half = multiplier[..., : n2 // 2 + 1].to(x.dtype)
    return torch.fft.irfft2(torch.fft.rfft2(x) * half, s=x.shape[-2:])


def _check_field(x: Tensor, name: str) -> None:
    if not isinstance(x, Tensor) or x.ndim != 4 or not x.is_floating_point():
        got = f"shape {tuple(x.shape)}, dtype {x.dtype}" if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name} expects a floating-point tensor (batch, channels, n1, n2), got {got}")


class FourierPrior:
    """N(0, C) with C e_k = lambda_k e_k; subclasses implement `eigenvalues(grid)`."""

    name = ""

    def eigenvalues(
        self, grid: Grid, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None
    ) -> Tensor:
        """lambda_k of C for the grid's wavenumbers, shape (n1, n2) in fft2 layout."""
        raise NotImplementedError

    def trace(self, grid: Grid) -> float:
        """sum_k lambda_k over the grid's modes: E u(x)^2 = E ||u||_{L2}^2 (tr C as n -> infinity)."""
        return self.eigenvalues(grid).sum().item()

    def grid_multiplier(
        self,
        grid: Grid,
        power: float,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """The eigenvalues of C_h^power on the grid, (n1 n2 lambda_k)^power (0 where lambda_k = 0
        and power < 0: the pseudo-inverse)."""
        n1, n2 = grid_shape(grid)
        lam = self.eigenvalues(grid, dtype=torch.float64, device=device) * (n1 * n2)
        out = torch.where(lam > 0, lam.clamp_min(1e-300) ** power, torch.zeros_like(lam))
        return out.to(dtype)

    def sqrt_cov(self, xi: Tensor) -> Tensor:
        """C_h^(1/2) xi for xi of shape (batch, channels, n1, n2): grid white noise -> a sample."""
        _check_field(xi, f"{type(self).__name__}.sqrt_cov")
        return apply_multiplier(xi, self.grid_multiplier(xi.shape[-2:], 0.5, xi.dtype, xi.device))

    def cov(self, x: Tensor) -> Tensor:
        """C_h x (preconditions a score: C grad log p)."""
        _check_field(x, f"{type(self).__name__}.cov")
        return apply_multiplier(x, self.grid_multiplier(x.shape[-2:], 1.0, x.dtype, x.device))

    def inv_sqrt_cov(self, x: Tensor) -> Tensor:
        """C_h^(-1/2) x (pseudo-inverse: modes with lambda_k = 0 are dropped)."""
        _check_field(x, f"{type(self).__name__}.inv_sqrt_cov")
        return apply_multiplier(x, self.grid_multiplier(x.shape[-2:], -0.5, x.dtype, x.device))

    def log_prob(self, x: Tensor) -> Tensor:
        """log N(x; 0, C_h) of grid values x (batch, channels, n1, n2), one number per sample;
        needs every lambda_k > 0 on the grid."""
        _check_field(x, f"{type(self).__name__}.log_prob")
        lam = self.eigenvalues(x.shape[-2:], dtype=torch.float64, device=x.device)
        if not bool((lam > 0).all()):
            raise ValueError(
                f"{type(self).__name__} has {(lam <= 0).sum().item()} zero eigenvalues on "
                f"the grid {tuple(x.shape[-2:])} (its covariance is singular; a Laplacian "
                "prior drops the mean mode unless zero_mode > 0), so it has no density"
            )
        z = self.inv_sqrt_cov(x)
        d = x[0].numel()
        logdet = x.shape[1] * torch.log(lam * x.shape[-2] * x.shape[-1]).sum()
        return -0.5 * z.pow(2).flatten(1).sum(1) - 0.5 * logdet.to(x.dtype) - 0.5 * d * math.log(2 * math.pi)

    def sample(
        self,
        n_samples: int,
        grid: Grid,
        generator: torch.Generator | None = None,
        channels: int = 1,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """n_samples draws of shape (n_samples, channels, n1, n2): C_h^(1/2) xi, xi ~ N(0, I)."""
        n1, n2 = grid_shape(grid)
        xi = torch.randn(
            (n_samples, channels, n1, n2),
            generator=generator,
            dtype=dtype,
            device=None if generator is None else generator.device,
        )
        return self.sqrt_cov(xi if device is None else xi.to(device))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


def _laplacian_symbol(grid: Grid, dtype, device) -> Tensor:
    """4 pi^2 |k|^2, the eigenvalues of -Delta on the unit torus."""
    k1, k2 = wavenumbers(grid, dtype, device)
    return 4 * math.pi**2 * (k1**2 + k2**2)


class WhitePrior(FourierPrior):
    """White noise, lambda_k = scale for every k: not trace class (E u(x)^2 = scale n1 n2)."""

    name = "white"

    def __init__(self, scale: float = 1.0) -> None:
        if scale <= 0:
            raise ValueError(f"white: scale must be positive, got {scale}")
        self.scale = float(scale)

    def eigenvalues(self, grid, dtype=torch.float64, device=None):
        return torch.full(grid_shape(grid), self.scale, dtype=dtype, device=device)


class LaplacianPrior(FourierPrior):
    """C = scale (-Delta)^(-p): lambda_k = scale (4 pi^2 |k|^2)^(-p) for k != 0.

    -Delta has the eigenvalue 0 on the constant (mean) mode, so that mode is set explicitly:
    lambda_0 = zero_mode (default 0: samples have zero mean over the torus, C is singular there).
    Trace class on T^2 iff p > 1.
    """

    name = "laplacian"

    def __init__(self, scale: float = 1.0, p: float = 1.5, zero_mode: float = 0.0) -> None:
        if scale <= 0 or p <= 0 or zero_mode < 0:
            raise ValueError(
                f"laplacian: needs scale > 0, p > 0, zero_mode >= 0; got scale={scale}, "
                f"p={p}, zero_mode={zero_mode}"
            )
        self.scale, self.p, self.zero_mode = float(scale), float(p), float(zero_mode)

    def eigenvalues(self, grid, dtype=torch.float64, device=None):
        sym = _laplacian_symbol(grid, torch.float64, device)
        lam = self.scale * sym.clamp_min(1e-300) ** (-self.p)
        lam[0, 0] = self.zero_mode
        return lam.to(dtype)


class BesselPrior(FourierPrior):
    """C = scale (s I - Delta)^(-p): lambda_k = scale (s + 4 pi^2 |k|^2)^(-p), s > 0 (Matern-like).
    Trace class on T^2 iff p > 1."""

    name = "bessel"

    def __init__(self, scale: float = 1.0, s: float = 1.0, p: float = 1.5) -> None:
        if scale <= 0 or s <= 0 or p <= 0:
            raise ValueError(f"bessel: needs scale > 0, s > 0, p > 0; got scale={scale}, s={s}, p={p}")
        self.scale, self.s, self.p = float(scale), float(s), float(p)

    def eigenvalues(self, grid, dtype=torch.float64, device=None):
        lam = self.scale * (self.s + _laplacian_symbol(grid, torch.float64, device)) ** (-self.p)
        return lam.to(dtype)


class SpectralLayerPrior(FourierPrior):
    """A fixed random spectral multiplier, as a randomly initialised FNO layer would apply.

    lambda_k = scale * w(|k1|, |k2|)^2 for |k1|, |k2| <= modes and 0 otherwise, with the table
    w ~ N(0, 1) of shape (modes + 1, modes + 1) drawn once from `seed`: the same lambda_k at
    every grid size (even in each wavenumber, so C_h is real and symmetric, Nyquist included).
    Finite rank, hence trace class.
    """

    name = "spectral_layer"

    def __init__(self, modes: int = 8, scale: float = 1.0, seed: int = 0) -> None:
        if modes < 0 or scale <= 0:
            raise ValueError(
                f"spectral_layer: needs modes >= 0 and scale > 0; got modes={modes}, scale={scale}"
            )
        self.modes, self.scale, self.seed = int(modes), float(scale), int(seed)
        gen = torch.Generator().manual_seed(self.seed)
        self._table = torch.randn((self.modes + 1, self.modes + 1), generator=gen, dtype=torch.float64) ** 2

    def eigenvalues(self, grid, dtype=torch.float64, device=None):
        k1, k2 = (k.abs().long() for k in wavenumbers(grid, torch.float64, None))
        inside = (k1 <= self.modes) & (k2 <= self.modes)
        lam = torch.zeros(k1.shape, dtype=torch.float64)
        lam[inside] = self.scale * self._table[k1[inside], k2[inside]]
        return lam.to(dtype=dtype, device=device)


class CombinedPrior(FourierPrior):
    """The SUM of priors' covariances, C = C_1 + ... + C_m (lambda_k adds; samples are sums of
    independent samples), e.g. a trace-class Laplacian plus a little white noise."""

    name = "combined"

    def __init__(self, parts: Sequence[FourierPrior | Mapping[str, Any]]) -> None:
        if not parts:
            raise ValueError("combined: needs at least one part")
        self.parts = [p if isinstance(p, FourierPrior) else make_prior(**dict(p)) for p in parts]

    def eigenvalues(self, grid, dtype=torch.float64, device=None):
        return sum(p.eigenvalues(grid, torch.float64, device) for p in self.parts).to(dtype)


PRIORS: dict[str, type[FourierPrior]] = {
    "white": WhitePrior,
    "laplacian": LaplacianPrior,
    "bessel": BesselPrior,
    "spectral_layer": SpectralLayerPrior,
    "combined": CombinedPrior,
}


def make_prior(name: str, **args: Any) -> FourierPrior:
    """The prior `name` from `PRIORS` with its arguments, e.g. make_prior("laplacian", p=1.5).
    `combined` takes parts=[{"name": ..., **args}, ...]."""
    if name not in PRIORS:
        raise ValueError(f"unknown prior {name!r}; known priors: {', '.join(sorted(PRIORS))}")
    return PRIORS[name](**args)


def _resample_axis(u_hat: Tensor, n_new: int, dim: int) -> Tensor:
    """Forward-normalised spectrum along `dim` moved to n_new points (even sizes)."""
    n = u_hat.shape[dim]
    if n_new == n:
        return u_hat
    small, large = min(n, n_new), max(n, n_new)
    h = small // 2
    if n_new < n:  # keep |k| < h; the two fine modes +-h fold onto the coarse Nyquist mode -h
        low, high = u_hat.narrow(dim, 0, h), u_hat.narrow(dim, n - h + 1, h - 1)
        nyq = u_hat.narrow(dim, h, 1) + u_hat.narrow(dim, n - h, 1)
        return torch.cat([low, nyq, high], dim)
    shape = list(u_hat.shape)
    shape[dim] = large - small - 1
    zeros = u_hat.new_zeros(shape)
    nyq = 0.5 * u_hat.narrow(dim, h, 1)  # the coarse Nyquist mode splits onto +-h
    return torch.cat([u_hat.narrow(dim, 0, h), nyq, zeros, nyq, u_hat.narrow(dim, h + 1, h - 1)], dim)


def resample(u: Tensor, grid: Grid) -> Tensor:
    """u (batch, channels, n1, n2) on another even grid, by its Fourier coefficients.

    Refinement is trigonometric interpolation (zero padding; the values on the coarse points are
    kept). Restriction keeps the coefficients with |k_i| < m_i/2 and puts on the coarse Nyquist
    mode -m_i/2 the sum of the fine modes +-m_i/2 (what sampling does to them), so
    resample(resample(u, fine), coarse) == u and a band-limited u is sampled exactly.
    """
    _check_field(u, "resample")
    target = grid_shape(grid)
    if any(n % 2 for n in (*u.shape[-2:], *target)):
        raise ValueError(f"resample needs even grids; got {tuple(u.shape[-2:])} -> {target}")
    u_hat = torch.fft.fft2(u, norm="forward")
    u_hat = _resample_axis(_resample_axis(u_hat, target[0], -2), target[1], -1)
    return torch.fft.ifft2(u_hat, norm="forward").real
