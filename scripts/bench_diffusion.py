"""Multilevel score-based diffusion benchmarks: what the FNO with a trace-class prior does
that the U-Net with white noise does not, on the shipped configs in configs/diffusion/.

resolution  `ctdl fit` of configs/diffusion/fashion_fno.yaml (FNO + Bessel prior, 14 then 28) and
            fashion_unet.yaml (U-Net + white noise, 28), each at most --max-steps / --max-minutes;
            the best val/loss checkpoint draws --samples samples at 28 and at 56, the 56 ones restricted
            to 28 by `ctdl.diffusion.resample`, scored by `MultilevelDiffusion.sample_quality` against
            the test split (classifier Frechet distance and energy MMD, each with its floor); the 56/28
            ratio per model (target: FNO within 1.5x, U-Net not), the training time, and the val/loss
            curve over steps (still_improving: the last validation is the best so far).
multilevel  fashion_fno.yaml twice in one process, the same steps and seed: coarse-to-fine (14 then 28,
            --switch-step) and fine-only (28 throughout); validation (at 28) every --val-every steps;
            training seconds to first reach the same 28-grid val/loss (the worse of the two runs' best
            val/loss, or --threshold), as the ratio multilevel / fine-only (target <= 0.6).
gaussian    `ctdl fit` of configs/diffusion/gaussian_fields.yaml (FNO trained 16 then 32); KL and W2 of the
            Gaussian fit of --samples samples (default 10^4) at 32 and at 64 against the exact field
            covariance, next to the floor of as many exact draws (`field_covariance_distances`).
grid        the paper's figure, rows U-Net and FNO, columns white and trace-class (Bessel) noise, samples at
            28 and 56 (docs/figures/diffusion_grid.png): the resolution part's two models and the two
            off-diagonal ones (FNO + white, U-Net + Bessel) trained here and scored as in `resolution`
            (--reuse: the off-diagonal models of an earlier grid run, figure only).
throughput  training images per second (median over steps after warm-up, per training grid) and the
            seconds for 64 samples at 56 with 200 reverse steps, FNO (fashion_fno.yaml) and U-Net
            (fashion_unet.yaml), on the accelerator given (the JSON's env.cuda says whether a GPU was there).
calibration no model: the Frechet distance and energy MMD of degraded validation images (blurred,
            noised, half the classes) and of the two priors' noise, against the same floors, so that
            "2x the floor" has a meaning.
report      benchmarks/diffusion.md from the JSON files (every part also rewrites it).

    python scripts/bench_diffusion.py resolution --max-steps 8000 --max-minutes 50 --samples 500
    python scripts/bench_diffusion.py multilevel --max-steps 4000 --val-every 250
    python scripts/bench_diffusion.py gaussian --samples 1000
    python scripts/bench_diffusion.py grid --max-minutes 7 --samples 128      # after resolution
    python scripts/bench_diffusion.py grid --reuse                            # the figure from those models
    python scripts/bench_diffusion.py throughput
    python scripts/bench_diffusion.py calibration
    python scripts/bench_diffusion.py report

Runs go to runs/bench_diffusion/<label>/ (config, checkpoints, metrics.csv, figures; --runs-dir puts them
elsewhere); `ctdl fit` options for every model of a part come last after --override. CTDL_BENCH_OUT puts
the JSON, the report and the grid figure elsewhere (a smoke test: --max-steps 10 --samples 20).
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

import harness
import torch
from torch import Tensor

ROOT = harness.ROOT
CONFIGS = ROOT / "configs" / "diffusion"
FNO, UNET, FIELDS = (
    str(CONFIGS / f"{name}.yaml") for name in ("fashion_fno", "fashion_unet", "gaussian_fields")
)
TASK, TITLE = "diffusion", "Multilevel score-based diffusion"


def budget(max_steps: int | None, max_minutes: float | None, val_every: int | None) -> list[str]:
    """`ctdl fit` overrides for a step and time budget (Lightning's max_time, DD:HH:MM:SS) and the
    validation interval (at most the steps, so that a short run still validates and checkpoints)."""
    out = []
    if max_steps is not None:
        out += ["--trainer.max_steps", str(max_steps)]
    if max_minutes is not None:
        seconds = max(1, round(60 * max_minutes))
        hours, minutes = seconds // 3600, seconds % 3600 // 60
        out += ["--trainer.max_time", f"00:{hours:02d}:{minutes:02d}:{seconds % 60:02d}"]
    if val_every is None and max_steps is not None and max_steps < 500:
        val_every = max_steps
    if val_every is not None:
        out += ["--trainer.val_check_interval", str(val_every)]
    return out


def fit(config: str, label: str, overrides: list[str], args, callbacks: list = ()) -> harness.Run:
    """`harness.fit` of a shipped config in --runs-dir with the budget overrides, then --override."""
    return harness.fit(
        config, label, [*overrides, *args.override], runs_dir=args.runs_dir, callbacks=callbacks
    )


VALIDATION_KEYS = ("step", "train_s", "wall_s", "val_loss")


def validations(run: harness.Run) -> list[dict]:
    """The run's validations (step, train_s, wall_s, val_loss) that logged val/loss."""
    return [
        {k: v for k, v in {**v, "val_loss": round(v["val_loss"], 5)}.items() if k in VALIDATION_KEYS}
        for v in run.validations
        if "val_loss" in v
    ]


def trained(run: harness.Run):
    """The run's best checkpoint as an eval-mode model on the CPU (EMA weights, as validated)."""
    from ctdl.models import MultilevelDiffusion

    if run.checkpoint is None:
        raise SystemExit(f"the run in {run.run_dir} wrote no checkpoint")
    return MultilevelDiffusion.load_from_checkpoint(run.checkpoint, map_location="cpu").eval()


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 4) if a is not None and b else None


