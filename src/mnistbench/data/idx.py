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
    if path.name.endswith(".gz") or data[:2] == GZIP_MAGIC:
        try:
            return gzip.decompress(data)
        except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise DataError(f"{path}: corrupt or truncated gzip stream ({exc}); {_FIX}") from None
    return data


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed) into a uint8 array of the header's shape."""
    path = Path(path)
    data = _raw_bytes(path)
    if len(data) < 4:
        raise DataError(
            f"{path}: only {len(data)} bytes, too short for an IDX header; it is not an IDX "
            f"file - {_FIX}"
        )
    zero1, zero2, dtype_code, ndim = data[0], data[1], data[2], data[3]
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
    if ndim == 0:
        raise DataError(f"{path}: IDX header declares 0 dimensions; {_FIX}")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise DataError(
            f"{path}: IDX header truncated (expected {header_len} header bytes, got "
            f"{len(data)}); {_FIX}"
        )
    shape = struct.unpack(f">{ndim}I", data[4:header_len])
    expected = header_len + math.prod(shape)  # Python ints: a huge header cannot overflow
    if len(data) != expected:
        kind = "truncated" if len(data) < expected else "too long"
        raise DataError(
            f"{path}: payload {kind}: header shape {list(shape)} needs {expected} bytes, "
            f"file has {len(data)} bytes; {_FIX}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header_len).reshape(shape).copy()


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


def read_mnist_pair(
    images_path: str | os.PathLike[str], labels_path: str | os.PathLike[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Read an images/labels pair and check it is MNIST-shaped and consistent."""
    images_path, labels_path = Path(images_path), Path(labels_path)
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3 or images.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE):
        raise DataError(
            f"{images_path}: expected images of shape (N, 28, 28), found {list(images.shape)}; "
            f"check that this is an MNIST image file (not a labels file) or {_FIX}"
        )
    if labels.ndim != 1:
        raise DataError(
            f"{labels_path}: expected a 1-D labels array, found shape {list(labels.shape)}; "
            f"check that this is an MNIST labels file (not an images file) or {_FIX}"
        )
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{images_path} has {images.shape[0]} images but {labels_path} has "
            f"{labels.shape[0]} labels; the two files do not belong together - re-download both"
        )
    bad = np.unique(labels[labels >= NUM_CLASSES])
    if bad.size:
        shown = ", ".join(str(int(v)) for v in bad[:10])
        raise DataError(
            f"{labels_path}: labels must be 0..9, found {shown}; this is not an MNIST labels "
            f"file - {_FIX}"
        )
    return images, labels
