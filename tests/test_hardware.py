"""precision: auto and channels_last: auto (src/mnistbench/hardware.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from mnistbench import hardware
from mnistbench.config import load_validated, resolve_model
from mnistbench.hardware import BF16, FP32, apply_speed, choose, resolve_speed

CHECK_NATIVE = "import mnistbench.hardware as h; print(h.native_bf16('cpu'))"


def settings(project_root, **train):
    cfg = load_validated(project_root / "config/config.yaml")
    s = resolve_model(cfg, "lenet5")
    return {**s, "batch_size": 16, **train}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MNISTBENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(hardware.ENV_DECISION, raising=False)
    return tmp_path / "cache"


@pytest.fixture
def probes(monkeypatch):
    """Replace the probe by a fake whose rates make bf16 and channels-last each 1.5x faster;
    record the variants each call was asked to time."""
    calls: list[list[tuple[str, bool]]] = []

    def fake(settings, device, variants, rounds=3):
        calls.append(list(variants))
        return {v: 100.0 * (1.5 if v[0] == BF16 else 1) * (1.5 if v[1] else 1) for v in variants}

    monkeypatch.setattr(hardware, "probe", fake)
    return calls


def test_mixed_precision_needs_its_margin_and_layout_takes_the_faster() -> None:
    rates = {(FP32, False): 100.0, (FP32, True): 120.0, (BF16, False): 110.0, (BF16, True): 124.0}
    assert choose(rates) == (FP32, True)  # bf16's best is only 1.03x fp32's best
    rates[(BF16, True)] = 130.0
    assert choose(rates) == (BF16, True)  # 1.08x: kept
    assert choose({(FP32, False): 100.0, (FP32, True): 90.0}) == (FP32, False)


def test_a_cpu_without_native_bf16_never_times_bf16(project_root, cache, probes, monkeypatch):
    monkeypatch.setattr(hardware, "native_bf16", lambda device="cpu": False)
    precision, channels_last, why = resolve_speed(settings(project_root), "cpu")
    assert precision == FP32 and channels_last is True
    assert probes == [[(FP32, False), (FP32, True)]]
    assert "no native bf16" in why["reason"]


def test_native_bf16_is_kept_only_when_measured_faster(project_root, cache, probes, monkeypatch):
    monkeypatch.setattr(hardware, "native_bf16", lambda device="cpu": True)
    precision, channels_last, why = resolve_speed(settings(project_root), "cpu")
    assert (precision, channels_last) == (BF16, True)
    assert set(probes[0]) == {(FP32, False), (FP32, True), (BF16, False), (BF16, True)}
    assert why["probe_images_s"]["bf16-mixed channels_last"] == 225.0


def test_the_decision_is_cached_per_machine(project_root, cache, probes, monkeypatch) -> None:
    monkeypatch.setattr(hardware, "native_bf16", lambda device="cpu": True)
    first = resolve_speed(settings(project_root), "cpu")
    monkeypatch.delenv(hardware.ENV_DECISION)
    second = resolve_speed(settings(project_root), "cpu")
    assert len(probes) == 1 and first[:2] == second[:2]
    assert second[2]["cache"].startswith(str(cache))
    monkeypatch.setattr(hardware, "cpu_name", lambda: "Another CPU")  # another machine
    resolve_speed(settings(project_root), "cpu")
    assert len(probes) == 2


def test_a_value_set_in_the_config_wins(project_root, cache, probes) -> None:
    s = settings(project_root, precision={"cpu": "bf16-mixed", "gpu": "auto"}, channels_last=False)
    resolved, why = apply_speed(s, "cpu")
    assert resolved["precision"]["cpu"] == BF16 and resolved["channels_last"] is False
    assert probes == [] and why["reason"] == "set in the config"


def test_launched_ranks_inherit_the_decision_without_probing(project_root, cache, probes):
    first = resolve_speed(settings(project_root), "cpu")
    for path in cache.rglob("*.json"):
        path.unlink()  # only the environment can tell the next process now
    again = resolve_speed(settings(project_root), "cpu", probe_allowed=False)
    assert again[:2] == first[:2] and len(probes) == 1


def test_real_probe_times_every_variant(project_root, cache) -> None:
    import torch

    s = settings(project_root)
    rates = hardware.probe(s, torch.device("cpu"), [(FP32, False), (FP32, True)], rounds=1)
    assert set(rates) == {(FP32, False), (FP32, True)} and min(rates.values()) > 0


@pytest.mark.parametrize(
    ("env", "native"),
    [({"ATEN_CPU_CAPABILITY": "avx2"}, False), ({"ONEDNN_MAX_CPU_ISA": "AVX2"}, False)],
)
def test_an_isa_capped_to_avx2_counts_as_emulated_bf16(env, native) -> None:
    """Capping PyTorch or oneDNN at AVX2 (how this project tests the AVX2 path on an AVX-512
    machine) makes bf16 emulated, so auto must not choose it."""
    out = subprocess.run(
        [sys.executable, "-c", CHECK_NATIVE],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert out == str(native)


def test_summary_records_the_choice_on_an_avx2_capped_cpu(project_root, tmp_path) -> None:
    """One real training job with the CPU capped to AVX2: fp32, and summary.json says why."""
    from mnistbench.data.prepare import prepare_dataset
    from mnistbench.data.synthetic import write_synthetic

    write_synthetic(tmp_path / "raw", 200, 50, seed=0)
    prepare_dataset(tmp_path / "raw", tmp_path / "prepared", val_size=50, split_seed=0)
    s = settings(project_root, max_epochs=1, name="lenet5", require_learning=False)
    code = (
        "import json, sys; from mnistbench.training import train_model; "
        "train_model(json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], threads=1)"
    )
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    env.pop(hardware.ENV_DECISION, None)
    subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            json.dumps(s),
            str(tmp_path / "prepared"),
            str(tmp_path / "m"),
        ],
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    summary = json.loads((tmp_path / "m" / "summary.json").read_text())
    assert summary["precision"] == FP32
    assert summary["speed"]["machine"]["capability"] == "AVX2"
    assert "no native bf16" in summary["speed"]["reason"]
