"""Faults injected into the ``mnistbench <stage>`` jobs of a test's Snakemake run, without any
change to the project's config or code between two runs (tests/test_faults_workflow.py).

Python imports ``sitecustomize`` at the start of every process whose ``PYTHONPATH`` holds this
directory. ``MNISTBENCH_INJECT`` (JSON) lists the faults, each for one stage and run, e.g.
``[{"stage": "train", "model": "lenet5", "fault": "oserror", "errno": "ENOSPC"}]``:

- ``oserror`` (with ``"errno"``: ENOSPC, EROFS, ...): publishing the model fails as on a full or
  read-only disk;
- ``hold_epoch`` (with ``"epoch": N``): the train job waits at the start of epoch index N, after
  epoch N-1's resumable checkpoint was saved, until a signal stops it;
- ``hold_summary``: the train job waits after model.ckpt and metrics.csv, before summary.json;
- ``hold``: the evaluate job waits before scoring;
- ``hold_exit``: the evaluate job waits after writing all its outputs, and a signal then ends
  it with success (a job that ended just as Snakemake was stopped).
"""

from __future__ import annotations

import errno
import json
import os
import sys
import time

HOLD_S = 600


def _fault() -> dict | None:
    spec = os.environ.get("MNISTBENCH_INJECT")
    argv = sys.argv
    if not spec or len(argv) < 2 or argv[0] != "-m" or "--model" not in argv:
        return None
    stage, model = argv[1], argv[argv.index("--model") + 1]
    wanted = [f for f in json.loads(spec) if f["stage"] == stage and f["model"] == model]
    return wanted[0] if wanted else None


def _inject(fault: dict) -> None:
    kind = fault["fault"]
    if kind in ("oserror", "hold_summary"):
        import mnistbench.train.recipe as training

        if kind == "oserror":
            code = getattr(errno, fault["errno"])

            def publish(settings, snapshot, run, scores, trainer):  # noqa: ANN001
                path = run.out / ".model.ckpt.injected.tmp"
                raise OSError(code, os.strerror(code), str(path))

            training._publish = publish
        else:
            summary = training._summary

            def held(*args, **kwargs):  # noqa: ANN002, ANN003
                time.sleep(HOLD_S)
                return summary(*args, **kwargs)

            training._summary = held
    elif kind == "hold_epoch":
        import mnistbench.train.callbacks as callbacks

        def on_train_epoch_start(self, trainer, pl_module):  # noqa: ANN001
            if trainer.current_epoch == fault["epoch"]:
                print(f"held at epoch index {fault['epoch']}", file=sys.stderr, flush=True)
                time.sleep(HOLD_S)

        callbacks.EpochLog.on_train_epoch_start = on_train_epoch_start
    elif kind == "hold_exit":
        import atexit
        import signal

        def held() -> None:
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, lambda *_: os._exit(0))
            print("held after writing", file=sys.stderr, flush=True)
            time.sleep(HOLD_S)

        atexit.register(held)
    elif kind == "hold":
        import mnistbench.evaluate.scores as evaluation

        evaluate = evaluation.evaluate

        def held(*args, **kwargs):  # noqa: ANN002, ANN003
            print("held before scoring", file=sys.stderr, flush=True)
            time.sleep(HOLD_S)
            return evaluate(*args, **kwargs)

        evaluation.evaluate = held


_found = _fault()
if _found is not None:
    _inject(_found)
