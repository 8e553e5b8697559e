"""Predicting with a trained model: image files or the test set -> labels and probabilities.

Images are turned into MNIST-like inputs the way MNIST itself was made: grey levels, a white
digit on black (a light background is inverted), cropped to the digit, scaled to fit 20x20 with
its aspect ratio kept, and placed in a 28x28 frame with its centre of mass at the centre.
A file that cannot be read is reported in its own row; the other files are still predicted.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from mnistbench.data.prepare import load_split
from mnistbench.data.registry import DIGITS
from mnistbench.errors import MnistbenchError
from mnistbench.io import pyplot, write_figure, write_text
from mnistbench.train.classifier import Classifier, predict_proba

log = logging.getLogger(__name__)
# What an input must have to be read as a digit at all (unlike_mnist): a grey-level spread, a
# few pixels a side, and ink on a share of the prepared frame that MNIST digits have (on the
# 60,000 training digits: 4.3% to 44.4% of the pixels above 25).
MIN_CONTRAST = 32
MIN_SIDE = 8
MNIST_INK = (0.03, 0.46)


def resolve_checkpoint(model: str | Path) -> Path:
    """A results directory (results/<dataset>/models/<m>/) or a checkpoint file -> the .ckpt."""
    path = Path(model)
    if path.is_dir():
        path = path / "model.ckpt"
    if not path.is_file():
        raise MnistbenchError(
            f"{model}: no trained model there; give a results directory holding model.ckpt "
            "(e.g. results/mnist/models/cnn) or a .ckpt file"
        )
    return path


def load_classifier(model: str | Path) -> Classifier:
    ckpt = resolve_checkpoint(model)
    try:
        classifier = Classifier.from_checkpoint(ckpt)
    except Exception as exc:  # a truncated or foreign file: say which one
        raise MnistbenchError(f"{ckpt}: cannot load this checkpoint ({exc})") from exc
    return classifier.eval()


def default_test_split(model: str | Path) -> Path:
    """Where the run's test split lives: recorded in its config.yaml, else by the results layout
    (results/<dataset>/models/<m>/ -> data/<dataset>/prepared/test.pt)."""
    run_dir = resolve_checkpoint(model).resolve().parent
    snapshot = run_dir / "config.yaml"
    if snapshot.is_file():
        recorded = (yaml.safe_load(snapshot.read_text()) or {}).get("prepared")
        if recorded and (Path(recorded) / "test.pt").is_file():
            return Path(recorded) / "test.pt"
    dataset = run_dir.parent.parent.name
    guess = Path("data") / dataset / "prepared" / "test.pt"
    if not guess.is_file():
        raise MnistbenchError(
            f"cannot find the test split of {run_dir} (tried {guess}); pass it with --test-data"
        )
    return guess


def mnist_like(image: Any) -> np.ndarray:
    """A PIL image -> uint8 28x28, white digit on black, prepared the way MNIST digits were.

    (A transparent background counts as background, whatever colour its hidden pixels have.)"""
    from PIL import Image, ImageOps

    image = ImageOps.exif_transpose(image)
    grey = np.asarray(image.convert("L"), dtype=np.float32)
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        # Ink on a transparent background: the opacity is the digit, whatever the ink colour.
        alpha = np.asarray(image.convert("RGBA"), dtype=np.float32)[..., 3]
        if alpha.min() < 128 <= alpha.max():
            grey = alpha
    # The background is the commoner colour at the border: a light one means dark ink, invert.
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    if np.median(border) > 127:
        grey, border = 255.0 - grey, 255.0 - border
    grey = np.clip(grey - np.median(border), 0, None)  # background to 0
    if grey.max() <= 0:
        return np.zeros((28, 28), dtype=np.uint8)  # a blank image stays blank
    grey *= 255.0 / grey.max()
    rows = np.flatnonzero(grey.max(axis=1) > 25)
    cols = np.flatnonzero(grey.max(axis=0) > 25)
    digit = grey[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    h, w = digit.shape
    scale = 20.0 / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = np.asarray(
        Image.fromarray(digit.astype(np.uint8)).resize(size, Image.Resampling.LANCZOS),
        dtype=np.float32,
    )
    # Paste so that the centre of mass lands on the frame's centre (14, 14), clipped to the frame.
    total = small.sum()
    ys, xs = np.indices(small.shape)
    cy = (ys * small).sum() / total if total else small.shape[0] / 2
    cx = (xs * small).sum() / total if total else small.shape[1] / 2
    top = int(np.clip(round(14 - cy), 0, 28 - small.shape[0]))
    left = int(np.clip(round(14 - cx), 0, 28 - small.shape[1]))
    frame = np.zeros((28, 28), dtype=np.float32)
    frame[top : top + small.shape[0], left : left + small.shape[1]] = small
    return np.clip(frame, 0, 255).astype(np.uint8)


def unlike_mnist(image: Any, prepared: np.ndarray) -> str | None:
    """Why an image is far from an MNIST digit (blank, nearly one grey level, a few pixels, a
    frame mostly or barely inked once prepared), or None. The model labels anything, often
    with a high probability: the warning says not to trust that label."""
    grey = np.asarray(image.convert("L"), dtype=np.int16)
    spread = int(grey.max() - grey.min())
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        alpha = np.asarray(image.convert("RGBA"))[..., 3].astype(np.int16)
        spread = max(spread, int(alpha.max() - alpha.min()))
    ink = float((prepared > 25).mean())
    if spread == 0 or not prepared.any():
        return "blank image (a single colour): there is no digit to read"
    if spread < MIN_CONTRAST:
        return f"almost uniform (grey levels span {spread} of 255): there is hardly a digit"
    if min(image.size) < MIN_SIDE:
        return f"only {image.size[0]}x{image.size[1]} pixels (MNIST digits are 28x28)"
    if not MNIST_INK[0] <= ink <= MNIST_INK[1]:
        return (
            f"unlike an MNIST digit: ink covers {ink:.0%} of the prepared 28x28 frame (MNIST "
            f"digits: {MNIST_INK[0]:.0%} to {MNIST_INK[1]:.0%})"
        )
    return None


def read_image(path: str | Path) -> tuple[np.ndarray, str | None]:
    """One image file, prepared as MNIST digits were, and a warning when it is unlike one
    (``unlike_mnist``); any failure to read it becomes a ``MnistbenchError`` naming the file."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            prepared = mnist_like(img)
            return prepared, unlike_mnist(img, prepared)
    except FileNotFoundError as exc:
        raise MnistbenchError(f"{path}: no such file") from exc
    except UnidentifiedImageError as exc:
        raise MnistbenchError(f"{path}: not an image PIL can read (PNG, JPEG, ...)") from exc
    except Image.DecompressionBombError as exc:  # no Exception PIL shares with other errors
        raise MnistbenchError(
            f"{path}: too large to read safely ({exc}); scale it down first (a digit needs "
            "no more than a few hundred pixels a side)"
        ) from exc
    except (OSError, ValueError) as exc:
        raise MnistbenchError(f"{path}: unreadable image ({exc})") from exc


