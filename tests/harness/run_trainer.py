"""Runs `jax_ssl.train` in a subprocess with optional fault injection (tests only).

  python tests/harness/run_trainer.py --kill_at_step N --kill_signal KILL|TERM <trainer flags>

When the trainer has finished step N's checkpoint save call, the process sends itself the
signal: SIGKILL models a preemption without warning, SIGTERM a polite one.
"""

import os
import signal
import sys

from absl import app, flags

from jax_ssl import checkpoint, train

_KILL_AT = flags.DEFINE_integer("kill_at_step", 0, "Signal self after this step's save call (0: never).")
_SIGNAL = flags.DEFINE_enum("kill_signal", "KILL", ["KILL", "TERM"], "Signal to send.")

_original_save = checkpoint.Checkpointer.save


def _save_then_signal(self, step, state, data_iterator, *, force=False):
  saved = _original_save(self, step, state, data_iterator, force=force)
  if step == _KILL_AT.value and not force:
    if _SIGNAL.value == "KILL":
      self.wait()  # the checkpoint of an earlier step is complete; this one too
      os.kill(os.getpid(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGTERM)
  return saved


if __name__ == "__main__":
  checkpoint.Checkpointer.save = _save_then_signal
  app.run(train.main)
