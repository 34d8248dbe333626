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

Several processes (a multi-host run) must stop after the *same* step: the checkpoint save is
collective, and a process that stopped alone would leave the others waiting in the next
step's collectives. A signal reaches one process (a preempted host), or all of them at
slightly different steps (`scancel`, Ctrl-C under srun). They agree through JAX's preemption
sync manager (`multihost_utils.reached_preemption_sync_point`, what Orbax's
`CheckpointManager.reached_preemption` and maxtext use): the coordination service installs
its own SIGTERM handler in every process when `jax.distributed` starts (XLA's
tsl/distributed_runtime/preemption: SigtermNotifier, which is also how a TPU VM's
preemption notice arrives), publishes a notice to all processes, and sets the sync point to
the highest step any process has reported plus one. The loop reports every step
(`should_stop`), so all processes stop after that same step, save it and exit 0. In such a
run StopSignals leaves SIGTERM to that handler (a Python handler would replace it) and turns
the first SIGINT into the same notice (it raises SIGTERM in its own process); the process
that got the SIGINT still exits 130, the others 0.

Why every step and not an all-gathered flag every K steps: `reached_preemption_sync_point`
reads a counter under a lock and never waits for the devices or the network (the agreement
runs in the coordination service's threads), measured 0.1-0.3 us per call with 2 processes
x 4 CPU devices, while an all-gathered flag (`multihost_utils.process_allgather`) took
1.7 ms per call there and makes the host wait for every step queued on the devices, which
the loop otherwise avoids between log steps. The notice takes up to 1 s to spread (the
notifier polls its flag every second), so the stop comes a few steps after the signal.
"""

from __future__ import annotations

import os
import signal
from typing import Callable

# What a process of a multi-process run reports when the stop was agreed on without a
# signal of its own: another process got SIGTERM (or SIGINT), or JAX's preemption notice came.
PREEMPTION_NOTICE = "a preemption notice"

# The CLI's exit code after a run stopped by each signal (or notice).
EXIT_CODES = {"SIGINT": 130, "SIGTERM": 0, PREEMPTION_NOTICE: 0}


class Interrupted(BaseException):
  """Raised by the handler in the evaluation phase; a BaseException so that no `except
  Exception` on the way swallows it."""

  def __init__(self, signal_name: str):
    super().__init__(signal_name)
    self.signal_name = signal_name


class StopSignals:
  """Context manager installing the SIGINT/SIGTERM handlers (main thread only).

  Attributes:
    received: the name of the signal that stops the run ("SIGINT", "SIGTERM", or with
      `sync_point` PREEMPTION_NOTICE when this process got none), None before the stop.
    evaluating: set once training is done; a signal then raises `Interrupted`.
  """

  def __init__(self, abort: Callable[[], tuple[str, Callable[[], None]]], *,
               sync_point: Callable[[int], bool] | None = None):
    """`abort()` returns the line to print on a second SIGINT and a cleanup to run before
    the process exits with code 130. `sync_point` (multi-process runs: JAX's
    `multihost_utils.reached_preemption_sync_point`) makes the stop a decision of all
    processes; SIGTERM is then left to the coordination service's handler."""
    self._abort = abort
    self._sync_point = sync_point
    self._previous = {}
    self._local: str | None = None  # this process's own signal, in a multi-process run
    self.received: str | None = None
    self.evaluating = False

  def __enter__(self) -> StopSignals:
    # With `sync_point`, SIGTERM keeps the handler `jax.distributed.initialize` installed (in
    # C: signal.getsignal cannot see it, and nothing in jax_ssl, grain or Orbax replaces it).
    signals = (signal.SIGINT,) if self._sync_point else (signal.SIGINT, signal.SIGTERM)
    for signum in signals:
      self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, *exc_info) -> None:
    for signum, previous in self._previous.items():
      signal.signal(signum, previous)

  def starting_from(self, step: int) -> None:
    """Reports the step the run (re)starts from as soon as it is known: a notice during the
    setup then puts the sync point after it, not at step 1 (the count of a process that has
    reported nothing), which a resumed run would never reach."""
    if self._sync_point is not None:
      self._sync_point(step)

  def should_stop(self, step: int) -> bool:
    """Whether to stop before the step after `step` (the last one completed). With
    `sync_point`, call it once for every step: all processes agree on the step it first
    returns True for."""
    if self._sync_point is None:
      return self.received is not None
    if self.received is None and self._sync_point(step):
      self.received = self._local or PREEMPTION_NOTICE
    return self.received is not None

  def _handle(self, signum: int, frame) -> None:
    del frame
    name = signal.Signals(signum).name
    if self.evaluating:
      raise Interrupted(name)
    if self._sync_point is not None and name == "SIGINT" and self._local is None:
      self._local = name
      _write("SIGINT: all processes stop after the same step and save it; press Ctrl-C again "
             "to abort without saving\n")
      signal.raise_signal(signal.SIGTERM)  # the coordination service's notice to all processes
    elif self._sync_point is None and self.received is None:
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
