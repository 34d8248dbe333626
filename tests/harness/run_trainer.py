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
_KILL_DURING_SAVE = flags.DEFINE_integer(
    "kill_during_save_of_step", 0, "SIGKILL while Orbax writes this step's checkpoint (0: never).")

_original_save = checkpoint.Checkpointer.save


def _save_then_signal(self, step, state, data_iterator, *, force=False):
  saved = _original_save(self, step, state, data_iterator, force=force)
  if step == _KILL_AT.value and not force:
    if _SIGNAL.value == "KILL":
      self.wait()  # the checkpoint of an earlier step is complete; this one too
      os.kill(os.getpid(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGTERM)
  return saved


def _patch_grain_handler():
  """SIGKILL from inside the save of step N: its temporary folder is half written."""
  import grain  # pylint: disable=g-import-not-at-top
  handler = grain.checkpoint.CheckpointHandler
  original = handler.save

  def save(self, directory, *args, **kwargs):
    step_folder = os.path.basename(os.path.dirname(str(directory)))
    if _KILL_DURING_SAVE.value and step_folder.split(".")[0] == str(_KILL_DURING_SAVE.value):
      os.kill(os.getpid(), signal.SIGKILL)
    return original(self, directory, *args, **kwargs)

  handler.save = save


if __name__ == "__main__":
  checkpoint.Checkpointer.save = _save_then_signal
  _patch_grain_handler()  # reads its flag at save time, after app.run parsed the flags
  app.run(train.main)
