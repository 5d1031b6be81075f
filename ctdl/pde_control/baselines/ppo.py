"""PPO (stable-baselines3) on `SourceMitigationEnv`: the model-free baseline of the amortized policies.

The agent sees the environment's (5, g, g) images through the same convolutional encoder as the
direct policy (`ctdl.pde_control.networks.FieldEncoder`), draws its episodes from a pool of training
instances, and acts in [-1, 1]^K (gymnasium's `RescaleAction`); a rate is a = a_max (action + 1) / 2.
One environment step is one PDE solve, so the env steps of training are its PDE solves. Every
`eval_every` env steps, the deterministic policy's mean cost on held-out instances is recorded.

By default observations and rewards are normalised by running statistics (sb3's `VecNormalize`;
the policy normalises with the statistics frozen at decision time) and the Gaussian policy starts
with log-std `log_std_init`.

stable-baselines3 and gymnasium are imported when the agent is built, not with this module.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from ..evaluate import policy_cost
from ..networks import OBSERVATION_CHANNELS, FieldEncoder, StateFeedback, observe
from ..problem import AdvectionDiffusion, Instances

__all__ = [
    "PPO_SETTINGS",
    "PPOPolicy",
    "PPOTraining",
    "field_features_extractor",
    "settings_text",
    "train_ppo",
]

PPO_SETTINGS = dict(n_steps=500, batch_size=250, n_epochs=10, gamma=1.0, gae_lambda=0.95, learning_rate=3e-4)
"""PPO's settings: the rollout buffer per env, minibatch, epochs, no discount (the return is -J), GAE."""
NET_ARCH = dict(pi=[64], vf=[64])


def settings_text() -> str:
    """PPO_SETTINGS in words, as the benchmark records them."""
    s = PPO_SETTINGS
    lr = f"{s['learning_rate']:.0e}".replace("e-0", "e-")
    return (
        f"n_steps {s['n_steps']}, batch {s['batch_size']}, {s['n_epochs']} epochs, gamma {s['gamma']:g}, "
        f"GAE {s['gae_lambda']:g}, lr {lr}"
    )


def field_features_extractor():
    """The class of an sb3 features extractor around `FieldEncoder` (built lazily: it subclasses sb3's)."""
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

    class FieldFeatures(BaseFeaturesExtractor):
        """Observations (B, 5, g, g) -> `FieldEncoder` features (B, 16 width)."""

        def __init__(self, observation_space, width: int = 16) -> None:
            encoder = FieldEncoder(OBSERVATION_CHANNELS, width)
            super().__init__(observation_space, encoder.features)
            self.encoder = encoder

        def forward(self, obs: Tensor) -> Tensor:
            return self.encoder(obs)

    return FieldFeatures


class PPOPolicy:
    """A PPO agent as a feedback policy: `control(inst, u, t)` is its deterministic action on the
    observation of (u, t), mapped from [-1, 1] to the rates [0, a_max], (B, K) float64."""

    def __init__(self, problem: AdvectionDiffusion, agent, normalizer=None) -> None:
        self.problem, self.agent, self.normalizer = problem, agent, normalizer

    def feedback(self, inst: Instances, times: Tensor) -> StateFeedback:
        """The agent's feedback law for these instances (any times)."""
        return StateFeedback(self, inst)

    def control(self, inst: Instances, u: Tensor, t: float) -> Tensor:
        obs = observe(self.problem, inst, u, t).numpy()
        if self.normalizer is not None:
            obs = self.normalizer.normalize_obs(obs)
        action, _ = self.agent.predict(obs, deterministic=True)
        return torch.from_numpy(self.problem.a_max * (np.clip(action, -1, 1) + 1) / 2).double()


@dataclass
class PPOTraining:
    """A trained agent, its policy, its environments, the validation curve (env_steps, pde_solves,
    val_cost, s) and the seconds of training."""

    agent: object
    policy: PPOPolicy
    envs: list
    curve: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def solves(self) -> int:
        """PDE solves of training (one per env step)."""
        return sum(e.solves for e in self.envs)


def _validation_callback(training: PPOTraining, params: Tensor, every: int, log: Callable):
    """An sb3 callback that appends the deterministic policy's mean cost on `params` to the curve at
    the first step and then every `every` env steps."""
    from stable_baselines3.common.callbacks import BaseCallback

    problem = training.policy.problem

    class Validate(BaseCallback):
        def _on_training_start(self) -> None:
            self.start = time.perf_counter()

        def _on_step(self) -> bool:
            if self.num_timesteps >= len(training.curve) * every:
                cost = policy_cost(problem, training.policy, problem.instances(params))
                training.curve.append(
                    {
                        "env_steps": self.num_timesteps,
                        "pde_solves": training.solves,
                        "val_cost": round(cost.mean().item(), 5),
                        "s": round(time.perf_counter() - self.start, 1),
                    }
                )
                log(training.curve[-1])
            return True

    return Validate()


def train_ppo(
    problem: AdvectionDiffusion,
    train: Tensor,
    val: Tensor,
    env_steps: int,
    eval_every: int = 20_000,
    n_envs: int = 4,
    seed: int = 0,
    width: int = 16,
    normalize: bool = True,
    log_std_init: float = 0.0,
    log: Callable = print,
) -> PPOTraining:
    """PPO ("CnnPolicy" with the `FieldEncoder` of `width`, `PPO_SETTINGS`, CPU) on `n_envs`
    environments drawing from the training instances train (M, P), for `env_steps` env steps, with
    the validation curve on val (V, P); `normalize`: observations and rewards by running statistics
    (`VecNormalize`, no discount in the reward's scale, as the return is -J); `log_std_init`: the
    policy's initial log-std in the action space [-1, 1]^K (sb3's default is 0)."""
    from gymnasium.wrappers import RescaleAction
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from ..env import SourceMitigationEnv

    envs = [SourceMitigationEnv(problem, params=train) for _ in range(n_envs)]
    vec = DummyVecEnv([lambda e=e: RescaleAction(e, np.float32(-1), np.float32(1)) for e in envs])
    normalizer = None
    if normalize:
        vec = normalizer = VecNormalize(vec, norm_obs=True, norm_reward=True, gamma=PPO_SETTINGS["gamma"])
    agent = PPO(
        "CnnPolicy",
        vec,
        **PPO_SETTINGS,
        seed=seed,
        verbose=0,
        device="cpu",
        policy_kwargs=dict(
            features_extractor_class=field_features_extractor(),
            features_extractor_kwargs=dict(width=width),
            normalize_images=False,
            net_arch=NET_ARCH,
            log_std_init=log_std_init,
        ),
    )
    training = PPOTraining(agent, PPOPolicy(problem, agent, normalizer), envs)
    start = time.perf_counter()
    agent.learn(total_timesteps=env_steps, callback=_validation_callback(training, val, eval_every, log))
    training.seconds = time.perf_counter() - start
    return training
