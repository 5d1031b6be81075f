"""Benchmarks of OT-Flow (issue: OT-Flow). Results go to benchmarks/otflow_<part>.json and otflow.md.

    python scripts/bench_otflow.py trace speed quality peer sampling   # any subset
    python scripts/bench_otflow.py report

trace     one training step (loss forward + backward) with the exact, autograd and Hutchinson
          traces at the published widths, as ratios in one run
speed     seconds per training iteration at the MINIBOONE, BSDS300 and 2-D toy shapes (float32)
          against the original OT-Flow code's figures measured on this kind of machine
quality   8gaussians and checkerboard trained through the CLI; E[-log p_model] - E[-log p_true]
          (a KL divergence) on 100k fresh samples, training wall time, inversion error
          (--toys any of the eight; --precision 32-true trains in float32, evaluation is float64)
clamp     checkerboard at equal iterations with the parameter clamp at each of --values
width     the same with the potential's width at each of --values
depth     the same with the potential's depth (nTh) at each of --values
steps     the same with the training RK4 step count at each of --values
alpha_C   the same with the NLL weight at each of --values (the penalties' relative weight)
seed      the same with the global seed (initialisation and batch order) at each of --values
edges     where the checkerboard's gap is made: split by distance to the squares' edges
          (--checkpoints: trained checkerboard models)
streams   the same checkpoints' gaps on several independent 100k fresh sets (--streams)
peer      an FFJORD-style CNF (torchdiffeq dopri5 + Hutchinson) against OT-Flow on the same data:
          NLL against wall clock, all in one process: the peer for --budget seconds, OT-Flow for a
          quarter of it and for all of it (each run with a cosine learning rate over its budget)
sampling  samples per second in 2-D and 43-D
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import tempfile
import time
from pathlib import Path

import torch
from bench_common import OUT, report, save
from torch import nn

from ctdl.models import OTFlow

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED_WIDTH = {2: 32, 6: 128, 8: 350, 21: 256, 43: 256, 63: 512}
ORIGINAL_SECONDS = {"miniboone": 38.0, "bsds300": 35.0, "toy": 0.32}  # the measurements
SHAPES = {"miniboone": (43, 256, 2000, 6), "bsds300": (63, 512, 300, 14), "toy": (2, 32, 4096, 8)}


def step_seconds(model: OTFlow, x: torch.Tensor, steps: int, repeats: int) -> list[float]:
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        loss = model.loss_terms(x, steps)["loss"]
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
        rows.append({"d": d, "m": m, "exact_s": round(med["exact"], 4),
                     "autograd_s": round(med["autograd"], 4), "hutchinson_s": round(med["hutchinson"], 4),
                     "autograd/exact": round(med["autograd"] / med["exact"], 2),
                     "hutchinson/exact": round(med["hutchinson"] / med["exact"], 2)})
        print(rows[-1], flush=True)
    save("otflow", "trace", {"setup": f"float32, batch {batch}, {steps} RK4 steps, median of {repeats}, one "
                   "training step = loss forward + backward + Adam",
                   "target": "exact >= 3x faster than autograd for d >= 21, never slower at small d",
                   "rows": rows})


# ------------------------------------------------------------------------------------ speed
def part_speed() -> None:
    torch.set_num_threads(2)  # the setting (and this machine's core count)
    rows = []
    for name, (d, m, batch, steps) in SHAPES.items():
        torch.manual_seed(0)
        model = OTFlow(dim=d, width=m)
        x = torch.randn(batch, d)
        repeats = 10 if name == "toy" else 3
        step_seconds(model, x, steps, 1)  # warm-up
        sec = statistics.median(step_seconds(model, x, steps, repeats))
        target = 2.0 if name == "toy" else 3.0
        rows.append({"shape": name, "d": d, "m": m, "batch": batch, "rk4_steps": steps,
                     "s_per_iter": round(sec, 3), "original_s": ORIGINAL_SECONDS[name],
                     "speedup": round(ORIGINAL_SECONDS[name] / sec, 2), "target_speedup": target})
        print(rows[-1], flush=True)
    save("otflow", "speed", {"setup": "float32, torch threads as printed, exact trace, classic RK4, median "
                   "(3 iterations at the large shapes, 10 at the toy shape); original_s is the original "
                   "OT-Flow code on this kind of machine as given in the issue (not re-measured here)",
                             "rows": rows})


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


def fresh_log_prob(model: OTFlow, data, stream: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    """100k fresh float64 samples of `data` (stream 7 unless told) and the model's log density on
    them, integrated with its test step count in chunks of 10k."""
    fresh = torch.as_tensor(data.sample(100_000, stream=stream), dtype=torch.float64)
    with torch.no_grad():
        log_p = torch.cat([model.log_prob(c, model.hparams.test_steps) for c in fresh.split(10_000)])
    return fresh, log_p


def fresh_excess(model: OTFlow, data, stream: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    """The fresh samples of `fresh_log_prob` and log p_true - log p_model on each (its mean is the
    KL gap); for data whose density is known."""
    fresh, log_p = fresh_log_prob(model, data, stream)
    return fresh, data.log_density(fresh).double() - log_p


def train_and_measure(name: str, max_steps: int, runs_dir: str, precision: str | None = None,
                      overrides: tuple[str, ...] = ()) -> dict:
    """Train configs/otflow/<name>.yaml through the CLI (`precision` overrides the training
    precision, `overrides` are more CLI arguments), then measure the best
    checkpoint (by val/nll) in float64 with its test step count: the KL gap on 100k fresh samples
    and the inversion error ||F^-1(F(x)) - x|| on 10k of them."""
    from ctdl.cli import run_cli

    cli = run_cli(["--config", str(ROOT / f"configs/otflow/{name}.yaml"), "--runs_dir", runs_dir,
                   "--trainer.max_steps", str(max_steps), "--trainer.enable_progress_bar", "false",
                   *(["--trainer.precision", precision] if precision else []), *overrides], run=False)
    start = time.perf_counter()
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    seconds = time.perf_counter() - start
    best = OTFlow.load_from_checkpoint(cli.trainer.checkpoint_callback.best_model_path).double().eval()
    data = cli.datamodule
    fresh, log_p = fresh_log_prob(best, data)
    log_true = data.log_density(fresh).double() if data.has_log_density else None
    steps = best.hparams.test_steps
    with torch.no_grad():
        x = fresh[:10_000]
        inv = (best.inverse(best(x, steps), steps) - x).norm(dim=1)
    nll_model = -log_p.mean().item()
    nll_true = None if log_true is None else -log_true.mean().item()
    row = {"data": name, "iterations": cli.trainer.global_step, "train_seconds": round(seconds, 1),
           "train_precision": str(cli.trainer.precision), "clamp": best.hparams.clamp,
           "nll_model": round(nll_model, 4), "nll_true": None if nll_true is None else round(nll_true, 4),
           "gap_nats": None if nll_true is None else round(nll_model - nll_true, 4), "test_steps": steps,
           "inv_err_mean": float(f"{inv.mean().item():.2e}"), "inv_err_max": float(f"{inv.max().item():.2e}"),
           "run_dir": cli.trainer.log_dir, "curve": training_curve(cli.trainer.log_dir)}
    if data.name == "checkerboard":
        row["edge_bands"] = edge_bands(fresh, log_true - log_p)
    print({k: v for k, v in row.items() if k not in ("curve", "edge_bands")}, flush=True)
    return row


def saved_rows(part: str) -> list[dict]:
    """The rows in benchmarks/otflow_<part>.json now (read after training, so runs of the same part
    in parallel processes keep each other's rows)."""
    path = OUT / f"otflow_{part}.json"
    return json.loads(path.read_text())["rows"] if path.exists() else []


def part_quality(max_steps: int, runs_dir: str, toys: list[str], precision: str | None = None) -> None:
    """The KL gap and the inversion error of each toy's config (`precision` overrides the training
    precision); rows of toys not rerun now are kept."""
    rows = [train_and_measure(name, max_steps, runs_dir, precision) for name in toys]
    kept = [r for r in saved_rows("quality") if r["data"] not in toys]
    save("otflow", "quality", {
        "setup": "configs/otflow/<data>.yaml (width 32; train_precision: the training precision, the "
                 "config's unless --precision overrides it), best checkpoint by val/nll, evaluated in "
                 "float64 with test_steps RK4 steps; gap on 100k fresh samples; inversion error "
                 "||F^-1(F(x)) - x|| on 10k",
        "target": "gap <= 0.05 nats; inversion error <= 1e-4", "rows": kept + rows})


# option -> (the question it answers, default values: the published one first)
ABLATIONS = {
    "clamp": ("does the published [-1.5, 1.5] parameter box limit how sharp the edges get?", ["1.5", "3.0"]),
    "width": ("does the width of the potential (published 32 for the toys) limit the gap?", ["32", "64"]),
    "depth": ("does a deeper potential (published nTh = 2) fit the edges better?", ["2", "3"]),
    "steps": ("do more training RK4 steps stop the optimiser exploiting the coarse grid?", ["8", "16"]),
    "alpha_C": ("how much do the transport and HJB penalties cost in NLL? (Adam is invariant to the "
                "loss's scale, so raising alpha_C is lowering alpha_L and alpha_R)", ["100", "1000"]),
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


def part_ablation(option: str, values: list[str], max_steps: int, runs_dir: str,
                  precision: str | None, fixed: dict[str, str]) -> None:
    """Checkerboard with `option` (a model setting or the seed) at each value, each of `fixed`
    set the same way and everything else as in its config, same iterations; rows go to
    benchmarks/otflow_<option>.json (earlier rows with other settings are kept)."""
    common = tuple(a for key, v in fixed.items() for a in (cli_flag(key), v))
    rows = [train_and_measure("checkerboard", max_steps, runs_dir, precision,
                              (*common, cli_flag(option), v)) for v in values]
    for row, value in zip(rows, values, strict=True):
        row.update({key: option_value(key, v) for key, v in {**fixed, option: value}.items()})
    settings = [option, *fixed, "iterations", "train_precision"]
    measured = {tuple(r[k] for k in settings) for r in rows}
    kept = [r for r in saved_rows(option) if tuple(r.get(k) for k in settings) not in measured]
    save("otflow", option, {
        "setup": f"configs/otflow/checkerboard.yaml with {cli_flag(option)} at each value (and the "
                 "settings a row names), the iterations of each row (cosine lr over them); best "
                 "checkpoint by val/nll measured in float64 as in the quality part",
        "target": f"diagnostic (no target): {ABLATIONS[option][0]}", "rows": kept + rows})


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
        rows.append({"distance": f"[{lo}, {hi}{']' if hi == EDGE_BANDS[-1] else ')'}",
                     "mass": round(inside.double().mean().item(), 4),
                     "gap_contribution": round(excess[inside].sum().item() / len(excess), 4),
                     "mean_excess": round(excess[inside].mean().item(), 4) if inside.any() else None})
    return rows


def part_edges(checkpoints: list[str]) -> None:
    """Where the checkerboard's gap comes from: for each checkpoint, the gap on 100k fresh
    samples (float64, the model's test steps) split by distance to the squares' edges."""
    from ctdl.datamodules import Toy2DDensity

    data = Toy2DDensity(dataset="checkerboard")
    rows = []
    for path in checkpoints:
        model = OTFlow.load_from_checkpoint(path).double().eval()
        fresh, excess = fresh_excess(model, data)
        bands = edge_bands(fresh, excess)
        near = bands[:EDGE_BANDS.index(0.1)]
        rows.append({"checkpoint": path, "width": model.hparams.width, "depth": model.hparams.depth,
                     "gap_nats": round(excess.mean().item(), 4),
                     "mass_within_0.1": round(sum(b["mass"] for b in near), 4),
                     "gap_within_0.1": round(sum(b["gap_contribution"] for b in near), 4), "bands": bands})
        print(rows[-1], flush=True)
    save("otflow", "edges", {
        "setup": "checkerboard checkpoints given by --checkpoints; 100k fresh samples (stream 7, as in "
                 "the quality part), float64, test_steps RK4 steps; bands by distance to the nearest "
                 "square edge",
        "target": "diagnostic (no target): is the gap made at the edges or inside the squares?",
        "rows": rows})


def part_streams(checkpoints: list[str], streams: list[int]) -> None:
    """How much of a checkerboard gap is the draw of the 100k fresh samples: each checkpoint's gap
    on several independent fresh sets (streams; the other parts use stream 7), with each set's
    standard error and the mean over all of them."""
    from ctdl.datamodules import Toy2DDensity

    data = Toy2DDensity(dataset="checkerboard")
    rows = []
    for path in checkpoints:
        model = OTFlow.load_from_checkpoint(path).double().eval()
        gaps = {}
        for stream in streams:
            _, excess = fresh_excess(model, data, stream)
            gaps[stream] = (excess.mean().item(), excess.std().item() / len(excess) ** 0.5)
        row = {"checkpoint": path, **{f"gap_stream_{k}": round(g, 4) for k, (g, _) in gaps.items()},
               "standard_error": round(max(se for _, se in gaps.values()), 4),
               "gap_mean": round(sum(g for g, _ in gaps.values()) / len(gaps), 4),
               "samples": 100_000 * len(gaps)}
        rows.append(row)
        print(row, flush=True)
    rows = [r for r in saved_rows("streams") if r["checkpoint"] not in checkpoints] + rows
    save("otflow", "streams", {
        "setup": "checkerboard checkpoints given by --checkpoints, each measured as in the quality part "
                 "(float64, test_steps RK4 steps) on 100k fresh samples of each stream given by "
                 "--streams (Toy2DDensity.sample(n, stream), independent of the training data)",
        "target": "diagnostic: is a gap near 0.05 nats below it on more than one draw?", "rows": rows})


# ------------------------------------------------------------------------------------- peer
class ConcatField(nn.Module):
    """FFJORD-style vector field: an MLP on (x, t) with tanh, the peer's dynamics."""

    def __init__(self, dim: int, hidden: int = 64, layers: int = 3) -> None:
        super().__init__()
        sizes = [dim + 1] + [hidden] * layers
        self.layers = nn.ModuleList(nn.Linear(a + (1 if i else 0), b)
                                    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)))
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
                div = sum(torch.autograd.grad(v[:, i].sum(), x, create_graph=True)[0][:, i]
                          for i in range(self.dim))
            else:
                hv = torch.autograd.grad((v * self.probe).sum(), x, create_graph=True)[0]
                div = (hv * self.probe).sum(1)
        return v, -div

    def nll(self, x: torch.Tensor, exact: bool = False) -> torch.Tensor:
        import torchdiffeq

        self.exact, self.probe = exact, torch.randn_like(x)
        t = torch.tensor([0.0, 1.0], dtype=x.dtype)
        z, dlogp = (s[-1] for s in torchdiffeq.odeint(self.augmented, (x, torch.zeros(len(x), dtype=x.dtype)),
                                                        t, method="dopri5", rtol=1e-5, atol=1e-5))
        return 0.5 * z.pow(2).sum(1) + 0.5 * self.dim * math.log(2 * math.pi) + dlogp


