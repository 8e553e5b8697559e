"""An EMA of the weights that never makes the training loop wait for the GPU.

Lightning's ``EMAWeightAveraging`` updates torch's ``AveragedModel`` after every optimiser step,
tensor by tensor (three kernels each: ~150 launches a step for allconv, ~360 for resnet18), and
``AveragedModel.update_parameters`` compares its on-device update count with zero twice, each
comparison a host-device synchronisation. On a GPU that costs more than the step itself for
these small networks. Here the count lives on the host and the update is one multi-tensor lerp
(``torch._foreach_lerp_``): the same arithmetic, ``ema = d * ema + (1 - d) * weights``.

The decay warms up: after ``t`` updates the next one uses ``d = min(decay, (1 + t) / (10 + t))``
(the common warm-up, e.g. TensorFlow's ``ExponentialMovingAverage(num_updates=...)``), so the
average follows the weights from the first steps instead of holding mostly the initial weights
for the first ~1 / (1 - decay) steps (with decay 0.999 and no warm-up, 37% of the average is
still the initial weights after 1000 steps). ``d`` reaches ``decay`` after ``(10 decay - 1) /
(1 - decay)`` updates (about 8,990 for 0.999, 1,990 for 0.998, 170 for 0.95).
"""

from __future__ import annotations

import itertools
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import EMAWeightAveraging
from torch.optim.swa_utils import AveragedModel


def warmed_up_decay(decay: float, updates: int) -> float:
    """The decay of the EMA update after ``updates`` earlier updates: ``min(decay, (1 + t) /
    (10 + t))``: 0.18 at the second update, 0.5 after 8, 0.9 after 80 (the first one copies)."""
    return min(decay, (1.0 + updates) / (10.0 + updates))


class HostCountAveragedModel(AveragedModel):
    """torch's AveragedModel with an EMA update that does not synchronise, and a warmed-up
    decay (``warmed_up_decay``; ``warmup=False``: the fixed decay, as torch's EMA)."""

    def __init__(
        self, model: torch.nn.Module, decay: float, warmup: bool = True, **kwargs: Any
    ) -> None:
        super().__init__(model, **kwargs)
        self.decay = decay
        self.warmup = warmup
        self.updates = 0  # host-side twin of the n_averaged buffer (saved in checkpoints)

    def _pairs(self, model: torch.nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        if self.use_buffers:
            avg = itertools.chain(self.module.parameters(), self.module.buffers())
            cur = itertools.chain(model.parameters(), model.buffers())
        else:
            avg, cur = self.module.parameters(), model.parameters()
        averaged, current = [], []
        for a, c in zip(avg, cur, strict=True):
            averaged.append(a.detach())
            current.append(c.detach().to(a.device))
        return averaged, current

    @torch.no_grad()
    def update_parameters(self, model: torch.nn.Module) -> None:
        averaged, current = self._pairs(model)
        if self.updates == 0:
            torch._foreach_copy_(averaged, current)
        else:
            decay = warmed_up_decay(self.decay, self.updates) if self.warmup else self.decay
            floats = [
                (a, c) for a, c in zip(averaged, current, strict=True) if a.is_floating_point()
            ]
            if floats:
                avg_f, cur_f = (list(t) for t in zip(*floats, strict=True))
                torch._foreach_lerp_(avg_f, cur_f, 1.0 - decay)
            for a, c in zip(averaged, current, strict=True):
                if not a.is_floating_point():  # integer buffers, as torch's EMA treats them
                    a.copy_(a * decay + c * (1.0 - decay))
        if not self.use_buffers:  # buffers follow the model, as in AveragedModel
            for b_avg, b_model in zip(self.module.buffers(), model.buffers(), strict=True):
                b_avg.detach().copy_(b_model.detach().to(b_avg.device))
        self.updates += 1
        self.n_averaged.fill_(self.updates)  # a kernel launch, no synchronisation

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        result = super().load_state_dict(state_dict, strict=strict, assign=assign)
        self.updates = int(self.n_averaged)  # a resumed run continues the average
        return result


class EMA(EMAWeightAveraging):
    """``EMAWeightAveraging`` (validation, checkpoints and the final weights use the average)
    on ``HostCountAveragedModel``."""

    def __init__(self, decay: float, **kwargs: Any) -> None:
        super().__init__(decay=decay, **kwargs)
        self.decay = decay

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit":
            self._average_model = HostCountAveragedModel(
                pl_module,
                self.decay,
                device=self._device or pl_module.device,
                use_buffers=self._use_buffers,
            )
