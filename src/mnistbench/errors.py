"""Error types: every message names the file or config key at fault and says what to do.

Entry points catch ``MnistbenchError`` and print only its message (no traceback), so a
user sees one actionable line instead of a stack trace.
"""


class MnistbenchError(Exception):
    """Base class for errors a user can fix (bad input, bad config)."""


class DataError(MnistbenchError):
    """A data file is missing, corrupt or not what MNIST should be."""


class ConfigError(MnistbenchError):
    """A configuration key is missing, misspelt or out of range."""


class TrainingError(MnistbenchError):
    """Training could not produce a trustworthy model (e.g. the loss became NaN)."""
