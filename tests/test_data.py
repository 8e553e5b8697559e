"""Tests for the data layer: IDX I/O, synthetic digits, preparation, download and local copy."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import shutil
import struct
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from mnistbench.data.download import download_dataset
from mnistbench.data.idx import read_idx, read_mnist_pair, write_idx
from mnistbench.data.local import copy_local
from mnistbench.data.manifest import MNIST_FILES
from mnistbench.data.prepare import load_split, prepare_dataset
from mnistbench.data.synthetic import make_digits, write_synthetic
from mnistbench.errors import ConfigError, DataError
from mnistbench.io import read_json
from tests.conftest import serve_synthetic_dataset

NAMES = [name for name, _ in MNIST_FILES.values()]


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


# ---------------------------------------------------------------------------- IDX format


@pytest.mark.parametrize("name", ["arr.idx", "arr.idx.gz"])
def test_idx_round_trip(tmp_path: Path, name: str) -> None:
    arr = np.random.default_rng(0).integers(0, 256, (7, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / name, arr)
    back = read_idx(tmp_path / name)
    assert back.dtype == np.uint8 and back.shape == arr.shape
    np.testing.assert_array_equal(back, arr)
    labels = np.arange(10, dtype=np.uint8)
    write_idx(tmp_path / ("l" + name), labels)
    np.testing.assert_array_equal(read_idx(tmp_path / ("l" + name)), labels)
    assert _leftovers(tmp_path) == []


def test_idx_gz_is_byte_deterministic_and_magic_detected(tmp_path: Path) -> None:
    arr = np.arange(100, dtype=np.uint8).reshape(4, 25)
    write_idx(tmp_path / "a.gz", arr)
    write_idx(tmp_path / "b.gz", arr)
    data = (tmp_path / "a.gz").read_bytes()
    assert data == (tmp_path / "b.gz").read_bytes()
    assert data[4:8] == b"\x00\x00\x00\x00"  # gzip mtime field: no timestamp in the bytes
    # gzip content under a name without .gz is still recognised by its magic bytes.
    shutil.copy(tmp_path / "a.gz", tmp_path / "noext")
    np.testing.assert_array_equal(read_idx(tmp_path / "noext"), arr)


def _raw_idx(dtype_code: int, shape: tuple[int, ...], payload: bytes, magic0: int = 0) -> bytes:
    return (
        bytes([magic0, 0, dtype_code, len(shape)])
        + struct.pack(f">{len(shape)}I", *shape)
        + (payload)
    )


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (_raw_idx(0x08, (2, 2), b"\x00" * 4, magic0=1), "magic"),
        (_raw_idx(0x0D, (2, 2), b"\x00" * 16), "0x0d"),
        (_raw_idx(0x08, (3, 28, 28), b"\x00" * 100), "truncated"),
        (_raw_idx(0x08, (2, 2), b"\x00" * 9), "too long"),
        (b"\x00\x00", "too short"),
        (bytes([0, 0, 8, 3, 0, 0]), "header truncated"),
    ],
)
def test_idx_malformed_raises_data_error(tmp_path: Path, content: bytes, needle: str) -> None:
    path = tmp_path / "bad-file-idx3-ubyte"
    path.write_bytes(content)
    with pytest.raises(DataError) as info:
        read_idx(path)
    msg = str(info.value)
    assert "bad-file-idx3-ubyte" in msg and needle in msg


def test_idx_truncated_payload_reports_byte_counts(tmp_path: Path) -> None:
    path = tmp_path / "short.gz"
    path.write_bytes(gzip.compress(_raw_idx(0x08, (2, 28, 28), b"\x01" * 1000)))
    with pytest.raises(DataError) as info:
        read_idx(path)
    msg = str(info.value)
    assert "short.gz" in msg and str(16 + 2 * 784) in msg and str(16 + 1000) in msg
    assert "re-download" in msg


@pytest.mark.parametrize("kind", ["truncated", "garbage", "bad_crc"])
def test_idx_corrupt_gzip(tmp_path: Path, kind: str) -> None:
    good = gzip.compress(_raw_idx(0x08, (50, 28, 28), bytes(range(256)) * 153 + b"\x00" * 112))
    if kind == "truncated":
        content = good[: len(good) // 2]
    elif kind == "garbage":
        content = b"this is not gzip at all" * 10
    else:
        content = good[:-8] + b"\xff" * 8  # wrong CRC/size trailer
    path = tmp_path / "broken-idx3-ubyte.gz"
    path.write_bytes(content)
    with pytest.raises(DataError, match="broken-idx3-ubyte.gz"):
        read_idx(path)


def test_read_idx_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nope.gz"):
        read_idx(tmp_path / "nope.gz")


def _pair(tmp: Path, images: np.ndarray, labels: np.ndarray) -> tuple[Path, Path]:
    ip, lp = tmp / "imgs-idx3-ubyte.gz", tmp / "lbls-idx1-ubyte.gz"
    write_idx(ip, images)
    write_idx(lp, labels)
    return ip, lp


def test_read_mnist_pair_ok(tmp_path: Path) -> None:
    ip, lp = _pair(tmp_path, np.zeros((5, 28, 28), np.uint8), np.arange(5, dtype=np.uint8))
    images, labels = read_mnist_pair(ip, lp)
    assert images.shape == (5, 28, 28) and labels.tolist() == [0, 1, 2, 3, 4]


def test_read_mnist_pair_count_mismatch(tmp_path: Path) -> None:
    ip, lp = _pair(tmp_path, np.zeros((5, 28, 28), np.uint8), np.zeros(4, np.uint8))
    with pytest.raises(DataError) as info:
        read_mnist_pair(ip, lp)
    msg = str(info.value)
    assert ip.name in msg and lp.name in msg and "5" in msg and "4" in msg


def test_read_mnist_pair_label_range(tmp_path: Path) -> None:
    ip, lp = _pair(
        tmp_path, np.zeros((3, 28, 28), np.uint8), np.array([1, 12, 200], dtype=np.uint8)
    )
    with pytest.raises(DataError) as info:
        read_mnist_pair(ip, lp)
    msg = str(info.value)
    assert lp.name in msg and "12" in msg and "200" in msg


@pytest.mark.parametrize("shape", [(3, 28, 27), (3, 784), (3, 1, 28, 28)])
def test_read_mnist_pair_wrong_image_dims(tmp_path: Path, shape: tuple[int, ...]) -> None:
    ip, lp = _pair(tmp_path, np.zeros(shape, np.uint8), np.zeros(3, np.uint8))
    with pytest.raises(DataError) as info:
        read_mnist_pair(ip, lp)
    assert ip.name in str(info.value) and str(list(shape)) in str(info.value)


def test_read_mnist_pair_labels_not_1d(tmp_path: Path) -> None:
    ip, lp = _pair(tmp_path, np.zeros((3, 28, 28), np.uint8), np.zeros((3, 2), np.uint8))
    with pytest.raises(DataError, match=lp.name):
        read_mnist_pair(ip, lp)


# ------------------------------------------------------------------------ synthetic digits


def test_make_digits_deterministic_and_shaped() -> None:
    a_x, a_y = make_digits(200, 3)
    b_x, b_y = make_digits(200, 3)
    assert a_x.tobytes() == b_x.tobytes() and a_y.tobytes() == b_y.tobytes()
    c_x, _ = make_digits(200, 4)
    assert a_x.tobytes() != c_x.tobytes()
    assert a_x.shape == (200, 28, 28) and a_x.dtype == np.uint8
    assert a_y.shape == (200,) and a_y.dtype == np.uint8
    assert Counter(a_y.tolist()) == {c: 20 for c in range(10)}
    assert a_y[:20].tolist() != sorted(a_y[:20].tolist())  # shuffled
    # MNIST-like: dark background, bright strokes.
    assert 0.05 < a_x.mean() / 255 < 0.3
    assert a_x.max() >= 200
    corners = np.concatenate([a_x[:, :2, :2].ravel(), a_x[:, -2:, -2:].ravel()])
    assert corners.mean() < 20


def test_make_digits_rejects_bad_n() -> None:
    with pytest.raises(ConfigError):
        make_digits(0, 0)


def test_make_digits_fast() -> None:
    """CPU seconds of this process, not wall time: other jobs on the machine cannot fail it."""
    start = time.process_time()
    make_digits(5000, 0)
    assert time.process_time() - start < 5.0


def test_make_digits_learnable() -> None:
    """Nearest class mean, the crudest classifier there is, must beat chance by far."""
    x, y = make_digits(2000, 11)
    xt, yt = make_digits(500, 12)
    feats = x.reshape(len(x), -1).astype(np.float32) / 255
    test = xt.reshape(len(xt), -1).astype(np.float32) / 255
    means = np.stack([feats[y == c].mean(0) for c in range(10)])
    d = (test**2).sum(1)[:, None] - 2 * test @ means.T + (means**2).sum(1)[None]
    acc = float((d.argmin(1) == yt).mean())
    assert acc > 0.6, acc


def test_write_synthetic_files_and_manifest(tmp_path: Path) -> None:
    manifest = write_synthetic(tmp_path / "a", 60, 30, seed=5)
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted([*NAMES, "manifest.json"])
    assert manifest == read_json(tmp_path / "a" / "manifest.json")
    assert manifest["source"] == "synthetic" and manifest["origin"]["seed"] == 5
    files = manifest["files"]
    assert files["train_images"]["shape"] == [60, 28, 28]
    assert files["test_labels"]["shape"] == [30]
    assert files["train_images"]["official_md5"] is False
    # Byte-deterministic; the test split is not a copy of the training split.
    again = write_synthetic(tmp_path / "b", 60, 30, seed=5)
    assert again["files"] == files
    train_x, _ = read_mnist_pair(tmp_path / "a" / NAMES[0], tmp_path / "a" / NAMES[1])
    test_x, _ = read_mnist_pair(tmp_path / "a" / NAMES[2], tmp_path / "a" / NAMES[3])
    assert train_x[:30].tobytes() != test_x.tobytes()


# ------------------------------------------------------------------------------- prepare


@pytest.fixture(scope="module")
def raw_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("raw")
    write_synthetic(out, 300, 100, seed=0)
    return out


def test_prepare_end_to_end(raw_dir: Path, tmp_path: Path) -> None:
    stats = prepare_dataset(raw_dir, tmp_path / "p", val_size=50, split_seed=1)
    assert stats == read_json(tmp_path / "p" / "stats.json")
    sizes = {}
    for split in ("train", "val", "test"):
        images, labels = load_split(tmp_path / "p" / f"{split}.pt")
        assert images.dtype == torch.uint8 and labels.dtype == torch.int64
        assert images.shape[1:] == (28, 28)
        sizes[split] = len(labels)
        assert stats[split]["count"] == len(labels)
        assert stats[split]["class_counts"] == torch.bincount(labels, minlength=10).tolist()
    assert sizes == {"train": 250, "val": 50, "test": 100}
    train_images, _ = load_split(tmp_path / "p" / "train.pt")
    expected_mean = train_images.double().div(255).mean().item()
    expected_std = train_images.double().div(255).std(unbiased=False).item()
    assert stats["train"]["pixel_mean"] == pytest.approx(expected_mean, rel=1e-9)
    assert stats["train"]["pixel_std"] == pytest.approx(expected_std, rel=1e-9)
    assert _leftovers(tmp_path / "p") == []


def test_prepare_split_is_deterministic(raw_dir: Path, tmp_path: Path) -> None:
    prepare_dataset(raw_dir, tmp_path / "a", val_size=40, split_seed=7)
    prepare_dataset(raw_dir, tmp_path / "b", val_size=40, split_seed=7)
    prepare_dataset(raw_dir, tmp_path / "c", val_size=40, split_seed=8)
    va, _ = load_split(tmp_path / "a" / "val.pt")
    vb, _ = load_split(tmp_path / "b" / "val.pt")
    vc, _ = load_split(tmp_path / "c" / "val.pt")
    assert torch.equal(va, vb)
    assert not torch.equal(va, vc)
    # train and val partition the original training set.
    ta, _ = load_split(tmp_path / "a" / "train.pt")
    assert len(ta) + len(va) == 300


@pytest.mark.parametrize("val_size", [0, 300, 1000, -1])
def test_prepare_bad_val_size(raw_dir: Path, tmp_path: Path, val_size: int) -> None:
    with pytest.raises(ConfigError) as info:
        prepare_dataset(raw_dir, tmp_path / "p", val_size=val_size, split_seed=0)
    msg = str(info.value)
    assert "data.val_size" in msg and str(val_size) in msg and "300" in msg
    assert not (tmp_path / "p" / "train.pt").exists()


def test_load_split_rejects_bad_files(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(DataError, match="garbage.pt"):
        load_split(garbage)
    wrong = tmp_path / "wrong.pt"
    torch.save({"x": torch.zeros(3)}, wrong)
    with pytest.raises(DataError, match="wrong.pt"):
        load_split(wrong)
    dtype = tmp_path / "dtype.pt"
    torch.save({"images": torch.zeros(2, 28, 28), "labels": torch.zeros(2).long()}, dtype)
    with pytest.raises(DataError, match="dtype.pt.*rerun the prepare step"):
        load_split(dtype)
    with pytest.raises(DataError, match="missing.pt"):
        load_split(tmp_path / "missing.pt")


# ------------------------------------------------------------------------------ download


class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    hits: Counter[str] = Counter()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def _send(self, code: int, body: bytes, ctype: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        _, route, name = self.path.split("/", 2)
        self.hits[route] += 1
        if route == "good" and name in self.files:
            self._send(200, self.files[name], "application/octet-stream")
        elif route == "slow":
            time.sleep(1.5)
            self._send(200, self.files.get(name, b""), "application/octet-stream")
        elif route == "html":
            self._send(200, b"<html><body>Access denied</body></html>", "text/html")
        elif route == "badmd5" and name in self.files:
            self._send(200, gzip.compress(b"something else", mtime=0), "application/gzip")
        elif route == "flaky" and name in self.files:
            if self.hits[f"flaky:{name}"] == 0:
                self.hits[f"flaky:{name}"] += 1
                self._send(503, b"busy", "text/plain")
            else:
                self._send(200, self.files[name], "application/octet-stream")
        else:
            self._send(404, b"not found", "text/plain")


@pytest.fixture()
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Serve small synthetic MNIST files; their md5s become the 'official' ones."""
    with serve_synthetic_dataset(_Handler, monkeypatch, seed=1) as url:
        yield url


