"""The metrics kept across one or two resumes (a unit test of the CSV bookkeeping)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mnistbench.train.resume import epoch_table, fingerprint, keep_logged_before
from tests.conftest import ROOT

HEADER = "epoch,lr-AdamW,step,train/loss,val/f1\n"


def epoch_rows(epoch: int, steps: int = 10) -> str:
    first, last = epoch * steps, epoch * steps + steps - 1
    return f",0.01,{first},,\n{epoch},,{last},,0.{epoch + 1}\n{epoch},,{last},0.{9 - epoch},\n"


def test_two_interruptions_keep_every_finished_epoch_once(tmp_path: Path) -> None:
    csv, kept = tmp_path / "metrics.csv", tmp_path / "before.csv"
    # Killed during epoch index 2, after checkpointing epoch index 1 (global step 20).
    csv.write_text(HEADER + epoch_rows(0) + epoch_rows(1) + ",0.01,20,,\n")
    assert keep_logged_before(csv, 20, kept) == 6
    assert not csv.exists()
    # The resumed run logs epochs 2 and 3, then is killed again after checkpointing epoch 3.
    csv.write_text(HEADER + epoch_rows(2) + epoch_rows(3) + ",0.01,40,,\n")
    assert keep_logged_before(csv, 40, kept) == 12
    csv.write_text(HEADER + epoch_rows(4))
    table = epoch_table(kept, csv)
    assert table["epoch"].tolist() == [1, 2, 3, 4, 5]
    assert table["val_f1"].notna().all() and table["train_loss"].notna().all()


def test_the_fingerprint_holds_the_train_stages_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Training code imports no pipeline: the train command hands train_model the stage's code
    files from the stage table, and an edit of one of them changes the resume fingerprint."""
    from mnistbench import commands
    from mnistbench.config.load import load_validated
    from mnistbench.pipeline.codedeps import code_files
    from mnistbench.pipeline.table import STEP
    from mnistbench.train import recipe

    monkeypatch.chdir(ROOT)  # the code files as the orchestrators list them
    handed = {}
    monkeypatch.setattr(recipe, "train_model", lambda *args: handed.setdefault("code", args[-1]))
    config = load_validated("config/config.yaml", "config/smoke.yaml")
    commands.train(config, "lenet5")
    assert handed["code"] == code_files(STEP["train_model"].modules, "lenet5")
    assert "src/mnistbench/train/recipe.py" in handed["code"]
    assert not [f for f in handed["code"] if "/pipeline/" in f]

    code = tmp_path / "recipe.py"
    code.write_text("x = 1\n")
    settings, stats = {"arch": "lenet5"}, {"train": {}}
    before = fingerprint(settings, stats, [str(code)])
    code.write_text("x = 2\n")
    assert fingerprint(settings, stats, [str(code)]) != before
