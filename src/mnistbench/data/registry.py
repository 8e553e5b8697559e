"""The data sets mnistbench knows by name: one entry each, with its official mirrors, the md5 of
each published file, its class names and sizes.

Every one has MNIST's format: four IDX files (train and test images and labels), 28x28 grey
images. Fashion-MNIST and KMNIST publish them under MNIST's own names. EMNIST publishes one zip
(``gzip.zip``) holding every split's gzip files under its own names, its images transposed and
the letters' labels counted from 1: the download step takes the split's four files out of it,
turns the images upright and counts the labels from 0, so that from ``data/<dataset>/raw/`` on
every data set is laid out as MNIST is. The mirrors and md5 sums are those torchvision's
``datasets/mnist.py`` publishes.

Any other name is laid out as MNIST, with its ten digits: a copy of one's own (``data.local_dir``),
files from one's own mirrors (``data.mirrors``, checked against MNIST's md5s) or generated
digits (``data.source: synthetic``).
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field, replace

from mnistbench.errors import ConfigError, did_you_mean

# key -> the file's name in data/<dataset>/raw/: MNIST's names, whatever the data set
RAW_NAMES: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
DIGITS = tuple(string.digits)


@dataclass(frozen=True)
class Archive:
    """Files published inside one zip: its name and md5, each key's member (``{split}`` is the
    data set's EMNIST split), and how to turn them into MNIST's layout."""

    name: str
    md5: str
    members: dict[str, str]
    transposed: bool = True  # images stored column by column
    label_offset: int = 0  # subtracted from every label (EMNIST letters count from 1)


@dataclass(frozen=True)
class DataSet:
    name: str
    title: str
    classes: tuple[str, ...]
    train_size: int
    test_size: int
    mirrors: tuple[str, ...] = ()
    # key -> (published name, md5) of the four IDX files; empty when they come in ``archive``
    files: dict[str, tuple[str, str]] = field(default_factory=dict)
    archive: Archive | None = None
    homepage: str = ""
    # whether a left-right mirror of an image shows the same class (clothes: yes; digits and
    # letters: no), so that flipping may augment its training images (train.augment.hflip)
    mirror_invariant: bool = False

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def published(self) -> dict[str, str]:
        """key -> the file's published name (an archive's member name, without its folder)."""
        if self.archive is None:
            return {key: name for key, (name, _) in self.files.items()}
        return {key: m.rsplit("/", 1)[-1] for key, m in self.archive.members.items()}


def _emnist(split: str, classes: tuple[str, ...], sizes: tuple[int, int], offset: int) -> DataSet:
    prefix = f"gzip/emnist-{split}"
    members = {
        "train_images": f"{prefix}-train-images-idx3-ubyte.gz",
        "train_labels": f"{prefix}-train-labels-idx1-ubyte.gz",
        "test_images": f"{prefix}-test-images-idx3-ubyte.gz",
        "test_labels": f"{prefix}-test-labels-idx1-ubyte.gz",
    }
    return DataSet(
        name=f"emnist_{split}",
        title=f"EMNIST {split}",
        classes=classes,
        train_size=sizes[0],
        test_size=sizes[1],
        mirrors=("https://biometrics.nist.gov/cs_links/EMNIST/",),
        archive=Archive("gzip.zip", "58c8d27c78d21e728a6bc7b3cc06412e", members, True, offset),
        homepage="https://www.nist.gov/itl/products-and-services/emnist-dataset",
    )


# EMNIST balanced: digits, upper-case letters, and the lower-case letters whose shape differs
# from their capital (torchvision's classes_split_dict order, that of the label numbers).
_MERGED = set("cijklmopsuvwxyz")
_BALANCED = tuple(sorted(set(string.digits + string.ascii_letters) - _MERGED))

REGISTRY: dict[str, DataSet] = {
    "mnist": DataSet(
        name="mnist",
        title="MNIST",
        classes=DIGITS,
        train_size=60000,
        test_size=10000,
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ),
        files={
            "train_images": (RAW_NAMES["train_images"], "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
            "train_labels": (RAW_NAMES["train_labels"], "d53e105ee54ea40749a09fcbcd1e9432"),
            "test_images": (RAW_NAMES["test_images"], "9fb629c4189551a2d022fa330f9573f3"),
            "test_labels": (RAW_NAMES["test_labels"], "ec29112dd5afa0611ce80d1b7f02629c"),
        },
        homepage="http://yann.lecun.com/exdb/mnist/",
    ),
    "fashion_mnist": DataSet(
        name="fashion_mnist",
        title="Fashion-MNIST",
        classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat")
        + ("Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        train_size=60000,
        test_size=10000,
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        files={
            "train_images": (RAW_NAMES["train_images"], "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
            "train_labels": (RAW_NAMES["train_labels"], "25c81989df183df01b3e8a0aad5dffbe"),
            "test_images": (RAW_NAMES["test_images"], "bef4ecab320f06d8554ea6380940ec79"),
            "test_labels": (RAW_NAMES["test_labels"], "bb300cfdad3c16e7a12a480ee83cd310"),
        },
        homepage="https://github.com/zalandoresearch/fashion-mnist",
        mirror_invariant=True,
    ),
    "kmnist": DataSet(
        name="kmnist",
        title="Kuzushiji-MNIST",
        classes=("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
        train_size=60000,
        test_size=10000,
        mirrors=("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
        files={
            "train_images": (RAW_NAMES["train_images"], "bdb82020997e1d708af4cf47b453dcf7"),
            "train_labels": (RAW_NAMES["train_labels"], "e144d726b3acfaa3e44228e80efcd344"),
            "test_images": (RAW_NAMES["test_images"], "5c965bf0a639b31b8f53240b1b52f4d7"),
            "test_labels": (RAW_NAMES["test_labels"], "7320c461ea6c1c855c0b718fb2a4b134"),
        },
        homepage="https://github.com/rois-codh/kmnist",
    ),
    # balanced: 47 classes, 2,400 training and 400 test images each
    "emnist_balanced": _emnist("balanced", _BALANCED, (112800, 18800), offset=0),
    # letters: 26 classes (upper and lower case together), labels 1-26 in the files
    "emnist_letters": _emnist("letters", tuple(string.ascii_lowercase), (124800, 20800), 1),
}


def layout(name: str) -> DataSet:
    """The registered data set ``name``; any other name is laid out as MNIST (its files, sizes
    and ten digits), without mirrors of its own."""
    if name in REGISTRY:
        return REGISTRY[name]
    return replace(REGISTRY["mnist"], name=name, title=f"{name} (MNIST format)", mirrors=())


def unregistered(name: str) -> ConfigError:
    """The error for a data set that has no official files to download."""
    return ConfigError(
        f"dataset: {name!r} is no registered data set{did_you_mean(name, REGISTRY)}, so it has "
        f"no official files to download; registered: {', '.join(REGISTRY)} "
        "(src/mnistbench/data/registry.py). For another name set data.local_dir (a copy of "
        "MNIST-format files), data.mirrors, or data.source: synthetic (generated digits)"
    )


def classes_of(name: str) -> tuple[str, ...]:
    """The class names of the data set ``name``: a registered one's, else the ten digits."""
    return layout(name).classes
