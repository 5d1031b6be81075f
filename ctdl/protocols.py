"""The contracts between ctdl's models, datamodules and callbacks, written down once.

Each is a `typing.Protocol`: a part that needs something from another one asks
``isinstance(obj, Contract)`` (runtime-checkable protocols check that the members exist, not their
signatures) and names the missing members in its error or warning (`missing_members`), instead
of guessing with ``hasattr``. Tensors are batch first everywhere: a batch of n points in R^d is
(n, d), a batch of images (n, C, H, W).

Models: `Flow` (a density with log_prob and sample and a map to its latent
space), `TransportModel` (a classifier whose features move along ODE blocks), `PosteriorModel`
(sample_posterior), and the `Predictor` contract of ``predict_step`` (`Predictions`). Datamodules:
`SplitData` (train/val/test splits), `KnownDensity` (may know its true density), `PosteriorData`
and `ReferencePosteriors` (simulation pairs for posterior estimation), `ObservedData`,
`KnownParameters`, `NamedParameters` and `PredictiveSimulator` (what a posterior figure shows),
`GridSampler`, `LabelledImages` and `GaussianFieldData` (diffusion's sample-quality metrics), and
the data facts a config links into the model (`DATA_FACTS`: dim, input_shape, num_classes,
cond_dim, problem, problem_args, pde_args).
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol, runtime_checkable

from torch import Generator, Tensor
from torch.utils.data import Dataset

Predictions = dict[str, Tensor]
"""What ``predict_step`` returns: named tensors, each (batch, ...) with the batch of the input
first and the same batch size for every name; names are short identifiers (file names of the
prediction writer: ``<name>.npy``)."""

STAGES = ("train", "val", "test")


@runtime_checkable
class Flow(Protocol):
    """A density p on R^d given by an invertible map F from data to a standard normal latent space:
    log p(x) = log N(F(x); 0, I) + log |det dF/dx|, samples F^{-1}(z) with z ~ N(0, I)."""

    def log_prob(self, x: Tensor) -> Tensor:
        """Natural-log density log p(x) at x (n, d); returns (n,)."""
        ...

    def sample(self, n: int, generator: Generator | None = None) -> Tensor:
        """n samples (n, d) of p; reproducible when a seeded `generator` is given."""
        ...

    def forward(self, x: Tensor) -> Tensor:
        """The map F: data x (n, d) -> latent z (n, d)."""
        ...

    def inverse(self, z: Tensor) -> Tensor:
        """F^{-1}: latent z (n, d) -> data (n, d)."""
        ...


@runtime_checkable
class TransportModel(Protocol):
    """A classifier whose features u(t) move along ODE blocks on [0, T] (as ODENetClassifier)."""

    T: float
    """Final time of each block."""

    def features(self, x: Tensor, n_times: int | None = None) -> list[Tensor]:
        """Features through time, one (n_times, batch, ...) tensor per stage."""
        ...

    def head(self, u: Tensor) -> Tensor:
        """Class logits (batch, num_classes) from the last stage's final features u(T)."""
        ...

    def __call__(self, x: Tensor) -> Tensor:
        """Class logits (batch, num_classes)."""
        ...


@runtime_checkable
class Predictor(Protocol):
    """A module whose ``predict_step`` returns `Predictions` (a dict of named batch-first tensors).

    ``ctdl predict`` writes every name to ``<run>/predict/<name>.npy`` (and the per-sample columns to
    ``predictions.csv``) through ``ctdl.callbacks.PredictionWriter``, which checks the returned value.
    """

    def predict_step(self, batch: Any, batch_idx: int) -> Predictions: ...


@runtime_checkable
class SplitData(Protocol):
    """A datamodule that holds its train / validation / test splits as map-style datasets (None
    before ``setup()``); a sample is a tensor or a tuple whose first item is the input."""

    train_dataset: Dataset | None
    val_dataset: Dataset | None
    test_dataset: Dataset | None


