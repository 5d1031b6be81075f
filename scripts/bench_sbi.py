"""Simulation-based inference benchmarks: ctdl's conditional OT-Flow against sbi's NPE and SMC-ABC,
and the Lotka-Volterra simulator's speed. Parts (subcommands):

sbibm    for each task and simulation budget: the same simulations (SBIBMTask, one seed) train
         ctdl (`ctdl fit` on configs/sbi/<task>.yaml: its step budget, stopped on a val/nll
         plateau) and sbi's NPE (`ctdl.sbi.baselines.npe`: SNPE with a neural spline flow, the
         sbi version sbibm installs); both are scored by C2ST (`ctdl.sbi.evaluate.reference_c2st`)
         against sbibm's reference posteriors of observations 1-10 (10,000 samples each). Writes
         benchmarks/sbi_sbibm.json; rows of other tasks and budgets are kept.
sequential  truncated sequential estimation (TSNPE; Deistler et al. 2022) of one sbibm observation at a
         time: --rounds rounds of --simulations / rounds simulations each; round 1 from the prior,
         each later round from the prior truncated to the last round's (1 - --epsilon) highest-
         probability region at the observation (`ctdl.sbi.TruncatedPrior`), each round a `ctdl fit`
         of the task's config on all pairs so far, warm-started from the last round's best
         checkpoint. C2ST of the last round against the reference posterior, beside the amortised
         ctdl and NPE rows of the same total budget (sbi_sbibm.json). Every simulation counts.
         Writes benchmarks/sbi_sequential.json.
lv       Lotka-Volterra at y*: a trained ctdl checkpoint (--checkpoint) against SMC-ABC's
         population (--abc, from the abc part): posterior means and standard deviations of log
         theta side by side, C2ST between the two sample sets, simulations and wall time of each;
         the time of 10,000 posterior samples (median of 3, with 1 and 2 threads), and of one more
         observation after training (ctdl) against SMC-ABC's time for one observation. Writes
         benchmarks/sbi_lv.json.
abc      SMC-ABC (`ctdl.sbi.baselines.smc_abc`) on the stochastic Lotka-Volterra model at y*: the
         reference posterior and its cost in simulations, with the settings of Wang et al. (2023)
         by default (2,000 particles, eps_0 = 10, eps_{k+1} = 0.85 eps_k, Euclidean distance on
         statistics z-scored with a prior set's mean and std, Gaussian perturbation in log theta
         with twice the weighted covariance, resampling at ESS < 0.5 N). It stops at --eps-final,
         --max-simulations or --max-rounds, whichever comes first. Every simulation is counted:
         the prior set, failed simulations (rejected) and a batch's surplus; proposals outside the
         prior are dropped without simulating and counted apart. Writes the final population to
         --out (log theta, (N, 4)) with <out stem>_theta.npy and <out stem>_weights.npy next to
         it, and the record to benchmarks/sbi_abc.json (a round the budget cut short is dropped:
         its simulations stay in `simulations`, `simulations_to_final_population` leaves them out).
sim      the vectorised exact simulator (`simulate_statistics`, all worker processes) against the
         plain-Python one-chain Gillespie loop (`simulate_reference`) on prior draws; the loop runs
         on a random subset of the same draws, half before and half after the vectorised run (a
         change in the machine's load hits both). Writes benchmarks/sbi_sim.json.
steps    one sbibm checkpoint (--checkpoint): for each number of RK4 steps, the seconds for 10,000
         posterior samples of one observation (1 and 2 threads), their pathwise difference to the
         same draws at twice the largest number of steps, and the NLL of fresh simulations.
         Writes benchmarks/sbi_steps.json.
report   benchmarks/sbi.md from the JSON files.

    python scripts/bench_sbi.py sbibm --tasks two_moons slcp --budgets 1000 10000
    python scripts/bench_sbi.py sequential --task two_moons --simulations 10000 --rounds 4 --observations 1
    python scripts/bench_sbi.py abc --max-simulations 5000000
    python scripts/bench_sbi.py lv --checkpoint runs/.../best.ckpt --abc data/abc/lotka_volterra_abc.npy
    python scripts/bench_sbi.py sim --n 50000 --n-reference 400
    python scripts/bench_sbi.py steps --checkpoint runs/bench_sbi/gaussian_linear_10000/.../best.ckpt
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch
from harness import ROOT, RUNS, add_run_options, fit, load, parser, report, save, table, test, upsert

TASK = "sbi"
TASKS = ["two_moons", "slcp", "gaussian_linear", "gaussian_mixture", "bernoulli_glm"]
ABC_OUT = ROOT / "data/abc/lotka_volterra_abc.npy"
PUBLISHED_NPE = {  # C2ST of NPE at 10^3 / 10^4 / 10^5 simulations (Lueckmann et al. 2021), quoted
    "two_moons": (0.725, 0.606, 0.542),
    "slcp": (0.975, 0.901, 0.831),
    "gaussian_linear": (0.694, 0.552, 0.506),
    "gaussian_mixture": (0.716, 0.615, 0.548),
    "bernoulli_glm": (0.863, 0.678, 0.559),
    "sir": (0.815, 0.680, 0.585),
}


# ------------------------------------------------------------------------------------- sbibm
def ctdl_run(task, budget, seed, max_minutes, runs_dir, observations, samples, overrides) -> dict:
    """`ctdl fit` then `ctdl test` on the shipped config; C2ST per observation and the fit time."""
    options = ["--data.num_simulations", str(budget), "--data.seed", str(seed)]
    if max_minutes:
        options += ["--trainer.max_time", f"00:00:{int(max_minutes):02d}:00"]
    if observations:
        options += ["--model.c2st_observations", str(observations)]
    if samples:
        options += ["--model.posterior_samples", str(samples)]
    config = ROOT / "configs" / TASK / f"{task}.yaml"
    run = fit(config, f"{task}_{budget}", [*options, *overrides], runs_dir)
    metrics = test(run)
    per_obs = [metrics[f"c2st_obs{i}"] for i in observations or range(1, 11)]
    return {
        "c2st": sum(per_obs) / len(per_obs),
        "per_obs": per_obs,
        "train_s": run.wall_s,
        "steps": run.steps,
    }


def npe_run(task, budget, seed, observations, samples) -> dict:
    """sbi's NPE on the simulations ctdl trains and validates on; C2ST per observation."""
    from ctdl.datamodules import SBIBMTask
    from ctdl.sbi.baselines import train_npe
    from ctdl.sbi.evaluate import reference_c2st

    data = SBIBMTask(task, num_simulations=budget, seed=seed)
    theta, y = data.simulate_budget()
    npe = train_npe(theta, y, data.task.get_prior_dist(), seed=seed)
    scores = reference_c2st(npe, data, observations, samples, seeded=False)  # sbi's own stream, in order
    per_obs = list(scores.values())
    return {
        "c2st": sum(per_obs) / len(per_obs),
        "per_obs": per_obs,
        "train_s": npe.train_s,
        "epochs": npe.epochs,
    }


