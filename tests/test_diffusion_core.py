"""Multilevel diffusion core: priors (spectra, traces, resolution consistency), the spectral layer
against a dense DFT, FNO / U-Net shapes and errors, the VP SDE in closed form, and the samplers
and probability-flow ODE with the exact score of Gaussian data."""

import math

import pytest
import torch

from ctdl.diffusion import (
    NETWORKS,
    PRIORS,
    VPSDE,
    BesselPrior,
    FNOScore,
    LaplacianPrior,
    SpectralConv2d,
    UNetScore,
    WhitePrior,
    apply_multiplier,
    build_score_network,
    check_network_grid,
    chunk_sizes,
    dsm_loss,
    exact_gaussian_score,
    log_likelihood,
    make_prior,
    preconditioned_score,
    probability_flow,
    resample,
    sample,
    sample_euler_maruyama,
    sample_predictor_corrector,
)
from ctdl.integrators import odeint

PRIOR_ARGS = {
    "white": {"scale": 0.5},
    "laplacian": {"scale": 30.0, "p": 1.5},
    "bessel": {"scale": 10.0, "s": 4.0, "p": 1.5},
    "spectral_layer": {"modes": 4, "scale": 2.0, "seed": 3},
    "combined": {"parts": [{"name": "laplacian", "scale": 30.0, "p": 1.5}, {"name": "white", "scale": 1e-3}]},
}


def mode_variance(u: torch.Tensor) -> torch.Tensor:
    """E|u_hat_k|^2 over the batch, u_hat = fft2(u, norm="forward") (the priors' convention)."""
    return torch.fft.fft2(u, norm="forward").abs().pow(2).mean(0)[0]


# ---------------------------------------------------------------------------------------- priors