def scored(run: harness.Run, label: str, network: str, prior: str, args) -> dict:
    """A trained run's row: `sample_quality` of --samples samples at 28 and at 56 (restricted to 28)
    from its best val/loss checkpoint, the 56/28 ratios, the training time and the val/loss curve."""
    model, data = trained(run), run.cli.datamodule
    t0 = time.perf_counter()
    q = model.sample_quality(
        data,
        n=args.samples,
        resolutions=[28, 56],
        steps=args.sample_steps,
        seed=0,
        batch_size=args.sample_batch,
    )
    sample_s = time.perf_counter() - t0
    vals = validations(run)
    best = min((v["val_loss"] for v in vals), default=None)
    return {
        "model": label,
        "network": network,
        "prior": prior,
        "steps": run.steps,
        "train_s": round(run.train_s, 1),
        "fit_wall_s": round(run.wall_s, 1),
        "best_val_loss": best,
        "fid_28": round(q["fid_classifier"], 3),
        "fid_56": round(q["fid_classifier_56"], 3),
        "fid_ratio_56_28": ratio(q["fid_classifier_56"], q["fid_classifier"]),
        "fid_floor": round(q["fid_floor"], 3),
        "mmd_28": round(q["energy_mmd"], 5),
        "mmd_56": round(q["energy_mmd_56"], 5),
        "mmd_ratio_56_28": ratio(q["energy_mmd_56"], q["energy_mmd"]),
        "mmd_floor": round(q["energy_mmd_floor"], 5),
        "within_1.5x": bool(
            max(q["fid_classifier_56"] / q["fid_classifier"], q["energy_mmd_56"] / q["energy_mmd"]) <= 1.5
        ),
        "still_improving": bool(len(vals) >= 2 and vals[-1]["val_loss"] <= best),
        "sample_s": round(sample_s, 1),
        "run_dir": run.run_dir,
        "checkpoint": run.checkpoint,
        "curve": vals,
    }


RESOLUTION_MODELS = {
    "fno_bessel": (FNO, "FNO + position", "bessel (trace class)"),
    "unet_white": (UNET, "U-Net", "white"),
}


