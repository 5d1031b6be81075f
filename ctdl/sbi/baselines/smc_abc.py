"""Sequential Monte Carlo approximate Bayesian computation (SMC-ABC, population Monte Carlo ABC).

The baseline that simulation-based inference is measured against: a population of N particles in
log-parameter space u = log theta, with a prior uniform on a box [low, high]^d, is moved through
decreasing tolerances eps_0 > eps_1 > ... (Toni et al. 2009; Beaumont, Cornuet, Marin and Robert
2009, "Adaptive approximate Bayesian computation"; Del Moral, Doucet and Jasra 2012, "An adaptive
sequential Monte Carlo method for approximate Bayesian computation"):

    round 0:  u ~ prior, simulate y ~ p(y | exp(u)), accept if rho(y, y_obs) <= eps_0; w = 1 / N.
    round k:  u' ~ sum_j w_j N(u_j, 2 Sigma), Sigma the weighted covariance of round k - 1;
              u' outside the box has prior 0 and is dropped without simulating;
              accept if rho(y, y_obs) <= eps_k, until N are accepted;
              w_i prop. to prior(u_i) / sum_j w_j N(u_i; u_j, 2 Sigma);
              if ESS = 1 / sum_i w_i^2 < 0.5 N, resample multinomially and set w = 1 / N.

The distance is Euclidean on z-scored statistics, rho(y, y') = |(y - y') / s|, with s the standard
deviation of the statistics of a set of simulations from the prior (failed simulations left out).
The tolerances are eps_{k+1} = max(decay * eps_k, eps_final). Candidates are proposed and simulated
in batches; every simulation the simulator runs is counted (the prior set for s, failed ones, whose
NaN statistics are rejected, and those of a batch after its N-th acceptance); proposals outside the
prior are not simulations and are counted apart. 2 Sigma and 0.5 N are the defaults of
`kernel_scale` and `resample_ess`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

Simulator = Callable[[np.ndarray, int], np.ndarray]
"""simulator(theta (n, d), seed) -> statistics (n, q), NaN rows for failed simulations."""
PriorSampler = Callable[[int, np.random.Generator], np.ndarray]
"""prior_sampler(n, rng) -> theta (n, d) with log theta uniform on the prior box."""

STOP_REASONS = ("final tolerance", "simulation budget", "rounds")


@dataclass
class ABCResult:
    """The last complete population of `smc_abc` and the record of how it was reached."""

    samples: np.ndarray
    """(N, d) log theta of the particles."""
    weights: np.ndarray
    """(N,) importance weights, summing to one (1 / N after resampling)."""
    epsilons: np.ndarray
    """(rounds,) the tolerance of each completed round, eps_0 first."""
    simulations_per_round: np.ndarray
    """(rounds,) simulations run in each completed round (failed ones and a batch's surplus included)."""
    simulations: int
    """All simulations run: the prior set for the scale, every round, and an unfinished last round."""
    acceptance_rates: np.ndarray
    """(rounds,) accepted / simulated candidates in each round."""
    wall_time: float
    """Seconds from the call to the return, the prior set included."""
    stop_reason: str
    """One of STOP_REASONS: the final tolerance reached, the simulation budget spent, or max_rounds."""
    ess: np.ndarray
    """(rounds,) effective sample size 1 / sum w^2 of each round's weights before any resampling."""
    resampled: np.ndarray
    """(rounds,) bool: whether the round's population was resampled (ESS < resample_ess * N)."""
    failed_per_round: np.ndarray
    """(rounds,) failed simulations (NaN statistics) in each round: rejected, and counted."""
    outside_prior_per_round: np.ndarray
    """(rounds,) proposals outside the prior box: dropped without simulating, not in `simulations`."""
    scale_simulations: int
    """Size of the prior set whose statistics gave the z-score (0 if a scale was passed)."""
    scale_mean: np.ndarray
    """(q,) mean of the prior set's statistics (failed simulations left out)."""
    scale_std: np.ndarray
    """(q,) standard deviation (ddof = 0) of the prior set's statistics: the distance's unit."""
    unfinished: dict | None = None
    """The round abandoned when the budget ran out: its eps, simulations and accepted candidates."""

    @property
    def theta(self) -> np.ndarray:
        """(N, d) the particles as theta = exp(log theta)."""
        return np.exp(self.samples)

    def mean(self) -> np.ndarray:
        """(d,) weighted posterior mean of log theta."""
        return self.weights @ self.samples

    def std(self) -> np.ndarray:
        """(d,) weighted posterior standard deviation of log theta."""
        return np.sqrt(self.weights @ (self.samples - self.mean()) ** 2)

    def summary(self) -> dict:
        """Everything but the particles as JSON-ready lists and numbers."""
        out = {
            k: v.tolist() if isinstance(v, np.ndarray) else v
            for k, v in asdict(self).items()
            if k not in ("samples", "weights")
        }
        out.update(
            rounds=len(self.epsilons),
            particles=len(self.weights),
            final_eps=float(self.epsilons[-1]),
            final_ess=float(1.0 / np.sum(self.weights**2)),
            mean_log_theta=self.mean().tolist(),
            std_log_theta=self.std().tolist(),
        )
        return out


def smc_abc(
    simulator: Simulator,
    prior_sampler: PriorSampler,
    prior_log_box: tuple[np.ndarray | float, np.ndarray | float],
    observation: np.ndarray,
    particles: int = 2000,
    eps0: float = 10.0,
    decay: float = 0.85,
    *,
    eps_final: float | None = None,
    max_simulations: int | None = None,
    max_rounds: int | None = None,
    scale_simulations: int = 10_000,
    scale: tuple[np.ndarray, np.ndarray] | None = None,
    kernel_scale: float = 2.0,
    resample_ess: float = 0.5,
    min_batch: int = 1000,
    max_batch: int = 100_000,
    seed: int = 0,
    callback: Callable[[dict], None] | None = None,
) -> ABCResult:
    """SMC-ABC (population Monte Carlo ABC) on the log-parameter box: see the module docstring.

    Args:
        simulator: theta (n, d) rates (not log rates), seed -> statistics (n, q), NaN rows for failures.
        prior_sampler: n, rng -> theta (n, d) with log theta uniform on `prior_log_box`.
        prior_log_box: (low, high), numbers or (d,) arrays, the box of log theta.
        observation: (q,) the observed statistics y_obs.
        particles: N, the population size.
        eps0, decay: the tolerances eps_k = max(eps0 * decay^k, eps_final), in z-score units.
        eps_final, max_simulations, max_rounds: stop after the round at eps_final, when the total
            count of simulations would pass max_simulations (the unfinished round is dropped and the
            last complete population returned), or after max_rounds rounds (round 0 included),
            whichever comes first; at least one must be given.
        scale_simulations: prior draws simulated for the z-score (mean and std of their statistics).
        scale: (mean, std) of the statistics to use instead; then no prior set is simulated.
        kernel_scale: the perturbation covariance is kernel_scale times the weighted covariance.
        resample_ess: resample when ESS < resample_ess * N.
        min_batch, max_batch: bounds on the candidates proposed per simulator call.
        seed: the only source of randomness; equal seeds give equal results.
        callback: called with a dict of each round's numbers when it completes.
    """
    start = time.perf_counter()
    low, high, obs = _check_inputs(
        prior_log_box,
        observation,
        particles,
        eps0,
        decay,
        eps_final,
        max_simulations,
        max_rounds,
        scale_simulations,
        kernel_scale,
        resample_ess,
        min_batch,
        max_batch,
        seed,
    )
    run = _Run(simulator, prior_sampler, low, high, obs, max_simulations, seed)
    mean, std = run.fit_scale(scale_simulations) if scale is None else run.set_scale(*scale)
    record: dict[str, list] = {k: [] for k in ("eps", "sims", "rate", "ess", "resampled", "failed", "out")}
    x = w = chol = None
    eps, rate_prev, unfinished, reason = float(eps0), 1.0, None, None
    while reason is None:
        k = len(record["eps"])
        if k:
            cov = np.cov(x, rowvar=False, aweights=w, ddof=0).reshape(x.shape[1], x.shape[1])
            chol = _cholesky(kernel_scale * cov)
        x_new, sims, acc, props, failed = run.round(
            eps, particles, x, w, chol, rate_prev, min_batch, max_batch
        )
        if x_new.shape[0] < particles:  # the budget ran out
            if k == 0:
                raise ValueError(
                    f"the simulation budget max_simulations={max_simulations} ran out before "
                    f"the first population was complete ({x_new.shape[0]} of {particles} "
                    f"accepted at eps0={eps0}): raise max_simulations or eps0"
                )
            unfinished = {"eps": eps, "simulations": sims, "accepted": x_new.shape[0], "failed": failed}
            reason = "simulation budget"
            break
        # w_i prop. to prior(u_i) / sum_j w_j K(u_i | u_j); the prior is constant on the box
        with np.errstate(divide="ignore"):  # a weight that underflowed to 0 has log -inf
            logw = np.zeros(particles) if k == 0 else -_log_kernel_mixture(x_new, x, np.log(w), chol)
        w_new = np.exp(logw - logw.max())
        w_new /= w_new.sum()
        ess = 1.0 / np.sum(w_new**2) if k else float(particles)  # round 0: equal weights, exactly N
        resample = bool(ess < resample_ess * particles)
        if resample:
            x_new = x_new[run.rng.choice(particles, particles, p=w_new)]
            w_new = np.full(particles, 1.0 / particles)
        x, w, rate_prev = x_new, w_new, acc / props
        for key, v in zip(record, (eps, sims, acc / sims, ess, resample, failed, props - sims), strict=True):
            record[key].append(v)
        if callback is not None:
            callback(
                {
                    "round": k,
                    "eps": eps,
                    "simulations": sims,
                    "total_simulations": run.count,
                    "acceptance_rate": acc / sims,
                    "ess": ess,
                    "resampled": resample,
                    "failed": failed,
                    "outside_prior": props - sims,
                    "seconds": time.perf_counter() - start,
                }
            )
        if eps_final is not None and eps <= eps_final:
            reason = "final tolerance"
        elif max_rounds is not None and k + 1 >= max_rounds:
            reason = "rounds"
        elif run.count >= run.budget:
            reason = "simulation budget"
        eps = decay * eps if eps_final is None else max(decay * eps, eps_final)
    return ABCResult(
        samples=x,
        weights=w,
        epsilons=np.array(record["eps"]),
        simulations_per_round=np.array(record["sims"]),
        simulations=run.count,
        acceptance_rates=np.array(record["rate"]),
        wall_time=time.perf_counter() - start,
        stop_reason=reason,
        ess=np.array(record["ess"]),
        resampled=np.array(record["resampled"]),
        failed_per_round=np.array(record["failed"]),
        outside_prior_per_round=np.array(record["out"]),
        scale_simulations=run.count_scale,
        scale_mean=mean,
        scale_std=std,
        unfinished=unfinished,
    )


class _Run:
    """The state one smc_abc call shares between rounds: random streams, the count, the distance."""

    def __init__(self, simulator, prior_sampler, low, high, obs, max_simulations, seed) -> None:
        self.simulator, self.prior_sampler = simulator, prior_sampler
        self.low, self.high, self.obs = low, high, obs
        self.budget = math.inf if max_simulations is None else int(max_simulations)
        self.max_simulations = max_simulations
        streams = np.random.SeedSequence(seed).spawn(2)  # proposals; the simulator's seeds
        self.rng, self.seeds = np.random.default_rng(streams[0]), np.random.default_rng(streams[1])
        self.count = self.count_scale = 0
        self.std = None

    def simulate(self, u: np.ndarray) -> np.ndarray:
        """Statistics (n, q) at log theta u (n, d), counted."""
        n = u.shape[0]
        stats = np.asarray(self.simulator(np.exp(u), int(self.seeds.integers(2**62))), dtype=np.float64)
        if stats.ndim != 2 or stats.shape[0] != n:
            raise ValueError(
                f"the simulator must return statistics of shape (n, q) with n = {n} for {n} "
                f"parameters, got {stats.shape}"
            )
        if stats.shape[1] != self.obs.size:
            raise ValueError(
                f"observation has {self.obs.size} entries but the simulator returns "
                f"{stats.shape[1]} statistics"
            )
        self.count += n
        return stats

    def prior(self, n: int) -> np.ndarray:
        """n prior draws of log theta, checked against the box."""
        theta = np.asarray(self.prior_sampler(n, self.rng), dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            u = np.log(theta)
        if self.low.size == 1 and u.ndim == 2:  # a box given by numbers: the same bounds in every dimension
            self.low, self.high = np.full(u.shape[1], self.low[0]), np.full(u.shape[1], self.high[0])
        low, high = self.low, self.high
        if u.shape != (n, low.size) or not np.all((u >= low - 1e-9) & (u <= high + 1e-9)):
            seen = ""
            if u.size:
                seen = f", log theta from {np.nanmin(u, 0).tolist()} to {np.nanmax(u, 0).tolist()}"
            raise ValueError(
                f"prior_sampler(n, rng) must return (n, {low.size}) theta with log theta in the "
                f"prior box [{low.tolist()}, {high.tolist()}]; got shape {u.shape}{seen}"
            )
        return np.clip(u, low, high)

    def fit_scale(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std (ddof = 0) of the statistics of n prior simulations, failed ones left out."""
        if n > self.budget:
            raise ValueError(
                f"max_simulations={self.max_simulations} leaves no room for the {n} prior "
                "simulations of the scale"
            )
        stats = self.simulate(self.prior(n))
        self.count_scale = n
        stats = stats[~np.isnan(stats).any(axis=1)]
        if stats.shape[0] < 2:
            raise ValueError(
                f"{stats.shape[0]} of the {n} prior simulations for the scale succeeded; "
                "at least 2 are needed"
            )
        return self.set_scale(stats.mean(axis=0), stats.std(axis=0))

    def set_scale(self, mean, std) -> tuple[np.ndarray, np.ndarray]:
        mean, std = (np.asarray(a, dtype=np.float64).reshape(-1) for a in (mean, std))
        if mean.size != self.obs.size or std.size != self.obs.size:
            raise ValueError(
                f"scale (mean, std) must have the observation's {self.obs.size} entries, "
                f"got {mean.size} and {std.size}"
            )
        if not np.all(np.isfinite(std) & (std > 0)):
            raise ValueError(f"the scale of every statistic must be finite and > 0, got std {std.tolist()}")
        self.std = std
        return mean, std

    def distance(self, stats: np.ndarray) -> np.ndarray:
        """|(y - y_obs) / s| per row; inf for failed simulations."""
        d = np.sqrt((((stats - self.obs) / self.std) ** 2).sum(axis=1))
        return np.where(np.isnan(d), np.inf, d)

    def round(self, eps, particles, x, w, chol, rate_prev, min_batch, max_batch):
        """Propose (from the prior if x is None) and simulate batches until `particles` candidates are
        within eps or the budget is spent. Returns (accepted log theta, simulations, accepted
        candidates in all batches, proposals, failed simulations); the accepted are the first ones in
        proposal order, those of a batch after them are surplus (simulated and counted, not kept)."""
        kept, have, acc, sims, props, failed = [], 0, 0, 0, 0, 0
        while have < particles and self.count < self.budget:
            rate = (acc + 1) / (props + 1 / rate_prev)  # acceptances per proposal: last round's, then this
            n = int(min(max(math.ceil(1.1 * (particles - have) / rate), min_batch), max_batch))
            if x is None:
                u = self.prior(n)
            else:
                u = x[self.rng.choice(particles, n, p=w)] + self.rng.standard_normal((n, x.shape[1])) @ chol.T
            props += n
            u = u[np.all((u >= self.low) & (u <= self.high), axis=1)][: int(min(n, self.budget - self.count))]
            if u.shape[0] == 0:
                continue
            stats = self.simulate(u)
            sims += u.shape[0]
            failed += int(np.isnan(stats).any(axis=1).sum())
            ok = np.flatnonzero(self.distance(stats) <= eps)
            kept.append(u[ok[: particles - have]])
            have += kept[-1].shape[0]
            acc += ok.size
        return np.concatenate(kept) if kept else np.empty((0, self.low.size)), sims, acc, props, failed


def resample_population(samples: np.ndarray, weights: np.ndarray, seed: int = 0) -> np.ndarray:
    """A weighted population (N, d) resampled multinomially by its weights to N equally weighted
    draws (the weights need not be normalised), from `seed` alone."""
    samples, weights = np.asarray(samples), np.asarray(weights, dtype=np.float64)
    if samples.ndim != 2 or weights.shape != samples.shape[:1]:
        raise ValueError(
            f"resample_population needs samples (N, d) and weights (N,), got {samples.shape} and "
            f"{weights.shape}"
        )
    pick = np.random.default_rng(seed).choice(len(samples), size=len(samples), p=weights / weights.sum())
    return samples[pick]


def _log_kernel_mixture(
    x: np.ndarray, centres: np.ndarray, log_w: np.ndarray, chol: np.ndarray, block: int = 256
) -> np.ndarray:
    """log sum_j w_j N(x_i; centres_j, L L^T) for each row x_i, L = chol (lower triangular), in blocks."""
    d = x.shape[1]
    zc = np.linalg.solve(chol, centres.T).T  # whitened: |L^{-1}(x - c)|^2 = |z_x - z_c|^2
    zx = np.linalg.solve(chol, x.T).T
    const = -0.5 * d * math.log(2 * math.pi) - np.log(np.diag(chol)).sum()
    out = np.empty(x.shape[0])
    for a in range(0, x.shape[0], block):
        q = ((zx[a : a + block, None, :] - zc[None]) ** 2).sum(axis=2)  # (block, N)
        t = log_w - 0.5 * q
        m = t.max(axis=1, keepdims=True)
        out[a : a + block] = (m[:, 0] + np.log(np.exp(t - m).sum(axis=1))) + const
    return out


def _cholesky(cov: np.ndarray) -> np.ndarray:
    """Cholesky factor of a covariance, with a small ridge if it is singular (a collapsed population)."""
    ridge = 0.0
    for _ in range(10):
        try:
            return np.linalg.cholesky(cov + ridge * np.eye(cov.shape[0]))
        except np.linalg.LinAlgError:
            ridge = max(10 * ridge, 1e-12 * max(float(np.trace(cov)), 1e-12))
    raise ValueError(f"the perturbation covariance is not positive definite: {cov.tolist()}")


def _check_inputs(
    box,
    observation,
    particles,
    eps0,
    decay,
    eps_final,
    max_simulations,
    max_rounds,
    scale_simulations,
    kernel_scale,
    resample_ess,
    min_batch,
    max_batch,
    seed,
):
    """Validate smc_abc's arguments; returns (low, high, observation) as float arrays."""
    if len(box) != 2:
        raise ValueError(f"prior_log_box must be (low, high), got {box!r}")
    low, high = (np.atleast_1d(np.asarray(b, dtype=np.float64)) for b in box)
    low, high = np.broadcast_arrays(low, high)
    if low.ndim != 1 or not np.all(np.isfinite(low) & np.isfinite(high) & (low < high)):
        raise ValueError(
            f"prior_log_box must be finite (low, high) with low < high, got {low.tolist()} "
            f"and {high.tolist()}"
        )
    obs = np.asarray(observation, dtype=np.float64)
    if obs.ndim != 1 or not np.all(np.isfinite(obs)):
        raise ValueError(
            f"observation must be a finite vector (q,), got shape {obs.shape}"
            + ("" if obs.ndim != 1 else f" with non-finite entries {obs.tolist()}")
        )
    if int(particles) != particles or particles < 2:
        raise ValueError(f"particles must be an integer >= 2, got {particles}")
    if not 0 < decay < 1:
        raise ValueError(f"decay must be in (0, 1), got {decay}")
    if not eps0 > 0:
        raise ValueError(f"eps0 must be > 0, got {eps0}")
    if eps_final is not None and not 0 < eps_final <= eps0:
        raise ValueError(f"eps_final must be in (0, eps0={eps0}], got {eps_final}")
    if eps_final is None and max_simulations is None and max_rounds is None:
        raise ValueError("give at least one of eps_final, max_simulations and max_rounds (when to stop)")
    if max_simulations is not None and max_simulations < 1:
        raise ValueError(f"max_simulations must be >= 1, got {max_simulations}")
    if max_rounds is not None and max_rounds < 1:
        raise ValueError(f"max_rounds must be >= 1, got {max_rounds}")
    if scale_simulations < 2:
        raise ValueError(f"scale_simulations must be >= 2, got {scale_simulations}")
    if not kernel_scale > 0:
        raise ValueError(f"kernel_scale must be > 0, got {kernel_scale}")
    if not 0 <= resample_ess <= 1:
        raise ValueError(f"resample_ess must be in [0, 1], got {resample_ess}")
    if not 1 <= min_batch <= max_batch:
        raise ValueError(f"need 1 <= min_batch <= max_batch, got {min_batch} and {max_batch}")
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    return low, high, obs
