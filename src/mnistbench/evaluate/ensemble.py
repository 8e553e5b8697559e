"""Ensembles of trained runs: the weighted mean of the members' softmax outputs, with the members
and their weights chosen on the validation split only.

The rule (``ensemble.selection``): each pool (``mnistbench.config.runs.ensembles``: a seed run,
or all runs of one model for a cross-model ensemble) gives its run of lowest calibrated
validation log-loss as a candidate. ``greedy`` is forward selection with replacement (Caruana
et al., "Ensemble selection from libraries of models", ICML 2004): start from the candidate of
lowest calibrated validation log-loss; then, up to ``max_picks`` picks, add the candidate whose
addition lowers that of the mean most, and stop as soon as none lowers it. A member picked k
times of n weighs k / n; a candidate that would only raise the validation loss is never picked.
``uniform`` takes every candidate with equal weights.

Calibrated log-loss (Ashukha et al., "Pitfalls of in-domain uncertainty estimation and
ensembling in deep learning", ICLR 2020): the log-loss after the temperature that minimises it
on the same images (Guo et al. 2017). Raw log-loss cannot compare label-smoothed models and
their means: trained towards 0.9 on the true class, their loss is mostly that target's floor.
Temperature does not change an argmax, so the ensemble's predictions are those of the plain mean.

The selection functions never see a test label or a test probability; the test set is predicted
once, with the chosen weights.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mnistbench.errors import DataError
from mnistbench.io import atomic_path, read_json, write_json
from mnistbench.metrics import confusion_matrix, macro_f1, scores, test_columns

log = logging.getLogger(__name__)
EPS = 1e-12  # a probability of 0 for the true class costs -log(1e-12), not infinity
# Costs summed over the members: an ensemble runs each of them once per image.
SUMMED = ("params", "macs", "ckpt_bytes", "latency_ms_b1", "latency_ms_b256")


def log_loss(proba: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-probability of the true class."""
    picked = np.asarray(proba, dtype=np.float64)[np.arange(len(labels)), labels]
    return float(-np.log(np.clip(picked, EPS, None)).mean())


def _scaled_log_loss(logp: np.ndarray, labels: np.ndarray, beta: float) -> float:
    z = logp * beta
    z -= z.max(axis=1, keepdims=True)
    return float((np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(labels)), labels]).mean())


