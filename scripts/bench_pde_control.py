"""Amortized PDE control benchmarks: the value-function policy (a), the direct policy (b) and PPO (c)
against the per-instance open-loop optimum (oracle) and no control, on the same 100 held-out instances.

oracle   the test instances of `PDEInstances` (seed 0): no-control cost, the untrained Hamiltonian
         feedback of the terminal value gamma ||u||^2 (QuadraticValue at its zero start), and the oracle
         (L-BFGS-B over the open-loop rates, adjoint gradients) with its seconds per solve.
run      `ctdl fit` on a shipped config (best val/cost checkpoint), then its cost on the test instances,
         ms per feedback decision, training time and PDE solves, and the curve val/cost against solves.
ppo      stable-baselines3 PPO on `ctdl.pde.env.SourceMitigationEnv` (training instances as the pool,
         actions rescaled to [-1, 1]); every --eval-every env steps its deterministic policy's cost on the
         validation instances; at the end its test cost and ms per decision. One env step = one PDE solve.
report   benchmarks/pde_control.md (and docs/figures/pde_control_solves.png) from the JSON files.

    python scripts/bench_pde_control.py oracle
    python scripts/bench_pde_control.py run --label value --config configs/pde_control/value.yaml
    python scripts/bench_pde_control.py run --label direct --config configs/pde_control/direct.yaml
    python scripts/bench_pde_control.py ppo --env-steps 300000
    python scripts/bench_pde_control.py report
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np
import torch
from bench_common import OUT, report, save

ROOT = Path(__file__).resolve().parents[1]
RUNS = OUT / "pde_control_runs.json"


def _data():
    from ctdl.datamodules import PDEInstances

    data = PDEInstances()
    data.setup()
    return data, data.pde


def _rows() -> list[dict]:
    return json.loads(RUNS.read_text())["rows"] if RUNS.is_file() else []


def _mean(x) -> float:
    return round(float(np.mean(np.asarray(x, dtype=float))), 5)


def _baselines(problem, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """J without control and J under the untrained terminal-value feedback, (B,) each."""
    from ctdl.pde import QuadraticValue, policy_rollout, rollout

    inst = problem.instances(params)
    with torch.no_grad():
        zero = torch.zeros(problem.steps, len(params), problem.num_actuators, dtype=torch.float64)
        free = rollout(problem, inst, zero).cost
        return free, policy_rollout(problem, QuadraticValue(problem), inst)[0].cost


def part_oracle() -> None:
    from ctdl.pde import open_loop_optimum

    data, problem = _data()
    test = data.test_dataset.tensors[0]
    free, terminal_feedback = _baselines(problem, test)
    solutions = []
    for i, p in enumerate(test):
        solutions.append(open_loop_optimum(problem, p))
        print(
            f"oracle {i + 1}/{len(test)}: J = {solutions[-1].cost:.4f} in {solutions[-1].seconds:.2f} s",
            flush=True,
        )
    oracle = np.array([s.cost for s in solutions])
    save(
        "pde_control",
        "oracle",
        {
            "setup": "the 100 test instances of PDEInstances (seed 0) of the default AdvectionDiffusion; "
            "oracle = L-BFGS-B over the open-loop rates (N x K = 200 numbers) per instance from a = 0, "
            "gradients by the discrete adjoint",
            "summary": [
                {
                    "no_control": _mean(free),
                    "terminal_value_feedback": _mean(terminal_feedback.numpy()),
                    "terminal_value_feedback_over_oracle": _mean(terminal_feedback.numpy() / oracle),
                    "oracle": _mean(oracle),
                    "oracle_converged": sum(s.converged for s in solutions),
                    "oracle_s_per_solve": _mean([s.seconds for s in solutions]),
                    "oracle_pde_solves_per_instance": _mean([s.solves for s in solutions]),
                }
            ],
            "per_instance": {
                "no_control": free.tolist(),
                "oracle": oracle.tolist(),
                "terminal_value_feedback": terminal_feedback.tolist(),
            },
        },
    )


def _oracle_costs() -> np.ndarray:
    path = OUT / "pde_control_oracle.json"
    if not path.is_file():
        raise SystemExit("run `python scripts/bench_pde_control.py oracle` first")
    return np.array(json.loads(path.read_text())["per_instance"]["oracle"])


def _curve(log_dir: Path) -> list[dict]:
    """(step, pde_solves, val_cost) from a run's metrics.csv."""
    solves, curve = {}, []
    with (log_dir / "metrics.csv").open() as fh:
        for row in csv.DictReader(fh):
            if row.get("train/pde_solves"):
                solves[int(row["step"])] = float(row["train/pde_solves"])
            if row.get("val/cost"):
                curve.append((int(row["step"]), float(row["val/cost"])))
    steps = sorted(solves)
    out = []
    for step, cost in curve:
        before = [s for s in steps if s <= step]
        out.append(
            {"step": step, "pde_solves": solves[before[-1]] if before else 0.0, "val_cost": round(cost, 5)}
        )
    return out


