"""Data sets published as one zip of gzip files (EMNIST): the split's four files taken out of
it, or out of a directory holding them under their published names, and written in MNIST's
layout: images upright (EMNIST stores them transposed), labels counted from 0, MNIST's names.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from mnistbench.data.idx import check_labels, check_pair_shapes, read_idx, write_idx
from mnistbench.data.registry import RAW_NAMES, DataSet
from mnistbench.errors import DataError

# The images and labels files that belong together (keys of registry.RAW_NAMES).
PAIRS = (("train_images", "train_labels"), ("test_images", "test_labels"))


def read_members(zip_path: str | os.PathLike[str], ds: DataSet) -> dict[str, np.ndarray]:
    """The data set's four arrays, read from its zip as published (not yet turned upright)."""
    assert ds.archive is not None
    zip_path = Path(zip_path)
    arrays = {}
    try:
        with zipfile.ZipFile(zip_path) as zf:
            for key, member in ds.archive.members.items():
                try:
                    content = zf.read(member)
                except KeyError:
                    raise DataError(
                        f"{zip_path}: no member {member}; this is not the {ds.title} archive "
                        f"({ds.archive.name}) - delete it so that it is fetched again"
                    ) from None
                ndim = 3 if key.endswith("images") else 1
                arrays[key] = read_idx(Path(f"{zip_path}!{member}"), ndim, content=content)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(
            f"{zip_path}: not a readable zip archive ({exc}); delete it so that it is fetched again"
        ) from None
    return arrays


def read_files(paths: dict[str, Path]) -> dict[str, np.ndarray]:
    """The four arrays from files under their published names (key -> path)."""
    return {key: read_idx(path, 3 if key.endswith("images") else 1) for key, path in paths.items()}


def to_mnist_layout(
    arrays: dict[str, np.ndarray], ds: DataSet, where: str | os.PathLike[str]
) -> dict[str, np.ndarray]:
    """Checked (pairs of equal length, the data set's labels) and turned into MNIST's layout:
    images upright, labels from 0. ``where`` names the source in messages."""
    assert ds.archive is not None
    offset = ds.archive.label_offset
    out = {}
    for images, labels in PAIRS:
        x, y = arrays[images], arrays[labels]
        check_pair_shapes(Path(f"{where}: {images}"), x.shape, Path(f"{where}: {labels}"), y.shape)
        check_labels(Path(f"{where}: {labels}"), y, ds.num_classes, first=offset)
        out[images] = np.ascontiguousarray(x.transpose(0, 2, 1)) if ds.archive.transposed else x
        out[labels] = (y - offset).astype(np.uint8)
    return out


def write_raw(arrays: dict[str, np.ndarray], out_dir: str | os.PathLike[str]) -> None:
    """The four arrays as gzip IDX files under MNIST's names (``registry.RAW_NAMES``)."""
    for key, name in RAW_NAMES.items():
        write_idx(Path(out_dir) / name, arrays[key])
