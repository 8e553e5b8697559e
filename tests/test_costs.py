"""The cost columns: multiply-accumulates against hand counts, CPU latency measurement."""

from __future__ import annotations

import time

import pytest
import torch

from mnistbench.evaluation import count_macs, cpu_latency_ms, median_seconds
from mnistbench.models import build_model
from tests.conftest import classifier

# Convolutions: output positions x output channels x (input channels x kernel area); linear
# layers: inputs x outputs. Activations, pooling and BatchNorm are not counted.
HAND_MACS = {
    # 28*28*6*25 + 10*10*16*150 + 400*120 + 120*84 + 84*10
    "lenet5": 117_600 + 240_000 + 48_000 + 10_080 + 840,
    # 26^2*32*9 + 24^2*32*32*9 + 12^2*32*32*25 + 10^2*64*32*9 + 8^2*64*64*9 + 4^2*64*64*25
    # + 64*128*16 + 128*10
    "allconv": 194_688
    + 5_308_416
    + 3_686_400
    + 1_843_200
    + 2_359_296
    + 1_638_400
    + 131_072
    + 1_280,
    # 26^2*32*9 + 24^2*64*32*9 (before pooling) + 9216*128 + 128*10
    "cnn": 194_688 + 10_616_832 + 1_179_648 + 1_280,
}


@pytest.mark.parametrize("name", sorted(HAND_MACS))
def test_macs_match_hand_counts(name: str) -> None:
    net = build_model(name).train()
    assert count_macs(net) == HAND_MACS[name]
    assert net.training  # the count leaves the model's mode as it was


def test_latency_per_image_at_each_batch_size() -> None:
    model = classifier("lenet5")
    images = torch.randint(0, 256, (5, 28, 28), dtype=torch.uint8)  # tiled up to 256
    latency = cpu_latency_ms(model, images, batch_sizes=(1, 256))
    assert set(latency) == {1, 256} and all(v > 0 for v in latency.values())


def test_median_seconds_stops_at_the_budget() -> None:
    calls: list[int] = []

    def slow() -> None:
        calls.append(1)
        time.sleep(0.02)

    t = median_seconds(slow, repeats=100, warmup=1, budget_s=0.05)
    assert 0.015 < t < 0.5
    assert 1 + 3 <= len(calls) <= 1 + 5  # warm-up, then at least 3 timed calls, then the budget
