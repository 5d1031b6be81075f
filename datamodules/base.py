"""The base of every ctdl datamodule: loader settings, three seeded splits made once, the loaders."""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

Splits = tuple[TensorDataset, TensorDataset, TensorDataset]


class TensorDataModule(L.LightningDataModule):
    """Train / validation / test splits held in memory as TensorDatasets (`ctdl.protocols.SplitData`).

    The base owns `batch_size`, `seed` and `num_workers`, makes the splits once (the first
    ``setup()`` calls `make_splits` and keeps what it returns) and serves the loaders: training
    batches shuffled by a generator seeded with `seed`, validation and test in order, and the
    test split for ``predict``. A subclass says only how to make the data: its ``__init__``
    records its settings (cheap: the ``ctdl`` command builds a datamodule once more while parsing,
    to read the facts it links into the model, e.g. `dim`) and `make_splits` builds the three
    splits, drawing every random number from `seed` (`streams` gives independent generators).
    """

    def __init__(self, batch_size: int, seed: int = 0, num_workers: int = 0) -> None:
        """
        Args:
            batch_size: mini-batch size of every loader.
            seed: the only source of randomness (the data, its split, training-loader shuffling).
            num_workers: DataLoader worker processes.
        """
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        self.batch_size, self.seed, self.num_workers = batch_size, seed, num_workers
        self.train_dataset: TensorDataset | None = None
        self.val_dataset: TensorDataset | None = None
        self.test_dataset: TensorDataset | None = None

    def make_splits(self) -> Splits:
        """The (train, val, test) TensorDatasets; called once, by the first ``setup()``."""
        raise NotImplementedError(f"{type(self).__name__} must define make_splits() -> (train, val, test)")

    def streams(self, k: int) -> list[np.random.Generator]:
        """k independent numpy generators: the child streams of ``SeedSequence(seed)``."""
        return [np.random.default_rng(s) for s in np.random.SeedSequence(self.seed).spawn(k)]

    def setup(self, stage: str | None = None) -> None:
        """Make the three splits (once; later calls keep them)."""
        if self.train_dataset is not None:
            return
        splits = self.make_splits()
        if len(splits) != 3 or not all(isinstance(s, TensorDataset) for s in splits):
            raise TypeError(
                f"{type(self).__name__}.make_splits() must return (train, val, test) "
                f"TensorDatasets, got {[type(s).__name__ for s in splits]}"
            )
        self.train_dataset, self.val_dataset, self.test_dataset = splits

    def _loader(self, ds: TensorDataset | None, shuffle: bool) -> DataLoader:
        if ds is None:
            raise RuntimeError(f"{type(self).__name__}: call setup() before asking for a dataloader")
        gen = torch.Generator().manual_seed(self.seed) if shuffle else None
        return DataLoader(
            ds,
            batch_size=self.batch_size,
            shuffle=shuffle,
            generator=gen,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_dataset, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_dataset, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_dataset, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        """The test split, in order (``ctdl predict`` writes one row per test sample)."""
        return self._loader(self.test_dataset, shuffle=False)
