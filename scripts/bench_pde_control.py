"""Amortized PDE control benchmarks: the value-function policy (a), the direct policy (b) and PPO (c)
against the per-instance open-loop optimum (oracle) and no control, on the same 100 held-out instances.

oracle   the test instances of `PDEInstances` (seed 0), or with --split val its 32 validation instances
         (the instances of every training curve): no-control cost, the untrained terminal-value feedback
         (`ctdl.pde_control.baselines.terminal_value_feedback`) and the oracle (L-BFGS-B over the
         open-loop rates, adjoint gradients) with its seconds per solve.
scan     the choice of a hard regime: for each --weights GAMMA,ALPHA pair (the other constants
         default), no control, the untrained terminal-value feedback and the oracle on the first
         --instances validation instances, and the feedback's fraction of the achievable
         improvement (pde_control_scan.json).
run      `ctdl fit` on a shipped config (best val/cost checkpoint), then its cost on the test instances,
         ms per feedback decision, training time and PDE solves, and the curve val/cost against solves.
ppo      stable-baselines3 PPO (`ctdl.pde_control.baselines.ppo`) on the training instances; every
         --eval-every env steps its deterministic policy's cost on the validation instances; at the end
         its test cost and ms per decision. One env step = one PDE solve.
report   the summary against the target, benchmarks/pde_control.md and docs/figures/pde_control_solves.png.
         Rows labelled pilot_* (short runs that chose a setting on the validation instances) stay out
         of the summary.

Every part takes --regime (default: `default`): the instances are the data section of that regime's
value config (REGIMES), and the results go to pde_control_<part>.json for `default`, to
pde_control_<part>_<regime>.json otherwise. `running`: the running cost dominates (gamma = 0.02) and
control is ten times dearer (alpha = 0.1), so the untrained terminal-value feedback, which values u only
at the horizon, under-acts (docs/pde_control.md).

    python scripts/bench_pde_control.py oracle
    python scripts/bench_pde_control.py oracle --split val
    python scripts/bench_pde_control.py run --label value --config configs/pde_control/value.yaml
    python scripts/bench_pde_control.py run --label direct --config configs/pde_control/direct.yaml
    python scripts/bench_pde_control.py ppo --env-steps 300000
    python scripts/bench_pde_control.py report
    python scripts/bench_pde_control.py oracle --regime running     # and so on for every part
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
REGIMES = {
    "default": "configs/pde_control/value.yaml",
    "running": "configs/pde_control/value_running.yaml",
}
"""Each regime's instances: the data section of its value config (the draws its runs train and test on)."""


def part_name(part: str, regime: str) -> str:
    """The result's part: `part` for the default regime, `part_<regime>` otherwise."""
    return part if regime == "default" else f"{part}_{regime}"


def regime_data(regime: str):
    """The `PDEInstances` of the regime's value config."""
    import yaml

    from ctdl.datamodules import PDEInstances

    data = yaml.safe_load((harness.ROOT / REGIMES[regime]).read_text())["data"]
    if not data["class_path"].endswith("PDEInstances"):
        raise SystemExit(f"{REGIMES[regime]}: its data is {data['class_path']}, not PDEInstances")
    return PDEInstances(**data.get("init_args", {}))


def instances(split: str, data) -> tuple[torch.Tensor, object]:
    """The parameters (B, P) of a split of the datamodule `data` and its PDE."""
    data.setup()
    return getattr(data, SPLITS[split]).tensors[0], data.pde


def oracle_costs(regime: str) -> dict:
    """The recorded per-instance costs of the regime's test instances (no_control, oracle, ...)."""
    stored = harness.load(TASK, part_name("oracle", regime))
    if not stored:
        raise SystemExit(f"run `python scripts/bench_pde_control.py oracle --regime {regime}` first")
    return {k: np.array(v) for k, v in stored["per_instance"].items()}