def part_run(label: str, config: str, overrides: list[str]) -> None:
    from ctdl.cli import run_cli
    from ctdl.models import SourceMitigation

    oracle = _oracle_costs()
    common = [
        "--config",
        config,
        *overrides,
        "--runs_dir",
        str(ROOT / "runs" / "bench_pde_control"),
        "--run_name",
        label,
        "--trainer.enable_progress_bar",
        "false",
    ]
    t0 = time.perf_counter()
    fit = run_cli(["fit", *common])
    seconds = time.perf_counter() - t0
    best = fit.trainer.checkpoint_callback.best_model_path
    model = SourceMitigation.load_from_checkpoint(best, map_location="cpu").eval()
    data, _ = _data()
    test = data.test_dataset.tensors[0]
    cost, free = model.costs(test)
    decision_ms = float(np.median([model.decision_ms(test[i : i + 1], repeats=10) for i in range(20)]))
    row = {
        "label": label,
        "config": Path(config).name,
        "overrides": " ".join(overrides) or "-",
        "test_cost": _mean(cost),
        "over_oracle": _mean(cost.numpy() / oracle),
        "cost_ratio_to_no_control": _mean((cost / free).numpy()),
        "decision_ms": round(decision_ms, 3),
        "train_s": round(seconds, 1),
        "steps": fit.trainer.global_step,
        "train_pde_solves": model.train_solves,
        "checkpoint": best,
        "curve": _curve(Path(fit.trainer.log_dir)),
        "per_instance": cost.tolist(),
    }
    rows = [r for r in _rows() if r["label"] != label] + [row]
    save(
        "pde_control",
        "runs",
        {
            "setup": "`ctdl fit` on the config, best val/cost checkpoint (32 validation instances), then the "
            "mean cost J on the 100 test instances; over_oracle = mean over instances of J / J_oracle; "
            "decision_ms = median ms of one feedback decision for one instance (network, gradient, law); "
            "train_pde_solves counts every linear solve of training (forward, adjoint and the feedback's "
            "transposed solve)",
            "rows": rows,
        },
    )


