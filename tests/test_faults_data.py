"""Bad data and bad mirrors: a clear DataError naming the file, retries with back-off, the next
mirror, and never a partial file under a final name. A real HTTP server on 127.0.0.1 plays the
mirrors; a property-based test feeds random bytes and headers to the IDX reader."""

from __future__ import annotations

import gzip
import http.server
import struct
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mnistbench.data import download
from mnistbench.data.download import download_dataset
from mnistbench.data.idx import read_idx, read_mnist_pair, write_idx
from mnistbench.data.local import copy_local
from mnistbench.data.manifest import MNIST_FILES
from mnistbench.data.synthetic import write_synthetic
from mnistbench.errors import DataError, MnistbenchError
from tests.conftest import serve_synthetic_dataset

NAMES = [name for name, _ in MNIST_FILES.values()]
_real_sleep = time.sleep  # the server keeps sleeping while the tests record the client's waits


def _files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


# ------------------------------------------------------------------- a local mirror server


class _Mirror(http.server.BaseHTTPRequestHandler):
    """Routes: /good/ serves the files; /truncated/ closes the connection half-way;
    /cut/ serves a complete response holding half the file; /error/ answers 500;
    /html/ a login page; /slow/ waits past the client's timeout; /flaky/ fails once."""

    files: dict[str, bytes] = {}
    hits: Counter[str] = Counter()
    delay = 1.0

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def _send(self, code: int, body: bytes, ctype: str, length: int | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        _, route, name = self.path.split("/", 2)
        self.hits[route] += 1
        body = self.files.get(name)
        if body is None:
            self._send(404, b"not found", "text/plain")
        elif route == "good":
            self._send(200, body, "application/gzip")
        elif route == "truncated":  # announces the full length, sends half, hangs up
            self._send(200, body[: len(body) // 2], "application/gzip", length=len(body))
            self.close_connection = True
        elif route == "cut":  # a consistent response, but of a truncated file
            self._send(200, body[: len(body) // 2], "application/gzip")
        elif route == "error":
            self._send(500, b"internal error", "text/plain")
        elif route == "html":
            self._send(200, b"<!DOCTYPE html><html>Please log in</html>", "text/html")
        elif route == "slow":
            _real_sleep(self.delay)
            self._send(200, body, "application/gzip")
        elif route == "flaky":
            self.hits[f"flaky:{name}"] += 1
            if self.hits[f"flaky:{name}"] == 1:
                self._send(503, b"busy", "text/plain")
            else:
                self._send(200, body, "application/gzip")
        else:
            self._send(404, b"no such route", "text/plain")


@pytest.fixture()
def mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A mirror on 127.0.0.1 serving small generated files, whose md5s become the official."""
    with serve_synthetic_dataset(_Mirror, monkeypatch, seed=3) as url:
        yield url


@pytest.fixture()
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the back-off waits instead of sleeping them."""
    waited: list[float] = []
    monkeypatch.setattr(download.time, "sleep", waited.append)
    return waited


@pytest.mark.parametrize("route", ["truncated", "cut", "error", "slow"])
def test_transient_failures_are_retried_with_backoff_then_next_mirror(
    mirror: str, tmp_path: Path, sleeps: list[float], route: str
) -> None:
    out = tmp_path / "raw"
    manifest = download_dataset(
        out, [f"{mirror}/{route}/", f"{mirror}/good/"], retries=3, timeout=0.4, backoff=0.5
    )
    assert manifest["origin"] == f"{mirror}/good/"
    assert _Mirror.hits[route] == 3 * len(NAMES)  # every attempt used, per file
    assert sleeps == [0.5, 1.0] * len(NAMES)  # doubling back-off between attempts
    assert _files(out) == sorted([*NAMES, "manifest.json"])  # no temporary file left


@pytest.mark.parametrize("route", ["html", "missing"])
def test_permanent_failures_go_straight_to_the_next_mirror(
    mirror: str, tmp_path: Path, sleeps: list[float], route: str
) -> None:
    mirrors = [f"{mirror}/{route}/", f"{mirror}/good/"]
    download_dataset(tmp_path / "raw", mirrors, retries=3, timeout=60, backoff=1)
    assert _Mirror.hits[route] == len(NAMES) and sleeps == []


def test_flaky_mirror_succeeds_on_retry(mirror: str, tmp_path: Path, sleeps: list[float]) -> None:
    manifest = download_dataset(
        tmp_path / "raw", [f"{mirror}/flaky/"], retries=2, timeout=60, backoff=0.25
    )
    assert manifest["origin"] == f"{mirror}/flaky/" and sleeps == [0.25] * len(NAMES)


@pytest.mark.parametrize(
    ("route", "needle"),
    [
        ("truncated", "incomplete transfer"),
        ("cut", "md5"),
        ("error", "HTTP 500"),
        ("html", "not gzip"),
        ("slow", "timed out"),
    ],
)
def test_failed_download_names_the_file_and_leaves_nothing(
    mirror: str, tmp_path: Path, sleeps: list[float], route: str, needle: str
) -> None:
    out = tmp_path / "raw"
    with pytest.raises(DataError) as info:
        download_dataset(out, [f"{mirror}/{route}/"], retries=2, timeout=0.4, backoff=0.1)
    msg = str(info.value)
    assert NAMES[0] in msg and needle in msg and "data.local_dir" in msg, msg
    assert _files(out) == []  # neither a partial file under the final name nor a temp file


def test_md5_mismatch_of_a_served_file_is_named(
    mirror: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name, _ = MNIST_FILES["test_labels"]
    monkeypatch.setitem(MNIST_FILES, "test_labels", (name, "0" * 32))
    with pytest.raises(DataError) as info:
        download_dataset(tmp_path / "raw", [f"{mirror}/good/"], retries=1, timeout=60, backoff=0)
    msg = str(info.value)
    assert name in msg and "does not match the official" in msg
    assert name not in _files(tmp_path / "raw")


def test_the_real_timeout_is_short_enough_to_move_on(mirror: str, tmp_path: Path) -> None:
    """No monkeypatched sleep: a slow mirror costs about retries x timeout, then the next one."""
    t0 = time.perf_counter()
    download_dataset(
        tmp_path / "raw",
        [f"{mirror}/slow/", f"{mirror}/good/"],
        retries=2,
        timeout=0.2,
        backoff=0.05,
    )
    assert time.perf_counter() - t0 < 8


# -------------------------------------------------------------------------- local files


def _local(src: Path) -> dict:
    """A config whose MNIST files come from ``src``."""
    return {"dataset": "mnist", "data": {"source": "official", "local_dir": str(src)}}


def _mnist_like(directory: Path, n: int = 30) -> Path:
    write_synthetic(directory, n, 20, seed=0)
    return directory


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        (lambda p: p.write_bytes(p.read_bytes()[:100]), "gzip"),  # truncated gzip
        (lambda p: p.write_bytes(b"\x1f\x8b" + b"\x00" * 50), "gzip"),  # corrupt gzip
        (lambda p: p.write_bytes(gzip.compress(b"\x08\x03\x00\x00" + b"\x00" * 40)), "magic"),
        (lambda p: write_idx(p, np.zeros((30, 32, 32), np.uint8)), "(N, 28, 28)"),
        (lambda p: write_idx(p, np.zeros((29, 28, 28), np.uint8)), "do not belong together"),
    ],
)
def test_bad_local_images_name_the_file(tmp_path: Path, damage, needle: str) -> None:
    src = _mnist_like(tmp_path / "mine")
    damage(src / NAMES[0])
    with pytest.raises(DataError) as info:
        copy_local(src, tmp_path / "raw")
    assert NAMES[0] in str(info.value) and needle in str(info.value)
    assert _files(tmp_path / "raw") == []  # nothing copied before the check


def test_wrong_dimensions_name_the_magic_and_the_dimensions(tmp_path: Path) -> None:
    """An images file whose magic says 2 dimensions (0x0802): said as such, before the job
    (the header check of the dry run) and in it, with advice for a file of the user's own."""
    from mnistbench.pipeline.preflight import check_local_dir

    src = _mnist_like(tmp_path / "mine")
    raw = gzip.decompress((src / NAMES[0]).read_bytes())
    (src / NAMES[0]).write_bytes(gzip.compress(raw[:3] + b"\x02" + raw[4:]))
    not_copied = {"manifest": str(tmp_path / "raw/manifest.json")}  # none yet
    for check in (
        lambda: check_local_dir(_local(src), not_copied),
        lambda: copy_local(src, tmp_path / "raw"),
    ):
        with pytest.raises(DataError) as info:
            check()
        msg = str(info.value)
        assert f"{NAMES[0]}: IDX magic 00000802 declares 2 dimension(s), shape [30, 28]" in msg
        assert "but an MNIST images file has 3 (magic 00000803)" in msg
        assert f"replace it in data.local_dir ({src}) with a good copy" in msg
        assert "delete it" not in msg and "re-download" not in msg
    assert _files(tmp_path / "raw") == []


def test_a_local_dir_not_yet_copied_is_read_whole_before_any_job(tmp_path: Path) -> None:
    """The dry run's check reads new files of data.local_dir to the end: a cut-off file whose
    header is intact stops Snakemake before the download job deletes the data it has."""
    from mnistbench.pipeline.preflight import check_local_dir

    src = _mnist_like(tmp_path / "mine")
    whole = (src / NAMES[0]).read_bytes()
    (src / NAMES[0]).write_bytes(whole[: len(whole) * 2 // 3])
    with pytest.raises(DataError, match=rf"{NAMES[0]}: corrupt or truncated gzip stream"):
        check_local_dir(_local(src), {"manifest": "none.json"})


def test_labels_outside_0_to_9_name_the_file(tmp_path: Path) -> None:
    src = _mnist_like(tmp_path / "mine")
    write_idx(src / NAMES[1], np.array([0, 1, 10] + [2] * 27, np.uint8))
    with pytest.raises(DataError, match=rf"{NAMES[1]}: labels must be 0..9, found 10"):
        copy_local(src, tmp_path / "raw")


def test_local_dir_missing_or_incomplete(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist.*unset it to download"):
        copy_local(tmp_path / "nowhere", tmp_path / "raw")
    src = _mnist_like(tmp_path / "mine")
    (src / NAMES[3]).unlink()
    with pytest.raises(DataError, match=rf"is missing {NAMES[3]}"):
        copy_local(src, tmp_path / "raw")


# ---------------------------------------------------------------- property-based IDX reader


def _header(ndim: int, dims: list[int], code: int = 0x08, magic: bytes = b"\x00\x00") -> bytes:
    return magic + bytes([code, ndim]) + struct.pack(f">{len(dims)}I", *dims)


UNKNOWN = "unknown"  # random bytes: valid or not, the reader decides


@st.composite
def idx_files(draw: st.DrawFn) -> tuple[bytes, bool, np.ndarray | str | None]:
    """Random bytes; an IDX header (mostly valid magic) with random dims and a body that is
    exact, short or long; or a well-formed file. Gzip-compressed or not, sometimes with the gzip
    stream cut short. With the bytes, whether the name ends in .gz, and what the reader must
    return: the array a valid file holds, None where it must refuse the file, or UNKNOWN."""
    kind = draw(st.sampled_from(["random", "header", "valid"]))
    expected: np.ndarray | str | None = UNKNOWN
    if kind == "random":
        data = draw(st.binary(max_size=600))
    elif kind == "valid":
        dims = draw(st.lists(st.integers(0, 6), min_size=1, max_size=4))
        body = draw(st.binary(min_size=int(np.prod(dims)), max_size=int(np.prod(dims))))
        data = _header(len(dims), dims) + body
        expected = np.frombuffer(body, np.uint8).reshape(dims)
    else:
        ndim = draw(st.integers(0, 4))
        dims = draw(st.lists(st.integers(0, 12), min_size=ndim, max_size=ndim))
        if draw(st.booleans()):  # an occasional huge dimension: must not allocate or overflow
            dims = [*dims[:-1], draw(st.integers(0, 2**32 - 1))] if dims else dims
        code = draw(st.sampled_from([0x08, 0x08, 0x08, 0x09, 0x0D]))
        magic = draw(st.sampled_from([b"\x00\x00", b"\x00\x00", b"\x00\x01", b"\x1f\x8b"]))
        full = _header(ndim, dims, code, magic)
        header = full[: draw(st.integers(0, len(full)))] if draw(st.booleans()) else full
        size = int(np.prod(dims)) if dims and max(dims) < 2**16 else 0
        size = max(0, size + draw(st.integers(-3, 3)))
        body = draw(st.binary(min_size=size, max_size=size))
        data = header + body
        ok = header == full and magic == b"\x00\x00" and code == 0x08 and ndim >= 1
        ok = ok and size == int(np.prod(dims))
        expected = np.frombuffer(body, np.uint8).reshape(dims) if ok else None
    gz_name = draw(st.booleans())
    if draw(st.booleans()):
        data = full_gz = gzip.compress(data, mtime=0)
        if draw(st.booleans()):
            data = data[: draw(st.integers(0, len(data)))]
        if data != full_gz and expected is not UNKNOWN:
            expected = None  # a cut gzip stream
    elif gz_name and expected is not UNKNOWN:
        expected = None  # named .gz, not gzip
    return data, gz_name, expected


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(idx_files())
def test_idx_reader_reads_valid_files_exactly_and_refuses_the_rest(tmp_path: Path, case) -> None:
    """A valid file gives back exactly its array; a damaged one a DataError naming the file;
    random bytes either (never another exception)."""
    data, gz_name, expected = case
    path = tmp_path / ("sample-idx.gz" if gz_name else "sample-idx")
    path.write_bytes(data)
    if expected is None:
        with pytest.raises(DataError, match="sample-idx"):
            read_idx(path)
        return
    try:
        arr = read_idx(path)
    except MnistbenchError as exc:
        assert expected is UNKNOWN, f"a valid file was refused: {exc}"
        assert isinstance(exc, DataError) and "sample-idx" in str(exc)
        return
    if expected is not UNKNOWN:
        assert arr.dtype == np.uint8 and np.array_equal(arr, expected)
        assert arr.shape == expected.shape
        return
    raw = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    assert arr.dtype == np.uint8 and arr.ndim == raw[3] >= 1
    assert arr.tobytes() == raw[4 + 4 * arr.ndim :]


# How a valid images/labels pair can be damaged, each refused with a DataError.
DAMAGES = {
    "label 10": lambda imgs, lbls: (
        (imgs, np.append(lbls[1:], 10).astype(np.uint8)) if len(lbls) else None
    ),
    "one label too many": lambda imgs, lbls: (imgs, np.append(lbls, 0).astype(np.uint8)),
    "27-pixel rows": lambda imgs, lbls: (imgs[:, :, :27], lbls),
    "the files swapped": lambda imgs, lbls: (lbls, imgs),
    "labels as a 2-D array": lambda imgs, lbls: (imgs, lbls.reshape(-1, 1)),
}


@st.composite
def mnist_pairs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, str | None]:
    """An MNIST-shaped images/labels pair (0 to 4 images, labels 0-9), whole or with one of
    DAMAGES (its name, else None)."""
    n = draw(st.integers(0, 4))
    pixels = draw(st.binary(min_size=n * 784, max_size=n * 784))
    images = np.frombuffer(pixels, np.uint8).reshape(n, 28, 28)
    labels = np.array(draw(st.lists(st.integers(0, 9), min_size=n, max_size=n)), np.uint8)
    damage = draw(st.sampled_from([None, None, *DAMAGES]))
    damaged = DAMAGES[damage](images, labels) if damage else None
    if damaged is None:
        return images, labels, None
    return damaged[0], damaged[1], damage


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(mnist_pairs(), st.booleans())
def test_mnist_pair_reader_reads_a_valid_pair_and_refuses_a_damaged_one(
    tmp_path: Path, pair, gz: bool
) -> None:
    images, labels, damage = pair
    suffix = ".gz" if gz else ""
    ip, lp = tmp_path / f"imgs-idx3-ubyte{suffix}", tmp_path / f"lbls-idx1-ubyte{suffix}"
    write_idx(ip, images)
    write_idx(lp, labels)
    if damage is not None:
        with pytest.raises(DataError):
            read_mnist_pair(ip, lp)
        return
    got_images, got_labels = read_mnist_pair(ip, lp)
    assert np.array_equal(got_images, images) and got_images.shape == images.shape
    assert np.array_equal(got_labels, labels) and got_labels.shape == labels.shape