def load_image(path: str | Path) -> np.ndarray:
    """Read one image file; any failure becomes a ``MnistbenchError`` naming the file."""
    return read_image(path)[0]


def predict_files(
    model: Classifier, files: Sequence[str | Path]
) -> tuple[list[dict[str, Any]], np.ndarray]:
    """One row per file (in order): label and probabilities, or the error; plus the inputs read."""
    rows: list[dict[str, Any]] = []
    images: list[np.ndarray] = []
    readable: list[int] = []
    for path in files:
        row: dict[str, Any] = {"file": str(path), "label": None, "error": None}
        try:
            image, warning = read_image(path)
            images.append(image)
            readable.append(len(rows))
            if warning:
                row["warning"] = warning
                log.warning("%s: %s; its label means little", path, warning)
        except MnistbenchError as exc:
            row["error"] = str(exc)
            log.error("%s", exc)
        rows.append(row)
    batch = np.stack(images) if images else np.zeros((0, 28, 28), dtype=np.uint8)
    proba = predict_proba(model, torch.from_numpy(batch)).numpy()
    for i, p in zip(readable, proba, strict=True):
        rows[i].update(labelled(p, model.hparams.classes))
    return rows, batch


def labelled(proba: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """The predicted label, its class name (where the classes are not the digits 0-9) and the
    probability of each class (p0, p1, ...)."""
    row: dict[str, Any] = {"label": int(proba.argmax())}
    if tuple(classes) != DIGITS:
        row["class"] = classes[row["label"]]
    row.update({f"p{i}": float(v) for i, v in enumerate(proba)})
    return row


def predict_test_set(
    model: Classifier, test_split: str | Path, limit: int | None = None
) -> tuple[list[dict[str, Any]], np.ndarray]:
    images, labels = load_split(test_split, model.num_classes)
    if limit:
        images, labels = images[:limit], labels[:limit]
    proba = predict_proba(model, images).numpy()
    rows = [
        {"file": f"{test_split}#{i}", "true": int(y), **labelled(p, model.hparams.classes)}
        for i, (p, y) in enumerate(zip(proba, labels.tolist(), strict=True))
    ]
    return rows, images.numpy()


def format_rows(rows: list[dict[str, Any]], fmt: str = "csv") -> str:
    """The rows as JSON (a list of objects) or CSV (file, [true,] label, [class,] p0..p9 (one
    per class)[, error])."""
    if fmt == "json":
        return json.dumps(rows, indent=2) + "\n"
    columns = ["file"] + (["true"] if rows and "true" in rows[0] else []) + ["label"]
    columns += ["class"] if any("class" in r for r in rows) else []
    columns += sorted({c for r in rows for c in r if c[1:].isdigit()}, key=lambda c: int(c[1:]))
    columns += [c for c in ("error", "warning") if any(r.get(c) for r in rows)]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in row.items()})
    return buf.getvalue()


