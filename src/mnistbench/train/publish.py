"""Which weights a train job publishes, chosen on the validation split only (the test set is
never looked at in training): the best epoch's checkpoint, or the final (SWA or EMA averaged)
weights if they score at least as well."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from mnistbench.errors import TrainingError
from mnistbench.metrics import confusion_matrix, macro_f1
from mnistbench.train.classifier import Classifier, predict_proba


def val_f1_of(model: Classifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    preds = predict_proba(model, images).argmax(dim=1).numpy()
    return macro_f1(confusion_matrix(labels.numpy(), preds, model.num_classes))


def _finite(module: torch.nn.Module) -> bool:
    return all(
        bool(torch.isfinite(t).all()) for t in module.state_dict().values() if t.is_floating_point()
    )


def choose_weights(
    module: Classifier, final_path: Path, best_path: str, val: tuple[torch.Tensor, torch.Tensor]
) -> dict[str, Any]:
    """What to publish, chosen on the validation split only, both candidates scored the same
    way (fp32, ``mnistbench.metrics``): the final (SWA/EMA) weights if they score at least as
    well as the best epoch's checkpoint and are finite, else that checkpoint."""
    images, labels = (t.cpu() for t in val)
    final_score = val_f1_of(module, images, labels)
    best_score = -1.0
    if best_path:
        best_score = val_f1_of(Classifier.from_checkpoint(best_path), images, labels)
    use_final = final_score >= best_score
    if use_final and not _finite(module):
        if not best_path:
            raise TrainingError(
                "diverged: the final weights hold NaN or infinite values and no earlier epoch was "
                "checkpointed; lower the learning rate (optimizer.lr / scheduler.max_lr) or "
                "use precision 32-true. No checkpoint was published."
            )
        use_final = False
    return {
        "path": final_path if use_final else Path(best_path),
        "final": use_final,
        "val_f1_best_epoch": best_score,
        "val_f1_final": final_score,
    }


def no_better_than_chance(module: Classifier, val_f1: float) -> None:
    """A run whose published weights score no better than guessing on validation (macro-F1 at
    most 1/K: a model that predicts one class scores about 2/K**2) diverged or never learned:
    an error, not a result."""
    chance = 1.0 / module.num_classes
    if val_f1 <= chance:
        raise TrainingError(
            f"diverged or did not learn: validation F1 {val_f1:.3f} after "
            f"{module.current_epoch} epoch(s) is no better than chance ({chance:.2f} for "
            f"{module.num_classes} classes); check the learning rate "
            f"({module.learning_rates()}: too high diverges, too low learns nothing), or train "
            "longer. No checkpoint was published."
        )
