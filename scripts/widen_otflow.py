"""Widen a trained OT-Flow's potential without changing the flow it defines (`Potential.widened`).

    python scripts/widen_otflow.py BEST.ckpt WIDE.ckpt --width 64
    ctdl fit --config configs/otflow/checkerboard_refine.yaml --model.width 64 --init_from WIDE.ckpt

The new checkpoint holds the widened weights and the hyperparameters with the new width; train it
on with --init_from (a fresh optimiser and schedule) and the same --model.width.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ctdl.models import OTFlow


def widen_checkpoint(source: str | Path, target: str | Path, width: int) -> OTFlow:
    """Load the OTFlow at `source`, widen its potential to `width` units, save it to `target`."""
    model = OTFlow.load_from_checkpoint(source, map_location="cpu")
    model.potential = model.potential.widened(width)
    model.hparams.width = width
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams),
                "widened_from": str(source)}, target)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="a trained OTFlow checkpoint")
    parser.add_argument("target", help="where to write the widened checkpoint")
    parser.add_argument("--width", type=int, required=True, help="the new width m (>= the old one)")
    args = parser.parse_args()
    model = widen_checkpoint(args.source, args.target, args.width)
    print(f"{args.target}: width {model.hparams.width}, "
          f"{sum(p.numel() for p in model.parameters())} parameters")


if __name__ == "__main__":
    main()
