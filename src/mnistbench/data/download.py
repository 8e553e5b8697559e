"""Getting the four raw MNIST files: from mirrors (checked against the official md5s) or a
local directory, always ending with a manifest that records exactly what was used.

The manifest's sha256s let later steps (and DVC) detect a silently swapped data set.
"""

from __future__ import annotations

import difflib
import hashlib
import http.client
import os
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from mnistbench.config import schema_default
from mnistbench.data.idx import _FIX as IDX_FIX
from mnistbench.data.idx import GZIP_MAGIC, read_idx, read_mnist_pair, write_idx
from mnistbench.data.manifest import MANIFEST_NAME, MNIST_FILES, build_manifest, file_digests
from mnistbench.errors import ConfigError, DataError
from mnistbench.io import atomic_path, read_json

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
        if head[:2] != GZIP_MAGIC:
            raise _AttemptError(
                f"response is not gzip data (Content-Type {content_type or 'unknown'!r}, "
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
        "connection / proxy, or set data.local_dir to a directory that holds the four MNIST "
        "files"
    )


def _validate_pairs(directory: Path, names: dict[str, Path] | None = None) -> None:
    """Check both image/label pairs; ``names`` overrides where each key's file is."""

    def p(key: str) -> Path:
        return names[key] if names else directory / MNIST_FILES[key][0]

    read_mnist_pair(p("train_images"), p("train_labels"))
    read_mnist_pair(p("test_images"), p("test_labels"))


def download_mnist(
    out_dir: str | os.PathLike[str],
    mirrors: list[str] | None = None,
    retries: int | None = None,
    timeout: float | None = None,
    backoff: float | None = None,
) -> dict[str, Any]:
    """Download (or reuse verified copies of) the four MNIST files and write the manifest.
    A setting left out is the config's default (``data.mirrors``, ``data.download_*``)."""
    mirrors = list(schema_default("data.mirrors") if mirrors is None else mirrors)
    retries = schema_default("data.download_retries") if retries is None else retries
    timeout = schema_default("data.download_timeout_s") if timeout is None else timeout
    backoff = schema_default("data.download_backoff_s") if backoff is None else backoff
    if not mirrors:
        raise ConfigError("data.mirrors is empty; list at least one MNIST mirror URL")
    if retries < 1:
        raise ConfigError(f"retries must be at least 1, got {retries}; fix the download settings")
    if timeout <= 0:
        raise ConfigError(f"timeout must be positive, got {timeout}; fix the download settings")
    if backoff < 0:
        raise ConfigError(f"backoff must be 0 or more, got {backoff}; fix data.download_backoff_s")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    used: list[str] = []
    for name, official in MNIST_FILES.values():
        dest = out / name
        if dest.is_file() and _md5(dest) == official:
            continue
        mirror = _download_one(name, official, dest, mirrors, retries, timeout, backoff)
        if mirror not in used:
            used.append(mirror)
    _validate_pairs(out)
    origin: Any
    if not used:
        origin = _previous_origin(out) or str(out)
    else:
        used.sort(key=mirrors.index)
        origin = used[0] if len(used) == 1 else used
    return build_manifest(out, "download", origin)


def _previous_origin(out: Path) -> Any:
    """Keep the recorded mirror when every file was already present and verified."""
    try:
        old = read_json(out / MANIFEST_NAME)
        return old.get("origin") if old.get("source") == "download" else None
    except (OSError, ValueError, AttributeError):
        return None


def _near(src: Path) -> str:
    """`` (did you mean '...'?)`` for a sibling directory with a close name (a typo), or ""."""
    parent = src.parent if str(src.parent) else Path(".")
    try:
        siblings = [p.name for p in parent.iterdir() if p.is_dir()]
    except OSError:
        return ""
    close = difflib.get_close_matches(src.name, siblings, n=1, cutoff=0.6)
    return f" (did you mean {str(parent / close[0])!r}?)" if close else ""


def local_sources(local_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """The four MNIST files in data.local_dir by key (gzip-compressed or not), or a DataError
    saying what is wrong with the directory."""
    src = Path(local_dir)
    if not src.is_dir():
        where = "" if src.is_absolute() else f" ({src.resolve()})"
        raise DataError(
            f"data.local_dir = {str(src)!r}{where} does not exist or is not a directory"
            f"{_near(src)}; point it at a directory holding the four MNIST files or unset it "
            "to download them"
        )
    sources: dict[str, Path] = {}
    missing: list[str] = []
    for key, (name, _) in MNIST_FILES.items():
        gz, plain = src / name, src / name.removesuffix(".gz")
        if gz.is_file():
            sources[key] = gz
        elif plain.is_file():
            sources[key] = plain
        else:
            missing.append(name)
    if missing:
        raise DataError(
            f"data.local_dir = {str(src)!r} is missing {', '.join(missing)}; put the four MNIST "
            "files there (gzip or uncompressed) or unset data.local_dir to download them"
        )
    return sources


def local_file_error(exc: DataError, local_dir: str | os.PathLike[str]) -> DataError:
    """The same error about a file of data.local_dir, with advice that fits it: the workflow
    cannot fetch the user's own file again, so deleting or re-downloading it does not help."""
    fix = (
        f"replace it in data.local_dir ({local_dir}) with a good copy, or unset data.local_dir "
        "to download the official files"
    )
    text = str(exc).replace(IDX_FIX, fix).replace("re-download both", "replace both")
    return DataError(text)


def validate_local(local_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """The four files of data.local_dir, read whole and checked (headers, shapes, labels, pairs);
    a DataError names the file to replace there."""
    sources = local_sources(local_dir)
    try:
        _validate_pairs(Path(local_dir), sources)
    except DataError as exc:
        raise local_file_error(exc, local_dir) from None
    return sources


def copy_local(local_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> dict:
    """Copy the four files from a user directory (md5 not enforced: it may be a re-export).

    Uncompressed copies (the names without ``.gz``) are accepted and gzip-compressed on the way.
    """
    src = Path(local_dir)
    # Validate the user's files first so errors name them and nothing bad lands in out_dir.
    sources = validate_local(src)
    out = Path(out_dir)
    for key, (name, _) in MNIST_FILES.items():
        source, dest = sources[key], out / name
        if source.name.endswith(".gz"):
            with atomic_path(dest) as tmp:
                shutil.copyfile(source, tmp)
        else:
            write_idx(dest, read_idx(source))
    return build_manifest(out, "local", str(src.resolve()))
