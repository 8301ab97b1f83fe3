"""Errors that reach the user as one line and a non-zero exit code.

Every problem with input (files, names, labels, configuration) raises a subclass of
:class:`SynbenchError`; the CLI prints ``error: <message>`` and exits with ``exit_code``.
Anything else is a bug and keeps its traceback.
"""


class SynbenchError(Exception):
    exit_code = 2


class UnknownPluginError(SynbenchError):
    """A dataset, featurizer, model or metric name that no plugin registered."""


class PluginError(SynbenchError):
    """A plugin that is malformed or misbehaves (wrong shape, duplicate name, raised)."""


class DataError(SynbenchError):
    """Malformed, missing or inconsistent input data."""


class DataUnavailableError(DataError):
    """A data file that is neither in the data directory, nor cached, nor downloadable."""


class SplitError(SynbenchError):
    """A split that cannot be made or used (e.g. a classification fold with one class)."""


class ConfigError(SynbenchError):
    """Bad command-line options or configuration values."""


class StoreError(SynbenchError):
    """A result store that is unreadable or belongs to something else."""
