"""The multilevel training schedule: with `resolutions` [r_1, ..., r_m] (coarse to fine) and
`schedule_steps` [s_1, ..., s_{m-1}] (increasing global steps), training runs on r_1 before step s_1,
on r_2 before s_2, ..., and on r_m after (a batch is moved to the grid by `resample`)."""

from __future__ import annotations

from collections.abc import Sequence


def check_schedule(
    resolutions: Sequence[int] | None, schedule_steps: Sequence[int] | None
) -> tuple[list[int], list[int]]:
    """The schedule as lists of ints ([] and []: the data's grid only), with clear errors for a
    wrong number of steps, steps that do not increase, and steps without resolutions."""
    resolutions = [int(r) for r in resolutions] if resolutions else []
    steps = [int(s) for s in schedule_steps] if schedule_steps else []
    if resolutions and len(steps) != len(resolutions) - 1:
        raise ValueError(
            f"schedule_steps needs len(resolutions) - 1 = {len(resolutions) - 1} "
            f"steps (when to move to the next resolution), got {steps}"
        )
    if not resolutions and steps:
        raise ValueError(f"schedule_steps {steps} given without resolutions")
    if any(b <= a for a, b in zip(steps, steps[1:], strict=False)) or any(s < 0 for s in steps):
        raise ValueError(f"schedule_steps must be increasing non-negative steps, got {steps}")
    return resolutions, steps


def check_even_grids(resolutions: list[int], data_grid: int | None) -> None:
    """Multilevel training resamples in Fourier space: every grid of the schedule and the data's even."""
    grids = resolutions + ([data_grid] if data_grid is not None else [])
    if resolutions and any(n % 2 for n in grids):
        raise ValueError(
            f"multilevel training resamples in Fourier space and needs even grids; got "
            f"resolutions {resolutions} and data grid {data_grid}"
        )


def resolution_at(resolutions: list[int], schedule_steps: list[int], step: int) -> int | None:
    """The training grid at a global step (None: no schedule, the data's own grid)."""
    if not resolutions:
        return None
    return resolutions[sum(step >= s for s in schedule_steps)]
