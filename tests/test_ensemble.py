"""Ensembles: the mean of the members' softmax outputs, members and weights chosen on the
validation split only (src/mnistbench/evaluate/ensemble.py), one per model with seeds and those
``ensemble.across`` names (src/mnistbench/config/runs.py), rows in the comparison."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mnistbench.config.load import load_config, validate_config
from mnistbench.config.runs import ensembles
from mnistbench.errors import ConfigError
from mnistbench.evaluate.ensemble import (
    build_ensemble,
    calibrated_log_loss,
    combine,
    log_loss,
    score_columns,
    select_members,
)
from mnistbench.reporting.tables import comparison_table, markdown
from tests.conftest import ROOT

N_CLASSES = 10


def onehot_proba(labels: np.ndarray, right: np.ndarray, confidence: float) -> np.ndarray:
    """Probabilities putting ``confidence`` on the true class where ``right``, else on the next."""
    guess = np.where(right, labels, (labels + 1) % N_CLASSES)
    proba = np.full((len(labels), N_CLASSES), (1 - confidence) / (N_CLASSES - 1))
    proba[np.arange(len(labels)), guess] = confidence
    return proba


def members(seed: int = 0, n: int = 400) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Three good members wrong on different images, and one that is wrong half the time."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, N_CLASSES, n)
    proba = {}
    for i, name in enumerate(("a", "b", "c")):
        right = np.ones(n, dtype=bool)
        right[i::7] = False  # each wrong on its own seventh, mostly not the others'
        proba[name] = onehot_proba(labels, right, 0.8)
    proba["bad"] = onehot_proba(labels, rng.random(n) < 0.5, 0.9)
    return labels, proba


def test_combine_is_the_weighted_mean() -> None:
    p = {"a": np.array([[0.8, 0.2]]), "b": np.array([[0.2, 0.8]])}
    assert np.allclose(combine(p, {"a": 0.5, "b": 0.5}), [[0.5, 0.5]])
    assert np.allclose(combine(p, {"a": 3, "b": 1}), [[0.65, 0.35]])  # normalised
    assert np.allclose(combine(p, {"b": 1.0}), p["b"])
    with pytest.raises(ValueError, match="at least one member"):
        combine(p, {})


def test_greedy_keeps_the_helpful_members_and_excludes_one_that_hurts() -> None:
    labels, proba = members()
    chosen = select_members(proba, labels, "greedy", max_picks=10)
    assert set(chosen.weights) == {"a", "b", "c"}  # "bad" raises the validation loss
    assert sum(chosen.weights.values()) == pytest.approx(1.0)
    # each pick lowered the validation log-loss, and the mean beats every single member
    losses = [s["val_calibrated_log_loss"] for s in chosen.steps]
    assert losses == sorted(losses, reverse=True) and len(set(losses)) == len(losses)
    assert losses[-1] < min(calibrated_log_loss(p, labels)[0] for p in proba.values())
    # uniform takes every candidate, the harmful one included: worse on validation
    uniform = select_members(proba, labels, "uniform", 10)
    assert set(uniform.weights) == set(proba)
    assert uniform.steps[-1]["val_calibrated_log_loss"] > losses[-1]


def test_calibrated_log_loss_ignores_the_temperature() -> None:
    """Label-smoothed models put ~0.9 on their answer: raw log-loss then mostly measures that
    target; after temperature scaling an over- or under-confident copy scores the same."""
    labels, proba = members()
    logp = np.log(proba["a"])
    for t in (0.5, 2.0):
        scaled = np.exp(logp / t) / np.exp(logp / t).sum(axis=1, keepdims=True)
        assert log_loss(scaled, labels) != pytest.approx(log_loss(proba["a"], labels), rel=1e-3)
        loss, temperature = calibrated_log_loss(scaled, labels)
        assert loss == pytest.approx(calibrated_log_loss(proba["a"], labels)[0], rel=1e-4)
        assert loss <= log_loss(scaled, labels)


def test_a_member_that_only_hurts_is_never_picked_even_alone_first() -> None:
    labels, proba = members()
    chosen = select_members({"bad": proba["bad"], "a": proba["a"]}, labels, "greedy", 10)
    assert "bad" not in chosen.weights and chosen.weights == {"a": 1.0}


def test_max_picks_bounds_the_weights() -> None:
    labels, proba = members()
    chosen = select_members(proba, labels, "greedy", max_picks=1)
    assert len(chosen.steps) == 1 and list(chosen.weights.values()) == [1.0]


def write_run(d: Path, labels: dict[str, np.ndarray], proba: dict[str, np.ndarray]) -> None:
    for split in ("val", "test"):
        (d / split).mkdir(parents=True, exist_ok=True)
        preds = proba[split].argmax(axis=1)
        np.savez(d / split / "predictions.npz", labels=labels[split], preds=preds,
                 proba=proba[split])  # fmt: skip
    costs = {"params": 100, "macs": 1000, "ckpt_bytes": 2048, "latency_ms_b1": 0.5}
    costs |= {"latency_ms_b256": 0.01, "latency_threads": 1}
    (d / "test" / "metrics.json").write_text(json.dumps(costs))
    (d / "summary.json").write_text(json.dumps({"train_seconds": 10.0, "precision": "32-true"}))


def runs_on_disk(tmp_path: Path, test_labels_seed: int) -> dict[str, Path]:
    val_labels, val = members(seed=1)
    test_labels = np.random.default_rng(test_labels_seed).integers(0, N_CLASSES, 300)
    dirs = {}
    for name in val:
        d = tmp_path / "models" / name
        # on the test set "bad" is perfect and the others are wrong on a third: a selection
        # that looked at the test labels would pick it
        right = np.ones(300, dtype=bool) if name == "bad" else np.arange(300) % 3 > 0
        test = onehot_proba(test_labels, right, 0.9)
        write_run(d, {"val": val_labels, "test": test_labels}, {"val": val[name], "test": test})
        dirs[name] = d
    return dirs


def test_build_ensemble_chooses_on_validation_only(tmp_path: Path) -> None:
    pools = {name: [name] for name in ("a", "b", "c", "bad")}
    results = []
    for seed in (0, 1):  # other test labels, other test scores: the same members
        dirs = runs_on_disk(tmp_path / f"t{seed}", seed)
        out = tmp_path / f"t{seed}" / "ensembles" / "e"
        results.append(build_ensemble("e", pools, dirs, out, "greedy", 10))
    assert results[0]["members"] == results[1]["members"]
    assert set(results[0]["members"]) == {"a", "b", "c"}
    # its columns are those of a run: summed costs, scores from the saved predictions
    r = results[0]
    assert r["params"] == 300 and r["macs"] == 3000 and r["latency_ms_b1"] == pytest.approx(1.5)
    assert r["train_seconds"] == 30.0 and r["precision"] == "32-true"
    with np.load(tmp_path / "t0/ensembles/e/test/predictions.npz") as npz:
        assert r["test_errors"] == int((npz["preds"] != npz["labels"]).sum())
    assert json.loads((tmp_path / "t0/ensembles/e/test/metrics.json").read_text())["kind"] == (
        "ensemble"
    )


def test_cross_model_pools_give_their_best_run_on_validation(tmp_path: Path) -> None:
    dirs = runs_on_disk(tmp_path, 0)
    result = build_ensemble(
        "x", {"m1": ["bad", "a"], "m2": ["b"]}, dirs, tmp_path / "x", "greedy", 10
    )
    assert result["candidates"] == ["a", "b"] and set(result["members"]) <= {"a", "b"}


def config(**changes: object) -> dict:
    cfg = copy.deepcopy(load_config(ROOT / "config/config.yaml"))
    cfg["models"] = {"cnn": {}, "lenet5": {}, "allconv": {}}
    cfg.update(changes)
    return cfg


def test_seeds_make_one_ensemble_per_model_and_across_one_more() -> None:
    cfg = validate_config(config(seeds=[1, 2], ensemble={"across": {"mix": ["cnn", "lenet5"]}}))
    found = ensembles(cfg)
    assert list(found) == ["cnn-ensemble", "lenet5-ensemble", "allconv-ensemble", "mix"]
    assert found["cnn-ensemble"]["pools"] == {
        "cnn-seed1": ["cnn-seed1"],
        "cnn-seed2": ["cnn-seed2"],
    }
    assert found["mix"]["pools"] == {"cnn": ["cnn-seed1", "cnn-seed2"],
                                     "lenet5": ["lenet5-seed1", "lenet5-seed2"]}  # fmt: skip
    assert ensembles(validate_config(config())) == {}  # no seeds, no across: no ensemble
    # `only` leaving one model of `mix`: no cross-model ensemble, and validating again holds
    cfg = validate_config(config(seeds=[1, 2], only=["cnn"],
                                 ensemble={"across": {"mix": ["cnn", "lenet5"]}}))  # fmt: skip
    assert list(ensembles(cfg)) == ["cnn-ensemble"]
    assert list(ensembles(validate_config(copy.deepcopy(cfg)))) == ["cnn-ensemble"]


def test_across_names_known_models_and_a_free_name() -> None:
    with pytest.raises(ConfigError, match=r"ensemble\.across\.mix: 'cnnn' .*did you mean 'cnn'"):
        validate_config(config(ensemble={"across": {"mix": ["cnnn", "lenet5"]}}))
    with pytest.raises(ConfigError, match="the name is taken"):
        validate_config(config(ensemble={"across": {"cnn": ["cnn", "lenet5"]}}))


def test_seeds_given_on_the_command_line_reach_every_stage_of_a_run() -> None:
    """`snakemake --config 'seeds=[1, 2]'`: the evaluate and ensemble commands must find the
    seed runs, so they get the overrides that make them (not as params: nothing reruns)."""
    from mnistbench.pipeline.table import stages

    overrides = {"seeds": [1, 2], "only": ["cnn"]}
    raw = {**config(), **overrides}
    table = stages(validate_config(copy.deepcopy(raw)), raw, ["config/config.yaml"], overrides)
    by_rule = {(s.rule, s.run): s for s in table}
    for key in (("evaluate_model", "cnn-seed2"), ("build_ensemble", "cnn-ensemble")):
        stage = by_rule[key]
        assert '"seeds":[1,2]' in stage.command() and "seeds" not in stage.params
    assert by_rule[("build_ensemble", "cnn-ensemble")].argv[-2:] == ("--ensemble", "cnn-ensemble")


def test_each_data_set_gets_its_own_ensembles() -> None:
    """`datasets: [mnist, kmnist]` with seeds: one build_ensemble per ensemble and data set,
    told its data set and reading that data set's runs only; each report reads its own."""
    from mnistbench.pipeline.table import stages

    raw = config(seeds=[1, 2], only=["cnn"], datasets=["mnist", "kmnist"])
    table = stages(validate_config(copy.deepcopy(raw)), raw, ["config/config.yaml"])
    built = {s.dataset: s for s in table if s.rule == "build_ensemble"}
    assert set(built) == {"mnist", "kmnist"} and {s.run for s in built.values()} == {"cnn-ensemble"}
    for name, stage in built.items():
        assert f'"dataset":"{name}"' in stage.command() and stage.params["dataset"] == name
        assert stage.outs["metrics"] == f"results/{name}/ensembles/cnn-ensemble/test/metrics.json"
        assert all(p.startswith(f"results/{name}/models/cnn-seed") for ps in stage.deps.values()
                   for p in ps)  # fmt: skip
        report = next(s for s in table if s.rule == "build_report" and s.dataset == name)
        assert report.deps["ensemble_metrics"] == [stage.outs["metrics"]]