def race(name: str, loss_fn, eval_fn, params, lr: float, budget: float, data, batch: int,
         after_step=None) -> list[dict]:
    """Train for `budget` seconds of training time with Adam and a cosine learning rate over that
    time (lr(s) = lr/2 (1 + cos(pi s / budget))), calling `after_step()` after each optimiser step;
    evaluate (clock stopped) every budget/12 s."""
    opt = torch.optim.Adam(params, lr=lr)
    gen = torch.Generator().manual_seed(0)
    curve, clock, next_eval, it = [], 0.0, 0.0, 0

    def record() -> None:
        curve.append({"model": name, "budget_s": budget, "train_seconds": round(clock, 1), "iterations": it,
                      "test_nll": round(eval_fn(), 4)})
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
OT_RACE = {"width": 32, "alpha_L": 0.1, "alpha_C": 100.0, "alpha_R": 0.5, "steps": 4, "eval_steps": 16,
           "clamp": 1.5, "lr": 0.05}
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
        return race(label, lambda x: ot.loss_terms(x, OT_RACE["steps"])["loss"], ot_eval, ot.parameters(),
                    OT_RACE["lr"], seconds, train, 1024, after_step=ot.clamp_parameters)

    torch.manual_seed(0)
    peer = FFJORDStyleCNF(2)
    peer_curve = race("FFJORD-style CNF (dopri5, Hutchinson)", lambda x: peer.nll(x).mean(),
                      lambda: torch.cat([peer.nll(c, exact=True) for c in test.split(5000)]).mean().item(),
                      peer.parameters(), PEER_LR, budget, train, 1024)
    quarter, full = ot_run(budget / 4), ot_run(budget)
    curves, peer_final = peer_curve + quarter + full, peer_curve[-1]
    reached = next((c for c in quarter + full if c["test_nll"] <= peer_final["test_nll"]), None)
    summary = {"peer_parameters": sum(p.numel() for p in peer.parameters()),
               "ot_parameters": sum(p.numel() for p in OTFlow(dim=2, **OT_RACE).parameters()),
               "nll_true": round(nll_true, 4), "peer_final_nll": peer_final["test_nll"],
               "peer_seconds": peer_final["train_seconds"],
               "ot_nll_at_quarter_budget": quarter[-1]["test_nll"],
               "ot_nll_at_full_budget": full[-1]["test_nll"],
               "ot_first_seconds_at_or_below_peer_final": reached["train_seconds"] if reached else None,
               "target_met": quarter[-1]["test_nll"] <= peer_final["test_nll"]}
    print(summary, flush=True)
    save("otflow", "peer", {
        "setup": f"8gaussians, float32, batch 1024, Adam with a cosine learning rate over each run's budget; "
                 f"peer: {budget:.0f} s, lr {PEER_LR}; OT-Flow: one run of {budget / 4:.0f} s and one of "
                 f"{budget:.0f} s with {OT_RACE}; test NLL on 20k held-out samples with exact traces "
                 "(evaluation time not counted); nll_true is the true density's NLL on the same samples",
        "target": "OT-Flow's NLL after 1/4 of the peer's time <= the peer's final NLL",
        "summary": [summary], "rows": curves})


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
        rows.append({"d": d, "m": m, "dtype": str(dtype).split(".")[-1], "rk4_steps": steps, "samples": n,
                     "seconds": round(sec, 2), "samples_per_second": round(n / sec)})
        print(rows[-1], flush=True)
    save("otflow", "sampling", {
        "setup": "model.sample(n): z ~ N(0, I) integrated backwards with the gradient only",
                      "rows": rows})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parts = ["trace", "speed", "quality", *ABLATIONS, "edges", "streams", "peer", "sampling", "report"]
    parser.add_argument("parts", nargs="+", choices=parts)
    parser.add_argument("--max_steps", type=int, default=2000, help="quality, ablations: training iterations")
    parser.add_argument("--toys", nargs="+", default=["8gaussians", "checkerboard"], help="quality: data")
    parser.add_argument("--precision", default=None, help="quality and ablations: training precision")
    parser.add_argument("--values", nargs="+", default=None,
                        help="ablations: the values to compare (default: the option's own, published first)")
    parser.add_argument("--fixed", nargs="+", default=[], metavar="KEY=VALUE",
                        help="ablations: settings shared by every row, e.g. steps=16, seed=1, "
                             "init_from=<checkpoint> (a second stage that starts from trained weights), "
                             "data.n_train=2000000 or trainer.callbacks+=<callback class>")
    parser.add_argument("--checkpoints", nargs="+", default=[],
                        help="edges, streams: checkerboard checkpoints")
    parser.add_argument("--streams", nargs="+", type=int, default=[7, 8, 9, 10],
                        help="streams: the fresh sample sets (7 is the one the other parts use)")
    parser.add_argument("--budget", type=float, default=240.0, help="peer: training seconds per model")
    parser.add_argument("--runs_dir", default=None)
    args = parser.parse_args()
    runs_dir = args.runs_dir or tempfile.mkdtemp(prefix="ctdl-bench-")
    for part in args.parts:
        if part == "report":
            report("otflow", "OT-Flow benchmarks")
        elif part == "quality":
            part_quality(args.max_steps, runs_dir, args.toys, args.precision)
        elif part in ABLATIONS:
            values = args.values or ABLATIONS[part][1]
            fixed = dict(item.split("=", 1) for item in args.fixed)
            part_ablation(part, values, args.max_steps, runs_dir, args.precision, fixed)
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
