"""ctdl.potential: the exact gradient, time derivative and Laplacian against autograd."""

import pytest
import torch
from torch.func import functional_call

from ctdl.potential import Potential, potential_derivatives


def perturbed(dim, depth, cond_dim, width=12, seed=0):
    """A float64 potential with every parameter moved off its initial value (w = 1, c = 0 ...)."""
    torch.manual_seed(seed)
    P = Potential(dim, width, depth=depth, cond_dim=cond_dim).double()
    with torch.no_grad():
        for p in P.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return P


@pytest.mark.parametrize("dim", [1, 2, 5, 43])
@pytest.mark.parametrize("depth", [2, 3, 4])
@pytest.mark.parametrize("cond_dim", [0, 3])
def test_exact_derivatives_match_autograd_hessian(dim, depth, cond_dim):
    P = perturbed(dim, depth, cond_dim)
    n = 3
    x, t = torch.randn(n, dim, dtype=torch.float64), torch.rand(n, dtype=torch.float64)
    y = torch.randn(n, cond_dim, dtype=torch.float64) if cond_dim else None
    grad_x, d_t, lap = P.grad_laplacian(x, t, y)
    assert grad_x.shape == (n, dim) and d_t.shape == (n,) and lap.shape == (n,)
    for k in range(n):
        yk = None if y is None else y[k : k + 1]

        def phi(xx, tt, k=k, yk=yk):
            return P(xx[None], tt[None], yk)[0]

        gx, gt = torch.autograd.functional.jacobian(phi, (x[k], t[k]))
        H = torch.autograd.functional.hessian(lambda xx, k=k: phi(xx, t[k]), x[k])
        assert torch.linalg.norm(grad_x[k] - gx) <= 1e-10 * torch.linalg.norm(gx)
        assert abs(d_t[k] - gt) <= 1e-10 * abs(gt)
        assert abs(lap[k] - H.trace()) <= 1e-10 * abs(H.trace())


class GradLaplacian(torch.nn.Module):
    """Wraps Potential.grad_laplacian as a forward, so torch.func.functional_call can bind parameters."""

    def __init__(self, potential):
        super().__init__()
        self.potential = potential

    def forward(self, x, t, y):
        return self.potential.grad_laplacian(x, t, y)


@pytest.mark.parametrize("dim, depth", [(3, 2), (3, 3), (6, 2)])  # per-coordinate path (d <= 4), stacked one
def test_gradient_of_a_loss_through_the_exact_laplacian_matches_finite_differences(dim, depth):
    """Gradients with respect to the parameters and to x, t and y (training backpropagates
    through x(t) as well as through the weights)."""
    module = GradLaplacian(perturbed(dim, depth, 2, width=5))
    x, t = torch.randn(4, dim, dtype=torch.float64), torch.rand(4, dtype=torch.float64)
    y = torch.randn(4, 2, dtype=torch.float64)
    names = [name for name, _ in module.named_parameters()]

    def loss(x, t, y, *params):
        g, dt, lap = functional_call(module, dict(zip(names, params, strict=True)), (x, t, y))
        return (lap + 0.5 * g.pow(2).sum(1) - dt).pow(2).mean()

    inputs = (x, t, y) + tuple(p.detach().clone() for p in module.parameters())
    assert torch.autograd.gradcheck(loss, tuple(v.requires_grad_() for v in inputs))


@pytest.mark.parametrize("dim", [3, 6])
def test_second_derivatives_through_the_exact_laplacian(dim):
    """Double backward (e.g. a loss on grad_x of the Laplacian) is exact on both paths, including
    the fused hand-written backwards of the stacked one (d > 4)."""
    module = GradLaplacian(perturbed(dim, 3, 1, width=4))
    t, y = torch.rand(3, dtype=torch.float64), torch.randn(3, 1, dtype=torch.float64)

    def laplacian(x, K):
        return functional_call(module, {"potential.K": K}, (x, t, y))[2]

    x = torch.randn(3, dim, dtype=torch.float64, requires_grad=True)
    K = module.potential.K.detach().clone().requires_grad_()
    assert torch.autograd.gradgradcheck(laplacian, (x, K))


def test_float32_agrees_with_float64():
    P64 = perturbed(6, 2, 0, width=32)
    P32 = Potential(6, 32).float()
    P32.load_state_dict({k: v.float() for k, v in P64.state_dict().items()})
    x, t = torch.randn(64, 6, dtype=torch.float64), torch.rand(64, dtype=torch.float64)
    for a, b in zip(P32.grad_laplacian(x.float(), t.float()), P64.grad_laplacian(x, t), strict=True):
        assert a.dtype == torch.float32
        assert torch.allclose(a.double(), b, rtol=1e-4, atol=1e-4)