def part_resolution(args) -> None:
    """Trains and scores the models of --models; the rows of the other models are kept from the
    earlier record (marked trained_here False, with the setup they were made under)."""
    rows = []
    overrides = budget(args.max_steps, args.max_minutes, args.val_every)
    budget_text = " ".join(overrides + args.override) or "none: the configs' max_steps"
    for label in args.models:
        config, network, prior = RESOLUTION_MODELS[label]
        run = fit(config, f"resolution_{label}", overrides, args)
        rows.append({**scored(run, label, network, prior, args), "trained_here": True})
    curve = [{"model": row["model"], **v} for row in rows for v in row.pop("curve")]
    path = harness.result_path(TASK, "resolution")
    if path.is_file():
        earlier = json.loads(path.read_text())
        for row in earlier["rows"]:
            if row["model"] not in args.models:
                rows.append({**row, "trained_here": False, "earlier_setup": earlier["setup"]})
                curve += [v for v in earlier.get("runs", []) if v.get("model") == row["model"]]
    harness.save(
        TASK,
        "resolution",
        {
            "target": "FNO + trace-class prior keeps its 56 score within 1.5x of its 28 "
            "score (both the Frechet "
            "distance and the energy MMD); U-Net + white noise does not",
            "setup": f"`ctdl fit` of the configs of {', '.join(args.models)} "
            "(fno_bessel: fashion_fno.yaml, unet_white: fashion_unet.yaml) at 28 "
            f"(overrides: {budget_text}); "
            "the best val/loss checkpoint (EMA weights) draws "
            f"{args.samples} samples with {args.sample_steps} reverse Euler-Maruyama steps at 28 and "
            "at 56 (seed 0); 56 samples are restricted to 28 by `resample` (Fourier restriction) and "
            "scored against the first n test images: fid = Frechet distance on the project's classifier "
            "features (trained on the training split; floor = n test images), mmd = energy distance "
            "(floor = n validation images); ratio = 56 score / 28 score; within_1.5x: both ratios "
            "<= 1.5. "
            "train_s: seconds inside training batches; the `runs` table is the val/loss curve "
            "(still_improving: the last validation is the best so far, so more training would help)",
            "rows": rows,
            "runs": curve,
        },
    )


MULTILEVEL_NETWORK = '{"width": 32, "modes": 7, "layers": 4, "time_dim": 64, "position_frequencies": 3}'


def first_reach(vals: list[dict], threshold: float) -> dict | None:
    return next((v for v in vals if v["val_loss"] <= threshold), None)


