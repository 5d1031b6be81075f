"""ctdl.soc: problems, their Hamiltonians, the Cole-Hopf and Riccati references, the value network,
the metrics of ctdl.soc.evaluate."""

import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from ctdl.soc import (
    HJBLQ,
    LQR,
    PROBLEMS,
    RiccatiSolution,
    ValueFunction,
    controlled_paths,
    hjb_lq_gradient,
    hjb_lq_value,
    hjb_lq_value_quadrature,
    make_problem,
    reference_control,
    reference_value,
)
from ctdl.soc.evaluate import (
    paired_costs,
    paired_difference,
    realised_cost,
    reference_feedback_cost,
    relative_error,
    trajectory_error,
    values_along,
    zero_control_cost,
)


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_closed_form_control_minimises_the_hamiltonian(name):
    """u*(t, x, p) against a numerical minimiser of L(t, x, u) + p' f(t, x, u) over u."""
    problem = make_problem(name) if name != "hjb_lq" else make_problem(name, dim=5, lam=2.0)
    gen = torch.Generator().manual_seed(1)
    x = problem.sample_start(4, gen) + 0.3 * torch.randn(4, problem.dim, generator=gen, dtype=torch.float64)
    p = torch.randn(4, problem.dim, generator=gen, dtype=torch.float64)
    u_star = problem.optimal_control(0.3, x, p)
    for i in range(4):

        def objective(u, i=i):
            u = torch.as_tensor(u, dtype=torch.float64)[None]
            return float(
                problem.running_cost(0.3, x[i : i + 1], u)
                + (p[i : i + 1] * problem.drift(0.3, x[i : i + 1], u)).sum()
            )

        best = minimize(objective, np.zeros(problem.control_dim), method="BFGS", options={"gtol": 1e-10})
        torch.testing.assert_close(u_star[i], torch.as_tensor(best.x), atol=1e-5, rtol=1e-5)
        assert (
            abs(objective(u_star[i].numpy()) - float(problem.hamiltonian(0.3, x[i : i + 1], p[i : i + 1])))
            < 1e-10
        )
        assert objective(u_star[i].numpy()) <= best.fun + 1e-10


