"""Speed benchmarks of OT-Flow: results go to benchmarks/otflow_<part>.json and otflow.md (the
quality parts: scripts/bench_otflow.py).

    python scripts/bench_otflow_speed.py trace
    python scripts/bench_otflow_speed.py speed --original /path/to/OT-Flow   # beside the original code
    python scripts/bench_otflow_speed.py peer --budget 240

trace     one training step (loss forward + backward) with the exact, autograd and Hutchinson
          traces at the published widths, as ratios in one run
speed     seconds per training iteration at the 2-D toy, MINIBOONE and BSDS300 shapes (float32,
          exact trace, classic RK4) for each --batches and --threads, against the matrix-product
          bound of this machine (its GEMM rate, measured in the same run, times the products one
          iteration needs); with --original PATH (a checkout of github.com/EmoryMLIP/OT-Flow) the
          original code is timed interleaved with ctdl on the same data and weights
peer      an FFJORD-style CNF (torchdiffeq dopri5 + Hutchinson, ctdl.otflow.baselines) against
          OT-Flow on the same data: NLL against wall clock, all in one process: the peer for
          --budget seconds, OT-Flow for a quarter of it and for all of it (each run with a cosine
          learning rate over its budget)
"""

from __future__ import annotations

import math
import os
import statistics
import sys
import time
from pathlib import Path

import harness
import torch
from torch import nn

from ctdl.models import OTFlow
from ctdl.otflow import make_toy_density, toy_log_density
from ctdl.otflow.baselines import FFJORDStyleCNF
from ctdl.potential import Potential

TASK = "otflow"
PUBLISHED_WIDTH = {2: 32, 6: 128, 8: 350, 21: 256, 43: 256, 63: 512}


def training_loss(model: OTFlow, x: torch.Tensor, steps: int) -> torch.Tensor:
    """OT-Flow's training objective alpha_L mean L + alpha_C mean C + alpha_R mean R."""
    return model.loss_terms(x, steps=steps)["loss"]


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
def part_trace(args) -> None:
    """One training step with each trace at the published widths, interleaved, medians."""
    batch, steps, repeats = args.batch, args.steps, args.repeats
    rows = []
    for d in args.dims:
        m = PUBLISHED_WIDTH[d]
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
    harness.save(
        TASK,
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
    harness.save(
        TASK,
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


# ------------------------------------------------------------------------------------- peer
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


def part_peer(args) -> None:
    """The race: the peer for --budget seconds, OT-Flow for a quarter of it and for all of it."""
    budget = args.budget
    torch.manual_seed(0)
    train = torch.as_tensor(make_toy_density("8gaussians", 100_000, 0), dtype=torch.float32)
    test = torch.as_tensor(make_toy_density("8gaussians", args.test_points, 1), dtype=torch.float32)
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
    harness.save(
        TASK,
        "peer",
        {
            "setup": "8gaussians, float32, batch 1024, Adam with a cosine learning rate "
            "over each run's budget; "
            f"peer: {budget:.0f} s, lr {PEER_LR}; OT-Flow: one run of {budget / 4:.0f} s and one of "
            f"{budget:.0f} s with {OT_RACE}; test NLL on {args.test_points} held-out samples "
            "with exact traces "
            "(evaluation time not counted); nll_true is the true density's NLL on the same samples",
            "target": "OT-Flow's NLL after 1/4 of the peer's time <= the peer's final NLL",
            "summary": [summary],
            "rows": curves,
        },
    )


# ------------------------------------------------------------------------------ arguments
PARTS = {
    "trace": "one training step with the exact, autograd and Hutchinson traces",
    "speed": "seconds per training iteration against the matrix-product bound (and the original code)",
    "peer": "a race against an FFJORD-style CNF on 8gaussians",
    "report": "benchmarks/otflow.md from every benchmarks/otflow_*.json",
}


def build_parser():
    main, parts = harness.parser(__doc__, PARTS)
    p = parts["trace"]
    p.add_argument(
        "--dims", nargs="+", type=int, default=list(PUBLISHED_WIDTH), choices=list(PUBLISHED_WIDTH)
    )
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=2, help="RK4 steps")
    p.add_argument("--repeats", type=int, default=3, help="interleaved rounds (median)")
    p = parts["speed"]
    p.add_argument(
        "--original",
        default=None,
        help="a checkout of the original OT-Flow code (github.com/EmoryMLIP/OT-Flow); without it ctdl only",
    )
    p.add_argument("--shapes", nargs="+", default=list(SPEED_SHAPES), choices=list(SPEED_SHAPES))
    p.add_argument("--batches", nargs="+", type=int, default=[250, 2000], help="batch sizes")
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2], help="torch thread counts")
    p.add_argument("--repeats", type=int, default=3, help="rounds (median)")
    p = parts["peer"]
    p.add_argument("--budget", type=float, default=240.0, help="training seconds of the peer")
    p.add_argument("--test-points", type=int, default=20_000, help="held-out points of the test NLL")
    return main


def main() -> None:
    args = build_parser().parse_args()
    if args.part == "report":
        harness.report(TASK, "OT-Flow benchmarks")
    elif args.part == "speed":
        part_speed(args.original, args.shapes, args.batches, args.threads, args.repeats)
    else:
        globals()[f"part_{args.part}"](args)


if __name__ == "__main__":
    main()
