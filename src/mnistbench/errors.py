"""Error types: every message names the file or config key at fault and says what to do.

Entry points catch ``MnistbenchError`` and print only its message (no traceback), so a
user sees one actionable line instead of a stack trace.
"""

import difflib
from collections.abc import Iterable


class MnistbenchError(Exception):
    """Base class for errors a user can fix (bad input, bad config)."""


class DataError(MnistbenchError):
    """A data file is missing, corrupt or not what MNIST should be."""


class ConfigError(MnistbenchError):
    """A configuration key is missing, misspelt or out of range."""


class TrainingError(MnistbenchError):
    """Training could not produce a trustworthy model (e.g. the loss became NaN)."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest valid name, or "" when none is close."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