@runtime_checkable
class KnownDensity(Protocol):
    """Data that may know its true density in closed form (e.g. FFJORD's 8gaussians)."""

    has_log_density: bool
    """Whether `log_density` can be called for this data set."""

    def log_density(self, x: Tensor) -> Tensor:
        """The true natural-log density at x (n, d); returns (n,)."""
        ...


@runtime_checkable
class VectorData(Protocol):
    """Data whose samples are vectors in R^dim."""

    dim: int


@runtime_checkable
class ShapedData(Protocol):
    """Data whose samples all have one shape: [d] for vectors, [C, H, W] for images."""

    input_shape: list[int]


@runtime_checkable
class ClassificationData(ShapedData, Protocol):
    """Labelled data: integer labels in 0 .. num_classes - 1."""

    num_classes: int


@runtime_checkable
class ConditionedData(Protocol):
    """Data whose samples come with a condition y in R^cond_dim (batches (x, y))."""

    cond_dim: int


@runtime_checkable
class PosteriorData(ConditionedData, Protocol):
    """Simulation pairs (theta, y) standardised with the training split's statistics: batches hold
    ((f(theta) - theta_mean) / theta_std, (y - y_mean) / y_std), f = log when `log_params`.
    The statistics are float64 tensors, None before ``setup()``."""

    dim: int
    log_params: bool
    theta_mean: Tensor | None
    theta_std: Tensor | None
    y_mean: Tensor | None
    y_std: Tensor | None


@runtime_checkable
class ReferencePosteriors(Protocol):
    """Data with observations 1..num_observations and reference posterior samples for each (raw
    units), as sbibm's tasks ship them."""

    num_observations: int

    def observation(self, i: int) -> Tensor:
        """Observation i (cond_dim,)."""
        ...

    def reference_posterior(self, i: int) -> Tensor:
        """Reference posterior samples (m, dim) for observation i."""
        ...


@runtime_checkable
class PosteriorModel(Protocol):
    """A model of posteriors pi(theta | y) that samples them in raw units (as ConditionalOTFlow)."""

    def sample_posterior(self, n: int, y: Tensor, *, generator: Generator | None = None) -> Tensor:
        """n samples (n, dim) of pi(theta | y) for one raw observation y (cond_dim,); reproducible
        when a seeded `generator` is given."""
        ...


@runtime_checkable
class ObservedData(Protocol):
    """Data with observations numbered from 1 (raw units)."""

    def observation(self, i: int) -> Tensor:
        """Observation i (cond_dim,)."""
        ...


@runtime_checkable
class KnownParameters(Protocol):
    """Data whose observations were simulated at known parameters."""

    def true_parameters(self) -> Tensor:
        """The raw parameters the observations were simulated at: (dim,) for observation 1, or
        (num_observations, dim) with row i - 1 for observation i."""
        ...


@runtime_checkable
class NamedParameters(Protocol):
    """Data that names its parameters (e.g. for axis labels)."""

    param_names: list[str]
    """One name per parameter, in order."""


class SimulatedSeries(NamedTuple):
    """Time series simulated at n parameters."""

    times: Tensor
    """(T,) the record times."""
    series: Tensor
    """(n, T, k) the k recorded quantities at each time; NaN rows where `failed`."""
    failed: Tensor
    """(n,) bool: simulations that produced no series."""
    names: tuple[str, ...]
    """The k quantities' names."""


@runtime_checkable
class PredictiveSimulator(Protocol):
    """Data whose simulator can return the time series behind its statistics (for posterior
    predictive checks)."""

    def simulate_series(self, theta: Tensor, seed: int) -> SimulatedSeries:
        """One simulation at each row of raw theta (n, dim), from `seed` alone."""
        ...


@runtime_checkable
class ControlData(Protocol):
    """Data for a control problem: start points of `ctdl.soc.make_problem(problem, **problem_args)`."""

    problem: str
    problem_args: dict


@runtime_checkable
class ControlPolicy(Protocol):
    """A learned value function Phi(t, x) of a control problem with its feedback's paths (as
    StochasticOptimalControl)."""

    problem: Any
    """The `ctdl.soc.ControlProblem` it solves."""

    def paths(self, x0: Tensor, steps: int | None = None, generator: Generator | None = None) -> Any:
        """`ctdl.soc.Paths` from x0 (n, dim) under the learned feedback."""
        ...

    def __call__(self, t: Any, x: Tensor) -> Tensor:
        """Phi(t, x), shape (n,)."""
        ...


