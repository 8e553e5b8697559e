"""Offline mirrors of the registered data sets: small generated files laid out as each data set
publishes them (MNIST's four .gz names; EMNIST's gzip.zip with transposed images, letters
labelled from 1), served on 127.0.0.1. Their md5s replace the official ones, in this process
(``use_md5s``) or in a copy of the project's source (``patch_source_md5s``)."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import http.server
import io
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from mnistbench.data.idx import encode_idx
from mnistbench.data.registry import REGISTRY
from mnistbench.data.synthetic import derived_test_seed, make_digits


def _gz(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0) as fh:
        fh.write(encode_idx(array))
    return buf.getvalue()


def published_files(dataset: str, seed: int, n_train: int = 40, n_test: int = 20) -> dict:
    """name -> bytes of the files the data set's mirrors serve, with generated images of its
    number of classes."""
    ds = REGISTRY[dataset]
    train = make_digits(n_train, seed, ds.num_classes)
    test = make_digits(n_test, derived_test_seed(seed), ds.num_classes)
    arrays = dict(zip(("train_images", "train_labels", "test_images", "test_labels"),
                      (*train, *test), strict=True))  # fmt: skip
    if ds.archive is None:
        return {name: _gz(arrays[key]) for key, (name, _) in ds.files.items()}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for key, member in ds.archive.members.items():
            array = arrays[key]
            if key.endswith("images"):  # stored transposed, as EMNIST is
                array = np.ascontiguousarray(array.transpose(0, 2, 1))
            else:
                array = (array + ds.archive.label_offset).astype(np.uint8)
            zf.writestr(zipfile.ZipInfo(member, date_time=(2017, 1, 1, 0, 0, 0)), _gz(array))
    return {ds.archive.name: buf.getvalue()}


def md5s(files: dict[str, bytes]) -> dict[str, str]:
    return {name: hashlib.md5(body).hexdigest() for name, body in files.items()}


def use_md5s(monkeypatch: pytest.MonkeyPatch, dataset: str, files: dict[str, bytes]) -> None:
    """The served files' md5s become the data set's official ones, in this process."""
    ds, sums = REGISTRY[dataset], md5s(files)
    if ds.archive is None:
        for key, (name, _) in list(ds.files.items()):
            monkeypatch.setitem(ds.files, key, (name, sums[name]))
    else:
        archive = dataclasses.replace(ds.archive, md5=sums[ds.archive.name])
        monkeypatch.setitem(REGISTRY, dataset, dataclasses.replace(ds, archive=archive))


def patch_source_md5s(registry_py: Path, dataset: str, files: dict[str, bytes]) -> None:
    """The same in a copy of src/mnistbench/data/registry.py (for the workflow's own jobs)."""
    ds, sums = REGISTRY[dataset], md5s(files)
    official = {ds.archive.name: ds.archive.md5} if ds.archive else dict(ds.files.values())
    text = registry_py.read_text()
    for name, md5 in official.items():
        assert md5 in text, (name, md5)
        text = text.replace(md5, sums[name])
    registry_py.write_text(text)


class StaticMirror(http.server.BaseHTTPRequestHandler):
    """Serves ``files`` by path (``<dataset>/<name>``); anything else is a 404."""

    files: dict[str, bytes] = {}

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:  # noqa: N802
        body = self.files.get(self.path.lstrip("/"))
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")


@contextmanager
def serve(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """A server on 127.0.0.1 for ``handler``; yields its base URL."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
