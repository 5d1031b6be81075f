"""The exact simulation of the stochastic Lotka-Volterra Markov jump process, batch-vectorised.

While both species live, every chain follows Gillespie's (1977) direct method, one event per chain
per step, all chains of a batch advancing together in numpy arrays: the next event after an
Exp(a_0)-distributed wait (a_0 the total rate), reaction j with probability a_j / a_0. Once a
species is extinct the process is linear with a known law, and the states at the remaining record
times are drawn from it directly: with Y = 0 each predator dies after an independent Exp(theta_2)
lifetime (X(t + h) ~ Binomial(X(t), exp(-theta_2 h))); with X = 0 the prey is a pure-birth (Yule)
process, Y(t + h) = Y(t) + NegativeBinomial(Y(t), exp(-theta_3 h)). Both are monotone, so the
number of events before T, and with it the failure rule, follows from the state at T.
`simulate_reference` is the plain-Python one-chain direct method, the yardstick for the vectorised
one (tests compare their distributions).

Randomness: a batch is cut into chunks of `CHUNK_SIZE` simulations; chunk c draws every random
number from ``SeedSequence(seed, spawn_key=(c,))`` (`run_chunks`), so results depend on
(theta, seed) only, not on how many worker processes share the chunks.
"""

from __future__ import annotations

import math
import random
from typing import NamedTuple

import numpy as np

from .statistics import summary_statistics

INITIAL_STATE = (50, 100)
"""(X, Y) at t = 0: predators, prey."""
N_RECORD = 150
DT_RECORD = 0.2
T_RECORD = np.arange(N_RECORD) * DT_RECORD
"""The record times 0, 0.2, ..., 29.8."""
T_END = 30.0
"""The simulated horizon: events before T_END count towards MAX_EVENTS."""
MAX_EVENTS = 10_000
"""More events than this before T_END is a failed simulation."""
CHUNK_SIZE = 2000
"""Simulations per random stream (the unit of work of a worker process)."""
_BLOCK = 16  # direct-method steps between compactions of the batch (and between random draws)
_T_NEXT = np.append(T_RECORD, T_END)  # the next time a chain must stop at, by record index


class Simulation(NamedTuple):
    """What `simulate_series` returns for n simulations."""

    series: np.ndarray
    """(n, 150, 2) float64: (X, Y) at the record times; NaN rows for failed simulations."""
    failed: np.ndarray
    """(n,) bool: more than `max_events` events before T_END."""
    events: np.ndarray
    """(n,) int64: the number of events before T_END (max_events + 1 for a failed simulation)."""


def simulate_reference(
    theta: np.ndarray,
    seed: int,
    *,
    initial: tuple[int, int] = INITIAL_STATE,
    max_events: int = MAX_EVENTS,
) -> Simulation:
    """One simulation by Gillespie's (1977) direct method in plain Python, one event at a time.

    The yardstick for the vectorised simulator (same law, different random numbers): waiting time
    Exp(a_0), reaction j with probability a_j / a_0, until T_END or a_0 = 0 (then the state stays
    constant). theta is (4,) rates; returns a `Simulation` of one row.
    """
    theta = check_theta(theta)
    if theta.shape[0] != 1:
        raise ValueError(f"simulate_reference runs one chain: theta must be (4,), got {theta.shape}")
    check_initial(initial, max_events)
    t1, t2, t3, t4 = (float(v) for v in theta[0])
    rng = random.Random(int(seed))
    x, y = initial
    t, k, n_events = 0.0, 0, 0
    record = T_RECORD.tolist()
    out = np.full((1, N_RECORD, 2), np.nan)
    rows = []
    while True:
        xy = x * y
        c1 = t1 * xy
        c2 = c1 + t2 * x
        c3 = c2 + t3 * y
        a0 = c3 + t4 * xy
        t_next = t + rng.expovariate(a0) if a0 > 0 else math.inf
        while k < N_RECORD and record[k] <= t_next:
            rows.append((x, y))
            k += 1
        if t_next >= T_END:
            break
        n_events += 1
        if n_events > max_events:
            return Simulation(out, np.array([True]), np.array([n_events]))
        u = rng.random() * a0
        if u < c1:
            x += 1
        elif u < c2:
            x -= 1
        elif u < c3:
            y += 1
        else:
            y -= 1
        t = t_next
    out[0] = rows
    return Simulation(out, np.array([False]), np.array([n_events]))


