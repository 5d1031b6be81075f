"""Convergence and cost of the finite-element HJB reference (ctdl.control.fem_hjb).

    python scripts/bench_fem_hjb.py [--mesh-dt 5e-4] [--dt-mesh 96] [--obstacle-mesh 149]

Three parts, written together to benchmarks/fem_hjb.json and benchmarks/fem_hjb.md:

* lqr_mesh: the LQR (exact value by Riccati) on [-3, 3]^2 with meshes 24, 48, 96 at a small fixed
  dt; max and mean relative error of Phi(0, x) over a 61 x 61 grid of |x|_inf <= 1.5 (away from the
  no-flux boundary, where the quadratic exact value does not satisfy the boundary condition), and
  the observed order log2(e_coarse / e_fine) (2 expected in h).
* lqr_dt: the same with dt 0.1, 0.05, 0.025 on a fixed fine mesh (order 1 expected in dt).
* obstacle: the obstacle problem on the reference discretisation (149 x 149, dt = 1e-3), its
  solve time and Phi(0, x) at a few points, and the differences to a 2x coarser mesh and to a 2x
  larger dt over a 61 x 61 grid of the whole box (a self-convergence estimate).

Everything runs on one thread (torch and BLAS) and in one process.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
from bench_common import OUT, environment, table  # noqa: E402

from ctdl.control.fem_hjb import fem_value_2d  # noqa: E402
from ctdl.control.problems import LQR, Obstacle  # noqa: E402
from ctdl.control.references import RiccatiSolution  # noqa: E402

TOPIC = "fem_hjb"
SAMPLE_POINTS = ((-1.5, -1.5), (0.0, 0.0), (-1.5, 1.5), (0.75, 0.75), (1.5, 1.5))


def grid(half: float, n: int = 61) -> torch.Tensor:
    g = torch.linspace(-half, half, n, dtype=torch.float64)
    return torch.cartesian_prod(g, g)


def lqr_row(problem: LQR, ref: RiccatiSolution, mesh: int, dt: float, x: torch.Tensor) -> dict:
    start = time.perf_counter()
    value = fem_value_2d(problem, mesh=mesh, dt=dt)
    total = time.perf_counter() - start
    exact = ref.value(0.0, x)
    err = (value(0.0, x) - exact).abs() / exact.abs()
    return {
        "mesh": mesh,
        "h": round(6.0 / mesh, 5),
        "dt": dt,
        "steps": value.steps,
        "max_rel_err": err.max().item(),
        "mean_rel_err": err.mean().item(),
        "newton_its": value.newton_iterations,
        "solve_s": round(value.solve_seconds, 2),
        "total_s": round(total, 2),
    }


def add_orders(rows: list[dict]) -> list[dict]:
    """The observed order log2(e_previous / e) of the max and mean errors (each step halves h or dt)."""
    for prev, row in zip(rows, rows[1:], strict=False):
        for key in ("max", "mean"):
            row[f"order_{key}"] = round(math.log2(prev[f"{key}_rel_err"] / row[f"{key}_rel_err"]), 2)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--meshes", type=int, nargs="+", default=[24, 48, 96])
    parser.add_argument("--mesh-dt", type=float, default=5e-4, help="dt of the mesh study")
    parser.add_argument("--dts", type=float, nargs="+", default=[0.1, 0.05, 0.025])
    parser.add_argument("--dt-mesh", type=int, default=96, help="mesh of the dt study")
    parser.add_argument("--obstacle-mesh", type=int, default=149)
    parser.add_argument("--obstacle-dt", type=float, default=1e-3)
    args = parser.parse_args()
    torch.set_num_threads(1)

    problem, ref = LQR(), RiccatiSolution(LQR())
    x = grid(1.5)
    fem_value_2d(problem, mesh=4, dt=0.5)  # compile the forms once, outside the timings
    mesh_rows = add_orders([lqr_row(problem, ref, m, args.mesh_dt, x) for m in args.meshes])
    dt_rows = add_orders([lqr_row(problem, ref, args.dt_mesh, dt, x) for dt in args.dts])

    obstacle = Obstacle()
    fem_value_2d(obstacle, mesh=4, dt=0.5)
    fine = fem_value_2d(obstacle, mesh=args.obstacle_mesh, dt=args.obstacle_dt)
    coarse_mesh = fem_value_2d(obstacle, mesh=args.obstacle_mesh // 2, dt=args.obstacle_dt)
    coarse_dt = fem_value_2d(obstacle, mesh=args.obstacle_mesh, dt=2 * args.obstacle_dt)
    pts = torch.tensor(SAMPLE_POINTS, dtype=torch.float64)
    box = grid(3.0)
    phi_fine = fine(0.0, box)
    scale = phi_fine.abs().max().item()
    obstacle_rows = []
    for label, v in (("reference", fine), ("mesh / 2", coarse_mesh), ("2 dt", coarse_dt)):
        row = {
            "run": label,
            "mesh": v.mesh,
            "dt": v.dt,
            "newton_its": v.newton_iterations,
            "max_newton_its": v.max_newton_iterations,
            "solve_s": round(v.solve_seconds, 1),
        }
        values = v(0.0, pts)
        row.update(
            {f"Phi0{tuple(p)}": round(float(val), 4) for p, val in zip(SAMPLE_POINTS, values, strict=True)}
        )
        if v is not fine:
            diff = (v(0.0, box) - phi_fine).abs()
            row["max_abs_diff"] = diff.max().item()
            row["max_diff_over_max_Phi"] = diff.max().item() / scale
        obstacle_rows.append(row)

    mesh_setup = (
        f"LQR (A = [[0, 1], [0, 0]], B = Q = R = I, G = diag(4, 1), sigma = 0.5 I, T = 1) on "
        f"[-3, 3]^2, P1 on triangles, Neumann, backward Euler dt = {args.mesh_dt:g}, Newton (SNES, "
        f"MUMPS LU); relative error of Phi(0, x) against Riccati over a 61 x 61 grid of "
        f"|x|_inf <= 1.5; order = log2 of the error ratio of successive rows (2 expected)"
    )
    dt_setup = (
        f"the same LQR on the mesh {args.dt_mesh}, dt halved per row; order 1 expected in dt "
        f"until the mesh error (see lqr_mesh) dominates"
    )
    obstacle_setup = (
        f"Obstacle (height 50, width 0.4, weight 50, sigma = [[0.2, -0.4], [-0.4, 0.2]], "
        f"T = 1) on [-3, 3]^2, P1 on triangles, Neumann; Phi(0, x) at sample points; "
        f"max |Phi - Phi_ref| over a 61 x 61 grid of the box, max |Phi_ref| there "
        f"{scale:.1f}"
    )
    parts = {
        "lqr_mesh": {"setup": mesh_setup, "rows": mesh_rows},
        "lqr_dt": {"setup": dt_setup, "rows": dt_rows},
        "obstacle": {"setup": obstacle_setup, "rows": obstacle_rows},
    }
    env = environment()
    OUT.mkdir(exist_ok=True)
    (OUT / f"{TOPIC}.json").write_text(json.dumps({"env": env, **parts}, indent=2))
    md = [
        "# Finite-element HJB reference (scripts/bench_fem_hjb.py)",
        "",
        f"{env['cpu']}, {env['cores']} cores, {env['torch_threads']} torch thread(s), one process; "
        f"Python {env['python']}, torch {env['torch']}. Solve times are wall seconds of the time "
        f"stepping (form compilation excluded) and vary with the machine's load.",
        "",
    ]
    for name, part in parts.items():
        md += [f"## {name}", "", f"Setup: {part['setup']}", "", table(part["rows"]), ""]
    (OUT / f"{TOPIC}.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