def paired_difference(ours: list[float], theirs: list[float]) -> tuple[float, float]:
    """Mean over observations of ctdl's C2ST minus NPE's, and its paired standard error
    sd(d) / sqrt(n) (the same observations and reference samples score both)."""
    d = np.asarray(ours) - np.asarray(theirs)
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")


def part_sbibm(args) -> None:
    runs_dir = args.runs_dir or RUNS / "bench_sbi"
    for task in args.tasks:
        for budget in args.budgets:
            run = (task, budget, args.seed)
            ours = ctdl_run(*run, args.max_minutes, runs_dir, args.observations, args.samples, args.override)
            theirs = npe_run(*run, args.observations, args.samples)
            published = PUBLISHED_NPE.get(task)
            index = {1000: 0, 10_000: 1, 100_000: 2}.get(budget)
            diff, diff_se = paired_difference(ours["per_obs"], theirs["per_obs"])
            row = {
                "task": task,
                "simulations": budget,
                "ctdl_c2st": round(ours["c2st"], 4),
                "npe_c2st": round(theirs["c2st"], 4),
                "npe_c2st_published": f"{published[index]} (quoted)"
                if published and index is not None
                else "-",
                "ctdl_train_s": round(ours["train_s"], 1),
                "npe_train_s": round(theirs["train_s"], 1),
                "ctdl_steps": ours["steps"],
                "npe_epochs": theirs["epochs"],
                "ctdl_minus_npe": round(diff, 4),
                "paired_se": round(diff_se, 4),
                "ctdl_per_obs": [round(v, 4) for v in ours["per_obs"]],
                "npe_per_obs": [round(v, 4) for v in theirs["per_obs"]],
                "ctdl_budget": f"capped at {args.max_minutes} min"
                if args.max_minutes
                else "the config's max_steps, stopped by PlateauHalving",
                "ctdl_overrides": " ".join(args.override) or "none",
            }
            upsert(
                TASK,
                "sbibm",
                [row],
                ("task", "simulations"),
                target="ctdl's mean C2ST at or below NPE's on at least 4 of 5 tasks at 10^4 simulations, "
                "and below NPE's published .606 (two_moons) and .901 (slcp) at 10^4",
                setup=f"the same simulations (SBIBMTask, seed {args.seed}) for both; ctdl: `ctdl fit` on "
                "configs/sbi/<task>.yaml (budget and overrides: each row's ctdl_budget, ctdl_overrides), "
                "best val/nll checkpoint; "
                "NPE: sbi's SNPE (nsf, defaults, early stopping on its own 10% split); C2ST "
                "(sbibm.metrics.c2st) on 10,000 samples against each reference posterior, mean of "
                "observations 1-10; ctdl_minus_npe: the mean of the per-observation differences, "
                "paired_se its standard error; one thread per process",
            )


