"""Test-set evaluation: the scores (``mnistbench.metrics``, from one confusion matrix, so every
number is traceable) and the costs (MACs, CPU latency, checkpoint size) of one trained model.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mnistbench.data.prepare import load_split
from mnistbench.io import atomic_path, pyplot, write_figure, write_json, write_text
from mnistbench.metrics import confusion_matrix, scores, test_columns
from mnistbench.models import count_parameters
from mnistbench.train.classifier import Classifier, predict_proba

log = logging.getLogger(__name__)


def count_macs(net: torch.nn.Module, image_shape: tuple[int, ...] = (1, 28, 28)) -> int:
    """Multiply-accumulates of one image through ``net`` (convolutions and matrix products, as
    ``torch.utils.flop_counter`` counts them: 2 FLOPs per MAC; activations, pooling and
    normalisation are not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = net.training
    net.eval()
    param = next(net.parameters(), None)
    x = torch.zeros((1, *image_shape), device=param.device if param is not None else "cpu")
    try:
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            net(x)
    finally:
        net.train(was_training)
    return int(counter.get_total_flops()) // 2


def median_seconds(
    fn: Callable[[], object], repeats: int = 10, warmup: int = 2, budget_s: float = 1.5
) -> float:
    """Median wall time of ``fn`` after ``warmup`` untimed calls; stops early (after at least
    3 timed calls) once ``budget_s`` is spent, so a large model does not stall the evaluation."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    spent = 0.0
    while len(times) < repeats and (len(times) < 3 or spent < budget_s):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
        spent += times[-1]
    return statistics.median(times)


@torch.inference_mode()
def cpu_latency_ms(
    model: Classifier, images: torch.Tensor, batch_sizes: tuple[int, ...] = (1, 256)
) -> dict[int, float]:
    """Inference time per image in milliseconds at each batch size: the whole forward pass of
    the published model (uint8 in, normalisation included), fp32, on the CPU with the current
    torch thread count. Test images are tiled when there are fewer than the batch size."""
    model = model.to("cpu").eval()
    result = {}
    for bs in batch_sizes:
        reps = -(-bs // max(1, images.shape[0]))
        batch = images.repeat(reps, *([1] * (images.dim() - 1)))[:bs].contiguous()
        result[bs] = 1000.0 * median_seconds(lambda b=batch: model(b)) / bs
    return result


def text_colour(rgba: tuple[float, ...]) -> str:
    """Black on light cells, white on dark ones (relative luminance of the cell's colour)."""
    r, g, b = rgba[:3]
    return "black" if 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.5 else "white"


def plot_confusion(
    cm: np.ndarray, title: str, path: str | Path, classes: list[str] | None = None
) -> None:
    """The confusion matrix, its axes labelled with the class names (default: the indices)."""
    plt = pyplot()

    k = cm.shape[0]
    side = max(1.0, k / 10)  # 47 classes get a larger figure and smaller numbers
    fig, ax = plt.subplots(figsize=(5.2 * side, 4.6 * side))
    # Log colour scale: the diagonal holds ~1000 images, the errors a handful.
    image = ax.imshow(np.log1p(cm), cmap="Blues")
    size = 7 / side**0.5
    for i in range(k):
        for j in range(k):
            if cm[i, j]:
                colour = text_colour(image.cmap(image.norm(np.log1p(cm[i, j]))))
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=size, color=colour)
    names = classes or [str(i) for i in range(k)]
    ax.set_xticks(range(k), names, rotation=90 if max(map(len, names)) > 2 else 0, fontsize=8)
    ax.set_yticks(range(k), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    write_figure(fig, path)


def _csv_cell(text: str) -> str:
    return f'"{text}"' if any(c in text for c in ',"\n') else text


def write_predictions(
    out: Path, labels: np.ndarray, preds: np.ndarray, proba: np.ndarray, classes: list[str]
) -> np.ndarray:
    """confusion.csv, predictions.csv (actual,predicted per image, by class name) and
    predictions.npz (labels, predictions, probabilities and the class names); returns the
    confusion matrix (rows: true class)."""
    cm = confusion_matrix(labels, preds, len(classes))
    names = [_csv_cell(c) for c in classes]
    header = ",".join(["true\\pred", *names])
    rows = [",".join([names[i]] + [str(v) for v in row]) for i, row in enumerate(cm)]
    write_text(out / "confusion.csv", "\n".join([header, *rows]) + "\n")
    pairs = "".join(f"{names[t]},{names[p]}\n" for t, p in zip(labels, preds, strict=True))
    write_text(out / "predictions.csv", "actual,predicted\n" + pairs)
    with atomic_path(out / "predictions.npz") as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(
            fh,
            labels=labels.astype(np.uint8),
            preds=preds.astype(np.uint8),
            proba=proba.astype(np.float32),
            classes=np.asarray(classes, dtype=str),
        )
    return cm


def write_val_predictions(
    model: Classifier, val_split: str | Path, path: str | Path, batch_size: int | None, device: str
) -> float:
    """The validation split's labels, predictions and probabilities (``predictions.npz``), from
    which the ensemble stage chooses its members; returns the validation F1."""
    images, labels = load_split(val_split, model.num_classes)
    proba = predict_proba(model.to(device), images, batch_size).numpy()
    preds = proba.argmax(axis=1)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(
            fh,
            labels=labels.numpy().astype(np.uint8),
            preds=preds.astype(np.uint8),
            proba=proba.astype(np.float32),
        )
    return float(scores(confusion_matrix(labels.numpy(), preds, model.num_classes))["f1_macro"])


def costs(
    model: Classifier, images: torch.Tensor, checkpoint: str | Path, measure_latency: bool
) -> dict[str, Any]:
    """What the trained model costs: parameters, MACs per image, the checkpoint's size and,
    measured here, CPU latency per image at batch 1 and 256 (with this process's threads)."""
    result: dict[str, Any] = {
        "params": count_parameters(model.net),
        "macs": count_macs(model.net),
        "ckpt_bytes": Path(checkpoint).stat().st_size,
    }
    if measure_latency:
        latency = cpu_latency_ms(model, images[:256])
        result.update(
            latency_ms_b1=round(latency[1], 4),
            latency_ms_b256=round(latency[256], 4),
            latency_threads=torch.get_num_threads(),
        )
    return result


def evaluate(
    checkpoint: str | Path,
    test_split: str | Path,
    out_dir: str | Path,
    model_name: str,
    batch_size: int,
    measure_latency: bool = True,
    val_split: str | Path | None = None,
    val_predictions: str | Path | None = None,
) -> dict[str, Any]:
    """Score a trained checkpoint on the test split; writes metrics.json (numbers only),
    details.json (names, the checkpoint, per-class F1), confusion.{csv,png}, predictions.npz
    (labels, predictions, probabilities) for later statistics and predictions.csv
    (actual,predicted per image: the long form DVC's confusion plot reads). With ``val_split``,
    also the validation split's predictions.npz at ``val_predictions`` (what the ensembles are
    chosen on).

    The costs beside the scores come from the same trained model: MACs per image, CPU latency
    per image at batch 1 and 256 (with this process's torch threads, recorded as
    ``latency_threads``), and the checkpoint's size in bytes."""
    out = Path(out_dir)
    model = Classifier.from_checkpoint(checkpoint)
    classes = list(model.hparams.classes)
    images, labels = load_split(test_split, len(classes))
    # Scores on the GPU when there is one (resnet18's 10,000 test images take ~10 s on one CPU
    # thread); the latencies below are CPU figures either way.
    device = "cuda" if torch.cuda.is_available() else "cpu"
    proba = predict_proba(model.to(device), images, batch_size)
    preds = proba.argmax(dim=1).numpy()
    y = labels.numpy()
    cm = write_predictions(out, y, preds, proba.numpy(), classes)
    metrics = scores(cm)
    result = {
        **test_columns(y, preds, metrics),
        **costs(model, images, checkpoint, measure_latency),
    }
    details = {
        "model": model_name,
        "arch": model.hparams.arch,
        "checkpoint": str(checkpoint),
        "f1_per_class": metrics["f1_per_class"],
        "classes": classes,
    }
    if val_split is not None and val_predictions is not None:
        val_f1 = write_val_predictions(model, val_split, val_predictions, batch_size, device)
        log.info("%s: validation F1 %.4f (predictions in %s)", model_name, val_f1, val_predictions)
    title = f"{model_name}: test F1 {result['test_f1']:.4f}"
    plot_confusion(cm, title, out / "confusion.png", classes)
    # metrics.json holds numbers only (DVC's metrics: one column each in `dvc exp show`)
    write_json(out / "details.json", details)
    write_json(out / "metrics.json", result)
    _log_result(model_name, result)
    return result


def _log_result(model_name: str, result: dict[str, Any]) -> None:
    log.info(
        "%s: test F1 %.4f, accuracy %.4f; %d MACs per image, %s ms per image at batch 1/256",
        model_name,
        result["test_f1"],
        result["test_accuracy"],
        result["macs"],
        f"{result.get('latency_ms_b1', float('nan')):.3f}/"
        f"{result.get('latency_ms_b256', float('nan')):.4f}",
    )
