"""Training faults: a NaN/inf loss stops the job and publishes nothing; a job killed mid-write
leaves no complete-looking file; concurrent jobs never share a file name."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import torch

from mnistbench.config.load import load_config, resolve_model, validate_config
from mnistbench.data.prepare import prepare_dataset
from mnistbench.data.synthetic import write_synthetic
from mnistbench.errors import TrainingError
from mnistbench.io import atomic_path
from mnistbench.models import build_model, count_parameters
from mnistbench.train.classifier import Classifier
from mnistbench.train.recipe import PUBLISHED, train_model
from mnistbench.use.predict import load_classifier

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("tiny")
    write_synthetic(base / "raw", 400, 40, seed=0)
    prepare_dataset(base / "raw", base / "prepared", val_size=80, split_seed=0)
    return base / "prepared"


def tiny_settings(model: str = "lenet5", **train) -> dict:
    cfg = load_config(ROOT / "config/config.yaml", ROOT / "config/smoke.yaml")
    cfg["train"].update(
        max_epochs=1, batch_size=32, precision={"cpu": "32-true"}, swa={"enabled": False}
    )
    cfg["train"]["require_learning"] = False  # ten steps learn little: not what is tested here
    cfg["train"].update(train)
    # the smoke config sets some models' own epochs: one epoch here for every model
    (cfg["models"][model] or {}).get("train", {}).pop("max_epochs", None)
    return resolve_model(validate_config(cfg), model)


def _published(out: Path) -> list[str]:
    return sorted(p for p in PUBLISHED if (out / p).exists())


def _checkpoints(out: Path) -> list[Path]:
    return [p for p in out.rglob("*.ckpt")] if out.exists() else []


def test_injected_nan_loss_stops_the_job_and_publishes_nothing(
    prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "lenet5"
    out.mkdir()
    (out / "model.ckpt").write_bytes(b"a previous run's checkpoint")  # must not survive
    calls = {"n": 0}
    real_loss = Classifier._loss

    def loss_turning_nan(self, logits, labels):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        loss = real_loss(self, logits, labels)
        return loss * float("nan") if self.training and calls["n"] >= 3 else loss

    monkeypatch.setattr(Classifier, "_loss", loss_turning_nan)
    with pytest.raises(TrainingError) as info:
        train_model(tiny_settings(), prepared, out, threads=1)
    msg = str(info.value)
    assert "became nan" in msg and "lower the learning rate" in msg
    assert "No checkpoint was published" in msg
    assert _published(out) == [] and _checkpoints(out) == []


def test_exploding_learning_rate_stops_the_job(prepared: Path, tmp_path: Path) -> None:
    """The config that the keep-going test uses to make a model fail, checked in-process."""
    settings = tiny_settings(
        optimizer={"name": "sgd", "lr": 1e30, "momentum": 0.0}, scheduler={"name": "none"}
    )
    out = tmp_path / "lenet5"
    with pytest.raises(TrainingError, match=r"became (nan|inf)"):
        train_model(settings, prepared, out, threads=1)
    assert _published(out) == [] and _checkpoints(out) == []


def test_a_finite_but_exploding_loss_stops_the_job_at_that_epoch(
    prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A loss that stays finite but ends the epoch a million times a fresh model's is
    divergence too: the error names the run, the epoch and the learning rates."""
    real_loss = Classifier._loss

    def huge(self, logits, labels):  # type: ignore[no-untyped-def]
        loss = real_loss(self, logits, labels)
        return loss * 1e6 if self.training else loss

    monkeypatch.setattr(Classifier, "_loss", huge)
    out = tmp_path / "lenet5"
    with pytest.raises(TrainingError) as info:
        train_model(tiny_settings(), prepared, out, threads=1)
    msg = str(info.value)
    assert msg.startswith("lenet5 diverged at epoch 1: its mean training loss was "), msg
    assert re.search(
        r"lower the learning rate \(optimizer.lr = [\d.e-]+, scheduler.max_lr = 0.01\)", msg
    )
    assert _published(out) == [] and _checkpoints(out) == []


