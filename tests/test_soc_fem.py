"""The finite-element HJB reference (ctdl.soc.fem_hjb) against the exact Riccati value of the LQR.

Skipped only when DOLFINx (the `pde` extra) is not installed; an installed but broken DOLFINx fails.
"""

from __future__ import annotations

import importlib.util
import time

import numpy as np
import pytest
import torch

if importlib.util.find_spec("dolfinx") is None:
    pytest.skip("needs the pde extra: pip install 'ctdl[pde]'", allow_module_level=True)

from ctdl.soc.fem_hjb import FEMValue, fem_value_2d  # noqa: E402
from ctdl.soc.problems import HJBLQ, LQR, Obstacle  # noqa: E402
from ctdl.soc.references import RiccatiSolution  # noqa: E402


def interior(n: int = 41, half: float = 1.5) -> torch.Tensor:
    """A grid of n x n points on [-half, half]^2, away from the no-flux boundary of [-3, 3]^2."""
    g = torch.linspace(-half, half, n, dtype=torch.float64)
    return torch.cartesian_prod(g, g)


def rel_error(value: FEMValue, ref: RiccatiSolution, t: float, x: torch.Tensor) -> tuple[float, float]:
    """(max, mean) of |Phi_h - Phi| / |Phi| at time t over the points x."""
    exact = ref.value(t, x)
    err = (value(t, x) - exact).abs() / exact.abs()
    return err.max().item(), err.mean().item()


@pytest.fixture(scope="module")
def lqr():
    return LQR(), RiccatiSolution(LQR())


@pytest.fixture(scope="module")
def coarse(lqr) -> FEMValue:
    """LQR on the default box [-3, 3]^2, 32 x 32 squares, dt = 0.02 (a second or so)."""
    return fem_value_2d(lqr[0], mesh=32, dt=0.02)


def test_lqr_matches_riccati_in_the_interior(lqr, coarse):
    _, ref = lqr
    x = interior()
    # measured: t = 0 max 0.031 mean 0.0067; t = 0.37 max 0.045 mean 0.017; t = 0.5 max 0.061 mean 0.018
    err_max, err_mean = rel_error(coarse, ref, 0.0, x)
    assert err_max < 0.045 and err_mean < 0.01, (err_max, err_mean)
    for t in (0.37, 0.5):  # 0.37 lies between the snapshots 0.35 and 0.4: linear in time
        err_max, err_mean = rel_error(coarse, ref, t, x)
        assert err_max < 0.09 and err_mean < 0.025, (t, err_max, err_mean)
    # the terminal snapshot is the nodal interpolant of g, exact at the grid nodes
    nodes = torch.tensor([[-1.5, -1.5], [0.0, 0.375], [2.8125, -3.0]], dtype=torch.float64)
    assert torch.allclose(coarse(1.0, nodes), ref.value(1.0, nodes), rtol=1e-12, atol=1e-12)


def test_result_object(coarse):
    assert coarse.mesh == 32 and coarse.dt == pytest.approx(0.02) and coarse.steps == 50
    assert coarse.domain == (-3.0, 3.0) and coarse.horizon == 1.0
    expected = [k / 20 for k in range(21)]  # the default snapshots: every 0.05 T
    np.testing.assert_allclose(coarse.times, expected, atol=1e-12)
    assert coarse.nodal.shape == (len(expected), 33, 33)
    assert coarse.newton_iterations >= coarse.steps and 1 <= coarse.max_newton_iterations <= 10
    assert coarse.solve_seconds > 0
    assert "mesh=32" in repr(coarse)
    # numpy points, 10^4 of them, quickly
    pts = np.random.default_rng(0).uniform(-3, 3, (10_000, 2))
    start = time.perf_counter()
    out = coarse(0.123, pts)
    assert time.perf_counter() - start < 0.5
    assert out.shape == (10_000,) and out.dtype == torch.float64 and torch.isfinite(out).all()
    assert torch.equal(out, coarse(0.123, torch.from_numpy(pts)))
    # one time per point (between snapshots, on a snapshot, at 0 and T) equals one call per time
    times = torch.tensor([0.123, 0.35, 0.0, 1.0, 0.999])
    x = torch.from_numpy(pts[:5])
    single = torch.stack([coarse(float(t), x[i : i + 1])[0] for i, t in enumerate(times)])
    torch.testing.assert_close(coarse(times, x), single, rtol=1e-14, atol=1e-12)


def test_save_times(lqr, coarse):
    """A save time between two steps (0.33 between 0.32 and 0.34) is their linear blend; 0 and T are added."""
    problem, ref = lqr
    value = fem_value_2d(problem, mesh=32, dt=0.02, save_times=[0.33])
    np.testing.assert_allclose(value.times, [0.0, 0.33, 1.0], atol=1e-12)
    x = interior()
    torch.testing.assert_close(value(0.0, x), coarse(0.0, x), rtol=1e-9, atol=1e-9)
    err_max, err_mean = rel_error(value, ref, 0.33, x)  # measured max 0.043 mean 0.014
    assert err_max < 0.07 and err_mean < 0.02, (err_max, err_mean)


