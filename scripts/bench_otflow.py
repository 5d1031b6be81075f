"""Quality benchmarks of OT-Flow (density estimation): results go to benchmarks/otflow_<part>.json
and benchmarks/otflow.md. Speed (trace, speed, peer): scripts/bench_otflow_speed.py.

    python scripts/bench_otflow.py quality --toys 8gaussians                # a config as shipped
    python scripts/bench_otflow.py alpha_C --values 3000 --fixed steps=16 init_from=<ckpt> --max-steps 6000
    python scripts/bench_otflow.py streams --checkpoints <ckpt> ... --streams 7 8 9 10
    python scripts/bench_otflow.py report

quality   toy configs trained through the CLI; E[-log p_model] - E[-log p_true] (a KL divergence)
          on 100k fresh samples, training time, inversion error (evaluation is float64)
clamp, width, depth, steps, alpha_C, seed
          checkerboard at equal iterations with one setting at each of --values
widen     a checkpoint's potential made wider without changing its flow, for a width row that
          starts from it (--fixed init_from=TARGET)
edges     where the checkerboard's gap is made: split by distance to the squares' edges
streams   the same checkpoints' gaps on independent 100k fresh sets
sampling  samples per second in 2-D and 43-D

A quality or ablation run replaces only the stored rows with the same data, settings, iteration
count and training precision; an edges or streams run only those of the same checkpoint.
"""

from __future__ import annotations

import statistics
import time

import harness
import torch

from ctdl.models import OTFlow
from ctdl.otflow.evaluate import (
    DECISION_STREAM,
    EDGE_BANDS,
    edge_bands,
    fresh_excess,
    fresh_log_prob,
    inverse_error,
)

TASK = "otflow"
FRESH = 100_000  # fresh samples per measured gap

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


# -------------------------------------------------------------------------------- helpers
def test_steps(model: OTFlow) -> int:
    """The RK4 steps the model is tested with."""
    return model.hparams.test_steps or model.hparams.eval_steps


def load_float64(path: str) -> OTFlow:
    return OTFlow.load_from_checkpoint(path, map_location="cpu").double().eval()


