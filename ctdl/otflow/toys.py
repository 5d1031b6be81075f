"""FFJORD's 2-D toy densities (Grathwohl et al. 2019, lib/toy_data.py): 8gaussians,
checkerboard, swissroll, pinwheel, 2spirals, circles, moons, rings, in FFJORD's scales so that
figures compare with the published ones.

Unlike the original, every point is drawn from the numpy Generator that is passed in (FFJORD's
2spirals and checkerboard use the global numpy state, swissroll, circles and moons call
scikit-learn without a random state), every generator returns exactly n points (pinwheel and
2spirals dropped n mod 5 and n mod 2), and rings, circles and moons draw uniform angles instead of
a fixed lattice of angles (so the data are i.i.d. draws of a density; FFJORD's rings also built
one ring's x from another ring's angles, and its 2spirals made the second spiral the mirror image
of the first one's very points). The true density is known in closed form for 8gaussians,
checkerboard, circles and rings (`toy_log_density`)."""

from __future__ import annotations

import math

import numpy as np
import torch

TOY_NAMES = ["8gaussians", "checkerboard", "swissroll", "pinwheel", "2spirals", "circles", "moons", "rings"]
TOYS_WITH_DENSITY = ["8gaussians", "checkerboard", "circles", "rings"]

_8G_SCALE = 1.414  # FFJORD divides by 1.414 (not sqrt 2); kept so the scale matches exactly
_8G_RADIUS = 4.0 / _8G_SCALE
_8G_STD = 0.5 / _8G_SCALE
_CHECKER_AREA = 32.0  # 8 squares of side 2
# Noisy rings as (radii, noise std): equal weights (circles' and rings' counts are equal up to n mod k)
_RINGS = {"circles": ((3.0, 1.5), 0.24), "rings": ((3.0, 2.25, 1.5, 0.75), 0.08)}


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


def check_toy(name: str) -> None:
    """Raise a ValueError naming the known toys unless `name` is one of them."""
    if name not in _TOY_SAMPLERS:
        raise ValueError(f"unknown 2-D density {name!r}; known: {', '.join(TOY_NAMES)}")


def make_toy_density(name: str, n: int, rng: np.random.Generator | int) -> np.ndarray:
    """Draw n points (n, 2) float64 of one of FFJORD's 2-D toy densities.

    Every random number comes from ``rng`` (a numpy Generator, or an int seed for
    ``numpy.random.default_rng``); the result depends on nothing else. Scales are FFJORD's.
    """
    check_toy(name)
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
    -inf elsewhere.
    circles, rings: equal mixtures of rings R (cos phi, sin phi) + N(0, s^2 I), phi ~ U[0, 2 pi):
    p_R(x) = exp(-(r^2 + R^2) / (2 s^2)) I_0(r R / s^2) / (2 pi s^2), r = |x| (circles: R in {3, 1.5},
    s = 0.24; rings: R in {3, 2.25, 1.5, 0.75}, s = 0.08). Other toys: NotImplementedError.
    """
    check_toy(name)
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
    if name in _RINGS:
        return _log_ring_mixture(x, *_RINGS[name])
    cell = torch.floor(x / 2.0)
    inside = ((x >= -4.0) & (x < 4.0)).all(dim=1) & (cell.sum(dim=1) % 2 == 0)
    out = torch.full(x.shape[:1], -math.inf, dtype=x.dtype, device=x.device)
    return out.masked_fill(inside, -math.log(_CHECKER_AREA))


def _log_ring_mixture(x: torch.Tensor, radii: tuple[float, ...], s: float) -> torch.Tensor:
    """log of the equal mixture of noisy rings; I_0(z) = i0e(z) e^z keeps large z finite:
    log p_R = -(r - R)^2 / (2 s^2) + log i0e(r R / s^2) - log(2 pi s^2)."""
    r = x.norm(dim=1, keepdim=True)
    big_r = torch.tensor(radii, dtype=x.dtype, device=x.device)
    log_p = -(r - big_r).pow(2) / (2 * s * s) + torch.special.i0e(r * big_r / (s * s)).log()
    return torch.logsumexp(log_p, dim=1) - math.log(len(radii)) - math.log(2 * math.pi * s * s)
