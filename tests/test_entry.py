"""Entry points: a user-fixable error is one clear line and exit status 2, not a traceback."""

from __future__ import annotations

import subprocess
import sys


def test_missing_raw_files_name_the_file(project_root, tmp_path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(project_root / "workflow/scripts/prepare.py"),
            "--raw",
            str(tmp_path / "nowhere"),
            "--out",
            str(tmp_path / "out"),
            "--val-size",
            "10",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "mnistbench error:" in proc.stderr and "nowhere" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_model_settings_from_json_or_from_the_config_file(project_root) -> None:
    import argparse
    import json

    from mnistbench.config import load_config, resolve_model, validate_config
    from mnistbench.entry import add_model_settings_args, model_settings

    parser = argparse.ArgumentParser()
    add_model_settings_args(parser)
    config_file = str(project_root / "config" / "config.yaml")
    from_file = model_settings(parser.parse_args(["--config", config_file, "--model", "cnn"]))
    expected = resolve_model(validate_config(load_config(config_file)), "cnn")
    assert from_file == expected
    as_json = parser.parse_args(["--settings", json.dumps(expected)])
    assert model_settings(as_json) == expected
