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
