"""ctdl.flows.PotentialFlow: a plain module, conditional densities, shapes and errors."""

import math
import subprocess
import sys

import pytest
import torch

from ctdl.flows import PotentialFlow
from ctdl.potential import Potential


def conditional_flow(seed=0) -> PotentialFlow:
    """A float64 flow on R^2 with a 2-d condition: a gentle map (w and A scaled down, so that the
    density's mass stays inside the quadrature box) whose weights on y are large enough that the
    density really depends on the condition."""
    torch.manual_seed(seed)
    phi = Potential(2, 12, cond_dim=2).double()
    with torch.no_grad():
        phi.w.mul_(0.4), phi.A.mul_(0.5)
        phi.K0[:, 3:].add_(torch.randn(12, 2, dtype=torch.float64))
    return PotentialFlow(phi, steps=16)


def test_core_imports_no_lightning():
    code = (
        "import sys, ctdl.flows, ctdl.integrators, ctdl.potential, ctdl.control, ctdl.pde_control, "
        "ctdl.pde_control.env; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning')); "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_conditional_density_integrates_to_one_for_each_condition():
    flow = conditional_flow()
    side = torch.linspace(-6.0, 6.0, 101, dtype=torch.float64)
    cell = (side[1] - side[0]) ** 2
    grid = torch.cartesian_prod(side, side)
    conditions = torch.tensor([[0.0, 0.0], [1.5, -1.0], [-2.0, 2.0]], dtype=torch.float64)
    masses, densities = [], []
    with torch.no_grad():
        for y in conditions:
            p = flow.log_prob(grid, y).exp()
            masses.append((p.sum() * cell).item())
            densities.append(p)
    assert masses == pytest.approx([1.0, 1.0, 1.0], abs=1e-3)
    # the condition matters: the three densities differ by far more than the quadrature error
    for a, b in [(0, 1), (0, 2), (1, 2)]:
        assert ((densities[a] - densities[b]).abs().sum() * cell).item() > 0.2


def test_shared_condition_broadcasts_and_samples_invert():
    flow = conditional_flow()
    x = torch.randn(6, 2, dtype=torch.float64)
    y = torch.tensor([0.5, -0.3], dtype=torch.float64)
    shared, per_sample = flow.log_prob(x, y), flow.log_prob(x, y.expand(6, 2).clone())
    torch.testing.assert_close(shared, per_sample, rtol=0, atol=0)
    samples = flow.sample(200, y, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (200, 2)
    z = torch.randn(200, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert (flow(samples, y) - z).abs().max() < 1e-4  # F(F^{-1}(z; y); y) = z
    other = flow.sample(200, -y, generator=torch.Generator().manual_seed(0))
    assert (other - samples).norm(dim=1).mean() > 0.05  # another condition, another distribution
    ys = torch.randn(5, 2, dtype=torch.float64)
    one_each = flow.sample(5, ys)
    assert one_each.shape == (5, 2)


def test_log_prob_is_the_change_of_variables_for_a_fixed_condition():
    flow = conditional_flow()
    y = torch.tensor([1.0, 0.5], dtype=torch.float64)
    x = torch.randn(3, 2, dtype=torch.float64)
    log_p = flow.log_prob(x, y, steps=32)
    for k in range(3):
        J = torch.autograd.functional.jacobian(lambda v: flow(v[None], y, steps=32)[0], x[k])
        z = flow(x[k : k + 1], y, steps=32)[0]
        expected = -0.5 * z.pow(2).sum() - math.log(2 * math.pi) + torch.linalg.slogdet(J)[1]
        assert log_p[k].item() == pytest.approx(expected.item(), abs=1e-6)


def test_integrate_returns_the_transport_and_hjb_costs():
    flow = conditional_flow()
    x = torch.randn(10, 2, dtype=torch.float64)
    z, l, cost_L, cost_R = flow.integrate(x, y=torch.zeros(2, dtype=torch.float64))
    assert z.shape == (10, 2) and l.shape == cost_L.shape == cost_R.shape == (10,)
    assert (cost_L > 0).all() and (cost_R >= 0).all()


def test_bad_conditions_name_the_shapes():
    flow = conditional_flow()
    x = torch.randn(4, 2, dtype=torch.float64)
    expected = r"y must have shape \(4, 2\) or \(2,\) for a batch of 4, got \(3, 2\)"
    with pytest.raises(ValueError, match=expected):
        flow.log_prob(x, torch.zeros(3, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"this flow is conditional: pass y of shape \(4, 2\) or \(2,\)"):
        flow.log_prob(x)
    plain = PotentialFlow(Potential(2, 8).double())
    with pytest.raises(ValueError, match="this flow is unconditional"):
        plain.log_prob(x, torch.zeros(2))
    with pytest.raises(ValueError, match=r"samples of shape \[3\] but the model was built for dim=2"):
        plain.log_prob(torch.randn(4, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="unknown trace method 'hutch'"):
        PotentialFlow(Potential(2, 8), trace="hutch")