# -------------------------------------------------------------------------------- sequential
def part_sequential(args) -> None:
    from ctdl.models import ConditionalOTFlow
    from ctdl.sbi import TruncatedPrior
    from ctdl.sbi.evaluate import reference_c2st
    from ctdl.sbi.truncation import draw_round

    runs_dir = args.runs_dir or RUNS / "bench_sbi"
    config = ROOT / "configs" / TASK / f"{args.task}.yaml"
    per_round = args.simulations // args.rounds
    amortised = {(r["task"], r["simulations"]): r for r in load(TASK, "sbibm").get("rows", [])}.get(
        (args.task, args.simulations)
    )
    for i in args.observations:
        label = f"{args.task}_seq{args.simulations}_obs{i}"
        folder = runs_dir / label
        folder.mkdir(parents=True, exist_ok=True)
        base = ["--data.num_simulations", str(per_round), "--data.seed", str(args.seed)]
        base += ["--model.c2st_observations", f"[{i}]", *args.override]
        run = fit(config, f"{label}_round1", base, runs_dir)
        data = run.cli.datamodule
        rounds = [
            {
                "round": 1,
                "simulations": per_round,
                "failed": 0,
                "steps": run.steps,
                "fit_s": round(run.wall_s, 1),
            }
        ]
        thetas, ys = [], []
        for r in range(2, args.rounds + 1):
            model = ConditionalOTFlow.load_from_checkpoint(run.checkpoint, map_location="cpu").eval()
            truncated = TruncatedPrior(
                model.posterior,
                data.observation(i),
                data.sample_prior,
                args.epsilon,
                args.threshold_samples,
                seed=r,
            )
            new = draw_round(truncated, data.simulate_at, per_round, seed=1000 * args.seed + r)
            thetas.append(new.theta)
            ys.append(new.y)
            extra = folder / f"rounds2-{r}.npz"
            np.savez(extra, theta=torch.cat(thetas).numpy(), y=torch.cat(ys).numpy())
            options = [*base, "--data.extra_simulations", str(extra), "--init_from", run.checkpoint]
            run = fit(config, f"{label}_round{r}", options, runs_dir)
            rounds.append(
                {
                    "round": r,
                    "simulations": new.simulations,
                    "failed": new.failed,
                    "acceptance": significant(new.acceptance),
                    "log_q_threshold": round(new.threshold, 4),
                    "steps": run.steps,
                    "fit_s": round(run.wall_s, 1),
                }
            )
            print(f"{label}: round {r} of {args.rounds}: {rounds[-1]}", flush=True)
        model = ConditionalOTFlow.load_from_checkpoint(run.checkpoint, map_location="cpu").eval()
        score = reference_c2st(model.posterior, data, [i], args.samples)[i]
        row = {
            "task": args.task,
            "observation": i,
            "simulations": sum(r["simulations"] for r in rounds),
            "rounds": args.rounds,
            "epsilon": args.epsilon,
            "sequential_c2st": round(score, 4),
            "amortised_c2st": amortised["ctdl_per_obs"][i - 1] if amortised else "-",
            "npe_c2st": amortised["npe_per_obs"][i - 1] if amortised else "-",
            "fit_s": round(sum(r["fit_s"] for r in rounds), 1),
            "per_round": rounds,
        }
        upsert(
            TASK,
            "sequential",
            [row],
            ("task", "simulations", "observation", "rounds"),
            target="the sequential mode as a third column beside amortised ctdl and NPE at the same total "
            "budget",
            setup="TSNPE: round 1 from the prior, later rounds from the prior truncated to the last round's "
            "(1 - epsilon) highest-probability region at the observation (threshold from 20,000 posterior "
            "samples), rejection from the prior; each round `ctdl fit` on configs/sbi/<task>.yaml with all "
            "pairs so far (the first round's standardisation), warm-started from the last round's best "
            "checkpoint; C2ST on 10,000 samples against sbibm's reference; amortised_c2st and npe_c2st: the "
            "same observation in the sbibm row of the same total budget (trained on prior simulations only)",
        )