def test_download_falls_back_to_good_mirror(server: str, tmp_path: Path) -> None:
    out = tmp_path / "raw"
    out.mkdir()
    (out / NAMES[0]).write_bytes(b"\x1f\x8b partial")  # stale partial file gets replaced
    mirrors = [f"{server}/missing/", f"{server}/html", f"{server}/good/"]
    manifest = download_dataset(out, mirrors, retries=2, timeout=5, backoff=0)
    assert sorted(p.name for p in out.iterdir()) == sorted([*NAMES, "manifest.json"])
    assert manifest == read_json(out / "manifest.json")
    assert manifest["source"] == "download" and manifest["origin"] == f"{server}/good/"
    assert all(f["official_md5"] for f in manifest["files"].values())
    assert manifest["files"]["train_images"]["shape"] == [40, 28, 28]
    # 404 and HTML are permanent failures: tried once per file, not `retries` times.
    assert _Handler.hits["missing"] == 4 and _Handler.hits["html"] == 4
    # Second run: every file verified by md5, so no mirror is needed at all.
    again = download_dataset(out, [f"{server}/missing/"], retries=1, timeout=5, backoff=0)
    assert again["origin"] == f"{server}/good/"
    assert _Handler.hits["missing"] == 4


def test_download_retries_transient_errors(server: str, tmp_path: Path) -> None:
    manifest = download_dataset(
        tmp_path / "raw", [f"{server}/flaky/"], retries=2, timeout=5, backoff=0
    )
    assert manifest["origin"] == f"{server}/flaky/"
    _Handler.hits.clear()
    with pytest.raises(DataError, match="HTTP 503"):
        download_dataset(tmp_path / "raw2", [f"{server}/flaky/"], retries=1, timeout=5, backoff=0)