# --- checks ---------------------------------------------------------------------------------------


def check_theta(theta: np.ndarray) -> np.ndarray:
    """theta as (n, 4) float64 rates (a (4,) vector is one row); a ValueError that says what to pass."""
    theta = np.asarray(theta, dtype=np.float64)
    if theta.ndim == 1:
        theta = theta[None]
    if theta.ndim != 2 or theta.shape[1] != 4:
        raise ValueError(f"theta must have shape (n, 4) (rates theta_1..theta_4), got {theta.shape}")
    if not np.all(np.isfinite(theta)) or np.any(theta < 0):
        raise ValueError(
            "theta must hold finite rates >= 0 (rates, not log rates: use np.exp(log_theta)); "
            f"got min {np.nanmin(theta) if theta.size else 0.0}"
        )
    return theta


def check_initial(initial: tuple[int, int], max_events: int) -> None:
    """Two counts (X, Y) >= 0 and max_events >= 0, or a ValueError naming the bad one."""
    if len(initial) != 2 or any(int(v) != v or v < 0 for v in initial):
        raise ValueError(f"initial must be two counts (X, Y) >= 0, got {initial}")
    if max_events < 0:
        raise ValueError(f"max_events must be >= 0, got {max_events}")


# --- the batch simulator ----------------------------------------------------------------------------


# --- the batch kernel ------------------------------------------------------------------------------


def _records_before(t: np.ndarray, inclusive: bool = False) -> np.ndarray:
    """#{k: T_RECORD[k] < t} (<= t if inclusive) for finite t, exactly: the guess floor(t / 0.2) + 1
    (off by at most one) corrected against the table (no binary search)."""
    k = np.clip(np.floor(t / DT_RECORD), -1, N_RECORD - 1).astype(np.intp) + 1
    before = np.less_equal if inclusive else np.less
    k -= (k > 0) & ~before(T_RECORD[np.maximum(k - 1, 0)], t)
    k += (k < N_RECORD) & before(T_RECORD[np.minimum(k, N_RECORD - 1)], t)
    return k


def run_chunks(theta, seed, first_chunk, initial, max_events, statistics, report=None):
    """Simulate consecutive chunks first_chunk, first_chunk + 1, ... of a batch (theta: their rows)."""
    n = theta.shape[0]
    sizes = [min(CHUNK_SIZE, n - a) for a in range(0, n, CHUNK_SIZE)]
    streams = [np.random.SeedSequence(seed, spawn_key=(first_chunk + c,)).spawn(2) for c in range(len(sizes))]
    out = np.full((2, n, N_RECORD + 1), -1, dtype=np.int64)  # (X or Y, chain, record); N_RECORD: scratch
    failed = np.zeros(n, dtype=bool)
    events = np.zeros(n, dtype=np.int64)
    exits = _direct_method(
        theta,
        sizes,
        [np.random.default_rng(s[0]) for s in streams],
        initial,
        max_events,
        out,
        failed,
        events,
        report,
    )
    order = np.argsort(exits["idx"], kind="stable")
    _linear_phase(
        [np.random.default_rng(s[1]) for s in streams],
        theta,
        {k: v[order] for k, v in exits.items()},
        max_events,
        out,
        failed,
        events,
    )
    if report is not None and exits["idx"].size:
        report(int(exits["idx"].size))
    kind = np.int32 if n and out.max() < 2**31 else np.int64
    result = np.empty((n, 9) if statistics else (n, N_RECORD, 2), dtype=np.float64 if statistics else kind)
    for a in range(0, n, CHUNK_SIZE):  # in slices: the arrays stay in cache
        series = _forward_fill(out[:, a : a + CHUNK_SIZE, :N_RECORD])
        result[a : a + CHUNK_SIZE] = summary_statistics(series) if statistics else series
    return result, failed, events