def test_riccati_value_solves_the_hjb_equation():
    """d_t Phi + tr(D Hess Phi) + H(x, grad Phi) = 0 for Phi = x'P(t)x + r(t), to discretisation accuracy."""
    problem = LQR()
    solution = RiccatiSolution(problem)
    x = torch.randn(16, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    D = problem.diffusion(x)
    worst = 0.0
    for t in (0.1, 0.5, 0.9):
        eps = 1e-3
        d_t = (solution.value(t + eps, x) - solution.value(t - eps, x)) / (2 * eps)
        P, _ = solution.matrices(t, len(x))
        grad = 2 * torch.einsum("nij,nj->ni", P, x)
        residual = d_t + 2 * torch.einsum("ij,nji->n", D, P) + problem.hamiltonian(t, x, grad)
        worst = max(worst, float(residual.abs().max() / solution.value(t, x).abs().max()))
    assert worst < 1e-4  # RK4 on 4000 steps, linear in between, central differences in t
    # and the value at T is g
    torch.testing.assert_close(solution.value(1.0, x), problem.terminal_cost(x))


def test_cole_hopf_value_at_the_published_point_and_its_limits():
    value, stderr = hjb_lq_value(0.0, torch.zeros(1, 100), samples=200_000)
    assert abs(value.item() - 4.590162) < 4 * stderr.item() and stderr.item() < 1e-3
    x = torch.randn(3, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    at_T, se_T = hjb_lq_value(1.0, x, lam=1.0, target=0.5)
    torch.testing.assert_close(at_T, HJBLQ(dim=10, target=0.5).terminal_cost(x))
    assert (se_T == 0).all()
    mean_g, se_g = hjb_lq_value(0.0, x, lam=0.0, samples=50_000)
    previous = None
    for lam in (1e-1, 1e-2, 1e-3):  # Cole-Hopf -> E[g(X_T)] as lambda -> 0, at rate O(lambda)
        gap = (hjb_lq_value(0.0, x, lam=lam, samples=50_000)[0] - mean_g).abs().max().item()
        assert previous is None or gap < previous / 5
        previous = gap
    assert previous < 1e-3 * mean_g.abs().min().item()
    assert (hjb_lq_value(0.0, x, lam=1.0)[0] < mean_g).all()  # control lowers the cost


def test_bad_problem_inputs_name_the_fix():
    with pytest.raises(
        ValueError, match="unknown control problem 'hjb'; known problems: hjb_lq, lqr, obstacle, quadcopter"
    ):
        make_problem("hjb")
    with pytest.raises(
        ValueError,
        match=r"sigma must be a scalar, a \(2,\) diagonal or a \(2, 2\) matrix .* got shape \(3,\)",
    ):
        make_problem("lqr", sigma=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"x0 must have shape \(n, 100\) .* got \(4, 10\)"):
        ValueFunction(make_problem("hjb_lq")).paths(torch.zeros(4, 10), 5)
    with pytest.raises(ValueError, match="target must be a scalar or have shape"):
        make_problem("hjb_lq", dim=3, target=[1.0, 2.0])


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_loss_terms_and_the_feedback_gradient(name):
    """Every term finite and per path; only the cost reaches the weights through the paths."""
    problem = make_problem(name, **({"dim": 6} if name == "hjb_lq" else {}))
    torch.manual_seed(0)
    V = ValueFunction(problem, width=8).double()
    x0 = problem.sample_start(5, torch.Generator().manual_seed(0))
    terms = V.loss_terms(x0, 6, generator=torch.Generator().manual_seed(1))
    assert set(terms) == {"cost", "bsde", "terminal", "terminal_grad", "hjb", "phi0_gap"}
    assert all(v.shape == (5,) and torch.isfinite(v).all() for v in terms.values())
    (g,) = torch.autograd.grad(terms["cost"].mean(), V.potential.K0)
    assert g.abs().sum() > 0  # J backpropagates through the SDE into Phi via the feedback
    cheap = V.loss_terms(x0, 6, generator=torch.Generator().manual_seed(1), hjb=False)
    assert set(cheap) == set(terms) - {"hjb"}  # no Hessian trace: the same other terms
    for k, v in cheap.items():
        torch.testing.assert_close(v, terms[k])
    walk = V.loss_terms(x0, 6, "random_walk", generator=torch.Generator().manual_seed(1))
    assert set(walk) == set(terms)  # the same loss terms: only where the penalties are evaluated differs
    (g,) = torch.autograd.grad(walk["cost"].mean(), V.potential.K0)
    assert g.abs().sum() > 0  # its J is on controlled paths too
    still = V.paths(x0, 6, "random_walk", generator=torch.Generator().manual_seed(1)).states
    xT = still[-1]
    phiT = V(V.problem.horizon, xT)
    assert torch.allclose(walk["terminal"], (phiT - V.problem.terminal_cost(xT)).abs())  # penalties: the walk


def test_random_walk_bsde_vanishes_for_the_exact_lqr_value():
    """The BSDE and HJB residuals of the Riccati value are (nearly) zero on any paths: the Ito
    identity is written for the increments drawn, whatever the sampling control."""
    problem = LQR()
    solution = RiccatiSolution(problem)

    class Exact(torch.nn.Module):  # a stand-in potential with Phi = x'Px + r and its exact derivatives
        w = torch.zeros(1, dtype=torch.float64)

        def forward(self, x, t):
            return solution.value(t, x)

        def gradient(self, x, t):
            P, _ = solution.matrices(t, len(x))
            return 2 * torch.einsum("nij,nj->ni", P, x), None

        def grad_laplacian(self, x, t, directions):
            eps = 1e-4
            t = torch.as_tensor(t, dtype=torch.float64).expand(len(x))
            d_t = (solution.value(t + eps, x) - solution.value((t - eps).clamp_min(0), x)) / (
                t + eps - (t - eps).clamp_min(0)
            )
            P, _ = solution.matrices(t, len(x))
            trace = 2 * torch.einsum("ik,nij,jk->n", directions, P, directions)
            return 2 * torch.einsum("nij,nj->ni", P, x), d_t, trace

    V = ValueFunction(problem, width=4).double()
    V.potential = Exact()
    x0 = problem.sample_start(200, torch.Generator().manual_seed(0))
    coarse = V.loss_terms(x0, 50, "random_walk", generator=torch.Generator().manual_seed(1))
    fine = V.loss_terms(x0, 200, "random_walk", generator=torch.Generator().manual_seed(1))
    assert fine["hjb"].mean() < 1e-6 and fine["terminal"].max() < 1e-12
    assert fine["bsde"].mean() < coarse["bsde"].mean() / 2  # -> 0 as h -> 0 (sum of O(h^2) terms)
    pmp_cost = V.loss_terms(x0, 200, generator=torch.Generator().manual_seed(1))["cost"].mean()
    assert abs(pmp_cost - solution.expected_cost()) < 0.15  # Monte Carlo over 200 paths


@pytest.mark.slow
def test_value_network_learns_the_lqr_value():
    """A short training brings Phi(0, x) to within 10% of Riccati's value on held-out starts."""
    torch.manual_seed(0)
    problem = LQR()
    V = ValueFunction(problem, width=16)
    opt = torch.optim.Adam(V.parameters(), lr=0.01)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 300)
    gen = torch.Generator().manual_seed(0)
    for _ in range(300):
        terms = V.loss_terms(problem.sample_start(64, gen, torch.float32), 20, generator=gen)
        loss = sum(v.mean() for v in terms.values())
        opt.zero_grad(), loss.backward(), opt.step(), sched.step()
    x = problem.sample_start(256, torch.Generator().manual_seed(9))
    ref = reference_value(problem)(0.0, x)
    with torch.no_grad():
        err = ((V(0.0, x.float()).double() - ref).abs() / ref).mean().item()
    assert err < 0.10, err
    assert math.isfinite(err)


def test_open_loop_optimum_converges_to_the_deterministic_riccati_value():
    """With sigma = 0 the open-loop optimum is the optimal cost x'P(0)x; Euler's error is O(h)."""
    from ctdl.soc import open_loop_optimum

    problem = make_problem("lqr", sigma=0.0)
    x0 = problem.sample_start(6, torch.Generator().manual_seed(0))
    exact = RiccatiSolution(problem).value(0.0, x0)
    errors = [(open_loop_optimum(problem, x0, steps=N).cost - exact).abs().max().item() for N in (25, 100)]
    assert errors[1] < errors[0] / 3 and errors[1] < 0.05, errors
    with pytest.raises(ValueError, match=r"initial controls must have shape \(25, 6, 2\), got \(25, 6, 3\)"):
        open_loop_optimum(problem, x0, steps=25, initial=torch.zeros(25, 6, 3))


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_terminal_gradient_and_trace_against_autograd(name):
    """The closed forms of grad g and tr(D Hess g) against the base class's autograd versions."""
    from ctdl.soc import ControlProblem

    problem = make_problem(name, **({"dim": 7, "target": 0.3, "sigma": 0.7} if name == "hjb_lq" else {}))
    x = problem.sample_start(5, torch.Generator().manual_seed(0)) + torch.randn(
        5, problem.dim, dtype=torch.float64
    )
    torch.testing.assert_close(problem.terminal_gradient(x), ControlProblem.terminal_gradient(problem, x))
    torch.testing.assert_close(problem.terminal_trace(x), ControlProblem.terminal_trace(problem, x))


@pytest.mark.parametrize("name", ["hjb_lq", "obstacle"])
def test_exact_terminal_value_and_its_derivatives(name):
    """terminal="exact": Phi(T) = g, and Phi's gradient, time derivative and diffusion term
    against autograd."""
    problem = make_problem(name, **({"dim": 4} if name == "hjb_lq" else {}))
    torch.manual_seed(0)
    V = ValueFunction(problem, width=8, terminal="exact").double()
    x = problem.sample_start(3, torch.Generator().manual_seed(0)) + torch.randn(
        3, problem.dim, dtype=torch.float64
    )
    torch.testing.assert_close(V(1.0, x), problem.terminal_cost(x))
    t = torch.tensor([0.1, 0.5, 0.8], dtype=torch.float64)
    phi, grad, _, _ = V.hjb_terms(t, x)
    torch.testing.assert_close(phi, V(t, x))
    directions = problem.sigma / math.sqrt(2.0)
    _, _, trace_N = V.potential.grad_laplacian(x, t, directions=directions)
    for i in range(3):
        ti = t[i : i + 1]
        gx, gt = torch.autograd.functional.jacobian(lambda xx, tt: V(tt[None], xx[None])[0], (x[i], t[i]))
        H = torch.autograd.functional.hessian(lambda xx, ti=ti: V(ti, xx[None])[0], x[i])
        torch.testing.assert_close(grad[i], gx)
        D = problem.diffusion(x)
        residual = V.hjb_terms(t[i : i + 1], x[i : i + 1])[3]
        expected = gt + torch.trace(D @ H) + problem.hamiltonian(t[i], x[i : i + 1], gx[None])
        torch.testing.assert_close(residual[0], expected[0])
    assert trace_N.shape == (3,)
    with pytest.raises(ValueError, match="unknown terminal 'hard'; known: penalty, exact"):
        ValueFunction(problem, terminal="hard")


@pytest.mark.parametrize("terminal", ["penalty", "exact"])
def test_value_scale_multiplies_the_network_and_its_derivatives(terminal):
    """scale = s: N = s * potential starts as the unscaled one (up to its level, which match_level
    sets), and Phi's gradient and HJB residual still match autograd."""
    problem = make_problem("quadcopter")
    torch.manual_seed(0)
    V = ValueFunction(problem, width=8, terminal=terminal, scale=300.0).double()
    torch.manual_seed(0)
    V1 = ValueFunction(problem, width=8, terminal=terminal).double()
    x = problem.sample_start(3, torch.Generator().manual_seed(0)) + torch.randn(3, 12, dtype=torch.float64)
    t = torch.tensor([0.1, 0.5, 0.8], dtype=torch.float64)
    torch.testing.assert_close(
        V.network(t, x) - V.network(t, x).mean(), V1.network(t, x) - V1.network(t, x).mean()
    )
    x0 = problem.sample_start(256, torch.Generator().manual_seed(0))
    when = problem.horizon if terminal == "penalty" else 0.0
    level = problem.terminal_cost(x0).mean() if terminal == "penalty" else torch.zeros((), dtype=x0.dtype)
    torch.testing.assert_close(V.network(when, x0).mean(), level, rtol=1e-5, atol=1e-3)
    for i in range(3):
        ti, xi = t[i : i + 1], x[i : i + 1]
        gx, gt = torch.autograd.functional.jacobian(lambda xx, tt: V(tt[None], xx[None])[0], (x[i], t[i]))
        H = torch.autograd.functional.hessian(lambda xx, ti=ti: V(ti, xx[None])[0], x[i])
        phi, grad, _, residual = V.hjb_terms(ti, xi)
        torch.testing.assert_close(phi[0], V(ti, xi)[0])
        torch.testing.assert_close(grad[0], gx)
        torch.testing.assert_close(V.gradient(ti, xi)[0], gx)
        expected = gt + torch.trace(problem.diffusion(xi) @ H) + problem.hamiltonian(t[i], xi, gx[None])
        torch.testing.assert_close(residual[0], expected[0])
    with pytest.raises(ValueError, match="the value scale must be positive, got 0.0"):
        ValueFunction(problem, scale=0.0)


def test_obstacle_reference_is_cached_on_disk(tmp_path):
    """The finite-element reference is solved once and read back from its file with the same values."""
    pytest.importorskip("ctdl.fem").import_dolfinx()
    from ctdl.soc import references

    problem = make_problem("obstacle")
    references._REFERENCES.clear()  # earlier tests in this process may hold the same solution in memory
    first = reference_value(problem, mesh=32, dt=0.02, cache_dir=tmp_path)
    files = list(tmp_path.glob("fem_obstacle_32_*.npz"))
    assert len(files) == 1
    references._REFERENCES.clear()  # a new process: only the file remains
    second = reference_value(problem, mesh=32, dt=0.02, cache_dir=tmp_path)
    assert second is not first
    x = problem.sample_start(50, torch.Generator().manual_seed(0))
    torch.testing.assert_close(second(0.3, x), first(0.3, x), equal_nan=True)
    outside = (x.abs() > 3).any(1)
    assert (
        outside.any() and second(0.3, x)[outside].isnan().all() and second(0.3, x)[~outside].isfinite().all()
    )


def _realised_cost(problem, control, x0, steps, seed):
    return realised_cost(
        problem, controlled_paths(problem, control, x0, steps, torch.Generator().manual_seed(seed))
    )


def test_paired_costs_fly_every_feedback_on_the_same_noise():
    """Riccati's feedback against u = 0 and a detuned feedback on the LQR: path-by-path costs on one
    noise, a difference larger than its paired standard error, which is far below the unpaired one."""
    problem = LQR()
    control = reference_control(problem)
    x0 = problem.sample_start(500, torch.Generator().manual_seed(0))
    costs = paired_costs(
        problem, {"riccati": control, "detuned": lambda t, x: 1.3 * control(t, x), "zero": None}, x0, 50
    )
    torch.testing.assert_close(costs["riccati"], _realised_cost(problem, control, x0, 50, seed=0))
    torch.testing.assert_close(
        costs["zero"], zero_control_cost(problem, x0, 50, torch.Generator().manual_seed(0))
    )
    diff, se, n = paired_difference(costs["detuned"], costs["riccati"])
    assert n == 500 and diff > 3 * se
    unpaired = math.sqrt((costs["detuned"].var() + costs["riccati"].var()) / 500)
    assert se < unpaired / 3  # the common noise cancels in the difference
    assert paired_difference(costs["zero"], costs["riccati"])[0] > 0  # Riccati beats u = 0
    with pytest.raises(ValueError, match="at least 2 paths"):
        paired_difference(costs["zero"][:1], costs["riccati"][:1])


def test_riccati_feedback_is_the_cheapest_on_common_noise():
    """Flown with the same noise, Riccati's feedback costs less than a detuned one on average, and
    its mean cost is the optimal expected cost E[Phi(0, X_0)] up to Monte Carlo and Euler error."""
    problem = LQR()
    control = reference_control(problem)
    x0 = problem.sample_start(2000, torch.Generator().manual_seed(0))
    optimal = _realised_cost(problem, control, x0, 100, seed=1)
    torch.testing.assert_close(optimal, _realised_cost(problem, control, x0, 100, seed=1))  # same noise
    detuned = _realised_cost(problem, lambda t, x: 1.3 * control(t, x), x0, 100, seed=1)
    assert (detuned - optimal).mean() > 5 * (detuned - optimal).std() / math.sqrt(2000)
    expected = RiccatiSolution(problem).expected_cost()
    assert abs(optimal.mean() - expected) < 3 * optimal.std() / math.sqrt(2000) + 0.01 * expected
    assert reference_control(make_problem("quadcopter")) is None


def test_finite_element_feedback_beats_detuned_ones(tmp_path):
    """The obstacle's reference feedback (central differences of the finite-element value) costs
    less than half of it or no control, and about its value Phi(0, x0)."""
    pytest.importorskip("ctdl.fem").import_dolfinx()
    problem = make_problem("obstacle")
    control = reference_control(problem, mesh=48, dt=0.005, cache_dir=tmp_path)
    x0 = problem.sample_start(400, torch.Generator().manual_seed(0))
    x0 = x0[(x0.abs() < 2.5).all(1)]
    fem = _realised_cost(problem, control, x0, 200, seed=1)  # fine enough for the stiff feedback near T
    half = _realised_cost(problem, lambda t, x: 0.5 * control(t, x), x0, 200, seed=1)
    assert fem.isfinite().all() and (half - fem).mean() > 5 * (half - fem).std() / math.sqrt(len(x0))
    assert fem.mean() < 0.5 * _realised_cost(problem, None, x0, 200, seed=1).mean()
    value = reference_value(problem, mesh=48, dt=0.005, cache_dir=tmp_path)(0.0, x0)
    assert abs(fem.mean() - value.mean()) < 0.05 * value.mean()


def test_evaluation_metrics_against_the_exact_lqr_value():
    """The exact value has no error along paths, the reference feedback against itself costs the
    same, and points where the reference is NaN (outside a finite-element box) are left out."""
    problem = LQR()
    riccati = RiccatiSolution(problem)
    x0 = problem.sample_start(64, torch.Generator().manual_seed(0))
    paths = controlled_paths(problem, riccati.control, x0, 20, torch.Generator().manual_seed(1))
    exact = values_along(riccati.value, paths)
    assert exact.shape == (21, 64)
    assert trajectory_error(riccati.value, paths, exact) < 1e-12
    assert abs(trajectory_error(riccati.value, paths, 1.01 * exact) - 0.01) < 1e-9

    def nan_right(t, x):
        out = riccati.value(t, x)
        return out.masked_fill(x[:, 0] > 1.0, math.nan)

    assert abs(trajectory_error(nan_right, paths, 1.01 * exact) - 0.01) < 1e-9
    assert trajectory_error(lambda t, x: torch.full((len(x),), math.nan), paths, exact) is None
    cost = realised_cost(problem, paths)
    ref, same = reference_feedback_cost(
        problem, riccati.control, x0, 20, torch.Generator().manual_seed(1), cost
    )
    torch.testing.assert_close(ref, same)
    cost[0] = math.nan  # a path that left the reference's domain drops out of both means
    ref, same = reference_feedback_cost(
        problem, riccati.control, x0, 20, torch.Generator().manual_seed(1), cost
    )
    torch.testing.assert_close(same, cost[1:].mean())
    torch.testing.assert_close(
        relative_error(torch.tensor([1.1, 0.9]), torch.tensor([1.0, 1.0])), torch.tensor([0.1, 0.1])
    )


def test_cole_hopf_quadrature_is_exact_where_monte_carlo_is_reliable_and_for_large_lambda():
    """The 1-D quadrature (noncentral chi-square) matches Monte Carlo within 3 standard errors at
    lambda 1 and 10 (d = 100 and d = 4 with a shifted target), equals g at t = T, tends to E[g] as
    lambda -> 0, and at lambda = 50 (d = 100) lies below the Monte Carlo mean, whose rare-draw bias
    makes it too high (Jensen: the estimate of -ln E[w] is biased upwards)."""
    origin = torch.zeros(1, 100)
    for lam in (1.0, 10.0):
        mc, se = hjb_lq_value(0.0, origin, lam=lam, samples=200_000)
        assert (hjb_lq_value_quadrature(0.0, origin, lam=lam) - mc).abs().item() < 3 * se.item()
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(1))
    for lam in (1.0, 10.0):
        mc, se = hjb_lq_value(0.3, x, lam=lam, target=0.5, samples=400_000)
        assert ((hjb_lq_value_quadrature(0.3, x, lam=lam, target=0.5) - mc).abs() < 3 * se + 1e-4).all()
    g = torch.log1p(x.square().sum(1)) - math.log(2.0)
    assert torch.allclose(hjb_lq_value_quadrature(1.0, x, lam=1.0), g.double(), atol=1e-12)
    limit = hjb_lq_value_quadrature(0.0, x, lam=0.0)
    assert (hjb_lq_value_quadrature(0.0, x, lam=1e-6) - limit).abs().max() < 1e-5
    mc50, se50 = hjb_lq_value(0.0, origin, lam=50.0, samples=100_000)
    assert hjb_lq_value_quadrature(0.0, origin, lam=50.0).item() < mc50.item() - 10 * se50.item()


