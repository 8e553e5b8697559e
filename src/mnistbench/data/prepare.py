"""Raw IDX files -> train/val/test tensors with a fixed, seeded validation split.

Doing the split once, here, means every model in the comparison sees exactly the same
validation images, and the split is a tracked artefact rather than a side effect of training.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mnistbench.data.idx import IMAGE_SIDE, NUM_CLASSES, read_mnist_pair
from mnistbench.data.manifest import manifest_classes
from mnistbench.data.registry import DIGITS, RAW_NAMES
from mnistbench.errors import ConfigError, DataError
from mnistbench.io import atomic_path, read_json, write_json

_RERUN = "rerun the prepare step (delete the file if needed) to regenerate it"


def _split_stats(labels: np.ndarray, num_classes: int) -> dict[str, Any]:
    return {
        "count": int(labels.shape[0]),
        "class_counts": np.bincount(labels, minlength=num_classes).astype(int).tolist(),
    }


def split_digest(images: np.ndarray, labels: np.ndarray) -> str:
    """sha256 of a split's content (shape, pixels, labels): stats.json carries it, so the jobs
    that read the split rerun when its content changes, not when the file is merely rewritten."""
    h = hashlib.sha256(repr((images.shape, labels.shape)).encode())
    h.update(np.ascontiguousarray(images, dtype=np.uint8).tobytes())
    h.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    return h.hexdigest()


def _pixel_stats(images: np.ndarray) -> tuple[float, float]:
    """Exact mean/std in 0..1 via a 256-bin histogram (no float copy of the whole set)."""
    hist = np.bincount(images.reshape(-1), minlength=256).astype(np.float64)
    values = np.arange(256, dtype=np.float64) / 255.0
    total = hist.sum()
    mean = float((hist * values).sum() / total)
    std = float(np.sqrt((hist * (values - mean) ** 2).sum() / total))
    return mean, std


def _save_split(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    payload = {
        "images": torch.from_numpy(np.ascontiguousarray(images, dtype=np.uint8)),
        "labels": torch.from_numpy(labels.astype(np.int64)),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def split_indices(n_train: int, val_size: int, split_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, val_idx), each sorted, from a permutation fixed by ``split_seed``."""
    perm = np.random.default_rng(split_seed).permutation(n_train)
    return np.sort(perm[val_size:]), np.sort(perm[:val_size])


def prepare_dataset(
    raw_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    val_size: int,
    split_seed: int,
) -> dict[str, Any]:
    """Write train.pt / val.pt / test.pt and stats.json (with the class names the raw files'
    manifest records: what training, evaluation and the report call the labels); return the
    stats."""
    raw, out = Path(raw_dir), Path(out_dir)
    classes = manifest_classes(raw)
    k = len(classes)
    train_x, train_y = read_mnist_pair(
        raw / RAW_NAMES["train_images"], raw / RAW_NAMES["train_labels"], k
    )
    test_x, test_y = read_mnist_pair(
        raw / RAW_NAMES["test_images"], raw / RAW_NAMES["test_labels"], k
    )
    n_train = int(train_y.shape[0])
    if isinstance(val_size, bool) or not isinstance(val_size, (int, np.integer)):
        raise ConfigError(f"data.val_size must be an integer, got {val_size!r}; fix the config")
    if not 0 < val_size < n_train:
        raise ConfigError(
            f"data.val_size = {val_size} must be between 1 and {n_train - 1} (the training set "
            f"in {raw} has {n_train} images); lower data.val_size"
        )
    train_idx, val_idx = split_indices(n_train, int(val_size), split_seed)
    splits = {
        "train": (train_x[train_idx], train_y[train_idx]),
        "val": (train_x[val_idx], train_y[val_idx]),
        "test": (test_x, test_y),
    }
    stats: dict[str, Any] = {"val_size": int(val_size), "split_seed": split_seed}
    stats["classes"] = classes
    for name, (images, labels) in splits.items():
        _save_split(out / f"{name}.pt", images, labels)
        stats[name] = _split_stats(labels, k)
        stats[name]["sha256"] = split_digest(images, labels)
    mean, std = _pixel_stats(splits["train"][0])
    stats["train"]["pixel_mean"] = mean
    stats["train"]["pixel_std"] = std
    write_json(out / "stats.json", stats)
    return stats


def load_split(
    path: str | os.PathLike[str], num_classes: int = NUM_CLASSES
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load one prepared split, refusing anything that is not what prepare_dataset wrote (for
    a data set of ``num_classes`` classes)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: prepared split not found; {_RERUN}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt/foreign file
        raise DataError(f"{path}: cannot load ({type(exc).__name__}: {exc}); {_RERUN}") from None
    if not isinstance(obj, dict) or not {"images", "labels"} <= set(obj):
        found = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
        raise DataError(f"{path}: expected keys 'images' and 'labels', found {found}; {_RERUN}")
    images, labels = obj["images"], obj["labels"]
    if not isinstance(images, torch.Tensor) or not isinstance(labels, torch.Tensor):
        raise DataError(f"{path}: 'images' and 'labels' must be tensors; {_RERUN}")
    if (
        images.dtype != torch.uint8
        or images.ndim != 3
        or tuple(images.shape[1:])
        != (
            IMAGE_SIDE,
            IMAGE_SIDE,
        )
    ):
        raise DataError(
            f"{path}: 'images' must be uint8 [N, 28, 28], found {images.dtype} "
            f"{list(images.shape)}; {_RERUN}"
        )
    if labels.dtype != torch.int64 or labels.ndim != 1:
        raise DataError(
            f"{path}: 'labels' must be int64 [N], found {labels.dtype} {list(labels.shape)}; "
            f"{_RERUN}"
        )
    if labels.shape[0] != images.shape[0]:
        raise DataError(f"{path}: {images.shape[0]} images but {labels.shape[0]} labels; {_RERUN}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise DataError(f"{path}: labels outside 0..{num_classes - 1}; {_RERUN}")
    return images, labels


def split_classes(stats: dict[str, Any]) -> list[str]:
    """The class names of a prepared data set's stats.json (the ten digits for one prepared
    before they were recorded)."""
    return list(stats.get("classes") or DIGITS)


def prepared_classes(prepared_dir: str | os.PathLike[str]) -> list[str]:
    """The class names of the data set prepared in ``prepared_dir`` (its stats.json)."""
    path = Path(prepared_dir) / "stats.json"
    return split_classes(read_json(path) if path.is_file() else {})