def _forward_fill(out: np.ndarray) -> np.ndarray:
    """(2, n, k) records -> (n, k, 2) series: each slot left at -1 takes the last written slot before
    it (its state did not change)."""
    n, k = out.shape[1:]
    pos = np.where(out[0] >= 0, np.arange(k), 0)
    np.maximum.accumulate(pos, axis=1, out=pos)
    pos += np.arange(n)[:, None] * k
    return np.stack([out[0].reshape(-1)[pos], out[1].reshape(-1)[pos]], axis=-1)


def _direct_method(theta, sizes, rngs, initial, max_events, out, failed, events, report):
    """Gillespie's direct method for all chains at once while both species live.

    Every step each chain draws its next event time T' = T - log(1 - V) / a0 and its reaction
    (U a0 in [0, c1): X + 1, [c1, c2): X - 1, [c2, c3): Y + 1, [c3, a0): Y - 1, with the cumulative
    rates c1 = theta_1 X Y, c2 = c1 + theta_2 X, c3 = c2 + theta_3 Y, a0 = c3 + theta_4 X Y); the
    step's state and time go to the next row of a block of _BLOCK steps. After a block, each record
    time passed gets the state before the event that passed it, a chain whose next event falls at or
    after T_END is finished, and a chain still running at its (max_events + 1)-th event has failed.
    Between blocks, chains with a species extinct (or no reaction able to fire) leave for
    `_linear_phase` (returned), stopped chains are compacted away, and each chunk draws the
    uniforms of its chains for the next block from its own stream, so that a chunk's random
    numbers do not depend on the chunks it shares the arrays with.
    """
    n = theta.shape[0]
    th = np.ascontiguousarray(theta.T)  # (4, n)
    H = np.empty((_BLOCK + 1, 2, n))  # (X, Y) before each step of a block
    H[0, 0], H[0, 1] = initial
    T = np.zeros((_BLOCK + 1, n))  # the time before each step: T[b + 1] is the time of step b's event
    nk = np.zeros(n, dtype=np.intp)  # records written so far
    tnext = np.zeros(n)  # the time of record nk (T_END once all are written)
    idx = np.arange(n)
    chunk = np.repeat(np.arange(len(sizes)), sizes)
    stopped = np.zeros(n, dtype=bool)
    xy, c1, c2, c3, a0, tmp = (np.empty(n) for _ in range(6))
    draws = np.empty((_BLOCK, 2, n))  # [:, 0]: Exp(1) for the waiting time, [:, 1]: U(0, 1) for the reaction
    exits: dict[str, list] = {k: [] for k in ("idx", "x", "y", "t", "nk", "ev")}
    m, it0 = n, 1  # live chains (a prefix of the arrays), the iteration of a block's first step
    with np.errstate(invalid="ignore", divide="ignore"):
        while m:
            stuck = H[0, 0, :m] * H[0, 1, :m] == 0
            if it0 == 1:
                stuck |= th.sum(axis=0) == 0
            stuck &= ~stopped[:m]
            if stuck.any():  # a species is extinct or nothing can fire: the law is known from here
                j = np.flatnonzero(stuck)
                gone = (idx[j], H[0, 0, j], H[0, 1, j], T[0, j], nk[j])
                for k, v in zip(("idx", "x", "y", "t", "nk"), gone, strict=True):
                    exits[k].append(v)
                exits["ev"].append(np.full(j.size, it0 - 1, dtype=np.int64))
                stopped[:m] |= stuck
            if stopped[:m].any():
                keep = np.flatnonzero(~stopped[:m])
                m = keep.size
                for a in (T[0], nk, tnext, idx, chunk):
                    a[:m] = a[keep]
                H[0, :, :m] = H[0][:, keep]
                th[:, :m] = th[:, keep]
                stopped[:m] = False
                if m == 0:
                    break
            edges = np.searchsorted(chunk[:m], np.arange(len(sizes) + 1))
            for c, rng in enumerate(rngs):
                lo, hi = edges[c], edges[c + 1]
                if hi > lo:
                    draws[:, 0, lo:hi] = rng.standard_exponential((_BLOCK, hi - lo))
                    draws[:, 1, lo:hi] = rng.random((_BLOCK, hi - lo))
            nb = min(_BLOCK, max_events + 2 - it0)  # the last block ends at step max_events + 1
            th1, th2, th3, th4 = th[0, :m], th[1, :m], th[2, :m], th[3, :m]
            xym, c1m, c2m, c3m, a0m, tmpm = xy[:m], c1[:m], c2[:m], c3[:m], a0[:m], tmp[:m]
            for b in range(nb):
                X, Y, Xn, Yn = H[b, 0, :m], H[b, 1, :m], H[b + 1, 0, :m], H[b + 1, 1, :m]
                np.multiply(X, Y, out=xym)
                np.multiply(th1, xym, out=c1m)
                np.multiply(th2, X, out=tmpm)
                np.add(c1m, tmpm, out=c2m)
                np.multiply(th3, Y, out=tmpm)
                np.add(c2m, tmpm, out=c3m)
                np.multiply(th4, xym, out=tmpm)
                np.add(c3m, tmpm, out=a0m)
                np.divide(draws[b, 0, :m], a0m, out=tmpm)
                np.add(T[b, :m], tmpm, out=T[b + 1, :m])
                np.multiply(draws[b, 1, :m], a0m, out=tmpm)
                np.less(tmpm, c1m, out=c1m)  # c1, c2, c3 now hold the indicators [U a0 < c]
                np.less(tmpm, c2m, out=c2m)
                np.less(tmpm, c3m, out=c3m)
                np.add(X, c1m, out=Xn)  # X + 2 [U a0 < c1] - [U a0 < c2]
                Xn += c1m
                Xn -= c2m
                np.add(Y, c3m, out=Yn)  # Y + 2 [U a0 < c3] - [U a0 < c2] - 1
                Yn += c3m
                Yn -= c2m
                Yn -= 1.0
            # records: step b passes records [K[b - 1], K[b]); the first gets the state before the
            # step (the forward fill gives it to the others). Only chains whose last time passed
            # their next record time are looked at; past T_END nothing counts (fmin: a finished
            # chain's later steps, inf or NaN, read as T_END).
            j = np.flatnonzero(~(T[nb, :m] < tnext[:m]))
            done = j[:0]
            if j.size:
                tc = np.fmin(T[1 : nb + 1, j], T_END)
                K = _records_before(tc, inclusive=True)
                before = np.concatenate([nk[None, j], K[:-1]])
                bb, cc = np.nonzero(K > before)
                out[0, idx[j[cc]], before[bb, cc]] = H[bb, 0, j[cc]]
                out[1, idx[j[cc]], before[bb, cc]] = H[bb, 1, j[cc]]
                nk[j] = K[-1]
                tnext[j] = _T_NEXT[K[-1]]
                end = tc == T_END
                last = end[-1]
                done = j[last]
                if done.size:
                    events[idx[done]] = it0 - 1 + np.argmax(end[:, last], axis=0)
                    stopped[done] = True
            it0 += nb
            if it0 > max_events + 1:  # the chains still running are at their (max_events + 1)-th event
                j = np.flatnonzero(~stopped[:m])
                failed[idx[j]] = True
                events[idx[j]] = max_events + 1
                done = np.concatenate([done, j])
                m = 0
            if report is not None and done.size:
                report(int(done.size))
            H[0, :, :m] = H[nb, :, :m]
            T[0, :m] = T[nb, :m]
    if not exits["idx"]:
        return {
            "idx": np.zeros(0, np.intp),
            "x": np.zeros(0),
            "y": np.zeros(0),
            "t": np.zeros(0),
            "nk": np.zeros(0, np.intp),
            "ev": np.zeros(0, np.int64),
        }
    return {k: np.concatenate(v) for k, v in exits.items()}


