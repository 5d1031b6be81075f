"""Benchmarks of OT-Flow. Results go to benchmarks/otflow_<part>.json and otflow.md.

    python scripts/bench_otflow.py trace speed sampling report          # any subset
    python scripts/bench_otflow.py speed --original /path/to/OT-Flow    # side by side with the original code
    python scripts/bench_otflow.py quality --toys 8gaussians            # a config as shipped

trace     one training step (loss forward + backward) with the exact, autograd and Hutchinson
          traces at the published widths, as ratios in one run
speed     seconds per training iteration at the 2-D toy, MINIBOONE and BSDS300 shapes (float32,
          exact trace, classic RK4) for each --batches and --threads, against the matrix-product
          bound of this machine (its GEMM rate, measured in the same run, times the products one
          iteration needs); with --original PATH (a checkout of github.com/EmoryMLIP/OT-Flow) the
          original code is timed interleaved with ctdl on the same data and weights
quality   toy configs trained through the CLI; E[-log p_model] - E[-log p_true] (a KL divergence)
          on 100k fresh samples, training wall time, inversion error (--toys any of the eight;
          --max_steps and --precision override the config's; evaluation is float64)
clamp     checkerboard at equal iterations with the parameter clamp at each of --values
width     the same with the potential's width at each of --values
depth     the same with the potential's depth (nTh) at each of --values
steps     the same with the training RK4 step count at each of --values
alpha_C   the same with the NLL weight at each of --values (the penalties' relative weight)
seed      the same with the global seed (initialisation and batch order) at each of --values
widen     a checkpoint's potential made wider without changing its flow (--checkpoints SOURCE
          --widen_to M --out TARGET), for a width row that starts from it (init_from=TARGET)
edges     where the checkerboard's gap is made: split by distance to the squares' edges
          (--checkpoints: trained checkerboard models)
streams   the same checkpoints' gaps on independent 100k fresh sets (--streams)
peer      an FFJORD-style CNF (torchdiffeq dopri5 + Hutchinson) against OT-Flow on the same data:
          NLL against wall clock, all in one process: the peer for --budget seconds, OT-Flow for a
          quarter of it and for all of it (each run with a cosine learning rate over its budget)
sampling  samples per second in 2-D and 43-D

Rows are kept per setting: a quality or ablation run replaces only the stored rows with the same
data, settings, iteration count and training precision.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from bench_common import OUT, report, save
from torch import nn

from ctdl.models import OTFlow
from ctdl.potential import Potential

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED_WIDTH = {2: 32, 6: 128, 8: 350, 21: 256, 43: 256, 63: 512}


def training_loss(model: OTFlow, x: torch.Tensor, steps: int) -> torch.Tensor:
    """OT-Flow's training objective alpha_L mean L + alpha_C mean C + alpha_R mean R."""
    C, cost_L, cost_R = model.nll_terms(x, steps=steps)
    h = model.hparams
    return h.alpha_L * cost_L.mean() + h.alpha_C * C.mean() + h.alpha_R * cost_R.mean()


def step_seconds(model: OTFlow, x: torch.Tensor, steps: int, repeats: int) -> list[float]:
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        loss = training_loss(model, x, steps)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - start)
    return times


# ------------------------------------------------------------------------------------ trace
def part_trace(batch: int = 256, steps: int = 2, repeats: int = 3) -> None:
    rows = []
    for d, m in PUBLISHED_WIDTH.items():
        torch.manual_seed(0)
        x = torch.randn(batch, d)
        models = {tr: OTFlow(dim=d, width=m, trace=tr) for tr in ("exact", "autograd", "hutchinson")}
        for tr in models:
            models[tr].load_state_dict(models["exact"].state_dict())
            step_seconds(models[tr], x, steps, 1)  # warm-up
        times = {tr: [] for tr in models}
        for _ in range(repeats):  # interleaved, so machine noise hits all three alike
            for tr, model in models.items():
                times[tr] += step_seconds(model, x, steps, 1)
        med = {tr: statistics.median(v) for tr, v in times.items()}
        rows.append(
            {
                "d": d,
                "m": m,
                "exact_s": round(med["exact"], 4),
                "autograd_s": round(med["autograd"], 4),
                "hutchinson_s": round(med["hutchinson"], 4),
                "autograd/exact": round(med["autograd"] / med["exact"], 2),
                "hutchinson/exact": round(med["hutchinson"] / med["exact"], 2),
            }
        )
        print(rows[-1], flush=True)
    save(
        "otflow",
        "trace",
        {
            "setup": f"float32, batch {batch}, {steps} RK4 steps, median of {repeats}, one "
            "training step = loss forward + backward + Adam",
            "target": "exact >= 3x faster than autograd for d >= 21, never slower at small d",
            "rows": rows,
        },
    )


# ------------------------------------------------------------------------------------ speed
# d, width m and training RK4 steps of the published MINIBOONE and BSDS300 runs (Onken et al.
# 2021) and of the 2-D toys
SPEED_SHAPES = {"toy": (2, 32, 8), "miniboone": (43, 256, 6), "bsds300": (63, 512, 14)}
SPEED_ALPHA = (1.0, 100.0, 5.0)  # alpha_L, alpha_C, alpha_R (OTFlow's defaults), the same in both codes


