"""Multilevel (function-space) score-based diffusion: the VP SDE with trace-class noise,
Fourier-multiplier priors with one resolution convention, and score networks (FNO, U-Net).

Hagemann, Mildenberger, Ruthotto, Steidl, Yang, "Multilevel diffusion: infinite dimensional
score-based diffusion models for image generation", arXiv 2303.04772.
"""

from .metrics import (
    ClassifierFrechet,
    FeatureCNN,
    dense_covariance,
    field_covariance_distances,
    train_feature_classifier,
)
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
    "FeatureCNN",
    "train_feature_classifier",
    "ClassifierFrechet",
    "dense_covariance",
    "field_covariance_distances",
]
