"""Which precision trains each model fastest on this CPU? (backs `train.precision.cpu`)

Times full optimisation steps (forward, backward, AdamW) on one fixed batch, per model, in fp32
and under bf16 autocast, after a warm-up, as the median of several timed windows, in one
process. Not part of the test suite.

    python benchmarks/cpu_precision.py --threads 2 --out benchmarks/out/cpu_precision.csv
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import statistics
import time

import torch
from torch.nn import functional as F

from mnistbench.models import available_models, build_model


def images_per_second(name: str, bf16: bool, batch: int, steps: int, windows: int) -> float:
    torch.manual_seed(0)
    net = build_model(name)
    opt = torch.optim.AdamW(net.parameters(), 1e-3)
    x = torch.randn(batch, 1, 28, 28)
    y = torch.randint(0, 10, (batch,))

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(max(steps // 2, 3)):
        step()
    rates = []
    for _ in range(windows):
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        rates.append(batch * steps / (time.perf_counter() - t0))
    return statistics.median(rates)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=10, help="steps per timed window")
    p.add_argument("--windows", type=int, default=3)
    p.add_argument("--models", nargs="+", default=available_models())
    p.add_argument("--out", default="benchmarks/out/cpu_precision.csv")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{a.threads} torch threads, torch {torch.__version__}, batch {a.batch}"
    )
    print(f"{'model':14s} {'fp32 img/s':>11s} {'bf16 img/s':>11s} {'bf16/fp32':>9s}  faster")
    rows = []
    for name in a.models:
        steps = max(a.steps // 3, 2) if name == "resnet18" else a.steps
        fp32 = images_per_second(name, False, a.batch, steps, a.windows)
        bf16 = images_per_second(name, True, a.batch, steps, a.windows)
        best = "bf16-mixed" if bf16 > fp32 else "32-true"
        rows.append(
            {
                "model": name,
                "fp32_img_s": round(fp32),
                "bf16_img_s": round(bf16),
                "ratio": round(bf16 / fp32, 2),
                "faster": best,
            }
        )
        print(f"{name:14s} {fp32:11.0f} {bf16:11.0f} {bf16 / fp32:9.2f}  {best}", flush=True)
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    with open(a.out, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()
