"""Threads that follow the work: the cores shared among the train jobs by their cost (the dry
runs that show them: tests/test_profiles.py)."""

from __future__ import annotations

import pytest

from mnistbench.config.load import load_config, resolve_model, train_cost, validate_config
from mnistbench.pipeline.scheduling import thread_shares
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def default_costs() -> dict[str, int]:
    cfg = validate_config(load_config(ROOT / "config/config.yaml"))
    return {m: train_cost(resolve_model(cfg, m)) for m in cfg["models"]}


def test_two_cores_give_every_default_job_one_thread(default_costs) -> None:
    """On a laptop's 2 cores two one-thread jobs run side by side, as before."""
    assert set(thread_shares(default_costs, 2).values()) == {1}
    assert set(thread_shares(default_costs, 1).values()) == {1}


@pytest.mark.parametrize("cores", [4, 8, 16, 64])
def test_no_job_outlasts_the_evenly_spread_work_on_one_thread(default_costs, cores) -> None:
    """With all the work spread evenly the run lasts total / cores; every job's share lets it
    finish within that at perfect scaling, the costliest jobs get the most threads, and jobs
    below the average get one (they run side by side)."""
    shares = thread_shares(default_costs, cores)
    total = sum(default_costs.values())
    for model, cost in default_costs.items():
        assert 1 <= shares[model] <= cores
        if shares[model] < cores:
            assert cost / shares[model] <= total / cores, (model, shares)
        if cost * cores <= total:
            assert shares[model] == 1, (model, shares)
    by_cost = sorted(default_costs, key=default_costs.get)
    assert [shares[m] for m in by_cost] == sorted(shares[m] for m in by_cost)
    assert shares["allconv"] > 1 and shares["resnet18"] > 1
    if cores <= 16:
        assert shares["lenet5"] == 1 and shares["simple_cnn"] == 1


def test_thread_shares_edge_cases() -> None:
    assert thread_shares({"only": 50}, 8) == {"only": 8}  # one job: all the cores
    assert thread_shares({"a": 0, "b": 0}, 8) == {"a": 1, "b": 1}
    assert thread_shares({"a": 3, "b": 1}, 4) == {"a": 3, "b": 1}
    assert thread_shares({}, 4) == {}


def test_cost_counts_only_the_batches_trained() -> None:
    """A job that trains half its batches (``limit_train_batches``, as the smoke run's resnet18)
    costs half as much: its priority and its threads follow."""
    half = {"arch": "resnet18", "max_epochs": 2, "limit_train_batches": 0.5}
    assert train_cost(half) == train_cost({"arch": "resnet18", "max_epochs": 1})
    assert train_cost(half) < train_cost({"arch": "resnet18", "max_epochs": 2})
