"""ONNX export of a trained model, checked against PyTorch with onnxruntime.

The ONNX graph takes ``images``: float32 [batch, 1, 28, 28] with pixel values in [0, 1] (what
torchvision's ``ToTensor`` gives; white digit on black, as MNIST), and returns ``logits``:
float32 [batch, classes] (10 for MNIST). The run's normalisation (training-set mean and std) is
inside the graph, so a consumer needs nothing else. The batch dimension is dynamic.
"""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mnistbench.data.prepare import load_split
from mnistbench.errors import MnistbenchError
from mnistbench.io import atomic_path, write_json
from mnistbench.use.predict import default_test_split, load_classifier, resolve_checkpoint

log = logging.getLogger(__name__)


class OnnxGraph(nn.Module):
    """[N, 1, 28, 28] floats in [0, 1] -> logits: the Classifier without its uint8 front end."""

    def __init__(self, net: nn.Module, mean: float, std: float) -> None:
        super().__init__()
        self.net = net
        self.mean = mean
        self.std = std

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net((images - self.mean) / self.std)


def export_onnx(model: str | Path, out: str | Path) -> Path:
    """Write the ONNX file (atomically); the batch size is a dynamic dimension."""
    classifier = load_classifier(model)
    graph = OnnxGraph(
        classifier.net, classifier.hparams.pixel_mean, classifier.hparams.pixel_std
    ).eval()
    for noisy in ("onnxscript", "onnx_ir", "torch.onnx"):  # pass-by-pass INFO lines
        logging.getLogger(noisy).setLevel(logging.WARNING)
    example = torch.rand(2, 1, 28, 28)
    batch = torch.export.Dim("batch", min=1, max=65536)
    with atomic_path(out) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch's own pytree deprecations
        program = torch.onnx.export(
            graph,
            (example,),
            input_names=["images"],
            output_names=["logits"],
            dynamic_shapes=({0: batch},),
            dynamo=True,
            external_data=False,
            verbose=False,
        )
        meta = {
            "producer": "mnistbench",
            "checkpoint": str(resolve_checkpoint(model)),
            "arch": classifier.hparams.arch,
            "input": "images: float32 [batch, 1, 28, 28], pixels in [0, 1], white on black",
            "pixel_mean": str(classifier.hparams.pixel_mean),
            "pixel_std": str(classifier.hparams.pixel_std),
        }
        program.model.metadata_props.update(meta)
        program.save(tmp)
    log.info("exported %s to %s", resolve_checkpoint(model), out)
    return Path(out)


def check_onnx(
    model: str | Path,
    onnx_path: str | Path,
    test_split: str | Path,
    n_images: int = 1000,
    batch_size: int = 256,
) -> dict[str, Any]:
    """Run PyTorch and onnxruntime on the same test images; compare logits and predictions."""
    import onnxruntime as ort

    classifier = load_classifier(model)
    images, _ = load_split(test_split, classifier.num_classes)
    images = images[:n_images]
    if images.shape[0] == 0:
        raise MnistbenchError(f"{test_split}: no images to check the export on")
    x = images.unsqueeze(1).float().div(255.0)  # the graph's input convention
    graph = OnnxGraph(
        classifier.net, classifier.hparams.pixel_mean, classifier.hparams.pixel_std
    ).eval()
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    torch_logits, onnx_logits = [], []
    t_torch = t_onnx = 0.0
    # Batches of different sizes (the last may be short) exercise the dynamic batch dimension.
    with torch.inference_mode():
        for start in range(0, x.shape[0], batch_size):
            chunk = x[start : start + batch_size]
            t0 = time.perf_counter()
            torch_logits.append(graph(chunk).numpy())
            t1 = time.perf_counter()
            onnx_logits.append(session.run(["logits"], {"images": chunk.numpy()})[0])
            t_onnx += time.perf_counter() - t1
            t_torch += t1 - t0
    a = np.concatenate(torch_logits)
    b = np.concatenate(onnx_logits)
    identical = int((a.argmax(axis=1) == b.argmax(axis=1)).sum())
    return {
        "onnx": str(onnx_path),
        "checkpoint": str(resolve_checkpoint(model)),
        "test_split": str(test_split),
        "n_images": int(a.shape[0]),
        "batch_sizes": sorted({len(t) for t in torch_logits}),
        "max_abs_diff_logits": float(np.abs(a - b).max()),
        "identical_predictions": identical,
        "all_identical": identical == a.shape[0],
        "torch_seconds": round(t_torch, 4),
        "onnxruntime_seconds": round(t_onnx, 4),
        "onnxruntime": ort.__version__,
        "torch": str(torch.__version__),
    }


def export_and_check(
    model: str | Path,
    out: str | Path,
    report: str | Path | None = None,
    test_data: str | Path | None = None,
    n_images: int = 1000,
    tolerance: float = 1e-3,
) -> dict[str, Any]:
    """Export, check, write the JSON report; a failed check is an error (exit status 2)."""
    onnx_path = export_onnx(model, out)
    split = Path(test_data) if test_data else default_test_split(model)
    result = check_onnx(model, onnx_path, split, n_images)
    result["tolerance"] = tolerance
    result["passed"] = result["all_identical"] and result["max_abs_diff_logits"] <= tolerance
    report = Path(report) if report else Path(out).with_name("check.json")
    write_json(report, result)
    log.info(
        "onnxruntime vs PyTorch on %d test images: max |logit diff| %.2e, %d identical predictions",
        result["n_images"],
        result["max_abs_diff_logits"],
        result["identical_predictions"],
    )
    if not result["passed"]:
        raise MnistbenchError(
            f"the ONNX model {onnx_path} disagrees with PyTorch (max |logit diff| "
            f"{result['max_abs_diff_logits']:.3g} > {tolerance}, or different predictions); "
            f"see {report}"
        )
    return result
