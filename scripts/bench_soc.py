"""Stochastic optimal control benchmarks: the value network against the problems' references.

run         `ctdl fit` then `ctdl test` (best val/loss checkpoint; --retest: test again only) on a
            shipped config with optional overrides; one row per --label in benchmarks/soc_runs.json:
            test/phi0_rel_err (Phi(0, x0) against the reference over the test starts),
            test/traj_rel_l2 (Phi along controlled paths),
            the realised cost J of the learned feedback against the reference E[Phi(0, X_0)],
            the training time and steps.
quadcopter  policies trained without noise (--deterministic LABEL) and with noise (--noisy LABEL),
            both flown with and without noise from the same starts: mean cost J and terminal miss
            distance; and the deterministic open-loop optimum (L-BFGS) from the same starts.
deep_bsde   the value network (`run` with --trainer.max_steps STEPS) against the Deep BSDE method
            (`ctdl.control.DeepBSDE`) trained for the same wall time, on HJB-LQ d = 100 from the origin;
            both evaluated alike on the Deep BSDE grid: Phi(0, 0) and Phi along controlled paths
            against Cole-Hopf, the realised cost J, iterations and seconds per 1,000 iterations
            (benchmarks/soc_deep_bsde_<STEPS>.json).
report      benchmarks/soc.md from the JSON files.

    python scripts/bench_soc.py run --label hjb_lq --config configs/soc/hjb_lq.yaml
    python scripts/bench_soc.py run --label hjb_lq_lam2_shift --config configs/soc/hjb_lq.yaml \
        --override --data.problem_args "{dim: 100, lam: 2.0, target: 0.5, start: gaussian, start_std: 0.5}"
    python scripts/bench_soc.py quadcopter --deterministic quadcopter_det --noisy quadcopter
    python scripts/bench_soc.py deep_bsde --steps 500
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
from bench_common import OUT, report, save

ROOT = Path(__file__).resolve().parents[1]
RUNS = OUT / "soc_runs.json"


def _rows() -> list[dict]:
    return json.loads(RUNS.read_text())["rows"] if RUNS.is_file() else []


def part_run(label: str, config: str, overrides: list[str], retest: bool = False) -> None:
    from ctdl.cli import run_cli

    common = [
        "--config",
        config,
        *overrides,
        "--runs_dir",
        str(ROOT / "runs" / "bench_soc"),
        "--run_name",
        label,
        "--trainer.enable_progress_bar",
        "false",
    ]
    previous = {r["label"]: r for r in _rows()}.get(label)
    if retest:
        if previous is None:
            raise SystemExit(f"no run labelled {label!r} in {RUNS} to test again")
        seconds, steps, best = previous["train_s"], previous["steps"], previous["checkpoint"]
    else:
        t0 = time.perf_counter()
        fit = run_cli(["fit", *common])
        seconds, steps = time.perf_counter() - t0, fit.trainer.global_step
        best = fit.trainer.checkpoint_callback.best_model_path
    test = run_cli(["test", *common, "--ckpt_path", best])
    metrics = {
        k.split("/", 1)[1]: round(float(v), 5)
        for k, v in test.trainer.callback_metrics.items()
        if k.startswith("test/")
    }
    if "cost_ref" in metrics:
        metrics["cost_rel_gap"] = round(
            (metrics["cost_matched"] - metrics["cost_ref"]) / abs(metrics["cost_ref"]), 5
        )
    if "cost_ref_feedback" in metrics:
        metrics["feedback_gap"] = round(
            (metrics["cost_same_noise"] - metrics["cost_ref_feedback"]) / abs(metrics["cost_ref_feedback"]), 5
        )
    row = {
        "label": label,
        "config": Path(config).name,
        "overrides": " ".join(overrides) or "-",
        **{
            k: metrics[k]
            for k in (
                "phi0_rel_err",
                "traj_rel_l2",
                "cost",
                "cost_matched",
                "cost_ref",
                "cost_rel_gap",
                "cost_ref_feedback",
                "feedback_gap",
            )
            if k in metrics
        },
        "train_s": round(seconds, 1),
        "steps": steps,
        "s_per_1000_steps": round(1000 * seconds / steps, 1),
        "checkpoint": best,
    }
    rows = [r for r in _rows() if r["label"] != label] + [row]
    for r in rows:  # rows from before the column
        r.setdefault("s_per_1000_steps", round(1000 * r["train_s"] / r["steps"], 1))
    save(
        "soc",
        "runs",
        {
            "target": "HJB-LQ: relative error of Phi(0, x) and relative L2 error along controlled paths "
            "(published NeuralSOC 0.01-0.07% at t = 0 and 0.4-0.6% along paths, quoted); obstacle: "
            "~2% mean relative error of Phi(0, x) against finite elements (quoted)",
            "setup": "`ctdl fit` on the config (with the overrides), best val/loss "
            "checkpoint, `ctdl test` on "
            "the test starts (never used for a choice); references: Cole-Hopf (hjb_lq, Monte Carlo), "
            "Riccati (lqr), finite elements (obstacle, inside its box [-3, 3]^2); cost = mean realised J "
            "of the learned feedback, one path per test start; cost_ref = mean reference Phi(0, x0) and "
            "cost_matched = mean J over the starts that have a reference; cost_rel_gap compares those two; "
            "cost_ref_feedback = mean J of the reference feedback (Riccati; finite-element gradient) from "
            "the same starts with the same noise, feedback_gap = the learned J against it on those paths; "
            "s_per_1000_steps includes validation",
            "rows": rows,
        },
    )


def part_quadcopter(deterministic: str, noisy: str, starts: int, open_loop_starts: int) -> None:
    from ctdl.control import make_problem, open_loop_optimum
    from ctdl.models import StochasticOptimalControl

    rows = {r["label"]: r for r in _rows()}
    missing = [label for label in (deterministic, noisy) if label not in rows]
    if missing:
        raise SystemExit(f"no run labelled {missing} in {RUNS}; train them first with the `run` part")
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
                cost = paths.running[-1] + problem.terminal_cost(paths.states[-1])
                miss = torch.linalg.vector_norm(paths.states[-1, :, :3] - problem.target[:3].float(), dim=1)
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
    best = open_loop_optimum(quiet, x0[:open_loop_starts], steps=steps, iterations=1000)
    miss = torch.linalg.vector_norm(best.states[-1, :, :3] - quiet.target[:3], dim=1)
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
    save(
        "soc",
        "quadcopter",
        {
            "target": "the policy trained with noise has the lower cost under noise; the deterministic cost "
            "of the feedback against the open-loop optimum",
            "setup": f"{starts} starts from the quadcopter's start law (seed 123), Euler-Maruyama with the "
            f"model's eval_steps ({steps}); open-loop optimum by L-BFGS over the control sequence on "
            f"the same Euler grid, first {open_loop_starts} starts (its mean cost compares with the "
            "policies' over all starts only up to sampling)",
            "rows": out,
        },
    )


def _trajectory_error(times: torch.Tensor, states: torch.Tensor, values: torch.Tensor, problem) -> float:
    """||Phi - Phi_ref|| / ||Phi_ref|| over all grid points of the paths, Cole-Hopf reference."""
    from ctdl.control import hjb_lq_value

    N1, n, d = states.shape
    ref, _ = hjb_lq_value(
        times.repeat_interleave(n),
        states.reshape(-1, d),
        lam=problem.lam,
        target=problem.target,
        sigma=problem.noise,
        samples=100_000,
    )
    return float(torch.linalg.vector_norm(values.reshape(-1).double() - ref) / torch.linalg.vector_norm(ref))


def part_deep_bsde(steps: int, grid: int, paths: int, lr: float) -> None:
    """The value network after `steps` iterations against the Deep BSDE method in the same wall time."""
    from ctdl.control import DeepBSDE, hjb_lq_value, make_problem
    from ctdl.models import StochasticOptimalControl

    label = f"hjb_lq_pmp_{steps}"
    part_run(label, str(ROOT / "configs/soc/hjb_lq.yaml"), ["--trainer.max_steps", str(steps)])
    row = {r["label"]: r for r in _rows()}[label]
    budget = row["train_s"]
    problem = make_problem("hjb_lq", dim=100, lam=1.0, start="origin")
    x0 = problem.sample_start(paths)
    phi_ref = float(hjb_lq_value(0.0, x0[:1], samples=1_000_000)[0])

    torch.manual_seed(0)
    baseline = DeepBSDE(problem, steps=grid)
    optimizer = torch.optim.Adam(baseline.parameters(), lr=lr)
    t0, iterations = time.perf_counter(), 0
    while (elapsed := time.perf_counter() - t0) < budget:
        for group in optimizer.param_groups:  # cosine decay over the wall-time budget
            group["lr"] = 0.5 * lr * (1 + math.cos(math.pi * elapsed / budget))
        loss = baseline.loss(64)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        iterations += 1
    seconds = time.perf_counter() - t0
    baseline.eval()
    gen = torch.Generator().manual_seed(7)
    bsde_paths, bsde_values = baseline.controlled_paths(paths, generator=gen)

    model = StochasticOptimalControl.load_from_checkpoint(row["checkpoint"], map_location="cpu").eval()
    with torch.no_grad():
        net_paths = model.paths(x0.float(), steps=grid, generator=torch.Generator().manual_seed(7))
        net_values = model(net_paths.times.repeat_interleave(paths), net_paths.states.reshape(-1, 100)).view(
            grid + 1, paths
        )
        net_phi0 = float(model(0.0, x0[:1].float()))

    out = []
    for name, phi0, p, values, secs, its in (
        ("value network (PMP sampling)", net_phi0, net_paths, net_values, row["train_s"], row["steps"]),
        ("Deep BSDE", baseline.y0.item(), bsde_paths, bsde_values, seconds, iterations),
    ):
        cost = p.running[-1].double() + problem.terminal_cost(p.states[-1].double())
        out.append(
            {
                "method": name,
                "phi0": round(phi0, 5),
                "phi0_rel_err": round(abs(phi0 - phi_ref) / phi_ref, 6),
                "traj_rel_l2": round(
                    _trajectory_error(p.times, p.states[:, :32], values[:, :32], problem), 5
                ),
                "cost": round(float(cost.mean()), 4),
                "cost_se": round(float(cost.std() / paths**0.5), 4),
                "iterations": its,
                "train_s": round(secs, 1),
                "s_per_1000_it": round(1000 * secs / its, 1),
            }
        )
    save(
        "soc",
        f"deep_bsde_{steps}",
        {
            "target": "the value network against a Deep BSDE baseline at equal wall time on HJB-LQ "
            "(published Deep BSDE: 0.17% at t = 0, quoted)",
            "setup": f"HJB-LQ d = 100, lambda = 1, x0 = 0; value network: configs/soc/hjb_lq.yaml with "
            f"max_steps {steps} (its wall time includes validation); Deep BSDE: {grid} steps, batch 64, "
            f"Adam lr {lr} with a cosine decay over the same wall time; both evaluated on {paths} paths "
            f"of the {grid}-step grid under their own feedback (seed 7); reference Phi(0, 0) = "
            f"{phi_ref:.5f} (Cole-Hopf, 10^6 draws), along the first 32 paths "
            "Cole-Hopf with 10^5 draws; cost = mean "
            "realised J, cost_se its standard error",
            "rows": out,
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("part", choices=["run", "quadcopter", "deep_bsde", "report"])
    parser.add_argument("--label", help="run: the row's name (and run folder)")
    parser.add_argument("--config", help="run: a configs/soc/*.yaml")
    parser.add_argument(
        "--retest",
        action="store_true",
        help="run: only `ctdl test` the row's recorded checkpoint again (its training time kept)",
    )
    parser.add_argument(
        "--override",
        nargs=argparse.REMAINDER,
        default=[],
        help="run: further `ctdl fit` options, e.g. --data.problem_args '{...}' (last)",
    )
    parser.add_argument(
        "--deterministic", default="quadcopter_det", help="quadcopter: label of the sigma = 0 run"
    )
    parser.add_argument("--noisy", default="quadcopter", help="quadcopter: label of the sigma = 0.2 run")
    parser.add_argument("--starts", type=int, default=256)
    parser.add_argument("--open-loop-starts", type=int, default=16)
    parser.add_argument("--steps", type=int, default=500, help="deep_bsde: the value network's iterations")
    parser.add_argument("--grid", type=int, default=20, help="deep_bsde: the Deep BSDE time steps")
    parser.add_argument("--paths", type=int, default=256, help="deep_bsde: evaluation paths")
    parser.add_argument("--lr", type=float, default=0.01, help="deep_bsde: the Deep BSDE learning rate")
    args = parser.parse_args()
    if args.part == "run":
        if not args.label or not args.config:
            parser.error("run needs --label and --config")
        part_run(args.label, args.config, args.override, args.retest)
    elif args.part == "quadcopter":
        part_quadcopter(args.deterministic, args.noisy, args.starts, args.open_loop_starts)
    elif args.part == "deep_bsde":
        part_deep_bsde(args.steps, args.grid, args.paths, args.lr)
    report("soc", "Stochastic optimal control")


if __name__ == "__main__":
    main()
