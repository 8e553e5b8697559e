"""The default run's wall time on 1 to 16 cores, modelled from measured training rates.

Two steps:

  measure  times each model's training step (forward, backward, optimiser; the default
           config's batch size and optimiser, fp32, channels-last) on 1 and 2 threads in
           alternating windows of about 0.5 s (so other work on the machine hits both thread
           counts alike), keeps each one's best window by wall time and by CPU time per thread,
           and writes them with the machine, its CPU capability, the commit and the command to a
           small JSON file (``benchmarks/results/``);
  model    reads that file and writes, as another result file, the rates and each core count's
           modelled wall time with the old (``cores // 6``) and the new thread shares
           (``scheduling.thread_shares``): the train jobs list-scheduled as Snakemake starts them
           (costliest first; a job starts when its threads are free). ``mnistbench docs-tables
           docs/speed.md`` renders it.

A job's time on ``n`` threads is its one-thread time divided by the speed-up. One-thread times:
issue 22's measured AVX2 job times (``--jobs issue22``, the default; read from
``benchmarks/results/default_run_avx2.json``) or ``epochs x (55,000 training + 5,000 validation
/ 3) images / rate(1)`` plus a fixed start-up (``--jobs rates``).
Two-thread speed-up: ``--speed-up-2`` for every model, or each model's parallel efficiency by
CPU time, ``2 x cpu(2) / cpu(1)``; beyond two threads Amdahl's law fitted to it
(``1 / ((1 - p) + p / n)``, ``p = 2 (1 - 1 / speed-up)``): an extrapolation, not a measurement.
Jobs side by side are assumed not to slow each other; evaluation and the report (about a minute
on two cores) are left out. On a machine shared with other work neither the wall-time nor the
CPU-time rates of two threads measure the model's scaling (docs/speed.md, "Wall time by cores").

    python benchmarks/wall_time_model.py measure --out benchmarks/results/train_rates_avx2.json
    python benchmarks/wall_time_model.py model benchmarks/results/train_rates_avx2.json \\
        --speed-up-2 1.6 --out benchmarks/results/wall_time_avx2.json
"""

from __future__ import annotations

import argparse
import datetime
import heapq
import json
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

TRAIN_IMAGES = 55_000
VAL_IMAGES = 5_000
CORES = (1, 2, 4, 8, 16)
# Issue 22's measured default run on a 2-core AVX2 VM (commit fe77ae1, 44 min 51 s): its train
# jobs' seconds, one thread each, two side by side.
AVX2_RUN = Path(__file__).parent / "results" / "default_run_avx2.json"


def time_windows(
    settings: dict[str, Any], thread_counts: list[int], rounds: int
) -> dict[int, dict[str, float]]:
    """Images/s of the model's training step (forward, backward, optimiser; fp32,
    channels-last, the configured batch size and optimiser) on each number of threads, in
    alternating windows (so other work on the machine hits every thread count alike): the best
    window by wall time, and by the process's CPU time per thread, which other work on the
    machine disturbs far less than the wall time."""
    import time

    import torch
    from torch.nn import functional as F

    from mnistbench.models import build_model
    from mnistbench.train.optim import optimizer_for

    torch.manual_seed(0)
    batch = int(settings["batch_size"])
    net = build_model(settings["arch"], **settings.get("model_kwargs", {}))
    net = net.to(memory_format=torch.channels_last)
    x = torch.randn(batch, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))
    opt = optimizer_for(net.parameters(), settings["optimizer"])

    def step() -> None:
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    torch.set_num_threads(1)
    step()
    t0 = time.perf_counter()
    step()
    steps = max(1, min(50, int(0.5 / max(time.perf_counter() - t0, 1e-6))))
    wall: dict[int, list[float]] = {n: [] for n in thread_counts}
    cpu: dict[int, list[float]] = {n: [] for n in thread_counts}
    for _ in range(rounds):
        for threads in thread_counts:
            torch.set_num_threads(threads)
            step()  # the thread pool at this size
            w0, c0 = time.perf_counter(), time.process_time()
            for _ in range(steps):
                step()
            wall[threads].append(batch * steps / (time.perf_counter() - w0))
            cpu[threads].append(batch * steps * threads / max(time.process_time() - c0, 1e-6))
    return {n: {"wall": round(max(wall[n]), 1), "cpu": round(max(cpu[n]), 1)} for n in wall}