def calibrated_log_loss(proba: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(log-loss, temperature): the log-loss of softmax(log p / T) at the temperature T that
    minimises it, found by golden-section search on 1 / T in [0.05, 20] (the loss is convex in
    1 / T)."""
    logp = np.log(np.clip(np.asarray(proba, dtype=np.float64), EPS, None))
    labels = np.asarray(labels, dtype=np.int64)
    low, high = 0.05, 20.0
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    for _ in range(60):
        a, b = high - ratio * (high - low), low + ratio * (high - low)
        if _scaled_log_loss(logp, labels, a) <= _scaled_log_loss(logp, labels, b):
            high = b
        else:
            low = a
    beta = (low + high) / 2.0
    return _scaled_log_loss(logp, labels, beta), 1.0 / beta


def combine(probas: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
    """The weighted mean of the members' class probabilities (weights summing to 1)."""
    total = sum(weights.values())
    if not weights or total <= 0:
        raise ValueError("an ensemble needs at least one member with a positive weight")
    out = np.zeros_like(np.asarray(probas[next(iter(weights))], dtype=np.float64))
    for name, w in weights.items():
        out += (w / total) * np.asarray(probas[name], dtype=np.float64)
    return out


@dataclass
class Selection:
    """The chosen members (name -> weight) and each step of the choice, on validation."""

    weights: dict[str, float]
    steps: list[dict[str, Any]] = field(default_factory=list)


def _step(name: str, proba: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    preds = proba.argmax(axis=1)
    loss, temperature = calibrated_log_loss(proba, labels)
    return {
        "added": name,
        "val_calibrated_log_loss": loss,
        "val_temperature": temperature,
        "val_log_loss": log_loss(proba, labels),
        "val_f1": float(macro_f1(confusion_matrix(labels, preds, proba.shape[1]))),
    }


def select_members(
    val_proba: Mapping[str, np.ndarray], val_labels: np.ndarray, selection: str, max_picks: int
) -> Selection:
    """Members and weights from the candidates' validation probabilities alone (the rule of
    the module docstring). Ties go to the candidate listed first."""
    names = list(val_proba)
    if not names:
        raise ValueError("no candidate to choose an ensemble from")
    labels = np.asarray(val_labels, dtype=np.int64)
    if selection == "uniform":
        weights = {n: 1.0 / len(names) for n in names}
        return Selection(weights, [_step(" + ".join(names), combine(val_proba, weights), labels)])
    if selection != "greedy":
        raise ValueError(f"unknown ensemble selection {selection!r} (greedy or uniform)")
    probas = {n: np.asarray(p, dtype=np.float64) for n, p in val_proba.items()}
    picks: Counter[str] = Counter()
    total = np.zeros_like(probas[names[0]])
    best_loss = np.inf
    steps = []
    while sum(picks.values()) < max_picks:
        n = sum(picks.values())
        losses = [calibrated_log_loss((total + probas[c]) / (n + 1), labels)[0] for c in names]
        choice = int(np.argmin(losses))  # the first of equal losses
        if not losses[choice] < best_loss:
            break  # no candidate lowers the validation loss: stop
        name = names[choice]
        picks[name] += 1
        total += probas[name]
        best_loss = losses[choice]
        steps.append(_step(name, total / (n + 1), labels))
    n = sum(picks.values())
    return Selection({c: picks[c] / n for c in names if picks[c]}, steps)


def best_of_pools(
    pools: Mapping[str, Sequence[str]], val_proba: Mapping[str, np.ndarray], val_labels: np.ndarray
) -> list[str]:
    """Each pool's run of lowest calibrated validation log-loss (the first of equals): the
    candidates."""
    labels = np.asarray(val_labels, dtype=np.int64)

    def loss(run: str) -> float:
        return calibrated_log_loss(val_proba[run], labels)[0]

    return [runs[0] if len(runs) == 1 else min(runs, key=loss) for runs in pools.values()]


def _load(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise DataError(f"{path}: missing; evaluate the run first (snakemake does it)")
    with np.load(path) as npz:
        if not {"labels", "proba"} <= set(npz.files):
            raise DataError(f"{path}: no labels and probabilities; rerun the evaluate step")
        return {k: npz[k] for k in npz.files}


def _same_labels(found: Mapping[str, dict[str, np.ndarray]], what: str) -> np.ndarray:
    (first, ref), *rest = found.items()
    for name, preds in rest:
        if not np.array_equal(preds["labels"], ref["labels"]):
            raise DataError(
                f"{name} and {first} were scored on different {what} images; rerun their "
                "evaluate steps on the same prepared data"
            )
    return ref["labels"]


def member_costs(metrics: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Params, MACs, checkpoint bytes and latencies summed over the members (each counted once,
    whatever its weight); blank where a member has no figure."""
    out: dict[str, Any] = {}
    for key in SUMMED:
        values = [m.get(key) for m in metrics.values()]
        out[key] = None if any(v is None for v in values) else sum(values)
    threads = {m.get("latency_threads") for m in metrics.values()}
    out["latency_threads"] = threads.pop() if len(threads) == 1 else None
    return out


def build_ensemble(
    name: str,
    pools: Mapping[str, Sequence[str]],
    run_dirs: Mapping[str, str | Path],
    out_dir: str | Path,
    selection: str,
    max_picks: int,
) -> dict[str, Any]:
    """Choose the members on validation, combine their test probabilities and write
    ``test/metrics.json`` (the columns of a run, the members and the choice's steps) and
    ``test/predictions.npz`` (labels, predictions, probabilities, the members' class names), as an
    evaluated run has."""
    dirs = {r: Path(run_dirs[r]) for runs in pools.values() for r in runs}
    val = {r: _load(d / "val" / "predictions.npz") for r, d in dirs.items()}
    val_labels = _same_labels(val, "validation")
    val_proba = {r: v["proba"] for r, v in val.items()}
    candidates = best_of_pools(pools, val_proba, val_labels)
    chosen = select_members({c: val_proba[c] for c in candidates}, val_labels, selection, max_picks)
    # Only now is the test set read: the members and weights are fixed.
    test = {r: _load(dirs[r] / "test" / "predictions.npz") for r in chosen.weights}
    labels = _same_labels(test, "test")
    proba = combine({r: t["proba"] for r, t in test.items()}, chosen.weights)
    result = {
        "model": name,
        "kind": "ensemble",
        "members": chosen.weights,
        "candidates": candidates,
        "pools": {k: list(v) for k, v in pools.items()},
        "selection": {"rule": selection, "max_picks": max_picks, "steps": chosen.steps},
        "val_f1": chosen.steps[-1]["val_f1"],
        "val_log_loss": chosen.steps[-1]["val_log_loss"],
        "val_calibrated_log_loss": chosen.steps[-1]["val_calibrated_log_loss"],
        **score_columns(labels, proba),
        **_member_records({r: dirs[r] for r in chosen.weights}),
    }
    classes = next(iter(test.values())).get("classes")  # the data set's class names
    _write(Path(out_dir), labels, proba, result, classes)
    log.info(
        "%s: members %s (chosen on validation: calibrated log-loss %.4f, F1 %.4f); test F1 %.4f, "
        "%d errors",
        name,
        ", ".join(f"{r} x{w:.2f}" for r, w in chosen.weights.items()),
        result["val_calibrated_log_loss"],
        result["val_f1"],
        result["test_f1"],
        result["test_errors"],
    )
    return result


def score_columns(labels: np.ndarray, proba: np.ndarray) -> dict[str, Any]:
    """The test columns of a run (``mnistbench.evaluate.scores``), of combined probabilities."""
    preds = proba.argmax(axis=1)
    metrics = scores(confusion_matrix(labels, preds, proba.shape[1]))
    return {**test_columns(labels, preds, metrics), "f1_per_class": metrics["f1_per_class"]}


def _member_records(dirs: Mapping[str, Path]) -> dict[str, Any]:
    """The members' costs (summed) and training records (time summed, precision)."""
    members = {r: read_json(d / "test" / "metrics.json") for r, d in dirs.items()}
    summaries = {r: read_json(d / "summary.json") for r, d in dirs.items()}
    precisions = {s.get("precision") for s in summaries.values()}
    return {
        **member_costs(members),
        "train_seconds": sum(float(s.get("train_seconds") or 0.0) for s in summaries.values()),
        "precision": precisions.pop() if len(precisions) == 1 else "mixed",
    }


def _write(
    out: Path,
    labels: np.ndarray,
    proba: np.ndarray,
    result: Mapping[str, Any],
    classes: np.ndarray | None = None,
) -> None:
    named = {} if classes is None else {"classes": classes}
    with atomic_path(out / "test" / "predictions.npz") as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(
            fh,
            labels=labels.astype(np.uint8),
            preds=proba.argmax(axis=1).astype(np.uint8),
            proba=proba.astype(np.float32),
            **named,
        )
    write_json(out / "test" / "metrics.json", result)
