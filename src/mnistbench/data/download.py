"""Getting a data set's four raw files from its mirrors, each checked against the official md5
(``registry``; EMNIST: its one zip, from which ``archive`` takes the split's files), always
ending with a manifest that records exactly what was used. A local copy instead: ``local``.

The manifest's sha256s let later steps (and DVC) detect a silently swapped data set.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from mnistbench.data import archive
from mnistbench.data.idx import GZIP_MAGIC, read_mnist_pair
from mnistbench.data.manifest import MANIFEST_NAME, build_manifest, file_digests
from mnistbench.data.registry import RAW_NAMES, REGISTRY, DataSet
from mnistbench.errors import ConfigError, DataError
from mnistbench.io import atomic_path, read_json

MNIST = REGISTRY["mnist"]
ZIP_MAGIC = b"PK"

_CHUNK = 1 << 16
_USER_AGENT = "mnistbench/0.1 (+urllib)"


class _AttemptError(Exception):
    """One download attempt failed; ``permanent`` means retrying the same URL is pointless."""

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


def _md5(path: Path) -> str:
    return file_digests(path)[1]


def _join(mirror: str, name: str) -> str:
    return mirror.rstrip("/") + "/" + name


def _fetch(url: str, dest: Path, expected_md5: str, timeout: float) -> None:
    """Download ``url`` to ``dest`` atomically, or raise _AttemptError leaving nothing behind."""
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    with atomic_path(dest) as tmp:
        md5 = hashlib.md5()
        head = b""
        content_type = ""
        try:
            with urllib.request.urlopen(request, timeout=timeout) as resp, open(tmp, "wb") as fh:
                content_type = resp.headers.get("Content-Type", "")
                declared = resp.headers.get("Content-Length")
                received = 0
                while chunk := resp.read(_CHUNK):
                    if len(head) < 2:
                        head += chunk[:2]
                    md5.update(chunk)
                    fh.write(chunk)
                    received += len(chunk)
                fh.flush()
                os.fsync(fh.fileno())
                # urllib returns a short body without error when the server hangs up early.
                if declared and declared.isdigit() and received != int(declared):
                    raise _AttemptError(
                        f"connection closed after {received} of {declared} bytes "
                        "(incomplete transfer)"
                    )
        except urllib.error.HTTPError as exc:
            # 4xx other than timeout / rate-limit will not change on retry.
            permanent = 400 <= exc.code < 500 and exc.code not in (408, 429)
            raise _AttemptError(f"HTTP {exc.code} {exc.reason}", permanent) from None
        except urllib.error.URLError as exc:
            raise _AttemptError(f"network error: {exc.reason}") from None
        except (TimeoutError, http.client.HTTPException, OSError) as exc:
            raise _AttemptError(f"{type(exc).__name__}: {str(exc) or 'timed out'}") from None
        magic, kind = (ZIP_MAGIC, "zip") if dest.name.endswith(".zip") else (GZIP_MAGIC, "gzip")
        if head[:2] != magic:
            raise _AttemptError(
                f"response is not {kind} data (Content-Type {content_type or 'unknown'!r}, "
                f"starts with {head[:2]!r}); the mirror probably served an error page",
                permanent=True,
            )
        if md5.hexdigest() != expected_md5:
            raise _AttemptError(
                f"md5 {md5.hexdigest()} does not match the official {expected_md5} "
                "(incomplete or altered file)"
            )


def _download_one(
    name: str,
    expected_md5: str,
    dest: Path,
    mirrors: list[str],
    retries: int,
    timeout: float,
    backoff: float,
) -> str:
    """Fetch one file trying every mirror; return the mirror that worked."""
    last_errors: dict[str, str] = {}
    for mirror in mirrors:
        url = _join(mirror, name)
        for attempt in range(retries):
            try:
                _fetch(url, dest, expected_md5, timeout)
                return mirror
            except _AttemptError as exc:
                last_errors[mirror] = f"{url}: {exc}"
                if exc.permanent:
                    break
                if attempt + 1 < retries and backoff > 0:
                    time.sleep(backoff * 2**attempt)
    details = "; ".join(f"[{m}] {e}" for m, e in last_errors.items())
    raise DataError(
        f"{dest}: could not download {name} from any mirror ({details}). Check the network "
        "connection / proxy, or set data.local_dir to a directory that holds the data set's "
        "files"
    )


def _validate_pairs(directory: Path, ds: DataSet) -> None:
    """Check both image/label pairs of the raw files (MNIST's names, the data set's classes)."""
    for images, labels in archive.PAIRS:
        paths = (directory / RAW_NAMES[images], directory / RAW_NAMES[labels])
        read_mnist_pair(*paths, ds.num_classes)


def download_dataset(
    out_dir: str | os.PathLike[str],
    mirrors: list[str] | None = None,
    *,
    retries: int,
    timeout: float,
    backoff: float,
    ds: DataSet = MNIST,
) -> dict[str, Any]:
    """Download (or reuse verified copies of) the data set's files and write the manifest.
    ``mirrors`` replace the official ones (``{dataset}`` in one: the data set's name); the
    settings are the config's ``data.download_*``, handed in by the caller (data/ reads no
    config: an edit of the config's schema downloads nothing again)."""
    mirrors = [m.replace("{dataset}", ds.name) for m in (mirrors or ds.mirrors)]
    if not mirrors:
        raise ConfigError(f"{ds.name} has no mirror; list one in data.mirrors or set local_dir")
    if retries < 1:
        raise ConfigError(f"retries must be at least 1, got {retries}; fix the download settings")
    if timeout <= 0:
        raise ConfigError(f"timeout must be positive, got {timeout}; fix the download settings")
    if backoff < 0:
        raise ConfigError(f"backoff must be 0 or more, got {backoff}; fix data.download_backoff_s")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if ds.archive is not None:  # one zip: fetched once, kept beside the files taken out of it
        zipped = {ds.archive.name: (ds.archive.name, ds.archive.md5)}
    else:
        zipped = {RAW_NAMES[key]: published for key, published in ds.files.items()}
    used: list[str] = []
    for dest_name, (name, official) in zipped.items():
        dest = out / dest_name
        if dest.is_file() and _md5(dest) == official:
            continue
        mirror = _download_one(name, official, dest, mirrors, retries, timeout, backoff)
        if mirror not in used:
            used.append(mirror)
    packed = None
    if ds.archive is not None:
        zip_path = out / ds.archive.name
        arrays = archive.read_members(zip_path, ds)
        archive.write_raw(archive.to_mnist_layout(arrays, ds, zip_path), out)
        packed = {"name": ds.archive.name, "md5": ds.archive.md5, "official_md5": True}
    _validate_pairs(out, ds)
    origin: Any
    if not used:
        origin = _previous_origin(out) or str(out)
    else:
        used.sort(key=mirrors.index)
        origin = used[0] if len(used) == 1 else used
    return build_manifest(out, "download", origin, ds.name, archive=packed)


def _previous_origin(out: Path) -> Any:
    """Keep the recorded mirror when every file was already present and verified."""
    try:
        old = read_json(out / MANIFEST_NAME)
        return old.get("origin") if old.get("source") == "download" else None
    except (OSError, ValueError, AttributeError):
        return None