def part_oracle(split: str, count: int | None, regime: str) -> None:
    data = regime_data(regime)
    params, problem = instances(split, data)
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
    weights = ", ".join(f"{k}={data.pde_args[k]}" for k in ("alpha", "gamma"))
    pde = f"AdvectionDiffusion({weights}, otherwise default)"
    if split == "val":
        summary["oracle"] = evaluate.mean(oracle)
        setup = f"the {len(params)} validation instances of {REGIMES[regime]} (PDEInstances, seed 0), {pde}"
        harness.save(TASK, part_name("validation", regime), {"setup": setup, "summary": [summary]})
        return
    frac, frac_se = evaluate.improvement(feedback, free, oracle)
    summary |= {
        "terminal_value_feedback_over_oracle": evaluate.mean(feedback.numpy() / oracle),
        "terminal_value_feedback_improvement": frac,
        "terminal_value_feedback_improvement_se": frac_se,
        "oracle": evaluate.mean(oracle),
        "oracle_converged": sum(s.converged for s in solutions),
        "oracle_s_per_solve": evaluate.mean([s.seconds for s in solutions]),
        "oracle_pde_solves_per_instance": evaluate.mean([s.solves for s in solutions]),
    }
    setup = (
        f"the {len(params)} test instances of {REGIMES[regime]} (PDEInstances, seed 0), {pde}; "
        "improvement = mean over instances of (J_none - J) / (J_none - J_oracle) with its paired standard "
        "error; oracle = L-BFGS-B over the open-loop rates (N x K = 200 numbers) per instance from a = 0, "
        "gradients by the discrete adjoint"
    )
    per_instance = {
        "no_control": free.tolist(),
        "oracle": oracle.tolist(),
        "terminal_value_feedback": feedback.tolist(),
    }
    harness.save(
        TASK,
        part_name("oracle", regime),
        {"setup": setup, "summary": [summary], "per_instance": per_instance},
    )


def part_scan(weights: list[str], count: int) -> None:
    from ctdl.datamodules import PDEInstances

    rows = []
    for pair in weights:
        gamma, alpha = (float(v) for v in pair.split(","))
        data = PDEInstances(pde_args={"gamma": gamma, "alpha": alpha})
        params, problem = instances("val", data)
        params = params[:count]
        inst = problem.instances(params)
        free = evaluate.no_control_cost(problem, inst)
        feedback = evaluate.policy_cost(problem, terminal_value_feedback(problem), inst)
        oracle = np.array([open_loop_optimum(problem, p).cost for p in params])
        frac, se = evaluate.improvement(feedback, free, oracle)
        rows.append(
            {
                "gamma": gamma,
                "alpha": alpha,
                "no_control": evaluate.mean(free),
                "terminal_value_feedback": evaluate.mean(feedback),
                "oracle": evaluate.mean(oracle),
                "feedback_improvement": frac,
                "feedback_improvement_se": se,
            }
        )
        print(rows[-1], flush=True)
    setup = (
        f"the first {count} validation instances of PDEInstances (seed 0) for each (gamma, alpha), the "
        "other constants default; feedback_improvement = mean over instances of (J_none - J_feedback) / "
        "(J_none - J_oracle) with its standard error; a hard regime needs it at most 0.5"
    )
    harness.save(TASK, "scan", {"setup": setup, "rows": rows})


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


