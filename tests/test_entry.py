"""`mnistbench <stage>`: one input mode (the config files, `--set` over them), and a
user-fixable error is one clear line and exit status 2, not a traceback."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mnistbench.cli import load, main
from mnistbench.config.load import load_config, resolve_model, validate_config


def stage(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mnistbench", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_missing_raw_files_name_the_file(project_root: Path, tmp_path: Path) -> None:
    config = load_config(project_root / "config/config.yaml")
    config["dataset"] = "kmnist"  # not downloaded
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    proc = stage(tmp_path, "prepare", "--configfile", "c.yaml")
    assert proc.returncode == 2
    assert "mnistbench error:" in proc.stderr and "data/kmnist/raw" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "data/kmnist/prepared").exists()


def test_a_stage_reads_the_config_files_and_set_over_them(project_root: Path) -> None:
    files = [str(project_root / "config/config.yaml"), str(project_root / "config/smoke.yaml")]
    config = load(files, '{"models": {"cnn": {"train": {"max_epochs": 3}}}}')
    assert config["dataset"] == "synthetic"  # the second file over the first
    assert resolve_model(config, "cnn")["max_epochs"] == 3  # --set over both
    plain = validate_config(load_config(*files))
    assert resolve_model(config, "lenet5") == resolve_model(plain, "lenet5")


def test_an_unknown_run_is_a_config_error(project_root: Path, capsys) -> None:
    config = str(project_root / "config/config.yaml")
    with pytest.raises(SystemExit) as exc:
        main(["train", "--configfile", config, "--model", "lenet"])
    assert exc.value.code == 2
    assert "did you mean 'lenet5'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["report", "--configfile", config, "--set", "[1, 2]"])
    assert exc.value.code == 2 and "--set" in capsys.readouterr().err


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_ends_a_stage_like_ctrl_c(signum: int) -> None:
    """SIGTERM, which would kill Python on the spot, unwinds as Ctrl-C does (finally blocks and
    Lightning's clean stop run) and ends with 128 + the signal number and one line."""
    script = (
        "import time\n"
        "from mnistbench.signals import stopped_by_signals\n"
        "with stopped_by_signals():\n"
        "    try:\n"
        "        print('ready', flush=True)\n"
        "        time.sleep(60)\n"
        "    finally:\n"
        "        print('unwound', flush=True)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum
    assert out == "unwound\n" and "Traceback" not in err
    name = signal.Signals(signum).name
    assert f"mnistbench: stopped by {name}; nothing was published" in err