@runtime_checkable
class PDEData(Protocol):
    """Data for the PDE control task: (v, f) instances of
    `ctdl.pde_control.AdvectionDiffusion(**pde_args)`."""

    pde_args: dict


@runtime_checkable
class GridSampler(Protocol):
    """A generative model of functions on n x n grids that samples at any grid it accepts (as
    MultilevelDiffusion)."""

    def check_resolution(self, n: int) -> None:
        """Raise a ValueError naming the fix if the model cannot run on an n x n grid."""
        ...

    def sample(
        self,
        n: int,
        resolution: int | None = None,
        steps: int | None = None,
        sampler: str | None = None,
        generator: Generator | None = None,
    ) -> Tensor:
        """n samples (n, channels, r, r) at the grid r = resolution (default the data's)."""
        ...


@runtime_checkable
class LabelledImages(Protocol):
    """Image data that hands out its labelled splits on the images' native grid, in the value range
    the model sees (for a classifier's features: a Frechet distance)."""

    native_resolution: int
    """The grid n of the stored images (n x n), e.g. 28 for MNIST."""
    reference_key: str
    """Names the data set and its split for caches, e.g. "fashion_mnist_split0"."""

    def labelled_images(self, stage: str) -> tuple[Tensor, Tensor]:
        """(images (n, C, native, native), integer labels (n,)) of "train", "val" or "test"."""
        ...


@runtime_checkable
class GaussianFieldData(Protocol):
    """Data X ~ N(0, Sigma) with Sigma a Fourier multiplier known at every grid (as GaussianFields)."""

    data_prior: Any
    """Sigma as a `ctdl.diffusion.FourierPrior` (samples, eigenvalues and C_h at any grid)."""


@runtime_checkable
class PDEController(Protocol):
    """A feedback policy for `ctdl.pde_control.AdvectionDiffusion` instances (as SourceMitigation)."""

    problem: Any
    """The `ctdl.pde_control.AdvectionDiffusion` it controls."""

    def control(self, params: Tensor) -> Tensor:
        """The rates (B, N, K) of the feedback along each instance's controlled path; params (B, P)."""
        ...


DATA_FACTS: dict[str, type] = {
    "dim": VectorData,
    "input_shape": ShapedData,
    "num_classes": ClassificationData,
    "cond_dim": ConditionedData,
    "problem": ControlData,
    "problem_args": ControlData,
    "pde_args": PDEData,
}
"""The facts a datamodule states about its data and a model takes as an argument of the same name:
``ctdl``'s CLI links each one from the datamodule into every model whose ``__init__`` has it, so a
config writes the data dimension once (in the data section, or not at all)."""


def missing_members(obj: object, protocol: type) -> list[str]:
    """The members of `protocol` that `obj` lacks (sorted; empty when isinstance would hold).

    Looked up as isinstance does, without running ``__getattr__``: a protocol member cannot be an
    ``nn.Module``'s submodule or parameter, which live behind ``nn.Module.__getattr__``."""
    get_members = getattr(typing, "get_protocol_members", None)  # Python >= 3.13
    members = get_members(protocol) if get_members else protocol.__protocol_attrs__
    return sorted(m for m in members if not _has_static(obj, m))


def _has_static(obj: object, name: str) -> bool:
    try:
        inspect.getattr_static(obj, name)
    except AttributeError:
        return False
    return True


def split(data: SplitData, stage: str) -> Dataset | None:
    """The dataset of one stage ("train", "val" or "test") of `data`."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; known: {', '.join(STAGES)}")
    return {"train": data.train_dataset, "val": data.val_dataset, "test": data.test_dataset}[stage]


def true_log_density(data: object) -> Callable[[Tensor], Tensor] | None:
    """The data's closed-form log density if it is `KnownDensity` and knows it, else None."""
    if isinstance(data, KnownDensity) and data.has_log_density:
        return data.log_density
    return None
