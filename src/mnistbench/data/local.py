"""A data set's four raw files copied from a local directory (``data.local_dir``) instead of
downloaded: validated whole first, so errors name the user's file and nothing bad lands in
data/. The md5 is not enforced (a re-export is fine); the manifest records each file's sha256.

The directory holds the files under their published names, gzip-compressed or not (MNIST,
Fashion-MNIST and KMNIST: MNIST's names). For EMNIST it holds the published zip (gzip.zip) or
the split's four files from it (directly or in its gzip/ folder), turned into MNIST's layout
on the way (``archive``).
"""

from __future__ import annotations

import difflib
import os
import shutil
from pathlib import Path

import numpy as np

from mnistbench.data import archive
from mnistbench.data.idx import _FIX as IDX_FIX
from mnistbench.data.idx import read_idx, read_mnist_pair, write_idx
from mnistbench.data.manifest import build_manifest
from mnistbench.data.registry import RAW_NAMES, REGISTRY, DataSet
from mnistbench.errors import DataError
from mnistbench.io import atomic_path

MNIST = REGISTRY["mnist"]


def _near(src: Path) -> str:
    """`` (did you mean '...'?)`` for a sibling directory with a close name (a typo), or ""."""
    parent = src.parent if str(src.parent) else Path(".")
    try:
        siblings = [p.name for p in parent.iterdir() if p.is_dir()]
    except OSError:
        return ""
    close = difflib.get_close_matches(src.name, siblings, n=1, cutoff=0.6)
    return f" (did you mean {str(parent / close[0])!r}?)" if close else ""


def local_sources(local_dir: str | os.PathLike[str], ds: DataSet = MNIST) -> dict[str, Path]:
    """The data set's four files in data.local_dir by key (gzip-compressed or not), or
    ``{"archive": its zip}``; a DataError saying what is wrong with the directory otherwise."""
    src = Path(local_dir)
    what = f"the {ds.title} files"
    if not src.is_dir():
        where = "" if src.is_absolute() else f" ({src.resolve()})"
        raise DataError(
            f"data.local_dir = {str(src)!r}{where} does not exist or is not a directory"
            f"{_near(src)}; point it at a directory holding {what} or unset it to download them"
        )
    if ds.archive is not None and (src / ds.archive.name).is_file():
        return {"archive": src / ds.archive.name}
    folders = [src, src / "gzip"] if ds.archive is not None else [src]
    sources: dict[str, Path] = {}
    missing: list[str] = []
    for key, name in ds.published().items():
        found = [f / n for f in folders for n in (name, name.removesuffix(".gz"))]
        hit = next((path for path in found if path.is_file()), None)
        if hit is None:
            missing.append(name)
        else:
            sources[key] = hit
    if missing:
        packed = f" (or {ds.archive.name}, which holds them)" if ds.archive else ""
        raise DataError(
            f"data.local_dir = {str(src)!r} is missing {', '.join(missing)}{packed}; put "
            f"{what} there (gzip or uncompressed) or unset data.local_dir to download them"
            f"{_renames(folders, missing)}"
        )
    return sources


def _renames(folders: list[Path], missing: list[str]) -> str:
    """Advice for files there under near-miss names (e.g. Kaggle's copies of MNIST,
    ``train-images.idx3-ubyte``): rename them to the published names."""
    present = [p for f in folders if f.is_dir() for p in f.iterdir() if p.is_file()]
    pairs = []
    for name in missing:
        plain = name.removesuffix(".gz")
        stems = {p.name.removesuffix(".gz"): p.name for p in present}
        close = difflib.get_close_matches(plain, list(stems), n=1, cutoff=0.85)
        if close:
            found = stems[close[0]]
            target = name if found.endswith(".gz") else plain
            pairs.append(f"{found!r} to {target!r}")
    return f". Files there have near-miss names: rename {', '.join(pairs)}" if pairs else ""


def local_file_error(exc: DataError, local_dir: str | os.PathLike[str]) -> DataError:
    """The same error about a file of data.local_dir, with advice that fits it: the workflow
    cannot fetch the user's own file again, so deleting or re-downloading it does not help."""
    fix = (
        f"replace it in data.local_dir ({local_dir}) with a good copy, or unset data.local_dir "
        "to download the official files"
    )
    text = str(exc).replace(IDX_FIX, fix).replace("re-download both", "replace both")
    text = text.replace("delete it so that it is fetched again", fix)
    return DataError(text)


def _unpacked(sources: dict[str, Path], ds: DataSet, where: Path) -> dict[str, np.ndarray]:
    """An archive data set's four arrays from its zip or its files, in MNIST's layout."""
    if "archive" in sources:
        arrays = archive.read_members(sources["archive"], ds)
    else:
        arrays = archive.read_files(sources)
    return archive.to_mnist_layout(arrays, ds, where)


def validate_local(local_dir: str | os.PathLike[str], ds: DataSet = MNIST) -> dict[str, Path]:
    """The four files of data.local_dir, read whole and checked (headers, shapes, labels, pairs);
    a DataError names the file to replace there."""
    sources = local_sources(local_dir, ds)
    try:
        if ds.archive is not None:
            _unpacked(sources, ds, Path(local_dir))
        else:
            for images, labels in archive.PAIRS:
                read_mnist_pair(sources[images], sources[labels], ds.num_classes)
    except DataError as exc:
        raise local_file_error(exc, local_dir) from None
    return sources


def copy_local(
    local_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str], ds: DataSet = MNIST
) -> dict:
    """Copy the four files from a user directory (md5 not enforced: it may be a re-export).

    Uncompressed copies (the names without ``.gz``) are accepted and gzip-compressed on the way.
    """
    src, out = Path(local_dir), Path(out_dir)
    if ds.archive is not None:
        sources = local_sources(src, ds)
        try:
            arrays = _unpacked(sources, ds, src)
        except DataError as exc:
            raise local_file_error(exc, src) from None
        archive.write_raw(arrays, out)
        return build_manifest(out, "local", str(src.resolve()), ds.name)
    # Validate the user's files first so errors name them and nothing bad lands in out_dir.
    sources = validate_local(src, ds)
    for key, name in RAW_NAMES.items():
        source, dest = sources[key], out / name
        if source.name.endswith(".gz"):
            with atomic_path(dest) as tmp:
                shutil.copyfile(source, tmp)
        else:
            write_idx(dest, read_idx(source))
    return build_manifest(out, "local", str(src.resolve()), ds.name)
