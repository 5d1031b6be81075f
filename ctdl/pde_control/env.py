"""A gymnasium environment over the same finite-element solver, so that any RL library can learn the
source-mitigation task.

Episode: one (v, f) instance (drawn at reset, or from a given pool), u_0 = 0, `steps` IMEX Euler
steps. Observation: the (5, g, g) float32 images [u, v_x, v_y, f, t] of `ctdl.pde_control.networks.observe`
(what the project's CNN policies see). Action: the rates a in [0, a_max]^K (clipped). Reward of step
n: -dt (u_{n+1}' M u_{n+1} + alpha/2 |a_n|^2), and at the last step also -gamma u_N' M u_N, so the
episode's return is -J. `solves` counts the linear (PDE) solves, one per step.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from .networks import OBSERVATION_CHANNELS, observe
from .problem import AdvectionDiffusion
from .rollout import stage_cost, step

__all__ = ["SourceMitigationEnv"]


class SourceMitigationEnv(gym.Env):
    """The source-mitigation PDE as a gymnasium environment (see the module docstring)."""

    metadata = {"render_modes": []}

    def __init__(
        self, problem: AdvectionDiffusion | None = None, params: Tensor | None = None, **pde_args
    ) -> None:
        """
        Args:
            problem: the PDE (default `AdvectionDiffusion(**pde_args)`).
            params: a pool (M, P) of instances to draw from at reset; default a fresh draw each episode.
        """
        super().__init__()
        self.problem = problem or AdvectionDiffusion(**pde_args)
        self.pool = None if params is None else self.problem.check_params(params)
        g, K = self.problem.grid, self.problem.num_actuators
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (OBSERVATION_CHANNELS, g, g), np.float32)
        self.action_space = gym.spaces.Box(0.0, self.problem.a_max, (K,), np.float32)
        self.solves = 0
        self._inst = None

    def _observation(self) -> np.ndarray:
        return observe(self.problem, self._inst, self._u, self._n * self.problem.dt)[0].numpy()

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start an episode; options={"params": (P,) tensor} fixes the instance."""
        super().reset(seed=seed)
        gen = torch.Generator().manual_seed(int(self.np_random.integers(2**62)))
        if options and options.get("params") is not None:
            params = torch.as_tensor(options["params"], dtype=torch.float64).reshape(1, -1)
        elif self.pool is not None:
            params = self.pool[int(torch.randint(len(self.pool), (1,), generator=gen))][None]
        else:
            params = self.problem.sample_params(1, gen)
        self._inst = self.problem.instances(params)
        self._u = torch.zeros(1, self.problem.size, dtype=torch.float64)
        self._n = 0
        return self._observation(), {"params": params[0]}

    def step(self, action):
        if self._inst is None:
            raise RuntimeError("call reset() before step()")
        a = torch.as_tensor(np.asarray(action, dtype=np.float64).reshape(1, -1)).clamp(
            0.0, self.problem.a_max
        )
        with torch.no_grad():
            self._u = step(self.problem, self._inst, self._u, a)
            cost = stage_cost(self.problem, self._u, a)
        self.solves += 1
        self._n += 1
        done = self._n == self.problem.steps
        if done:
            cost = cost + self.problem.gamma * self.problem.norm2(self._u)
        return self._observation(), -float(cost), done, False, {}
