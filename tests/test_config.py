"""Config: the shipped files validate, overrides merge per model, mistakes name their key."""

from __future__ import annotations

import copy

import pytest

from mnistbench.config import expand_dotted_keys, load_config, resolve_model, validate_config
from mnistbench.errors import ConfigError


@pytest.fixture()
def default(project_root):
    return load_config(project_root / "config" / "config.yaml")


def test_shipped_configs_validate(project_root, default) -> None:
    cfg = validate_config(copy.deepcopy(default))
    assert set(cfg["models"]) == {"lenet5", "cnn", "resnet18", "alexnet_small", "simple_cnn"}
    smoke = validate_config(
        load_config(project_root / "config/config.yaml", project_root / "config/smoke.yaml")
    )
    assert smoke["data"]["source"] == "synthetic"
    assert all(resolve_model(smoke, m)["max_epochs"] <= 2 for m in smoke["models"])


def test_model_overrides_merge_into_defaults(default) -> None:
    cfg = validate_config(default)
    lenet = resolve_model(cfg, "lenet5")
    assert lenet["precision"] == {"cpu": "32-true", "gpu": "16-mixed"}  # one key overridden
    assert lenet["optimizer"]["name"] == "adamw"
    alex = resolve_model(cfg, "alexnet_small")
    assert alex["optimizer"]["name"] == "sgd" and alex["max_epochs"] == 10


def test_dotted_keys_from_the_command_line() -> None:
    cfg = expand_dotted_keys({"data": {"val_size": 5}, "data.local_dir": "/x"})
    assert cfg == {"data": {"val_size": 5, "local_dir": "/x"}}


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda c: c.update(trian={}), "trian"),
        (lambda c: c["train"].update(max_epochs=-1), "train.max_epochs"),
        (lambda c: c["train"]["optimizer"].update(lr=0), "train.optimizer.lr"),
        (lambda c: c["train"].update(batch_size="64"), "train.batch_size"),
        (lambda c: c["models"].update(vgg={}), "models.vgg: unknown architecture"),
        (lambda c: c["models"].update(cnn={"train": {"optimzer": {}}}), "models.cnn.train"),
        (lambda c: c["train"]["swa"].update(epoch_start=12), "swa.epoch_start=12"),
    ],
)
def test_mistakes_name_the_key(default, mutate, message) -> None:
    mutate(default)
    with pytest.raises(ConfigError, match=message):
        validate_config(default)
