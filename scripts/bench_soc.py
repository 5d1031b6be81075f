"""Stochastic optimal control benchmarks: the value network against the problems' references.

run         `ctdl fit` then `ctdl test` (best val/loss checkpoint; --retest: test again only) on a shipped config with optional
            overrides; one row per --label in benchmarks/soc_runs.json: test/phi0_rel_err (Phi(0, x0)
            against the reference over the test starts), test/traj_rel_l2 (Phi along controlled paths),
            the realised cost J of the learned feedback against the reference E[Phi(0, X_0)],
            the training time and steps.
quadcopter  policies trained without noise (--deterministic LABEL) and with noise (--noisy LABEL),
            both flown with and without noise from the same starts: mean cost J and terminal miss
            distance; and the deterministic open-loop optimum (L-BFGS) from the same starts.
report      benchmarks/soc.md from the JSON files.

    python scripts/bench_soc.py run --label hjb_lq --config configs/soc/hjb_lq.yaml
    python scripts/bench_soc.py run --label hjb_lq_lam2_shift --config configs/soc/hjb_lq.yaml \
        --override --data.problem_args "{dim: 100, lam: 2.0, target: 0.5, start: gaussian, start_std: 0.5}"
    python scripts/bench_soc.py quadcopter --deterministic quadcopter_det --noisy quadcopter
"""

from __future__ import annotations

import argparse
import json
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

    common = ["--config", config, *overrides, "--runs_dir", str(ROOT / "runs" / "bench_soc"),
              "--run_name", label, "--trainer.enable_progress_bar", "false"]
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
    metrics = {k.split("/", 1)[1]: round(float(v), 5) for k, v in test.trainer.callback_metrics.items()
               if k.startswith("test/")}
    if "cost_ref" in metrics:
        metrics["cost_rel_gap"] = round((metrics["cost_matched"] - metrics["cost_ref"]) / abs(metrics["cost_ref"]), 5)
    row = {"label": label, "config": Path(config).name, "overrides": " ".join(overrides) or "-",
           **{k: metrics[k] for k in ("phi0_rel_err", "traj_rel_l2", "cost", "cost_matched", "cost_ref",
                                       "cost_rel_gap") if k in metrics},
           "train_s": round(seconds, 1), "steps": steps, "checkpoint": best}
    rows = [r for r in _rows() if r["label"] != label] + [row]
    save("soc", "runs", {
        "target": "HJB-LQ: relative error of Phi(0, x) and relative L2 error along controlled paths "
                  "(published NeuralSOC 0.01-0.07% at t = 0 and 0.4-0.6% along paths, quoted); obstacle: "
                  "~2% mean relative error of Phi(0, x) against finite elements (quoted)",
        "setup": "`ctdl fit` on the config (with the overrides), best val/loss checkpoint, `ctdl test` on "
                 "the test starts (never used for a choice); references: Cole-Hopf (hjb_lq, Monte Carlo), "
                 "Riccati (lqr), finite elements (obstacle, inside its box [-3, 3]^2); cost = mean realised J "
                 "of the learned feedback, one path per test start; cost_ref = mean reference Phi(0, x0) and "
                 "cost_matched = mean J over the starts that have a reference; cost_rel_gap compares those two",
        "rows": rows})


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
        model = StochasticOptimalControl.load_from_checkpoint(rows[label]["checkpoint"], map_location="cpu").eval()
        trained_with = "sigma = 0" if model.problem.deterministic else "sigma = 0.2"
        for flown, problem in (("sigma = 0", quiet), ("sigma = 0.2", loud)):
            model.value_function.problem = problem
            with torch.no_grad():
                paths = model.paths(x0.float(), generator=torch.Generator().manual_seed(7))
                cost = paths.running[-1] + problem.terminal_cost(paths.states[-1])
                miss = torch.linalg.vector_norm(paths.states[-1, :, :3] - problem.target[:3].float(), dim=1)
            out.append({"policy": label, "trained with": trained_with, "flown with": flown,
                        "mean_cost": round(float(cost.mean()), 2), "median_cost": round(float(cost.median()), 2),
                        "mean_miss": round(float(miss.mean()), 4)})
    t0 = time.perf_counter()
    steps = model.hparams.eval_steps
    best = open_loop_optimum(quiet, x0[:open_loop_starts], steps=steps, iterations=1000)
    miss = torch.linalg.vector_norm(best.states[-1, :, :3] - quiet.target[:3], dim=1)
    out.append({"policy": f"open-loop L-BFGS optimum ({open_loop_starts} of the starts)", "trained with": "-",
                "flown with": "sigma = 0", "mean_cost": round(float(best.cost.mean()), 2),
                "median_cost": round(float(best.cost.median()), 2), "mean_miss": round(float(miss.mean()), 4),
                "seconds": round(time.perf_counter() - t0, 1)})
    save("soc", "quadcopter", {
        "target": "the policy trained with noise has the lower cost under noise; the deterministic cost "
                  "of the feedback against the open-loop optimum",
        "setup": f"{starts} starts from the quadcopter's start law (seed 123), Euler-Maruyama with the "
                 f"model's eval_steps ({steps}); open-loop optimum by L-BFGS over the control sequence on "
                 f"the same Euler grid, first {open_loop_starts} starts (its mean cost compares with the "
                 "policies' over all starts only up to sampling)",
        "rows": out})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["run", "quadcopter", "report"])
    parser.add_argument("--label", help="run: the row's name (and run folder)")
    parser.add_argument("--config", help="run: a configs/soc/*.yaml")
    parser.add_argument("--retest", action="store_true",
                        help="run: only `ctdl test` the row's recorded checkpoint again (its training time kept)")
    parser.add_argument("--override", nargs=argparse.REMAINDER, default=[],
                        help="run: further `ctdl fit` options, e.g. --data.problem_args '{...}' (last)")
    parser.add_argument("--deterministic", default="quadcopter_det", help="quadcopter: label of the sigma = 0 run")
    parser.add_argument("--noisy", default="quadcopter", help="quadcopter: label of the sigma = 0.2 run")
    parser.add_argument("--starts", type=int, default=256)
    parser.add_argument("--open-loop-starts", type=int, default=16)
    args = parser.parse_args()
    if args.part == "run":
        if not args.label or not args.config:
            parser.error("run needs --label and --config")
        part_run(args.label, args.config, args.override, args.retest)
    elif args.part == "quadcopter":
        part_quadcopter(args.deterministic, args.noisy, args.starts, args.open_loop_starts)
    report("soc", "Stochastic optimal control")


if __name__ == "__main__":
    main()
