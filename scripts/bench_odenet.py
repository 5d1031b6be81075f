"""Benchmarks of the supervised ODE-Net task, one part a subcommand; each writes
benchmarks/odenet_<part>.json and rewrites benchmarks/odenet.md (CTDL_BENCH_OUT: elsewhere).

peaks     `ctdl fit` + `ctdl test` of configs/odenet/peaks.yaml, peaks_antisymmetric.yaml,
          peaks_hamiltonian.yaml and ellipses.yaml (target: val acc >= 0.97 in < 120 s)
digits    the same for digits.yaml (target: test acc >= 0.97)
fashion   the same for fashion_mnist.yaml (target: test acc >= 0.91 with <= 250k parameters)
memory    peak resident-memory growth of one training step, backprop against adjoint, 8 / 32 / 128
          RK4 steps (`ctdl.odenet.training_step_memory_mib`, a fresh process per case)
overhead  ctdl.integrators.odeint(rk4) against torchdiffeq's fixed-grid rk4 on the same vector field
          (`ctdl.odenet.solver_overhead`)
report    benchmarks/odenet.md from the JSON files

    python scripts/bench_odenet.py peaks
    python scripts/bench_odenet.py digits
    python scripts/bench_odenet.py fashion
    python scripts/bench_odenet.py memory
    python scripts/bench_odenet.py overhead
    python scripts/bench_odenet.py report

Training parts take --runs-dir (default runs/bench_odenet) and `ctdl fit` options last after --override
(a smoke test: --override --trainer.max_epochs 1).
"""

from __future__ import annotations

import subprocess
import sys

import harness

TASK, TITLE = "odenet", "ODE-Net benchmarks"
PARTS = {
    "peaks": "the four 2-D configs: fit, test, seconds to val acc 0.97",
    "digits": "scikit-learn's 8x8 digits: fit and test",
    "fashion": "Fashion-MNIST: fit and test",
    "memory": "memory of one training step, backprop against adjoint",
    "overhead": "time per RK4 step, ctdl against torchdiffeq",
    "report": "benchmarks/odenet.md from the JSON files",
}


# ------------------------------------------------------------------------------ training
def fit_and_test(config: str, args) -> dict:
    """`harness.fit` of a config, `harness.test` of its best val/acc checkpoint, and the val/acc curve."""
    name = config.rsplit("/", 1)[-1].removesuffix(".yaml")
    run = harness.fit(harness.ROOT / config, name, args.override, runs_dir=args.runs_dir)
    test = harness.test(run)
    val = [r["val/acc"] for r in harness.curve(run.run_dir, ["val/acc"])]
    return {
        "config": config,
        "run_dir": run.run_dir,
        "epochs": run.cli.trainer.current_epoch,
        "fit_seconds": round(run.wall_s, 1),
        "params": sum(p.numel() for p in run.cli.model.parameters()),
        "best_val_acc": max(val),
        "final_val_acc": val[-1],
        "test_acc": test["acc"],
        "seconds_to_97_val": seconds_to(val, 0.97, run.wall_s),
    }


def seconds_to(val: list[float], target: float, fit_seconds: float) -> float | None:
    """Wall time (pro rata by epoch) at which val/acc first reached `target`, else None."""
    for epoch, acc in enumerate(val):
        if acc >= target:
            return round(fit_seconds * (epoch + 1) / len(val), 1)
    return None


def part_peaks(args) -> None:
    names = ("peaks", "peaks_antisymmetric", "peaks_hamiltonian", "ellipses")
    runs = [fit_and_test(f"configs/odenet/{name}.yaml", args) for name in names]
    harness.save(TASK, "peaks", {"target": "peaks: val acc >= 0.97 in < 120 s of training", "runs": runs})


def part_digits(args) -> None:
    runs = [fit_and_test("configs/odenet/digits.yaml", args)]
    harness.save(TASK, "digits", {"target": "digits: test acc >= 0.97", "runs": runs})


def part_fashion(args) -> None:
    runs = [fit_and_test("configs/odenet/fashion_mnist.yaml", args)]
    target = "Fashion-MNIST: test acc >= 0.91 with <= 250k parameters"
    harness.save(TASK, "fashion", {"target": target, "runs": runs})


# ----------------------------------------------------------------------- memory and overhead
MEMORY_CHILD = "from ctdl.odenet import training_step_memory_mib as m; print(m({}, {}))"


def part_memory(args) -> None:
    """Peak extra resident memory (MiB) of one training step, the smaller of `repeats` fresh processes."""
    rows = []
    for adjoint in (False, True):
        for steps in args.steps:
            child = MEMORY_CHILD.format(steps, adjoint)
            mib = [
                float(subprocess.check_output([sys.executable, "-c", child], text=True))
                for _ in range(args.repeats)
            ]
            rows.append(
                {
                    "gradient": "adjoint" if adjoint else "backprop",
                    "steps": steps,
                    "peak_step_MiB": round(min(mib), 1),
                }
            )
    setup = (
        "dense ODENet, width 256, batch 1024, RK4; peak RSS growth during one forward+backward (ru_maxrss), "
        f"min of {args.repeats} processes"
    )
    harness.save(TASK, "memory", {"setup": setup, "rows": rows})


def part_overhead(args) -> None:
    """ctdl.integrators.odeint(rk4) against torchdiffeq's fixed-grid rk4, same function."""
    from ctdl.odenet import solver_overhead

    rows = [
        row
        for batch, width, steps in ((64, 16, 32), (1024, 128, 16), (4096, 512, 8))
        for row in solver_overhead(batch, width, steps, repeats=args.repeats)
    ]
    target = f"ratio ctdl / torchdiffeq <= 1.0 (median of {args.repeats})"
    harness.save(TASK, "overhead", {"target": target, "rows": rows})


def main() -> None:
    parser, parts = harness.parser(__doc__, PARTS)
    parts["memory"].add_argument("--steps", type=int, nargs="+", default=[8, 32, 128], help="RK4 steps")
    parts["memory"].add_argument("--repeats", type=int, default=2, help="fresh processes per case")
    parts["overhead"].add_argument("--repeats", type=int, default=15, help="timed rounds per case")
    for name in ("peaks", "digits", "fashion"):
        harness.add_run_options(parts[name], label=False)
    args = parser.parse_args()
    if args.part in ("peaks", "digits", "fashion"):
        args.runs_dir = args.runs_dir or harness.RUNS / "bench_odenet"
    if args.part != "report":
        globals()[f"part_{args.part}"](args)
    harness.report(TASK, TITLE)


if __name__ == "__main__":
    main()