def _linear_phase(rngs, theta, chains, max_events, out, failed, events) -> None:
    """Finish chains with a species extinct (or no reaction able to fire) from their closed-form law.

    Y = 0: each of the X(s) predators alive at the departure time s dies at s + Exp(theta_2),
    independently, and X at a record time counts those still alive. X = 0, Y > 0: the prey is a
    Yule process, Y(t + h) = Y(t) + NegativeBinomial(Y(t), exp(-theta_3 h)), drawn record time by
    record time (Markov property) in steps with theta_3 h <= 1 (no huge draws). Otherwise the state
    is constant. The events before T_END are the departure's count plus |state(T_END) - state at
    departure| (both laws are monotone). chains are sorted by index, so by chunk; each chunk's
    draws come from its own generator in `rngs`.
    """
    i, x, y, s, nk, ev = (chains[k] for k in ("idx", "x", "y", "t", "nk", "ev"))
    x, y = x.astype(np.int64), y.astype(np.int64)
    chunk = i // CHUNK_SIZE
    yule = (x == 0) & (y > 0) & (theta[i, 2] > 0)
    death = (y == 0) & (x > 0) & (theta[i, 1] > 0)
    still = ~(yule | death)  # constant from now on: one write, the forward fill does the rest
    out[0, i[still], nk[still]] = x[still]
    out[1, i[still], nk[still]] = y[still]
    events[i[still]] = ev[still]
    sink = (max_events, out, failed, events)
    d = np.flatnonzero(death)
    _death_phase(rngs, chunk[d], i[d], x[d], s[d], nk[d], ev[d], theta[i[d], 1], *sink)
    b = np.flatnonzero(yule)
    _yule_phase(rngs, chunk[b], i[b], y[b], s[b], nk[b], ev[b], theta[i[b], 2], *sink)


