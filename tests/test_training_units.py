"""Small pieces of training and I/O that the end-to-end run would only show indirectly."""

from __future__ import annotations

import os
import stat

import pytest

from mnistbench.config.load import swa_start_epoch
from mnistbench.io import atomic_path, write_text
from mnistbench.train.resume import epoch_table


def test_epoch_table_merges_train_val_and_lr_rows(tmp_path) -> None:
    # The shape of Lightning's CSVLogger output: lr rows (no epoch), val rows, train rows.
    (tmp_path / "m.csv").write_text(
        "epoch,lr-AdamW,step,train/acc,train/loss,val/f1,val/loss\n"
        ",0.01,0,,,,\n"
        "0,,9,,,0.80,0.5\n"
        "0,,9,0.7,0.9,,\n"
        ",0.02,10,,,,\n"
        "1,,19,,,0.90,0.3\n"
        "1,,19,0.85,0.4,,\n"
    )
    table = epoch_table(tmp_path / "m.csv")
    assert table["epoch"].tolist() == [1, 2]
    assert table["lr"].tolist() == [0.01, 0.02]
    assert table["val_f1"].tolist() == [0.80, 0.90]
    assert table["train_loss"].tolist() == [0.9, 0.4]
    assert list(table.columns[:3]) == ["epoch", "train_loss", "train_acc"]


@pytest.mark.parametrize(("start", "expected"), [(0.7, 7), (3, 3), (0.5, 5)])
def test_swa_start_epoch(start, expected) -> None:
    assert swa_start_epoch({"epoch_start": start}, 10) == expected


def test_atomic_write_leaves_nothing_on_failure(tmp_path) -> None:
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_gives_ordinary_permissions(tmp_path) -> None:
    write_text(tmp_path / "a.txt", "x")
    mode = stat.S_IMODE(os.stat(tmp_path / "a.txt").st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask


def test_host_count_ema_matches_torch_and_survives_a_reload() -> None:
    """The synchronisation-free EMA computes what torch's AveragedModel computes with the same
    warmed-up decay (and, without warm-up, what torch's fixed-decay EMA computes), and a reloaded
    average (a resumed run) keeps averaging, warm-up included, instead of restarting."""
    import torch
    from torch.optim.swa_utils import AveragedModel, get_ema_avg_fn

    from mnistbench.train.averaging import HostCountAveragedModel

    def warmed(avg: torch.Tensor, cur: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        d = min(0.9, (1 + int(n)) / (10 + int(n)))
        return d * avg + (1 - d) * cur

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    ours = HostCountAveragedModel(net, 0.9, use_buffers=True)
    theirs = AveragedModel(net, avg_fn=warmed, use_buffers=True)
    fixed = HostCountAveragedModel(net, 0.9, warmup=False, use_buffers=True)
    torch_fixed = AveragedModel(net, avg_fn=get_ema_avg_fn(0.9), use_buffers=True)
    for _ in range(5):
        net.train()
        net(torch.randn(8, 4)).sum().backward()
        with torch.no_grad():
            for p in net.parameters():
                p -= 0.1 * p.grad
        for avg in (ours, theirs, fixed, torch_fixed):
            avg.update_parameters(net)
    for a_model, b_model in ((ours, theirs), (fixed, torch_fixed)):
        for a, b in zip(a_model.state_dict().values(), b_model.state_dict().values(), strict=True):
            assert torch.allclose(a.float(), b.float(), atol=1e-6)
    assert not torch.allclose(ours.module[0].weight, fixed.module[0].weight)
    assert int(ours.n_averaged) == 5
    reloaded = HostCountAveragedModel(net, 0.9, use_buffers=True)
    reloaded.load_state_dict(ours.state_dict())
    assert reloaded.updates == 5
    reloaded.update_parameters(net)
    ours.update_parameters(net)
    for a, b in zip(reloaded.state_dict().values(), ours.state_dict().values(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("warmup", [True, False])
def test_ema_follows_the_weights_after_a_few_hundred_steps(warmup: bool) -> None:
    """An EMA with decay 0.999 (allconv's) over 300 steps of training a classifier that starts
    out wrong: with the warm-up the average classifies as the trained weights do; with the fixed
    decay (before issue 22) it is still mostly the initial weights and classifies wrongly."""
    import torch

    from mnistbench.train.averaging import HostCountAveragedModel

    torch.manual_seed(0)
    x = torch.randn(512, 2)
    y = (x[:, 0] + x[:, 1] > 0).long()
    net = torch.nn.Linear(2, 2)
    with torch.no_grad():  # the opposite of the right answer: accuracy near 0 at the start
        net.weight.copy_(torch.tensor([[3.0, 3.0], [-3.0, -3.0]]))
        net.bias.zero_()
    ema = HostCountAveragedModel(net, 0.999, warmup=warmup)
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    for _ in range(300):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
        ema.update_parameters(net)

    def accuracy(model: torch.nn.Module) -> float:
        with torch.no_grad():
            return float((model(x).argmax(1) == y).float().mean())

    assert accuracy(net) > 0.97
    if warmup:
        assert accuracy(ema) > 0.97
    else:  # what the test would see without the warm-up
        assert accuracy(ema) < 0.1


def test_precision_and_layout_both_set_in_the_config_are_used(tmp_path) -> None:
    """No probe and no crash when the config fixes both (as config/smoke.yaml does): the job
    logs and records what the config says."""
    from mnistbench.train.recipe import _setup
    from tests.conftest import model_settings

    settings = model_settings(
        "lenet5", precision={"cpu": "32-true"}, channels_last=True, accelerator="cpu"
    )
    resolved, run = _setup(settings, tmp_path, threads=1)
    assert resolved["channels_last"] is True and resolved["precision"]["cpu"] == "32-true"
    assert run.speed["reason"] == "set in the config" and run.speed["channels_last"] is True