def measure(args: argparse.Namespace) -> None:
    import os

    import torch

    from mnistbench.config.load import load_config, resolve_model, train_cost, validate_config
    from mnistbench.machine import cpu_name
    from mnistbench.train.speed import native_bf16

    config = validate_config(load_config(args.config))
    models = args.models or list(config["models"])
    rates: dict[str, dict[str, Any]] = {}
    for model in models:
        settings = resolve_model(config, model)
        found = time_windows(settings, args.threads, args.rounds)
        wall = {str(n): r["wall"] for n, r in found.items()}
        cpu = {str(n): r["cpu"] for n, r in found.items()}
        print(f"{model}: {found}", flush=True)
        rates[model] = {
            "epochs": settings["max_epochs"],
            "cost": train_cost(settings),
            "images_per_s": wall,
            "images_per_cpu_s": cpu,
        }
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    result = {
        "what": (
            "training-step images/s (fp32, channels-last, batch and optimiser as configured): "
            "best window by wall time (images_per_s) and by CPU time per thread "
            "(images_per_cpu_s)"
        ),
        "machine": {
            "cpu": cpu_name(),
            "capability": torch.backends.cpu.get_cpu_capability(),
            "native_bf16": native_bf16("cpu"),
            "logical_cpus": os.cpu_count(),
            "platform": platform.platform(),
            "torch": torch.__version__,
        },
        "note": args.note,
        "commit": commit,
        "date": datetime.date.today().isoformat(),
        "command": shlex.join(["python", "benchmarks/wall_time_model.py", *sys.argv[1:]]),
        "models": rates,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


def speed_up(entry: dict[str, Any], threads: int, two: float | None = None) -> float:
    """rate(n) / rate(1): at two threads ``two`` when given, else ``2 x cpu(2) / cpu(1)`` (the
    parallel efficiency by CPU time); beyond two threads Amdahl's law fitted to it."""
    if two is None:
        cpu = entry["images_per_cpu_s"]
        two = 2.0 * cpu["2"] / cpu["1"]
    two = min(2.0, max(1.0, two))
    parallel = 2.0 * (1.0 - 1.0 / two)
    return 1.0 / ((1.0 - parallel) + parallel / threads)


def job_seconds(entry: dict[str, Any], startup_s: float) -> float:
    """One thread: epochs x (training + a third of the validation images) / rate + start-up."""
    return (
        entry["epochs"] * (TRAIN_IMAGES + VAL_IMAGES / 3) / entry["images_per_s"]["1"] + startup_s
    )


def list_schedule(jobs: dict[str, tuple[int, float, float]], cores: int) -> float:
    """Wall time of ``jobs`` (name -> (threads, seconds, priority)) on ``cores``: in priority
    order, every job whose threads are free starts; the rest wait for a job to end."""
    waiting = sorted(jobs, key=lambda j: -jobs[j][2])
    running: list[tuple[float, int]] = []
    now, free = 0.0, cores
    while waiting or running:
        for job in list(waiting):
            threads = min(jobs[job][0], cores)
            if threads <= free:
                free -= threads
                waiting.remove(job)
                heapq.heappush(running, (now + jobs[job][1], threads))
        now, threads = heapq.heappop(running)
        free += threads
    return now


def schedule_rows(
    entries: dict[str, Any], one_thread_s: dict[str, float], two: float | None
) -> list[dict[str, Any]]:
    """Per core count: wall time with the old and the new thread shares, the new shares, and
    the one-thread work spread evenly."""
    from mnistbench.pipeline.scheduling import thread_shares

    costs = {n: e["cost"] for n, e in entries.items()}
    rows = []
    for cores in CORES:
        walls = []
        for shares in (
            {n: max(1, cores // len(entries)) for n in entries},
            thread_shares(costs, cores),
        ):
            jobs = {
                n: (shares[n], one_thread_s[n] / speed_up(e, min(shares[n], cores), two), costs[n])
                for n, e in entries.items()
            }
            walls.append(list_schedule(jobs, cores))
        rows.append(
            {
                "cores": cores,
                "before_s": round(walls[0], 1),
                "now_s": round(walls[1], 1),
                "threads": shares,
                "work_s": round(sum(one_thread_s.values()) / cores, 1),
            }
        )
    return rows


def model(args: argparse.Namespace) -> None:
    """The rates, and each core count's modelled wall time, written as a result file."""
    data = json.loads(Path(args.rates).read_text())
    entries = data["models"]
    order = sorted(entries, key=lambda n: -entries[n]["cost"])
    measured_jobs = json.loads(AVX2_RUN.read_text())["runs"][0]["train_job_s"]
    two = args.speed_up_2
    base = dict(measured_jobs) if args.jobs == "issue22" else None
    if base is None or set(base) != set(entries):
        base = {n: job_seconds(e, args.startup_s) for n, e in entries.items()}
        source = "the one-thread rates above"
    else:
        source = "issue 22's measured one-thread job times (AVX2 VM)"
    scaling = (
        f"a two-thread speed-up of {two:.2f}x for every model"
        if two
        else "each model's two-thread speed-up by CPU time"
    )
    result = {
        "what": "the default run's train jobs list-scheduled on 1 to 16 cores with the old and "
        "the new thread shares (a model from measured rates, not a measurement on those cores)",
        "machine": data["machine"],
        "commit": data["commit"],
        "date": data["date"],
        "command": shlex.join(["python", "benchmarks/wall_time_model.py", *sys.argv[1:]]),
        "note": f"rates: {data['note']}" if data.get("note") else "",
        "measured": {"rates": args.rates, "command": data["command"]},
        "scheduled": f"Train jobs from {source}, with {scaling} and Amdahl's law beyond two "
        "threads, list-scheduled costliest first",
        "rates": [
            {
                "model": name,
                "epochs": entries[name]["epochs"],
                "images_per_s": entries[name]["images_per_s"],
                "images_per_cpu_s": entries[name]["images_per_cpu_s"],
                "job_s_at_rate": round(job_seconds(entries[name], args.startup_s), 1),
                "issue22_job_s": measured_jobs.get(name),
            }
            for name in order
        ],
        "schedule": [
            {**row, "threads": {n: row["threads"][n] for n in order}}
            for row in schedule_rows(entries, base, two)
        ],
    }
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}; mnistbench docs-tables docs/speed.md renders it")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="step", required=True)
    m = sub.add_parser("measure", help="time the training steps, write the rates")
    m.add_argument("--config", default="config/config.yaml")
    m.add_argument("--models", nargs="+", default=None)
    m.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    m.add_argument("--rounds", type=int, default=6, help="alternating windows per variant")
    m.add_argument("--note", default="", help="e.g. whether other work shared the machine")
    m.add_argument("--out", required=True)
    w = sub.add_parser("model", help="write the modelled wall times (JSON, for docs-tables)")
    w.add_argument("rates")
    w.add_argument("--out", required=True)
    w.add_argument("--startup-s", type=float, default=15.0)
    w.add_argument(
        "--jobs",
        choices=["issue22", "rates"],
        default="issue22",
        help="one-thread job times: issue 22's measured ones, or from the rates in the file",
    )
    w.add_argument(
        "--speed-up-2",
        type=float,
        default=None,
        help="two-thread speed-up for every model (default: each one's, by CPU time)",
    )
    args = p.parse_args()
    (measure if args.step == "measure" else model)(args)


if __name__ == "__main__":
    main()
