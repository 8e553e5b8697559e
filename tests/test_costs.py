"""The cost columns: multiply-accumulates against hand counts, CPU latency measurement."""

from __future__ import annotations

import time

import pytest
import torch

from mnistbench.evaluate.scores import count_macs, cpu_latency_ms, median_seconds
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


def test_latency_per_image_at_each_batch_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole model runs on uint8 batches of each size (the test images tiled up to it), and
    each batch's median time is divided by its size: per image, in milliseconds."""
    from mnistbench.evaluate import scores

    model = classifier("lenet5")
    batches: list[torch.Tensor] = []
    forward = model.forward
    monkeypatch.setattr(model, "forward", lambda x: batches.append(x) or forward(x))
    monkeypatch.setattr(scores, "median_seconds", lambda fn: (fn(), 0.512)[1])
    images = torch.randint(0, 256, (5, 28, 28), dtype=torch.uint8)  # tiled up to 256
    latency = cpu_latency_ms(model, images, batch_sizes=(1, 256))
    assert latency == {1: pytest.approx(512.0), 256: pytest.approx(2.0)}
    assert [tuple(b.shape) for b in batches] == [(1, 28, 28), (256, 28, 28)]
    assert all(b.dtype == torch.uint8 for b in batches)
    assert torch.equal(batches[1][:5], images) and torch.equal(batches[1][250:255], images)


class FakeClock:
    """A perf_counter that only moves when the timed function 'works': no wall-clock time."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(("budget_s", "timed_calls"), [(0.05, 3), (0.07, 4), (10.0, 100)])
def test_median_seconds_stops_at_the_budget(
    monkeypatch: pytest.MonkeyPatch, budget_s: float, timed_calls: int
) -> None:
    """After the warm-up, at least 3 timed calls, then until the budget is spent or `repeats`
    calls are made (each call here takes 0.02 s on a fake clock)."""
    clock = FakeClock()
    monkeypatch.setattr(time, "perf_counter", clock)
    calls: list[int] = []

    def work() -> None:
        calls.append(1)
        clock.now += 0.02

    t = median_seconds(work, repeats=100, warmup=1, budget_s=budget_s)
    assert t == pytest.approx(0.02)
    assert len(calls) == 1 + timed_calls
