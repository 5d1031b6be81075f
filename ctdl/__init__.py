"""ctdl: continuous-time deep learning on PyTorch Lightning.

The core (this package) is plain torch: `integrators` (odeint), `dynamics` (vector fields),
`blocks` (ODE blocks). Lightning lives in ctdl.models, ctdl.datamodules, ctdl.callbacks and
the `ctdl` command (ctdl.cli).
"""

__version__ = "0.1.0"