@pytest.mark.parametrize("name", sorted(PRIOR_ARGS))
def test_prior_spectrum_matches_multiplier(name):
    """10^4 samples on 16x16: per-mode variance of fft2(u, "forward") = lambda_k.

    |u_hat_k|^2 / lambda_k is Exp(1) for complex modes (relative standard error 1/sqrt(N) = 0.010)
    and chi^2_1 for the real ones (k = -k: sqrt(2/N) = 0.014); over 256 modes the maximum of such
    errors stays below ~4 of the larger one, we allow 6 (0.085). Modes with lambda_k = 0 must be
    zero to rounding. The cross-covariance of two different rfft modes is 0 within 6/sqrt(N)."""
    prior = make_prior(name, **PRIOR_ARGS[name])
    n, N = 16, 10_000
    u = prior.sample(N, n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert u.shape == (N, 1, n, n)
    lam, emp = prior.eigenvalues(n), mode_variance(u)
    pos = lam > 0
    rel = (emp[pos] / lam[pos] - 1).abs().max().item()
    assert rel < 6 * math.sqrt(2 / N), f"{name}: max relative error of the mode variances {rel:.4f}"
    if (~pos).any():
        assert emp[~pos].max() < 1e-20 * lam.max()
    # decorrelation: normalised covariance between modes (0, 1) and (1, 0), (1, 1) and (2, 0)
    uh = torch.fft.fft2(u, norm="forward")[:, 0]
    for a, b in (((0, 1), (1, 0)), ((1, 1), (2, 0))):
        if lam[a] > 0 and lam[b] > 0:
            corr = (uh[:, a[0], a[1]] * uh[:, b[0], b[1]].conj()).mean().abs() / (lam[a] * lam[b]).sqrt()
            assert corr < 6 / math.sqrt(N)


def test_trace_under_refinement():
    """tr C on the grid, sum_k lambda_k = E u(x)^2 (checked against samples at n = 32):
    - laplacian p = 1.5 (> d/2 = 1, trace class): increments halve per doubling (tail ~ 1/n),
      the trace converges;
    - laplacian p = 1 (= d/2; the paper's p_A = 1/2 for the square root): increments stay
      ~ 2 pi log 2 * scale / (4 pi^2), the trace grows like log n;
    - white: exactly scale * n^2."""
    ns = [8, 16, 32, 64, 128, 256]
    trace_class = LaplacianPrior(scale=30.0, p=1.5)
    tr = [trace_class.trace(n) for n in ns]
    steps = [b - a for a, b in zip(tr, tr[1:], strict=False)]
    ratios = [b / a for a, b in zip(steps, steps[1:], strict=False)]
    assert all(0.4 < r < 0.6 for r in ratios), ratios
    assert tr[-1] - tr[-2] < 0.01 * tr[-1]
    borderline = LaplacianPrior(scale=30.0, p=1.0)
    tb = [borderline.trace(n) for n in ns]
    inc = [b - a for a, b in zip(tb, tb[1:], strict=False)]
    expect = 30.0 * 2 * math.pi * math.log(2) / (4 * math.pi**2)
    assert all(abs(d / expect - 1) < 0.1 for d in inc[1:]), (inc, expect)
    white = WhitePrior(scale=0.5)
    assert [white.trace(n) for n in ns] == [0.5 * n * n for n in ns]
    u = trace_class.sample(4000, 32, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert abs(u.pow(2).mean().item() / tr[2] - 1) < 0.03


def test_same_function_at_32_and_64():
    """Restriction = `resample` (keep the Fourier coefficients |k_i| < 16). 10^4 samples at 64,
    restricted to 32, have the per-mode variances of 10^4 samples drawn at 32 on the modes
    |k_i| < 16 (ratio within 6 sqrt(2/N) = 0.085 per mode, as above), for a trace-class prior
    and for white noise alike; and a band-limited function sampled at 32 and 64 restricts exactly."""
    g = torch.Generator().manual_seed(2)
    N = 10_000
    k = torch.fft.fftfreq(32, 1 / 32)
    low = (k.abs() < 16)[:, None] & (k.abs() < 16)[None, :]
    for prior in (make_prior("bessel", scale=10.0, s=4.0, p=1.5), WhitePrior(1.0)):
        fine = torch.cat([resample(u, 32) for u in prior.sample(N, 64, generator=g).split(2500)])
        coarse = prior.sample(N, 32, generator=g)
        ratio = mode_variance(fine)[low] / mode_variance(coarse)[low]
        assert (ratio - 1).abs().max() < 6 * math.sqrt(2 / N) * math.sqrt(2), ratio
    x = torch.arange(64, dtype=torch.float64) / 64

    def f(x1, x2):
        return (
            torch.sin(2 * math.pi * 3 * x1) * torch.cos(2 * math.pi * 5 * x2)
            + 0.3 * torch.cos(2 * math.pi * 14 * x1)
            + 0.2 * torch.cos(2 * math.pi * 16 * x2)
        )  # 16: the Nyquist mode of the 32-grid

    u64 = f(x[:, None], x[None, :])[None, None]
    u32 = f(x[::2, None], x[None, ::2])[None, None]
    torch.testing.assert_close(resample(u64, 32), u32, atol=1e-12, rtol=0)
    torch.testing.assert_close(resample(u32, 64), u64, atol=1e-12, rtol=0)
    torch.testing.assert_close(resample(resample(u64, 128), 64), u64, atol=1e-12, rtol=0)


def test_unknown_prior_and_bad_input():
    with pytest.raises(
        ValueError,
        match="unknown prior 'gauss'; known priors: bessel, combined, laplacian, spectral_layer, white",
    ):
        make_prior("gauss")
    assert set(PRIORS) == {"white", "laplacian", "bessel", "spectral_layer", "combined"}
    with pytest.raises(ValueError, match=r"\(batch, channels, n1, n2\), got shape \(8, 8\)"):
        WhitePrior().sqrt_cov(torch.zeros(8, 8))
    with pytest.raises(ValueError, match="zero eigenvalues"):
        LaplacianPrior().log_prob(torch.zeros(1, 1, 8, 8))


# -------------------------------------------------------------------------------- spectral layers


def test_spectral_layer_against_dense_dft():
    """SpectralConv2d on 8x8 (modes 3, and modes 4 = n/2) equals the explicit sum
    y(j) = Re sum_{k1 in {0..m-1, -m..-1}, 0 <= k2 < m} c_k2 (W_k x_hat_k) e^{2 pi i k.j / n},
    c_0 = 1, c_k2 = 2 (the Hermitian half), x_hat = F x F^T with the DFT matrix F_kj = e^{-2 pi i kj/n}/n."""
    torch.manual_seed(0)
    n = 8
    for m in (3, 4):
        layer = SpectralConv2d(2, 3, m).double()
        x = torch.randn(5, 2, n, n, dtype=torch.float64)
        j = torch.arange(n, dtype=torch.float64)
        F = torch.exp(-2j * math.pi * j[:, None] * j[None, :] / n) / n
        x_hat = torch.einsum("ka,bcaz,lz->bckl", F, x.to(F.dtype), F)
        W = torch.zeros(2, 3, n, n, dtype=F.dtype)
        W[:, :, :m, :m] = torch.view_as_complex(layer.weight_pos.detach())
        W[:, :, n - m :, :m] = torch.view_as_complex(layer.weight_neg.detach())
        y_hat = torch.einsum("bikl,iokl->bokl", x_hat, W)
        c = torch.ones(n, dtype=torch.float64)
        c[1:] = 2.0
        E = torch.exp(2j * math.pi * j[:, None] * j[None, :] / n)  # E[k, j]
        ref = torch.einsum("bokl,ka,lz,l->boaz", y_hat, E, E, c.to(F.dtype)).real
        torch.testing.assert_close(layer(x), ref, atol=1e-12, rtol=1e-10)


def test_fno_any_resolution_and_time():
    """One FNOScore runs at 16, 32, 64; for a smooth input the outputs agree across grids on the
    common points (pointwise layers commute with sampling, the spectral ones see the same modes
    |k| < 8 up to aliasing from |k| >= 9 of an analytic function: measured 2.5e-6 relative, with
    the spectral weights scaled up 16x so that they matter); per-sample t changes the output
    (1-3% here at initialisation) and matches separate scalar-t calls; odd or too-small grids are
    refused naming the grid and the modes."""
    torch.manual_seed(0)
    net = FNOScore(channels=1, width=16, modes=8, layers=2)
    with torch.no_grad():
        for layer in net.spectral:
            layer.weight_pos.mul_(16)
            layer.weight_neg.mul_(16)
    outs = {}
    for n in (16, 32, 64):
        x = torch.arange(n) / n
        u = (torch.sin(2 * math.pi * x)[:, None] * torch.cos(2 * math.pi * 2 * x)[None, :])[None, None]
        out = net(u.expand(3, 1, n, n), torch.tensor([0.1, 0.5, 0.9]))
        assert out.shape == (3, 1, n, n) and torch.isfinite(out).all()
        outs[n] = out.detach()
    rel = ((outs[64][..., ::4, ::4] - outs[16]).norm() / outs[16].norm()).item()
    assert rel < 1e-4, rel
    assert (outs[32][0] - outs[32][1]).norm() > 3e-3 * outs[32][0].norm()  # same x, different t
    x = torch.randn(2, 1, 32, 32)
    both = net(x, torch.tensor([0.5, 0.9]))
    torch.testing.assert_close(both, torch.cat([net(x[:1], 0.5), net(x[1:], 0.9)]))
    for bad, grid in ((15, "15x15"), (14, "14x14")):
        with pytest.raises(ValueError, match=rf"grid {grid} cannot hold modes=8.*at least 2\*modes = 16"):
            net(torch.zeros(1, 1, bad, bad), 0.5)
    with pytest.raises(ValueError, match=r"expects images \(batch, 1, n1, n2\), got \(1, 3, 16, 16\)"):
        net(torch.zeros(1, 3, 16, 16), 0.5)


def test_unet_shapes_and_errors():
    torch.manual_seed(0)
    net = UNetScore(channels=1, base=8, levels=2, time_dim=16)
    x = torch.randn(2, 1, 28, 28)
    out = net(x, torch.tensor([0.2, 0.8]))
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert (net(x[:1], 0.2) - net(x[:1], 0.8)).abs().max() > 1e-4
    with pytest.raises(ValueError, match="divisible by 4, got 30x30"):
        net(torch.zeros(1, 1, 30, 30), 0.5)


# ------------------------------------------------------------------------------------------ VP SDE


def test_vp_closed_form():
    """alpha(t) = exp(-1/2 int beta) against the trapezoid rule on 2*10^5 points and REFERENCE's
    exp(-t^2 19.9/4 - 0.05 t); v = 1 - alpha^2 against an RK4 solve of dv/dt = beta (1 - v)."""
    sde = VPSDE()
    ts = torch.linspace(0, 1, 200_001, dtype=torch.float64)
    integral = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumulative_trapezoid(sde.beta(ts), ts)])
    check = torch.tensor([0.0, 0.01, 0.3, 0.77, 1.0], dtype=torch.float64)
    idx = (check * 200_000).round().long()
    torch.testing.assert_close(sde.alpha(check), torch.exp(-0.5 * integral[idx]), atol=1e-10, rtol=0)
    reference = torch.exp(-(check**2) * 19.9 / 4 - 0.05 * check)  # REFERENCE.md section 4
    torch.testing.assert_close(sde.alpha(check), reference, atol=1e-14, rtol=0)
    v = odeint(
        lambda t, v: sde.beta(t) * (1 - v),
        torch.zeros(1, dtype=torch.float64),
        check,
        method="rk4",
        steps=2000,
    )[:, 0]
    torch.testing.assert_close(sde.variance(check), v, atol=1e-10, rtol=0)
    torch.testing.assert_close(sde.variance(check), 1 - sde.alpha(check) ** 2, atol=1e-14, rtol=0)


