"""Config: the shipped files validate, overrides merge per model, mistakes name their key."""

from __future__ import annotations

import copy

import pytest

from mnistbench.config.load import load_config, resolve_model, retype_cli_values, validate_config
from mnistbench.errors import ConfigError


@pytest.fixture()
def default(project_root):
    return load_config(project_root / "config" / "config.yaml")


def test_shipped_configs_validate(project_root, default) -> None:
    cfg = validate_config(copy.deepcopy(default))
    assert set(cfg["models"]) == {
        "lenet5",
        "cnn",
        "resnet18",
        "alexnet_small",
        "simple_cnn",
        "allconv",
    }
    smoke = validate_config(
        load_config(project_root / "config/config.yaml", project_root / "config/smoke.yaml")
    )
    assert smoke["data"]["source"] == "synthetic"
    assert all(resolve_model(smoke, m)["max_epochs"] <= 2 for m in smoke["models"])


def test_model_overrides_merge_into_defaults(default) -> None:
    cfg = validate_config(default)
    lenet = resolve_model(cfg, "lenet5")
    # one key of the scheduler overridden, the others from the defaults
    assert lenet["scheduler"] == {"name": "onecycle", "max_lr": 0.01, "pct_start": 0.25}
    assert lenet["precision"] == {"cpu": "auto", "gpu": "auto"}
    assert lenet["optimizer"]["name"] == "adamw"
    alex = resolve_model(cfg, "alexnet_small")
    assert alex["optimizer"]["name"] == "sgd" and alex["max_epochs"] == 10


def test_nested_command_line_values_get_their_types() -> None:
    # as Snakemake passes --config data='{val_size: 100, local_dir: ../x}' models='{...}'
    cli = {
        "data": {"val_size": "100", "local_dir": "../x", "mirrors": ["http://a/"]},
        "models": {"cnn": {"train": {"optimizer": {"lr": "2e-3"}, "swa": {"enabled": "false"}}}},
        "dataset": "mnist",
    }
    typed = retype_cli_values(cli)
    assert typed["data"] == {"val_size": 100, "local_dir": "../x", "mirrors": ["http://a/"]}
    assert typed["models"]["cnn"]["train"] == {
        "optimizer": {"lr": 0.002},
        "swa": {"enabled": False},
    }


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