def test_hjb_lq_gradient_is_the_quadratures_gradient_and_drives_the_reference_feedback():
    """The radial derivative against central differences of the quadrature along each axis (exact to
    1e-6) and of Monte Carlo with common draws (within its error, 2%); zero at the target; the
    reference feedback is -sqrt(lam) grad Phi and the default reference is the quadrature."""
    x = 0.8 * torch.randn(3, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    target = torch.tensor([0.5, -0.3, 0.0, 1.0], dtype=torch.float64)
    grad = hjb_lq_gradient(0.3, x, lam=1.0, target=target)
    h, eye = 1e-5, torch.eye(4, dtype=torch.float64)
    exact = torch.stack(
        [
            (
                hjb_lq_value_quadrature(0.3, x + h * eye[j], target=target)
                - hjb_lq_value_quadrature(0.3, x - h * eye[j], target=target)
            )
            / (2 * h)
            for j in range(4)
        ],
        dim=1,
    )
    torch.testing.assert_close(grad, exact, atol=1e-6, rtol=1e-5)
    mc = torch.stack(
        [
            (
                hjb_lq_value(0.3, x + 1e-4 * eye[j], target=target, samples=100_000)[0]
                - hjb_lq_value(0.3, x - 1e-4 * eye[j], target=target, samples=100_000)[0]
            )
            / 2e-4
            for j in range(4)
        ],
        dim=1,
    )
    assert ((grad - mc).norm(dim=1) / mc.norm(dim=1)).max() < 0.02
    assert hjb_lq_gradient(0.0, target.expand(2, 4), target=target).abs().max() == 0
    problem = HJBLQ(dim=4, lam=4.0, target=target.tolist())
    u = reference_control(problem)(0.3, x)
    torch.testing.assert_close(u, -2.0 * hjb_lq_gradient(0.3, x, lam=4.0, target=target))
    torch.testing.assert_close(
        reference_value(problem)(0.3, x), hjb_lq_value_quadrature(0.3, x, lam=4.0, target=target)
    )


def test_zero_control_cost_is_the_terminal_cost_of_free_noise():
    """u = 0 on HJB-LQ (d = 10, lam = 1): X_T = x0 + sqrt(2) W_1 exactly under Euler, so the mean J
    is E[ln((1 + 2 |Z|^2) / 2)], here against 200,000 independent draws (within 4 standard errors),
    and it exceeds the optimum Phi(0, 0) (the quadrature)."""
    problem = make_problem("hjb_lq", dim=10)
    gen = torch.Generator().manual_seed(0)
    cost = zero_control_cost(problem, torch.zeros(4000, 10, dtype=torch.float64), 20, gen)
    z = torch.randn(200_000, 10, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    exact = torch.log((1 + 2 * z.pow(2).sum(1)) / 2).mean()
    assert abs(cost.mean() - exact) < 4 * cost.std() / math.sqrt(len(cost))
    assert cost.mean() > hjb_lq_value_quadrature(0.0, torch.zeros(1, 10, dtype=torch.float64))[0]
