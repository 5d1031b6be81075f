#!/usr/bin/env bash
# Set everything up, train the ODE-Net on the 2-D "peaks" data (no download needed), then test
# the best checkpoint. Extra arguments go to `ctdl fit` (e.g. --trainer.max_epochs 5).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
config=configs/odenet/peaks.yaml
.venv/bin/ctdl fit --config "$config" "$@"
run_dir="$(ls -td runs/odenet/peaks/version_* | head -n 1)"
best="$(ls -t "$run_dir"/checkpoints/best-*.ckpt | head -n 1)"
.venv/bin/ctdl test --config "$config" --ckpt_path "$best"
echo
echo "Run folder: $run_dir (config.yaml, metrics.csv, checkpoints/, figures/*.png, TensorBoard events)"
