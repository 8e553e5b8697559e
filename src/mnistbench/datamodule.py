"""In-memory MNIST DataModule: whole batches are sliced from uint8 tensors.

The reference projects decode every image through PIL and ``ToTensor`` one sample at a time;
here a batch is one fancy-index into a resident uint8 tensor, and normalisation happens on the
device inside the LightningModule. There is no per-sample Python and no worker process.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from mnistbench.data.prepare import load_split


class TensorBatches(Dataset):
    """A dataset indexed by a whole list of indices at once (used with ``batch_size=None``)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images = images
        self.labels = labels

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, idx: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.as_tensor(idx, dtype=torch.long)
        return self.images[index], self.labels[index]


def batch_loader(
    images: torch.Tensor, labels: torch.Tensor, batch_size: int, shuffle: bool, seed: int = 0
) -> DataLoader:
    ds = TensorBatches(images, labels)
    if shuffle:
        sampler = RandomSampler(ds, generator=torch.Generator().manual_seed(seed))
    else:
        sampler = SequentialSampler(ds)
    return DataLoader(ds, batch_size=None, sampler=BatchSampler(sampler, batch_size, False))


class MNISTDataModule(L.LightningDataModule):
    """Serves the prepared ``train.pt``/``val.pt``/``test.pt`` of one data set."""

    def __init__(
        self, prepared_dir: str | Path, batch_size: int, eval_batch_size: int = 1000, seed: int = 0
    ) -> None:
        super().__init__()
        self.prepared_dir = Path(prepared_dir)
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.seed = seed
        self.splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def setup(self, stage: str | None = None) -> None:
        for split in ("train", "val", "test"):
            if split not in self.splits:
                self.splits[split] = load_split(self.prepared_dir / f"{split}.pt")

    def train_dataloader(self) -> DataLoader:
        return batch_loader(*self.splits["train"], self.batch_size, shuffle=True, seed=self.seed)

    def val_dataloader(self) -> DataLoader:
        return batch_loader(*self.splits["val"], self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return batch_loader(*self.splits["test"], self.eval_batch_size, shuffle=False)
