"""One line per epoch on the terminal while models train, readable when several train at once.

A Snakemake job's stdout and stderr go to its log. The train rule hands the job a copy of
Snakemake's own stderr as file descriptor 3 (``--progress-fd 3 3>&2``), and only these lines go
there, each prefixed with the run's name::

    cnn            epoch 2/6   train loss 0.2143   val F1 0.9472   0:42 elapsed, ETA 1:24

Each line is a single ``write`` of a few dozen bytes, so the lines of concurrent jobs never cut
into each other. Only the process Snakemake started writes (not the ranks Lightning or srun
launch for several devices, in which descriptor 3 is closed or something else).
"""

from __future__ import annotations

import contextlib
import math
import os

NAME_WIDTH = 14  # run names are padded to this, so the columns of concurrent jobs line up


def clock(seconds: float) -> str:
    """0:42, 12:05 or 1:02:03."""
    if not math.isfinite(seconds):
        return "?"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """Lines about one run to an open file descriptor (the terminal, through Snakemake)."""

    def __init__(self, fd: int, name: str) -> None:
        self.fd = fd
        self.name = name

    @classmethod
    def open(cls, fd: int | None, name: str) -> Progress | None:
        """The writer for ``--progress-fd``; None without one, or if it is not open."""
        if fd is None:
            return None
        try:
            os.fstat(fd)
        except OSError:
            return None
        return cls(fd, name)

    def line(self, text: str) -> None:
        with contextlib.suppress(OSError):  # the terminal went away: training goes on
            os.write(self.fd, f"{self.name:<{NAME_WIDTH}} {text}\n".encode())

    def epoch(
        self, done: int, total: int, train_loss: float, val_f1: float, elapsed: float, run: int
    ) -> None:
        """After epoch ``done`` of ``total``; ``run`` epochs took ``elapsed`` seconds in this
        process (fewer than ``done`` after a resume): the ETA assumes the same pace, and early
        stopping may end the run sooner."""
        eta = elapsed / max(run, 1) * max(total - done, 0)
        self.line(
            f"epoch {done}/{total}".ljust(12)
            + f"train loss {train_loss:.4f}   val F1 {val_f1:.4f}   "
            + f"{clock(elapsed)} elapsed, ETA {clock(eta)}"
        )