def test_download_all_mirrors_fail(server: str, tmp_path: Path) -> None:
    out = tmp_path / "raw"
    mirrors = [
        f"{server}/missing/",
        f"{server}/html/",
        f"{server}/badmd5/",
        f"{server}/slow/",
        "http://127.0.0.1:1/",  # nothing listens on port 1: connection refused
    ]
    with pytest.raises(DataError) as info:
        download_dataset(out, mirrors, retries=1, timeout=0.3, backoff=0)
    msg = str(info.value)
    assert NAMES[0] in msg and "data.local_dir" in msg and "network" in msg
    for mirror in mirrors:
        assert mirror in msg
    assert "HTTP 404" in msg and "not gzip" in msg and "md5" in msg and "timed out" in msg
    assert list(out.iterdir()) == []  # no partial or temporary file left behind


def test_download_config_errors(tmp_path: Path) -> None:
    from dataclasses import replace

    from mnistbench.data.registry import REGISTRY

    with pytest.raises(ConfigError, match="data.mirrors"):  # none given, none official
        download_dataset(
            tmp_path, [], retries=1, timeout=5, backoff=0, ds=replace(REGISTRY["mnist"], mirrors=())
        )
    with pytest.raises(ConfigError, match="retries"):
        download_dataset(tmp_path, ["http://127.0.0.1:1/"], retries=0, timeout=5, backoff=0)