def part_multilevel(args) -> None:
    max_steps = args.max_steps or 4000
    switch = args.switch_step or (1500 if max_steps > 1500 else max(1, max_steps * 3 // 8))
    common = budget(max_steps, args.max_minutes, args.val_every or min(250, max_steps))
    common += ["--model.network_args", MULTILEVEL_NETWORK]  # both runs: the same network, 14 holds 7 modes
    runs = {}
    for label, extra in (
        ("multilevel", ["--model.resolutions", "[14, 28]", "--model.schedule_steps", f"[{switch}]"]),
        ("fine_only", ["--model.resolutions", "null", "--model.schedule_steps", "null"]),
    ):
        runs[label] = fit(FNO, f"multilevel_{label}", common + extra, args)
    vals = {label: validations(run) for label, run in runs.items()}
    if not all(vals.values()):
        raise SystemExit("a run finished without a validation; give more steps or a smaller --val-every")
    bests = {label: min(v["val_loss"] for v in vs) for label, vs in vals.items()}
    threshold = args.threshold if args.threshold is not None else max(bests.values())
    rows, reached = [], {}
    for label, run in runs.items():
        hit = first_reach(vals[label], threshold)
        reached[label] = hit
        grids = f"14 -> 28 at step {switch}" if label == "multilevel" else "28"
        rows.append(
            {
                "run": label,
                "resolutions": grids,
                "steps": run.steps,
                "train_s": round(run.train_s, 1),
                "fit_wall_s": round(run.wall_s, 1),
                "best_val_loss": bests[label],
                "final_val_loss": vals[label][-1]["val_loss"],
                "threshold": threshold,
                "reached_at_step": hit["step"] if hit else None,
                "train_s_to_threshold": hit["train_s"] if hit else None,
                "wall_s_to_threshold": hit["wall_s"] if hit else None,
                "run_dir": run.run_dir,
            }
        )
    ml, fine = reached["multilevel"], reached["fine_only"]
    summary = [
        {
            "ratio_train_s": ratio(ml and ml["train_s"], fine and fine["train_s"]),
            "ratio_wall_s": ratio(ml and ml["wall_s"], fine and fine["wall_s"]),
            "threshold": threshold,
            "target_met": bool(ml and fine and ml["train_s"] <= 0.6 * fine["train_s"]),
        }
    ]
    options = " ".join(common + args.override)
    how = (
        "fixed by --threshold"
        if args.threshold is not None
        else "the worse of the two runs' best val/loss, so that both runs reach it"
    )
    harness.save(
        TASK,
        "multilevel",
        {
            "target": "multilevel (coarse then fine) reaches the fine-only run's 28-grid validation loss in "
            "<= 0.6 of the time: ratio <= 0.6",
            "setup": f"one process, fashion_fno.yaml twice with seed 0 and {options}: multilevel "
            f"trains at 14 until step {switch}, then at 28 (--model.schedule_steps [{switch}]); "
            "fine-only trains at 28 throughout (--model.resolutions null); both validate at 28 (DSM "
            "loss, 20 batches, EMA weights, noise seeded per batch). "
            f"Threshold = {threshold:.5f}, {how}. Time to it = training seconds (inside "
            "training batches; validation and figures excluded) at the first validation with val/loss "
            "<= threshold (resolution: one validation interval); ratio_train_s = multilevel / "
            "fine-only, ratio_wall_s the same with the wall clock of the fit (validations included). "
            "The seconds carry the noise of whatever else ran on the machine",
            "summary": summary,
            "rows": rows,
            "runs": [{"run": label, **v} for label, vs in vals.items() for v in vs],
        },
    )


def part_gaussian(args) -> None:
    overrides = budget(args.max_steps, args.max_minutes, args.val_every)
    run = fit(FIELDS, "gaussian_fields", overrides, args)
    model, data = trained(run), run.cli.datamodule
    rows = []
    for grid in (32, 64):
        t0 = time.perf_counter()
        q = model.sample_quality(
            data,
            n=args.samples,
            resolutions=[grid],
            steps=args.sample_steps,
            seed=0,
            batch_size=args.sample_batch,
        )
        suffix = "" if grid == 32 else "_64"
        rows.append(
            {
                "grid": grid,
                "samples": args.samples,
                "cov_kl": round(q[f"cov_kl{suffix}"], 3),
                "cov_kl_floor": round(q[f"cov_kl_floor{suffix}"], 3),
                "kl_over_floor": ratio(q[f"cov_kl{suffix}"], q[f"cov_kl_floor{suffix}"]),
                "cov_w2": round(q[f"cov_w2{suffix}"], 5),
                "cov_w2_floor": round(q[f"cov_w2_floor{suffix}"], 5),
                "w2_over_floor": ratio(q[f"cov_w2{suffix}"], q[f"cov_w2_floor{suffix}"]),
                "sample_s": round(time.perf_counter() - t0, 1),
            }
        )
    vals = validations(run)
    best = min((v["val_loss"] for v in vals), default=float("nan"))
    harness.save(
        TASK,
        "gaussian",
        {
            "target": "covariance error of 10^4 samples at 32 and at 64 from a model trained "
            "at 32, against the "
            "floor of as many exact draws",
            "setup": "`ctdl fit` of gaussian_fields.yaml (FNO, Bessel noise prior, 16 then "
            f"32; {run.steps} "
            f"steps, {run.train_s:.0f} s of training, best val/loss {best:.5f}), best val/loss "
            "checkpoint; "
            f"{args.samples} samples with {args.sample_steps} reverse Euler-Maruyama steps at each grid "
            "(seed 0); cov_kl = KL(N(m, S) || N(0, Sigma_h)) in nats over the r^2 grid values, cov_w2 = "
            "W2 in the L2 norm of the torus, both against the exact covariance at the samples' own grid "
            "(`field_covariance_distances`, shrinkage 0.01 only when n <= r^2); floor = the same for "
            "n exact draws (seed 1)",
            "rows": rows,
            "runs": [{"run": "gaussian_fields", **v} for v in vals],
        },
    )


WHITE_28 = '{"scale": 0.0012755102040816326}'  # 1 / 28^2: grid white noise N(0, I) at 28
BESSEL = '{"scale": 40.0, "s": 40.0, "p": 1.5}'  # fashion_fno.yaml's trace-class prior
COLUMNS = {"white": "white noise", "bessel": "Bessel prior (trace class)"}
GRID_FIGURE = ROOT / "docs" / "figures" / "diffusion_grid.png"  # next to the JSON under CTDL_BENCH_OUT


def resolution_checkpoint(row: dict) -> str:
    """The best val/loss checkpoint of a `resolution` row."""
    if row.get("checkpoint"):
        return row["checkpoint"]
    best = sorted(Path(row["run_dir"], "checkpoints").glob("best-*.ckpt"))
    if not best:
        raise SystemExit(f"no best-*.ckpt in {row['run_dir']}/checkpoints; run the resolution part first")
    return str(best[-1])


def part_grid(args) -> None:
    from ctdl.callbacks.diffusion_figure import sample_grid_figure
    from ctdl.models import MultilevelDiffusion

    overrides = budget(args.max_steps, args.max_minutes, args.val_every)
    rows = []
    models = {network: dict.fromkeys(COLUMNS.values()) for network in ("U-Net", "FNO")}  # rows x columns
    for label, config, network, prior, prior_args in (
        ("fno_white", FNO, "FNO", "white", WHITE_28),
        ("unet_bessel", UNET, "U-Net", "bessel", BESSEL),
    ):
        earlier = sorted(Path(args.runs_dir, f"grid_{label}").glob("version_*/checkpoints/best-*.ckpt"))
        if args.reuse and earlier:  # figure only: the model of an earlier grid run, not scored again
            rows.append(
                {
                    "model": label,
                    "network": network,
                    "prior": prior,
                    "checkpoint": str(earlier[-1]),
                    "reused": True,
                    "curve": [],
                }
            )
            models[network][COLUMNS[prior]] = MultilevelDiffusion.load_from_checkpoint(
                earlier[-1], map_location="cpu"
            ).eval()
            continue
        prior_override = ["--model.prior", prior, "--model.prior_args", prior_args]
        run = fit(config, f"grid_{label}", overrides + prior_override, args)
        row = scored(run, label, network, prior, args)
        rows.append(row)
        models[network][COLUMNS[prior]] = trained(run)
    path = harness.result_path(TASK, "resolution")  # read after training: the parts may overlap
    if not path.is_file():
        raise SystemExit(f"{path} is missing: the grid reuses the resolution part's two models, run it first")
    diagonal = {row["model"]: row for row in json.loads(path.read_text())["rows"]}
    for label, network, prior in (("unet_white", "U-Net", "white"), ("fno_bessel", "FNO", "bessel")):
        models[network][COLUMNS[prior]] = MultilevelDiffusion.load_from_checkpoint(
            resolution_checkpoint(diagonal[label]), map_location="cpu"
        ).eval()
    curve = [{"model": row["model"], **v} for row in rows for v in row.pop("curve")]
    default_out = harness.OUT.resolve() == (ROOT / "benchmarks").resolve()
    figure = GRID_FIGURE if default_out else harness.OUT / GRID_FIGURE.name
    t0 = time.perf_counter()
    sample_grid_figure(
        models,
        resolution=28,
        n_samples=6,
        steps=args.sample_steps,
        seed=0,
        value_range=(-1.0, 1.0),
        path=figure,
        title=f"Fashion-MNIST trained at 28: samples at 28 (upper) and 56 (lower), {args.sample_steps} steps",
    )
    figure_s = time.perf_counter() - t0
    budget_text = " ".join(overrides + args.override) or "none: the configs' max_steps"
    harness.save(
        TASK,
        "grid",
        {
            "target": "the paper's figure (rows U-Net and FNO, columns white and trace-class noise, samples "
            "at 28 and 56) and the scores of the two off-diagonal models: which of network and prior "
            "keeps the 56 score near the 28 score",
            "setup": f"the resolution part's FNO + Bessel and U-Net + white checkpoints, and two models "
            f"trained here: fashion_fno.yaml with --model.prior white (scale 1/784), "
            f"fashion_unet.yaml with --model.prior bessel (fashion_fno.yaml's prior); overrides: "
            f"{budget_text}; scores as in the resolution part ({args.samples} samples, "
            f"{args.sample_steps} steps). Figure: {figure.name} ({figure_s:.0f} s)",
            "rows": rows,
            "runs": curve,
        },
    )


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Images (n, C, r, r) convolved with a Gaussian of `sigma` pixels (edges replicated)."""
    radius = max(1, round(3 * sigma))
    k = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=x.dtype) / sigma) ** 2)
    k = (k / k.sum()).to(x.device)
    c = x.shape[1]
    x = torch.nn.functional.pad(x, (radius,) * 4, mode="replicate")
    x = torch.nn.functional.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return torch.nn.functional.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def part_calibration(args) -> None:
    """What the two metrics read with no model: degraded validation images and the priors' noise,
    scored by the same `sample_quality` as a model's samples (so against the same floors)."""
    from ctdl.datamodules import DiffusionImages
    from ctdl.diffusion import make_prior
    from ctdl.diffusion.evaluate import sample_quality

    data = DiffusionImages("fashion_mnist", resolution=28, n_val=5000, seed=0, data_dir=args.data_dir)
    data.prepare_data()
    data.setup("fit")
    val_x, val_y = data.labelled_images("val")
    gen = torch.Generator().manual_seed(0)
    n = args.samples
    x = val_x[:n]
    conditions = {
        "validation images (the floor's twin)": ("data", x),
        "blurred, sigma 0.5 px": ("degraded data", gaussian_blur(x, 0.5)),
        "blurred, sigma 1 px": ("degraded data", gaussian_blur(x, 1.0)),
        "noised, std 0.1": ("degraded data", x + 0.1 * torch.randn(x.shape, generator=gen)),
        "noised, std 0.3": ("degraded data", x + 0.3 * torch.randn(x.shape, generator=gen)),
        "classes 0-4 only": ("degraded data", val_x[val_y < 5][:n]),
        "Bessel prior noise (fashion_fno.yaml)": (
            "trivial",
            make_prior("bessel", **json.loads(BESSEL)).sample(n, 28, generator=gen),
        ),
        "white noise N(0, I) (fashion_unet.yaml)": (
            "trivial",
            make_prior("white", **json.loads(WHITE_28)).sample(n, 28, generator=gen),
        ),
    }
    rows = []
    for label, (kind, images) in conditions.items():
        q = sample_quality(lambda m, r, g, images=images: images[:m], data, n=n, grids=[28], data_grid=28)
        rows.append(
            {
                "condition": label,
                "kind": kind,
                "n": len(images),
                "fid": round(q["fid_classifier"], 3),
                "fid_over_floor": ratio(q["fid_classifier"], q["fid_floor"]),
                "fid_floor": round(q["fid_floor"], 3),
                "mmd": round(q["energy_mmd"], 5),
                "mmd_over_floor": ratio(q["energy_mmd"], q["energy_mmd_floor"]),
                "mmd_floor": round(q["energy_mmd_floor"], 5),
            }
        )
        print(rows[-1], flush=True)
    harness.save(
        TASK,
        "calibration",
        {
            "target": "what 2x the floor means: the Frechet distance and the energy MMD of degraded "
            "Fashion-MNIST images and of the priors' own noise (what a useless generator scores)",
            "setup": f"n = {n} images per condition (the first validation images of DiffusionImages, "
            "seed 0; classes 0-4: the first n validation images with label < 5), scored by "
            "`ctdl.diffusion.evaluate.sample_quality` as the `resolution` part scores samples: fid = "
            "Frechet distance on the project's classifier features against the training split "
            "(floor = the first n test images), mmd = energy distance to the first n test images "
            "(floor = the first n validation images, so its first row is the floor itself); blur: a "
            "separable Gaussian kernel; noise: N(0, std^2) per pixel (images in [-1, 1]); prior noise: "
            "draws of N(0, C) at 28, where the reverse sampler starts",
            "rows": rows,
        },
    )


def part_throughput(args) -> None:
    steps = args.max_steps or 40
    warmup = min(5, steps // 4)
    gpu = args.accelerator != "cpu"
    rows = []
    for label, config, extra in (
        ("fno", FNO, ["--model.schedule_steps", f"[{steps // 2}]"]),  # half the steps at 14, half at 28
        ("unet", UNET, []),
    ):
        overrides = [
            "--trainer.max_steps",
            str(steps),
            "--trainer.limit_val_batches",
            "0",
            "--trainer.num_sanity_val_steps",
            "0",
            "--checkpoint.monitor",
            "null",
            "--trainer.accelerator",
            args.accelerator,
            *extra,
        ]
        if gpu:
            overrides += ["--trainer.precision", "bf16-mixed"]
        clock = harness.train_clock()  # its (step after the batch, seconds) of every training batch
        run = fit(config, f"throughput_{label}", overrides, args, callbacks=[clock])
        model, size = run.cli.model, run.cli.datamodule.batch_size
        batches = [  # (training grid, batch size, seconds)
            (model.resolution_at(step - 1) or model.hparams.input_shape[-1], size, seconds)
            for step, seconds in clock.batches
        ]
        for grid in sorted({g for g, _, _ in batches}):
            times = [
                (b, s)
                for i, (g, b, s) in enumerate(batches)
                if g == grid and i >= warmup and (i == 0 or batches[i - 1][0] == g)
            ]  # skip warm-up and the first step on a new grid
            if not times:
                continue
            median = statistics.median(s for _, s in times)
            rows.append(
                {
                    "network": label,
                    "task": f"training at {grid}",
                    "batch": times[0][0],
                    "steps_timed": len(times),
                    "s_per_step": round(median, 4),
                    "images_per_s": round(times[0][0] / median, 1),
                }
            )
        model = model.eval()
        device = next(model.parameters()).device
        gen = torch.Generator(device=device).manual_seed(0)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=gpu):
            model.sample(2, 56, steps=2, generator=gen)  # warm-up
            if gpu:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            model.sample(64, 56, steps=args.sample_steps, generator=gen)
            if gpu:
                torch.cuda.synchronize()
        rows.append(
            {
                "network": label,
                "task": f"64 samples at 56, {args.sample_steps} steps",
                "seconds": round(time.perf_counter() - t0, 2),
            }
        )
    env = harness.environment()
    harness.save(
        TASK,
        "throughput",
        {
            "target": "training images per second; seconds for 64 samples at 56 with 200 "
            "steps; on a GPU with "
            "bf16-mixed if one is lent",
            "setup": f"`ctdl fit` of fashion_fno.yaml (14 for the first {steps // 2} steps, then 28) and "
            f"fashion_unet.yaml (28) for {steps} steps, no validation, accelerator {args.accelerator}"
            f"{', bf16-mixed' if gpu else ', float32'}; images_per_s = batch / median seconds per step "
            f"(forward, backward, AdamW, EMA; the first {warmup} steps and the first step on a new grid "
            "left out); sampling: reverse Euler-Maruyama with the trained-for-a-few-steps weights (the "
            "cost does not depend on them). "
            + (
                "GPU: none was lent to this run (env.cuda is None), so the GPU / bf16-mixed rows are not "
                "measured"
                if env["cuda"] is None
                else f"GPU present: {env['cuda']}"
            ),
            "rows": rows,
        },
    )


PARTS = {
    "resolution": "FNO + Bessel and U-Net + white at 28, scored at 28 and at 56",
    "multilevel": "coarse-to-fine against fine-only: seconds to the same val/loss",
    "gaussian": "covariance KL and W2 of samples at 32 and 64 against the exact Gaussian field",
    "grid": "the paper's figure: U-Net and FNO against white and trace-class noise",
    "throughput": "training images per second and seconds for 64 samples at 56",
    "calibration": "the metrics on degraded images and on the priors' noise (no model)",
    "report": "benchmarks/diffusion.md from the JSON files",
}


def add_training_options(p, max_steps: str, samples: int | None, sample_steps: int | None) -> None:
    """The budget and sampling options of a part that trains."""
    p.add_argument("--max-steps", type=int, help=f"training steps per model (default: {max_steps})")
    p.add_argument("--max-minutes", type=float, help="a wall-clock cap per model (Lightning max_time)")
    p.add_argument("--val-every", type=int, help="validate every this many steps (default: the config's)")
    if samples is not None:
        p.add_argument("--samples", type=int, default=samples, help=f"samples per grid (default {samples})")
    if sample_steps is not None:
        p.add_argument(
            "--sample-steps",
            type=int,
            default=sample_steps,
            help=f"reverse-time Euler-Maruyama steps (default {sample_steps})",
        )
    if samples is not None:
        p.add_argument("--sample-batch", type=int, default=500, help="samples drawn at a time")
    p.add_argument("--threads", type=int, help="torch.set_num_threads (default: the environment's)")


def main() -> None:
    parser, parts = harness.parser(__doc__, PARTS)
    add_training_options(parts["resolution"], "the configs'", samples=500, sample_steps=100)
    parts["resolution"].add_argument(
        "--models",
        nargs="+",
        choices=list(RESOLUTION_MODELS),
        default=list(RESOLUTION_MODELS),
        help="the models to train and score (default both; the others keep their earlier rows)",
    )
    add_training_options(parts["multilevel"], "4000", samples=None, sample_steps=None)
    parts["multilevel"].add_argument(
        "--switch-step",
        type=int,
        help="the step that moves from 14 to 28 (default 1500, the config's, or 3/8 of --max-steps when "
        "that is smaller)",
    )
    parts["multilevel"].add_argument(
        "--threshold", type=float, help="a fixed val/loss to reach (default: the worse of the two runs' best)"
    )
    add_training_options(parts["gaussian"], "the config's", samples=10_000, sample_steps=100)
    add_training_options(parts["grid"], "the configs'", samples=500, sample_steps=100)
    parts["grid"].add_argument(
        "--reuse",
        action="store_true",
        help="take the off-diagonal models of an earlier grid run from --runs-dir instead of training "
        "them (figure only, no scores)",
    )
    parts["calibration"].add_argument("--samples", type=int, default=500, help="images per condition")
    parts["calibration"].add_argument(
        "--data-dir", help="the Fashion-MNIST IDX files (default: the datamodule's)"
    )
    add_training_options(parts["throughput"], "40", samples=None, sample_steps=200)
    parts["throughput"].add_argument("--accelerator", default="cpu", help="cpu or gpu (gpu adds bf16-mixed)")
    for name, p in parts.items():
        if name not in ("report", "calibration"):
            harness.add_run_options(p, label=False)  # --runs-dir and --override, last
    args = parser.parse_args()
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    if args.part not in ("report", "calibration"):
        args.runs_dir = (args.runs_dir or ROOT / "runs" / "bench_diffusion").resolve()
    os.chdir(ROOT)  # the classifier cache (data/cache) and data paths are relative to the repository
    if args.part != "report":
        globals()[f"part_{args.part}"](args)
    harness.report(TASK, TITLE)


if __name__ == "__main__":
    main()
