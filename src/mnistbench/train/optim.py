"""The configured optimiser (``train.optimizer``), built alike for training, the precision
probe and the benchmarks: a room of its own, so that editing the probe reruns no evaluation."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch


def optimizer_for(params: Iterable[torch.nn.Parameter], cfg: Mapping[str, Any]):
    """The configured optimiser (``train.optimizer``): training, probes and benchmarks alike.

    On a GPU the fused implementation: one kernel per step instead of several per tensor."""
    params = list(params)
    fused = {"fused": True} if params and all(p.is_cuda for p in params) else {}
    if cfg["name"] == "sgd":
        momentum = cfg["momentum"]
        return torch.optim.SGD(
            params,
            lr=cfg["lr"],
            momentum=momentum,
            weight_decay=cfg["weight_decay"],
            nesterov=momentum > 0,  # Nesterov needs momentum
            **fused,
        )
    cls = torch.optim.Adam if cfg["name"] == "adam" else torch.optim.AdamW
    return cls(params, lr=cfg["lr"], weight_decay=cfg["weight_decay"], **fused)
