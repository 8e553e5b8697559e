"""Data layer: raw IDX files in, validated tensors and a fixed validation split out.

Every step writes atomically and records hashes, so a rerun either reproduces the same bytes
or fails with a message naming the file to fix.
"""

from __future__ import annotations

from typing import Any

from mnistbench.data.download import (
    DEFAULT_MIRRORS,
    MNIST_FILES,
    build_manifest,
    copy_local,
    download_mnist,
)
from mnistbench.data.idx import read_idx, read_mnist_pair, write_idx
from mnistbench.data.synthetic import make_digits, write_synthetic

__all__ = [
    "DEFAULT_MIRRORS",
    "MNIST_FILES",
    "build_manifest",
    "copy_local",
    "download_mnist",
    "load_split",
    "make_digits",
    "prepare_dataset",
    "read_idx",
    "read_mnist_pair",
    "write_idx",
    "write_synthetic",
]


def __getattr__(name: str) -> Any:
    # prepare imports torch (slow); load it only when asked so download/IDX steps stay light.
    if name in ("load_split", "prepare_dataset"):
        from mnistbench.data import prepare

        return getattr(prepare, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
