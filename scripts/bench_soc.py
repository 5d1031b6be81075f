"""Stochastic optimal control benchmarks: the value network against the problems' references, the
Deep BSDE baseline and the open-loop optimum; the finite-element reference's own convergence.

run         `ctdl fit` then `ctdl test` (best val/loss checkpoint; --retest: test the row's checkpoint again,
            its training time kept; --checkpoint-of LABEL: test that row's weights in the model the config
            builds (`--init_from`), e.g. on other starts) on a shipped config with optional overrides; one row
            per --label in benchmarks/soc_runs.json: test/phi0_rel_err (Phi(0, x0) against the reference over
            the test starts), test/traj_rel_l2 (Phi along controlled paths), the realised cost J of the
            learned feedback against the reference E[Phi(0, X_0)] and against the reference feedback on the
            same noise, the training time (train clock) and steps.
seeds       `run` for each --seeds value (label <LABEL>_seed<S>, `--seed_everything S`; rows already in
            soc_runs.json are kept unless --refit), then the mean and standard deviation over the seeds
            of every metric (benchmarks/soc_seeds.json, one row per --label).
paired      rows' learned feedbacks (--labels, rows of soc_runs.json; their config's test starts) flown
            beside the reference feedback and u = 0 on the same starts and the same noise: per-path
            J, each J difference with its paired standard error (benchmarks/soc_paired.json).
quadcopter  policies trained without noise (--deterministic LABEL) and with noise (--noisy LABEL), rows
            of soc_runs.json, both flown with and without noise from the same starts: mean cost J and
            terminal miss distance; and the deterministic open-loop optimum (L-BFGS) from the same
            starts (benchmarks/soc_quadcopter.json).
deep_bsde   the value network (`run` with --trainer.max_steps STEPS) against the Deep BSDE method
            (`ctdl.soc.baselines.DeepBSDE`) trained for the same wall time, on HJB-LQ d = 100 from the
            origin; both evaluated alike on the Deep BSDE grid: Phi(0, 0) and Phi along controlled
            paths against Cole-Hopf, the realised cost J, iterations and seconds per 1,000 iterations
            (benchmarks/soc_deep_bsde_<STEPS>.json).
fem         the finite-element HJB reference (`ctdl.soc.fem_hjb`): the LQR against Riccati under mesh
            refinement (soc_fem_mesh.json, order 2 in h expected) and time refinement (soc_fem_dt.json,
            order 1 in dt), and the obstacle problem on the reference discretisation against a 2x
            coarser mesh and a 2x larger dt (soc_fem_obstacle.json); one process, one thread.
report      benchmarks/soc.md from the JSON files (every part ends with it).

    python scripts/bench_soc.py run --label hjb_lq --config configs/soc/hjb_lq.yaml
    python scripts/bench_soc.py run --label hjb_lq_origin --checkpoint-of hjb_lq \\
        --config configs/soc/hjb_lq.yaml --override --data.problem_args "{dim: 100, lam: 1.0, start: origin}"
    python scripts/bench_soc.py run --label hjb_lq_lam2_shift --config configs/soc/hjb_lq.yaml \\
        --override --data.problem_args "{dim: 100, lam: 2.0, target: 0.5, start: gaussian, start_std: 0.5}"
    python scripts/bench_soc.py quadcopter --deterministic quadcopter_det --noisy quadcopter
    python scripts/bench_soc.py deep_bsde --steps 500
    python scripts/bench_soc.py fem --meshes 24 48 96 --dts 0.1 0.05 0.025
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import harness
import torch

TASK, TITLE = "soc", "Stochastic optimal control"
RUNS_DIR = harness.RUNS / "bench_soc"
TIMING = ("steps", "train_s", "fit_wall_s", "s_per_1000_steps", "checkpoint")
METRICS = (
    "phi0_rel_err",
    "traj_rel_l2",
    "cost",
    "cost_matched",
    "cost_ref",
    "cost_rel_gap",
    "cost_ref_feedback",
    "feedback_gap",
    "cost_zero",
)
RUNS_TARGET = (
    "HJB-LQ: relative error of Phi(0, x) and relative L2 error along controlled paths (published "
    "NeuralSOC 0.01-0.07% at t = 0 and 0.4-0.6% along paths, quoted); obstacle: ~2% mean relative "
    "error of Phi(0, x) against finite elements (quoted)"
)
RUNS_SETUP = (
    "`ctdl fit` on the config (with the overrides), best val/loss checkpoint, `ctdl test` on the test "
    "starts (never used for a choice); references: Cole-Hopf (hjb_lq: Monte Carlo before the "
    "quadrature became the default), Riccati (lqr), finite elements (obstacle, inside its box "
    "[-3, 3]^2); cost = mean realised J of the learned feedback, one path per test start; cost_ref = "
    "mean reference Phi(0, x0) and cost_matched = mean J over the starts that have a reference; "
    "cost_rel_gap compares those two; cost_ref_feedback = mean J of the reference feedback (Riccati; "
    "finite-element gradient) from the same starts with the same noise, feedback_gap = the learned J "
    "against it on those paths; cost_zero = mean J of u = 0 from the same starts with the same noise "
    "(the trivial baseline; rows without it were recorded before it was logged); train_s = seconds "
    "inside training batches and fit_wall_s = the whole fit (validation included); rows without "
    "fit_wall_s were recorded before the train clock: their train_s and s_per_1000_steps are of the "
    "whole fit, validation included"
)


# ---------------------------------------------------------------------------------------- run
def fit_options(config: str, label: str, overrides: list[str], runs_dir: Path) -> list[str]:
    """The `ctdl` options `harness.fit` runs a label with (a --retest passes them to `harness.test`)."""
    return [
        "--config",
        config,
        *overrides,
        "--runs_dir",
        str(runs_dir),
        "--run_name",
        label,
        "--trainer.enable_progress_bar",
        "false",
    ]


def recorded_runs() -> dict[str, dict]:
    """The rows of soc_runs.json by label."""
    return {r["label"]: r for r in harness.load(TASK, "runs").get("rows", [])}


def part_run(
    label: str,
    config: str,
    overrides: list[str],
    runs_dir: Path | None = None,
    retest: bool = False,
    checkpoint_of: str | None = None,
) -> dict:
    """Fit (unless retest or checkpoint_of) and test one config; upsert and return its row of
    soc_runs.json. checkpoint_of: test the checkpoint of that row instead (e.g. on other starts)."""
    from ctdl.soc.evaluate import relative_gap

    runs_dir = runs_dir or RUNS_DIR
    if retest or checkpoint_of:
        source = checkpoint_of or label
        previous = recorded_runs().get(source)
        if previous is None:
            raise SystemExit(
                f"no run labelled {source!r} in {harness.result_path(TASK, 'runs')} to test again"
            )
        options = fit_options(config, label, overrides, runs_dir)
        if checkpoint_of:  # the config's model with the row's weights: its data (starts) may differ
            metrics = harness.test(common=options, init_from=previous["checkpoint"])
        else:
            metrics = harness.test(common=options, checkpoint=previous["checkpoint"])
        timing = {k: previous[k] for k in TIMING if k in previous}
    else:
        run = harness.fit(config, label, overrides, runs_dir)
        metrics, timing = harness.test(run), run.row()
    metrics = {k: round(v, 5) for k, v in metrics.items()}
    if "cost_ref" in metrics:
        metrics["cost_rel_gap"] = round(relative_gap(metrics["cost_matched"], metrics["cost_ref"]), 5)
    if "cost_ref_feedback" in metrics:
        metrics["feedback_gap"] = round(
            relative_gap(metrics["cost_same_noise"], metrics["cost_ref_feedback"]), 5
        )
    row = {
        "label": label,
        "config": Path(config).name,
        "overrides": " ".join(overrides) or "-",
        **{k: metrics[k] for k in METRICS if k in metrics},
        **timing,
    }
    harness.upsert(TASK, "runs", [row], target=RUNS_TARGET, setup=RUNS_SETUP)
    return row


# -------------------------------------------------------------------------------------- seeds
def part_seeds(
    label: str, config: str, overrides: list[str], seeds: list[int], runs_dir: Path | None, refit: bool
) -> None:
    import numpy as np

    rows = []
    for seed in seeds:
        name = f"{label}_seed{seed}"
        known = recorded_runs().get(name)
        if known is None or refit:
            known = part_run(name, config, [*overrides, "--seed_everything", str(seed)], runs_dir)
        rows.append(known)
    summary = {"label": label, "config": Path(config).name, "seeds": " ".join(map(str, seeds))}
    for metric in METRICS:
        values = np.array([r[metric] for r in rows if metric in r], dtype=float)
        if len(values) == len(rows):
            summary[f"{metric}_mean"] = round(float(values.mean()), 5)
            summary[f"{metric}_sd"] = round(float(values.std(ddof=1)), 5) if len(values) > 1 else None
    harness.upsert(
        TASK,
        "seeds",
        [summary],
        setup="the `run` rows <label>_seed<S> (each `ctdl fit` with --seed_everything S: weights, training "
        "starts' order and noise; the validation and test starts are the data's own and shared), mean and "
        "standard deviation (ddof 1) over the seeds of each metric",
    )


# ------------------------------------------------------------------------------------- paired
def part_paired(labels: list[str], runs_dir: Path | None) -> None:
    from ctdl.cli import run_cli
    from ctdl.soc import reference_control
    from ctdl.soc.evaluate import mean_and_se, paired_costs, paired_difference

    rows, models, first = recorded_runs(), {}, None
    missing = [label for label in labels if label not in rows]
    if missing:
        raise SystemExit(f"no run labelled {missing} in {harness.result_path(TASK, 'runs')}")
    for label in labels:
        row = rows[label]
        if "--data" in row["overrides"]:
            raise SystemExit(
                f"{label} changed its data ({row['overrides']}); paired runs on the config's starts"
            )
        options = fit_options(f"configs/soc/{row['config']}", label, [], runs_dir or RUNS_DIR)
        cli = run_cli([*options, "--init_from", row["checkpoint"]], run=False)
        cli.datamodule.setup("test")
        x0 = cli.datamodule.test_dataset.tensors[0].double()
        if first is None:
            first = (cli.model.problem, x0, cli.model.hparams.eval_steps, row["config"])
        elif row["config"] != first[3] or not torch.equal(x0, first[1]):
            raise SystemExit(f"{label} was tested on other starts than {labels[0]}; pair rows of one config")
        models[label] = cli.model.double().eval()
    problem, x0, steps, config = first
    controls = {label: m.control for label, m in models.items()}
    reference = reference_control(problem)
    if reference is not None:
        controls["reference feedback"] = reference
    controls["zero control"] = None
    costs = paired_costs(problem, controls, x0, steps)
    out = []
    names = list(costs)
    for name in names:
        mean, se = mean_and_se(costs[name][torch.isfinite(costs[name])])
        out.append({"feedback": name, "J": round(mean, 5), "J_se": round(se, 5)})
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            diff, se, n = paired_difference(costs[a], costs[b])
            out.append({"feedback": f"{a} - {b}", "J": round(diff, 5), "J_se": round(se, 5), "paths": n})
    harness.save(
        TASK,
        "paired",
        {
            "setup": f"{config}: the test starts ({len(x0)}), one path each, {steps} Euler-Maruyama steps, "
            "every feedback on the same noise (seed 0); J_se of a difference is its paired standard error "
            "sd(J_a - J_b) / sqrt(n); the learned feedbacks are the rows' checkpoints",
            "rows": out,
        },
    )


# --------------------------------------------------------------------------------- quadcopter
def part_quadcopter(
    deterministic: str, noisy: str, starts: int, open_loop_starts: int, open_loop_iterations: int
) -> None:
    from ctdl.models import StochasticOptimalControl
    from ctdl.soc import make_problem, open_loop_optimum
    from ctdl.soc.evaluate import position_miss, realised_cost

    rows = recorded_runs()
    missing = [label for label in (deterministic, noisy) if label not in rows]
    if missing:
        raise SystemExit(
            f"no run labelled {missing} in {harness.result_path(TASK, 'runs')}; train them first with the "
            "`run` part"
        )
    quiet, loud = make_problem("quadcopter", sigma=0.0), make_problem("quadcopter", sigma=0.2)
    x0 = loud.sample_start(starts, torch.Generator().manual_seed(123))
    out = []
    for label in (deterministic, noisy):
        model = StochasticOptimalControl.load_from_checkpoint(
            rows[label]["checkpoint"], map_location="cpu"
        ).eval()
        trained_with = "sigma = 0" if model.problem.deterministic else "sigma = 0.2"
        for flown, problem in (("sigma = 0", quiet), ("sigma = 0.2", loud)):
            model.value_function.problem = problem
            with torch.no_grad():
                paths = model.paths(x0.float(), generator=torch.Generator().manual_seed(7))
                cost, miss = realised_cost(problem, paths), position_miss(problem, paths.states[-1])
            out.append(
                {
                    "policy": label,
                    "trained with": trained_with,
                    "flown with": flown,
                    "mean_cost": round(float(cost.mean()), 2),
                    "median_cost": round(float(cost.median()), 2),
                    "mean_miss": round(float(miss.mean()), 4),
                }
            )
    t0 = time.perf_counter()
    steps = model.hparams.eval_steps
    best = open_loop_optimum(quiet, x0[:open_loop_starts], steps=steps, iterations=open_loop_iterations)
    miss = position_miss(quiet, best.states[-1])
    out.append(
        {
            "policy": f"open-loop L-BFGS optimum ({open_loop_starts} of the starts)",
            "trained with": "-",
            "flown with": "sigma = 0",
            "mean_cost": round(float(best.cost.mean()), 2),
            "median_cost": round(float(best.cost.median()), 2),
            "mean_miss": round(float(miss.mean()), 4),
            "seconds": round(time.perf_counter() - t0, 1),
        }
    )
    harness.save(
        TASK,
        "quadcopter",
        {
            "target": "the policy trained with noise has the lower cost under noise; the deterministic cost "
            "of the feedback against the open-loop optimum",
            "setup": f"{starts} starts from the quadcopter's start law (seed 123), Euler-Maruyama with the "
            f"model's eval_steps ({steps}); open-loop optimum by L-BFGS ({open_loop_iterations} iterations "
            f"at most) over the control sequence on the same Euler grid, first {open_loop_starts} starts "
            "(its mean cost compares with the policies' over all starts only up to sampling)",
            "rows": out,
        },
    )


# ---------------------------------------------------------------------------------- deep_bsde
TRAJ_PATHS = 32


def part_deep_bsde(
    steps: int, grid: int, paths: int, lr: float, batch: int, config: str, overrides: list[str], runs_dir
) -> None:
    """The value network after `steps` iterations against the Deep BSDE method in the same wall time."""
    from ctdl.models import StochasticOptimalControl
    from ctdl.soc import evaluate as E
    from ctdl.soc import reference_value
    from ctdl.soc.baselines import DeepBSDE, train_deep_bsde

    row = part_run(f"hjb_lq_pmp_{steps}", config, ["--trainer.max_steps", str(steps), *overrides], runs_dir)
    budget = row["fit_wall_s"]  # the value network's whole fit, validation included
    model = StochasticOptimalControl.load_from_checkpoint(row["checkpoint"], map_location="cpu").eval()
    problem = model.problem
    x0 = problem.sample_start(paths)
    along = reference_value(problem)  # the exact Cole-Hopf quadrature
    phi_ref = float(along(0.0, x0[:1])[0])

    torch.manual_seed(0)
    baseline = DeepBSDE(problem, steps=grid)
    training = train_deep_bsde(baseline, seconds=budget, lr=lr, batch=batch)
    baseline.eval()
    bsde_paths, bsde_values = baseline.controlled_paths(paths, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        net_paths = model.paths(x0.float(), steps=grid, generator=torch.Generator().manual_seed(7))
        net_values = E.values_along(model, net_paths)
        net_phi0 = float(model(0.0, x0[:1].float()))

    out = []
    for name, phi0, p, values, secs, its in (
        ("value network (PMP sampling)", net_phi0, net_paths, net_values, budget, row["steps"]),
        ("Deep BSDE", baseline.y0.item(), bsde_paths, bsde_values, training.seconds, training.iterations),
    ):
        cost, cost_se = E.mean_and_se(E.realised_cost(problem, p.double()))
        out.append(
            {
                "method": name,
                "phi0": round(phi0, 5),
                "phi0_rel_err": round(abs(E.relative_gap(phi0, phi_ref)), 6),
                "traj_rel_l2": round(
                    float(E.trajectory_error(along, p.first(TRAJ_PATHS), values[:, :TRAJ_PATHS])), 5
                ),
                "cost": round(cost, 4),
                "cost_se": round(cost_se, 4),
                "iterations": its,
                "train_s": round(secs, 1),
                "s_per_1000_it": round(1000 * secs / its, 1),
            }
        )
    harness.save(
        TASK,
        f"deep_bsde_{steps}",
        {
            "target": "the value network against a Deep BSDE baseline at equal wall time on HJB-LQ "
            "(published Deep BSDE: 0.17% at t = 0, quoted)",
            "setup": f"HJB-LQ d = {problem.dim}, lambda = {problem.lam:g}, x0 = 0; value network: "
            f"{Path(config).name} with max_steps {steps} (its wall time includes validation); Deep BSDE: "
            f"{grid} steps, batch {batch}, Adam lr {lr} with a cosine decay over the same wall time; both "
            f"evaluated on {paths} paths of the {grid}-step grid under their own feedback (seed 7); "
            f"reference Phi(0, 0) = {phi_ref:.5f} (Cole-Hopf, 10^6 draws), along the first {TRAJ_PATHS} "
            "paths Cole-Hopf with 10^5 draws; cost = mean realised J, cost_se its standard error",
            "rows": out,
        },
    )


# ---------------------------------------------------------------------------------------- fem
FEM_SAMPLE_POINTS = ((-1.5, -1.5), (0.0, 0.0), (-1.5, 1.5), (0.75, 0.75), (1.5, 1.5))
FEM_NOTE = (
    "; one process, one torch and BLAS thread; solve_s = wall seconds of the time stepping (form "
    "compilation excluded), which vary with the machine's load"
)


def square_grid(half: float, n: int = 61) -> torch.Tensor:
    """n x n points of [-half, half]^2, float64."""
    g = torch.linspace(-half, half, n, dtype=torch.float64)
    return torch.cartesian_prod(g, g)


def fem_lqr_row(problem, riccati, mesh: int, dt: float, x: torch.Tensor, scheme: str = "euler") -> dict:
    """One finite-element LQR solve against Riccati: max and mean relative error of Phi(0, x)."""
    from ctdl.soc.evaluate import relative_error
    from ctdl.soc.fem_hjb import fem_value_2d

    start = time.perf_counter()
    value = fem_value_2d(problem, mesh=mesh, dt=dt, scheme=scheme)
    total = time.perf_counter() - start
    err = relative_error(value(0.0, x), riccati.value(0.0, x))
    return {
        "mesh": mesh,
        "h": round(6.0 / mesh, 5),
        "dt": dt,
        "scheme": scheme,
        "steps": value.steps,
        "max_rel_err": err.max().item(),
        "mean_rel_err": err.mean().item(),
        "newton_its": value.newton_iterations,
        "solve_s": round(value.solve_seconds, 2),
        "total_s": round(total, 2),
    }


def with_orders(rows: list[dict]) -> list[dict]:
    """The observed order log2(e_previous / e) of the max and mean errors (each row halves h or dt)."""
    for prev, row in zip(rows, rows[1:], strict=False):
        for key in ("max", "mean"):
            row[f"order_{key}"] = round(math.log2(prev[f"{key}_rel_err"] / row[f"{key}_rel_err"]), 2)
    return rows


def fem_obstacle_rows(mesh: int, dt: float, scheme: str = "euler") -> tuple[list[dict], dict]:
    """The obstacle on (mesh, dt) against mesh / 2, 2 dt and a larger box [-4, 4]^2 at the same h:
    Phi(0, x) at sample points, the largest difference over a 61 x 61 grid of [-3, 3]^2 (of
    [-2, 2]^2 for the box); and the reference's estimated error (Richardson: the mesh / 2 difference
    over 2^2 - 1 plus the 2 dt difference over 2^p - 1, p the scheme's order), over max |Phi|."""
    from ctdl.soc.fem_hjb import fem_value_2d
    from ctdl.soc.problems import Obstacle

    obstacle = Obstacle()
    fem_value_2d(obstacle, mesh=4, dt=0.5)  # compile the forms once, outside the timings
    fine = fem_value_2d(obstacle, mesh=mesh, dt=dt, scheme=scheme)
    coarse_mesh = fem_value_2d(obstacle, mesh=mesh // 2, dt=dt, scheme=scheme)
    coarse_dt = fem_value_2d(obstacle, mesh=mesh, dt=2 * dt, scheme=scheme)
    wide = fem_value_2d(obstacle, mesh=round(mesh * 8 / 6), dt=dt, domain=(-4.0, 4.0), scheme=scheme)
    pts = torch.tensor(FEM_SAMPLE_POINTS, dtype=torch.float64)
    box, inner = square_grid(3.0), square_grid(2.0)
    phi_fine = fine(0.0, box)
    scale = phi_fine.abs().max().item()
    rows, diffs = [], {}
    runs = (("reference", fine, box), ("mesh / 2", coarse_mesh, box), ("2 dt", coarse_dt, box))
    for label, v, where in (*runs, ("box [-4, 4]^2", wide, inner)):
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
            {f"Phi0{p}": round(float(val), 4) for p, val in zip(FEM_SAMPLE_POINTS, values, strict=True)}
        )
        if v is not fine:
            diff = (v(0.0, where) - fine(0.0, where)).abs()
            row["max_abs_diff"] = diff.max().item()
            row["max_diff_over_max_Phi"] = diffs[label] = diff.max().item() / scale
        rows.append(row)
    order = 2 if scheme == "bdf2" else 1
    error = {
        "max_Phi": round(scale, 3),
        "scheme": scheme,
        "h_error_over_max_Phi": diffs["mesh / 2"] / 3,
        "dt_error_over_max_Phi": diffs["2 dt"] / (2**order - 1),
        "box_change_over_max_Phi": diffs["box [-4, 4]^2"],
    }
    error["estimated_error_over_max_Phi"] = error["h_error_over_max_Phi"] + error["dt_error_over_max_Phi"]
    return rows, error