def iteration_gemm_flops(
    d: int, m: int, n: int, steps: int, depth: int = 2, rank: int | None = None
) -> float:
    """Floating-point operations in the matrix products of one training iteration of OT-Flow
    (exact trace, classic RK4, batch n, s = (x, t) in R^{d+1}, M = depth - 1 residual layers,
    r = rank of A). One evaluation of (grad_x Phi, tr Hess_x Phi) needs these multiply-adds:

        K_0 s and K_0' (...)               2 n m (d + 1)
        K_i u and K_i' (...), i = 1..M     2 M n m^2
        K_i J_{i-1}, i = 1..M              M n m^2 d      (m x m times m x nd: the trace)
        A s and A' (A s)                   2 n r (d + 1)

    Each multiply-add is 2 flops. An RK4 step evaluates 4 times. The backward pass of a product
    C = A B takes two products of the same size (dA = dC B', dB = A' dC), so one iteration is
    3 x 4 x steps evaluations' worth. Element-wise work (activations, the RK4 updates, Adam) is
    not counted, so the bound is below what any code can reach."""
    r = rank if rank is not None else min(10, d + 1)
    M = depth - 1
    mult_adds = n * (2 * m * (d + 1) + 2 * M * m * m + M * m * m * d + 2 * r * (d + 1))
    return 3 * 4 * steps * 2.0 * mult_adds


def iteration_bytes(d: int, m: int, n: int, steps: int) -> float:
    """About the memory one training iteration holds for its backward pass at width m, batch n:
    the (m, n, d) Jacobians of the exact trace, 4 x steps evaluations of them, about 3.5 such
    tensors each in the original code and 2.2 in ctdl (measured at the BSDS300 shape, batch 64)."""
    return 3.5 * 4 * steps * m * n * d * 4.0


def available_bytes() -> float:
    """MemAvailable from /proc/meminfo (infinite where it cannot be read)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return float(line.split()[1]) * 1024
    except OSError:
        pass
    return math.inf


def gemm_rate(threads: int, sizes: list[tuple[int, int, int]], repeats: int = 5) -> dict:
    """This machine's float32 matrix-product rate with `threads` torch threads: for each (a, b, c),
    the median time of an (a x b) @ (b x c) product; the rate is the best of them (flop/s)."""
    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(0)
    measured = []
    for a, b, c in sizes:
        left, right = torch.randn(a, b, generator=gen), torch.randn(b, c, generator=gen)
        out = torch.empty(a, c)
        torch.mm(left, right, out=out)  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            torch.mm(left, right, out=out)
            times.append(time.perf_counter() - start)
        gflops = 2.0 * a * b * c / statistics.median(times) / 1e9
        measured.append({"size": [a, b, c], "gflops": round(gflops, 1)})
        del left, right, out
    return {"threads": threads, "best_gflops": max(r["gflops"] for r in measured), "products": measured}


def import_original(path: str):
    """(Phi, OTFlowProblem) from a checkout of the original OT-Flow code (EmoryMLIP/OT-Flow),
    imported from `path` as it is. It runs on torch 2.x without changes; a shim would go here."""
    root = Path(path).expanduser().resolve()
    if not (root / "src" / "OTFlowProblem.py").exists():
        raise FileNotFoundError(
            f"--original {path}: no src/OTFlowProblem.py there; pass the root of a "
            "checkout of https://github.com/EmoryMLIP/OT-Flow"
        )
    sys.path.insert(0, str(root))
    from src.OTFlowProblem import OTFlowProblem
    from src.Phi import Phi

    return Phi, OTFlowProblem


@torch.no_grad()
def copy_to_original(phi: Potential, net: nn.Module) -> None:
    """Give the original code's Phi the weights of ctdl's potential (the same function)."""
    layers = net.N.layers
    layers[0].weight.copy_(phi.K0)
    layers[0].bias.copy_(phi.b0)
    for i in range(phi.depth - 1):
        layers[i + 1].weight.copy_(phi.K[i])
        layers[i + 1].bias.copy_(phi.b[i])
    net.w.weight.copy_(phi.w.view(1, -1))
    net.A.copy_(phi.A)
    net.c.weight.copy_(phi.c.view(1, -1))
    net.c.bias.copy_(phi.c0.view(1))


def ctdl_iteration(model: OTFlow, x: torch.Tensor, steps: int):
    """One training iteration of ctdl's OTFlow (loss, backward, Adam step) as a timed callable."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def run() -> tuple[float, float]:
        start = time.perf_counter()
        loss = training_loss(model, x, steps)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return time.perf_counter() - start, loss.item()

    return run


def original_iteration(net: nn.Module, problem, x: torch.Tensor, steps: int):
    """One training iteration of the original code, as its trainLargeOTflow.py does it."""
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)

    def run() -> tuple[float, float]:
        start = time.perf_counter()
        opt.zero_grad()
        loss, _ = problem(x, net, [0, 1], nt=steps, stepper="rk4", alph=net.alph)
        loss.backward()
        opt.step()
        return time.perf_counter() - start, loss.item()

    return run


