"""The docs' tables of measured figures, rendered from the result files committed under
``benchmarks/results/``, never typed.

A result file is one measurement: a JSON object with ``what`` was measured, the ``machine``
(``cpu``, ``capability`` as ``torch.backends.cpu.get_cpu_capability()`` says, ``torch``; a
``name`` and a ``gpu`` where there is one), the ``commit`` and ``date`` it was made at, the
``command`` that made it (null where there is none to give; ``how`` then says how it was made),
optionally a ``note`` (e.g. whether other work shared the machine)
and a ``source`` (where figures transcribed from an earlier record were found), and its figures
in the layout its renderer reads. A page names the file and the renderer::

    <!-- mnistbench docs-tables benchmarks/results/probes_avx512.json probes -->

Each block starts with a line that links the file and says what it holds, then the table of its
renderer (``reporting.measured_tables``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mnistbench.errors import MnistbenchError
from mnistbench.io import read_json
from mnistbench.reporting import measured_tables as mt
from mnistbench.reporting.measured_tables import Result, code, table

REQUIRED = ("what", "machine", "commit", "date", "command")
MACHINE = ("cpu", "capability", "torch")


def load(path: str | Path) -> dict[str, Any]:
    """A result file, refused (naming the key) when it lacks what says where it comes from."""
    data = read_json(path)
    missing = [k for k in REQUIRED if k not in data]
    missing += [f"machine.{k}" for k in MACHINE if k not in (data.get("machine") or {})]
    if missing:
        raise MnistbenchError(
            f"{path}: no {', '.join(missing)}; a result file says where it "
            "comes from (benchmarks/results/, docs/development.md)"
        )
    return data


def caption(data: Result, path: Path, page: Path) -> str:
    """One line: the file (linked from the page), the machine, commit, date and command."""
    m = data["machine"]
    link = os.path.relpath(os.path.abspath(path), os.path.abspath(page.parent))
    command = code(data["command"]) if data["command"] else data.get("how", "command not recorded")
    note = f" {data['note'][0].upper()}{data['note'][1:]}." if data.get("note") else ""
    where = m.get("name") or m["cpu"]
    commit = data["commit"] if " " in data["commit"] else f"`{data['commit']}`"
    return (
        f"From [`{path.as_posix()}`]({link}): {data['what']}. Machine: {where}, "
        f"capability `{m['capability']}`, torch {m['torch']}. Commit {commit}, "
        f"{data['date']}: {command}.{note}\n"
    )


def wall_time(data: Result) -> str:
    """The rates a wall-time model read, and the wall times it gives on 1 to 16 cores."""
    order = [r["model"] for r in data["rates"]]
    rates = [
        [
            f"`{r['model']}`",
            r["epochs"],
            "{:,.0f} / {:,.0f}".format(*r["images_per_s"].values()),
            f"{r['images_per_s']['2'] / r['images_per_s']['1']:.2f}x",
            "{:,.0f} / {:,.0f}".format(*r["images_per_cpu_s"].values()),
            f"{r['job_s_at_rate']:,.0f} s",
            f"{r['issue22_job_s']:,.0f} s",
        ]
        for r in data["rates"]
    ]
    header = [
        "model",
        "epochs",
        "img/s, 1 / 2 threads (wall)",
        "2 / 1 threads",
        "img/s per CPU s, 1 / 2 threads",
        "job on 1 thread at this rate",
        "issue 22's job (AVX2 VM, 1 thread)",
    ]
    cores = [
        [
            s["cores"],
            _clock(s["before_s"]),
            f"**{_clock(s['now_s'])}**",
            " / ".join(str(s["threads"][m]) for m in order),
            _clock(s["work_s"]),
        ]
        for s in data["schedule"]
    ]
    return (
        f"Rates measured by {code(data['measured']['command'])}:\n\n{table(header, rates)}\n"
        f"{data['scheduled']}:\n\n"
        + table(
            [
                "cores",
                "before: `cores // 6` threads each",
                "now: threads by cost",
                f"threads now ({' / '.join(order)})",
                "one-thread work / cores",
            ],
            cores,
        )
    )


def _clock(seconds: float) -> str:
    return f"{int(seconds // 60)} min {int(round(seconds % 60)):02d} s"


RENDERERS: dict[str, Callable[[Result], str]] = {
    "default-runs": mt.default_runs,
    "smoke-pairs": mt.smoke_pairs,
    "probes": mt.probes,
    "default-vs-fp32": mt.default_vs_fp32,
    "recipe-epochs": mt.recipe_epochs,
    "time-to-ref": mt.time_to_ref,
    "roofline": mt.roofline,
    "throughput": mt.throughput,
    "gpu-workflow": mt.gpu_workflow,
    "ensemble": mt.ensemble,
    "timings": mt.timings,
    "cpu-kinds": mt.cpu_kinds,
    "wall-time": wall_time,
}


def render(path: str | Path, tables: Sequence[str], page: str | Path) -> str:
    """The caption and the chosen renderer's table of one result file, for ``page``."""
    path = Path(path)
    if len(tables) != 1 or tables[0] not in RENDERERS:
        raise MnistbenchError(
            f"{path}: name one renderer after the file; one of {', '.join(RENDERERS)}"
        )
    data = load(path)
    return caption(data, path, Path(page)) + "\n" + RENDERERS[tables[0]](data)