def test_defaults_and_bad_inputs():
    P = Potential(5, 8)
    assert P.rank == 6 and Potential(43, 8).rank == 10
    assert Potential(2, 8, cond_dim=3).rank == 6 and Potential(5, 8, cond_dim=6).rank == 10  # min(10, d+1+q)
    assert torch.equal(P.w.detach(), torch.ones(8)) and P.c.abs().sum() == 0
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 5\), got \(4, 3\)"):
        P(torch.randn(4, 3), 0.0)
    with pytest.raises(ValueError, match=r"y must have shape \(4, 2\), got None"):
        Potential(5, 8, cond_dim=2)(torch.randn(4, 5), 0.0)
    with pytest.raises(ValueError, match="depth must be >= 2"):
        Potential(5, 8, depth=1)
    assert Potential(43, 8, rank="full").A.shape == (44, 44) and Potential(43, 8, rank=20).rank == 20
    for bad in (0, 45, "half"):
        with pytest.raises(ValueError, match=r"rank must be an integer in \[1, 44\]"):
            Potential(43, 8, rank=bad)


def test_autograd_and_hutchinson_traces():
    P = perturbed(4, 3, 0)
    x, t = torch.randn(5, 4, dtype=torch.float64), torch.rand(5, dtype=torch.float64)
    exact = P.grad_laplacian(x, t)
    auto = potential_derivatives(P, x, t, trace="autograd")
    for a, b in zip(auto, exact, strict=True):
        assert torch.allclose(a, b, atol=1e-12)
    # Hutchinson with the d coordinate vectors as probes (summed) is exact; random probes are unbiased
    eye = torch.eye(4, dtype=torch.float64)
    probes = sum(
        potential_derivatives(P, x, t, trace="hutchinson", noise=eye[i].expand(5, 4))[2] for i in range(4)
    )
    assert torch.allclose(probes, exact[2], atol=1e-12)
    torch.manual_seed(0)
    xs, ts = x.repeat(4000, 1), t.repeat(4000)
    est = potential_derivatives(P, xs, ts, trace="hutchinson", noise=torch.randn_like(xs))[2]
    assert torch.allclose(est.view(4000, 5).mean(0), exact[2], rtol=0.1, atol=0.1)
    with torch.no_grad():  # usable in evaluation
        assert torch.allclose(potential_derivatives(P, x, t, trace="autograd")[2], exact[2])
    with pytest.raises(ValueError, match="unknown trace method 'fd'; known methods: exact, autograd"):
        potential_derivatives(P, x, t, trace="fd")


def test_gradient_alone_matches_grad_laplacian():
    P = perturbed(7, 3, 2)
    x, t, y = (
        torch.randn(6, 7, dtype=torch.float64),
        torch.rand(6, dtype=torch.float64),
        torch.randn(6, 2, dtype=torch.float64),
    )
    g, dt = P.gradient(x, t, y)
    g2, dt2, _ = P.grad_laplacian(x, t, y)
    assert torch.equal(g, g2) and torch.equal(dt, dt2)


@pytest.mark.parametrize("dim, k", [(2, 2), (3, 5), (7, 7), (7, 3)])  # per-coordinate and stacked paths
def test_directional_trace_matches_autograd_hessian(dim, k):
    """tr(M' Hess M), the diffusion term tr(D Hess Phi) with D = M M', against autograd's Hessian."""
    P = perturbed(dim, 3, 0)
    M = torch.randn(dim, k, dtype=torch.float64)
    x, t = torch.randn(4, dim, dtype=torch.float64), torch.rand(4, dtype=torch.float64)
    _, _, trace = P.grad_laplacian(x, t, directions=M)
    for i in range(4):
        H = torch.autograd.functional.hessian(lambda xx, i=i: P(xx[None], t[i : i + 1])[0], x[i])
        expected = torch.trace(M.T @ H @ M)
        assert abs(trace[i] - expected) <= 1e-10 * abs(expected)
    with pytest.raises(ValueError, match=rf"directions must have shape \({dim}, k\), got \({dim + 1}, 2\)"):
        P.grad_laplacian(x, t, directions=torch.eye(dim + 1, 2, dtype=torch.float64))


@pytest.mark.parametrize("depth, cond_dim", [(2, 0), (3, 2)])
def test_widening_keeps_phi_and_its_derivatives_and_the_new_units_learn(depth, cond_dim):
    torch.manual_seed(0)
    phi = Potential(3, 6, depth=depth, cond_dim=cond_dim).double()
    wide = phi.widened(10)
    assert wide.width == 10 and wide.K0.shape == (10, 3 + 1 + cond_dim) and wide.A.dtype == torch.float64
    x, t = torch.randn(20, 3, dtype=torch.float64), 0.3
    y = torch.randn(20, cond_dim, dtype=torch.float64) if cond_dim else None
    torch.testing.assert_close(wide(x, t, y), phi(x, t, y))
    for a, b in zip(wide.grad_laplacian(x, t, y), phi.grad_laplacian(x, t, y), strict=True):
        torch.testing.assert_close(a, b)
    wide(x, t, y).sum().backward()
    assert wide.w.grad[6:].abs().min() > 0  # d Phi / d w_new = u_new(s), not zero
    assert phi.width == 6 and phi.K0.shape[0] == 6  # the source is unchanged
    with pytest.raises(ValueError, match="widen: width 4 is smaller than the potential's 6"):
        phi.widened(4)
