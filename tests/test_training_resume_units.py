"""The metrics kept across one or two resumes (a unit test of the CSV bookkeeping)."""

from __future__ import annotations

from pathlib import Path

from mnistbench.train.resume import epoch_table, keep_logged_before

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
