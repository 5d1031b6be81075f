"""Benchmarks of the supervised ODE-Net task. Results go to benchmarks/.

    python scripts/bench_odenet.py peaks digits fashion memory overhead   # any subset
    python scripts/bench_odenet.py report                                  # merge into the .md

Each part writes benchmarks/odenet_<part>.json; `report` writes benchmarks/odenet.md with
the machine, the versions, and one table per part. Training parts run the real `ctdl` CLI
(configs/odenet/*.yaml) in this process and read the metrics it logged.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from bench_common import report, save

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------ training
def fit_and_test(config: str, runs_dir: str, *extra: str) -> dict:
    """Fit a config through the CLI, then test its best checkpoint; return what was logged."""
    from ctdl.cli import run_cli

    args = [
        "--config",
        str(ROOT / config),
        "--runs_dir",
        runs_dir,
        "--trainer.enable_progress_bar",
        "false",
        *extra,
    ]
    cli = run_cli(args, run=False)
    start = time.perf_counter()
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    fit_seconds = time.perf_counter() - start
    best = cli.trainer.checkpoint_callback.best_model_path
    test = cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path=best, verbose=False)[0]
    rows = list(csv.DictReader(open(Path(cli.trainer.log_dir) / "metrics.csv")))
    val = [float(r["val/acc"]) for r in rows if r.get("val/acc")]
    n_params = sum(p.numel() for p in cli.model.parameters())
    return {
        "config": config,
        "run_dir": cli.trainer.log_dir,
        "epochs": cli.trainer.current_epoch,
        "fit_seconds": round(fit_seconds, 1),
        "params": n_params,
        "best_val_acc": max(val),
        "final_val_acc": val[-1],
        "test_acc": test["test/acc"],
        "seconds_to_97_val": _seconds_to(rows, val, 0.97, fit_seconds),
    }


def _seconds_to(rows, val, target, fit_seconds):
    """Wall time (pro rata by epoch) at which val/acc first reached `target`, else None."""
    for epoch, acc in enumerate(val):
        if acc >= target:
            return round(fit_seconds * (epoch + 1) / len(val), 1)
    return None


def part_peaks(runs_dir: str) -> None:
    results = [
        fit_and_test(f"configs/odenet/{name}.yaml", runs_dir)
        for name in ("peaks", "peaks_antisymmetric", "peaks_hamiltonian", "ellipses")
    ]
    save("odenet", "peaks", {"target": "peaks: val acc >= 0.97 in < 120 s of training", "runs": results})


def part_digits(runs_dir: str) -> None:
    save(
        "odenet",
        "digits",
        {
            "target": "digits: test acc >= 0.97",
            "runs": [fit_and_test("configs/odenet/digits.yaml", runs_dir)],
        },
    )


def part_fashion(runs_dir: str) -> None:
    save(
        "odenet",
        "fashion",
        {
            "target": "Fashion-MNIST: test acc >= 0.91 with <= 250k parameters",
            "runs": [fit_and_test("configs/odenet/fashion_mnist.yaml", runs_dir)],
        },
    )


# -------------------------------------------------------------------------------- memory
MEMORY_CHILD = r"""
import resource, sys, torch
from ctdl.models import ODENetClassifier
steps, adjoint = int(sys.argv[1]), sys.argv[2] == "1"
torch.manual_seed(0)
model = ODENetClassifier(input_shape=[64], num_classes=10, width=256, steps=steps, method="rk4",
                         adjoint=adjoint, scheduler="none")
x, y = torch.randn(1024, 64), torch.randint(0, 10, (1024,))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
loss = torch.nn.functional.cross_entropy(model(x), y)
loss.backward()
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((after - before) / 1024)
"""


def part_memory(_: str) -> None:
    """Peak extra resident memory (MiB) of one training step, in a fresh process per case."""
    rows = []
    for adjoint in (False, True):
        for steps in (8, 32, 128):
            mib = [
                float(
                    subprocess.check_output(
                        [sys.executable, "-c", MEMORY_CHILD, str(steps), str(int(adjoint))], text=True
                    )
                )
                for _ in range(2)
            ]
            rows.append(
                {
                    "gradient": "adjoint" if adjoint else "backprop",
                    "steps": steps,
                    "peak_step_MiB": round(min(mib), 1),
                }
            )
    save(
        "odenet",
        "memory",
        {
            "setup": "dense ODENetClassifier, width 256, batch 1024, RK4; "
            "peak RSS growth during one forward+backward (ru_maxrss), min of 2 processes",
            "rows": rows,
        },
    )


# ------------------------------------------------------------------------------ overhead
def part_overhead(_: str, repeats: int = 15) -> None:
    """ctdl.integrators.odeint(rk4) against torchdiffeq's fixed-grid rk4, same function."""
    import torchdiffeq

    from ctdl.dynamics import ResNetLayer
    from ctdl.integrators import odeint

    rows = []
    t = torch.tensor([0.0, 1.0])
    for batch, width, steps in ((64, 16, 32), (1024, 128, 16), (4096, 512, 8)):
        torch.manual_seed(0)
        f = ResNetLayer(width, pieces=4)
        y0 = torch.randn(batch, width)
        solvers = {
            "ctdl": lambda y, f=f, n=steps: odeint(f, y, t, method="rk4", steps=n),
            "torchdiffeq": lambda y, f=f, n=steps: torchdiffeq.odeint(
                f, y, t, method="rk4", options={"step_size": 1.0 / n}
            ),
        }
        for mode in ("forward", "forward+backward"):
            times = {name: [] for name in solvers}
            for r in range(repeats + 2):  # interleave contenders; the first 2 rounds warm up
                for name, solve in solvers.items():
                    y = y0.clone().requires_grad_(mode != "forward")
                    start = time.perf_counter()
                    out = solve(y)[-1]
                    if mode != "forward":
                        out.square().sum().backward()
                    if r >= 2:
                        times[name].append((time.perf_counter() - start) / steps)
            med = {name: statistics.median(v) for name, v in times.items()}
            rows.append(
                {
                    "batch": batch,
                    "width": width,
                    "steps": steps,
                    "mode": mode,
                    "ctdl_us_per_step": round(1e6 * med["ctdl"], 1),
                    "torchdiffeq_us_per_step": round(1e6 * med["torchdiffeq"], 1),
                    "ratio": round(med["ctdl"] / med["torchdiffeq"], 3),
                }
            )
    save(
        "odenet",
        "overhead",
        {"target": f"ratio ctdl / torchdiffeq <= 1.0 (median of {repeats})", "rows": rows},
    )


# -------------------------------------------------------------------------------- report
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument(
        "parts", nargs="+", choices=["peaks", "digits", "fashion", "memory", "overhead", "report"]
    )
    parser.add_argument("--runs_dir", default=None, help="run folders (default: a temporary one)")
    args = parser.parse_args()
    runs_dir = args.runs_dir or tempfile.mkdtemp(prefix="ctdl-bench-")
    for part in args.parts:
        if part == "report":
            report("odenet", "ODE-Net benchmarks")
        else:
            globals()[f"part_{part}"](runs_dir)


if __name__ == "__main__":
    main()
