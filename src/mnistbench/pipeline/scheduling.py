"""How a run's cores are shared among its train jobs. Torch-free: the Snakefile imports it."""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from fractions import Fraction
from typing import TypeVar

Job = TypeVar("Job", bound=Hashable)


def thread_shares(costs: Mapping[Job, float], cores: int) -> dict[Job, int]:
    """Threads of each train job, from its cost (``config.train_cost``: MACs x epochs).

    Were the work spread evenly, the run would last ``total / cores``. A job that needs longer
    than that on one thread would end the run alone, on one thread, while the other cores idle:
    it gets ``ceil(cores x cost / total)`` threads, the fewest with which (at perfect scaling)
    it finishes within that time. Every other job gets one thread: a second thread speeds a
    model up only 1.4-1.8x (docs/speed.md), so two one-thread jobs side by side do more work.
    At least 1, at most ``cores``. On 2 cores the default run's six jobs get one thread each;
    on 8, allconv 4, resnet18 3, cnn 2 and the others 1."""
    cores = max(1, int(cores))
    total = sum(Fraction(c) for c in costs.values())
    if total <= 0:
        return {job: 1 for job in costs}
    return {
        job: min(cores, max(1, math.ceil(cores * Fraction(cost) / total)))
        for job, cost in costs.items()
    }
