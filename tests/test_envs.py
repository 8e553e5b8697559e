"""The conda environment file pins the same versions as the lock that envs/setup.sh installs."""

from __future__ import annotations

import re

import yaml


def _lock(root) -> dict[str, str]:
    pins = {}
    for line in (root / "envs" / "requirements.lock").read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==")
            pins[name.lower().replace("_", "-")] = version.split(";")[0].strip()
    return pins


def test_conda_pins_equal_the_lock(project_root) -> None:
    lock = _lock(project_root)
    env = yaml.safe_load((project_root / "envs" / "mnistbench.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pip, "the conda file lists no pip packages"
    for spec in pip:
        name, version = spec.split("==")
        assert lock.get(name.lower()) == version, f"{name}: conda {version}, lock {lock.get(name)}"
    py = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    assert re.fullmatch(r"python=3\.1[1-9]", py)


def test_lock_pins_a_matching_torch_pair(project_root) -> None:
    lock = _lock(project_root)
    # torchvision 0.(N+15) is built for torch 2.N
    torch_minor = int(lock["torch"].split(".")[1])
    assert lock["torchvision"].startswith(f"0.{torch_minor + 15}.")
