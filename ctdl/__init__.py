"""ctdl: continuous-time deep learning on PyTorch Lightning.

The core (this package) is plain torch: `integrators` (odeint, sdeint on one time-grid loop),
`dynamics` (vector fields), `blocks` (ODE blocks), `potential` (Phi with exact gradient and
Laplacian), `flows` (the potential flow of OT-Flow, optionally conditional) and `protocols` (the
contracts between models, datamodules and callbacks). Lightning lives in ctdl.models,
ctdl.datamodules, ctdl.callbacks and the `ctdl` command (ctdl.cli).
"""

__version__ = "0.1.0"
