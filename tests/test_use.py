"""Using a trained model: image preparation, predict, ONNX export; the new training options.

One tiny model is trained in-process on generated digits (a few seconds) and shared."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pytest
from PIL import Image

from mnistbench.config.load import load_config, resolve_model, validate_config
from mnistbench.data.prepare import prepare_dataset
from mnistbench.data.synthetic import make_digits, write_synthetic
from mnistbench.errors import ConfigError
from mnistbench.io import read_json
from mnistbench.use.predict import mnist_like, predict, predict_files

ROOT = Path(__file__).resolve().parents[1]


def settings(**train: object) -> dict:
    config = load_config(ROOT / "config/config.yaml", ROOT / "config/smoke.yaml")
    config["train"].update(
        # (two epochs of tiny data: scoring like chance is no failure here)
        {"max_epochs": 2, "batch_size": 32, "scheduler": {"name": "none"}}
        | {"require_learning": False, **train}
    )
    return resolve_model(validate_config(config), "lenet5")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_synthetic(root / "raw", 400, 100, seed=0)
    prepare_dataset(root / "raw", root / "prepared", val_size=100, split_seed=0)
    return root / "prepared"


@pytest.fixture(scope="module")
def trained(prepared: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, L.Trainer]:
    """lenet5, 2 short epochs, with gradient accumulation and clipping; the Trainer is kept."""
    from mnistbench.train import recipe

    seen: list[L.Trainer] = []

    class Recording(L.Trainer):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            seen.append(self)

    out = tmp_path_factory.mktemp("results") / "lenet5"
    s = settings(accumulate_grad_batches=2, gradient_clip={"value": 0.5, "algorithm": "value"})
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(recipe.L, "Trainer", Recording)
        recipe.train_model(s, prepared, out, threads=1)
    return out, seen[0]


# ------------------------------------------------------------------- image preparation


def digit_image(label: int = 3) -> np.ndarray:
    images, labels = make_digits(50, seed=1)
    return images[int(np.flatnonzero(labels == label)[0])]


def centre_of_mass(img: np.ndarray) -> tuple[float, float]:
    ys, xs = np.indices(img.shape)
    total = img.astype(float).sum()
    return (ys * img).sum() / total, (xs * img).sum() / total


def test_mnist_like_matches_the_mnist_recipe() -> None:
    big = Image.fromarray(255 - digit_image()).resize((100, 100))  # dark on light, 100x100
    out = mnist_like(big)
    assert out.shape == (28, 28) and out.dtype == np.uint8
    rows = np.flatnonzero(out.max(axis=1) > 25)
    cols = np.flatnonzero(out.max(axis=0) > 25)
    assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 in (19, 20, 21)  # fits 20x20
    cy, cx = centre_of_mass(out)
    assert abs(cy - 14) <= 1 and abs(cx - 14) <= 1
    assert out[0].max() == 0 and out[:, 0].max() == 0  # black background


def test_inverted_and_coloured_images_prepare_alike() -> None:
    digit = digit_image()
    light_on_dark = mnist_like(Image.fromarray(digit))
    dark_on_light = mnist_like(Image.fromarray(255 - digit))
    rgb = np.zeros((*digit.shape, 3), dtype=np.uint8)
    rgb[..., 0] = 200 - digit * 0.6  # reddish ink on a light pink background
    rgb[..., 1] = 220 - digit * 0.8
    rgb[..., 2] = 230 - digit * 0.8
    coloured = mnist_like(Image.fromarray(rgb, "RGB"))
    rgba = np.zeros((*digit.shape, 4), dtype=np.uint8)
    rgba[..., 3] = digit  # black ink on a transparent background
    transparent = mnist_like(Image.fromarray(rgba, "RGBA"))
    for other in (dark_on_light, coloured, transparent):
        # The same digit, allowing the one-pixel shift a rounded centre of mass can make.
        best = max(
            np.corrcoef(light_on_dark.ravel(), np.roll(other, (dy, dx), (0, 1)).ravel())[0, 1]
            for dy in (-1, 0, 1)
            for dx in (-1, 0, 1)
        )
        assert best > 0.95


# --------------------------------------------------------------------------- predict


@pytest.fixture(scope="module")
def image_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    d = tmp_path_factory.mktemp("images")
    digit = digit_image(7)
    Image.fromarray(255 - digit).save(d / "inverted.png")
    Image.fromarray(np.stack([digit, digit // 2, digit], axis=-1), "RGB").save(d / "rgb.png")
    Image.fromarray(digit).resize((100, 100)).save(d / "big.jpg")
    (d / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    (d / "notes.txt").write_text("not an image")
    (d / "huge.png").write_bytes(png_claiming_size(14_000, 14_000))
    names = ("inverted.png", "rgb.png", "big.jpg", "corrupt.png", "notes.txt", "huge.png")
    return [d / n for n in names]


def png_claiming_size(width: int, height: int) -> bytes:
    """A small PNG whose header says ``width`` x ``height`` (a decompression bomb as PIL sees
    it: the size alone is refused, before any pixel is read)."""
    import io
    import struct
    import zlib

    buf = io.BytesIO()
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr : ihdr + 17]))
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", crc)
    return bytes(data)


def test_predict_files_reports_bad_files_and_predicts_the_rest(trained, image_files) -> None:
    import torch

    from mnistbench.train.classifier import predict_proba
    from mnistbench.use.predict import load_classifier

    model = load_classifier(trained[0])
    rows, images = predict_files(model, image_files)
    assert [r["file"] for r in rows] == [str(p) for p in image_files]
    good, bad = rows[:3], rows[3:]
    for row in good:  # the label is the most probable class
        probs = [row[f"p{i}"] for i in range(10)]
        assert row["error"] is None and row["label"] == int(np.argmax(probs))
        assert sum(probs) == pytest.approx(1.0, abs=1e-5)
    # The same 7, however it was saved, reads as the model reads it prepared without a file.
    prepared = mnist_like(Image.fromarray(digit_image(7)))
    raw = predict_proba(model, torch.from_numpy(prepared[None]))[0].numpy()
    assert [r["label"] for r in good] == [int(raw.argmax())] * 3
    for row in good:
        assert np.abs(np.array([row[f"p{i}"] for i in range(10)]) - raw).max() < 0.05
    for row, path in zip(bad, image_files[3:], strict=True):
        assert row["label"] is None and str(path) in row["error"]
    assert "too large to read safely" in rows[5]["error"]  # 14,000 x 14,000: one file's error
    assert images.shape == (3, 28, 28)


def test_predict_command_csv_and_exit_status(trained, image_files, tmp_path, capsys) -> None:
    from mnistbench.cli import main

    model = str(trained[0])
    main(["predict", model, *map(str, image_files), "--out", str(tmp_path / "p.csv")])
    err = capsys.readouterr().err
    assert "corrupt.png" in err and "predicted 3 of 6 inputs" in err
    lines = (tmp_path / "p.csv").read_text().splitlines()
    assert lines[0] == "file,label," + ",".join(f"p{i}" for i in range(10)) + ",error"
    assert len(lines) == 7
    # Every file unreadable: exit status 1; a model that is not there: 2 (a user error).
    with pytest.raises(SystemExit) as exc:
        main(["predict", model, str(image_files[3]), str(image_files[4])])
    assert exc.value.code == 1
    with pytest.raises(SystemExit) as exc:
        main(["predict", str(tmp_path / "nope"), str(image_files[0])])
    assert exc.value.code == 2 and "mnistbench error:" in capsys.readouterr().err


def test_python_m_mnistbench_prints_csv(trained, image_files) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mnistbench", "predict", str(trained[0]), str(image_files[0])],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[1].startswith(f"{image_files[0]},")


def test_predict_test_set_json_and_grid(trained, prepared, tmp_path) -> None:
    rows = predict(
        trained[0],
        test_set=True,
        test_data=prepared / "test.pt",
        limit=20,
        out=tmp_path / "t.json",
        grid=tmp_path / "grid.png",
    )
    assert json.loads((tmp_path / "t.json").read_text()) == rows
    assert len(rows) == 20 and all("true" in r for r in rows)
    assert Image.open(tmp_path / "grid.png").size[0] > 100


# ---------------------------------------------------------------------------- export


def test_onnx_export_matches_pytorch(trained, prepared, tmp_path) -> None:
    import onnxruntime as ort

    from mnistbench.use.export import export_and_check

    result = export_and_check(
        trained[0], tmp_path / "m.onnx", test_data=prepared / "test.pt", n_images=100
    )
    assert result["passed"] and result["identical_predictions"] == 100
    assert result["max_abs_diff_logits"] < 1e-4
    assert read_json(tmp_path / "check.json") == result
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    for batch in (1, 7):  # the batch dimension is dynamic
        x = np.random.default_rng(0).random((batch, 1, 28, 28), dtype=np.float32)
        assert session.run(None, {"images": x})[0].shape == (batch, 10)


# ------------------------------------------------------------------ training options


def test_accumulation_and_clipping_reach_the_trainer(trained) -> None:
    trainer = trained[1]
    assert trainer.accumulate_grad_batches == 2
    assert trainer.gradient_clip_val == 0.5
    assert trainer.gradient_clip_algorithm == "value"
    summary = read_json(trained[0] / "summary.json")
    assert summary["epochs"] == 2 and summary["resumed_after_epoch"] is None
    # A finished run leaves nothing to resume from (a forced rerun trains afresh).
    assert not (trained[0] / "lightning/resume/last.ckpt").exists()


def test_ema_trains_and_publishes_averaged_weights(prepared, tmp_path) -> None:
    """What is published is the average, not the trained weights themselves. With the decay's
    warm-up (min(0.999, (1 + t) / (10 + t))) the average of the run's 20 steps follows the
    weights: nearer the trained weights than the initial ones, yet not equal to them (the
    weights themselves are in the best epoch's checkpoint, beside the average it holds too, so
    either choice publishes the average)."""
    import torch

    from mnistbench.models import build_model
    from mnistbench.train.classifier import Classifier
    from mnistbench.train.recipe import train_model

    s = settings(
        swa={"enabled": False},
        ema={"enabled": True, "decay": 0.999},
        early_stopping={"enabled": False},
    )
    summary = train_model(s, prepared, tmp_path, threads=1)
    assert summary["selected"] in ("ema", "best_epoch")
    L.seed_everything(s["seed"], workers=True, verbose=False)
    initial = build_model("lenet5").state_dict()  # as train_model draws them
    (best,) = (tmp_path / "lightning/checkpoints").glob("*.ckpt")
    trained = torch.load(best, weights_only=False)["current_model_state"]  # not averaged
    published = torch.load(tmp_path / "model.ckpt", weights_only=False)["state_dict"]

    def apart(state: dict, other: dict, prefix: str = "") -> float:
        return sum(float((state[f"net.{k}"] - other[f"{prefix}{k}"]).norm()) for k in initial)

    moved = apart(trained, initial)  # how far training took the weights
    assert 1e-3 * moved < apart(published, trained, "net.") < 0.5 * moved
    Classifier.from_checkpoint(tmp_path / "model.ckpt")


def test_ema_and_swa_together_is_a_config_error() -> None:
    config = load_config(ROOT / "config/config.yaml")
    config["models"]["cnn"] = {"train": {"ema": {"enabled": True}}}
    with pytest.raises(ConfigError, match=r"models\.cnn\.train: swa\.enabled and ema\.enabled"):
        validate_config(config)


def test_predict_warns_on_images_unlike_a_digit(trained, image_files, tmp_path, capsys) -> None:
    """Blank, nearly uniform, a few pixels, a speck blown up to the whole frame: each is still
    labelled, with a warning in its row and on stderr; real digits get none."""
    from mnistbench.cli import main

    canvas = np.full((100, 100), 255, np.uint8)
    canvas[40:42, 60:62] = 0  # a speck on white paper
    inputs = {
        "blank.png": np.zeros((28, 28), np.uint8),
        "grey.png": np.random.default_rng(0).integers(120, 140, (28, 28)).astype(np.uint8),
        "tiny.png": np.array([[0, 0, 0], [0, 255, 0], [0, 0, 0]], np.uint8),
        "speck.png": canvas,
    }
    for name, pixels in inputs.items():
        Image.fromarray(pixels).save(tmp_path / name)
    files = [str(tmp_path / name) for name in inputs] + [str(p) for p in image_files[:3]]
    main(["predict", str(trained[0]), *files, "--out", str(tmp_path / "p.json")])
    rows = json.loads((tmp_path / "p.json").read_text())
    expected = [
        "blank image (a single colour): there is no digit to read",
        "almost uniform (grey levels span 19 of 255): there is hardly a digit",
        "only 3x3 pixels (MNIST digits are 28x28)",
        "unlike an MNIST digit: ink covers 51% of the prepared 28x28 frame (MNIST digits: 3% "
        "to 46%)",
    ]
    assert [r.get("warning") for r in rows] == [*expected, None, None, None]
    # still predicted (the most probable class)
    assert [r["label"] for r in rows] == [np.argmax([r[f"p{i}"] for i in range(10)]) for r in rows]
    assert len({r["label"] for r in rows[-3:]}) == 1  # the same 7 three times: one label
    err = capsys.readouterr().err
    for name, warning in zip(inputs, expected, strict=True):
        assert f"{tmp_path / name}: {warning}; its label means little" in err


@pytest.mark.parametrize("limit", ["0", "-5"])
def test_predict_refuses_a_limit_below_one(trained, prepared, limit, capsys) -> None:
    from mnistbench.cli import main

    test = str(prepared / "test.pt")
    with pytest.raises(SystemExit) as exc:
        main(["predict", str(trained[0]), "--test-set", "--test-data", test, "--limit", limit])
    assert exc.value.code == 2
    assert f"mnistbench error: --limit {limit}: give a number of test images of at least 1" in (
        capsys.readouterr().err
    )
