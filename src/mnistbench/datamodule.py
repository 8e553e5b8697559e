"""In-memory MNIST DataModule: whole batches are sliced from uint8 tensors.

The reference projects decode every image through PIL and ``ToTensor`` one sample at a time;
here a batch is one fancy-index into a resident uint8 tensor, and normalisation and
augmentation happen on the device inside the LightningModule. There is no per-sample Python and
no worker process. When training on a GPU the whole data set (47 MB as uint8) is moved there once,
so a batch never crosses the PCIe bus.
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
        index = torch.as_tensor(idx, dtype=torch.long, device=self.images.device)
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

    def resident(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The split's tensors on the device the trainer runs on (moved there once)."""
        device = self.trainer.strategy.root_device if self.trainer is not None else None
        images, labels = self.splits[split]
        if device is not None and images.device != device:
            images, labels = images.to(device), labels.to(device)
            self.splits[split] = (images, labels)
        return images, labels

    def train_dataloader(self) -> DataLoader:
        return batch_loader(*self.resident("train"), self.batch_size, shuffle=True, seed=self.seed)

    def val_dataloader(self) -> DataLoader:
        return batch_loader(*self.resident("val"), self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return batch_loader(*self.resident("test"), self.eval_batch_size, shuffle=False)