# ---------------------------------------------------------------------------- local copy


def test_copy_local_success(raw_dir: Path, tmp_path: Path) -> None:
    manifest = copy_local(raw_dir, tmp_path / "raw")
    assert manifest == read_json(tmp_path / "raw" / "manifest.json")
    assert manifest["source"] == "local" and manifest["origin"] == str(raw_dir.resolve())
    for key, entry in manifest["files"].items():
        data = (raw_dir / MNIST_FILES[key][0]).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["bytes"] == len(data)
        assert entry["official_md5"] is False
    assert _leftovers(tmp_path / "raw") == []


def test_copy_local_accepts_uncompressed(raw_dir: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    for name in NAMES:
        (plain / name.removesuffix(".gz")).write_bytes(
            gzip.decompress((raw_dir / name).read_bytes())
        )
    manifest = copy_local(plain, tmp_path / "raw")
    assert manifest["files"]["train_images"]["shape"] == [300, 28, 28]
    np.testing.assert_array_equal(
        read_idx(tmp_path / "raw" / NAMES[1]), read_idx(raw_dir / NAMES[1])
    )


def test_copy_local_missing_dir(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        copy_local(tmp_path / "nowhere", tmp_path / "raw")
    assert "data.local_dir" in str(info.value) and "nowhere" in str(info.value)


def test_copy_local_missing_file(raw_dir: Path, tmp_path: Path) -> None:
    partial = tmp_path / "partial"
    shutil.copytree(raw_dir, partial)
    (partial / NAMES[2]).unlink()
    with pytest.raises(DataError) as info:
        copy_local(partial, tmp_path / "raw")
    msg = str(info.value)
    assert NAMES[2] in msg and "data.local_dir" in msg
    assert NAMES[0] not in msg
    assert not (tmp_path / "raw").exists() or list((tmp_path / "raw").iterdir()) == []


def test_copy_local_suggests_the_official_names_for_near_misses(
    raw_dir: Path, tmp_path: Path
) -> None:
    """Kaggle's copies of MNIST name the files `train-images.idx3-ubyte` (a dot before idx):
    the error says which file to rename to what, gzip or not."""
    kaggle = tmp_path / "kaggle"
    kaggle.mkdir()
    for name in NAMES:
        plain = name.removesuffix(".gz").replace("-idx", ".idx")
        (kaggle / plain).write_bytes(gzip.decompress((raw_dir / name).read_bytes()))
    (kaggle / "README.md").write_text("not a data file")
    with pytest.raises(DataError) as info:
        copy_local(kaggle, tmp_path / "raw")
    msg = str(info.value)
    assert msg.endswith(
        "Files there have near-miss names: rename 'train-images.idx3-ubyte' to "
        "'train-images-idx3-ubyte', 'train-labels.idx1-ubyte' to 'train-labels-idx1-ubyte', "
        "'t10k-images.idx3-ubyte' to 't10k-images-idx3-ubyte', 't10k-labels.idx1-ubyte' to "
        "'t10k-labels-idx1-ubyte'"
    ), msg
    # renamed as it says, the same directory is accepted
    for path in list(kaggle.glob("*ubyte")):
        path.rename(kaggle / path.name.replace(".idx", "-idx"))
    assert copy_local(kaggle, tmp_path / "raw")["files"]["train_images"]["shape"] == [300, 28, 28]


def test_copy_local_invalid_file(raw_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(raw_dir, bad)
    write_idx(bad / NAMES[3], np.full(300, 42, dtype=np.uint8))  # labels out of range
    with pytest.raises(DataError, match=NAMES[3]):
        copy_local(bad, tmp_path / "raw")
    assert not (tmp_path / "raw").exists()


def test_synthetic_data_never_touch_the_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The download stage for `source: synthetic` writes the four files and their manifest with
    every way out to the network closed (mirrors listed or not)."""
    import socket
    import urllib.request

    from mnistbench.commands import download

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network use: {args}")

    for module, name in ((socket, "create_connection"), (urllib.request, "urlopen")):
        monkeypatch.setattr(module, name, no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.chdir(tmp_path)
    data = {
        "source": "synthetic",
        "mirrors": ["http://127.0.0.1:9/"],
        "synthetic": {"n_train": 40, "n_test": 20, "seed": 0},
    }
    manifest = download({"dataset": "offline", "data": data})
    assert manifest["source"] == "synthetic" and manifest["origin"]["generator"].endswith(
        "synthetic"
    )
    written = sorted(p.name for p in (tmp_path / "data/offline/raw").iterdir())
    assert written == sorted([*NAMES, "manifest.json"])
