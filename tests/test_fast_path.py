"""The fast training path: on-device batch augmentation, epoch statistics on the device."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from mnistbench.config.load import load_config, resolve_model, validate_config
from mnistbench.data.synthetic import make_digits
from mnistbench.errors import ConfigError
from mnistbench.metrics import macro_f1
from mnistbench.models import build_model
from mnistbench.train.classifier import Classifier, random_affine, random_flip_and_erase
from mnistbench.train.datamodule import MNISTDataModule
from tests.conftest import ROOT, classifier


def test_random_affine_without_range_is_the_identity() -> None:
    x = torch.rand(8, 1, 28, 28)
    y = random_affine(x, degrees=0.0, translate=0.0, scale=(1.0, 1.0))
    assert torch.allclose(x, y, atol=1e-5)


def test_random_affine_moves_digits_and_keeps_background() -> None:
    torch.manual_seed(0)
    x = torch.zeros(64, 1, 28, 28)
    x[:, :, 10:18, 12:16] = 1.0
    y = random_affine(x, degrees=15.0, translate=0.1, scale=(0.9, 1.1))
    assert y.shape == x.shape
    assert float(y[:, :, :3, :].abs().max()) == 0.0  # the top rows stay background
    moved = (y - x).abs().flatten(1).sum(1)
    assert bool((moved > 0.5).all()), "every image of the batch is transformed"
    # Different images get different transforms (per-sample parameters).
    assert not torch.allclose(y[0], y[1])


def test_flips_mirror_about_half_the_batch_and_nothing_else() -> None:
    torch.manual_seed(0)
    x = torch.rand(1000, 1, 28, 28)
    y = random_flip_and_erase(x, hflip=True, erase=0.0)
    mirrored = (y == x.flip(-1)).flatten(1).all(1)
    kept = (y == x).flatten(1).all(1)
    assert bool((mirrored ^ kept).all())  # each image is itself or its mirror
    assert 430 < int(mirrored.sum()) < 570
    assert torch.equal(random_flip_and_erase(x, hflip=False, erase=0.0), x)


def test_erasing_blanks_one_rectangle_of_2_to_33_percent() -> None:
    torch.manual_seed(0)
    x = torch.ones(500, 1, 28, 28)
    y = random_flip_and_erase(x, hflip=False, erase=1.0)
    for image in y[:, 0]:
        rows, cols = torch.nonzero(image == 0, as_tuple=True)
        box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert int(box) == len(rows)  # one whole rectangle
        assert 0.02 * 784 - 28 <= len(rows) <= 0.33 * 784
    half = random_flip_and_erase(x, hflip=False, erase=0.5)
    assert 200 < int((half == 0).flatten(1).any(1).sum()) < 300
    # in training: after the affine, before the pixel statistics (erased = background)
    model = classifier("lenet5", augment={"enabled": True, "degrees": 0.0, "translate": 0.0,
                                          "scale": [1.0, 1.0], "erase": 1.0})  # fmt: skip
    images = torch.full((64, 28, 28), 255, dtype=torch.uint8)
    seen = model.normalize(images, augment=True)
    background = (0.0 - 0.1307) / 0.3081
    assert bool(((seen - background).abs() < 1e-4).flatten(1).any(1).all())
    assert torch.equal(model.normalize(images), model.normalize(images))  # eval: never


def test_flips_are_refused_for_digits_and_taken_for_clothes() -> None:
    cfg = load_config(ROOT / "config/config.yaml")
    cfg["models"] = {"cnn": {"train": {"augment": {"enabled": True, "hflip": True}}}}
    refused = r"models.cnn.train.augment.hflip: a mirrored image of mnist is not one of its class"
    with pytest.raises(ConfigError, match=refused + "; flips suit only fashion_mnist"):
        validate_config(dict(cfg))
    cfg["dataset"] = "fashion_mnist"
    assert validate_config(cfg)["models"]["cnn"]["train"]["augment"]["hflip"] is True


@pytest.fixture
def prepared(tmp_path):
    images, labels = make_digits(600, seed=1)
    for split, sl in (
        ("train", slice(0, 400)),
        ("val", slice(400, 600)),
        ("test", slice(400, 600)),
    ):
        torch.save(
            {"images": torch.from_numpy(images[sl]), "labels": torch.from_numpy(labels[sl]).long()},
            tmp_path / f"{split}.pt",
        )
    return tmp_path


def settings_for(project_root, **train) -> dict:
    config = validate_config(load_config(project_root / "config" / "config.yaml"))
    config["models"]["lenet5"].setdefault("train", {}).update(train)
    return resolve_model(config, "lenet5")


def test_epoch_statistics_match_the_predictions(project_root, prepared) -> None:
    """train/acc and train/f1 come from the device-side confusion matrix of the epoch."""
    settings = settings_for(project_root, augment={"enabled": True}, channels_last=True)
    L.seed_everything(0, verbose=False)
    module = Classifier.from_settings(build_model("lenet5"), settings, 0.13, 0.31)
    dm = MNISTDataModule(prepared, batch_size=100, seed=0)
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(module, datamodule=dm)
    m = trainer.callback_metrics
    assert {"train/loss", "train/acc", "train/f1", "val/f1"} <= set(m)
    assert int(module.sums["train"][0].sum()) == 400  # every training image counted once
    cm = module.sums["train"][0].view(10, 10)
    assert float(m["train/acc"]) == pytest.approx(float(cm.diagonal().sum() / 400))
    # the macro-F1 of that matrix, by the one definition (mnistbench.metrics)
    assert float(m["train/f1"]) == pytest.approx(macro_f1(cm.double().numpy()))


def test_training_data_stay_where_the_trainer_runs(prepared) -> None:
    dm = MNISTDataModule(prepared, batch_size=50)
    dm.setup()
    images, _ = dm.resident("train")  # no trainer attached: the CPU copy
    assert images.device.type == "cpu"
    batch_images, batch_labels = next(iter(dm.train_dataloader()))
    assert batch_images.dtype == torch.uint8 and batch_images.shape == (50, 28, 28)
    assert batch_labels.shape == (50,)


def test_a_reloaded_checkpoint_runs_eagerly(tmp_path) -> None:
    """train.compile speeds up training only: evaluate, predict and export get the plain net."""
    module = classifier("lenet5", compile=True)
    assert module.net._compiled_call_impl is not None
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False)
    trainer.strategy.connect(module)
    trainer.save_checkpoint(tmp_path / "c.ckpt")
    reloaded = Classifier.from_checkpoint(tmp_path / "c.ckpt")
    assert reloaded.net._compiled_call_impl is None
    assert not reloaded.hparams.compile


def test_index_batches_are_a_random_batch_samplers_batches() -> None:
    """Device-side batches are those of BatchSampler(RandomSampler) with the same generator."""
    from torch.utils.data import BatchSampler, RandomSampler

    from mnistbench.train.datamodule import IndexBatches

    reference = BatchSampler(
        RandomSampler(range(103), generator=torch.Generator().manual_seed(3)), 10, False
    )
    ours = IndexBatches(103, 10, shuffle=True, seed=3, device=torch.device("cpu"))
    first = [b.tolist() for b in ours]
    assert first == list(reference)
    assert len(ours) == len(reference) == 11
    second = [b.tolist() for b in ours]  # the next epoch: a new permutation of every index
    assert second != first and sorted(sum(second, [])) == list(range(103))
    ordered = IndexBatches(25, 10, shuffle=False, seed=0, device=torch.device("cpu"))
    assert [b.tolist() for b in ordered] == [
        list(range(10)),
        list(range(10, 20)),
        list(range(20, 25)),
    ]
