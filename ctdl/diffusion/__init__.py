"""Multilevel (function-space) score-based diffusion: the VP SDE with trace-class noise,
Fourier-multiplier priors with one resolution convention, and score networks (FNO, U-Net).

- priors.py: the noise C and `resample` between grids;
- sde.py: the VP SDE, its reverse-time samplers and probability flow;
- spectral.py, unet.py: the score networks; networks.py: the networks by name and their grids;
- losses.py: denoising score matching; sampling.py: the sampler by name, in chunks;
- schedule.py: the multilevel training grids;
- metrics.py: classifier Frechet distance, Gaussian-field KL and W2; evaluate.py: `sample_quality`,
  those metrics of a model's samples against the data, with their floors.

Hagemann, Mildenberger, Ruthotto, Steidl, Yang, "Multilevel diffusion: infinite dimensional
score-based diffusion models for image generation", arXiv 2303.04772.
"""

from .evaluate import sample_quality
from .losses import dsm_loss, preconditioned_score
from .metrics import (
    ClassifierFrechet,
    FeatureCNN,
    dense_covariance,
    field_covariance_distances,
    train_feature_classifier,
)
from .networks import NETWORKS, build_score_network, check_network, check_network_grid
from .priors import (
    PRIORS,
    BesselPrior,
    CombinedPrior,
    FourierPrior,
    LaplacianPrior,
    SpectralLayerPrior,
    WhitePrior,
    apply_multiplier,
    make_prior,
    resample,
    wavenumbers,
)
from .sampling import SAMPLERS, check_sampler, chunk_sizes, sample
from .schedule import check_even_grids, check_schedule, resolution_at
from .sde import (
    DIVERGENCES,
    VPSDE,
    exact_gaussian_score,
    log_likelihood,
    probability_flow,
    sample_euler_maruyama,
    sample_predictor_corrector,
)
from .spectral import FNOScore, SpectralConv2d, TimeEmbedding, check_grid
from .unet import UNetScore

__all__ = [
    "PRIORS",
    "make_prior",
    "FourierPrior",
    "WhitePrior",
    "LaplacianPrior",
    "BesselPrior",
    "SpectralLayerPrior",
    "CombinedPrior",
    "apply_multiplier",
    "resample",
    "wavenumbers",
    "VPSDE",
    "sample_euler_maruyama",
    "sample_predictor_corrector",
    "probability_flow",
    "log_likelihood",
    "exact_gaussian_score",
    "DIVERGENCES",
    "SpectralConv2d",
    "FNOScore",
    "TimeEmbedding",
    "check_grid",
    "UNetScore",
    "NETWORKS",
    "build_score_network",
    "check_network",
    "check_network_grid",
    "dsm_loss",
    "preconditioned_score",
    "SAMPLERS",
    "check_sampler",
    "chunk_sizes",
    "sample",
    "sample_quality",
    "check_schedule",
    "check_even_grids",
    "resolution_at",
    "FeatureCNN",
    "train_feature_classifier",
    "ClassifierFrechet",
    "dense_covariance",
    "field_covariance_distances",
]
