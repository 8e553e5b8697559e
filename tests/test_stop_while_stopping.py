"""A stop signal, then an error while stopping (under SLURM, Snakemake in the job removes the
job's outputs while the train command still finalises its loggers): still a stop, not a failure,
so a train job keeps its resumable checkpoint (tests/test_slurm.py shows it on a real cluster)."""

from __future__ import annotations

import signal
import subprocess
import sys


def test_an_error_raised_while_stopping_is_reported_as_the_stop() -> None:
    script = (
        "import time\n"
        "from mnistbench.signals import stop_requested, stopped_by_signals\n"
        "with stopped_by_signals():\n"
        "    try:\n"
        "        print('ready', flush=True)\n"
        "        time.sleep(60)\n"
        "    except KeyboardInterrupt:\n"
        "        print('requested' if stop_requested() else 'not requested', flush=True)\n"
        "        raise FileNotFoundError('dvclive/plots: removed while stopping')\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    assert out == "requested\n" and "Traceback" not in err
    assert "mnistbench: stopped by SIGTERM; nothing was published" in err


def test_without_a_stop_signal_an_error_passes_through() -> None:
    script = (
        "from mnistbench.signals import stop_requested, stopped_by_signals\n"
        "with stopped_by_signals():\n"
        "    assert not stop_requested()\n"
        "    raise FileNotFoundError('x')\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 1 and "FileNotFoundError: x" in proc.stderr
