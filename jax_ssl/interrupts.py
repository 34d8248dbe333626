"""Ctrl-C (SIGINT) and SIGTERM during a training run: stop after the step, save it, say how to resume.

The first SIGINT or SIGTERM asks the trainer to stop after the step it is running; it then
saves a checkpoint of that step, prints one line naming it and returns; the CLI exits 130
after SIGINT (the shell's code for Ctrl-C, so `train && evaluate` stops) and 0 after SIGTERM
(preemption: the scheduler reruns the same command). A second SIGINT before that is done
aborts at once: the checkpoint being written never becomes one (Orbax renames it into place
only when it is complete), so a rerun resumes from the last complete checkpoint. During the
evaluation there is nothing left to save: a signal stops it at once.

The handlers write with os.write: a print from a signal handler can land inside another
print to the same stream and raise.
"""

from __future__ import annotations

import os
import signal
from typing import Callable

# The CLI's exit code after a run stopped by each signal.
EXIT_CODES = {"SIGINT": 130, "SIGTERM": 0}


class Interrupted(BaseException):
  """Raised by the handler in the evaluation phase; a BaseException so that no `except
  Exception` on the way swallows it."""

  def __init__(self, signal_name: str):
    super().__init__(signal_name)
    self.signal_name = signal_name


class StopSignals:
  """Context manager installing the SIGINT/SIGTERM handlers (main thread only).

  Attributes:
    received: the name of the first signal ("SIGINT" or "SIGTERM"), None before one arrives.
    evaluating: set once training is done; a signal then raises `Interrupted`.
  """

  def __init__(self, abort: Callable[[], tuple[str, Callable[[], None]]]):
    """`abort()` returns the line to print on a second SIGINT and a cleanup to run before
    the process exits with code 130."""
    self._abort = abort
    self._previous = {}
    self.received: str | None = None
    self.evaluating = False

  def __enter__(self) -> StopSignals:
    for signum in (signal.SIGINT, signal.SIGTERM):
      self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, *exc_info) -> None:
    for signum, previous in self._previous.items():
      signal.signal(signum, previous)

  def _handle(self, signum: int, frame) -> None:
    del frame
    name = signal.Signals(signum).name
    if self.evaluating:
      raise Interrupted(name)
    if self.received is None:
      self.received = name
      if name == "SIGINT":
        _write("SIGINT: stopping after this step and saving it; press Ctrl-C again to abort "
               "without saving\n")
    elif name == "SIGINT":
      message, cleanup = self._abort()
      _write(message + "\n")
      cleanup()
      os._exit(EXIT_CODES["SIGINT"])  # pylint: disable=protected-access  # at once: no unwinding


def _write(text: str) -> None:
  try:
    os.write(2, text.encode())
  except OSError:
    pass
