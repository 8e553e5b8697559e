"""Config mistakes are rejected before any job runs, naming the key path and the fix."""

from __future__ import annotations

import copy

import pytest

from mnistbench.config import load_config, resolve_model, validate_config
from mnistbench.errors import ConfigError


@pytest.fixture()
def default(project_root):
    return load_config(project_root / "config" / "config.yaml")


def _error(config) -> str:
    with pytest.raises(ConfigError) as info:
        validate_config(config)
    return str(info.value)


@pytest.mark.parametrize(
    ("mutate", "needles"),
    [
        # typos: the key path, and the closest valid key
        (lambda c: c.update(trian={}), ["trian", "did you mean 'train'"]),
        (lambda c: c["train"].update(max_epoch=3), ["train.max_epoch", "'max_epochs'"]),
        (lambda c: c["data"].update(local_dri="x"), ["data.local_dri", "'local_dir'"]),
        (
            lambda c: c["models"].update(cnn={"train": {"optimzer": {}}}),
            ["models.cnn.train.optimzer", "'optimizer'"],
        ),
        (lambda c: c["models"].update(cnn={"archh": "cnn"}), ["models.cnn.archh", "'arch'"]),
        # unknown model / architecture
        (lambda c: c["models"].update(lenett5={}), ["models.lenett5", "'lenet5'", "available"]),
        (lambda c: c["models"].update(big={"arch": "vgg"}), ["models.big", "'vgg'"]),
        # wrong types
        (lambda c: c["train"].update(max_epochs="ten"), ["train.max_epochs", "integer"]),
        (lambda c: c["data"].update(mirrors="http://x/"), ["data.mirrors", "array"]),
        (lambda c: c["train"]["swa"].update(enabled="yes"), ["train.swa.enabled", "boolean"]),
        # out of range
        (lambda c: c["train"].update(max_epochs=-1), ["train.max_epochs", "minimum"]),
        (lambda c: c["train"]["optimizer"].update(lr=0), ["train.optimizer.lr", "0"]),
        (
            lambda c: c["models"].update(cnn={"train": {"optimizer": {"lr": -1}}}),
            ["models.cnn.train.optimizer.lr"],
        ),
        (lambda c: c["data"].update(val_size=0), ["data.val_size"]),
        (lambda c: c["data"].update(val_size=60000), ["data.val_size = 60000", "lower"]),
        (
            lambda c: c["data"].update(source="synthetic", val_size=3000),
            ["data.val_size = 3000", "data.synthetic.n_train"],
        ),
        # SWA starting at or after the last epoch, or an impossible fraction
        (lambda c: c["train"]["swa"].update(epoch_start=10), ["swa.epoch_start=10", "max_epochs"]),
        (
            lambda c: c["models"]["cnn"].update(train={"max_epochs": 5, "swa": {"epoch_start": 6}}),
            ["models.cnn", "swa.epoch_start=6", "max_epochs=5"],
        ),
        (lambda c: c["train"]["swa"].update(epoch_start=2.5), ["swa.epoch_start = 2.5"]),
        (lambda c: c.update(models={}), ["models"]),
    ],
)
def test_config_mistakes_name_the_key(default, mutate, needles) -> None:
    mutate(default)
    msg = _error(default)
    for needle in needles:
        assert needle in msg, msg


def test_several_mistakes_are_reported_together(default) -> None:
    default["train"]["max_epochs"] = 0
    default["train"]["batch_size"] = "64"
    msg = _error(default)
    assert "train.max_epochs" in msg and "train.batch_size" in msg


def test_disabled_swa_may_start_late(default) -> None:
    default["train"]["swa"] = {"enabled": False, "epoch_start": 50}
    validate_config(default)


def test_unknown_model_for_a_single_job(default) -> None:
    cfg = validate_config(copy.deepcopy(default))
    with pytest.raises(ConfigError, match="did you mean 'lenet5'"):
        resolve_model(cfg, "lenet")


def test_bad_config_stops_snakemake_before_any_job(project_root, tmp_path) -> None:
    """The Snakefile validates on parse: a dry run fails with the key, no job is planned."""
    import subprocess
    import sys
    from pathlib import Path

    snakemake = Path(sys.executable).parent / "snakemake"
    proc = subprocess.run(
        [str(snakemake), "-n", "--configfile", "config/smoke.yaml", "--config", "trian={}"],
        cwd=project_root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "did you mean 'train'" in out and "Job stats" not in out