def training_curve(run_dir: str, every: int = 1000) -> dict:
    """val/nll at each validation and the mean train/nll over each `every` steps (train/nll below
    the true entropy with val/nll rising is the signature of the optimiser exploiting the coarse
    training discretisation)."""
    rows = harness.curve(run_dir, ["val/nll", "train/nll"])
    val = {r["step"] + 1: round(r["val/nll"], 4) for r in rows if "val/nll" in r}
    train: dict[int, list[float]] = {}
    for r in rows:
        if "train/nll" in r:
            train.setdefault((r["step"] // every + 1) * every, []).append(r["train/nll"])
    return {"val_nll": val, "train_nll_mean": {k: round(statistics.mean(v), 4) for k, v in train.items()}}


# -------------------------------------------------------------------------------- quality
def train_and_measure(name: str, args, overrides: list[str] = (), label: str | None = None) -> dict:
    """Train configs/otflow/<name>.yaml through the CLI (--max-steps and --precision override the
    config's unless left out, `overrides` are more CLI arguments), then measure the best
    checkpoint (by val/nll) in float64 with its test step count: the KL gap on fresh samples and
    the inversion error ||F^-1(F(x)) - x|| on 10k of them."""
    options = [
        *(["--trainer.max_steps", str(args.max_steps)] if args.max_steps else []),
        *(["--trainer.precision", args.precision] if args.precision else []),
        *overrides,
        *args.override,
    ]
    config = harness.ROOT / f"configs/otflow/{name}.yaml"
    run = harness.fit(config, label or f"otflow/{name}", options, args.runs_dir)
    best, data = load_float64(run.checkpoint), run.cli.datamodule
    steps = test_steps(best)
    fresh, log_p = fresh_log_prob(best.flow, data.name, steps=steps, seed=data.seed, n=args.fresh_samples)
    log_true = data.log_density(fresh).double() if data.has_log_density else None
    inv = inverse_error(best.flow, fresh[:10_000], steps=steps)
    nll_model = -log_p.mean().item()
    nll_true = None if log_true is None else -log_true.mean().item()
    row = {
        "data": name,
        "iterations": run.steps,
        "train_seconds": round(run.wall_s, 1),
        "train_s": round(run.train_s, 1),
        "train_precision": str(run.cli.trainer.precision),
        "clamp": best.hparams.clamp,
        "nll_model": round(nll_model, 4),
        "nll_true": None if nll_true is None else round(nll_true, 4),
        "gap_nats": None if nll_true is None else round(nll_model - nll_true, 4),
        "test_steps": best.hparams.test_steps,
        "inv_err_mean": float(f"{inv.mean().item():.2e}"),
        "inv_err_max": float(f"{inv.max().item():.2e}"),
        **({"overrides": " ".join(args.override)} if args.override else {}),
        "run_dir": run.run_dir,
        "checkpoint": run.checkpoint,
        "curve": training_curve(run.run_dir),
    }
    if data.name == "checkerboard":
        row["edge_bands"] = edge_bands(fresh, log_true - log_p)
    print({k: v for k, v in row.items() if k not in ("curve", "edge_bands")}, flush=True)
    return row


def part_quality(args) -> None:
    """The KL gap and the inversion error of each toy's config."""
    rows = [train_and_measure(name, args) for name in args.toys]
    harness.upsert(
        TASK,
        "quality",
        rows,
        ("data", "iterations", "train_precision"),
        setup="configs/otflow/<data>.yaml (width 32; train_precision: the training precision, the "
        "config's unless --precision overrides it), best checkpoint by val/nll, evaluated in "
        f"float64 with test_steps RK4 steps; gap on {args.fresh_samples} fresh samples; inversion error "
        "||F^-1(F(x)) - x|| on 10k",
        target="gap <= 0.05 nats; inversion error <= 1e-4",
    )


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


def part_ablation(args) -> None:
    """Checkerboard with the part's option at each of --values, each of --fixed set the same way
    and everything else as in its config, same iterations; rows go to
    benchmarks/otflow_<option>.json (earlier rows with other settings are kept)."""
    option = args.part
    values = args.values or ABLATIONS[option][1]
    fixed = dict(item.split("=", 1) for item in args.fixed)
    common = [a for key, v in fixed.items() for a in (cli_flag(key), v)]
    rows = [
        train_and_measure(
            "checkerboard", args, [*common, cli_flag(option), v], f"otflow/checkerboard_{option}"
        )
        for v in values
    ]
    for row, value in zip(rows, values, strict=True):
        row.update({key: option_value(key, v) for key, v in {**fixed, option: value}.items()})
    harness.upsert(
        TASK,
        option,
        rows,
        (option, *fixed, "iterations", "train_precision"),
        setup=f"configs/otflow/checkerboard.yaml with {cli_flag(option)} at each value (and the "
        "settings a row names), the iterations of each row (cosine lr over them); best "
        "checkpoint by val/nll measured in float64 as in the quality part",
        target=f"diagnostic (no target): {ABLATIONS[option][0]}",
    )


# ---------------------------------------------------------------------------- diagnostics
def part_edges(args) -> None:
    """Where the checkerboard's gap comes from: for each checkpoint, the gap on fresh samples
    (float64, the model's test steps) split by distance to the squares' edges."""
    rows = []
    for path in args.checkpoints:
        model = load_float64(path)
        fresh, excess = fresh_excess(
            model.flow, "checkerboard", steps=test_steps(model), n=args.fresh_samples
        )
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
    harness.upsert(
        TASK,
        "edges",
        rows,
        key="checkpoint",
        setup=f"checkerboard checkpoints given by --checkpoints; {args.fresh_samples} fresh samples "
        f"(stream {DECISION_STREAM}, as in the quality part), float64, test_steps RK4 steps; bands by "
        "distance to the nearest square edge",
        target="diagnostic (no target): is the gap made at the edges or inside the squares?",
    )


def part_streams(args) -> None:
    """Each checkerboard checkpoint's gap on several independent fresh sets (--streams), with each
    set's standard error. Stream 7 is the set the quality and ablation rows use, on which
    settings and checkpoints were chosen; the mean reported (gap_mean_unused) is over the other
    streams only, sets no choice was made on."""
    rows, n = [], args.fresh_samples
    for path in args.checkpoints:
        model = load_float64(path)
        gaps = {}
        for stream in args.streams:
            _, excess = fresh_excess(model.flow, "checkerboard", steps=test_steps(model), stream=stream, n=n)
            gaps[stream] = (excess.mean().item(), excess.std().item() / len(excess) ** 0.5)
        unused = [g for k, g in gaps.items() if k != DECISION_STREAM]
        row = {
            "checkpoint": path,
            **{f"gap_stream_{k}": round(g, 4) for k, (g, _) in gaps.items()},
            "standard_error": round(max(se for _, se in gaps.values()), 4),
        }
        if unused:
            mean_se = sum(se**2 for _, se in unused) ** 0.5 / len(unused)
            row.update(
                {
                    "gap_mean_unused": round(sum(g for g, _ in unused) / len(unused), 4),
                    "mean_standard_error": round(mean_se, 4),
                    "unused_samples": n * len(unused),
                }
            )
        rows.append(row)
        print(row, flush=True)
    harness.upsert(
        TASK,
        "streams",
        rows,
        key="checkpoint",
        setup="checkerboard checkpoints given by --checkpoints, each measured as in the quality part "
        f"(float64, test_steps RK4 steps) on {n} fresh samples of each stream given by --streams "
        "(fresh_points: child stream 3 + stream of SeedSequence(0), independent of the training "
        f"data); stream {DECISION_STREAM} is the set the quality and ablation rows use, on which "
        "choices were made, so gap_mean_unused and mean_standard_error are over the other streams",
        target="diagnostic: is a gap near 0.05 nats below it on sets no choice was made on?",
    )


def part_widen(args) -> None:
    """Write an OTFlow checkpoint whose potential is the one at --checkpoint widened to --width
    units (the same flow, `Potential.widened`), for `--fixed init_from=<out>` with `width`."""
    import lightning

    model = OTFlow.load_from_checkpoint(args.checkpoint, map_location="cpu")
    wide = model.potential.widened(args.width)
    x = torch.randn(256, model.hparams.dim, dtype=wide.A.dtype, generator=torch.Generator().manual_seed(0))
    before, after = model.potential.grad_laplacian(x, 0.5), wide.grad_laplacian(x, 0.5)
    error = max((a - b).abs().max().item() for a, b in zip(before, after, strict=True))
    model.flow.potential = wide
    model.hparams.width = args.width
    torch.save(
        {
            "state_dict": model.state_dict(),
            "hyper_parameters": dict(model.hparams),
            "pytorch-lightning_version": lightning.__version__,
        },
        args.out,
    )
    print(
        f"{args.out}: width {args.width}, {sum(p.numel() for p in model.parameters())} parameters; "
        f"gradient and Laplacian differ from the source's by at most {error:.1e}"
    )


def part_sampling(args) -> None:
    """Seconds for model.sample(n) in 2-D (float64) and 43-D (float32), untrained weights."""
    rows = []
    for d, m, steps, dtype in ((2, 32, 32, torch.float64), (43, 256, 18, torch.float32)):
        torch.manual_seed(0)
        model = OTFlow(dim=d, width=m, eval_steps=steps).to(dtype)
        n = args.samples if d == 2 else args.samples // 5
        model.sample(1000)  # warm-up
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
    harness.save(
        TASK,
        "sampling",
        {"setup": "model.sample(n): z ~ N(0, I) integrated backwards with the gradient only", "rows": rows},
    )


# ------------------------------------------------------------------------------ arguments
PARTS = {
    "quality": "toy configs through the CLI: KL gap on fresh samples, inversion error",
    **{name: f"checkerboard with {cli_flag(name)} at each of --values" for name in ABLATIONS},
    "widen": "a checkpoint's potential made wider without changing its flow",
    "edges": "the checkerboard's gap split by distance to the squares' edges",
    "streams": "checkpoints' gaps on independent fresh sets",
    "sampling": "samples per second in 2-D and 43-D",
    "report": "benchmarks/otflow.md from every benchmarks/otflow_*.json",
}


def build_parser():
    main, parts = harness.parser(__doc__, PARTS)
    for name in ("quality", *ABLATIONS):
        p = parts[name]
        p.add_argument("--max-steps", type=int, default=None, help="iterations (default: the config's)")
        p.add_argument("--precision", default=None, help="training precision (default: the config's)")
    parts["quality"].add_argument(
        "--toys", nargs="+", default=["8gaussians", "checkerboard"], help="the toy configs"
    )
    for name in ABLATIONS:
        p = parts[name]
        p.add_argument("--values", nargs="+", default=None, help="default: the option's own, published first")
        p.add_argument(
            "--fixed",
            nargs="+",
            default=[],
            metavar="KEY=VALUE",
            help="settings shared by every row, recorded in it: steps=16, seed=1, init_from=<checkpoint> "
            "(a second stage that starts from trained weights), data.n_train=2000000 or "
            "trainer.callbacks+=<callback class>",
        )
    for name in ("quality", *ABLATIONS, "edges", "streams"):
        parts[name].add_argument(
            "--fresh-samples", type=int, default=FRESH, help=f"fresh samples per gap (default {FRESH})"
        )
    for name in ("edges", "streams"):
        parts[name].add_argument("--checkpoints", nargs="+", required=True, help="checkerboard checkpoints")
    parts["streams"].add_argument(
        "--streams",
        nargs="+",
        type=int,
        default=[DECISION_STREAM, 8, 9, 10],
        help=f"the fresh sample sets ({DECISION_STREAM}: the one the other parts use, left out of the mean)",
    )
    parts["widen"].add_argument("--checkpoint", required=True, help="the OTFlow checkpoint to widen")
    parts["widen"].add_argument("--width", type=int, required=True, help="the new width")
    parts["widen"].add_argument("--out", required=True, help="where to write the widened checkpoint")
    parts["sampling"].add_argument(
        "--samples", type=int, default=100_000, help="samples in 2-D (a fifth of them in 43-D)"
    )
    for name in ("quality", *ABLATIONS):
        harness.add_run_options(parts[name], label=False)
    return main


def main() -> None:
    args = build_parser().parse_args()
    if getattr(args, "runs_dir", None) is None:
        args.runs_dir = harness.RUNS / "bench_otflow"
    if args.part == "report":
        harness.report(TASK, "OT-Flow benchmarks")
    elif args.part in ABLATIONS:
        part_ablation(args)
    else:
        globals()[f"part_{args.part}"](args)


if __name__ == "__main__":
    main()
