"""The renderers of ``mnistbench docs-tables`` for benchmark result files
(``reporting.measurements``): one per kind of measurement, each a Markdown table of the file's
figures. Ratios are computed here from the figures they compare, so they cannot disagree."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Result = Mapping[str, Any]


def code(text: str) -> str:
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _n(value: float | None, spec: str = "{:,.0f}", blank: str = "") -> str:
    return blank if value is None else spec.format(value)


def _minutes(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs} s" if minutes else f"{seconds:g} s"


def _variant(precision: str, channels_last: bool) -> str:
    name = {"32-true": "fp32", "bf16-mixed": "bf16", "16-mixed": "fp16"}.get(precision, precision)
    return name + (" CL" if channels_last else "")


def default_runs(data: Result) -> str:
    """Whole runs of the workflow side by side: wall time, job times, test F1."""
    runs = data["runs"]
    first = runs[0]
    rows = [["wall time", *(_minutes(r["wall_s"]) for r in runs)]]
    models = list(first["train_job_s"])
    rows.append(
        [
            f"train jobs (s): {' / '.join(models)}",
            *(" / ".join(f"{r['train_job_s'][m]:,}" for m in models) for r in runs),
        ]
    )
    if "evaluate_job_s" in first:
        rows.append(
            ["evaluate jobs (s, six in all)", *("{}-{}".format(*r["evaluate_job_s"]) for r in runs)]
        )
    models = list(first["test_f1"])
    rows.append(
        [
            f"test F1: {' / '.join(models)}",
            *(" / ".join(f"{r['test_f1'][m]:.4f}" for m in models) for r in runs),
        ]
    )
    return table(["", *(r["run"] for r in runs)], rows)


def smoke_pairs(data: Result) -> str:
    """Two configs one after the other: wall and CPU time, and the ratio of CPU times."""
    rows = []
    for p in data["pairs"]:
        old, new = p["previous"], p["new"]
        rows.append(
            [
                p["pair"],
                p["load_average"],
                f"{old['wall_s']} s wall, {old['cpu_s']} s CPU",
                f"{new['wall_s']} s wall, {new['cpu_s']} s CPU",
                f"{new['cpu_s'] / old['cpu_s']:.2f}",
            ]
        )
    header = [
        "pair", "load average", f"previous smoke config (`{data['previous_commit']}`)",
        f"new (`{data['new_commit']}`)", "CPU new / previous",
    ]  # fmt: skip
    return table(header, rows)


def probes(data: Result) -> str:
    """The precision probe's four variants, the choice, and bf16's best against fp32's."""
    rows = []
    for m in data["models"]:
        r = m["probe_images_s"]
        fp32 = max(r["32-true"], r["32-true channels_last"])
        bf16 = max(r["bf16-mixed"], r["bf16-mixed channels_last"])
        rows.append(
            [
                f"`{m['model']}`",
                *(f"{v:,.0f}" for v in r.values()),
                f"**{_variant(m['precision'], m['channels_last'])}**",
                f"{bf16 / fp32:.2f}x",
            ]
        )
    header = ["model", "fp32", "fp32 CL", "bf16", "bf16 CL", "chosen", "bf16 / fp32 (best of each)"]
    return table(header, rows)


def default_vs_fp32(data: Result) -> str:
    """The default precision's training time as a fraction of fp32's."""
    rows = [
        [
            f"`{m['model']}`",
            m["default"],
            f"{m['mnistbench_samples_s']:,}",
            f"{m['fp32_samples_s']:,}",
            f"{m['fp32_samples_s'] / m['mnistbench_samples_s']:.2f}",
        ]
        for m in data["models"]
    ]
    header = [
        "model",
        "default here",
        "default img/s",
        "fp32 img/s",
        "default / fp32 training time",
    ]
    return table(header, rows)


def recipe_epochs(data: Result) -> str:
    """Validation F1 by epochs trained, and the epochs chosen."""
    rows = [
        [
            f"`{m['model']}`",
            f"{m['reference_f1']:.4f}",
            ", ".join(f"{e}: {f:.4f}" for e, f in m["val_f1_by_epochs"].items()),
            f"{m['chosen']} ({m['why']})",
        ]
        for m in data["models"]
    ]
    return table(["model", "reference test F1", "validation F1 by epochs trained", "chosen"], rows)