def part_ppo(env_steps: int, eval_every: int, n_envs: int, seed: int, width: int) -> None:
    from gymnasium.wrappers import RescaleAction
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
    from stable_baselines3.common.vec_env import DummyVecEnv

    from ctdl.pde import rollout
    from ctdl.pde.env import SourceMitigationEnv
    from ctdl.pde.networks import OBSERVATION_CHANNELS, FieldEncoder, observe

    oracle = _oracle_costs()
    data, problem = _data()
    train, val, test = (ds.tensors[0] for ds in (data.train_dataset, data.val_dataset, data.test_dataset))

    class Encoder(BaseFeaturesExtractor):
        def __init__(self, observation_space, width: int = 16) -> None:
            encoder = FieldEncoder(OBSERVATION_CHANNELS, width)
            super().__init__(observation_space, encoder.features)
            self.encoder = encoder

        def forward(self, obs):
            return self.encoder(obs)

    envs = [SourceMitigationEnv(problem, params=train) for _ in range(n_envs)]
    vec = DummyVecEnv([lambda e=e: RescaleAction(e, np.float32(-1), np.float32(1)) for e in envs])
    model = PPO(
        "CnnPolicy",
        vec,
        learning_rate=3e-4,
        n_steps=500,
        batch_size=250,
        n_epochs=10,
        gamma=1.0,
        gae_lambda=0.95,
        seed=seed,
        verbose=0,
        device="cpu",
        policy_kwargs=dict(
            features_extractor_class=Encoder,
            features_extractor_kwargs=dict(width=width),
            normalize_images=False,
            net_arch=dict(pi=[64], vf=[64]),
        ),
    )

    def costs(params: torch.Tensor) -> torch.Tensor:
        inst = problem.instances(params)

        def act(n, t, u):
            action, _ = model.predict(observe(problem, inst, u, t).numpy(), deterministic=True)
            return torch.from_numpy(problem.a_max * (np.clip(action, -1, 1) + 1) / 2).double()

        with torch.no_grad():
            return rollout(problem, inst, act).cost

    curve = []

    class Evaluate(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps >= len(curve) * eval_every:
                solves = sum(e.solves for e in envs)
                curve.append(
                    {
                        "env_steps": self.num_timesteps,
                        "pde_solves": solves,
                        "val_cost": round(costs(val).mean().item(), 5),
                        "s": round(time.perf_counter() - t0, 1),
                    }
                )
                print(curve[-1], flush=True)
            return True

    t0 = time.perf_counter()
    model.learn(total_timesteps=env_steps, callback=Evaluate())
    seconds = time.perf_counter() - t0
    cost = costs(test)
    inst = problem.instances(test[:1])
    u = torch.rand(1, problem.size, dtype=torch.float64)
    start = time.perf_counter()
    for _ in range(100):
        model.predict(observe(problem, inst, u, 0.5).numpy(), deterministic=True)
    decision_ms = 1000 * (time.perf_counter() - start) / 100
    save(
        "pde_control",
        "ppo",
        {
            "setup": f"stable-baselines3 PPO (CnnPolicy with ctdl's FieldEncoder, width {width}; {n_envs} "
            f"envs, n_steps 500, batch 250, 10 epochs, gamma 1, GAE 0.95, lr 3e-4, seed {seed}) on "
            f"SourceMitigationEnv with the 2048 training instances as the pool, {env_steps} env steps (= PDE "
            f"solves); val_cost on the 32 validation instances, deterministic policy",
            "summary": [
                {
                    "label": "ppo",
                    "test_cost": _mean(cost),
                    "over_oracle": _mean(cost.numpy() / oracle),
                    "decision_ms": round(decision_ms, 3),
                    "train_s": round(seconds, 1),
                    "env_steps": env_steps,
                    "train_pde_solves": sum(e.solves for e in envs),
                    "final_val_cost": curve[-1]["val_cost"] if curve else None,
                }
            ],
            "curve": curve,
            "per_instance": cost.tolist(),
        },
    )
    model.save(ROOT / "runs" / "bench_pde_control" / "ppo" / "model.zip")


def _validation_reference() -> dict:
    """No control, the untrained terminal-value feedback and the oracle on the 32 validation instances
    (the instances of every training curve), computed once into benchmarks/pde_control_validation.json."""
    from ctdl.pde import open_loop_optimum

    path = OUT / "pde_control_validation.json"
    if path.is_file():
        return json.loads(path.read_text())["summary"][0]
    data, problem = _data()
    val = data.val_dataset.tensors[0]
    free, feedback = _baselines(problem, val)
    oracle = [open_loop_optimum(problem, p).cost for p in val]
    summary = {"no_control": _mean(free), "terminal_value_feedback": _mean(feedback), "oracle": _mean(oracle)}
    save(
        "pde_control",
        "validation",
        {"setup": "the 32 validation instances of PDEInstances (seed 0)", "summary": [summary]},
    )
    return summary


def part_report() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    oracle = json.loads((OUT / "pde_control_oracle.json").read_text())["summary"][0]
    ppo_file = OUT / "pde_control_ppo.json"
    ppo = json.loads(ppo_file.read_text()) if ppo_file.is_file() else None
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
                "test_cost": s["test_cost"],
                "over_oracle": s["over_oracle"],
                "decision_ms": s["decision_ms"],
                "train_pde_solves": s["train_pde_solves"],
                "solves_to_ppo_final": reach,
                "train_s": s["train_s"],
            }
        )
    val = _validation_reference()
    runs = _rows()
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
                "over_oracle": r["over_oracle"],
                "decision_ms": r["decision_ms"],
                "train_pde_solves": r["train_pde_solves"],
                "solves_to_ppo_final": reach,
                "train_s": r["train_s"],
            }
        )
    save(
        "pde_control",
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
    fig, ax = plt.subplots(figsize=(6.5, 4.2), layout="constrained")
    for r in runs:
        c = r["curve"]
        ax.plot([p["pde_solves"] for p in c], [p["val_cost"] for p in c], "o-", label=r["label"], ms=3)
    if ppo is not None:
        ax.plot(
            [p["pde_solves"] for p in ppo["curve"]],
            [p["val_cost"] for p in ppo["curve"]],
            "s-",
            label="PPO",
            ms=3,
        )
    ax.axhline(val["oracle"], ls="--", c="k", lw=0.8, label="oracle")
    ax.set_xscale("symlog", linthresh=1e3)
    ax.set_xlim(left=0)
    ax.set_title(f"without control: {val['no_control']:.2f}", fontsize=9)
    ax.set_xlabel("PDE solves in training")
    ax.set_ylabel("mean cost J, validation instances")
    ax.legend(fontsize=8)
    figures = ROOT / "docs" / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    fig.savefig(figures / "pde_control_solves.png", dpi=120)
    report("pde_control", "Amortized PDE control")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="part", required=True)
    sub.add_parser("oracle")
    run = sub.add_parser("run")
    run.add_argument("--label", required=True)
    run.add_argument("--config", required=True)
    run.add_argument("--override", nargs=argparse.REMAINDER, default=[])
    ppo = sub.add_parser("ppo")
    ppo.add_argument("--env-steps", type=int, default=300_000)
    ppo.add_argument("--eval-every", type=int, default=20_000)
    ppo.add_argument("--envs", type=int, default=4)
    ppo.add_argument("--seed", type=int, default=0)
    ppo.add_argument("--width", type=int, default=16)
    sub.add_parser("report")
    args = parser.parse_args()
    if args.part == "oracle":
        part_oracle()
    elif args.part == "run":
        part_run(args.label, args.config, args.override)
    elif args.part == "ppo":
        part_ppo(args.env_steps, args.eval_every, args.envs, args.seed, args.width)
    else:
        part_report()


if __name__ == "__main__":
    main()