def test_a_model_no_better_than_chance_is_an_error(
    prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Weights that predict one class for every image (as a collapsed run does) score a
    validation F1 of about 0.02: the run fails instead of publishing them, unless the config
    says not to (require_learning: false)."""
    real_forward = Classifier.forward

    def one_class(self, images):  # type: ignore[no-untyped-def]
        logits = real_forward(self, images)
        return torch.zeros_like(logits).index_fill_(1, torch.tensor([3]), 1.0)

    monkeypatch.setattr(Classifier, "forward", one_class)
    out = tmp_path / "lenet5"
    with pytest.raises(TrainingError) as info:
        train_model(tiny_settings(require_learning=True), prepared, out, threads=1)
    msg = str(info.value)
    assert msg.startswith("lenet5 diverged or did not learn: validation F1 0.0"), msg
    assert "no better than chance (0.10 for 10 classes)" in msg
    assert _published(out) == [] and _checkpoints(out) == []
    summary = train_model(tiny_settings(), prepared, tmp_path / "allowed", threads=1)
    assert summary["val_f1"] < 0.1  # published as asked, scores and all


def test_a_good_tiny_run_publishes_every_output(prepared: Path, tmp_path: Path) -> None:
    out = tmp_path / "lenet5"
    summary = train_model(tiny_settings(), prepared, out, threads=1)
    assert _published(out) == sorted(PUBLISHED) and summary["epochs"] == 1
    assert not [p for p in out.rglob("*.tmp")]


def test_non_finite_final_weights_fall_back_to_the_best_epoch(
    prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Weights that turn NaN on the last step (after the last loss check) are not published."""
    from mnistbench.train import publish

    monkeypatch.setattr(publish, "_finite", lambda module: False)
    summary = train_model(tiny_settings(), prepared, tmp_path / "lenet5", threads=1)
    assert summary["selected"] == "best_epoch"


# ------------------------------------------------------------------- killed mid-write

KILL_MID_WRITE = textwrap.dedent(
    """
    import os, signal, sys
    from mnistbench.io import atomic_path
    target = sys.argv[1]
    with atomic_path(target) as tmp, open(tmp, "wb") as fh:
        fh.write(b"half of the data")
        fh.flush()
        os.kill(os.getpid(), signal.SIGKILL)  # as the OOM killer or a cluster would
    """
)


@pytest.mark.parametrize("name", ["model.ckpt", "summary.json", "comparison.csv", "fig.png"])
def test_a_job_killed_mid_write_leaves_no_complete_looking_file(tmp_path: Path, name) -> None:
    target = tmp_path / "out" / name
    env_path = str(ROOT / "src")
    proc = subprocess.run(
        [sys.executable, "-c", KILL_MID_WRITE, str(target)],
        env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert proc.returncode == -9
    assert not target.exists()
    leftovers = [p.name for p in target.parent.iterdir()]
    assert len(leftovers) == 1 and leftovers[0].startswith(f".{name}.")
    assert leftovers[0].endswith(".tmp")  # hidden and clearly temporary


KILL_IN_SAVE = textwrap.dedent(
    """
    import os, signal, sys
    import lightning as L
    from mnistbench.train import recipe

    real_copy = recipe.shutil.copyfile

    def killed_copy(src, dst, *args, **kwargs):
        if not str(dst).endswith(".tmp"):
            return real_copy(src, dst, *args, **kwargs)
        with open(dst, "wb") as fh:  # the published checkpoint: killed half-way through
            fh.write(b"PK half a checkpoint")
        os.kill(os.getpid(), signal.SIGKILL)

    recipe.shutil.copyfile = killed_copy
    recipe.train_model(__import__("json").loads(sys.argv[1]), sys.argv[2], sys.argv[3], 1)
    """
)


def test_training_killed_while_saving_the_checkpoint(prepared: Path, tmp_path: Path) -> None:
    import json

    out = tmp_path / "lenet5"
    settings = tiny_settings(early_stopping={"enabled": False})
    proc = subprocess.run(
        [sys.executable, "-c", KILL_IN_SAVE, json.dumps(settings), str(prepared), str(out)],
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin", "CUDA_VISIBLE_DEVICES": ""},
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode != -9:
        pytest.fail(f"not killed in save_checkpoint: {proc.returncode} {proc.stderr[-3000:]}")
    assert _published(out) == []  # only the hidden .model.ckpt.*.tmp is left
    assert [p.name for p in out.glob(".model.ckpt.*.tmp")]


# ---------------------------------------------------------------------------- concurrency


def test_temporary_names_are_unique_per_writer(tmp_path: Path) -> None:
    """Two writers of one destination (threads here; processes alike: mkstemp) never share
    a temporary file, so concurrent jobs cannot interleave their bytes."""
    target = tmp_path / "same.json"
    names: list[str] = []
    barrier = threading.Barrier(8)

    def writer(i: int) -> None:
        with atomic_path(target) as tmp:
            names.append(tmp.name)
            barrier.wait()
            tmp.write_text(str(i))

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(names)) == 8
    assert target.read_text() in {str(i) for i in range(8)}
    assert [p.name for p in tmp_path.iterdir()] == ["same.json"]


def test_train_jobs_write_only_inside_their_own_model_directory(
    prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Everything a train job writes (Lightning logs and checkpoints included) lies under
    results/<dataset>/models/<model>/: two models' jobs share no path."""
    monkeypatch.chdir(tmp_path)
    before = set(tmp_path.rglob("*"))
    for model in ("lenet5", "simple_cnn"):
        train_model(tiny_settings(model), prepared, tmp_path / "models" / model, threads=1)
    written = set(tmp_path.rglob("*")) - before
    outside = [
        p for p in written if tmp_path / "models" not in p.parents and p != tmp_path / "models"
    ]
    assert outside == []  # e.g. no lightning_logs/ in the working directory
    by_model = {
        m: {
            p.relative_to(tmp_path / "models" / m)
            for p in written
            if tmp_path / "models" / m in p.parents
        }
        for m in ("lenet5", "simple_cnn")
    }
    assert by_model["lenet5"] and by_model["simple_cnn"]
    for model in ("lenet5", "simple_cnn"):  # each directory's checkpoint holds its own model
        restored = load_classifier(tmp_path / "models" / model)
        assert restored.hparams["arch"] == model
        assert count_parameters(restored.net) == count_parameters(build_model(model))


# ------------------------------------------------------------------- a full or read-only disk

STORAGE = {  # mount options, errno, the advice
    "full": ("size=64k", "ENOSPC", "no space left on device; free some space there"),
    "read-only": ("ro", "EROFS", "read-only file system; the file system is read-only"),
}


@pytest.fixture
def small_project(tmp_path: Path) -> Path:
    """Config files and prepared tiny data in a working directory, as a train job finds them."""
    from tests.conftest import copy_project

    (tmp_path / "proj").mkdir()
    proj = copy_project(tmp_path / "proj")
    for stage in ("download", "prepare"):
        subprocess.run(mnistbench(stage), cwd=proj, env=project_env(proj), check=True, timeout=300)
    return proj


def project_env(proj: Path, *paths: Path) -> dict[str, str]:
    """The environment of a stage run in ``proj``: its own source first, then ``paths``."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, (proj / "src", *paths)))}


def mnistbench(*args: str) -> list[str]:
    files = ["config/config.yaml", "config/smoke.yaml"]
    tiny = {
        "data": {"val_size": 80, "synthetic": {"n_train": 400, "n_test": 40}},
        "train": {"max_epochs": 2, "require_learning": False},
    }
    return [sys.executable, "-m", "mnistbench", *args, "--configfile", *files, "--set"] + [
        json.dumps(tiny)
    ]


@pytest.mark.parametrize("kind", list(STORAGE))
def test_a_full_or_read_only_disk_is_one_error_line_naming_the_path(
    kind: str, small_project: Path
) -> None:
    """The model's directory on a tmpfs of 64 KiB (a lenet5 checkpoint is larger) or a
    read-only one: the train job ends with one `mnistbench error:` line that names the path and
    says what to do, no traceback, and nothing under a final name. Where mounting is not allowed,
    the error is simulated (tests/inject/sitecustomize.py)."""
    options, code, advice = STORAGE[kind]
    out = small_project / "results/synthetic/models/lenet5"
    out.mkdir(parents=True)
    mount = ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(out)]
    mounted = subprocess.run(mount, capture_output=True).returncode == 0
    env = project_env(small_project)
    if not mounted:
        env = project_env(small_project, ROOT / "tests/inject")
        fault = {"stage": "train", "model": "lenet5", "fault": "oserror", "errno": code}
        env["MNISTBENCH_INJECT"] = json.dumps([fault])
    try:
        cmd = mnistbench("train", "--model", "lenet5", "--threads", "1")
        proc = subprocess.run(
            cmd, cwd=small_project, env=env, capture_output=True, text=True, timeout=300
        )
        files = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    finally:
        if mounted:
            subprocess.run(["umount", str(out)], check=True)
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"mnistbench error: {out.relative_to(small_project)}"), proc.stderr
    assert advice in last and "Nothing half-written was kept under a final name" in last
    assert "Traceback" not in proc.stderr
    assert not [f for f in files if str(f) in PUBLISHED or f.suffix == ".ckpt"], files
