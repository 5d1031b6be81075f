#!/usr/bin/env bash
# Set everything up, then train the ODE-Net on the 2-D "peaks" data (no download needed)
# and test the best checkpoint. Extra arguments go to `ctdl fit`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ctdl fit --config configs/odenet/peaks.yaml "$@"