def test_an_ensemble_of_26_classes_keeps_their_names(tmp_path: Path) -> None:
    """EMNIST letters: the probabilities are 26 wide; the ensemble scores all 26 classes and
    its predictions.npz names them, as its members' do (the gallery labels its images so)."""
    rng = np.random.default_rng(0)
    classes = np.array([chr(ord("a") + i) for i in range(26)])
    labels = {split: rng.integers(0, 26, 260) for split in ("val", "test")}
    dirs = {}
    for name in ("a", "b"):
        proba = {s: rng.dirichlet(np.ones(26), 260) for s in labels}
        for s in labels:  # mostly right
            proba[s][np.arange(260), labels[s]] += 2.0
            proba[s] /= proba[s].sum(axis=1, keepdims=True)
        write_run(tmp_path / name, labels, proba)
        test = tmp_path / name / "test" / "predictions.npz"
        with np.load(test) as npz:
            np.savez(test, **{k: npz[k] for k in npz.files}, classes=classes)
        dirs[name] = tmp_path / name
    result = build_ensemble("e", {"a": ["a"], "b": ["b"]}, dirs, tmp_path / "e", "uniform", 10)
    assert len(result["f1_per_class"]) == 26 and result["test_f1"] > 0.9
    with np.load(tmp_path / "e/test/predictions.npz") as npz:
        assert npz["proba"].shape == (260, 26) and list(npz["classes"]) == list(classes)