def part_speed(
    original: str | None, shapes: list[str], batches: list[int], threads: list[int], repeats: int
) -> None:
    """Seconds per training iteration of ctdl (and of the original code with --original), float32,
    exact trace, for each shape, batch and thread count; both codes start from the same weights
    and data and alternate iteration by iteration (ctdl first in even rounds), so machine noise
    hits both alike. Medians of `repeats` rounds (10 rounds and a warm-up where an iteration is
    cheap). The bound is the iteration's matrix-product flops over the best GEMM rate measured
    with the same thread count, before and after the timings."""
    Phi, problem = import_original(original) if original else (None, None)
    cases = [(name, n) for name in shapes for n in batches]
    # the trace's product K_i J (m x m times m x nd) at each case, and a square one
    sizes = sorted(
        {(m, m, n * d) for name, n in cases for d, m, _ in [SPEED_SHAPES[name]]} | {(2048, 2048, 2048)}
    )
    rates = {k: gemm_rate(k, sizes) for k in threads}
    rows, flops_of = [], []
    for name, n in cases:
        d, m, steps = SPEED_SHAPES[name]
        flops = iteration_gemm_flops(d, m, n, steps)
        cheap = flops < 2e11
        if iteration_bytes(d, m, n, steps) > 0.8 * available_bytes():
            need, have = iteration_bytes(d, m, n, steps) / 2**30, available_bytes() / 2**30
            skipped = f"one iteration needs about {need:.0f} GiB of memory, {have:.0f} GiB free"
            print(f"{name}, batch {n}: skipped, {skipped}", flush=True)
            rows.append({"shape": name, "d": d, "m": m, "batch": n, "rk4_steps": steps, "skipped": skipped})
            flops_of.append(flops)
            continue
        for k in threads:
            torch.set_num_threads(k)
            torch.manual_seed(0)
            model = OTFlow(
                dim=d,
                width=m,
                depth=2,
                alpha_L=SPEED_ALPHA[0],
                alpha_C=SPEED_ALPHA[1],
                alpha_R=SPEED_ALPHA[2],
            )
            x = torch.randn(n, d)
            runs = {"ctdl": ctdl_iteration(model, x, steps)}
            if Phi is not None:
                net = Phi(nTh=2, m=m, d=d, alph=list(SPEED_ALPHA))
                copy_to_original(model.potential, net)
                runs["original"] = original_iteration(net, problem, x.clone(), steps)
            if cheap:
                for run in runs.values():
                    run()  # warm-up (both take one Adam step, from the same weights)
            load = os.getloadavg()[0]
            times, first_loss = {c: [] for c in runs}, {}
            for rnd in range(max(repeats, 10) if flops < 1e10 else repeats):
                for c in runs if rnd % 2 == 0 else reversed(runs):
                    sec, loss = runs[c]()
                    times[c].append(sec)
                    first_loss.setdefault(c, loss)
            row = {
                "shape": name,
                "d": d,
                "m": m,
                "batch": n,
                "rk4_steps": steps,
                "threads": k,
                "rounds": len(times["ctdl"]),
                "gemm_gflop": round(flops / 1e9, 2),
                "bound_s": round(flops / (rates[k]["best_gflops"] * 1e9), 4),
                "ctdl_s": round(statistics.median(times["ctdl"]), 4),
            }
            row["ctdl/bound"] = round(row["ctdl_s"] / row["bound_s"], 2)
            if "original" in runs:
                row["original_s"] = round(statistics.median(times["original"]), 4)
                row["original/bound"] = round(row["original_s"] / row["bound_s"], 2)
                row["original/ctdl"] = round(row["original_s"] / row["ctdl_s"], 2)
                row["loss_rel_diff"] = float(f"{abs(first_loss['original'] / first_loss['ctdl'] - 1):.1e}")
            row["load_before"], row["load_after"] = round(load, 2), round(os.getloadavg()[0], 2)
            rows.append(row)
            flops_of.append(flops)
            print(row, flush=True)
            del runs, model
    for k in threads:  # the rate again after the timings; the better of the two sets the bound
        again = gemm_rate(k, sizes)
        if again["best_gflops"] > rates[k]["best_gflops"]:
            for row, flops in ((r, f) for r, f in zip(rows, flops_of, strict=True) if r.get("threads") == k):
                row["bound_s"] = round(flops / (again["best_gflops"] * 1e9), 4)
                for c in ("ctdl", "original"):
                    if f"{c}_s" in row:
                        row[f"{c}/bound"] = round(row[f"{c}_s"] / row["bound_s"], 2)
        rates[k] = {
            "threads": k,
            "best_gflops": max(rates[k]["best_gflops"], again["best_gflops"]),
            "before": rates[k]["products"],
            "after": again["products"],
        }
    contenders = (
        (
            f"ctdl and the original OT-Flow code ({original}, imported unchanged) start from the same "
            "weights and data and alternate iteration by iteration; loss_rel_diff compares their first "
            "losses. "
        )
        if original
        else "ctdl only. "
    )
    save(
        "otflow",
        "speed",
        {
            "setup": "seconds per training iteration (loss forward, backward, Adam step), "
            "float32, exact trace, "
            "classic RK4, depth 2, alpha = (1, 100, 5), Gaussian data of each shape; median over "
            "rounds; " + contenders + "bound_s: the iteration's matrix-product flops (gemm_gflop: "
            "3 x 4 x steps evaluations of the products K_0 s, K_i u, K_i J, A s and their transposes; "
            "iteration_gemm_flops) over this machine's best float32 GEMM rate with the same threads "
            "(gemm_rates); load_before and load_after: the 1-minute load average (other processes)",
            "gemm_rates": list(rates.values()),
            "rows": rows,
        },
    )


