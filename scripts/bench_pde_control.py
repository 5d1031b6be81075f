"""Amortized PDE control benchmarks: the value-function policy (a), the direct policy (b) and PPO (c)
against the per-instance open-loop optimum (oracle) and no control, on the same 100 held-out instances.

oracle   the test instances of `PDEInstances` (seed 0), or with --split val its 32 validation instances
         (the instances of every training curve): no-control cost, the untrained terminal-value feedback
         (`ctdl.pde_control.baselines.terminal_value_feedback`) and the oracle (L-BFGS-B over the
         open-loop rates, adjoint gradients) with its seconds per solve.
run      `ctdl fit` on a shipped config (best val/cost checkpoint), then its cost on the test instances,
         ms per feedback decision, training time and PDE solves, and the curve val/cost against solves.
ppo      stable-baselines3 PPO (`ctdl.pde_control.baselines.ppo`) on the training instances; every
         --eval-every env steps its deterministic policy's cost on the validation instances; at the end
         its test cost and ms per decision. One env step = one PDE solve.
report   the summary against the target, benchmarks/pde_control.md and docs/figures/pde_control_solves.png.

    python scripts/bench_pde_control.py oracle
    python scripts/bench_pde_control.py oracle --split val
    python scripts/bench_pde_control.py run --label value --config configs/pde_control/value.yaml
    python scripts/bench_pde_control.py run --label direct --config configs/pde_control/direct.yaml
    python scripts/bench_pde_control.py ppo --env-steps 300000
    python scripts/bench_pde_control.py report
"""

from __future__ import annotations

from pathlib import Path

import harness
import numpy as np
import torch

from ctdl.pde_control import evaluate
from ctdl.pde_control.baselines import open_loop_optimum, terminal_value_feedback

TASK = "pde_control"
RUNS = harness.RUNS / "bench_pde_control"
FIGURES = harness.ROOT / "docs" / "figures" if harness.OUT == harness.ROOT / "benchmarks" else harness.OUT
SPLITS = {"train": "train_dataset", "val": "val_dataset", "test": "test_dataset"}


def instances(split: str = "test", data=None) -> tuple[torch.Tensor, object]:
    """The parameters (B, P) of a split of `PDEInstances` (default: the shipped configs' data) and the PDE."""
    if data is None:
        from ctdl.datamodules import PDEInstances

        data = PDEInstances()
    data.setup()
    return getattr(data, SPLITS[split]).tensors[0], data.pde


def oracle_costs() -> np.ndarray:
    """The recorded oracle costs of the test instances."""
    stored = harness.load(TASK, "oracle")
    if not stored:
        raise SystemExit("run `python scripts/bench_pde_control.py oracle` first")
    return np.array(stored["per_instance"]["oracle"])


def part_oracle(split: str, count: int | None) -> None:
    params, problem = instances(split)
    params = params[:count]
    inst = problem.instances(params)
    free = evaluate.no_control_cost(problem, inst)
    feedback = evaluate.policy_cost(problem, terminal_value_feedback(problem), inst)
    solutions = []
    for i, p in enumerate(params):
        solutions.append(open_loop_optimum(problem, p))
        s = solutions[-1]
        print(f"oracle {i + 1}/{len(params)}: J = {s.cost:.4f} in {s.seconds:.2f} s", flush=True)
    oracle = np.array([s.cost for s in solutions])
    summary = {"no_control": evaluate.mean(free), "terminal_value_feedback": evaluate.mean(feedback)}
    if split == "val":
        summary["oracle"] = evaluate.mean(oracle)
        setup = "the 32 validation instances of PDEInstances (seed 0)"
        harness.save(TASK, "validation", {"setup": setup, "summary": [summary]})
        return
    summary |= {
        "terminal_value_feedback_over_oracle": evaluate.mean(feedback.numpy() / oracle),
        "oracle": evaluate.mean(oracle),
        "oracle_converged": sum(s.converged for s in solutions),
        "oracle_s_per_solve": evaluate.mean([s.seconds for s in solutions]),
        "oracle_pde_solves_per_instance": evaluate.mean([s.solves for s in solutions]),
    }
    setup = (
        f"the {len(params)} test instances of PDEInstances (seed 0) of the default AdvectionDiffusion; "
        "oracle = L-BFGS-B over the open-loop rates (N x K = 200 numbers) per instance from a = 0, "
        "gradients by the discrete adjoint"
    )
    per_instance = {
        "no_control": free.tolist(),
        "oracle": oracle.tolist(),
        "terminal_value_feedback": feedback.tolist(),
    }
    harness.save(TASK, "oracle", {"setup": setup, "summary": [summary], "per_instance": per_instance})


