"""precision: auto and channels_last: auto (src/mnistbench/train/speed.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from mnistbench.config.load import load_validated, resolve_model
from mnistbench.train import speed
from mnistbench.train.speed import BF16, FP16, FP32, apply_speed, choose, resolve_speed

CHECK_NATIVE = "import mnistbench.train.speed as h; print(h.native_bf16('cpu'))"


def settings(project_root, model="lenet5", **train):
    cfg = load_validated(project_root / "config/config.yaml")
    s = resolve_model(cfg, model)
    return {**s, "batch_size": 16, **train}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MNISTBENCH_CACHE_DIR", str(tmp_path / "cache"))
    # empty (not deleted): monkeypatch then restores it, so no decision leaks into later tests
    monkeypatch.setenv(speed.ENV_DECISION, "")
    return tmp_path / "cache"


@pytest.fixture
def probes(monkeypatch):
    """Replace the probe by a fake whose rates make bf16 and channels-last each 1.5x faster;
    record the variants each call was asked to time."""
    calls: list[list[tuple[str, bool]]] = []

    def fake(settings, device, variants, rounds=3):
        calls.append(list(variants))
        return {v: 100.0 * (1.5 if v[0] == BF16 else 1) * (1.5 if v[1] else 1) for v in variants}

    monkeypatch.setattr(speed, "probe", fake)
    return calls


def test_mixed_precision_needs_its_margin_and_layout_takes_the_faster() -> None:
    rates = {(FP32, False): 100.0, (FP32, True): 120.0, (BF16, False): 110.0, (BF16, True): 124.0}
    assert choose(rates) == (FP32, True)  # bf16's best is only 1.03x fp32's best
    rates[(BF16, True)] = 130.0
    assert choose(rates) == (BF16, True)  # 1.08x: kept
    assert choose({(FP32, False): 100.0, (FP32, True): 90.0}) == (FP32, False)


def test_a_cpu_without_native_bf16_never_times_bf16(project_root, cache, probes, monkeypatch):
    monkeypatch.setattr(speed, "native_bf16", lambda device="cpu": False)
    precision, channels_last, why = resolve_speed(settings(project_root), "cpu")
    assert precision == FP32 and channels_last is True
    assert probes == [[(FP32, False), (FP32, True)]]
    assert "no native bf16" in why["reason"]


def test_native_bf16_is_kept_only_when_measured_faster(project_root, cache, probes, monkeypatch):
    monkeypatch.setattr(speed, "native_bf16", lambda device="cpu": True)
    precision, channels_last, why = resolve_speed(settings(project_root), "cpu")
    assert (precision, channels_last) == (BF16, True)
    assert set(probes[0]) == {(FP32, False), (FP32, True), (BF16, False), (BF16, True)}
    assert why["probe_images_s"]["bf16-mixed channels_last"] == 225.0


def test_the_decision_is_cached_per_machine(project_root, cache, probes, monkeypatch) -> None:
    monkeypatch.setattr(speed, "native_bf16", lambda device="cpu": True)
    first = resolve_speed(settings(project_root), "cpu")
    monkeypatch.delenv(speed.ENV_DECISION)
    second = resolve_speed(settings(project_root), "cpu")
    assert len(probes) == 1 and first[:2] == second[:2]
    assert second[2]["cache"].startswith(str(cache))
    monkeypatch.setattr(speed, "cpu_name", lambda: "Another CPU")  # another machine
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


def test_real_probe_times_every_variant_and_measures_the_models_cost(project_root, cache):
    """The real probe times each variant it is given, and its rates are images per second of
    the model's own step: resnet18 (about 80x lenet5's multiply-adds) comes out far slower."""
    import torch

    both = [(FP32, False), (FP32, True)]
    lenet = speed.probe(settings(project_root), torch.device("cpu"), both, rounds=1)
    assert set(lenet) == set(both)
    resnet = settings(project_root, "resnet18")
    rates = speed.probe(resnet, torch.device("cpu"), both[:1], rounds=1)
    assert lenet[(FP32, False)] > 3 * rates[(FP32, False)], (lenet, rates)


# Compute capabilities: emulated bf16 before 8.0 (Turing, Volta), native from Ampere on.
GPUS = {"Tesla T4": (7, 5), "Tesla V100": (7, 0), "A100": (8, 0), "H100": (9, 0)}


@pytest.fixture
def fake_gpu(monkeypatch):
    """Pretend to have one CUDA GPU of a given name and compute capability, on which (as on a
    real one) a bf16 tensor can be made, so torch's default ``is_bf16_supported()`` says yes
    even where bf16 is only emulated."""
    import torch

    def install(name: str) -> None:
        capability = GPUS[name]
        props = SimpleNamespace(name=name, major=capability[0], minor=capability[1])
        monkeypatch.setattr(torch.version, "hip", None)
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
        monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
        monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device=None: props)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
        monkeypatch.setattr(torch.cuda, "_check_bf16_tensor_supported", lambda device: True)

    return install


@pytest.mark.parametrize(
    ("gpu", "native"), [("Tesla T4", False), ("Tesla V100", False), ("A100", True), ("H100", True)]
)
def test_native_bf16_on_a_gpu_needs_compute_capability_8(fake_gpu, gpu, native) -> None:
    import torch

    fake_gpu(gpu)
    assert torch.cuda.is_bf16_supported()  # the default counts emulation: the trap
    assert speed.native_bf16("cuda") is native
    assert speed.machine_signature("cuda")["native_bf16_gpu"] is native


@pytest.mark.parametrize("gpu", list(GPUS))
def test_a_torch_without_including_emulation_goes_by_the_capability(fake_gpu, monkeypatch, gpu):
    import torch

    fake_gpu(gpu)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)  # an older signature
    assert speed.native_bf16("cuda") is (GPUS[gpu] >= (8, 0))


@pytest.mark.parametrize(
    ("gpu", "mixed_speedup", "chosen"),
    [
        ("Tesla T4", 2.6, (FP16, True)),  # tensor cores in fp16: 16-mixed, channels-last
        ("Tesla V100", 1.03, (FP32, False)),  # within the margin: fp32 stays
        ("A100", 1.8, (BF16, True)),
        ("H100", 1.02, (FP32, False)),
    ],
)
def test_auto_on_a_gpu_weighs_its_native_mixed_precision_against_fp32(
    project_root, cache, monkeypatch, fake_gpu, gpu, mixed_speedup, chosen
):
    """bf16-mixed is a candidate only from compute capability 8.0; before it 16-mixed is, never
    the emulated bf16. The mixed precision wins only by its margin; channels-last (here faster
    only in mixed precision) follows the chosen precision."""
    fake_gpu(gpu)
    calls: list[list[tuple[str, bool]]] = []

    def fake_probe(settings, device, variants, rounds=4):
        calls.append(list(variants))
        assert device.type == "cuda"
        # fp32 best in the default layout, the mixed precision best in channels-last
        layout = {(FP32, False): 1.0, (FP32, True): 0.9}
        return {v: 1000.0 * layout.get(v, mixed_speedup / (1 if v[1] else 1.2)) for v in variants}

    monkeypatch.setattr(speed, "probe", fake_probe)
    precision, channels_last, why = resolve_speed(settings(project_root), "gpu")
    native = GPUS[gpu] >= (8, 0)
    mixed = BF16 if native else FP16
    assert calls == [[(FP32, False), (FP32, True), (mixed, False), (mixed, True)]]
    assert (precision, channels_last) == chosen
    assert why["machine"]["gpu"] == gpu and why["machine"]["native_bf16_gpu"] is native
    assert f"mixed precision {mixed_speedup:.2f}x fp32" in why["reason"]


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
        "import json, sys; from mnistbench.train.recipe import train_model; "
        "train_model(json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], threads=1)"
    )
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    env.pop(speed.ENV_DECISION, None)
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
        cwd=tmp_path,  # DVCLive finds the DVC project from here: not the checkout's .dvc/
        check=True,
        capture_output=True,
        timeout=300,
    )
    summary = json.loads((tmp_path / "m" / "summary.json").read_text())
    assert summary["precision"] == FP32
    assert summary["speed"]["machine"]["capability"] == "AVX2"
    assert "no native bf16" in summary["speed"]["reason"]