def part_run(label: str, config: str, overrides: list[str], runs_dir: Path | None, regime: str) -> None:
    from ctdl.models import SourceMitigation

    oracle = oracle_costs(regime)["oracle"]
    want = regime_data(regime).pde_args
    run = harness.fit(config, label, overrides, runs_dir or RUNS)
    if run.cli.datamodule.pde_args != want:
        raise SystemExit(
            f"{config} trains on pde_args {run.cli.datamodule.pde_args}, not those of the regime "
            f"{regime!r} ({REGIMES[regime]}: {want}); pass the matching --regime"
        )
    model = SourceMitigation.load_from_checkpoint(run.checkpoint, map_location="cpu").eval()
    test, problem = instances("test", run.cli.datamodule)
    cost, free = evaluate.costs(problem, model.policy, test)
    row = {
        "label": label,
        "config": Path(config).name,
        "overrides": " ".join(overrides) or "-",
        **evaluate.cost_summary(cost, free, oracle),
        "decision_ms": round(evaluate.decision_ms(problem, model.policy, test[:20], repeats=10), 3),
        "episode_s": round(evaluate.episode_seconds(problem, model.policy, test[:5]), 4),
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
        "transposed solve); improvement = mean over instances of (J_none - J) / (J_none - J_oracle) with "
        "its paired standard error; episode_s = median seconds of one whole episode (50 decisions) over 5 "
        "test instances"
    )
    harness.upsert(TASK, part_name("runs", regime), [row], setup=setup)


def part_ppo(
    env_steps: int,
    eval_every: int,
    n_envs: int,
    seed: int,
    width: int,
    normalize: bool,
    log_std_init: float,
    runs_dir: Path | None,
    regime: str,
    label: str | None = None,
) -> None:
    from ctdl.pde_control.baselines.ppo import settings_text, train_ppo

    oracle = oracle_costs(regime)["oracle"]
    data = regime_data(regime)
    (train, problem), (val, _), (test, _) = (instances(split, data) for split in ("train", "val", "test"))
    training = train_ppo(
        problem, train, val, env_steps, eval_every, n_envs, seed, width, normalize, log_std_init
    )
    cost, free = evaluate.costs(problem, training.policy, test)
    label = label or f"ppo_seed{seed}" + ("" if normalize else "_raw")
    row = {
        "label": label,
        "settings": f"width {width}; {n_envs} envs, {settings_text()}; "
        + ("VecNormalize (obs, reward)" if normalize else "no normalisation")
        + f"; log_std_init {log_std_init:g}; pool of {len(train)} training instances",
        **evaluate.cost_summary(cost, free, oracle),
        "decision_ms": round(evaluate.decision_ms(problem, training.policy, test[:1], repeats=100), 3),
        "episode_s": round(evaluate.episode_seconds(problem, training.policy, test[:5]), 4),
        "train_s": round(training.seconds, 1),
        "env_steps": env_steps,
        "train_pde_solves": training.solves,
        "final_val_cost": training.curve[-1]["val_cost"] if training.curve else None,
        "curve": training.curve,
        "per_instance": cost.tolist(),
    }
    setup = (
        f"stable-baselines3 PPO (CnnPolicy with ctdl's FieldEncoder) on SourceMitigationEnv over the "
        f"training instances of {REGIMES[regime]}; env steps = PDE solves; val_cost on its {len(val)} "
        "validation instances, deterministic policy; then the test instances"
    )
    harness.upsert(TASK, part_name("ppo", regime), [row], setup=setup)
    folder = (runs_dir or RUNS) / part_name("ppo", regime) / label
    folder.mkdir(parents=True, exist_ok=True)
    training.agent.save(folder / "model.zip")
    if training.policy.normalizer is not None:
        training.policy.normalizer.save(folder / "vecnormalize.pkl")


