"""The comparators of the amortized policies: the per-instance open-loop optimum (the oracle, a lower
bound on every feedback's cost), the untrained terminal-value feedback, and PPO (`baselines.ppo`,
which imports stable-baselines3 and gymnasium when it builds the agent)."""

from .oracle import OpenLoopOptimum, cost_and_gradient, open_loop_optimum
from .terminal_value import terminal_value_feedback

__all__ = ["OpenLoopOptimum", "cost_and_gradient", "open_loop_optimum", "terminal_value_feedback"]
