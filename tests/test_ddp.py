"""Data-parallel training: the sharding itself, and real DDP on the CPU (2 processes, gloo)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch.utils.data import BatchSampler, RandomSampler

from mnistbench.train.datamodule import RankBatches, batch_loader, shard_bounds
from tests.conftest import ROOT, classifier


def test_rank_batches_deal_the_same_batches_out_once_each() -> None:
    def batches() -> BatchSampler:
        gen = torch.Generator().manual_seed(3)
        return BatchSampler(RandomSampler(range(103), generator=gen), 10, False)

    single = list(batches())  # 11 batches, the last one short
    ranks = [list(RankBatches(batches(), r, 3)) for r in range(3)]
    assert [len(r) for r in ranks] == [3, 3, 3]  # equal counts: 2 batches dropped
    dealt = [b for step in zip(*ranks, strict=True) for b in step]
    assert dealt == single[:9]  # same batches, same order, each once
    assert len(RankBatches(batches(), 0, 3)) == 3


@pytest.mark.parametrize(("n", "world"), [(301, 2), (500, 3), (7, 7), (10, 4)])
def test_validation_shards_cover_the_split_once(n: int, world: int) -> None:
    bounds = [shard_bounds(n, r, world) for r in range(world)]
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))
    assert max(hi - lo for lo, hi in bounds) - min(hi - lo for lo, hi in bounds) <= 1
    labels = torch.arange(n)
    seen = torch.cat(
        [y for r in range(world) for _, y in batch_loader(labels, labels, 4, False, 0, r, world)]
    )
    assert seen.tolist() == list(range(n))


def test_one_process_loads_exactly_as_before() -> None:
    x = torch.arange(50)
    plain = [y.tolist() for _, y in batch_loader(x, x, 8, True, seed=1)]
    one = [y.tolist() for _, y in batch_loader(x, x, 8, True, seed=1, rank=0, world_size=1)]
    assert plain == one and len(plain) == 7


def stage(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`mnistbench <stage>` with config/config.yaml and the test's overlay."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    configs = ("--configfile", str(ROOT / "config/config.yaml"), "tiny.yaml")
    proc = subprocess.run(
        [sys.executable, "-m", "mnistbench", *args[:1], *configs, *args[1:]],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"{args[0]}: {proc.stderr[-5000:]}"
    return proc


@pytest.mark.slow
def test_ddp_on_two_cpu_processes(tmp_path: Path) -> None:
    # resnet18 has BatchNorm, whose statistics each rank updates from its own batches; two runs
    # of it, one process and two (gloo). 301 validation images: the ranks validate 150 and 151.
    (tmp_path / "tiny.yaml").write_text(
        "dataset: ddp\n"
        "data: {source: synthetic, val_size: 301, synthetic: {n_train: 500, n_test: 50}}\n"
        "only: [single, ddp]\n"
        "models:\n"
        "  single: {arch: resnet18, train: {max_epochs: 2}}\n"
        "  ddp: {arch: resnet18, train: {max_epochs: 2, devices: 2, strategy: ddp}}\n"
        "train: {batch_size: 64, accelerator: cpu, precision: {cpu: 32-true},\n"
        "        swa: {enabled: false}, early_stopping: {enabled: false},\n"
        "        require_learning: false}\n"  # 2 x 4 steps: what is compared is not a score
    )
    stage("download", cwd=tmp_path)
    stage("prepare", cwd=tmp_path)
    outs = {}
    for label in ("single", "ddp"):
        proc = stage("train", "--model", label, "--threads", "2", cwd=tmp_path)
        outs[label] = (tmp_path / "results/ddp/models" / label, proc.stderr)
    ddp_dir, ddp_log = outs["ddp"]
    single_dir, _ = outs["single"]
    assert "distributed_backend=gloo" in ddp_log and "MEMBER: 2/2" in ddp_log
    assert ddp_log.count("selected") == 1  # only rank 0 reports (and publishes)

    # The same published files, with the same structure.
    def published(d: Path) -> list[str]:
        return sorted(str(p.relative_to(d)) for p in d.rglob("*") if "lightning" not in p.parts)

    assert published(ddp_dir) == published(single_dir)
    top = [p for p in published(ddp_dir) if "/" not in p]
    assert top == ["config.yaml", "dvclive", "metrics.csv", "model.ckpt", "summary.json"]
    assert {"dvclive/metrics.json", "dvclive/plots/metrics/val/f1.tsv"} <= set(published(ddp_dir))
    history = pd.read_csv(ddp_dir / "metrics.csv")
    assert list(history.columns) == list(pd.read_csv(single_dir / "metrics.csv").columns)
    assert history["epoch"].tolist() == [1, 2]
    summary = json.loads((ddp_dir / "summary.json").read_text())
    assert summary.keys() == json.loads((single_dir / "summary.json").read_text()).keys()

    # The logged validation metrics are those of the whole split: recompute them from the
    # published checkpoint, in one process over all 301 images.
    from mnistbench.data.prepare import load_split
    from mnistbench.train.classifier import Classifier, predict_proba
    from mnistbench.train.publish import val_f1_of

    images, labels = load_split(tmp_path / "data/ddp/prepared/val.pt")
    model = Classifier.from_checkpoint(ddp_dir / "model.ckpt")
    f1 = val_f1_of(model, images, labels)
    acc = float((predict_proba(model, images).argmax(1) == labels).float().mean())
    epoch = summary["best_epoch"] if summary["selected"] == "best_epoch" else 2
    row = history.set_index("epoch").loc[epoch]
    assert row["val_f1"] == pytest.approx(f1, abs=1e-5)
    assert row["val_acc"] == pytest.approx(acc, abs=1e-6)
    assert summary["val_f1"] == pytest.approx(f1, abs=1e-9)
    assert round(row["val_acc"] * 301, 3) == round(acc * 301)  # a count out of 301


def test_ddp_leaves_each_ranks_training_sums_alone() -> None:
    # DDP broadcasts rank 0's buffers before each forward pass (and SWA/EMA average and swap
    # them); the per-rank epoch sums (summed across ranks once per epoch) must be exempt, the
    # network's buffers not: the sums are plain tensors, the module's only buffers the network's.
    module = classifier("resnet18")
    assert {n for n, _ in module.named_buffers() if not n.startswith("net.")} == set()
    assert any(n.startswith("net.") for n, _ in module.named_buffers())  # BatchNorm statistics
    module._reset("train")
    assert not any(t is s for t in module.buffers() for s in module.sums["train"])


def test_under_slurm_a_model_needs_a_task_per_process() -> None:
    """In a SLURM job step with one task, Lightning would train devices: 2 with one process."""
    from mnistbench.errors import ConfigError
    from mnistbench.train.devices import check_slurm_tasks

    two = {"devices": 2, "num_nodes": 1}
    with pytest.raises(ConfigError, match=r"2 processes, but this SLURM job step has 1 task"):
        check_slurm_tasks(two, {"SLURM_NTASKS": "1", "SLURM_JOB_NAME": "a1b2"})
    check_slurm_tasks(two, {"SLURM_NTASKS": "2", "SLURM_JOB_NAME": "a1b2"})  # srun's two tasks
    check_slurm_tasks(two, {})  # no SLURM: Lightning starts the processes itself
    check_slurm_tasks(two, {"SLURM_NTASKS": "1", "SLURM_JOB_NAME": "bash"})  # interactive
    check_slurm_tasks({"devices": 1, "num_nodes": 1}, {"SLURM_NTASKS": "1"})
