"""ctdl.pde_control: DOLFINx import and assembly, the rollout and its adjoint, the feedback law, the
oracle, the environment."""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from ctdl.pde_control import (
    AdvectionDiffusion,
    QuadraticValue,
    discrete_hamiltonian,
    feedback_law,
    open_loop_optimum,
    rollout,
)
from ctdl.pde_control.baselines import cost_and_gradient


@pytest.fixture(scope="module")
def small():
    return AdvectionDiffusion(cells=6, steps=12)


@pytest.fixture(scope="module")
def default():
    return AdvectionDiffusion()


def params_of(problem, n, seed=0):
    return problem.sample_params(n, torch.Generator().manual_seed(seed))


HAS_DOLFINX = importlib.util.find_spec("dolfinx") is not None


@pytest.mark.skipif(not HAS_DOLFINX, reason="needs the pde extra: pip install 'ctdl[pde]'")
def test_dolfinx_assembles_and_the_rollout_solves_without_environment_variable():
    """Exact identities of the Q1 operators DOLFINx assembles, and mass conservation of a rollout.

    Run in a fresh interpreter whose environment has no LD_LIBRARY_PATH, the way a user starts
    Python, so the test proves that ctdl.fem alone makes DOLFINx importable. On the unit square
    1' M 1 = |Omega| = 1, K 1 = 0, x' K x = int |grad x|^2 = 1 and x' K y = 0 (Q1 holds linear
    functions exactly), and 1' A_m = 0 (v = curl psi is divergence-free with v . n = 0), so without
    sinks and sources the rollout keeps int u dx to round-off. A broken FEM stack (wrong forms, a
    lost quadrature, a solver that did not run) is off by order 0.1 to 1.
    """
    env = dict(os.environ)
    env.pop("LD_LIBRARY_PATH", None)
    code = textwrap.dedent(
        """
        import json, sys
        import numpy as np, torch
        import ctdl.fem as fem
        from ctdl.pde_control import AdvectionDiffusion, rollout

        P = AdvectionDiffusion(cells=4, steps=12)
        one = np.ones(P.size)
        x, y = P.coords.T
        K = P.stiffness
        errs = {
            "area": abs(one @ P.mass @ one - 1),
            "K1": np.abs(K @ one).max(),
            "xKx": abs(x @ K @ x - 1),
            "xKy": abs(x @ K @ y),
            "1A": max(np.abs(one @ A).max() for A in P.advection),
        }
        params = P.sample_params(2, torch.Generator().manual_seed(0))
        params[:, P.velocity_modes**2 :] = 0
        u0 = torch.rand(2, P.size, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        zero = torch.zeros(P.steps, 2, P.num_actuators, dtype=torch.float64)
        path = rollout(P, P.instances(params), zero, u0)
        mass = torch.stack([P.mass_of(u) for u in path.states])
        errs["mass"] = ((mass - mass[0]).abs().max() / mass[0].max()).item()
        errs["moved"] = (path.states[-1] - u0).abs().max().item()
        lib = fem.find_libmpi()
        print(json.dumps({"errs": errs, "dolfinx": "dolfinx" in sys.modules, "solves": P.solves,
                          "libmpi": None if lib is None else str(lib)}))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"subprocess failed:\n{proc.stdout}\n{proc.stderr}"
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    errs = out.pop("errs")
    assert out["dolfinx"] and out["solves"] == 2 * 12, out
    moved = errs.pop("moved")
    assert max(errs.values()) < 1e-10, errs
    assert moved > 0.1  # the state did evolve


def test_import_dolfinx_missing_says_how_to_install(monkeypatch):
    """Without DOLFINx the error names the extra to install."""
    import ctdl.fem as fem

    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        if name == "dolfinx":
            return None
        return real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    for mod in ("dolfinx", "dolfinx.fem.petsc"):
        monkeypatch.delitem(sys.modules, mod, raising=False)
    with pytest.raises(ImportError, match=r"pip install 'ctdl\[pde\]'"):
        fem.import_dolfinx()


def test_h5py_still_reads_and_writes_after_dolfinx(tmp_path):
    """h5py and DOLFINx bring different HDF5 libraries; after `import_dolfinx` (in a fresh process,
    DOLFINx first) h5py still imports and round-trips a file."""
    pytest.importorskip("h5py")
    code = textwrap.dedent(
        f"""
        from ctdl.fem import import_dolfinx
        import_dolfinx()
        import h5py, numpy as np
        with h5py.File({str(tmp_path / "x.h5")!r}, "w") as f:
            f["a"] = np.arange(3)
        with h5py.File({str(tmp_path / "x.h5")!r}) as f:
            assert f["a"][:].tolist() == [0, 1, 2]
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_images_are_the_nodes_on_the_grid(small):
    x, y = (torch.from_numpy(c) for c in small.coords.T)
    image = small.to_image(torch.stack([x, y]))
    grid = torch.linspace(0, 1, small.grid, dtype=torch.float64)
    assert torch.allclose(image[0], grid.expand(small.grid, -1))  # columns follow x
    assert torch.allclose(image[1], grid[:, None].expand(-1, small.grid))  # rows follow y
    u = torch.randn(3, small.size, dtype=torch.float64)
    assert torch.equal(small.from_image(small.to_image(u)), u)


def test_rollout_gradient_is_the_exact_discrete_adjoint(small):
    inst = small.instances(params_of(small, 2))
    a = (small.a_max * torch.rand(small.steps, 2, small.num_actuators, dtype=torch.float64)).requires_grad_()
    u0 = torch.rand(2, small.size, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, u0: rollout(small, inst, a, u0).cost, (a, u0))


def test_mass_is_conserved_without_sinks_or_sources(default):
    params = params_of(default, 2)
    params[:, default.velocity_modes**2 :] = 0  # no sources; the velocity stays
    inst = default.instances(params)
    u0 = torch.rand(2, default.size, dtype=torch.float64)
    path = rollout(
        default, inst, torch.zeros(default.steps, 2, default.num_actuators, dtype=torch.float64), u0
    )
    mass = torch.stack([default.mass_of(u) for u in path.states])
    assert (mass - mass[0]).abs().max() < 1e-12 * mass[0].max()
    assert (path.states[-1] - u0).abs().max() > 0.1  # it did move


def test_rollout_agrees_with_a_dolfinx_linear_problem_time_loop(small):
    from ctdl.fem import import_dolfinx

    dolfinx = import_dolfinx()
    import ufl
    from dolfinx.fem.petsc import LinearProblem
    from mpi4py import MPI

    P = small
    params = params_of(P, 1, seed=3)
    a = P.a_max * torch.rand(
        P.steps, 1, P.num_actuators, dtype=torch.float64, generator=torch.Generator().manual_seed(1)
    )
    ours = rollout(P, P.instances(params), a).states[:, 0]

    msh = dolfinx.mesh.create_unit_square(
        MPI.COMM_SELF, P.cells, P.cells, dolfinx.mesh.CellType.quadrilateral
    )
    V = dolfinx.fem.functionspace(msh, ("Lagrange", 1))
    W = dolfinx.fem.functionspace(msh, ("Lagrange", 2))
    c = params[0, : P.velocity_modes**2].tolist()
    modes = [(i, j) for i in range(1, P.velocity_modes + 1) for j in range(1, P.velocity_modes + 1)]
    psi = dolfinx.fem.Function(W)
    psi.interpolate(
        lambda x: sum(
            ci * np.sin(i * np.pi * x[0]) * np.sin(j * np.pi * x[1])
            for ci, (i, j) in zip(c, modes, strict=True)
        )
    )
    f = dolfinx.fem.Function(V)
    f.x.array[:] = P.source_nodal(params)[0].numpy()  # the source interpolated in V (the same dof order)
    bs = []
    for cx, cy in P.actuators:
        b = dolfinx.fem.Function(V)
        b.interpolate(
            lambda x, cx=cx, cy=cy: np.exp(-((x[0] - cx) ** 2 + (x[1] - cy) ** 2) / (2 * P.actuator_width**2))
        )
        bs.append(b)
    rates = [dolfinx.fem.Constant(msh, 0.0) for _ in bs]
    u, w = ufl.TrialFunction(V), ufl.TestFunction(V)
    u_old = dolfinx.fem.Function(V)
    dt, kappa = P.dt, P.kappa
    vel = ufl.as_vector((psi.dx(1), -psi.dx(0)))
    lhs = (
        u * w + dt * kappa * ufl.inner(ufl.grad(u), ufl.grad(w)) + dt * ufl.dot(vel, ufl.grad(u)) * w
    ) * ufl.dx
    rhs = (
        u_old * w - dt * sum(r * b * u_old for r, b in zip(rates, bs, strict=True)) * w + dt * f * w
    ) * ufl.dx
    problem = LinearProblem(
        lhs, rhs, petsc_options_prefix="pde_check_", petsc_options={"ksp_type": "preonly", "pc_type": "lu"}
    )
    for n in range(P.steps):
        for r, value in zip(rates, a[n, 0].tolist(), strict=True):
            r.value = value
        u_new = problem.solve()
        u_old.x.array[:] = u_new.x.array
        assert np.abs(u_old.x.array - ours[n + 1].numpy()).max() < 1e-10 * max(
            1.0, np.abs(u_old.x.array).max()
        )


def test_the_feedback_law_minimises_the_discrete_hamiltonian(small):
    inst = small.instances(params_of(small, 3))
    gen = torch.Generator().manual_seed(0)
    u = 5 * torch.rand(3, small.size, dtype=torch.float64, generator=gen)
    grad = torch.randn(3, small.size, dtype=torch.float64, generator=gen) * 0.05
    best = feedback_law(small, inst, u, grad)
    assert ((best > 0) & (best < small.a_max)).any() and ((best == 0) | (best == small.a_max)).any()
    h_best = discrete_hamiltonian(small, inst, u, grad, best)
    for b in range(3):  # against a numerical optimiser over the box, one instance at a time
        sub = small.instances(inst.params[b : b + 1])

        def h(a, b=b, sub=sub):
            return discrete_hamiltonian(
                small, sub, u[b : b + 1], grad[b : b + 1], torch.from_numpy(a)[None]
            ).item()

        res = minimize(
            h,
            np.full(small.num_actuators, small.a_max / 2),
            method="L-BFGS-B",
            bounds=[(0, small.a_max)] * small.num_actuators,
            options=dict(ftol=1e-15, gtol=1e-12),
        )
        assert h_best[b].item() <= res.fun + 1e-9
        assert np.abs(res.x - best[b].numpy()).max() < 1e-3 * small.a_max
    random = small.a_max * torch.rand(100, 3, small.num_actuators, dtype=torch.float64, generator=gen)
    assert all((discrete_hamiltonian(small, inst, u, grad, r) >= h_best - 1e-12).all() for r in random)


def test_the_value_meets_its_terminal_cost_and_its_gradient_is_exact(small):
    torch.manual_seed(0)
    value = QuadraticValue(small, width=4, time_basis=3).double()
    for p in value.parameters():  # leave the zero start so that p, q and c are not trivial
        torch.nn.init.normal_(p, std=0.3)
    inst = small.instances(params_of(small, 2))
    u = torch.rand(2, small.size, dtype=torch.float64, requires_grad=True)
    assert torch.allclose(value(inst, u, small.horizon), small.gamma * small.norm2(u))
    coef = value.coefficients(inst, torch.tensor([0.3]))
    (auto,) = torch.autograd.grad(value.value(coef.at(0), u).sum(), u)
    assert torch.allclose(value.gradient(coef.at(0), u), auto)
    assert not torch.allclose(value(inst, u, 0.3), small.gamma * small.norm2(u))


def test_the_oracle_gradient_matches_finite_differences_and_beats_no_control(small):
    params = params_of(small, 1, seed=5)[0]
    a = small.a_max * torch.rand(
        small.steps, small.num_actuators, dtype=torch.float64, generator=torch.Generator().manual_seed(2)
    )
    J, grad = cost_and_gradient(small, params, a)
    for seed in range(3):
        d = torch.randn(a.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
        h = 1e-5
        fd = (
            cost_and_gradient(small, params, a + h * d)[0] - cost_and_gradient(small, params, a - h * d)[0]
        ) / (2 * h)
        assert abs(fd - (grad * d).sum().item()) < 1e-6 * max(1.0, abs(fd))
    best = open_loop_optimum(small, params)
    free = cost_and_gradient(small, params, torch.zeros_like(a))[0]
    assert best.converged and best.cost < free and best.cost <= J
    assert best.controls.min() >= 0 and best.controls.max() <= small.a_max
    assert best.solves > 0


def test_the_environment_return_is_minus_the_rollout_cost(small):
    from ctdl.pde_control.env import SourceMitigationEnv

    env = SourceMitigationEnv(small)
    from gymnasium.utils.env_checker import check_env

    check_env(SourceMitigationEnv(small), skip_render_check=True)  # gymnasium's API contract
    obs, info = env.reset(seed=0)
    assert obs.shape == env.observation_space.shape and obs.dtype == np.float32
    actions = small.a_max * np.random.default_rng(0).random((small.steps, small.num_actuators))
    total, done, steps = 0.0, False, 0
    while not done:
        obs, reward, done, truncated, _ = env.step(actions[steps])
        total, steps = total + reward, steps + 1
    assert steps == small.steps and env.solves == small.steps
    J = rollout(small, small.instances(info["params"][None]), torch.from_numpy(actions)[:, None]).cost.item()
    assert total == pytest.approx(-J, rel=1e-12)
    obs2, info2 = env.reset(seed=0)
    assert torch.equal(info2["params"], info["params"])  # seeded resets repeat the instance


def test_bad_input_names_the_fix():
    with pytest.raises(ValueError, match="cells must be an integer >= 2"):
        AdvectionDiffusion(cells=1)
    with pytest.raises(ValueError, match="a_max must be > 0"):
        AdvectionDiffusion(a_max=0)
    with pytest.raises(ValueError, match=r"actuator 1 at \(1.2, 0.5\) lies outside the domain"):
        AdvectionDiffusion(actuators=[(0.5, 0.5), (1.2, 0.5)])
    with pytest.raises(ValueError, match="dt \\* a_max < 1"):
        AdvectionDiffusion(a_max=60, steps=50)
    with pytest.raises(ValueError, match=r"must have shape \(B, 13\)"):
        AdvectionDiffusion(cells=4).check_params(torch.zeros(2, 5))
