"""What the PDE control task reports: a policy's cost J on held-out instances, against no control and
the per-instance open-loop optimum, and the milliseconds of one feedback decision.

For instances b = 1..B with J_b under the policy, J_b^0 without control (a = 0) and J_b^* of the
oracle (`ctdl.pde_control.baselines.open_loop_optimum`):

    test_cost = mean_b J_b,   over_oracle = mean_b J_b / J_b^*,
    cost_ratio_to_no_control = mean_b J_b / J_b^0,
    improvement = sum_b (J_b^0 - J_b) / sum_b (J_b^0 - J_b^*)   (the fraction of the achievable improvement),

the last a ratio of means (a mean of per-instance ratios would be carried by the instances where
control can gain almost nothing), with its paired standard error by the delta method,
sd_b(a_b - R g_b) / (sqrt(B) mean_b g_b) for a_b = J_b^0 - J_b, g_b = J_b^0 - J_b^*, R the ratio
(every method on the same instances).

A decision is what a controller computes at one time for one instance from the state: for a value
policy the coefficients of Phi at t, grad_u Phi and the Hamiltonian's law; for a direct policy (or the
PPO baseline) one call of its network.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import Tensor

from .objective import PDEPolicy, policy_rollout
from .problem import AdvectionDiffusion, Instances
from .rollout import rollout

__all__ = [
    "mean",
    "no_control_cost",
    "policy_cost",
    "costs",
    "improvement",
    "cost_summary",
    "decide",
    "decision_ms",
    "episode_seconds",
]


def mean(x) -> float:
    """The mean of the values, rounded to 5 decimals (the precision of the recorded results)."""
    return round(float(np.mean(np.asarray(x, dtype=float))), 5)


def no_control_cost(problem: AdvectionDiffusion, inst: Instances) -> Tensor:
    """J with a = 0, (B,)."""
    zero = torch.zeros(problem.steps, len(inst), problem.num_actuators, dtype=torch.float64)
    with torch.no_grad():
        return rollout(problem, inst, zero).cost


def policy_cost(problem: AdvectionDiffusion, policy: PDEPolicy, inst: Instances) -> Tensor:
    """J under the policy's feedback, (B,)."""
    with torch.no_grad():
        return policy_rollout(problem, policy, inst)[0].cost


def costs(problem: AdvectionDiffusion, policy: PDEPolicy, params: Tensor) -> tuple[Tensor, Tensor]:
    """J under the policy's feedback and without control on the instances params (B, P); (B,) each."""
    inst = problem.instances(params)
    return policy_cost(problem, policy, inst), no_control_cost(problem, inst)


def improvement(cost, free, oracle) -> tuple[float, float]:
    """The fraction of the achievable improvement, sum_b (J0_b - J_b) / sum_b (J0_b - J*_b), and its
    paired standard error (delta method), from the costs (B,) under the policy, without control and of
    the oracle on the same instances."""
    cost, free, oracle = (np.asarray(x, dtype=float) for x in (cost, free, oracle))
    if not cost.shape == free.shape == oracle.shape:
        raise ValueError(
            f"costs of different instances: policy {cost.shape}, no control {free.shape}, "
            f"oracle {oracle.shape}"
        )
    gain = free - oracle
    if np.any(gain <= 0):
        bad = int(np.sum(gain <= 0))
        raise ValueError(f"{bad} instances where the oracle does not improve on no control")
    achieved = free - cost
    ratio = achieved.mean() / gain.mean()
    n = len(gain)
    se = (achieved - ratio * gain).std(ddof=1) / (np.sqrt(n) * gain.mean()) if n > 1 else float("nan")
    return round(float(ratio), 4), round(float(se), 4)


def cost_summary(cost: Tensor, free: Tensor, oracle=None) -> dict:
    """{test_cost, over_oracle, improvement, improvement_se (with the oracle's costs (B,)),
    cost_ratio_to_no_control} of costs (B,)."""
    out = {"test_cost": mean(cost)}
    if oracle is not None:
        oracle = np.asarray(oracle, dtype=float)
        if oracle.shape != tuple(cost.shape):
            raise ValueError(
                f"the oracle's costs are for {len(oracle)} instances but the policy ran on {len(cost)}; "
                f"evaluate on the oracle's instances (or rerun the oracle on these)"
            )
        out["over_oracle"] = mean(cost.numpy() / oracle)
        out["improvement"], out["improvement_se"] = improvement(cost, free, oracle)
    out["cost_ratio_to_no_control"] = mean((cost / free).numpy())
    return out


def decide(problem: AdvectionDiffusion, policy: PDEPolicy, inst: Instances, u: Tensor, t: float) -> Tensor:
    """One feedback decision a (B, K) at time t from states u (B, n)."""
    with torch.no_grad():
        return policy.feedback(inst, torch.tensor([float(t)], dtype=torch.float64))(0, t, u)


def decision_ms(problem: AdvectionDiffusion, policy: PDEPolicy, params: Tensor, repeats: int = 5) -> float:
    """Milliseconds of one decision for one instance at t = T/2 from a fixed random state: the mean of
    `repeats` decisions per instance, the median over the instances of params (B, P)."""
    u = torch.rand(1, problem.size, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    t = 0.5 * problem.horizon
    times = []
    for row in problem.check_params(params):
        inst = problem.instances(row[None])
        start = time.perf_counter()
        for _ in range(repeats):
            decide(problem, policy, inst, u, t)
        times.append(1000 * (time.perf_counter() - start) / repeats)
    return float(np.median(times))


def episode_seconds(problem: AdvectionDiffusion, policy: PDEPolicy, params: Tensor) -> float:
    """Seconds of one whole controlled episode (all `problem.steps` decisions and solves) for one
    instance, the median over the instances of params (B, P): what compares with one oracle solve."""
    times = []
    for row in problem.check_params(params):
        inst = problem.instances(row[None])
        start = time.perf_counter()
        policy_cost(problem, policy, inst)
        times.append(time.perf_counter() - start)
    return float(np.median(times))