def scored_run(d: Path, name: str, val: np.ndarray, val_labels: np.ndarray, right: np.ndarray,
               test_labels: np.ndarray) -> Path:  # fmt: skip
    """A run on disk as the evaluate step leaves it: predictions and its test scores."""
    test = onehot_proba(test_labels, right, 0.9)
    write_run(d, {"val": val_labels, "test": test_labels}, {"val": val, "test": test})
    metrics = json.loads((d / "test/metrics.json").read_text())
    metrics |= {k: v for k, v in score_columns(test_labels, test).items() if k != "f1_per_class"}
    (d / "test/metrics.json").write_text(json.dumps(metrics))
    summary = {"model": name, "epochs": 1, "val_f1": 0.9, "train_seconds": 1.0}
    (d / "summary.json").write_text(json.dumps(summary))
    return d


def test_the_comparison_says_whether_an_ensemble_beats_its_best_run(tmp_path: Path) -> None:
    """Members wrong on different test images make a better ensemble; members wrong on the same
    ones do not, and the comparison says so in bold, with the errors, McNemar's p and the
    validation figures that chose the ensemble."""
    val_labels, val = members(seed=1)
    test_labels = np.random.default_rng(0).integers(0, N_CLASSES, 300)
    part = np.arange(300) % 3
    runs = {
        **{n: part != i for i, n in enumerate(("a", "b", "c"))},  # each wrong on its own third
        **{f"{n}2": part != 0 for n in ("a", "b", "c")},  # all wrong on the same third
    }
    dirs = {n: scored_run(tmp_path / n, n, val[n[0]], val_labels, r, test_labels)
            for n, r in runs.items()}  # fmt: skip
    build_ensemble("diverse", {n: [n] for n in "abc"}, dirs, tmp_path / "diverse", "greedy", 10)
    alike = {n: [n] for n in ("a2", "b2", "c2")}
    build_ensemble("alike", alike, dirs, tmp_path / "alike", "greedy", 10)
    table = comparison_table(list(dirs.values()), {}, 200, 0,
                             [tmp_path / "diverse", tmp_path / "alike"])  # fmt: skip
    verdict = dict(zip(table["model"], table["verdict"], strict=True))
    assert re.match(r"better than [abc] on the test set: 0 errors against 100", verdict["diverse"])
    assert "McNemar p = 1.6e-30" in verdict["diverse"]
    assert re.match(
        r"not better than ([abc]2) on the test set: 100 errors against 100", verdict["alike"]
    )
    assert "McNemar p = 1)" in verdict["alike"]
    assert "against calibrated log-loss" in verdict["alike"] and "2 alone" in verdict["alike"]
    assert pd.isna(verdict["a"])  # runs have none
    page = markdown(table)
    assert f"- **`alike` (ensemble): {verdict['alike']}.**" in page
    assert f"- `diverse` (ensemble): {verdict['diverse']}." in page