def _chunkwise(rngs, chunk, method: str, *params: np.ndarray, edges: np.ndarray | None = None) -> np.ndarray:
    """``rngs[c].<method>(*(p[lo:hi] for p in params))`` over the segment [lo, hi) of each chunk c in
    the sorted `chunk` (or between the given `edges`), concatenated; without params, ``<method>(hi - lo)``."""
    if edges is None:
        edges = np.searchsorted(chunk, np.arange(len(rngs) + 1))
    return np.concatenate(
        [
            getattr(rngs[c], method)(*(p[lo:hi] for p in params))
            if params
            else getattr(rngs[c], method)(hi - lo)
            for c, (lo, hi) in enumerate(zip(edges[:-1], edges[1:], strict=True))
        ]
    )


def _death_phase(rngs, chunk, i, x, s, nk, ev, rate, max_events, out, failed, events) -> None:
    """Pure death of the predators from records nk on: from the lifetimes where they are few (at most
    2 per remaining record), else X(t + h) ~ Binomial(X(t), exp(-theta_2 h)) record by record."""
    few = x <= 2 * (N_RECORD + 1 - nk)
    for part, fn in ((few, _death_by_lifetimes), (~few, _death_by_steps)):
        if part.any():
            j = np.flatnonzero(part)
            fn(rngs, chunk[j], i[j], x[j], s[j], nk[j], ev[j], rate[j], max_events, out, failed, events)


