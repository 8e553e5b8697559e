"""``precision: auto`` and ``channels_last: auto``: what trains a model fastest on this machine.

bf16 autocast is fast only where the hardware computes in bf16 (AVX-512 BF16 or AMX on x86, the
BF16 extension on Arm, GPUs of compute capability 8.0 or newer). Elsewhere PyTorch emulates it, and
a training step takes 3 to 45 times as long as in fp32 (issue 13: resnet18 34 s against 0.8 s a
step on an AVX2 CPU), so ``auto`` never tries bf16 there (an older GPU, a T4 or a V100, weighs
16-mixed instead). Where bf16 is native the gain still depends on the
model, and so does the gain of the channels-last memory format (it helps oneDNN's AVX-512
convolutions, and not its AVX2 ones). So ``auto`` times a few real training steps of the model
(its architecture, batch size and optimiser) in each candidate layout, alternating, and keeps:

- bf16 only if its best layout is at least ``MIXED_MARGIN`` faster than fp32's best layout;
- channels-last only if it is faster than the default layout in the chosen precision.

The decision is cached per machine signature and model (``mnistbench.train.speedcache``), so a model
is probed once per machine and later runs agree with the first; it is recorded, with the probe's
timings, in the model's ``summary.json``. Processes that Lightning starts for more devices
inherit the decision through the environment.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import platform
import time
from collections.abc import Mapping
from typing import Any

import torch
from torch.nn import functional as F

from mnistbench.machine import cpu_flags, cpu_name
from mnistbench.train.optim import optimizer_for
from mnistbench.train.speedcache import cache_dir, read_cached, write_cached

log = logging.getLogger(__name__)

AUTO = "auto"
FP32 = "32-true"
BF16 = "bf16-mixed"
FP16 = "16-mixed"
# A mixed precision must beat fp32 by this factor to be chosen: noise never picks the slower one.
MIXED_MARGIN = 1.05
# CPU flags (/proc/cpuinfo) that mean bf16 arithmetic in hardware.
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")
ENV_DECISION = "MNISTBENCH_SPEED_DECISION"
PROBE_WINDOW_S = 0.25  # seconds per timed window


def native_bf16(device: torch.device | str = "cpu") -> bool:
    """Does this device compute in bf16 in hardware (not by emulation)? A GPU of compute
    capability 8.0 or newer (``torch.cuda.is_bf16_supported()`` alone counts a T4's or a V100's
    emulation too); an x86 CPU with the flag and PyTorch on its AVX-512 kernels (not capped with
    ``ATEN_CPU_CAPABILITY=avx2`` or ``ONEDNN_MAX_CPU_ISA=AVX2``, which emulate bf16 too)."""
    device = torch.device(device)
    if device.type == "cuda":
        if "including_emulation" not in inspect.signature(torch.cuda.is_bf16_supported).parameters:
            return torch.cuda.is_available() and torch.cuda.get_device_capability(device) >= (8, 0)
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if not cpu_flags() & set(NATIVE_BF16_FLAGS):
        return False
    if platform.machine().lower() in ("x86_64", "amd64", "i686"):
        if torch.backends.cpu.get_cpu_capability() not in ("AVX512", "AMX"):
            return False
        isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "ALL").upper()
        return isa == "ALL" or "BF16" in isa or "AMX" in isa or "FP16" in isa
    return True


def machine_signature(device: torch.device | str = "cpu") -> dict[str, Any]:
    """What a cached decision depends on besides the model: hardware, torch, threads."""
    device = torch.device(device)
    sig: dict[str, Any] = {
        "cpu": cpu_name(),
        "capability": torch.backends.cpu.get_cpu_capability(),
        "native_bf16": native_bf16("cpu"),
        "torch": str(torch.__version__),
    }
    if device.type == "cuda":
        sig["gpu"] = torch.cuda.get_device_name(device)
        sig["native_bf16_gpu"] = native_bf16(device)
    else:
        sig["threads"] = torch.get_num_threads()
    return sig


Variant = tuple[str, bool]  # (precision, channels_last)


def _label(variant: Variant) -> str:
    return f"{variant[0]}{' channels_last' if variant[1] else ''}"


def probe(
    settings: Mapping[str, Any], device: torch.device, variants: list[Variant], rounds: int = 4
) -> dict[Variant, float]:
    """Images/s of the model's training step (forward, backward, optimiser) in each variant:
    the best of ``rounds`` alternating windows of about PROBE_WINDOW_S each (other work on the
    machine only ever slows a window down, so the best one measures the variant itself)."""
    from mnistbench.models import build_model

    batch = int(settings["batch_size"])
    y = torch.randint(0, 10, (batch,), device=device)
    nets = {}
    for variant in variants:
        torch.manual_seed(0)
        net = build_model(settings["arch"], **settings.get("model_kwargs", {})).to(device)
        x = torch.randn(batch, 1, 28, 28, device=device)
        if variant[1]:
            net = net.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        nets[variant] = (net, x, optimizer_for(net.parameters(), settings["optimizer"]))

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def step(variant: Variant) -> None:
        net, x, opt = nets[variant]
        dtype = torch.float16 if variant[0] == FP16 else torch.bfloat16
        with torch.autocast(device.type, dtype=dtype, enabled=variant[0] != FP32):
            loss = F.cross_entropy(net(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    steps: dict[Variant, int] = {}
    for variant in variants:  # warm-up; steps per window from the second step's time
        step(variant)
        sync()
        t0 = time.perf_counter()
        step(variant)
        sync()
        per_step = max(time.perf_counter() - t0, 1e-6)
        steps[variant] = max(1, min(200, int(PROBE_WINDOW_S / per_step)))
    rates: dict[Variant, list[float]] = {v: [] for v in variants}
    for _ in range(rounds):
        for variant in variants:
            t0 = time.perf_counter()
            for _ in range(steps[variant]):
                step(variant)
            sync()
            rates[variant].append(batch * steps[variant] / (time.perf_counter() - t0))
    return {v: max(r) for v, r in rates.items()}


def choose(rates: Mapping[Variant, float]) -> Variant:
    """The fastest layout per precision; a mixed precision only if MIXED_MARGIN faster."""
    best: dict[str, Variant] = {}
    for variant, rate in rates.items():
        if variant[0] not in best or rate > rates[best[variant[0]]]:
            best[variant[0]] = variant
    chosen = best[FP32]
    for precision, variant in best.items():
        if precision != FP32 and rates[variant] >= MIXED_MARGIN * rates[chosen]:
            chosen = variant
    return chosen


def _key(settings: Mapping[str, Any], sig: Mapping[str, Any], variants: list[Variant]) -> str:
    what = {
        "machine": sig,
        "arch": settings["arch"],
        "model_kwargs": settings.get("model_kwargs", {}),
        "batch_size": settings["batch_size"],
        "optimizer": settings["optimizer"]["name"],
        "variants": variants,
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:20]


def resolve_speed(
    settings: Mapping[str, Any], accelerator: str, probe_allowed: bool = True
) -> tuple[str, bool, dict[str, Any]]:
    """Precision and memory format to train ``settings``' model with on ``accelerator`` ("cpu"
    or "gpu"), and why (for summary.json). Values set in the config are kept as they are."""
    kind = "gpu" if accelerator == "gpu" else "cpu"
    precision = settings["precision"][kind]
    layout = settings.get("channels_last", False)
    why: dict[str, Any] = {"configured": {"precision": precision, "channels_last": layout}}
    if AUTO not in (precision, layout):
        why.update(reason="set in the config", precision=precision, channels_last=bool(layout))
        return precision, bool(layout), why
    device = torch.device("cuda" if kind == "gpu" else "cpu")
    why["machine"] = sig = machine_signature(device)
    if precision == AUTO:
        # bf16 where the hardware has it; fp16 (with loss scaling) on GPUs without it (compute
        # capability below 8.0); on a CPU without bf16, fp32 alone: emulated bf16 is never timed.
        mixed = [BF16] if native_bf16(device) else [FP16] if kind == "gpu" else []
        precisions = [FP32, *mixed]
    else:
        precisions = [precision]
    layouts = [False, True] if layout == AUTO else [bool(layout)]
    variants = [(p, cl) for p in precisions for cl in layouts]
    key = _key(settings, sig, variants)
    note = "fp32: no native bf16 on this CPU (emulated bf16 is never tried)"  # not even timed
    note = note if precision == AUTO and len(precisions) == 1 else ""
    if len(variants) == 1:
        return _decided(key, variants[0], {**why, "reason": note})
    inherited = os.environ.get(ENV_DECISION, "")
    if inherited.startswith(key + "="):
        variant = _variant(inherited.split("=", 1)[1], variants)
        if variant is not None:
            return _decided(key, variant, {**why, "reason": "decided by the launching process"})
    cached = cache_dir() / f"{key}.json"
    entry = read_cached(cached, variants)
    if entry is not None:
        variant = (entry["precision"], entry["channels_last"])
        return _decided(key, variant, {**why, **entry, "cache": str(cached)})
    if not probe_allowed:
        return _decided(key, (FP32, False), {**why, "reason": "not probed in this process"})
    t0 = time.perf_counter()
    rates = probe(settings, device, variants)
    variant = choose(rates)
    entry = {
        "precision": variant[0],
        "channels_last": variant[1],
        "reason": _explain(rates, variant, time.perf_counter() - t0, note),
        "probe_images_s": {_label(v): round(r, 1) for v, r in rates.items()},
    }
    write_cached(cached, entry)
    return _decided(key, variant, {**why, **entry})


def _variant(text: str, variants: list[Variant]) -> Variant | None:
    """A decision passed down as JSON ``[precision, channels_last]``, if it is one of these."""
    try:
        variant = tuple(json.loads(text))
    except (ValueError, TypeError):
        return None
    return variant if variant in variants else None  # type: ignore[return-value]


def _explain(rates: Mapping[Variant, float], chosen: Variant, seconds: float, note: str) -> str:
    """One line: what the probe measured for each choice it made."""
    parts = [note] if note else []
    mixed = [r for v, r in rates.items() if v[0] != FP32]
    if mixed:
        ratio = max(mixed) / max(r for v, r in rates.items() if v[0] == FP32)
        parts.append(f"mixed precision {ratio:.2f}x fp32 (kept from {MIXED_MARGIN:.2f}x)")
    if (chosen[0], True) in rates and (chosen[0], False) in rates:
        ratio = rates[(chosen[0], True)] / rates[(chosen[0], False)]
        parts.append(f"channels-last {ratio:.2f}x the default layout")
    return f"{'; '.join(parts)} (probe of the training step, {seconds:.1f} s)"


def _decided(key: str, variant: Variant, why: dict[str, Any]) -> tuple[str, bool, dict[str, Any]]:
    os.environ[ENV_DECISION] = f"{key}={json.dumps(list(variant))}"  # launched ranks inherit it
    why.update(precision=variant[0], channels_last=variant[1])
    return variant[0], variant[1], why


def apply_speed(
    settings: Mapping[str, Any], accelerator: str, probe_allowed: bool = True
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``settings`` with ``auto`` precision and memory format replaced by what
    ``resolve_speed`` decides for ``accelerator``, and the reasons."""
    precision, channels_last, why = resolve_speed(settings, accelerator, probe_allowed)
    kind = "gpu" if accelerator == "gpu" else "cpu"
    resolved = {**settings, "channels_last": channels_last}
    resolved["precision"] = {**settings["precision"], kind: precision}
    return resolved, why
