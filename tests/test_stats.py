"""The statistics of the comparison against hand-computed and textbook values."""

from __future__ import annotations

import numpy as np
import pytest

from mnistbench.metrics import confusion_matrix, macro_f1, scores
from mnistbench.reporting.statistics import (
    bootstrap_f1,
    bootstrap_indices,
    mcnemar_exact,
    pareto_front,
    percentile_interval,
)


def _pairs(b: int, c: int, both: int = 20, neither: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Correctness of two classifiers: b images only A gets right, c only B."""
    a = [True] * b + [False] * c + [True] * both + [False] * neither
    bb = [False] * b + [True] * c + [True] * both + [False] * neither
    return np.array(a), np.array(bb)


@pytest.mark.parametrize(
    ("b", "c", "p"),
    [
        (2, 8, 0.109375),  # 2 * (1 + 10 + 45) / 2**10, the sign test's textbook value
        (8, 2, 0.109375),  # symmetric
        (1, 6, 0.125),  # 2 * (1 + 7) / 2**7
        (0, 5, 0.0625),  # 2 / 2**5
        (4, 4, 1.0),  # no evidence either way (the doubled tail is capped at 1)
        (0, 0, 1.0),  # no discordant image at all
    ],
)
def test_mcnemar_exact_known_values(b: int, c: int, p: float) -> None:
    got_b, got_c, got_p = mcnemar_exact(*_pairs(b, c))
    assert (got_b, got_c) == (b, c)
    assert got_p == pytest.approx(p, rel=1e-12)


def test_mcnemar_large_counts_stay_finite() -> None:
    # 2**n exceeds a float for n > 1023: the exact integer arithmetic must still give a p-value.
    _, _, p = mcnemar_exact(*_pairs(500, 700))
    assert 0.0 < p < 1e-7


def test_mcnemar_refuses_different_test_sets() -> None:
    with pytest.raises(ValueError, match="same images"):
        mcnemar_exact(np.ones(3, bool), np.ones(4, bool))


def f1_of(labels: np.ndarray, preds: np.ndarray) -> float:
    return float(macro_f1(confusion_matrix(labels, preds, 10)))


def test_bootstrap_scores_with_the_confusion_matrix_definition() -> None:
    """The bootstrap's stacked matrices give what scoring each resample alone gives, with a class
    never predicted scoring 0."""
    rng = np.random.default_rng(1)
    y = rng.integers(0, 10, 500)
    p = np.where(rng.random(500) < 0.8, y, rng.integers(0, 10, 500))
    p[p == 9] = 8  # a class never predicted scores 0
    expected = scores(confusion_matrix(y, p, 10))["f1_macro"]
    assert scores(confusion_matrix(y, p, 10))["f1_per_class"][9] == 0.0
    identity = np.arange(500)[None, :]
    assert bootstrap_f1(y, p, identity)[0] == pytest.approx(expected, abs=1e-12)


def test_vectorised_bootstrap_equals_a_loop() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 10, 300)
    p = np.where(rng.random(300) < 0.9, y, rng.integers(0, 10, 300))
    idx = bootstrap_indices(300, 37, seed=5)
    fast = bootstrap_f1(y, p, idx, chunk=8)  # several chunks, the last one partial
    slow = [f1_of(y[i], p[i]) for i in idx]
    np.testing.assert_allclose(fast, slow, atol=1e-12)
    np.testing.assert_array_equal(idx, bootstrap_indices(300, 37, seed=5))  # seeded


def test_perfect_predictions_have_a_point_interval() -> None:
    y = np.arange(1000) % 10
    assert percentile_interval(bootstrap_f1(y, y, bootstrap_indices(1000, 50, 0))) == (1.0, 1.0)


def test_interval_width_matches_the_binomial_approximation() -> None:
    """50 errors in 10,000 balanced images (99.5%): the normal approximation of the accuracy's
    95% interval is +-1.96 * sqrt(0.995 * 0.005 / 10000) = +-0.00138; macro-F1 of balanced
    classes behaves alike."""
    y = np.arange(10_000) % 10
    p = y.copy()
    p[::200] = (p[::200] + 1) % 10  # 50 errors, 5 per class
    scores = bootstrap_f1(y, p, bootstrap_indices(10_000, 1000, seed=0))
    low, high = percentile_interval(scores)
    point = f1_of(y, p)
    assert low < point < high
    assert (high - low) / 2 == pytest.approx(0.00138, rel=0.2)


def test_pareto_front() -> None:
    costs = [1.0, 2.0, 3.0, 2.0, 5.0]
    scores = [0.90, 0.95, 0.94, 0.95, 0.99]
    # 3.0/0.94 is beaten by 2.0/0.95; the two equal points do not dominate each other.
    assert pareto_front(costs, scores).tolist() == [True, True, False, True, True]