def time_to_ref(data: Result) -> str:
    """Seconds until validation F1 reached the reference, next to the training and test F1."""
    rows = [
        [
            f"`{m['model']}`",
            f"{m['reference_f1']:.4f}",
            f"{_n(m['time_to_ref_s'], '{:.1f}', 'never')} / {m['train_seconds']:.1f}",
            f"{m['test_f1']:.4f}",
        ]
        for m in data["models"]
    ]
    return table(["model", "reference test F1", "s to reference / s of training", "test F1"], rows)


def roofline(data: Result) -> str:
    """Each model's training images/s in each precision and layout, as a share of the peak."""
    cells: dict[str, dict[str, str]] = {}
    macs: dict[str, int] = {}
    for r in data["rows"]:
        macs[r["model"]] = r["macs"]
        key = r["precision"] + (" CL" if r["channels_last"] else "")
        cells.setdefault(r["model"], {})[key] = f"{r['images_s']:,} ({r['fraction_of_peak']:.0%})"
    keys = list(next(iter(cells.values())))
    peaks = data["peak_gflops"]
    header = ["model", "MACs", *(f"{k} img/s (% of {peaks[k.split()[0]]} GFLOP/s)" for k in keys)]
    return table(header, [[f"`{m}`", f"{macs[m]:,}", *c.values()] for m, c in cells.items()])


def throughput(data: Result) -> str:
    """The tutorials' pipeline (a), mnistbench (b) and a raw loop (c): b/a and b/c."""
    rows = []
    for m in data["models"]:
        a, b, c = (m[f"{k}_samples_s"] for k in ("tutorial", "mnistbench", "raw"))
        rows.append(
            [
                f"`{m['model']}`",
                m["precision"],
                f"{a:,}",
                f"{b:,}",
                f"{c:,}",
                f"{b / a:.2f}",
                f"{b / c:.2f}",
            ]
        )
    header = ["model", "precision", "(a) tutorial img/s", "(b) mnistbench", "(c) raw", "b/a", "b/c"]
    return table(header, rows)


def gpu_workflow(data: Result) -> str:
    """The workflow's wall time on the GPU, commit by commit."""
    rows = [
        [
            f"`{r['commit']}`",
            r["change"],
            f"{r['wall_s']:.1f} s",
            _n(r["allconv_fit_s"], "{:.0f} s", "not recorded"),
        ]
        for r in data["runs"]
    ]
    return table(["commit", "what changed", "wall time", "allconv's fit"], rows)


def ensemble(data: Result) -> str:
    """Seed runs, their ensemble and the uniform mean: validation, test, McNemar."""
    rows = []
    for r in data["rows"]:
        name = f"`{r['run']}`" if r["run"] else ""
        name += f" ({r['detail']})" if name and r["detail"] else r["detail"] or ""
        ci = "" if r["ci_low"] is None else f"{r['ci_low']:.4f}–{r['ci_high']:.4f}"
        p = "(reference)" if r["mcnemar_p"] is None else f"{r['mcnemar_p']:#.2g}"
        if r["discordant"]:
            p += " ({} vs {} discordant)".format(*r["discordant"])
        rows.append(
            [name, r["val_errors"], f"{r['val_logloss_calibrated']:.5f}", f"{r['test_f1']:.4f}",
             ci, r["test_errors"], p]
        )  # fmt: skip
    header = [
        "row", "val errors (of 5,000)", "calibrated val log-loss", "test F1", "95% CI",
        "test errors", "McNemar p vs allconv-seed1",
    ]  # fmt: skip
    return table(header, rows)


def timings(data: Result) -> str:
    """Commands and how long each took (several runs: each)."""
    rows = []
    for r in data["rows"]:
        times = ", ".join(_minutes(s) for s in r["seconds"])
        runs = len(r["seconds"])
        rows.append(
            [r["what"], code(r["command"]), times + (f" ({runs} runs)" if runs > 1 else "")]
        )
    return table(["what", "command", "time"], rows)


def cpu_kinds(data: Result) -> str:
    """fp32 images/s, and how much slower a training step is under emulated bf16."""
    rows = [
        [
            f"`{m['model']}`",
            f"{m['fp32_images_s']:,}",
            _n(m["bf16_over_fp32"] and 1 / m["bf16_over_fp32"], "{:.1f}x", "not measured"),
        ]
        for m in data["models"]
    ]
    return table(["model", "fp32 img/s (training)", "bf16 step time / fp32"], rows)
