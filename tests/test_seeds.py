"""`seeds:` trains each model once per seed (the seed in its name and paths); the report
averages over seeds."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from mnistbench.config.load import load_config, resolve_model, validate_config
from mnistbench.errors import ConfigError
from mnistbench.reporting import seed_summary
from tests.conftest import ROOT


def config(**changes: object) -> dict:
    cfg = copy.deepcopy(load_config(ROOT / "config/config.yaml"))
    cfg["models"] = {"cnn": {}, "lenet5": {"train": {"seed": 7}}}
    cfg.update(changes)
    return cfg


def test_every_model_without_its_own_seed_runs_once_per_seed() -> None:
    cfg = validate_config(config(seeds=[1, 2, 3]))
    assert list(cfg["models"]) == ["cnn-seed1", "cnn-seed2", "cnn-seed3", "lenet5"]
    assert [resolve_model(cfg, f"cnn-seed{s}")["seed"] for s in (1, 2, 3)] == [1, 2, 3]
    assert resolve_model(cfg, "cnn-seed2")["arch"] == "cnn"
    # Validating the expanded config again (as a job may) expands nothing more.
    assert list(validate_config(copy.deepcopy(cfg))["models"]) == list(cfg["models"])


def test_no_seeds_keeps_one_run_per_model() -> None:
    assert list(validate_config(config())["models"]) == ["cnn", "lenet5"]


def test_seeds_combine_with_a_sweep_and_refuse_a_seed_sweep() -> None:
    cfg = config(seeds=[1, 2])
    cfg["models"]["cnn"] = {"sweep": {"scheduler.max_lr": [0.002, 0.01]}}
    names = list(validate_config(cfg)["models"])
    assert names[:4] == [
        "cnn-max_lr0.002-seed1",
        "cnn-max_lr0.002-seed2",
        "cnn-max_lr0.01-seed1",
        "cnn-max_lr0.01-seed2",
    ]
    cfg = config(seeds=[1, 2])
    cfg["models"]["cnn"] = {"sweep": {"seed": [5, 6]}}
    with pytest.raises(ConfigError, match="sweep.seed and `seeds`"):
        validate_config(cfg)


def test_seed_summary_mean_and_sample_std() -> None:
    table = pd.DataFrame(
        {
            "model": ["cnn-seed2", "cnn-seed10", "cnn-seed1", "lenet5", "broken-seed1"],
            "test_f1": [0.99, 0.98, 0.97, 0.95, np.nan],
            "test_accuracy": [0.99, 0.98, 0.97, 0.95, np.nan],
            "val_f1": [0.9] * 4 + [np.nan],
            "train_seconds": [10.0, 20.0, 30.0, 5.0, np.nan],
            "status": ["ok"] * 4 + ["failed (see x.log)"],
        }
    )
    out = seed_summary(table).set_index("model")
    assert list(out.index) == ["cnn", "lenet5"]  # failed runs do not count
    assert out.loc["cnn", "n_seeds"] == 3 and out.loc["cnn", "seeds"] == "1 2 10"  # numeric order
    assert out.loc["cnn", "test_f1_mean"] == pytest.approx(0.98)
    assert out.loc["cnn", "test_f1_std"] == pytest.approx(0.01)  # ddof=1
    assert out.loc["cnn", "train_seconds_mean"] == pytest.approx(20.0)
    assert out.loc["lenet5", "n_seeds"] == 1 and np.isnan(out.loc["lenet5", "test_f1_std"])


def test_seeds_on_the_command_line_are_integers() -> None:
    from mnistbench.config.load import retype_cli_values

    # snakemake --config 'seeds=[1,2,3]' passes a list of strings
    assert retype_cli_values({"seeds": ["1", "2", "3"]}) == {"seeds": [1, 2, 3]}


def test_only_keeps_the_named_models_before_seeds_expand_them() -> None:
    cfg = config(seeds=[1, 2], only=["cnn"])
    cfg["models"]["allconv"] = {}
    out = validate_config(cfg)
    assert list(out["models"]) == ["cnn-seed1", "cnn-seed2"]
    assert out["only"] == []  # applied once: validating the result again keeps it
    assert list(validate_config(copy.deepcopy(out))["models"]) == ["cnn-seed1", "cnn-seed2"]


def test_only_names_an_unknown_model() -> None:
    with pytest.raises(ConfigError, match=r"only: 'cnnn' .*did you mean 'cnn'"):
        validate_config(config(only=["cnnn"]))