def write_rows(rows: list[dict[str, Any]], out: str | Path) -> None:
    """CSV or JSON by the file's extension (anything but .json is CSV)."""
    write_text(out, format_rows(rows, "json" if Path(out).suffix.lower() == ".json" else "csv"))


def save_grid(
    images: np.ndarray, rows: list[dict[str, Any]], out: str | Path, max_images: int = 64
) -> None:
    """The inputs as the model saw them, each titled with its prediction and probability."""
    plt = pyplot()

    predicted = [r for r in rows if r.get("label") is not None][:max_images]
    n = len(predicted)
    cols = min(8, max(n, 1))
    nrows = max(1, -(-n // cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(1.4 * cols, 1.6 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, row in zip(axes.flat, images[:n], predicted, strict=False):
        ax.imshow(img, cmap="gray", vmin=0, vmax=255)
        prob = row[f"p{row['label']}"]
        title = f"{row.get('class', row['label'])} ({prob:.2f})"
        wrong = "true" in row and row["true"] != row["label"]
        if wrong:
            title += f" true {row['true']}"
        ax.set_title(title, fontsize=8, color="red" if wrong else "black")
    fig.tight_layout()
    write_figure(fig, out, dpi=100)


def predict(
    model: str | Path,
    files: Sequence[str | Path] = (),
    test_set: bool = False,
    test_data: str | Path | None = None,
    limit: int | None = None,
    out: str | Path | None = None,
    grid: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Predict files or the test set; write rows to ``out`` (CSV/JSON) and a ``grid`` PNG."""
    if bool(files) == bool(test_set):
        raise MnistbenchError("give either image files or --test-set (not both, not neither)")
    if limit is not None and (not test_set or limit < 1):
        raise MnistbenchError(
            f"--limit {limit}: give a number of test images of at least 1, with --test-set "
            "(without --limit every test image is predicted)"
        )
    classifier = load_classifier(model)
    if test_set:
        split = Path(test_data) if test_data else default_test_split(model)
        rows, images = predict_test_set(classifier, split, limit)
    else:
        rows, images = predict_files(classifier, files)
    if out:
        write_rows(rows, out)
    if grid:
        save_grid(images, rows, grid)
    return rows
