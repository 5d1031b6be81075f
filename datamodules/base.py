"""Shared loaders for DataModules that hold their splits as in-memory TensorDatasets."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset


class TensorDataModule(L.LightningDataModule):
    """Base class: subclasses set batch_size, seed, num_workers and, in setup(), the
    train/val/test TensorDatasets; the loaders (seeded shuffling for train) come from here.
    `predict_dataloader` serves the test split."""

    batch_size: int
    seed: int
    num_workers: int
    train_dataset: TensorDataset | None = None
    val_dataset: TensorDataset | None = None
    test_dataset: TensorDataset | None = None

    def _loader(self, ds: TensorDataset | None, shuffle: bool) -> DataLoader:
        if ds is None:
            raise RuntimeError("call setup() before asking for a dataloader")
        gen = torch.Generator().manual_seed(self.seed) if shuffle else None
        return DataLoader(ds, batch_size=self.batch_size, shuffle=shuffle, generator=gen,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_dataset, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_dataset, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_dataset, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.test_dataset, shuffle=False)
