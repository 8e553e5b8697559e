"""The four raw MNIST files and the manifest that records exactly which ones a run used.

The names shared by every source of raw data (download, local copy, the synthetic generator)
live here, below all of them, so that no two of them import each other. The manifest's sha256s
let later steps (and DVC) detect a silently swapped data set.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from mnistbench.data.idx import read_idx
from mnistbench.io import write_json

# key -> (official file name, official md5)
MNIST_FILES: dict[str, tuple[str, str]] = {
    "train_images": ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    "train_labels": ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
    "test_images": ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
    "test_labels": ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
}

MANIFEST_NAME = "manifest.json"
_CHUNK = 1 << 16


def file_digests(path: str | os.PathLike[str]) -> tuple[str, str, int]:
    """Return (sha256, md5, size) of a file, streaming so large files are fine."""
    sha, md5, size = hashlib.sha256(), hashlib.md5(), 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            sha.update(chunk)
            md5.update(chunk)
            size += len(chunk)
    return sha.hexdigest(), md5.hexdigest(), size


def build_manifest(
    out_dir: str | os.PathLike[str], source: str, origin: Any, *, write: bool = True
) -> dict[str, Any]:
    """Describe the four files in ``out_dir`` (hashes, sizes, shapes) and, by default, write
    ``out_dir/manifest.json`` atomically, so every later step can tell which data it saw."""
    out = Path(out_dir)
    files: dict[str, Any] = {}
    for key, (name, official) in MNIST_FILES.items():
        path = out / name
        sha256, md5, size = file_digests(path)
        files[key] = {
            "name": name,
            "sha256": sha256,
            "md5": md5,
            "bytes": size,
            "shape": list(read_idx(path).shape),
            "official_md5": md5 == official,
        }
    manifest = {"source": source, "origin": origin, "files": files}
    if write:
        write_json(out / MANIFEST_NAME, manifest)
    return manifest
