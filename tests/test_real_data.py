"""The real data sets that this machine has, entering as ``data.local_dir``: Debian's package
``dataset-fashion-mnist`` (the four official IDX files, recompressed by Debian, under
/usr/share/datasets/fashion-mnist/). Skipped where it is not installed (CI installs it, and
fails without it: tests/requires.py). Reads and prepares the data; trains nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mnistbench.data.idx import read_mnist_pair
from mnistbench.data.local import copy_local
from mnistbench.data.registry import RAW_NAMES, layout
from tests.requires import missing

FASHION = Path("/usr/share/datasets/fashion-mnist")


def test_debians_fashion_mnist_is_the_whole_data_set(tmp_path: Path) -> None:
    """60,000 + 10,000 images of 28 x 28, 6,000 / 1,000 per class; the files are not the
    published bytes (Debian recompressed them), and the manifest says so."""
    if not FASHION.is_dir():
        missing(f"{FASHION}: apt-get install dataset-fashion-mnist (Debian's Fashion-MNIST)")
    manifest = copy_local(FASHION, tmp_path / "raw", layout("fashion_mnist"))
    assert manifest["source"] == "local" and manifest["classes"][0] == "T-shirt/top"
    assert not any(f["official_md5"] for f in manifest["files"].values())
    for split, n in (("train", 60_000), ("test", 10_000)):
        images, labels = read_mnist_pair(
            tmp_path / "raw" / RAW_NAMES[f"{split}_images"],
            tmp_path / "raw" / RAW_NAMES[f"{split}_labels"],
        )
        assert images.shape == (n, 28, 28) and images.dtype == np.uint8
        assert np.bincount(labels, minlength=10).tolist() == [n // 10] * 10
        assert 60 < images.mean() < 90  # clothes on black, not inverted or empty