def _death_by_lifetimes(rngs, chunk, i, x, s, nk, ev, rate, max_events, out, failed, events) -> None:
    """X(tau_k) = #{lifetimes s + Exp(theta_2) ending after tau_k}, for the records k >= nk."""
    owner = np.repeat(np.arange(i.size), x)
    first = np.concatenate([[0], np.cumsum(x)])  # chain c's lifetimes: first[c] .. first[c + 1]
    edges = first[np.searchsorted(chunk, np.arange(len(rngs) + 1))]
    end = _chunkwise(rngs, None, "standard_exponential", edges=edges)
    end /= np.repeat(rate, x)
    end += np.repeat(s, x)
    # alive at record k <=> end > T_RECORD[k] <=> k < #{record times before the end} =: k_end
    counts = np.bincount(owner * (N_RECORD + 1) + _records_before(end), minlength=i.size * (N_RECORD + 1))
    alive = x[:, None] - np.cumsum(counts.reshape(i.size, N_RECORD + 1), axis=1)[:, :N_RECORD]
    n_events = ev + np.bincount(owner[end < T_END], minlength=i.size)
    _write_linear(i, nk, alive, 0, n_events, max_events, out, failed, events)


def _death_by_steps(rngs, chunk, i, x, s, nk, ev, rate, max_events, out, failed, events) -> None:
    """X(tau_k) ~ Binomial(X(tau_{k-1}), exp(-theta_2 (tau_k - tau_{k-1}))), for the records k >= nk."""
    x_start, s = x.copy(), s.copy()
    rec = np.zeros((i.size, N_RECORD), dtype=np.int64)
    for k in range(int(nk.min()), N_RECORD + 1):
        step = np.flatnonzero((nk <= k) & (x > 0))
        if step.size == 0:
            continue
        p = np.exp(-rate[step] * (_T_NEXT[k] - s[step]))
        x[step] = _chunkwise(rngs, chunk[step], "binomial", x[step], p)
        s[step] = _T_NEXT[k]
        if k < N_RECORD:
            rec[step, k] = x[step]
    _write_linear(i, nk, rec, 0, ev + (x_start - x), max_events, out, failed, events)


def _write_linear(i, nk, xs, ys, n_events, max_events, out, failed, events) -> None:
    """Write X = xs and Y = ys (each (chains, 150) or a number) at the records k >= nk of chains i, and
    their event counts (or failure)."""
    later = np.arange(N_RECORD) >= nk[:, None]
    out[0, i, :N_RECORD] = np.where(later, xs, out[0, i, :N_RECORD])
    out[1, i, :N_RECORD] = np.where(later, ys, out[1, i, :N_RECORD])
    bad = n_events > max_events
    failed[i[bad]] = True
    events[i] = np.where(bad, max_events + 1, n_events)


def _yule_phase(rngs, chunk, i, y, s, nk, ev, rate, max_events, out, failed, events) -> None:
    """Pure birth (Yule) of the prey, record time by record time from nk, until T_END or failure."""
    if i.size == 0:
        return
    y_start, s = y.copy(), s.copy()
    rec = np.zeros((i.size, N_RECORD), dtype=np.int64)
    alive = np.ones(i.size, dtype=bool)
    for k in range(int(nk.min()), N_RECORD + 1):
        tau = _T_NEXT[k]
        step = np.flatnonzero(alive & (nk <= k))
        while step.size:  # steps of length h <= 1 / theta_3 until tau (or failure)
            left = tau - s[step]
            last = left * rate[step] <= 1.0
            h = np.where(last, left, 1.0 / rate[step])
            p = np.exp(-rate[step] * h)
            y[step] += _chunkwise(rngs, chunk[step], "negative_binomial", y[step], p)
            s[step] = np.where(last, tau, s[step] + h)
            over = ev[step] + (y[step] - y_start[step]) > max_events
            alive[step[over]] = False
            if k < N_RECORD:
                rec[step[~over & last], k] = y[step[~over & last]]
            step = step[~over & ~last]
    _write_linear(
        i, nk, 0, rec, np.where(alive, ev + (y - y_start), max_events + 1), max_events, out, failed, events
    )
