"""How close to this machine's limit does each model train? A roofline-style measurement.

1. The machine's peak: a large matrix product (``--matmul`` square, default 2048) in fp32 and in
   bf16, GFLOP/s (2 FLOPs per multiply-add), with ``--threads`` threads (CPU) or on the GPU.
2. Each model's training step (forward, backward, the configured optimiser) on a fixed batch of
   its configured size, in fp32 and under bf16 autocast, timed as the median of ``--windows``
   windows after a warm-up. Achieved FLOP/s = 3 x forward MACs x 2 x images/s (a training step
   is about three forward passes: forward, input gradients, weight gradients).
3. The fraction of peak each model reaches, in a table (CSV) and a figure (PNG): one bar per
   model and precision, with the measured fp32 and bf16 peaks as lines.

bf16 is only timed where the CPU has native bf16 (``mnistbench.train.speed.native_bf16``), or with
``--bf16 always``: on a CPU without it, bf16 autocast is emulated and a resnet18 step takes ~45x
the fp32 time (issue 13), so it would dominate the run for a number nobody should use.

    python benchmarks/roofline.py --threads 2 --out benchmarks/out/roofline.csv
    python benchmarks/roofline.py --device cuda --out benchmarks/out/roofline-gpu.csv

Not part of the test suite. Every figure says which CPU (capability) or GPU made it.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import time
from pathlib import Path

import torch
from torch.nn import functional as F

from mnistbench.config.load import load_config, resolve_model, validate_config
from mnistbench.evaluate.scores import count_macs
from mnistbench.models import build_model
from mnistbench.train.optim import optimizer_for
from mnistbench.train.speed import machine_signature, native_bf16


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_gflops(n: int, dtype: torch.dtype, device: torch.device, seconds: float = 2.0) -> float:
    """Peak GFLOP/s of an n x n x n product, best of repeated timings within ``seconds``."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    a @ b  # warm-up
    sync(device)
    best = float("inf")
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def step_rate(
    settings: dict,
    bf16: bool,
    device: torch.device,
    channels_last: bool,
    steps: int,
    windows: int,
    batch: int,
) -> float:
    """Images/s of full training steps on one fixed batch (median of ``windows``)."""
    torch.manual_seed(0)
    net = build_model(settings["arch"], **settings["model_kwargs"]).to(device)
    x = torch.randn(batch, 1, 28, 28, device=device)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,), device=device)
    opt = optimizer_for(net.parameters(), settings["optimizer"])

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(max(2, steps // 3)):
        step()
    sync(device)
    rates = []
    for _ in range(windows):
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        sync(device)
        rates.append(batch * steps / (time.perf_counter() - t0))
    return statistics.median(rates)


def plot(rows: list[dict], peaks: dict[str, float], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['model']}\n{r['precision']}{' CL' if r['channels_last'] else ''}" for r in rows]
    values = [r["achieved_gflops"] for r in rows]
    colours = ["#4c72b0" if r["precision"] == "fp32" else "#dd8452" for r in rows]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * len(rows) + 2), 4.2))
    ax.bar(range(len(rows)), values, color=colours)
    for i, r in enumerate(rows):
        ax.text(i, values[i], f"{r['fraction_of_peak']:.0%}", ha="center", va="bottom", fontsize=7)
    styles = {"fp32": ("#4c72b0", "--"), "bf16": ("#dd8452", ":")}
    for name, value in peaks.items():
        colour, style = styles[name]
        ax.axhline(value, color=colour, linestyle=style, linewidth=1)
        ax.text(
            len(rows) - 0.5,
            value,
            f"{name} matmul peak {value:.0f}",
            ha="right",
            va="bottom",
            fontsize=7,
            color=colour,
        )
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_ylabel("training GFLOP/s (3 x forward MACs x 2)")
    ax.set_title(title, fontsize=9)
    ax.set_ylim(0, max([*values, *peaks.values()]) * 1.15)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", default="config/config.yaml")
    p.add_argument("--models", nargs="+", default=None)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=None, help="default: each model's batch_size")
    p.add_argument("--bf16", choices=["native", "always", "never"], default="native")
    p.add_argument("--channels-last", action="store_true", help="also time channels_last")
    p.add_argument("--matmul", type=int, default=2048)
    p.add_argument("--steps", type=int, default=8, help="steps per timed window")
    p.add_argument("--windows", type=int, default=3)
    p.add_argument("--out", default="benchmarks/out/roofline.csv")
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    config = validate_config(load_config(a.config))
    models = a.models or list(config["models"])
    do_bf16 = {"always": True, "never": False, "native": native_bf16(device)}[a.bf16]
    sig = machine_signature(device)
    where = (
        torch.cuda.get_device_name(0)
        if device.type == "cuda"
        else f"{sig['cpu']} ({sig['capability']}, native bf16: {sig['native_bf16']}), "
        f"{a.threads} threads"
    )
    print(f"# {where}; torch {torch.__version__}")
    peaks = {"fp32": matmul_gflops(a.matmul, torch.float32, device)}
    if do_bf16:
        peaks["bf16"] = matmul_gflops(a.matmul, torch.bfloat16, device)
    print("# matmul peak GFLOP/s: " + ", ".join(f"{k} {v:.0f}" for k, v in peaks.items()))

    rows = []
    for name in models:
        settings = resolve_model(config, name)
        batch = a.batch or settings["batch_size"]
        macs = count_macs(build_model(settings["arch"], **settings["model_kwargs"]))
        steps = max(2, a.steps // 4) if macs > 2e7 and device.type == "cpu" else a.steps
        variants = [("fp32", False, False)]
        if do_bf16:
            variants.append(("bf16", True, False))
        if a.channels_last:
            variants += [(prec, bf, True) for prec, bf, _ in list(variants)]
        for prec, bf16, cl in variants:
            rate = step_rate(settings, bf16, device, cl, steps, a.windows, batch)
            gflops = 6 * macs * rate / 1e9
            peak = peaks["bf16" if bf16 else "fp32"]
            row = {
                "model": name,
                "precision": prec,
                "channels_last": cl,
                "batch": batch,
                "macs": macs,
                "images_s": round(rate, 1),
                "achieved_gflops": round(gflops, 1),
                "peak_gflops": round(peak, 1),
                "fraction_of_peak": round(gflops / peak, 3),
                "device": where,
                "threads": a.threads,
            }
            rows.append(row)
            print(
                f"{name:14s} {prec} {'CL' if cl else '  '} b{batch:<4d} {rate:9.0f} img/s "
                f"{gflops:8.1f} GFLOP/s  {gflops / peak:6.1%} of {prec} peak",
                flush=True,
            )
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    plot(rows, peaks, f"Training FLOP/s against the matmul peak: {where}", out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
