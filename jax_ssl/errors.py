"""Errors caused by the user's input (config, data, paths): the CLIs print them as one line.

Each message names the offending key or path, the bad value and the fix. Anything else is
a bug and keeps its traceback.
"""


class UserInputError(Exception):
  """Base class: a problem the user fixes by changing a flag, a config value or a file."""


class ConfigError(UserInputError, ValueError):
  """A config key has a bad value."""


class DataError(UserInputError, FileNotFoundError):
  """A dataset or file is missing or unreadable."""


class StorageError(UserInputError, OSError):
  """The workdir's disk is full or a path in it is not writable."""


class NonFiniteError(FloatingPointError):
  """Training produced a NaN/Inf loss or gradient (the run stops before saving it)."""
