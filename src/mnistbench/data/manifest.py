"""The four raw files and the manifest that records exactly which ones a run used.

The names shared by every source of raw data (download, local copy, the synthetic generator)
live here and in ``registry``, below all of them, so that no two of them import each other. The
manifest's sha256s let later steps (and DVC) detect a silently swapped data set; its class names
tell the prepare step (and through it training, evaluation and the report) what the labels mean.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from mnistbench.data.idx import read_idx
from mnistbench.data.registry import RAW_NAMES, REGISTRY, classes_of
from mnistbench.io import read_json, write_json

# key -> (official file name, official md5) of MNIST (the registry's entry, the same mapping)
MNIST_FILES: dict[str, tuple[str, str]] = REGISTRY["mnist"].files

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
    out_dir: str | os.PathLike[str],
    source: str,
    origin: Any,
    dataset: str | None = None,
    *,
    write: bool = True,
    archive: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Describe the four files in ``out_dir`` (hashes, sizes, shapes) of the data set named
    ``dataset`` (its class names; None: generated digits) and, by default, write
    ``out_dir/manifest.json`` atomically, so every later step can tell which data it saw.
    ``official_md5`` says whether a file is the one published (null for the files taken out of
    an ``archive``, whose own name and md5 are recorded instead)."""
    out = Path(out_dir)
    published = REGISTRY[dataset].files if dataset in REGISTRY else MNIST_FILES
    files: dict[str, Any] = {}
    for key, name in RAW_NAMES.items():
        path = out / name
        official = published[key][1] if key in published else None
        sha256, md5, size = file_digests(path)
        files[key] = {
            "name": name,
            "sha256": sha256,
            "md5": md5,
            "bytes": size,
            "shape": list(read_idx(path).shape),
            "official_md5": None if official is None else md5 == official,
        }
    manifest = {
        "source": source,
        "origin": origin,
        "dataset": dataset,
        "classes": list(classes_of(dataset or "")),
        "files": files,
    }
    if archive:
        manifest["archive"] = archive
    if write:
        write_json(out / MANIFEST_NAME, manifest)
    return manifest


def manifest_classes(raw_dir: str | os.PathLike[str]) -> list[str]:
    """The class names the manifest in ``raw_dir`` records (the ten digits for a manifest
    written before it recorded them)."""
    path = Path(raw_dir) / MANIFEST_NAME
    recorded = read_json(path).get("classes") if path.is_file() else None
    return list(recorded or classes_of(""))