def summary_rows(oracle_file: dict, ppo_rows: list[dict], runs: list[dict], val: dict) -> list[dict]:
    """The methods side by side, each with its fraction of the achievable improvement on the test
    instances (paired standard error); solves_to_ppo_final: training solves at the first validation
    whose cost is at most the best PPO run's final validation cost (for PPO: within 2% of its own).
    Prepends to each value run's curve its start, the untrained terminal-value feedback at 0 solves."""
    oracle, per = oracle_file["summary"][0], oracle_file["per_instance"]

    def improvement(cost) -> dict:
        frac, se = evaluate.improvement(cost, per["no_control"], per["oracle"])
        return {"improvement": frac, "improvement_se": se}

    rows = [
        {
            "method": "no control",
            "test_cost": oracle["no_control"],
            "improvement": 0.0,
            "improvement_se": 0.0,
        },
        {
            "method": "oracle (open loop, per instance)",
            "test_cost": oracle["oracle"],
            "improvement": 1.0,
            "improvement_se": 0.0,
            "over_oracle": 1.0,
            "decision_ms": round(1000 * oracle["oracle_s_per_solve"], 1),
            "episode_s": oracle["oracle_s_per_solve"],
        },
        {
            "method": "terminal-value feedback (untrained)",
            "test_cost": oracle["terminal_value_feedback"],
            **improvement(per["terminal_value_feedback"]),
            "over_oracle": oracle["terminal_value_feedback_over_oracle"],
        },
    ]
    columns = ("over_oracle", "decision_ms", "episode_s", "train_pde_solves")
    ppo_final = min((r["final_val_cost"] for r in ppo_rows), default=None)
    for r in ppo_rows:
        own = r["final_val_cost"]
        reach = next((c["pde_solves"] for c in r["curve"] if c["val_cost"] <= 1.02 * own), None)
        rows.append(
            {
                "method": f"(c) {r['label']}",
                "test_cost": r["test_cost"],
                **improvement(r["per_instance"]),
                **{k: r.get(k) for k in columns},
                "solves_to_ppo_final": reach,
                "train_s": r["train_s"],
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
                "test_cost": r["test_cost"],
                **improvement(r["per_instance"]),
                **{k: r.get(k) for k in columns},
                "solves_to_ppo_final": reach,
                "train_s": r["train_s"],
            }
        )
    return [{k: v for k, v in row.items() if v is not None} for row in rows]