# ---------------------------------------------------------------------------------------- lv
def part_lv(args) -> None:
    from ctdl.models import ConditionalOTFlow
    from ctdl.sbi.baselines import resample_population
    from ctdl.sbi.evaluate import c2st, compare_moments, sampling_seconds
    from ctdl.sbi.lotka_volterra import Y_STAR

    checkpoint, abc = args.checkpoint, Path(args.abc)
    posterior = ConditionalOTFlow.load_from_checkpoint(checkpoint, map_location="cpu").eval().posterior
    y = torch.from_numpy(Y_STAR.copy())
    posterior.sample(100, y)  # warm-up
    sample_s = {}
    for threads in (1, 2):  # this machine's two cores: one thread, and both
        torch.set_num_threads(threads)
        sample_s[threads], ours = sampling_seconds(posterior, y, 10_000)
    torch.set_num_threads(1)
    abc_record = load(TASK, "abc")
    if not abc_record:
        raise SystemExit("lv compares with SMC-ABC: run `scripts/bench_sbi.py abc` first")
    population = np.load(abc)
    if population.ndim != 2 or population.shape[1] != 4:
        raise ValueError(
            f"--abc: expected SMC-ABC's final population of log theta (n, 4), got {population.shape}"
        )
    weights = np.load(abc.with_name(abc.stem + "_weights.npy"))
    log_ours = ours.double().log()
    log_theirs = torch.from_numpy(resample_population(population, weights, seed=0)).double()
    rows = [
        {
            "parameter": f"log theta_{k + 1}",
            "ctdl_mean": round(m["mean"], 4),
            "abc_mean": round(m["reference_mean"], 4),
            "ctdl_std": round(m["std"], 4),
            "abc_std": round(m["reference_std"], 4),
            "within_one_abc_std": m["within_one_reference_std"],
        }
        for k, m in enumerate(compare_moments(log_ours, log_theirs))
    ]
    hparams = torch.load(checkpoint, map_location="cpu", weights_only=True)["datamodule_hyper_parameters"]
    simulations = hparams["num_simulations"]
    abc_simulations = abc_record["simulations_to_final_population"]  # a budget's unfinished round left out
    score = c2st(log_ours[: len(log_theirs)].float(), log_theirs.float(), seed=0)
    save(
        TASK,
        "lv",
        {
            "target": "ctdl uses at least 50x fewer simulations for means within one ABC standard deviation; "
            "10,000 posterior samples in under 1 s",
            "setup": f"ctdl checkpoint {checkpoint} at y*; SMC-ABC's final population {abc} resampled by its "
            "weights; means and stds of log theta",
            "summary": [
                {
                    "ctdl_simulations": simulations,
                    "abc_simulations": abc_simulations,
                    "simulation_ratio": round(abc_simulations / simulations, 1),
                    "c2st_ctdl_vs_abc": round(score, 4),
                    "ctdl_10k_samples_s_1_thread": round(sample_s[1], 3),
                    "ctdl_10k_samples_s_2_threads": round(sample_s[2], 3),
                    "abc_wall_s_per_observation": abc_record["wall_time_s"],
                }
            ],
            "rows": rows,
        },
    )


