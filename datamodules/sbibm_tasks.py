"""The sbibm benchmark tasks (Lueckmann et al., AISTATS 2021) as simulation data, with their ten
observations and reference posteriors for C2ST."""

from __future__ import annotations

import torch

from .simulation import SimulationData

SBIBM_TASKS = (
    "two_moons",
    "slcp",
    "gaussian_linear",
    "gaussian_linear_uniform",
    "gaussian_mixture",
    "bernoulli_glm",
    "slcp_distractors",
    "bernoulli_glm_raw",
)
"""Tasks whose simulators run in Python."""
JULIA_TASKS = {
    "lotka_volterra": "its simulator is a deterministic ODE solved in Julia (diffeqtorch); the "
    "stochastic Lotka-Volterra model is ctdl.datamodules.LotkaVolterra",
    "sir": "its simulator solves the SIR ODE in Julia (diffeqtorch)",
}


def get_task(name: str):
    """The sbibm task `name`, with an error that lists the usable tasks."""
    if name in JULIA_TASKS:
        raise ValueError(
            f"sbibm task {name!r} needs Julia, which ctdl does not install: "
            f"{JULIA_TASKS[name]}. Tasks that run here: {', '.join(SBIBM_TASKS)}"
        )
    if name not in SBIBM_TASKS:
        raise ValueError(f"unknown sbibm task {name!r}; known: {', '.join(SBIBM_TASKS)}")
    try:
        import sbibm
    except ImportError as error:
        raise ImportError("the sbibm tasks need the sbi extra: pip install 'ctdl[sbi]'") from error
    return sbibm.get_task(name)


class SBIBMTask(SimulationData):
    """An sbibm task: `num_simulations` pairs from its prior and simulator (seeded), its
    observations 1-10 and their reference posterior samples (shipped with sbibm) for C2ST
    (`ctdl.protocols.ReferencePosteriors`). Parameters are used as they are (no log)."""

    def __init__(
        self,
        task: str = "two_moons",
        num_simulations: int = 1000,
        val_fraction: float = 0.1,
        n_test: int = 1000,
        observations: str | None = None,
        batch_size: int = 256,
        seed: int = 0,
        num_workers: int = 0,
        extra_simulations: str | None = None,
    ) -> None:
        """
        Args:
            task: an sbibm task that runs without Julia (see SBIBM_TASKS).
            num_simulations: the simulation budget (training + validation pairs).
            val_fraction: share of the budget held out for validation.
            n_test: further simulations for test/nll (not counted in the budget).
            observations: raw observations for ``ctdl predict`` (.npy or .csv, one per row);
                default: the task's ten observations.
            batch_size, seed, num_workers: as every ctdl datamodule.
            extra_simulations: an .npz of further raw pairs (theta, y) appended to training and
                validation (sequential rounds; `SimulationData`).
        """
        super().__init__(
            num_simulations,
            val_fraction,
            n_test,
            observations,
            batch_size,
            seed,
            num_workers,
            extra_simulations,
        )
        self.save_hyperparameters()
        self.task_name = task
        self.task = get_task(task)
        self.dim, self.cond_dim = int(self.task.dim_parameters), int(self.task.dim_data)
        self.num_observations = int(self.task.num_observations)

    def simulate(self, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """sbibm's prior and simulator draw from torch's global generator: seeded here, and the
        global state restored afterwards."""
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            theta = self.task.get_prior()(num_samples=n)
            y = self.task.get_simulator()(theta)
        return theta.double(), y.double()

    def sample_prior(self, n: int, seed: int) -> torch.Tensor:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            return self.task.get_prior()(num_samples=n).double()

    def simulate_at(self, theta: torch.Tensor, seed: int) -> torch.Tensor:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            return self.task.get_simulator()(torch.as_tensor(theta).float()).double()

    def observation(self, i: int) -> torch.Tensor:
        """Observation i (1-based, as sbibm counts), raw, (cond_dim,)."""
        self._check_index(i)
        return self.task.get_observation(num_observation=i).double().reshape(-1)

    def reference_posterior(self, i: int) -> torch.Tensor:
        """sbibm's 10,000 reference posterior samples for observation i, raw, (10000, dim)."""
        self._check_index(i)
        return self.task.get_reference_posterior_samples(num_observation=i).double()

    def true_parameters(self) -> torch.Tensor:
        """The parameters each observation was simulated at, raw, (num_observations, dim)."""
        return torch.cat(
            [
                self.task.get_true_parameters(num_observation=i).double().reshape(1, -1)
                for i in range(1, self.num_observations + 1)
            ]
        )

    def task_observations(self) -> torch.Tensor:
        return torch.stack([self.observation(i) for i in range(1, self.num_observations + 1)])

    def _check_index(self, i: int) -> None:
        if not 1 <= i <= self.num_observations:
            raise ValueError(f"{self.task_name} has observations 1..{self.num_observations}, got {i}")