# ---------------------------------------------------------------------------------- quality
def training_curve(run_dir: str, every: int = 1000) -> dict:
    """From a run's metrics.csv: val/nll at each validation and the mean train/nll over each
    `every` steps (train/nll below the true entropy with val/nll rising is the signature of the
    optimiser exploiting the coarse training discretisation)."""
    with open(Path(run_dir) / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    val = {int(r["step"]) + 1: round(float(r["val/nll"]), 4) for r in rows if r.get("val/nll")}
    train: dict[int, list[float]] = {}
    for r in rows:
        if r.get("train/nll"):
            train.setdefault((int(r["step"]) // every + 1) * every, []).append(float(r["train/nll"]))
    return {"val_nll": val, "train_nll_mean": {k: round(statistics.mean(v), 4) for k, v in train.items()}}


DECISION_STREAM = 7  # the fresh set every quality and ablation row is measured on


def fresh_points(name: str, n: int, stream: int, seed: int = 0) -> torch.Tensor:
    """n fresh float32 points (n, 2) of a toy density from child stream 3 + stream of
    SeedSequence(seed). A datamodule with that seed draws its three splits from child streams
    0, 1, 2, so these points are independent of them, and different streams of each other."""
    if stream < 0:
        raise ValueError(f"stream must be >= 0, got {stream}")
    from ctdl.datamodules import make_toy_density

    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(3 + stream,)))
    return torch.from_numpy(make_toy_density(name, n, rng)).float()


def fresh_log_prob(
    model: OTFlow, name: str, seed: int = 0, stream: int = DECISION_STREAM
) -> tuple[torch.Tensor, torch.Tensor]:
    """100k fresh float64 samples of toy `name` and the model's log density on them, integrated
    with its test step count in chunks of 10k."""
    fresh = fresh_points(name, 100_000, stream, seed).double()
    with torch.no_grad():
        log_p = torch.cat([model.log_prob(c, steps=model.hparams.test_steps) for c in fresh.split(10_000)])
    return fresh, log_p


def fresh_excess(
    model: OTFlow, name: str, seed: int = 0, stream: int = DECISION_STREAM
) -> tuple[torch.Tensor, torch.Tensor]:
    """The fresh samples of `fresh_log_prob` and log p_true - log p_model on each (its mean is the
    KL gap); for toys whose density is known."""
    from ctdl.datamodules import toy_log_density

    fresh, log_p = fresh_log_prob(model, name, seed, stream)
    return fresh, toy_log_density(name, fresh).double() - log_p


def train_and_measure(
    name: str,
    max_steps: int | None,
    runs_dir: str,
    precision: str | None = None,
    overrides: tuple[str, ...] = (),
) -> dict:
    """Train configs/otflow/<name>.yaml through the CLI (`max_steps` and `precision` override the
    config's unless None, `overrides` are more CLI arguments), then measure the best
    checkpoint (by val/nll) in float64 with its test step count: the KL gap on 100k fresh samples
    and the inversion error ||F^-1(F(x)) - x|| on 10k of them."""
    from ctdl.cli import run_cli

    cli = run_cli(
        [
            "--config",
            str(ROOT / f"configs/otflow/{name}.yaml"),
            "--runs_dir",
            runs_dir,
            *(["--trainer.max_steps", str(max_steps)] if max_steps else []),
            "--trainer.enable_progress_bar",
            "false",
            *(["--trainer.precision", precision] if precision else []),
            *overrides,
        ],
        run=False,
    )
    start = time.perf_counter()
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    seconds = time.perf_counter() - start
    best = OTFlow.load_from_checkpoint(cli.trainer.checkpoint_callback.best_model_path).double().eval()
    data = cli.datamodule
    fresh, log_p = fresh_log_prob(best, data.name, data.seed)
    log_true = data.log_density(fresh).double() if data.has_log_density else None
    steps = best.hparams.test_steps
    with torch.no_grad():
        x = fresh[:10_000]
        inv = (best.inverse(best(x, steps=steps), steps=steps) - x).norm(dim=1)
    nll_model = -log_p.mean().item()
    nll_true = None if log_true is None else -log_true.mean().item()
    row = {
        "data": name,
        "iterations": cli.trainer.global_step,
        "train_seconds": round(seconds, 1),
        "train_precision": str(cli.trainer.precision),
        "clamp": best.hparams.clamp,
        "nll_model": round(nll_model, 4),
        "nll_true": None if nll_true is None else round(nll_true, 4),
        "gap_nats": None if nll_true is None else round(nll_model - nll_true, 4),
        "test_steps": steps,
        "inv_err_mean": float(f"{inv.mean().item():.2e}"),
        "inv_err_max": float(f"{inv.max().item():.2e}"),
        "run_dir": cli.trainer.log_dir,
        "curve": training_curve(cli.trainer.log_dir),
    }
    if data.name == "checkerboard":
        row["edge_bands"] = edge_bands(fresh, log_true - log_p)
    print({k: v for k, v in row.items() if k not in ("curve", "edge_bands")}, flush=True)
    return row


def saved_rows(part: str) -> list[dict]:
    """The rows in benchmarks/otflow_<part>.json now (read after training, so runs of the same part
    in parallel processes keep each other's rows)."""
    path = OUT / f"otflow_{part}.json"
    return json.loads(path.read_text())["rows"] if path.exists() else []


def part_quality(max_steps: int | None, runs_dir: str, toys: list[str], precision: str | None = None) -> None:
    """The KL gap and the inversion error of each toy's config (`max_steps` and `precision`
    override the config's); a stored row is replaced only by a row of the same toy, iteration
    count and training precision."""
    rows = [train_and_measure(name, max_steps, runs_dir, precision) for name in toys]
    settings = ("data", "iterations", "train_precision")
    measured = {tuple(r[k] for k in settings) for r in rows}
    kept = [r for r in saved_rows("quality") if tuple(r.get(k) for k in settings) not in measured]
    save(
        "otflow",
        "quality",
        {
            "setup": "configs/otflow/<data>.yaml (width 32; train_precision: the training precision, the "
            "config's unless --precision overrides it), best checkpoint by val/nll, evaluated in "
            "float64 with test_steps RK4 steps; gap on 100k fresh samples; inversion error "
            "||F^-1(F(x)) - x|| on 10k",
            "target": "gap <= 0.05 nats; inversion error <= 1e-4",
            "rows": kept + rows,
        },
    )


# option -> (the question it answers, default values: the published one first)
ABLATIONS = {
    "clamp": ("does the published [-1.5, 1.5] parameter box limit how sharp the edges get?", ["1.5", "3.0"]),
    "width": ("does the width of the potential (published 32 for the toys) limit the gap?", ["32", "64"]),
    "depth": ("does a deeper potential (published nTh = 2) fit the edges better?", ["2", "3"]),
    "steps": ("do more training RK4 steps stop the optimiser exploiting the coarse grid?", ["8", "16"]),
    "alpha_C": (
        "how much do the transport and HJB penalties cost in NLL? (Adam is invariant to the "
        "loss's scale, so raising alpha_C is lowering alpha_L and alpha_R)",
        ["100", "1000"],
    ),
    "seed": ("how far apart are runs that differ only in initialisation and batch order?", ["0", "1", "2"]),
}
INTEGER_OPTIONS = ("width", "depth", "steps", "eval_steps", "test_steps", "seed")


def cli_flag(option: str) -> str:
    """The CLI argument that sets an ablation option: the global seed, the checkpoint the model
    starts from, a data or trainer setting (``data.n_train``, ``trainer.callbacks+``) or a model
    setting."""
    if option.startswith(("data.", "trainer.")):
        return f"--{option}"
    return {"seed": "--seed_everything", "init_from": "--init_from"}.get(option, f"--model.{option}")


def option_value(option: str, value: str) -> int | float | str:
    """An option's value as a row records it."""
    if option == "init_from" or option.startswith("trainer."):
        return value
    return int(value) if option in INTEGER_OPTIONS or option.startswith("data.") else float(value)


def part_ablation(
    option: str,
    values: list[str],
    max_steps: int | None,
    runs_dir: str,
    precision: str | None,
    fixed: dict[str, str],
) -> None:
    """Checkerboard with `option` (a model setting or the seed) at each value, each of `fixed`
    set the same way and everything else as in its config, same iterations; rows go to
    benchmarks/otflow_<option>.json (earlier rows with other settings are kept)."""
    common = tuple(a for key, v in fixed.items() for a in (cli_flag(key), v))
    rows = [
        train_and_measure("checkerboard", max_steps, runs_dir, precision, (*common, cli_flag(option), v))
        for v in values
    ]
    for row, value in zip(rows, values, strict=True):
        row.update({key: option_value(key, v) for key, v in {**fixed, option: value}.items()})
    settings = [option, *fixed, "iterations", "train_precision"]
    measured = {tuple(r[k] for k in settings) for r in rows}
    kept = [r for r in saved_rows(option) if tuple(r.get(k) for k in settings) not in measured]
    save(
        "otflow",
        option,
        {
            "setup": f"configs/otflow/checkerboard.yaml with {cli_flag(option)} at each value (and the "
            "settings a row names), the iterations of each row (cosine lr over them); best "
            "checkpoint by val/nll measured in float64 as in the quality part",
            "target": f"diagnostic (no target): {ABLATIONS[option][0]}",
            "rows": kept + rows,
        },
    )


EDGE_BANDS = (0.0, 0.025, 0.05, 0.1, 0.2, 0.4, 1.0)


def edge_bands(x: torch.Tensor, excess: torch.Tensor) -> list[dict]:
    """The checkerboard's gap split by each point's distance to the nearest edge of its square
    (squares of side 2 with corners on even integers, so the distance is at most 1): per band,
    its probability mass, its contribution to the gap (sum of log p_true - log p_model over the
    band, divided by all points) and the mean excess inside it."""
    r = torch.remainder(x, 2.0)
    distance = torch.minimum(r, 2.0 - r).min(dim=1).values
    band = torch.bucketize(distance, torch.tensor(EDGE_BANDS[1:-1], dtype=x.dtype), right=True)
    rows = []
    for i, (lo, hi) in enumerate(zip(EDGE_BANDS[:-1], EDGE_BANDS[1:], strict=True)):
        inside = band == i
        rows.append(
            {
                "distance": f"[{lo}, {hi}{']' if hi == EDGE_BANDS[-1] else ')'}",
                "mass": round(inside.double().mean().item(), 4),
                "gap_contribution": round(excess[inside].sum().item() / len(excess), 4),
                "mean_excess": round(excess[inside].mean().item(), 4) if inside.any() else None,
            }
        )
    return rows


def part_edges(checkpoints: list[str]) -> None:
    """Where the checkerboard's gap comes from: for each checkpoint, the gap on 100k fresh
    samples (float64, the model's test steps) split by distance to the squares' edges."""
    rows = []
    for path in checkpoints:
        model = OTFlow.load_from_checkpoint(path).double().eval()
        fresh, excess = fresh_excess(model, "checkerboard")
        bands = edge_bands(fresh, excess)
        near = bands[: EDGE_BANDS.index(0.1)]
        rows.append(
            {
                "checkpoint": path,
                "width": model.hparams.width,
                "depth": model.hparams.depth,
                "gap_nats": round(excess.mean().item(), 4),
                "mass_within_0.1": round(sum(b["mass"] for b in near), 4),
                "gap_within_0.1": round(sum(b["gap_contribution"] for b in near), 4),
                "bands": bands,
            }
        )
        print(rows[-1], flush=True)
    save(
        "otflow",
        "edges",
        {
            "setup": f"checkerboard checkpoints given by --checkpoints; 100k fresh samples (stream "
            f"{DECISION_STREAM}, as in the quality part), float64, test_steps RK4 steps; bands by "
            "distance to the nearest square edge",
            "target": "diagnostic (no target): is the gap made at the edges or inside the squares?",
            "rows": rows,
        },
    )


def part_streams(checkpoints: list[str], streams: list[int]) -> None:
    """Each checkerboard checkpoint's gap on several independent 100k fresh sets (streams), with
    each set's standard error. Stream 7 is the set the quality and ablation rows use, on which
    settings and checkpoints were chosen; the mean reported (gap_mean_unused) is over the other
    streams only, sets no choice was made on."""
    rows = []
    for path in checkpoints:
        model = OTFlow.load_from_checkpoint(path).double().eval()
        gaps = {}
        for stream in streams:
            _, excess = fresh_excess(model, "checkerboard", stream=stream)
            gaps[stream] = (excess.mean().item(), excess.std().item() / len(excess) ** 0.5)
        unused = [g for k, g in gaps.items() if k != DECISION_STREAM]
        row = {
            "checkpoint": path,
            **{f"gap_stream_{k}": round(g, 4) for k, (g, _) in gaps.items()},
            "standard_error": round(max(se for _, se in gaps.values()), 4),
        }
        if unused:
            mean_se = math.sqrt(sum(se**2 for _, se in unused)) / len(unused)
            row.update(
                {
                    "gap_mean_unused": round(sum(g for g, _ in unused) / len(unused), 4),
                    "mean_standard_error": round(mean_se, 4),
                    "unused_samples": 100_000 * len(unused),
                }
            )
        rows.append(row)
        print(row, flush=True)
    rows = [r for r in saved_rows("streams") if r["checkpoint"] not in checkpoints] + rows
    save(
        "otflow",
        "streams",
        {
            "setup": "checkerboard checkpoints given by --checkpoints, each measured as in the quality part "
            "(float64, test_steps RK4 steps) on 100k fresh samples of each stream given by --streams "
            "(fresh_points: child stream 3 + stream of SeedSequence(0), independent of the training "
            f"data); stream {DECISION_STREAM} is the set the quality and ablation rows use, on which "
            "choices were made, so gap_mean_unused and mean_standard_error are over the other streams",
            "target": "diagnostic: is a gap near 0.05 nats below it on sets no choice was made on?",
            "rows": rows,
        },
    )


# ------------------------------------------------------------------------------------ widen
@torch.no_grad()
def widened_potential(phi: Potential, width: int) -> Potential:
    """The same Phi with `width` units (function-preserving widening, as in Net2Net, Chen et al.
    2016). The old units keep their weights; the new ones get fresh K_0, b_0 and b rows and fresh
    rows of K_i, while their output weights w and the columns of K_i that old units would read
    them through are zero. So Phi, its gradient and Laplacian are unchanged, and the new units
    still learn: d Phi / d w_new = u_new(s) is not zero."""
    if width < phi.width:
        raise ValueError(f"widen: width {width} is smaller than the potential's {phi.width}")
    wide = Potential(phi.dim, width, phi.depth, phi.rank, phi.cond_dim).to(phi.A)
    m = phi.width
    for name in ("A", "c", "c0"):
        getattr(wide, name).copy_(getattr(phi, name))
    wide.K0[:m], wide.b0[:m], wide.b[:, :m] = phi.K0, phi.b0, phi.b
    wide.K[:, :m, :m] = phi.K
    wide.K[:, :m, m:] = 0.0
    wide.w[:m], wide.w[m:] = phi.w, 0.0
    return wide


def part_widen(source: str, target: str, width: int) -> None:
    """Write an OTFlow checkpoint whose potential is the one at `source` widened to `width` units
    (the same flow), for `--init_from` with `--model.width <width>`."""
    model = OTFlow.load_from_checkpoint(source, map_location="cpu")
    wide = widened_potential(model.potential, width)
    x = torch.randn(256, model.hparams.dim, dtype=wide.A.dtype, generator=torch.Generator().manual_seed(0))
    before, after = model.potential.grad_laplacian(x, 0.5), wide.grad_laplacian(x, 0.5)
    error = max((a - b).abs().max().item() for a, b in zip(before, after, strict=True))
    model.flow.potential = wide
    model.hparams.width = width
    import lightning

    torch.save(
        {
            "state_dict": model.state_dict(),
            "hyper_parameters": dict(model.hparams),
            "pytorch-lightning_version": lightning.__version__,
        },
        target,
    )
    print(
        f"{target}: width {width}, {sum(p.numel() for p in model.parameters())} parameters; "
        f"gradient and Laplacian differ from the source's by at most {error:.1e}"
    )


# ------------------------------------------------------------------------------------- peer
class ConcatField(nn.Module):
    """FFJORD-style vector field: an MLP on (x, t) with tanh, the peer's dynamics."""

    def __init__(self, dim: int, hidden: int = 64, layers: int = 3) -> None:
        super().__init__()
        sizes = [dim + 1] + [hidden] * layers
        self.layers = nn.ModuleList(
            nn.Linear(a + (1 if i else 0), b)
            for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True))
        )
        self.out = nn.Linear(hidden + 1, dim)

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        tt = t.expand(x.shape[0], 1)
        h = torch.cat([x, tt], 1)
        for i, layer in enumerate(self.layers):
            h = torch.tanh(layer(h if i == 0 else torch.cat([h, tt], 1)))
        return self.out(torch.cat([h, tt], 1))


