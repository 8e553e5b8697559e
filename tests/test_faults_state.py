"""Cache and state files are validated on read: a bad one is named in a warning, ignored and
rebuilt, never a traceback (the precision cache, a resumable run's working files)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

from mnistbench.config.load import load_validated, resolve_model
from mnistbench.train import speed, speedcache
from mnistbench.train.recipe import Run, _resume_point
from mnistbench.train.resume import FINGERPRINT_KEY
from mnistbench.train.speed import FP32, resolve_speed

ROOT = Path(__file__).resolve().parents[1]
BAD_ENTRIES = {
    "null": "null",
    "a list": "[1, 2]",
    "a precision Lightning does not know": json.dumps(
        {"precision": "bogus", "channels_last": False, "reason": "x"}
    ),
    "no reason": json.dumps({"precision": FP32, "channels_last": False}),
    "probe rates that are no mapping": json.dumps(
        {"precision": FP32, "channels_last": True, "reason": "x", "probe_images_s": 3}
    ),
    "random bytes": "\x00\xff\xfe garbage",
}


@pytest.fixture
def settings() -> dict:
    return {
        **resolve_model(load_validated(ROOT / "config/config.yaml"), "lenet5"),
        "batch_size": 16,
    }


@pytest.fixture
def probes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list:
    """A private cache, a CPU without native bf16, and a fake probe (channels-last faster)
    that records each call."""
    monkeypatch.setenv("MNISTBENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(speed.ENV_DECISION, raising=False)
    monkeypatch.setattr(speed, "native_bf16", lambda device="cpu": False)
    calls: list = []

    def fake(settings, device, variants, rounds=3):  # type: ignore[no-untyped-def]
        calls.append(list(variants))
        return {v: 100.0 * (1.5 if v[1] else 1) for v in variants}

    monkeypatch.setattr(speed, "probe", fake)
    return calls


@pytest.mark.parametrize("what", list(BAD_ENTRIES))
def test_a_bad_speed_cache_file_is_named_ignored_and_rewritten(
    what: str, settings: dict, probes: list, caplog: pytest.LogCaptureFixture, monkeypatch
) -> None:
    resolve_speed(settings, "cpu")  # the first decision, cached
    [cached] = list(speedcache.cache_dir().glob("*.json"))
    cached.write_text(BAD_ENTRIES[what], encoding="latin-1")
    monkeypatch.delenv(speed.ENV_DECISION)
    with caplog.at_level(logging.WARNING, logger="mnistbench.train.speed"):
        precision, channels_last, why = resolve_speed(settings, "cpu")
    assert (precision, channels_last) == (FP32, True) and len(probes) == 2  # measured again
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and str(cached) in warned[0] and "measuring again" in warned[0]
    assert json.loads(cached.read_text())["precision"] == FP32  # rewritten whole
    assert "cache" not in why  # this decision came from the new measurement


def test_a_bad_decision_passed_down_is_measured_again(settings: dict, probes: list, monkeypatch):
    first = resolve_speed(settings, "cpu")
    key = speed.os.environ[speed.ENV_DECISION].split("=", 1)[0]
    for path in speedcache.cache_dir().glob("*.json"):
        path.unlink()
    monkeypatch.setenv(speed.ENV_DECISION, f"{key}=not json")
    assert resolve_speed(settings, "cpu")[:2] == first[:2] and len(probes) == 2


def test_unreadable_metrics_of_a_resumable_run_start_it_over(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A resumable checkpoint whose epochs' metrics cannot be read: resuming would lose the
    learning curve of those epochs, so the run starts over, saying why and naming the file."""
    run = Run(tmp_path / "lenet5", "cpu", FP32, {}, rank0=True)
    (run.work / "resume").mkdir(parents=True)
    torch.save(
        {FINGERPRINT_KEY: "stamp", "global_step": 10, "epoch": 0}, run.work / "resume/last.ckpt"
    )
    (run.work / "metrics.csv").write_bytes(b"\x00\x01 not a table\n\xff\xfe")
    with caplog.at_level(logging.WARNING, logger="mnistbench.train.recipe"):
        _resume_point("stamp", run)
    assert run.resume_from is None and not run.work.exists()
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert f"not resuming from {run.work / 'resume/last.ckpt'}" in warned
    assert "starting over" in warned
