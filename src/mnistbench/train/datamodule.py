"""In-memory MNIST DataModule: whole batches are sliced from uint8 tensors.

The reference projects decode every image through PIL and ``ToTensor`` one sample at a time;
here a batch is one fancy-index into a resident uint8 tensor, and normalisation and
augmentation happen on the device inside the LightningModule. There is no per-sample Python and
no worker process. When training on a GPU the whole data set (47 MB as uint8) is moved there once,
so a batch never crosses the PCIe bus.

With several processes (DDP) Lightning cannot put its DistributedSampler in front of these
whole-batch samplers, so the sharding is done here: every rank draws the same shuffled batches
(same seed) and keeps every world_size-th one, the same number on each rank (gradients are
synchronised once per step); validation and test give each rank a contiguous slice of the split,
without padding or duplicates, and the metrics' summed states are reduced across ranks, so a
validation score covers the whole split exactly once. With one process nothing changes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from mnistbench.config.load import schema_default
from mnistbench.data.prepare import load_split, prepared_classes


class TensorBatches(Dataset):
    """A dataset indexed by a whole list of indices at once (used with ``batch_size=None``)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images = images
        self.labels = labels

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, idx: torch.Tensor | list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.as_tensor(idx, dtype=torch.long, device=self.images.device)
        return self.images[index], self.labels[index]


class IndexBatches(Sampler[torch.Tensor]):
    """Batches of indices as tensors on the data's device, one permutation per epoch.

    The same batches, in the same order, as ``BatchSampler(RandomSampler(generator=...))``, but
    the epoch's permutation crosses to the device once: a list of Python ints per batch becomes a
    copy from pageable host memory at every step, which on a GPU waits for all queued work (a
    synchronisation per step that kept the GPU idle while Python ran)."""

    def __init__(
        self, n: int, batch_size: int, shuffle: bool, seed: int, device: torch.device
    ) -> None:
        self.n, self.batch_size, self.shuffle, self.device = n, batch_size, shuffle, device
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return -(-self.n // self.batch_size)

    def __iter__(self) -> Iterator[torch.Tensor]:
        order = torch.randperm(self.n, generator=self.generator) if self.shuffle else None
        if order is None:
            order = torch.arange(self.n)
        yield from order.to(self.device).split(self.batch_size)


class RankBatches(Sampler):
    """Every ``world_size``-th batch of ``batches``, from ``rank`` on; equal counts per rank."""

    def __init__(self, batches: Sampler, rank: int, world_size: int) -> None:
        self.batches = batches
        self.rank = rank
        self.world_size = world_size

    def __len__(self) -> int:
        return len(self.batches) // self.world_size

    def __iter__(self) -> Iterator:
        stop = len(self) * self.world_size  # drop the remainder: no rank waits for another
        for i, batch in enumerate(self.batches):
            if i >= stop:
                break
            if i % self.world_size == self.rank:
                yield batch


def shard_bounds(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """The contiguous slice of ``n`` samples that ``rank`` evaluates (sizes differ by <= 1)."""
    return n * rank // world_size, n * (rank + 1) // world_size


def batch_loader(
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int,
    shuffle: bool,
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
) -> DataLoader:
    """Training (shuffle) batches are dealt out across ranks; evaluation slices are split."""
    if not shuffle and world_size > 1:
        lo, hi = shard_bounds(int(labels.shape[0]), rank, world_size)
        images, labels = images[lo:hi], labels[lo:hi]
    ds = TensorBatches(images, labels)
    batches: Sampler = IndexBatches(len(ds), batch_size, shuffle, seed, images.device)
    if shuffle and world_size > 1:
        batches = RankBatches(batches, rank, world_size)
    return DataLoader(ds, batch_size=None, sampler=batches)


class MNISTDataModule(L.LightningDataModule):
    """Serves the prepared ``train.pt``/``val.pt``/``test.pt`` of one data set."""

    def __init__(self, prepared_dir: str | Path, batch_size: int, seed: int = 0) -> None:
        super().__init__()
        self.prepared_dir = Path(prepared_dir)
        self.batch_size = batch_size
        # Validation and test batches: as large as the test set's (evaluate.batch_size default).
        self.eval_batch_size = schema_default("evaluate.batch_size")
        self.seed = seed
        self.splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def setup(self, stage: str | None = None) -> None:
        num_classes = len(prepared_classes(self.prepared_dir))
        for split in ("train", "val", "test"):
            if split not in self.splits:
                self.splits[split] = load_split(self.prepared_dir / f"{split}.pt", num_classes)

    def resident(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The split's tensors on the device the trainer runs on (moved there once)."""
        device = self.trainer.strategy.root_device if self.trainer is not None else None
        images, labels = self.splits[split]
        if device is not None and images.device != device:
            images, labels = images.to(device), labels.to(device)
            self.splits[split] = (images, labels)
        return images, labels

    def _ranks(self) -> dict[str, int]:
        if self.trainer is None:
            return {"rank": 0, "world_size": 1}
        return {"rank": self.trainer.global_rank, "world_size": self.trainer.world_size}

    def train_dataloader(self) -> DataLoader:
        return batch_loader(
            *self.resident("train"), self.batch_size, shuffle=True, seed=self.seed, **self._ranks()
        )

    def val_dataloader(self) -> DataLoader:
        return batch_loader(*self.resident("val"), self.eval_batch_size, False, **self._ranks())

    def test_dataloader(self) -> DataLoader:
        return batch_loader(*self.resident("test"), self.eval_batch_size, False, **self._ranks())