class FFJORDStyleCNF(nn.Module):
    """Peer: dx/dt = f(x, t), d log p / dt = -tr(df/dx), dopri5 (rtol = atol = 1e-5), Hutchinson in
    training (Gaussian probe drawn once per solve), exact trace by autograd in evaluation."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim, self.field, self.probe, self.exact = dim, ConcatField(dim), None, False

    def augmented(self, t, state):
        x, _ = state
        with torch.enable_grad():
            x = x if x.requires_grad else x.detach().requires_grad_()
            v = self.field(t, x)
            if self.exact:
                div = sum(
                    torch.autograd.grad(v[:, i].sum(), x, create_graph=True)[0][:, i] for i in range(self.dim)
                )
            else:
                hv = torch.autograd.grad((v * self.probe).sum(), x, create_graph=True)[0]
                div = (hv * self.probe).sum(1)
        return v, -div

    def nll(self, x: torch.Tensor, exact: bool = False) -> torch.Tensor:
        import torchdiffeq

        self.exact, self.probe = exact, torch.randn_like(x)
        t = torch.tensor([0.0, 1.0], dtype=x.dtype)
        z, dlogp = (
            s[-1]
            for s in torchdiffeq.odeint(
                self.augmented,
                (x, torch.zeros(len(x), dtype=x.dtype)),
                t,
                method="dopri5",
                rtol=1e-5,
                atol=1e-5,
            )
        )
        return 0.5 * z.pow(2).sum(1) + 0.5 * self.dim * math.log(2 * math.pi) + dlogp


def race(
    name: str, loss_fn, eval_fn, params, lr: float, budget: float, data, batch: int, after_step=None
) -> list[dict]:
    """Train for `budget` seconds of training time with Adam and a cosine learning rate over that
    time (lr(s) = lr/2 (1 + cos(pi s / budget))), calling `after_step()` after each optimiser step;
    evaluate (clock stopped) every budget/12 s."""
    opt = torch.optim.Adam(params, lr=lr)
    gen = torch.Generator().manual_seed(0)
    curve, clock, next_eval, it = [], 0.0, 0.0, 0

    def record() -> None:
        curve.append(
            {
                "model": name,
                "budget_s": budget,
                "train_seconds": round(clock, 1),
                "iterations": it,
                "test_nll": round(eval_fn(), 4),
            }
        )
        print(curve[-1], flush=True)

    while clock < budget:
        if clock >= next_eval:
            record()
            next_eval += budget / 12
        start = time.perf_counter()
        for group in opt.param_groups:
            group["lr"] = 0.5 * lr * (1 + math.cos(math.pi * clock / budget))
        x = data[torch.randint(0, len(data), (batch,), generator=gen)]
        loss = loss_fn(x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if after_step is not None:
            after_step()
        clock += time.perf_counter() - start
        it += 1
    record()
    return curve


# OT-Flow's settings for the race (tuned on 8gaussians with 60 s and 240 s runs, see the README):
# a large learning rate, transport and HJB weights a tenth of the published toy ones, 4 RK4 steps
# in training, and the published clamp to [-1.5, 1.5], without which lr 0.05 diverges after ~90 s.
# Evaluation always uses the exact trace with 16 steps.
OT_RACE = {
    "width": 32,
    "alpha_L": 0.1,
    "alpha_C": 100.0,
    "alpha_R": 0.5,
    "steps": 4,
    "eval_steps": 16,
    "clamp": 1.5,
    "lr": 0.05,
}
PEER_LR = 1e-3  # FFJORD's default


def part_peer(budget: float) -> None:
    from ctdl.datamodules import make_toy_density, toy_log_density

    torch.manual_seed(0)
    train = torch.as_tensor(make_toy_density("8gaussians", 100_000, 0), dtype=torch.float32)
    test = torch.as_tensor(make_toy_density("8gaussians", 20_000, 1), dtype=torch.float32)
    nll_true = -toy_log_density("8gaussians", test.double()).mean().item()

    def ot_run(seconds: float) -> list[dict]:
        torch.manual_seed(0)
        ot = OTFlow(dim=2, **OT_RACE)

        def ot_eval():
            with torch.no_grad():
                return torch.cat([-ot.log_prob(c) for c in test.split(5000)]).mean().item()

        label = f"OT-Flow (exact trace, RK4 {OT_RACE['steps']} steps)"
        return race(
            label,
            lambda x: training_loss(ot, x, OT_RACE["steps"]),
            ot_eval,
            ot.parameters(),
            OT_RACE["lr"],
            seconds,
            train,
            1024,
            after_step=ot.clamp_parameters,
        )

    torch.manual_seed(0)
    peer = FFJORDStyleCNF(2)
    peer_curve = race(
        "FFJORD-style CNF (dopri5, Hutchinson)",
        lambda x: peer.nll(x).mean(),
        lambda: torch.cat([peer.nll(c, exact=True) for c in test.split(5000)]).mean().item(),
        peer.parameters(),
        PEER_LR,
        budget,
        train,
        1024,
    )
    quarter, full = ot_run(budget / 4), ot_run(budget)
    curves, peer_final = peer_curve + quarter + full, peer_curve[-1]
    reached = next((c for c in quarter + full if c["test_nll"] <= peer_final["test_nll"]), None)
    summary = {
        "peer_parameters": sum(p.numel() for p in peer.parameters()),
        "ot_parameters": sum(p.numel() for p in OTFlow(dim=2, **OT_RACE).parameters()),
        "nll_true": round(nll_true, 4),
        "peer_final_nll": peer_final["test_nll"],
        "peer_seconds": peer_final["train_seconds"],
        "ot_nll_at_quarter_budget": quarter[-1]["test_nll"],
        "ot_nll_at_full_budget": full[-1]["test_nll"],
        "ot_first_seconds_at_or_below_peer_final": reached["train_seconds"] if reached else None,
        "target_met": quarter[-1]["test_nll"] <= peer_final["test_nll"],
    }
    print(summary, flush=True)
    save(
        "otflow",
        "peer",
        {
            "setup": "8gaussians, float32, batch 1024, Adam with a cosine learning rate "
            "over each run's budget; "
            f"peer: {budget:.0f} s, lr {PEER_LR}; OT-Flow: one run of {budget / 4:.0f} s and one of "
            f"{budget:.0f} s with {OT_RACE}; test NLL on 20k held-out samples with exact traces "
            "(evaluation time not counted); nll_true is the true density's NLL on the same samples",
            "target": "OT-Flow's NLL after 1/4 of the peer's time <= the peer's final NLL",
            "summary": [summary],
            "rows": curves,
        },
    )


# --------------------------------------------------------------------------------- sampling
def part_sampling() -> None:
    rows = []
    for d, m, steps, dtype in ((2, 32, 32, torch.float64), (43, 256, 18, torch.float32)):
        torch.manual_seed(0)
        model = OTFlow(dim=d, width=m, eval_steps=steps).to(dtype)
        n = 100_000 if d == 2 else 20_000
        model.sample(1000)
        start = time.perf_counter()
        model.sample(n)
        sec = time.perf_counter() - start
        rows.append(
            {
                "d": d,
                "m": m,
                "dtype": str(dtype).split(".")[-1],
                "rk4_steps": steps,
                "samples": n,
                "seconds": round(sec, 2),
                "samples_per_second": round(n / sec),
            }
        )
        print(rows[-1], flush=True)
    save(
        "otflow",
        "sampling",
        {"setup": "model.sample(n): z ~ N(0, I) integrated backwards with the gradient only", "rows": rows},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parts = [
        "trace",
        "speed",
        "quality",
        *ABLATIONS,
        "widen",
        "edges",
        "streams",
        "peer",
        "sampling",
        "report",
    ]
    parser.add_argument("parts", nargs="+", choices=parts)
    parser.add_argument(
        "--max_steps",
        type=int,
        default=None,
        help="quality, ablations: training iterations (default: the config's)",
    )
    parser.add_argument("--toys", nargs="+", default=["8gaussians", "checkerboard"], help="quality: data")
    parser.add_argument(
        "--precision", default=None, help="quality, ablations: training precision (default: the config's)"
    )
    parser.add_argument(
        "--values",
        nargs="+",
        default=None,
        help="ablations: the values to compare (default: the option's own, published first)",
    )
    parser.add_argument(
        "--fixed",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="ablations: settings shared by every row, e.g. steps=16, seed=1, "
        "init_from=<checkpoint> (a second stage that starts from trained weights), "
        "data.n_train=2000000 or trainer.callbacks+=<callback class>",
    )
    parser.add_argument(
        "--checkpoints",
        nargs="+",
        default=[],
        help="edges, streams: checkerboard checkpoints; widen: the one to widen",
    )
    parser.add_argument(
        "--streams",
        nargs="+",
        type=int,
        default=[DECISION_STREAM, 8, 9, 10],
        help=f"streams: the fresh sample sets ({DECISION_STREAM} is the one the other parts "
        "use, left out of the mean)",
    )
    parser.add_argument("--widen_to", type=int, default=None, help="widen: the new width")
    parser.add_argument("--out", default=None, help="widen: where to write the widened checkpoint")
    parser.add_argument(
        "--original",
        default=None,
        help="speed: a checkout of the original OT-Flow code (github.com/EmoryMLIP/OT-Flow)",
    )
    parser.add_argument(
        "--shapes",
        nargs="+",
        default=list(SPEED_SHAPES),
        choices=list(SPEED_SHAPES),
        help="speed: the shapes",
    )
    parser.add_argument("--batches", nargs="+", type=int, default=[250, 2000], help="speed: batch sizes")
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2], help="speed: torch thread counts")
    parser.add_argument("--repeats", type=int, default=3, help="speed: rounds (median)")
    parser.add_argument("--budget", type=float, default=240.0, help="peer: training seconds per model")
    parser.add_argument("--runs_dir", default=None)
    args = parser.parse_args()
    runs_dir = args.runs_dir or tempfile.mkdtemp(prefix="ctdl-bench-")
    for part in args.parts:
        if part == "report":
            report("otflow", "OT-Flow benchmarks")
        elif part == "speed":
            part_speed(args.original, args.shapes, args.batches, args.threads, args.repeats)
        elif part == "quality":
            part_quality(args.max_steps, runs_dir, args.toys, args.precision)
        elif part in ABLATIONS:
            values = args.values or ABLATIONS[part][1]
            fixed = dict(item.split("=", 1) for item in args.fixed)
            part_ablation(part, values, args.max_steps, runs_dir, args.precision, fixed)
        elif part == "widen":
            if len(args.checkpoints) != 1 or not args.widen_to or not args.out:
                parser.error("widen needs --checkpoints SOURCE (one), --widen_to WIDTH and --out TARGET")
            part_widen(args.checkpoints[0], args.out, args.widen_to)
        elif part == "edges":
            part_edges(args.checkpoints)
        elif part == "streams":
            part_streams(args.checkpoints, args.streams)
        elif part == "peer":
            part_peer(args.budget)
        else:
            globals()[f"part_{part}"]()


if __name__ == "__main__":
    main()