def solves_curve(run_dir: str) -> list[dict]:
    """(step, pde_solves, val_cost) at each validation: the training solves logged last before it."""
    rows = harness.curve(run_dir, ["train/pde_solves", "val/cost"])
    solves = sorted((r["step"], r["train/pde_solves"]) for r in rows if "train/pde_solves" in r)
    out = []
    for r in (r for r in rows if "val/cost" in r):
        before = [n for step, n in solves if step <= r["step"]]
        out.append(
            {
                "step": r["step"],
                "pde_solves": before[-1] if before else 0.0,
                "val_cost": round(r["val/cost"], 5),
            }
        )
    return out


def part_run(label: str, config: str, overrides: list[str], runs_dir: Path | None) -> None:
    from ctdl.models import SourceMitigation

    oracle = oracle_costs()
    run = harness.fit(config, label, overrides, runs_dir or RUNS)
    model = SourceMitigation.load_from_checkpoint(run.checkpoint, map_location="cpu").eval()
    test, problem = instances("test", run.cli.datamodule)
    cost, free = evaluate.costs(problem, model.policy, test)
    row = {
        "label": label,
        "config": Path(config).name,
        "overrides": " ".join(overrides) or "-",
        **evaluate.cost_summary(cost, free, oracle),
        "decision_ms": round(evaluate.decision_ms(problem, model.policy, test[:20], repeats=10), 3),
        **run.row(),
        "train_pde_solves": model.train_solves,
        "curve": solves_curve(run.run_dir) if run.validations else [],  # a short run may not validate
        "per_instance": cost.tolist(),
    }
    setup = (
        "`ctdl fit` on the config, best val/cost checkpoint (32 validation instances), then the "
        "mean cost J on the 100 test instances; over_oracle = mean over instances of J / J_oracle; "
        "decision_ms = median over 20 test instances of the ms of one feedback decision for one instance "
        "(network, gradient, law); train_s = seconds inside training batches, fit_wall_s = the whole fit; "
        "train_pde_solves counts every linear solve of training (forward, adjoint and the feedback's "
        "transposed solve)"
    )
    harness.upsert(TASK, "runs", [row], setup=setup)


def part_ppo(
    env_steps: int, eval_every: int, n_envs: int, seed: int, width: int, runs_dir: Path | None
) -> None:
    from ctdl.pde_control.baselines.ppo import settings_text, train_ppo

    oracle = oracle_costs()
    (train, problem), (val, _), (test, _) = (instances(split) for split in ("train", "val", "test"))
    training = train_ppo(problem, train, val, env_steps, eval_every, n_envs, seed, width)
    cost, free = evaluate.costs(problem, training.policy, test)
    setup = (
        f"stable-baselines3 PPO (CnnPolicy with ctdl's FieldEncoder, width {width}; {n_envs} envs, "
        f"{settings_text()}, seed {seed}) on SourceMitigationEnv with the {len(train)} training instances "
        f"as the pool, {env_steps} env steps (= PDE solves); val_cost on the {len(val)} validation "
        f"instances, deterministic policy"
    )
    summary = {
        "label": "ppo",
        "test_cost": evaluate.mean(cost),
        "over_oracle": evaluate.cost_summary(cost, free, oracle)["over_oracle"],
        "decision_ms": round(evaluate.decision_ms(problem, training.policy, test[:1], repeats=100), 3),
        "train_s": round(training.seconds, 1),
        "env_steps": env_steps,
        "train_pde_solves": training.solves,
        "final_val_cost": training.curve[-1]["val_cost"] if training.curve else None,
    }
    harness.save(
        TASK,
        "ppo",
        {"setup": setup, "summary": [summary], "curve": training.curve, "per_instance": cost.tolist()},
    )
    folder = (runs_dir or RUNS) / "ppo"
    folder.mkdir(parents=True, exist_ok=True)
    training.agent.save(folder / "model.zip")


def summary_rows(oracle: dict, ppo: dict | None, runs: list[dict], val: dict) -> list[dict]:
    """The methods side by side; solves_to_ppo_final: training solves at the first validation whose
    cost is at most PPO's final validation cost (for PPO: within 2% of it). Prepends to each value
    run's curve its start, the untrained terminal-value feedback at 0 solves."""
    rows = [
        {"method": "no control", "test_cost": oracle["no_control"]},
        {
            "method": "oracle (open loop, per instance)",
            "test_cost": oracle["oracle"],
            "over_oracle": 1.0,
            "decision_ms": round(1000 * oracle["oracle_s_per_solve"], 1),
        },
        {
            "method": "terminal-value feedback (untrained)",
            "test_cost": oracle["terminal_value_feedback"],
            "over_oracle": oracle["terminal_value_feedback_over_oracle"],
        },
    ]
    ppo_final = None
    if ppo is not None:
        s = ppo["summary"][0]
        ppo_final = s["final_val_cost"]
        reach = next((c["pde_solves"] for c in ppo["curve"] if c["val_cost"] <= 1.02 * ppo_final), None)
        rows.append(
            {
                "method": "(c) PPO",
                **{k: s[k] for k in ("test_cost", "over_oracle", "decision_ms", "train_pde_solves")},
                "solves_to_ppo_final": reach,
                "train_s": s["train_s"],
            }
        )
    for r in runs:
        if "value" in r["config"]:  # at 0 solves the value policy is the terminal-value feedback
            start = {"step": 0, "pde_solves": 0.0, "val_cost": val["terminal_value_feedback"]}
            r["curve"] = [start, *r["curve"]]
        reach = None
        if ppo_final is not None:
            reach = next((c["pde_solves"] for c in r["curve"] if c["val_cost"] <= ppo_final), None)
        rows.append(
            {
                "method": f"({'a' if 'value' in r['config'] else 'b'}) {r['label']}",
                **{k: r[k] for k in ("test_cost", "over_oracle", "decision_ms", "train_pde_solves")},
                "solves_to_ppo_final": reach,
                "train_s": r["train_s"],
            }
        )
    return rows