def solves_figure(runs: list[dict], ppo_rows: list[dict], val: dict, regime: str) -> None:
    """docs/figures/pde_control_solves[_<regime>].png: validation cost against PDE solves of training."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2), layout="constrained")
    for r in runs:
        c = r["curve"]
        ax.plot([p["pde_solves"] for p in c], [p["val_cost"] for p in c], "o-", label=r["label"], ms=3)
    for r in ppo_rows:
        c = r["curve"]
        ax.plot([p["pde_solves"] for p in c], [p["val_cost"] for p in c], "s-", label=r["label"], ms=3)
    ax.axhline(val["oracle"], ls="--", c="k", lw=0.8, label="oracle")
    ax.set_xscale("symlog", linthresh=1e3)
    ax.set_xlim(left=0)
    ax.set_title(f"without control: {val['no_control']:.2f}", fontsize=9)
    ax.set_xlabel("PDE solves in training")
    ax.set_ylabel("mean cost J, validation instances")
    ax.legend(fontsize=8)
    FIGURES.mkdir(parents=True, exist_ok=True)
    fig.savefig(FIGURES / f"{part_name('pde_control_solves', regime)}.png", dpi=120)


def refresh_improvement(regime: str, oracle: dict) -> None:
    """Recompute the improvement of the untrained feedback (in `oracle`, the regime's loaded oracle
    record) and of every stored run and PPO row of the regime from its per-instance costs
    (`evaluate.improvement`), so that every row uses the current definition."""
    per, summary = oracle["per_instance"], oracle["summary"][0]
    summary["terminal_value_feedback_improvement"], summary["terminal_value_feedback_improvement_se"] = (
        evaluate.improvement(per["terminal_value_feedback"], per["no_control"], per["oracle"])
    )
    harness.save(
        TASK, part_name("oracle", regime), {k: v for k, v in oracle.items() if k not in ("part", "env")}
    )
    for part in ("runs", "ppo"):
        stored = harness.load(TASK, part_name(part, regime))
        rows = stored.get("rows", [])
        for r in rows:
            r["improvement"], r["improvement_se"] = evaluate.improvement(
                r["per_instance"], per["no_control"], per["oracle"]
            )
        if rows:
            meta = {k: v for k, v in stored.items() if k not in ("part", "env", "rows")}
            harness.save(TASK, part_name(part, regime), {**meta, "rows": rows})


def part_report(regime: str) -> None:
    oracle, val = (harness.load(TASK, part_name(p, regime)) for p in ("oracle", "validation"))
    if not oracle or not val:
        raise SystemExit(
            f"run `bench_pde_control.py oracle --regime {regime}` and "
            f"`bench_pde_control.py oracle --split val --regime {regime}` first"
        )
    refresh_improvement(regime, oracle)
    ppo_rows = harness.load(TASK, part_name("ppo", regime)).get("rows", [])
    ppo_rows = [r for r in ppo_rows if not r["label"].startswith("pilot")]  # pilots chose settings
    runs = harness.load(TASK, part_name("runs", regime)).get("rows", [])
    runs = [r for r in runs if not r["label"].startswith("pilot")]
    rows = summary_rows(oracle, ppo_rows, runs, val["summary"][0])
    harness.save(
        TASK,
        part_name("summary", regime),
        {
            "target": "(a) within 10% of the oracle on average and below PPO's cost; (a) needs >= 10x fewer "
            "PDE solves in training than PPO needs to reach its final cost; ms per decision against s per "
            "oracle solve; in a hard regime (the untrained feedback at most half of the achievable "
            "improvement) (a) at >= 0.95 of it, above PPO",
            "setup": "improvement = mean over the test instances of (J_none - J) / (J_none - J_oracle), with "
            "its paired standard error; solves_to_ppo_final: PDE solves of training at the first validation "
            "whose cost is at most the best PPO run's final validation cost (for PPO: within 2% of its own); "
            "the value policy's curve starts at 0 solves with the untrained terminal-value feedback; "
            "train_pde_solves counts every linear solve (PPO: one per env step; (a), (b): forward, adjoint "
            "and feedback solves); decision_ms of the oracle = one whole solve; episode_s = one whole "
            "episode of 50 decisions (the oracle: one solve)",
            "rows": rows,
        },
    )
    solves_figure(runs, ppo_rows, val["summary"][0], regime)
    harness.report(TASK, "Amortized PDE control")


def main() -> None:
    parser, parts = harness.parser(
        __doc__,
        {
            "oracle": "no control, the untrained terminal-value feedback and the open-loop oracle",
            "scan": "the untrained feedback's share of the achievable improvement over (gamma, alpha)",
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
    parts["scan"].add_argument(
        "--weights",
        nargs="+",
        default=["1,0.01", "0.1,1", "0.1,0.3", "0.1,0.1", "0.1,0.03", "0.05,0.3", "0.05,0.1", "0.02,0.1"],
        help="GAMMA,ALPHA pairs",
    )
    parts["scan"].add_argument("--instances", type=int, default=8, help="validation instances per pair")
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
        help="where ppo[_<regime>]/<label>/model.zip goes (default runs/bench_pde_control)",
    )
    ppo.add_argument(
        "--no-normalize",
        dest="normalize",
        action="store_false",
        help="without VecNormalize (raw observations and rewards)",
    )
    ppo.add_argument("--log-std-init", type=float, default=0.0, help="the policy's initial log-std")
    ppo.add_argument("--label", default=None, help="the row's label (default ppo_seed<SEED>[_raw])")
    for sub in parts.values():
        sub.add_argument(
            "--regime", choices=sorted(REGIMES), default="default", help="the instances (REGIMES)"
        )
    args = parser.parse_args()
    if args.part == "scan":
        part_scan(args.weights, args.instances)
    elif args.part == "oracle":
        part_oracle(args.split, args.instances, args.regime)
    elif args.part == "run":
        part_run(args.label, args.config, args.override, args.runs_dir, args.regime)
    elif args.part == "ppo":
        part_ppo(
            args.env_steps,
            args.eval_every,
            args.envs,
            args.seed,
            args.width,
            args.normalize,
            args.log_std_init,
            args.runs_dir,
            args.regime,
            args.label,
        )
    else:
        part_report(args.regime)


if __name__ == "__main__":
    main()