def part_fem(
    meshes: list[int],
    mesh_dt: float,
    dts: list[float],
    dt_mesh: int,
    obstacle_mesh: int,
    obstacle_dt: float,
    scheme: str = "euler",
) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # before DOLFINx loads PETSc and its BLAS
    torch.set_num_threads(1)
    from ctdl.soc.fem_hjb import fem_value_2d
    from ctdl.soc.problems import LQR
    from ctdl.soc.references import RiccatiSolution

    problem = LQR()
    riccati, x = RiccatiSolution(problem), square_grid(1.5)
    fem_value_2d(problem, mesh=4, dt=0.5)  # compile the forms once, outside the timings
    mesh_rows = with_orders([fem_lqr_row(problem, riccati, m, mesh_dt, x, scheme) for m in meshes])
    harness.save(  # each study is saved when done: the obstacle's Newton may fail on a coarse mesh
        TASK,
        "fem_mesh",
        {
            "setup": f"LQR (A = [[0, 1], [0, 0]], B = Q = R = I, G = diag(4, 1), sigma = 0.5 I, T = 1) on "
            f"[-3, 3]^2, P1 on triangles, Neumann, {scheme} dt = {mesh_dt:g}, Newton (SNES, MUMPS LU); "
            "relative error of Phi(0, x) against Riccati over a 61 x 61 grid of |x|_inf <= 1.5; order = "
            "log2 of the error ratio of successive rows (2 expected)" + FEM_NOTE,
            "rows": mesh_rows,
        },
    )
    dt_rows = with_orders([fem_lqr_row(problem, riccati, dt_mesh, dt, x, scheme) for dt in dts])
    harness.save(
        TASK,
        "fem_dt",
        {
            "setup": f"the same LQR on the mesh {dt_mesh}, dt halved per row ({scheme}); order "
            f"{2 if scheme == 'bdf2' else 1} expected in dt until the mesh error (see fem_mesh) dominates"
            + FEM_NOTE,
            "rows": dt_rows,
        },
    )
    obstacle_rows, error = fem_obstacle_rows(obstacle_mesh, obstacle_dt, scheme)
    harness.save(
        TASK,
        "fem_obstacle",
        {
            "setup": "Obstacle (height 50, width 0.4, weight 50, sigma = [[0.2, -0.4], [-0.4, 0.2]], T = 1) "
            f"on [-3, 3]^2, P1 on triangles, Neumann, {scheme}; Phi(0, x) at sample points; max |Phi - "
            "Phi_ref| over a 61 x 61 grid of the box ([-2, 2]^2 for the larger box at the same h); the "
            "reference's error estimated by Richardson from the mesh / 2 and 2 dt rows" + FEM_NOTE,
            "error": [error],
            "rows": obstacle_rows,
        },
    )


