"""The data sets of a run and the checks of the ``data`` block: ``dataset`` names the data set
(registered in ``mnistbench.data.registry``, or any name for generated digits), ``datasets``
several to run the same models on, and ``data.local_dir`` a directory to copy the files from
(a mapping: one per data set).

No torch, no numpy: the Snakefile runs these while it parses the workflow.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mnistbench.data.registry import REGISTRY, layout, unregistered
from mnistbench.errors import ConfigError, did_you_mean


def dataset_names(config: Mapping[str, Any]) -> list[str]:
    """The data sets the run covers: ``datasets`` when it lists any, else ``dataset``."""
    return list(config.get("datasets") or [config["dataset"]])


def local_dir(config: Mapping[str, Any]) -> str | None:
    """The directory the data set's files are copied from (``data.local_dir``, its entry when
    a mapping), or None: they are downloaded (or generated)."""
    local = config["data"]["local_dir"]
    return local.get(config["dataset"]) if isinstance(local, Mapping) else local


def check_data(config: Mapping[str, Any]) -> None:
    """Each data set is registered (for its official files), data.local_dir names data sets
    that are run, and the validation split leaves training images (checked here, before any job
    runs)."""
    data = config.get("data") or {}
    names = dataset_names(config)
    local = data.get("local_dir")
    for key in local if isinstance(local, Mapping) else ():
        if key not in names:
            raise ConfigError(
                f"data.local_dir.{key}: {key!r} is no data set of this run "
                f"({', '.join(names)}){did_you_mean(key, names)}"
            )
    for name in names:
        _check_source(config, name)
        _check_val_size(data, name)


def _check_source(config: Mapping[str, Any], name: str) -> None:
    """A data set to download is registered, or has mirrors (files in MNIST's layout)."""
    data = config["data"]
    fetched = data.get("source") != "synthetic" and not local_dir({**config, "dataset": name})
    if fetched and name not in REGISTRY and not data.get("mirrors"):
        raise unregistered(name)


def _check_val_size(data: Mapping[str, Any], name: str) -> None:
    val_size = data.get("val_size")
    if data.get("source") == "synthetic":
        n_train, key = (data.get("synthetic") or {}).get("n_train"), "data.synthetic.n_train"
    else:
        ds = layout(name)
        n_train, key = ds.train_size, f"the {ds.title} training file"
    if isinstance(val_size, int) and isinstance(n_train, int) and val_size >= n_train:
        raise ConfigError(
            f"data.val_size = {val_size} is not smaller than the training set ({key}: "
            f"{n_train} images); lower data.val_size"
        )


def check_flips(config: Mapping[str, Any], name: str, augment: Mapping[str, Any]) -> None:
    """``augment.hflip`` only where every data set of the run survives a mirror (the registry's
    ``mirror_invariant``): a mirrored 2 or R is no 2 or R, so flips teach digits and letters
    wrong labels."""
    if not (augment.get("enabled") and augment.get("hflip")):
        return
    mirrorable = {d for d, ds in REGISTRY.items() if ds.mirror_invariant}
    wrong = [d for d in dataset_names(config) if d not in mirrorable]
    if wrong:
        raise ConfigError(
            f"models.{name}.train.augment.hflip: a mirrored image of {', '.join(wrong)} is not "
            f"one of its class; flips suit only {', '.join(sorted(mirrorable))}: set hflip: "
            f"false, or run {name} with flips on those data sets alone"
        )
