"""ctdl.dynamics and ctdl.blocks: stability, adjointness, time dependence, ResNet = Euler."""

import pytest
import torch
import torch.nn.functional as F

from ctdl.blocks import ODEBlock
from ctdl.dynamics import (
    AntisymmetricLayer,
    ConvAntisymmetricLayer,
    ConvHamiltonianLayer,
    ConvResNetLayer,
    HamiltonianLayer,
    ResNetLayer,
    TimeParameter,
    build_dynamics,
)
from ctdl.integrators import odeint


@pytest.fixture(autouse=True)
def float64():
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)
    yield
    torch.set_default_dtype(torch.float32)


def perturbation_growth(f, width, T=5.0):
    """Largest ||u(T) - v(T)|| / ||u(0) - v(0)|| over random nearby starting points."""
    u = torch.randn(64, width)
    d = 1e-6 * torch.randn_like(u)
    t = torch.tensor([0.0, T])
    a = odeint(f, u, t, method="rk4", steps=100)[-1]
    b = odeint(f, u + d, t, method="rk4", steps=100)[-1]
    return ((a - b).norm(dim=1) / d.norm(dim=1)).max().item()


def test_antisymmetric_jacobian_eigenvalues_have_nonpositive_real_part():
    f = AntisymmetricLayer(12, gamma=0.0)
    with torch.no_grad():
        f.K.values.mul_(4.0)
    plain = ResNetLayer(12)
    with torch.no_grad():
        plain.K.values.copy_(f.K.values)
    t = torch.tensor(0.0)
    worst_anti, worst_plain = -1.0, -1.0
    for _ in range(10):
        u = 2 * torch.randn(12)
        J = torch.autograd.functional.jacobian(lambda v, f=f: f(t, v[None])[0], u)
        Jp = torch.autograd.functional.jacobian(lambda v: plain(t, v[None])[0], u)
        worst_anti = max(worst_anti, torch.linalg.eigvals(J).real.max().item())
        worst_plain = max(worst_plain, torch.linalg.eigvals(Jp).real.max().item())
    assert worst_anti <= 1e-12
    assert worst_plain > 0.1  # the same K without antisymmetrisation is unstable


def test_antisymmetric_linear_dynamics_do_not_amplify_perturbations():
    anti = AntisymmetricLayer(16, act="identity", gamma=0.0)
    plain = ResNetLayer(16, act="identity")
    with torch.no_grad():
        anti.K.values.mul_(3.0)
        plain.K.values.copy_(anti.K.values)
    assert perturbation_growth(anti, 16) <= 1.0 + 1e-9
    assert perturbation_growth(plain, 16) > 2.0


def test_conv_transpose_is_the_adjoint_and_conv_antisymmetric_operator_is_skew():
    f = ConvAntisymmetricLayer(3, gamma=0.0, act="identity")
    t = torch.tensor(0.0)
    u, v = torch.randn(2, 3, 6, 6), torch.randn(2, 3, 6, 6)
    assert torch.allclose((v * f.conv(t, u)).sum(), (f.conv_transpose(t, v) * u).sum())
    skew = lambda w: f(t, w) - f.bias(t)  # noqa: E731  (K - K^T) w
    assert torch.allclose((v * skew(u)).sum(), -(skew(v) * u).sum())
    assert abs((u * skew(u)).sum().item()) < 1e-10


def test_time_parameter_piecewise_constant_and_linear():
    p = TimeParameter((2,), pieces=4, T=2.0)
    with torch.no_grad():
        p.values.copy_(torch.arange(8.0).view(4, 2))
    assert p(0.0).tolist() == [0.0, 1.0] and p(0.49).tolist() == [0.0, 1.0]
    assert p(0.5).tolist() == [2.0, 3.0] and p(2.0).tolist() == [6.0, 7.0]
    lin = TimeParameter((1,), pieces=3, T=1.0, interpolation="linear")
    with torch.no_grad():
        lin.values.copy_(torch.tensor([[0.0], [1.0], [3.0]]))
    assert lin(0.25).item() == pytest.approx(0.5) and lin(0.75).item() == pytest.approx(2.0)
    assert p.smoothness().item() == pytest.approx(3 * 8 / 0.5)


def test_forward_euler_block_is_a_resnet():
    f = ResNetLayer(5, pieces=4)
    block = ODEBlock(f, T=1.0, steps=4, method="euler")
    u = torch.randn(7, 5)
    x = u
    for k in range(4):  # u_{k+1} = u_k + h sigma(K_k u_k + b_k), h = 1/4
        x = x + 0.25 * torch.tanh(F.linear(x, f.K.values[k], f.b.values[k]))
    assert torch.allclose(block(u), x)


def test_hamiltonian_blocks_run_with_leapfrog_and_rk4():
    for f, shape in [(HamiltonianLayer(4), (3, 4)), (ConvHamiltonianLayer(2), (3, 2, 5, 5))]:
        u = torch.randn(*shape)
        a = ODEBlock(f, steps=64, method="leapfrog")(u)
        b = ODEBlock(f, steps=64, method="rk4")(u)
        assert a.shape == u.shape and torch.allclose(a, b, atol=1e-3)
        assert not torch.allclose(a, u, atol=1e-3)


def test_build_dynamics_and_errors():
    assert isinstance(build_dynamics("resnet", 4), ResNetLayer)
    assert isinstance(build_dynamics("resnet", 4, conv=True), ConvResNetLayer)
    with pytest.raises(ValueError, match="unknown dynamics 'parabolic'.*antisymmetric.*hamiltonian"):
        build_dynamics("parabolic", 4)
    with pytest.raises(ValueError, match="unknown activation 'swish'.*tanh"):
        ResNetLayer(4, act="swish")
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        ConvResNetLayer(2, kernel_size=4)
