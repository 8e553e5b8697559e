"""Where the numbers come from: code, packages, data, hardware and the whole configuration."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from mnistbench.io import atomic_path, read_json, write_json
from mnistbench.machine import cpu_name

PACKAGES = (
    "torch",
    "lightning",
    "torchvision",
    "numpy",
    "pandas",
    "matplotlib",
    "snakemake",
    "dvc",
)


def _git_commit(cwd: Path) -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10
        )
        if head.returncode != 0:
            return "unknown (not a git checkout)"
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (git not available)"
    return head.stdout.strip() + (" + uncommitted changes" if dirty else "")


def provenance(
    model_dirs: Sequence[str | Path],
    manifest: str | Path | None = None,
    config: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Where the numbers come from: code (git commit), packages, data (sha256 of the raw files,
    from the download step's manifest), hardware (each training job's, from its config.yaml
    snapshot, and this host's CPU) and the whole configuration."""
    from importlib.metadata import PackageNotFoundError, version

    packages = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            continue
    data: dict[str, Any] = {}
    if manifest is not None and Path(manifest).exists():
        m = read_json(manifest)
        data = {
            "source": m.get("source"),
            "origin": m.get("origin"),
            "sha256": {f["name"]: f["sha256"] for f in m.get("files", {}).values()},
        }
    training = {}
    speed = {}
    for d in map(Path, model_dirs):
        snapshot = d / "config.yaml"
        if snapshot.exists():
            env = (yaml.safe_load(snapshot.read_text()) or {}).get("environment", {})
            training[d.name] = env
        if (d / "summary.json").exists():  # how precision and memory format were chosen
            run = read_json(d / "summary.json")
            speed[d.name] = {k: run.get(k) for k in ("precision", "channels_last", "speed")}
    config_text = json.dumps(config or {}, sort_keys=True, default=str)
    return {
        "git_commit": _git_commit(Path.cwd()),
        "packages": packages,
        "data": data,
        "hardware": {
            "host_cpu": cpu_name(),
            "host_cores": os.cpu_count(),
            "platform": platform.platform(),
            "training": training,
        },
        "speed": speed,
        "config_sha256": hashlib.sha256(config_text.encode()).hexdigest(),
        "config": config or {},
    }


def provenance_rows(prov: Mapping[str, Any]) -> pd.DataFrame:
    """The provenance as short key/value rows for the report's front page."""
    rows = [("git commit", prov["git_commit"])]
    rows.append(("packages", ", ".join(f"{k} {v}" for k, v in prov["packages"].items())))
    data = prov.get("data") or {}
    if data:
        rows.append(("data source", f"{data.get('source')} ({data.get('origin') or '-'})"))
        rows += [(f"sha256 {name}", digest) for name, digest in data["sha256"].items()]
    hw = prov["hardware"]
    rows.append(("host (report step)", f"{hw['host_cpu']}, {hw['host_cores']} cores"))
    rows.append(("platform", hw["platform"]))
    seen: dict[str, list[str]] = {}
    for model, env in hw["training"].items():
        device = env.get("cuda_device") or f"CPU, {env.get('torch_threads')} threads"
        cpu = env.get("cpu") or env.get("processor")
        if env.get("cpu_capability"):  # bf16 is emulated (slow) without native support
            bf16 = "native bf16" if env.get("native_bf16") else "no native bf16"
            cpu = f"{cpu} ({env['cpu_capability']}, {bf16})"
        key = f"{cpu}, {device}; torch {env.get('torch')}"
        seen.setdefault(key, []).append(model)
    for key, models in seen.items():
        rows.append((f"training hardware ({', '.join(models)})", key))
    for model, run in (prov.get("speed") or {}).items():
        layout = ", channels-last" if run.get("channels_last") else ""
        reason = (run.get("speed") or {}).get("reason")
        rows.append(
            (
                f"precision ({model})",
                f"{run.get('precision')}{layout}" + (f": {reason}" if reason else ""),
            )
        )
    rows.append(("config sha256", f"{prov['config_sha256']} (whole config in provenance.json)"))
    return pd.DataFrame(rows, columns=["item", "value"])


def write_provenance(
    model_dirs: Sequence[str | Path],
    out: Mapping[str, str | Path],
    manifest: str | Path | None,
    config: Mapping[str, Any] | None,
) -> None:
    """provenance.json (everything) and provenance.csv (the report's front page), if named."""
    if not {"provenance_json", "provenance_csv"} & set(out):
        return
    prov = provenance(model_dirs, manifest, config)
    if "provenance_json" in out:
        write_json(out["provenance_json"], prov)
    if "provenance_csv" in out:
        with atomic_path(out["provenance_csv"]) as tmp:
            provenance_rows(prov).to_csv(tmp, index=False)