# --------------------------------------------------------------------------------------- abc
def abc_tables(result: dict) -> dict:
    """The summary row and the per-parameter rows of an SMC-ABC record (for the report)."""
    record = result["record"]
    summary = {
        "simulations": result["simulations"],
        "simulations_to_final_population": result["simulations_to_final_population"],
        "rounds": record["rounds"],
        "final_eps": round(result["final_eps"], 4),
        "stop_reason": result["stop_reason"],
        "wall_time_s": result["wall_time_s"],
        "simulations_per_s": result["simulations_per_s"],
    }
    rows = [
        {
            "parameter": f"log theta_{k + 1}",
            "abc_mean": round(result["posterior_mean_log_theta"][k], 4),
            "abc_std": round(result["posterior_std_log_theta"][k], 4),
            "log_theta_star": round(result["log_theta_star"][k], 4),
        }
        for k in range(len(result["log_theta_star"]))
    ]
    return {"summary": [summary], "rows": rows}


def part_abc(args) -> None:
    from ctdl.sbi.baselines import smc_abc
    from ctdl.sbi.lotka_volterra import (
        MAX_EVENTS,
        PRIOR_HIGH,
        PRIOR_LOW,
        SIMULATOR_VERSION,
        STATISTICS,
        THETA_STAR,
        Y_STAR,
        sample_prior,
        simulate_statistics,
    )

    def simulator(theta: np.ndarray, seed: int) -> np.ndarray:
        return simulate_statistics(theta, seed, workers=args.workers)

    def progress(r: dict) -> None:
        print(
            f"round {r['round']:2d}  eps {r['eps']:.4f}  simulations {r['simulations']:>9,d}  "
            f"total {r['total_simulations']:>10,d}  acceptance {r['acceptance_rate']:.4f}  "
            f"ESS {r['ess']:7.1f}{' (resampled)' if r['resampled'] else ''}  failed {r['failed']:,d}  "
            f"outside prior {r['outside_prior']:,d}  {r['seconds']:.0f} s",
            flush=True,
        )

    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    res = smc_abc(
        simulator,
        sample_prior,
        (PRIOR_LOW, PRIOR_HIGH),
        Y_STAR,
        particles=args.particles,
        eps0=args.eps0,
        decay=args.decay,
        eps_final=args.eps_final,
        max_simulations=args.max_simulations or None,
        max_rounds=args.max_rounds,
        scale_simulations=args.scale_simulations,
        min_batch=args.min_batch,
        max_batch=args.max_batch,
        seed=args.seed,
        callback=progress,
    )
    wall = time.perf_counter() - t0

    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = {
        "log_theta": out,
        "theta": out.with_name(out.stem + "_theta.npy"),
        "weights": out.with_name(out.stem + "_weights.npy"),
    }
    for key, value in (("log_theta", res.samples), ("theta", res.theta), ("weights", res.weights)):
        np.save(paths[key], value)

    summary = res.summary()
    theta_mean = res.weights @ res.theta
    settings = {k: v for k, v in vars(args).items() if k not in ("part", "func")}
    result = {
        "numpy": np.__version__,
        "setup": (
            f"SMC-ABC at y* on the stochastic Lotka-Volterra model (simulator version "
            f"{SIMULATOR_VERSION}, failure after {MAX_EVENTS} events); prior log theta ~ "
            f"U[{PRIOR_LOW}, {PRIOR_HIGH}]^4; distance: Euclidean on the 9 statistics z-scored with "
            f"the mean and std of {res.scale_simulations} prior simulations (seeded from --seed; "
            "failed ones left out of the mean and std, counted); Gaussian perturbation in log theta "
            "with 2x the weighted covariance; tolerances max(eps0 * decay^k, eps_final); "
            "resampling at ESS < 0.5 N"
        ),
        "counting": (
            "simulations counts every simulation run: the prior set for the z-score, failed "
            "simulations (rejected) and those of a batch after its N-th acceptance; proposals "
            "outside the prior box are dropped without simulating and counted apart "
            "(record.outside_prior_per_round)"
        ),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in settings.items()},
        "command": "python scripts/bench_sbi.py abc "
        + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in settings.items() if v is not None and k != "out"
        ),
        "workers": args.workers or len(os.sched_getaffinity(0)),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg()[0],
        "simulations": res.simulations,
        "simulations_to_final_population": res.simulations - (res.unfinished or {}).get("simulations", 0),
        "wall_time_s": round(wall, 2),
        "simulations_per_s": round(res.simulations / wall),
        "stop_reason": res.stop_reason,
        "final_eps": summary["final_eps"],
        "statistics": list(STATISTICS),
        "observation": Y_STAR.tolist(),
        "log_theta_star": np.log(THETA_STAR).tolist(),
        "posterior_mean_log_theta": res.mean().tolist(),
        "posterior_std_log_theta": res.std().tolist(),
        "posterior_mean_theta": theta_mean.tolist(),
        "posterior_std_theta": np.sqrt(res.weights @ (res.theta - theta_mean) ** 2).tolist(),
        "samples": {
            k: str(v.resolve().relative_to(ROOT) if v.resolve().is_relative_to(ROOT) else v)
            for k, v in paths.items()
        },
        "record": summary,
    }
    save(TASK, "abc", {**result, **abc_tables(result)})