def solves_figure(runs: list[dict], ppo: dict | None, val: dict) -> None:
    """docs/figures/pde_control_solves.png: validation cost against PDE solves of training."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2), layout="constrained")
    for r in runs:
        c = r["curve"]
        ax.plot([p["pde_solves"] for p in c], [p["val_cost"] for p in c], "o-", label=r["label"], ms=3)
    if ppo is not None:
        c = ppo["curve"]
        ax.plot([p["pde_solves"] for p in c], [p["val_cost"] for p in c], "s-", label="PPO", ms=3)
    ax.axhline(val["oracle"], ls="--", c="k", lw=0.8, label="oracle")
    ax.set_xscale("symlog", linthresh=1e3)
    ax.set_xlim(left=0)
    ax.set_title(f"without control: {val['no_control']:.2f}", fontsize=9)
    ax.set_xlabel("PDE solves in training")
    ax.set_ylabel("mean cost J, validation instances")
    ax.legend(fontsize=8)
    FIGURES.mkdir(parents=True, exist_ok=True)
    fig.savefig(FIGURES / "pde_control_solves.png", dpi=120)


def part_report() -> None:
    oracle, val = harness.load(TASK, "oracle"), harness.load(TASK, "validation")
    if not oracle or not val:
        raise SystemExit(
            "run `bench_pde_control.py oracle` and `bench_pde_control.py oracle --split val` first"
        )
    ppo = harness.load(TASK, "ppo") or None
    runs = harness.load(TASK, "runs").get("rows", [])
    rows = summary_rows(oracle["summary"][0], ppo, runs, val["summary"][0])
    harness.save(
        TASK,
        "summary",
        {
            "target": "(a) within 10% of the oracle on average and below PPO's cost; (a) needs >= 10x fewer "
            "PDE solves in training than PPO needs to reach its final cost; ms per decision against s per "
            "oracle solve",
            "setup": "solves_to_ppo_final: PDE solves of training at the first validation whose cost is at "
            "most PPO's final validation cost (for PPO: within 2% of it); the value policy's curve starts at "
            "0 solves with the untrained terminal-value feedback; decision_ms of the oracle = one whole "
            "solve",
            "rows": rows,
        },
    )
    solves_figure(runs, ppo, val["summary"][0])
    harness.report(TASK, "Amortized PDE control")


def main() -> None:
    parser, parts = harness.parser(
        __doc__,
        {
            "oracle": "no control, the untrained terminal-value feedback and the open-loop oracle",
            "run": "fit a shipped config and evaluate its best checkpoint on the test instances",
            "ppo": "the stable-baselines3 PPO baseline",
            "report": "the summary table, benchmarks/pde_control.md and the solves figure",
        },
    )
    parts["oracle"].add_argument(
        "--split",
        choices=["test", "val"],
        default="test",
        help="the test (oracle.json) or val (validation.json) instances",
    )
    parts["oracle"].add_argument("--instances", type=int, default=None, help="only the first N (a smoke run)")
    harness.add_run_options(parts["run"])
    ppo = parts["ppo"]
    ppo.add_argument("--env-steps", type=int, default=300_000)
    ppo.add_argument("--eval-every", type=int, default=20_000, help="env steps between validations")
    ppo.add_argument("--envs", type=int, default=4, help="parallel environments")
    ppo.add_argument("--seed", type=int, default=0)
    ppo.add_argument("--width", type=int, default=16, help="channels of the encoder's first convolution")
    ppo.add_argument(
        "--runs-dir",
        type=Path,
        default=None,
        help="where ppo/model.zip goes (default runs/bench_pde_control)",
    )
    args = parser.parse_args()
    if args.part == "oracle":
        part_oracle(args.split, args.instances)
    elif args.part == "run":
        part_run(args.label, args.config, args.override, args.runs_dir)
    elif args.part == "ppo":
        part_ppo(args.env_steps, args.eval_every, args.envs, args.seed, args.width, args.runs_dir)
    else:
        part_report()


if __name__ == "__main__":
    main()
