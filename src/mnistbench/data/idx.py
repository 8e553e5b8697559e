"""IDX file I/O with strict validation.

A truncated download or a wrong file in the data directory must fail here, with the file
named, rather than as a shape error deep inside training.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mnistbench.errors import DataError
from mnistbench.io import atomic_path

GZIP_MAGIC = b"\x1f\x8b"
UBYTE_CODE = 0x08
IMAGE_SIDE = 28
NUM_CLASSES = 10

_FIX = "re-download it or delete it so the workflow fetches it again"


def _raw_bytes(path: Path) -> bytes:
    """Return the decompressed bytes, treating gzip as gzip whatever the name says."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found; run the download step first") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read the file ({exc}); check its permissions") from None
    return _decompressed(path, data)


def _decompressed(path: Path, data: bytes) -> bytes:
    if path.name.endswith(".gz") or data[:2] == GZIP_MAGIC:
        try:
            return gzip.decompress(data)
        except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise DataError(f"{path}: corrupt or truncated gzip stream ({exc}); {_FIX}") from None
    return data


def _header(path: Path, data: bytes, ndim: int | None = None) -> tuple[tuple[int, ...], int]:
    """The shape an IDX file's first bytes declare, and the header's length; ``ndim``: the
    dimensions the file must have (3 for MNIST images, 1 for labels)."""
    if len(data) < 4:
        raise DataError(
            f"{path}: only {len(data)} bytes, too short for an IDX header; it is not an IDX "
            f"file - {_FIX}"
        )
    zero1, zero2, dtype_code, found = data[0], data[1], data[2], data[3]
    if zero1 != 0 or zero2 != 0:
        raise DataError(
            f"{path}: bad IDX magic {data[:4].hex()} (must start with two zero bytes); it is not "
            f"an IDX file - {_FIX}"
        )
    if dtype_code != UBYTE_CODE:
        raise DataError(
            f"{path}: IDX dtype code 0x{dtype_code:02x} is not supported (MNIST uses 0x08, "
            f"unsigned byte); {_FIX}"
        )
    if found == 0:
        raise DataError(f"{path}: IDX header declares 0 dimensions; {_FIX}")
    header_len = 4 + 4 * found
    if len(data) < header_len:
        raise DataError(
            f"{path}: IDX header truncated (expected {header_len} header bytes, got "
            f"{len(data)}); {_FIX}"
        )
    shape = struct.unpack(f">{found}I", data[4:header_len])
    if ndim is not None and found != ndim:
        kind = {3: "images", 1: "labels"}.get(ndim, f"{ndim}-dimensional")
        raise DataError(
            f"{path}: IDX magic {data[:4].hex()} declares {found} dimension(s), shape "
            f"{list(shape)}, but an MNIST {kind} file has {ndim} (magic 000008{ndim:02x}); check "
            f"that this is an MNIST {kind} file or {_FIX}"
        )
    return shape, header_len


def read_idx(
    path: str | os.PathLike[str], ndim: int | None = None, content: bytes | None = None
) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed) into a uint8 array of the header's shape;
    with ``ndim``, a file of other dimensions is refused before its payload is read. With
    ``content`` (the file's bytes, e.g. a zip archive's member), ``path`` only names it."""
    path = Path(path)
    data = _raw_bytes(path) if content is None else _decompressed(path, content)
    shape, header_len = _header(path, data, ndim)
    expected = header_len + math.prod(shape)  # Python ints: a huge header cannot overflow
    if len(data) != expected:
        kind = "truncated" if len(data) < expected else "too long"
        raise DataError(
            f"{path}: payload {kind}: header shape {list(shape)} needs {expected} bytes, "
            f"file has {len(data)} bytes; {_FIX}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header_len).reshape(shape).copy()


def read_idx_header(path: str | os.PathLike[str], ndim: int | None = None) -> tuple[int, ...]:
    """The shape an IDX file declares, from its first bytes only (a quick check of a file
    before a job reads it whole)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(1028)
        if head[:2] == GZIP_MAGIC:
            with gzip.open(path, "rb") as gz:
                head = gz.read(1028)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: corrupt or truncated gzip stream ({exc}); {_FIX}") from None
    return _header(path, head, ndim)[0]


def encode_idx(array: np.ndarray) -> bytes:
    """Encode a uint8 array as uncompressed IDX bytes."""
    arr = np.ascontiguousarray(array)
    if arr.dtype != np.uint8:
        raise DataError(f"IDX writer only supports uint8 arrays, got {arr.dtype}; convert first")
    if not 1 <= arr.ndim <= 255:
        raise DataError(f"IDX writer needs 1 to 255 dimensions, got {arr.ndim}")
    header = bytes([0, 0, UBYTE_CODE, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.tobytes()


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write ``array`` as IDX atomically; gzip (with mtime 0, so bytes are deterministic) if .gz."""
    path = Path(path)
    payload = encode_idx(array)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        if path.name.endswith(".gz"):
            buf = io.BytesIO()
            # filename="" keeps the temp name out of the gzip header.
            with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0) as gz:
                gz.write(payload)
            fh.write(buf.getvalue())
        else:
            fh.write(payload)
        fh.flush()
        os.fsync(fh.fileno())


def check_pair_shapes(
    images_path: Path, images_shape: Sequence[int], labels_path: Path, labels_shape: Sequence[int]
) -> None:
    """An images/labels pair is MNIST-shaped: images [N, 28, 28] and labels [N]."""
    images_shape, labels_shape = tuple(images_shape), tuple(labels_shape)
    if len(images_shape) != 3 or images_shape[1:] != (IMAGE_SIDE, IMAGE_SIDE):
        raise DataError(
            f"{images_path}: expected images of shape (N, 28, 28), found {list(images_shape)}; "
            f"check that this is an MNIST image file (not a labels file) or {_FIX}"
        )
    if len(labels_shape) != 1:
        raise DataError(
            f"{labels_path}: expected a 1-D labels array, found shape {list(labels_shape)}; "
            f"check that this is an MNIST labels file (not an images file) or {_FIX}"
        )
    if images_shape[0] != labels_shape[0]:
        raise DataError(
            f"{images_path} has {images_shape[0]} images but {labels_path} has "
            f"{labels_shape[0]} labels; the two files do not belong together - re-download both"
        )


def read_mnist_pair(
    images_path: str | os.PathLike[str],
    labels_path: str | os.PathLike[str],
    num_classes: int = NUM_CLASSES,
) -> tuple[np.ndarray, np.ndarray]:
    """Read an images/labels pair and check it is MNIST-shaped and consistent, its labels
    below ``num_classes`` (the data set's)."""
    images_path, labels_path = Path(images_path), Path(labels_path)
    images = read_idx(images_path, ndim=3)
    labels = read_idx(labels_path, ndim=1)
    check_pair_shapes(images_path, images.shape, labels_path, labels.shape)
    check_labels(labels_path, labels, num_classes)
    return images, labels


def check_labels(path: Path, labels: np.ndarray, num_classes: int, first: int = 0) -> None:
    """Labels from ``first`` to ``first + num_classes - 1``, or a DataError naming the file."""
    bad = np.unique(labels[(labels < first) | (labels >= first + num_classes)])
    if bad.size:
        shown = ", ".join(str(int(v)) for v in bad[:10])
        raise DataError(
            f"{path}: labels must be {first}..{first + num_classes - 1}, found {shown} (the data "
            f"set has {num_classes} classes); this is not a labels file of it - {_FIX}"
        )