def test_perturbation_statistics():
    """x_t = alpha x0 + sqrt(v) C^(1/2) xi: the returned noise reproduces x_t exactly; over 10^4
    draws at per-sample t in {0.05, 0.5} the mean is alpha x0 (within 5 standard errors) and the
    per-mode variance of x_t - alpha x0 is v lambda_k (within 6 sqrt(2/N) as for the priors)."""
    sde, prior = VPSDE(), BesselPrior(scale=10.0, s=4.0, p=1.5)
    g = torch.Generator().manual_seed(4)
    N, n = 10_000, 8
    x0 = prior.sample(1, n, generator=g, dtype=torch.float64).expand(N, 1, n, n)
    t = torch.tensor([0.05, 0.5], dtype=torch.float64).repeat_interleave(N // 2)
    xt, noise = sde.perturb(x0, t, prior, generator=g)
    a, v = sde.alpha(t)[:, None, None, None], sde.variance(t)[:, None, None, None]
    torch.testing.assert_close(xt, a * x0 + v.sqrt() * noise, atol=1e-12, rtol=0)
    lam = prior.eigenvalues(n)
    for half in (slice(0, N // 2), slice(N // 2, N)):
        d = xt[half] - a[half] * x0[half]
        se = (v[half][0] * lam.sum()).sqrt().item() / math.sqrt(N // 2)
        assert d.mean(0).abs().max() < 5 * se
        rel = (mode_variance(d) / (v[half][0, 0] * lam) - 1).abs().max()
        assert rel < 6 * math.sqrt(2 / (N // 2)), rel


# ----------------------------------------------------------------------- samplers with exact score

DATA = BesselPrior(scale=20.0, s=2.0, p=1.2)  # X_0 ~ N(0, Sigma): Sigma commutes with C
NOISE = LaplacianPrior(scale=20.0, p=1.5, zero_mode=0.5)  # trace class, mean mode kept


@pytest.mark.parametrize("sampler", ["euler_maruyama", "predictor_corrector"])
def test_reverse_sampler_reproduces_gaussian_covariance(sampler):
    """4000 samples on 8x8 with the exact score, 100 steps: per-mode variances equal Sigma's.

    Monte Carlo: |u_hat_k|^2 / sigma_k has relative standard error <= sqrt(2/N) = 0.022 per mode,
    so the maximum over the 64 modes is allowed 5 of them (0.11); the mean of the relative errors
    over the modes (~34 independent) has standard error ~0.004 and is allowed 0.02 for EM's O(h)
    bias (+0.008 measured) and 0.03 for PC (the Langevin corrector adds ~ e c / (2 p), measured
    +0.006 at snr 0.08, +0.028 at snr 0.16). Sampling from N(0, C) instead would be off by 65-95%."""
    sde, n, N = VPSDE(), 8, 4000
    score = exact_gaussian_score(DATA, NOISE, sde)
    g = torch.Generator().manual_seed(5)
    if sampler == "euler_maruyama":
        x = sample_euler_maruyama(
            score, NOISE, (N, 1, n, n), sde, steps=100, generator=g, dtype=torch.float64
        )
        mean_tol = 0.02
    else:
        x = sample_predictor_corrector(
            score, NOISE, (N, 1, n, n), sde, steps=100, snr=0.08, generator=g, dtype=torch.float64
        )
        mean_tol = 0.03
    rel = mode_variance(x) / DATA.eigenvalues(n) - 1
    assert rel.abs().max() < 5 * math.sqrt(2 / N), rel
    assert rel.mean().abs() < mean_tol, rel.mean()
    assert x.mean(0).abs().max() < 5 * math.sqrt(DATA.trace(n) / N)


def test_probability_flow_invertible():
    """Probability-flow ODE with the exact score, float64, RK4 with 200 steps: eps -> 1 -> eps
    returns x0 to 1e-4, after moving it by O(1); x(1) has the prior's per-mode variances roughly."""
    sde, n = VPSDE(), 8
    score = exact_gaussian_score(DATA, NOISE, sde)
    x0 = DATA.sample(64, n, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    xT = probability_flow(score, NOISE, x0, 1e-3, 1.0, sde, steps=200)
    back = probability_flow(score, NOISE, xT, 1.0, 1e-3, sde, steps=200)
    assert (xT - x0).abs().max() > 1.0
    assert (back - x0).abs().max() < 1e-4


@pytest.mark.slow
def test_log_likelihood_exact_and_hutchinson():
    """On 4x4 (D = 16) the probability-flow log-likelihood with the exact divergence equals
    log N(x; 0, alpha(eps)^2 Sigma + v(eps) C) to 0.02 nats (RK4, 100 steps; the rest is the
    terminal law N(0, v(1) C) lacking alpha(1)^2 Sigma ~ 4e-5 Sigma); Hutchinson's estimator,
    one Rademacher probe per copy, averages over 256 copies to the same value within 4
    standard errors."""
    sde, n, eps = VPSDE(), 4, 1e-3
    score = exact_gaussian_score(DATA, NOISE, sde)
    x = DATA.sample(3, n, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    ll, _ = log_likelihood(score, NOISE, x, sde, steps=100, eps=eps)
    marginal = sde.alpha(eps) ** 2 * DATA.eigenvalues(n) + sde.variance(eps) * NOISE.eigenvalues(n)

    class Marginal(BesselPrior):
        def eigenvalues(self, grid, dtype=torch.float64, device=None):
            return marginal.to(dtype)

    exact = Marginal().log_prob(x)
    assert (ll - exact).abs().max() < 0.02, (ll, exact)
    copies = x[:1].expand(256, 1, n, n)
    hutch, _ = log_likelihood(
        score,
        NOISE,
        copies,
        sde,
        steps=50,
        divergence="hutchinson",
        generator=torch.Generator().manual_seed(8),
    )
    assert hutch.std() > 0.01  # the estimator is random ...
    assert (hutch.mean() - exact[0]).abs() < 4 * hutch.std() / math.sqrt(256) + 0.02  # ... and unbiased
    with pytest.raises(ValueError, match="unknown divergence 'trace'; known: exact, hutchinson"):
        log_likelihood(score, NOISE, x, sde, divergence="trace")


def test_exact_score_is_the_gaussian_gradient():
    """The closed-form score equals autograd's grad log N(x; 0, alpha^2 Sigma + v C) on 4x4."""
    sde, n = VPSDE(), 4
    score = exact_gaussian_score(DATA, NOISE, sde)
    x = DATA.sample(2, n, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    x.requires_grad_(True)
    t = torch.tensor([0.2, 0.7], dtype=torch.float64)
    # dense covariance of the grid values at each t
    e = torch.eye(n * n, dtype=torch.float64).reshape(n * n, 1, n, n)
    total = []
    for ti in t:
        lam = sde.alpha(ti) ** 2 * DATA.eigenvalues(n) + sde.variance(ti) * NOISE.eigenvalues(n)
        total.append(apply_multiplier(e, lam * n * n).reshape(n * n, n * n))
    logp = sum(
        torch.distributions.MultivariateNormal(torch.zeros(n * n, dtype=torch.float64), P).log_prob(
            x[i].flatten()
        )
        for i, P in enumerate(total)
    )
    (grad,) = torch.autograd.grad(logp, x)
    torch.testing.assert_close(score(x.detach(), t), grad, atol=1e-9, rtol=1e-7)


def test_predictor_corrector_refuses_too_few_steps():
    """Below beta_max (T - eps) steps the corrector's 1 - beta dt turns negative: a clear error, not NaN."""
    from ctdl.diffusion import make_prior, sample_predictor_corrector

    prior = make_prior("white", scale=1.0 / 64)
    with pytest.raises(ValueError, match=r"needs steps > beta_max \(T - eps\) = 20.0, .* got steps=10"):
        sample_predictor_corrector(lambda x, t: torch.zeros_like(x), prior, (2, 1, 8, 8), steps=10)
    # data ~ N(0, C) with the noise's own C: X_t ~ N(0, C) at every t, so C grad log p_t(x) = -x
    out = sample_predictor_corrector(lambda x, t: -x, prior, (2, 1, 8, 8), steps=25, preconditioned=True)
    assert torch.isfinite(out).all()


# ------------------------------------------------------- sampling by name, the networks' grids, the loss
def test_sample_by_name_in_chunks_is_the_samplers_in_turn():
    """`ctdl.diffusion.sample` draws chunks of at most batch_size one after the other from the same
    generator: the same numbers as calling the sampler once per chunk."""
    sde = VPSDE()
    exact = exact_gaussian_score(DATA, NOISE, sde)
    score = lambda x, t: NOISE.cov(exact(x, t))  # noqa: E731 (the preconditioned score C s)
    kwargs = dict(steps=25, eps=1e-3, dtype=torch.float64)  # the corrector needs steps > 20
    for name, sampler in (("em", sample_euler_maruyama), ("pc", sample_predictor_corrector)):
        chunked = sample(
            score,
            NOISE,
            sde,
            (5, 1, 8, 8),
            sampler=name,
            batch_size=2,
            generator=torch.Generator().manual_seed(1),
            **kwargs,
        )
        g = torch.Generator().manual_seed(1)
        turns = [
            sampler(score, NOISE, (m, 1, 8, 8), sde, preconditioned=True, generator=g, **kwargs)
            for m in (2, 2, 1)
        ]
        assert torch.equal(chunked, torch.cat(turns))
    assert chunk_sizes(5, None) == [5] and chunk_sizes(5, 5) == [5] and chunk_sizes(7, 3) == [3, 3, 1]
    with pytest.raises(ValueError, match="batch_size must be a positive number of samples or None, got 0"):
        chunk_sizes(3, 0)
    with pytest.raises(ValueError, match="unknown sampler 'ddim'; known samplers: em, pc"):
        sample(score, NOISE, sde, (1, 1, 8, 8), steps=2, eps=1e-3, sampler="ddim")


def test_networks_by_name_and_their_grids():
    fno = build_score_network("fno", width=4, modes=4, layers=1, time_dim=8)
    unet = build_score_network("unet", base=4, levels=2, time_dim=8)
    assert isinstance(fno, FNOScore) and isinstance(unet, UNetScore) and set(NETWORKS) == {"fno", "unet"}
    check_network_grid("fno", fno, 8)
    check_network_grid("unet", unet, 12)
    with pytest.raises(ValueError, match=r"MultilevelDiffusion\(network='fno', modes=4\): the grid 6x6"):
        check_network_grid("fno", fno, 6)
    with pytest.raises(ValueError, match="the grid 14x14 is not divisible by 2\\^levels = 4"):
        check_network_grid("unet", unet, 14)
    with pytest.raises(ValueError, match="unknown score network 'vit'; known networks: fno, unet"):
        build_score_network("vit")


def test_dsm_loss_is_seeded_and_the_preconditioned_score_rescales_the_noise():
    sde, net = VPSDE(), build_score_network("fno", width=4, modes=2, layers=1, time_dim=8)
    x0 = NOISE.sample(6, 8, generator=torch.Generator().manual_seed(0))
    losses = [dsm_loss(net, sde, NOISE, x0, 1e-3, generator=torch.Generator().manual_seed(3)) for _ in "ab"]
    assert losses[0].item() == losses[1].item() > 0
    t = torch.full((6,), 0.5)
    v = sde.variance(t).reshape(-1, 1, 1, 1)
    assert torch.allclose(preconditioned_score(net, sde, x0, 0.5), -net(x0, t) / v.sqrt())