def test_point_evaluation_is_the_p1_function():
    """value(T, x) equals DOLFINx's own evaluation of the P1 interpolant of g on the same mesh
    (g has an xy term, so that the interpolant depends on which diagonal cuts each square)."""
    from mpi4py import MPI

    from ctdl.fem import import_dolfinx

    dolfinx = import_dolfinx()
    import ufl

    problem = LQR(G=((4.0, 1.5), (1.5, 1.0)))
    m = 7
    value = fem_value_2d(problem, mesh=m, dt=0.5)
    msh = dolfinx.mesh.create_rectangle(
        MPI.COMM_SELF, [np.array([-3.0, -3.0]), np.array([3.0, 3.0])], [m, m], dolfinx.mesh.CellType.triangle
    )
    V = dolfinx.fem.functionspace(msh, ("Lagrange", 1))
    g = dolfinx.fem.Function(V)
    g.interpolate(
        dolfinx.fem.Expression(
            problem.ufl_terminal(ufl.SpatialCoordinate(msh)), V.element.interpolation_points
        )
    )
    pts = np.random.default_rng(1).uniform(-3, 3, (500, 2))
    pts3 = np.column_stack([pts, np.zeros(len(pts))])
    tree = dolfinx.geometry.bb_tree(msh, msh.topology.dim)
    candidates = dolfinx.geometry.compute_collisions_points(tree, pts3)
    hits = dolfinx.geometry.compute_colliding_cells(msh, candidates, pts3)
    cells = np.array([hits.links(i)[0] for i in range(len(pts))], dtype=np.int32)
    expected = g.eval(pts3, cells)[:, 0]
    np.testing.assert_allclose(value(1.0, pts).numpy(), expected, rtol=1e-12, atol=1e-10)


def test_mesh_refinement_reduces_the_error(lqr):
    problem, ref = lqr
    x = interior()
    # measured at t = 0 (dt = 0.005): mesh 12 max 0.21, mesh 24 max 0.034
    e12 = rel_error(fem_value_2d(problem, mesh=12, dt=0.005), ref, 0.0, x)
    e24 = rel_error(fem_value_2d(problem, mesh=24, dt=0.005), ref, 0.0, x)
    assert e24[0] < e12[0] / 2.5 and e24[1] < e12[1] / 2.5, (e12, e24)


def test_time_refinement_reduces_the_error(lqr):
    problem, ref = lqr
    x = interior()
    # measured at t = 0 (mesh 48): dt 0.1 max 0.067, dt 0.05 max 0.035 (order 1 in dt)
    e1 = rel_error(fem_value_2d(problem, mesh=48, dt=0.1), ref, 0.0, x)
    e2 = rel_error(fem_value_2d(problem, mesh=48, dt=0.05), ref, 0.0, x)
    assert e2[0] < e1[0] / 1.6 and e2[1] < e1[1] / 1.6, (e1, e2)


def test_bdf2_is_second_order_in_time(lqr):
    """Successive differences of Phi(0, x) as dt halves shrink by 2 with backward Euler and by 4 with
    BDF2 (measured, mesh 32: Euler 0.093, 0.048, 0.024; BDF2 0.024, 0.0047, 0.00098)."""
    problem = lqr[0]
    x = interior(21)
    for scheme, low in (("euler", 1.7), ("bdf2", 3.5)):
        values = [fem_value_2d(problem, mesh=32, dt=dt, scheme=scheme)(0.0, x) for dt in (0.1, 0.05, 0.025)]
        first, second = ((a - b).abs().max().item() for a, b in zip(values, values[1:], strict=False))
        assert first / second > low, (scheme, first, second)


def test_the_value_at_time_zero_is_the_last_step():
    """One backward step from T: Phi(0) is that step's solution, not the terminal cost."""
    problem = LQR()
    value = fem_value_2d(problem, mesh=8, dt=1.0)
    x = interior(5)
    assert (value(0.0, x) - value(1.0, x)).abs().max() > 0.1


def test_bad_input(coarse):
    with pytest.raises(ValueError, match="2-D problem"):
        fem_value_2d(HJBLQ(dim=2))
    with pytest.raises(ValueError, match="mesh must be an integer"):
        fem_value_2d(Obstacle(), mesh=1)
    with pytest.raises(ValueError, match="dt must be positive"):
        fem_value_2d(Obstacle(), dt=0.0)
    with pytest.raises(ValueError, match="unknown time scheme 'rk4'; known: euler, bdf2"):
        fem_value_2d(Obstacle(), scheme="rk4")
    with pytest.raises(ValueError, match="save_times"):
        fem_value_2d(Obstacle(), save_times=[1.5])
    with pytest.raises(ValueError, match=r"outside the box \[-3.0, 3.0\]\^2"):
        coarse(0.0, torch.tensor([[0.0, 0.0], [3.5, 0.0]]))
    with pytest.raises(ValueError, match="outside the box"):
        coarse(0.0, np.array([[float("nan"), 0.0]]))
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        coarse(0.0, torch.zeros(4, 3))
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1.0\]"):
        coarse(1.2, torch.zeros(4, 2))
    with pytest.raises(ValueError, match="one time or one per point"):
        coarse(torch.zeros(3), torch.zeros(4, 2))


def test_newton_failure_is_reported():
    """On a 15 x 15 mesh Newton fails for the obstacle's steep terminal cost (|grad g| up to 640):
    a clear error, not PETSc's."""
    with pytest.raises(RuntimeError, match=r"Newton did not converge .* obstacle problem \(mesh 15, dt 0.01"):
        fem_value_2d(Obstacle(), mesh=15, dt=0.01)
