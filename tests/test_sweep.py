"""Hyperparameter sweeps expand into ordinary models; train jobs declare the GPUs they use."""

from __future__ import annotations

import copy

import pytest

from mnistbench.config.load import load_config, resolve_model, validate_config
from mnistbench.errors import ConfigError
from mnistbench.train.devices import train_gpus
from tests.conftest import ROOT


def base() -> dict:
    return copy.deepcopy(load_config(ROOT / "config/config.yaml"))


def test_sweep_example_expands_to_one_model_per_value() -> None:
    cfg = validate_config(load_config(ROOT / "config/config.yaml", ROOT / "config/sweep.yaml"))
    names = list(cfg["models"])
    runs = ["cnn-max_lr0.002", "cnn-max_lr0.005", "cnn-max_lr0.01"]
    assert names == ["lenet5", *runs, "resnet18", "alexnet_small", "simple_cnn", "allconv"]
    for run, lr in zip(runs, (0.002, 0.005, 0.01), strict=True):
        settings = resolve_model(cfg, run)
        assert settings["arch"] == "cnn" and settings["scheduler"]["max_lr"] == lr
        # everything else is the cnn's own setting
        cnn = resolve_model(validate_config(base()), "cnn")
        assert settings["scheduler"]["pct_start"] == 0.25
        assert settings["max_epochs"] == cnn["max_epochs"] and settings["seed"] == cnn["seed"]


def test_several_keys_give_every_combination_and_keep_overrides() -> None:
    cfg = base()
    cfg["models"] = {
        "lenet5": {
            "train": {"max_epochs": 3},
            "sweep": {"optimizer.lr": [0.001, 3e-4], "batch_size": [64, 128], "swa.lr": [0.01]},
        }
    }
    cfg = validate_config(cfg)
    assert sorted(cfg["models"]) == [
        "lenet5-optimizer_lr0.0003-batch_size128-swa_lr0.01",
        "lenet5-optimizer_lr0.0003-batch_size64-swa_lr0.01",
        "lenet5-optimizer_lr0.001-batch_size128-swa_lr0.01",
        "lenet5-optimizer_lr0.001-batch_size64-swa_lr0.01",
    ]
    s = resolve_model(cfg, "lenet5-optimizer_lr0.0003-batch_size64-swa_lr0.01")
    assert (s["optimizer"]["lr"], s["batch_size"], s["swa"]["lr"], s["max_epochs"]) == (
        3e-4,
        64,
        0.01,
        3,
    )
    # the names fit the workflow's {model} wildcard and file names
    assert all(set(n) <= set("abcdefghijklmnopqrstuvwxyz0123456789_.-") for n in cfg["models"])


def test_odd_values_become_safe_names() -> None:
    cfg = base()
    cfg["models"] = {"cnn": {"sweep": {"optimizer.name": ["sgd", "adamw"], "swa.enabled": [False]}}}
    assert sorted(validate_config(cfg)["models"]) == [
        "cnn-nameadamw-enabledfalse",
        "cnn-namesgd-enabledfalse",
    ]


@pytest.mark.parametrize(
    ("sweep", "message"),
    [
        ({"optimizer.lrr": [0.1]}, "not a training setting"),
        ({"optimizer": [0.1]}, "not a training setting"),
        ({"optimizer.lr": []}, "should be non-empty"),
        ({"optimizer.lr": [-1.0]}, "cnn-lr-1.0.train.optimizer.lr"),
    ],
)
def test_bad_sweeps_are_config_errors(sweep, message) -> None:
    cfg = base()
    cfg["models"] = {"cnn": {"sweep": sweep}}
    with pytest.raises(ConfigError, match=message):
        validate_config(cfg)


def test_a_run_name_may_not_shadow_a_model() -> None:
    cfg = base()
    cfg["models"] = {"cnn": {"sweep": {"batch_size": [64]}}, "cnn-batch_size64": {"arch": "cnn"}}
    with pytest.raises(ConfigError, match="already taken"):
        validate_config(cfg)


@pytest.mark.parametrize(
    ("accelerator", "devices", "nvidia_smi", "visible", "gpus"),
    [
        ("cpu", 2, "/usr/bin/nvidia-smi", None, 0),
        ("gpu", 2, None, None, 2),
        ("auto", 1, "/usr/bin/nvidia-smi", None, 1),
        ("auto", 1, "/usr/bin/nvidia-smi", "", 0),
        ("auto", 1, None, None, 0),
    ],
)
def test_train_gpus(monkeypatch, accelerator, devices, nvidia_smi, visible, gpus) -> None:
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    settings = {"accelerator": accelerator, "devices": devices}
    assert train_gpus(settings, nvidia_smi=nvidia_smi) == gpus
