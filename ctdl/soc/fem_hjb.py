"""Finite-element reference value of a 2-D control problem: the HJB equation solved with DOLFINx.

The value Phi(t, x) of a `Problem2D` solves, on the box Omega = [lo, hi]^2,

    d_t Phi + div(D grad Phi) + H(x, grad Phi) = 0,   Phi(T) = g,   D = sigma sigma' / 2,

(tr(D Hess Phi) = div(D grad Phi) because D is constant), with the natural no-flux boundary
condition (D grad Phi).n = 0 on the boundary of Omega. Space: continuous piecewise-linear
Lagrange elements (P1) on a structured mesh of `mesh` x `mesh` squares, each cut into two
triangles. Time: backward (implicit) Euler from t_N = T down to t_0 = 0 with step dt, so
Phi^N = g and, for n = N - 1, ..., 0, Phi^n in V_h solves

    int (Phi^n - Phi^{n+1}) / dt v dx + int (D grad Phi^n).grad v dx - int H(x, grad Phi^n) v dx = 0

for every v in V_h (the boundary term vanishes by the no-flux condition). With scheme="bdf2" the
difference quotient is the second-order backward one, (3/2 Phi^n - 2 Phi^{n+1} + 1/2 Phi^{n+2}) / dt,
after one backward Euler step from T. Each step is a nonlinear system, solved by Newton's method
(PETSc SNES, backtracking line search, direct LU by MUMPS) started from Phi^{n+1}. The error is
O(h^2 + dt) for smooth values (O(h^2 + dt^2) with "bdf2"). Snapshots are kept at
chosen times and the returned `FEMValue` evaluates the P1 function at points by barycentric
interpolation on the structured mesh, linear in time between snapshots.

Reference: Li, Verma and Ruthotto, "A neural network approach for stochastic optimal control",
SIAM J. Sci. Comput. 2024; their reference value of the obstacle problem uses P1 on [-3, 3]^2
with a 149 x 149 mesh, Neumann boundary conditions, backward Euler with dt = 1e-3 and Newton.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .problems import Problem2D

__all__ = ["FEMValue", "fem_value_2d", "SCHEMES"]

SCHEMES = ("euler", "bdf2")
"""The time schemes: backward Euler and the second-order backward differentiation formula."""


class FEMValue:
    """Phi(t, x) of a finite-element HJB solve: call it as `value(t, x)`.

    Attributes:
        problem: the solved problem.
        domain: (lo, hi) of the box [lo, hi]^2.
        mesh: squares per side (each split into two triangles); mesh + 1 nodes per side.
        dt: the time step used (T / steps).
        steps: number of backward Euler steps.
        times: (K,) snapshot times, increasing, float64 numpy.
        nodal: (K, mesh + 1, mesh + 1) nodal values, nodal[k, i, j] = Phi(times[k], (x_i, y_j)).
        solve_seconds: wall time of the time stepping (form compilation excluded).
        setup_seconds: wall time of mesh, form compilation and solver set-up.
        newton_iterations: Newton iterations summed over all steps.
        max_newton_iterations: the most Newton iterations of one step.
    """

    def __init__(
        self,
        problem: Problem2D,
        domain: tuple[float, float],
        mesh: int,
        dt: float,
        steps: int,
        times: np.ndarray,
        nodal: np.ndarray,
        diagonal_up: np.ndarray,
        solve_seconds: float,
        setup_seconds: float,
        newton_iterations: int,
        max_newton_iterations: int,
    ) -> None:
        self.problem, self.domain, self.mesh, self.dt, self.steps = problem, domain, mesh, dt, steps
        self.times, self.nodal = times, nodal
        # (mesh, mesh): True where square (i, j) is cut from node (i, j) to node (i + 1, j + 1)
        self._diagonal_up = diagonal_up
        self.solve_seconds, self.setup_seconds = solve_seconds, setup_seconds
        self.newton_iterations, self.max_newton_iterations = newton_iterations, max_newton_iterations

    def save(self, path: str | Path) -> None:
        """Write the snapshots and the solve's record to an .npz file (read back with `load`)."""
        np.savez_compressed(
            path,
            times=self.times,
            nodal=self.nodal,
            diagonal_up=self._diagonal_up,
            domain=np.asarray(self.domain, dtype=float),
            record=np.asarray(
                [
                    self.mesh,
                    self.dt,
                    self.steps,
                    self.solve_seconds,
                    self.setup_seconds,
                    self.newton_iterations,
                    self.max_newton_iterations,
                ],
                dtype=float,
            ),
        )

    @classmethod
    def load(cls, path: str | Path, problem: Problem2D) -> FEMValue:
        """The FEMValue `save` wrote for `problem` (the caller keys files by problem and settings)."""
        with np.load(path) as f:
            mesh, dt, steps, solve_s, setup_s, newton, max_newton = f["record"].tolist()
            return cls(
                problem,
                tuple(f["domain"].tolist()),
                int(mesh),
                dt,
                int(steps),
                f["times"],
                f["nodal"],
                f["diagonal_up"],
                solve_s,
                setup_s,
                int(newton),
                int(max_newton),
            )

    @property
    def horizon(self) -> float:
        return float(self.times[-1])

    def __repr__(self) -> str:
        lo, hi = self.domain
        return (
            f"FEMValue({self.problem.name}, box [{lo}, {hi}]^2, mesh={self.mesh}, dt={self.dt:g}, "
            f"snapshots={len(self.times)}, solve {self.solve_seconds:.2f} s, "
            f"{self.newton_iterations} Newton iterations)"
        )

    def _locate(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        """(i, j, s, r, up): the square (i, j) of each point, its local coordinates (s, r) in [0, 1]
        and whether the square's diagonal runs from (0, 0) to (1, 1); a ValueError for points outside."""
        lo, hi = self.domain
        m = self.mesh
        tol = 1e-9 * (hi - lo)
        outside = ~((x >= lo - tol) & (x <= hi + tol)).all(1)  # NaN counts as outside
        if outside.any():
            bad = x[outside][0]
            raise ValueError(
                f"{int(outside.sum())} point(s) lie outside the box [{lo}, {hi}]^2 of the "
                f"finite-element solution, e.g. ({bad[0]:.6g}, {bad[1]:.6g})"
            )
        u = np.clip((x - lo) / ((hi - lo) / m), 0.0, m)
        ij = np.minimum(np.floor(u).astype(np.int64), m - 1)
        s, r = (u - ij).T
        i, j = ij.T
        return i, j, s, r, self._diagonal_up[i, j]

    def _snapshot(self, k: np.ndarray, i, j, s, r, up) -> np.ndarray:
        """The P1 function of snapshot k[p] at point p (barycentric on the point's triangle)."""
        f = self.nodal
        f00, f10, f01, f11 = f[k, i, j], f[k, i + 1, j], f[k, i, j + 1], f[k, i + 1, j + 1]
        # diagonal (0,0)-(1,1): the triangle below it (s >= r) or above it
        below = f00 + s * (f10 - f00) + r * (f11 - f10)
        above = f00 + r * (f01 - f00) + s * (f11 - f01)
        # diagonal (1,0)-(0,1): the triangle at (0,0) (s + r <= 1) or at (1,1)
        lower = f00 + s * (f10 - f00) + r * (f01 - f00)
        upper = f11 + (1 - s) * (f01 - f11) + (1 - r) * (f10 - f11)
        return np.where(up, np.where(s >= r, below, above), np.where(s + r <= 1, lower, upper))

    def __call__(self, t: float | Tensor | np.ndarray, x: Tensor | np.ndarray) -> Tensor:
        """Phi(t, x): (n,) float64 for points x of shape (n, 2) and one time t in [0, T] or (n,) times."""
        if isinstance(x, Tensor):
            x = x.detach().cpu().numpy()
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != 2:
            raise ValueError(f"x must have shape (n, 2); got {tuple(x.shape)}")
        if isinstance(t, Tensor):
            t = t.detach().cpu().numpy()
        t = np.asarray(t, dtype=np.float64).reshape(-1)
        if t.size not in (1, len(x)):
            raise ValueError(f"t must be one time or one per point ({len(x)}); got {t.size} times")
        T = self.horizon
        if not ((t >= -1e-12 * max(T, 1.0)) & (t <= T * (1 + 1e-12))).all():
            raise ValueError(f"t must lie in [0, {T}]; got {t.min() if t.min() < 0 else t.max()}")
        t = np.broadcast_to(t, (len(x),))
        k = np.clip(np.searchsorted(self.times, t, side="right") - 1, 0, len(self.times) - 2)
        w = np.clip((t - self.times[k]) / (self.times[k + 1] - self.times[k]), 0.0, 1.0)
        where = self._locate(x)
        values = (1 - w) * self._snapshot(k, *where)
        moving = w > 0
        if moving.any():  # only points strictly after snapshot k need snapshot k + 1
            values[moving] += w[moving] * self._snapshot(k[moving] + 1, *(a[moving] for a in where))
        return torch.from_numpy(np.ascontiguousarray(values))

    value = __call__


SNES_OPTIONS = {
    "snes_type": "newtonls",
    "snes_linesearch_type": "bt",
    "snes_rtol": 1e-10,
    "snes_atol": 1e-12,
    "snes_stol": 1e-12,
    "snes_max_it": 50,
    "ksp_type": "preonly",
    "pc_type": "lu",
    "pc_factor_mat_solver_type": "mumps",
    "ksp_error_if_not_converged": True,
}
"""Newton (backtracking line search) with a direct MUMPS solve per iteration."""


def _default_save_times(T: float) -> list[float]:
    return [T * k / 20 for k in range(21)]


def fem_value_2d(
    problem: Problem2D,
    mesh: int = 149,
    dt: float = 1e-3,
    save_times: Sequence[float] | None = None,
    domain: tuple[float, float] | None = None,
    scheme: str = "euler",
) -> FEMValue:
    """Solve the HJB equation of `problem` backwards from Phi(T) = g by P1 finite elements.

    Args:
        problem: a 2-D problem with `ufl_hamiltonian`, `ufl_terminal`, `sigma` and `horizon`.
        mesh: squares per side of the structured triangle mesh (two triangles each), >= 2.
        dt: the time step; T / dt is rounded up to whole steps and dt shrunk to T / steps.
        save_times: times in [0, T] at which to keep snapshots (0 and T are always added);
            default every 0.05 T.
        domain: (lo, hi) of the box [lo, hi]^2; default `problem.domain`.
        scheme: "euler" (backward Euler, first order in dt) or "bdf2" (second order).

    Returns:
        A callable `FEMValue`; `value(t, x)` gives Phi(t, x) for x of shape (n, 2).
    """
    if not isinstance(problem, Problem2D) or problem.dim != 2:
        raise ValueError(
            f"fem_value_2d needs a 2-D problem (a Problem2D with UFL Hamiltonian and terminal "
            f"cost); got {problem!r}"
        )
    if int(mesh) != mesh or mesh < 2:
        raise ValueError(f"mesh must be an integer >= 2, got {mesh!r}")
    mesh = int(mesh)
    T = float(problem.horizon)
    if not (dt > 0 and math.isfinite(dt)):
        raise ValueError(f"dt must be positive, got {dt!r}")
    if scheme not in SCHEMES:
        raise ValueError(f"unknown time scheme {scheme!r}; known: {', '.join(SCHEMES)}")
    lo, hi = (float(v) for v in (problem.domain if domain is None else domain))
    if not hi > lo:
        raise ValueError(f"domain must be (lo, hi) with lo < hi, got {(lo, hi)}")
    steps = max(1, math.ceil(T / dt - 1e-9))
    dt = T / steps
    wanted = _default_save_times(T) if save_times is None else save_times
    saves = sorted({0.0, T, *(float(s) for s in wanted)})
    if saves[0] < 0 or saves[-1] > T * (1 + 1e-12):
        raise ValueError(f"save_times must lie in [0, {T}]; got {saves[0]} .. {saves[-1]}")

    from ctdl.fem import import_dolfinx

    dolfinx = import_dolfinx()
    import ufl
    from dolfinx.fem.petsc import NonlinearProblem
    from mpi4py import MPI

    t_setup = time.perf_counter()
    msh = dolfinx.mesh.create_rectangle(
        MPI.COMM_SELF, [np.array([lo, lo]), np.array([hi, hi])], [mesh, mesh], dolfinx.mesh.CellType.triangle
    )
    V = dolfinx.fem.functionspace(msh, ("Lagrange", 1))
    h = (hi - lo) / mesh

    # nodal values <-> the (mesh + 1)^2 grid, and which diagonal cuts each square
    coords = V.tabulate_dof_coordinates()[:, :2]
    grid = np.rint((coords - lo) / h).astype(np.int64)
    if not np.allclose(lo + grid * h, coords, atol=1e-9 * (hi - lo)) or len(coords) != (mesh + 1) ** 2:
        raise RuntimeError("the DOLFINx mesh is not the expected structured grid")
    cells = V.dofmap.list  # (cells, 3) dofs per triangle
    cij = grid[cells]  # (cells, 3, 2)
    corner = cij.min(axis=1)
    has_00 = ((cij == corner[:, None, :]).all(-1)).any(1)
    has_11 = ((cij == corner[:, None, :] + 1).all(-1)).any(1)
    diagonal_up = np.zeros((mesh, mesh), dtype=bool)
    diagonal_up[corner[:, 0], corner[:, 1]] = has_00 & has_11

    phi = dolfinx.fem.Function(V)  # Phi^n, the unknown
    phi_next = dolfinx.fem.Function(V)  # Phi^{n+1}
    phi_next2 = dolfinx.fem.Function(V)  # Phi^{n+2} (bdf2)
    x = ufl.SpatialCoordinate(msh)
    terminal = dolfinx.fem.Expression(problem.ufl_terminal(x), V.element.interpolation_points)
    phi_next.interpolate(terminal)
    phi.x.array[:] = phi_next.x.array

    D = 0.5 * (problem.sigma @ problem.sigma.T)
    D_ufl = ufl.as_matrix(D.tolist())
    v = ufl.TestFunction(V)
    k = dolfinx.fem.Constant(msh, dolfinx.default_scalar_type(1.0 / dt))
    space = ufl.dot(D_ufl * ufl.grad(phi), ufl.grad(v)) - problem.ufl_hamiltonian(x, ufl.grad(phi)) * v
    forms = {"euler": (k * (phi - phi_next) * v + space) * ufl.dx}
    if scheme == "bdf2":
        forms["bdf2"] = (k * (1.5 * phi - 2.0 * phi_next + 0.5 * phi_next2) * v + space) * ufl.dx
    problems = {
        name: NonlinearProblem(
            F,
            phi,
            petsc_options_prefix=f"ctdl_fem_hjb_{problem.name}_{name}_",
            petsc_options=SNES_OPTIONS,
        )
        for name, F in forms.items()
    }
    setup_seconds = time.perf_counter() - t_setup

    def as_grid(values: np.ndarray) -> np.ndarray:
        out = np.empty((mesh + 1, mesh + 1))
        out[grid[:, 0], grid[:, 1]] = values
        return out

    snaps: dict[float, np.ndarray] = {T: as_grid(phi_next.x.array)}
    pending = [s for s in reversed(saves) if s < T]  # decreasing
    total_its = max_its = 0
    t_solve = time.perf_counter()
    for n in range(steps - 1, -1, -1):
        nonlinear = problems["bdf2" if scheme == "bdf2" and n < steps - 1 else "euler"]
        snes = nonlinear.solver
        nonlinear.solve()
        its = snes.getIterationNumber()
        if snes.getConvergedReason() <= 0:
            raise RuntimeError(
                f"Newton did not converge in the {scheme} step to t = {n * dt:.6g} of the "
                f"{problem.name} problem (mesh {mesh}, dt {dt:.3g}; SNES reason {snes.getConvergedReason()}, "
                f"residual {snes.getFunctionNorm():.3g} after {its} iterations); the discrete problem may "
                "have no solution on a mesh this coarse: refine the mesh or reduce dt"
            )
        total_its, max_its = total_its + its, max(max_its, its)
        t_n, t_next = n * dt, (n + 1) * dt
        while pending and pending[0] >= t_n - 1e-12 * T:
            s = pending.pop(0)
            w = min(max((t_next - s) / dt, 0.0), 1.0)  # the weight of Phi^n (1 at s = t_n)
            snaps[s] = as_grid(w * phi.x.array + (1 - w) * phi_next.x.array)
        phi_next2.x.array[:] = phi_next.x.array
        phi_next.x.array[:] = phi.x.array
    solve_seconds = time.perf_counter() - t_solve
    del problems, nonlinear, snes

    times = np.array(sorted(snaps))
    nodal = np.stack([snaps[s] for s in times])
    return FEMValue(
        problem,
        (lo, hi),
        mesh,
        dt,
        steps,
        times,
        nodal,
        diagonal_up,
        solve_seconds,
        setup_seconds,
        total_its,
        max_its,
    )