# --------------------------------------------------------------------------------------- sim
def cpu_seconds() -> float:
    """CPU time of this process and of its finished child processes."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def reference_rate(theta: np.ndarray, seed: int) -> tuple[float, float, int, int]:
    """(seconds, CPU seconds, events, failures) of the plain-Python loop over the rows of theta."""
    from ctdl.sbi.lotka_volterra import simulate_reference

    t0, c0 = time.perf_counter(), cpu_seconds()
    events = failures = 0
    for i, row in enumerate(theta):
        sim = simulate_reference(row, seed + i)
        events += int(sim.events[0])
        failures += int(sim.failed[0])
    return time.perf_counter() - t0, cpu_seconds() - c0, events, failures


def part_sim(args) -> None:
    from ctdl.sbi.lotka_volterra import MAX_EVENTS, sample_prior, simulate_statistics

    theta = sample_prior(args.n, np.random.default_rng(args.seed))
    subset = theta[np.random.default_rng(args.seed + 1).choice(args.n, args.n_reference, replace=False)]
    half = args.n_reference // 2
    load_before = os.getloadavg()[0]

    ref_a = reference_rate(subset[:half], 10_000)
    t0, c0 = time.perf_counter(), cpu_seconds()
    stats = simulate_statistics(theta, args.seed, workers=args.workers)
    vec_s, vec_cpu = time.perf_counter() - t0, cpu_seconds() - c0
    ref_b = reference_rate(subset[half:], 20_000)
    ref_s, ref_cpu, ref_events, ref_failed = (a + b for a, b in zip(ref_a, ref_b, strict=True))
    cpu_ratio = (ref_cpu / args.n_reference) / (vec_cpu / args.n)

    vec_rate, ref_rate = args.n / vec_s, args.n_reference / ref_s
    workers = args.workers or len(os.sched_getaffinity(0))
    rows = [
        {
            "simulator": f"vectorised, {workers} worker process(es)",
            "simulations": args.n,
            "seconds": round(vec_s, 2),
            "sims_per_s": round(vec_rate),
            "failed_frac": round(float(np.isnan(stats[:, 0]).mean()), 4),
            "speed_up": round(vec_rate / ref_rate, 1),
            "cpu_ms_per_sim": round(vec_cpu / args.n * 1e3, 4),
            "cpu_speed_up": round(cpu_ratio, 1),
        },
        {
            "simulator": "plain-Python one-chain loop",
            "simulations": args.n_reference,
            "seconds": round(ref_s, 2),
            "sims_per_s": round(ref_rate, 1),
            "failed_frac": round(ref_failed / args.n_reference, 4),
            "speed_up": 1.0,
            "cpu_ms_per_sim": round(ref_cpu / args.n_reference * 1e3, 4),
            "cpu_speed_up": 1.0,
            "us_per_event": round(ref_s / ref_events * 1e6, 3),
        },
    ]
    result = {
        "target": "at least 100x the simulations per second of the plain-Python one-chain Gillespie loop",
        "setup": (
            f"prior draws log theta ~ U[-5, 2]^4 (seed {args.seed}), T = 30, 150 records, "
            f"failure after {MAX_EVENTS} events; the reference runs on a random subset of the "
            "same draws, half before and half after the vectorised run"
        ),
        "numpy": np.__version__,
        "workers": workers,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg()[0],
        "speed_up": round(vec_rate / ref_rate, 1),
        "cpu_speed_up": round(cpu_ratio, 1),
        "note": (
            "speed_up: simulations per second (wall clock, all workers); cpu_speed_up: CPU time per "
            "simulation (all processes), i.e. the speed-up per core"
        ),
        "rows": rows,
    }
    save(TASK, "sim", result)
    print()
    print(table(rows))
    print(
        f"\nspeed-up {vec_rate / ref_rate:.1f}x (per core {cpu_ratio:.1f}x); numpy {np.__version__}; "
        f"load average {load_before:.1f} before, {result['load_average_after']:.1f} after"
    )


# ------------------------------------------------------------------------------------- steps
def significant(x) -> float:
    """A float with 3 significant digits (the discretisation errors span many decades)."""
    return float(f"{float(x):.3g}")


def part_steps(args) -> None:
    """Posterior sampling against the number of RK4 steps, for one sbibm checkpoint."""
    from ctdl.datamodules import SBIBMTask
    from ctdl.models import ConditionalOTFlow
    from ctdl.sbi.evaluate import sampling_seconds

    hparams = torch.load(args.checkpoint, map_location="cpu", weights_only=True)[
        "datamodule_hyper_parameters"
    ]
    posterior = ConditionalOTFlow.load_from_checkpoint(args.checkpoint, map_location="cpu").eval().posterior
    data = SBIBMTask(hparams["task"], num_simulations=100)
    theta, y_sim = data.simulate(args.n_nll, args.seed)  # fresh pairs, no choice was made on them
    y = data.observation(args.observation)
    fine = max(args.steps) * 2
    with torch.no_grad():
        exact = posterior.sample(10_000, y, steps=fine, generator=torch.Generator().manual_seed(0))
        nll_fine = -posterior.log_prob(theta, y_sim, steps=fine)
    posterior.sample(100, y)  # warm-up
    rows = []
    for steps in args.steps:
        posterior.steps = steps
        seconds = {}
        for threads in (1, 2):
            torch.set_num_threads(threads)
            seconds[threads], samples = sampling_seconds(posterior, y, 10_000)
        torch.set_num_threads(1)
        with torch.no_grad():
            nll = -posterior.log_prob(theta, y_sim, steps=steps)
        gap = nll - nll_fine
        rows.append(
            {
                "steps": steps,
                "sample_10k_s_1_thread": round(seconds[1], 3),
                "sample_10k_s_2_threads": round(seconds[2], 3),
                "path_error_over_std": significant(
                    ((samples - exact).pow(2).mean(0) / exact.var(0)).mean().sqrt()
                ),
                "nll": round(float(nll.mean()), 4),
                "nll_minus_fine": significant(gap.mean()),
                "nll_minus_fine_se": significant(gap.std() / len(gap) ** 0.5),
            }
        )
        print(rows[-1], flush=True)
    save(
        TASK,
        "steps",
        {
            "target": "10,000 posterior samples in under 1 s on this CPU, with the RK4 steps where the "
            "accuracy holds",
            "setup": f"checkpoint {args.checkpoint} ({hparams['task']}, {hparams['num_simulations']} "
            f"simulations); observation {args.observation}: 10,000 samples (median of 3) with 1 and 2 "
            f"threads; path_error_over_std = RMS over parameters of the sample-wise difference to the "
            f"same base draws pushed with {fine} steps, over the posterior standard deviation; nll = "
            f"mean -log pi(theta | y) of {args.n_nll} fresh simulations (seed {args.seed}) at that many "
            f"steps, nll_minus_fine its paired difference to {fine} steps with the standard error",
            "rows": rows,
        },
    )


# -------------------------------------------------------------------------------------- main
def main() -> None:
    main_parser, parts = parser(
        __doc__,
        {
            "sbibm": "ctdl against sbi's NPE on sbibm tasks: C2ST against the reference posteriors",
            "sequential": "truncated sequential rounds (TSNPE) for single sbibm observations",
            "lv": "ctdl against SMC-ABC on Lotka-Volterra at y*: posterior moments, C2ST, time",
            "abc": "SMC-ABC on Lotka-Volterra at y*: the reference population and its simulations",
            "sim": "the vectorised Lotka-Volterra simulator against the plain-Python loop",
            "steps": "posterior sampling time and accuracy against the RK4 steps (one checkpoint)",
            "report": "benchmarks/sbi.md from the JSON files",
        },
    )
    p = parts["sbibm"]
    p.add_argument("--tasks", nargs="+", default=TASKS)
    p.add_argument("--budgets", nargs="+", type=int, default=[1000, 10_000])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="a wall-clock cap of each ctdl fit (default none: the config's step budget and plateau stop)",
    )
    p.add_argument(
        "--observations", nargs="+", type=int, default=None, help="C2ST observations (default 1-10)"
    )
    p.add_argument("--samples", type=int, default=None, help="posterior samples per C2ST (default 10,000)")
    add_run_options(p, label=False)
    p = parts["sequential"]
    p.add_argument("--task", default="two_moons", choices=TASKS)
    p.add_argument("--simulations", type=int, default=10_000, help="the total budget, all rounds")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--observations", nargs="+", type=int, default=[1])
    p.add_argument("--epsilon", type=float, default=1e-3, help="posterior mass outside the truncation")
    p.add_argument(
        "--threshold-samples", type=int, default=20_000, help="posterior samples for the threshold"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--samples", type=int, default=None, help="posterior samples for C2ST (default 10,000)")
    add_run_options(p, label=False)
    p = parts["lv"]
    p.add_argument(
        "--checkpoint", required=True, help="a ConditionalOTFlow checkpoint trained on LotkaVolterra"
    )
    p.add_argument("--abc", default=str(ABC_OUT), help="SMC-ABC's final population (the abc part's --out)")
    p = parts["abc"]
    p.add_argument("--particles", type=int, default=2000)
    p.add_argument("--eps0", type=float, default=10.0)
    p.add_argument("--decay", type=float, default=0.85)
    p.add_argument("--eps-final", type=float, default=None, help="stop after the round at this tolerance")
    p.add_argument(
        "--max-simulations", type=int, default=5_000_000, help="simulation budget, all counted (0: none)"
    )
    p.add_argument(
        "--max-rounds", type=int, default=None, help="stop after this many rounds (round 0 included)"
    )
    p.add_argument(
        "--scale-simulations",
        type=int,
        default=10_000,
        help="prior simulations whose statistics z-score the distance",
    )
    p.add_argument("--min-batch", type=int, default=4000, help="fewest candidates per simulator call")
    p.add_argument("--max-batch", type=int, default=40_000, help="most candidates per simulator call")
    p.add_argument("--workers", type=int, default=None, help="simulator processes (default: all cores)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=ABC_OUT, help="where the population (log theta) goes")
    p = parts["steps"]
    p.add_argument(
        "--checkpoint", required=True, help="a ConditionalOTFlow checkpoint trained on an sbibm task"
    )
    p.add_argument("--steps", nargs="+", type=int, default=[4, 8, 16, 32])
    p.add_argument("--observation", type=int, default=1)
    p.add_argument("--n-nll", type=int, default=2000, help="fresh simulations for the NLL")
    p.add_argument("--seed", type=int, default=12345)
    p = parts["sim"]
    p.add_argument("--n", type=int, default=50_000, help="simulations of the vectorised simulator")
    p.add_argument("--n-reference", type=int, default=400, help="simulations of the plain-Python loop")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    p.add_argument("--seed", type=int, default=0)
    args = main_parser.parse_args()
    torch.set_num_threads(1)
    {
        "sbibm": part_sbibm,
        "sequential": part_sequential,
        "lv": part_lv,
        "abc": part_abc,
        "sim": part_sim,
        "steps": part_steps,
        "report": lambda a: None,
    }[args.part](args)
    report(TASK, "Simulation-based inference")


if __name__ == "__main__":
    main()