# --------------------------------------------------------------------------------------- main
def main() -> None:
    parser, parts = harness.parser(
        __doc__,
        {
            "run": "fit and test one shipped config (a row of soc_runs.json)",
            "seeds": "one config over several training seeds: mean and spread of every metric",
            "paired": "learned feedbacks against the reference and zero control on the same noise",
            "quadcopter": "the quadcopter policies with and without noise, and the open-loop optimum",
            "deep_bsde": "the value network against the Deep BSDE method at equal wall time",
            "fem": "convergence and cost of the finite-element HJB reference",
            "report": "benchmarks/soc.md from the JSON files",
        },
    )
    p = parts["run"]
    p.add_argument("--retest", action="store_true", help="only `ctdl test` the row's checkpoint again")
    p.add_argument(
        "--checkpoint-of", help="only `ctdl test` this row's checkpoint (its training time kept) as --label"
    )
    harness.add_run_options(p)

    p = parts["seeds"]
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--refit", action="store_true", help="train again the seeds already recorded")
    harness.add_run_options(p)

    p = parts["paired"]
    p.add_argument("--labels", nargs="+", required=True, help="rows of soc_runs.json (one config)")
    p.add_argument("--runs-dir", type=Path, default=None, help="run folders (default runs/bench_soc)")

    p = parts["quadcopter"]
    p.add_argument("--deterministic", default="quadcopter_det", help="label of the sigma = 0 run")
    p.add_argument("--noisy", default="quadcopter", help="label of the sigma = 0.2 run")
    p.add_argument("--starts", type=int, default=256)
    p.add_argument("--open-loop-starts", type=int, default=16)
    p.add_argument("--open-loop-iterations", type=int, default=1000, help="the most L-BFGS iterations")

    p = parts["deep_bsde"]
    p.add_argument("--steps", type=int, default=500, help="the value network's iterations")
    p.add_argument("--grid", type=int, default=20, help="the Deep BSDE time steps")
    p.add_argument("--paths", type=int, default=256, help="evaluation paths")
    p.add_argument("--lr", type=float, default=0.01, help="the Deep BSDE learning rate")
    p.add_argument("--batch", type=int, default=64, help="the Deep BSDE batch")
    p.add_argument("--config", default="configs/soc/hjb_lq.yaml", help="the value network's config")
    harness.add_run_options(p, label=False)

    p = parts["fem"]
    p.add_argument("--meshes", type=int, nargs="+", default=[24, 48, 96], help="meshes of the mesh study")
    p.add_argument("--mesh-dt", type=float, default=5e-4, help="dt of the mesh study")
    p.add_argument("--dts", type=float, nargs="+", default=[0.1, 0.05, 0.025], help="dts of the dt study")
    p.add_argument("--dt-mesh", type=int, default=96, help="mesh of the dt study")
    p.add_argument("--obstacle-mesh", type=int, default=149)
    p.add_argument("--obstacle-dt", type=float, default=1e-3)
    p.add_argument("--scheme", choices=["euler", "bdf2"], default="bdf2", help="the time scheme")

    args = parser.parse_args()
    if args.part == "run":
        part_run(args.label, args.config, args.override, args.runs_dir, args.retest, args.checkpoint_of)
    elif args.part == "seeds":
        part_seeds(args.label, args.config, args.override, args.seeds, args.runs_dir, args.refit)
    elif args.part == "paired":
        part_paired(args.labels, args.runs_dir)
    elif args.part == "quadcopter":
        part_quadcopter(
            args.deterministic, args.noisy, args.starts, args.open_loop_starts, args.open_loop_iterations
        )
    elif args.part == "deep_bsde":
        part_deep_bsde(
            args.steps, args.grid, args.paths, args.lr, args.batch, args.config, args.override, args.runs_dir
        )
    elif args.part == "fem":
        part_fem(
            args.meshes,
            args.mesh_dt,
            args.dts,
            args.dt_mesh,
            args.obstacle_mesh,
            args.obstacle_dt,
            args.scheme,
        )
    harness.report(TASK, TITLE)


if __name__ == "__main__":
    main()
