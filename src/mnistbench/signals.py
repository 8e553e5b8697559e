"""Stopping on SIGTERM or SIGINT: the polite signals a scheduler, ``kill`` or Snakemake send.

Python stops on SIGINT with a KeyboardInterrupt, but dies on SIGTERM without unwinding. Here
both raise KeyboardInterrupt, which Lightning answers with a clean stop of ``fit`` and which no
``except Exception`` takes for a failure: a train job keeps its last epoch checkpoint
(``lightning/resume/last.ckpt``) and publishes nothing, so the next run resumes as after a kill.
The process then exits with status 128 + the signal number, as if the signal had killed it.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Iterator

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_received: list[int] = []


def _interrupt(signum: int, frame: object) -> None:
    _received.append(signum)
    raise KeyboardInterrupt(signal.Signals(signum).name)


def stop_requested() -> bool:
    """Whether a stop signal arrived: what fails after it is a consequence of the stop (e.g.
    under SLURM, Snakemake removes the job's outputs while the job is still stopping)."""
    return bool(_received)


@contextlib.contextmanager
def stopped_by_signals() -> Iterator[None]:
    """Run the body so that SIGTERM and SIGINT stop it as Ctrl-C does, then exit 128 + signal.

    A stop reported as KeyboardInterrupt, or as the SystemExit Lightning raises after it, or
    any error raised while stopping, ends the process with one line on stderr; any other exit
    passes through unchanged."""
    _received.clear()
    previous = {}
    with contextlib.suppress(ValueError):  # not the main thread: signals stay as they are
        for signum in STOP_SIGNALS:
            previous[signum] = signal.signal(signum, _interrupt)
    try:
        yield
    except BaseException:
        if not _received:
            raise
        name = signal.Signals(_received[0]).name
        print(
            f"mnistbench: stopped by {name}; nothing was published, and the next run continues "
            "(a train job from its last epoch checkpoint)",
            file=sys.stderr,
        )
        sys.exit(128 + _received[0])
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
