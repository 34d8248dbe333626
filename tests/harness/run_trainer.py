"""Runs `jax_ssl.train` in a subprocess with optional fault injection (tests only).

  python tests/harness/run_trainer.py --kill_at_step N --kill_signal KILL|TERM|INT <trainer flags>

When the trainer has finished step N's checkpoint save call, the process sends itself the
signal: SIGKILL models a preemption without warning, SIGTERM a polite one, SIGINT a Ctrl-C.

  python tests/harness/run_trainer.py --sigint_during_save_of_step N <trainer flags>

sends SIGINT while step N's checkpoint is being written (with --kill_signal INT: the second
Ctrl-C, pressed while the first one's save runs).

  python tests/harness/run_trainer.py --disk_full_at_save_of_step N --disk_full_in blocking|background

makes step N's checkpoint write fail as on a full disk: in the calling thread (an OSError
ENOSPC from the data iterator's file) or in Orbax's background thread (the error TensorStore
reports for its array files).
"""

import errno
import os
import signal

from absl import app, flags

from jax_ssl import checkpoint, train

_KILL_AT = flags.DEFINE_integer("kill_at_step", 0, "Signal self after this step's save call (0: never).")
_SIGNAL = flags.DEFINE_enum("kill_signal", "KILL", ["KILL", "TERM", "INT"], "Signal to send.")
_KILL_DURING_SAVE = flags.DEFINE_integer(
    "kill_during_save_of_step", 0, "SIGKILL while Orbax writes this step's checkpoint (0: never).")
_SIGINT_DURING_SAVE = flags.DEFINE_integer(
    "sigint_during_save_of_step", 0, "SIGINT while Orbax writes this step's checkpoint (0: never).")

_DISK_FULL_AT = flags.DEFINE_integer(
    "disk_full_at_save_of_step", 0, "Fail this step's checkpoint write with ENOSPC (0: never).")
_DISK_FULL_IN = flags.DEFINE_enum("disk_full_in", "blocking", ["blocking", "background"],
                                  "Where the ENOSPC is raised.")

_original_save = checkpoint.Checkpointer.save


def _save_then_signal(self, step, state, data_iterator, *, force=False):
  saved = _original_save(self, step, state, data_iterator, force=force)
  if step == _KILL_AT.value and not force:
    if _SIGNAL.value == "KILL":
      self.wait()  # the checkpoint of an earlier step is complete; this one too
      os.kill(os.getpid(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGTERM if _SIGNAL.value == "TERM" else signal.SIGINT)
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
    if _SIGINT_DURING_SAVE.value and step_folder.split(".")[0] == str(_SIGINT_DURING_SAVE.value):
      os.kill(os.getpid(), signal.SIGINT)
    if (_DISK_FULL_IN.value == "blocking"
        and step_folder.split(".")[0] == str(_DISK_FULL_AT.value)):
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC),
                    os.path.join(str(directory), "process_0-of-1.json"))
    return original(self, directory, *args, **kwargs)

  handler.save = save


def _patch_background_commit():
  """ENOSPC in Orbax's background thread, worded as TensorStore words it on a full disk."""
  from orbax.checkpoint._src.checkpointers import async_checkpointer  # pylint: disable=g-import-not-at-top
  original = async_checkpointer._on_commit_callback  # pylint: disable=protected-access

  def on_commit(tmpdir, *args, **kwargs):
    if (_DISK_FULL_IN.value == "background"
        and os.path.basename(str(tmpdir.get_final())) == str(_DISK_FULL_AT.value)):
      data_file = os.path.join(str(tmpdir.get()), "state", "d", "0a1b2c")
      raise ValueError(f'RESOURCE_EXHAUSTED: Error writing local file "{data_file}": Failed writing: '
                       f'"{data_file}.__lock": Failed to write 4096 bytes to file 14: '
                       f"No space left on device [os_error_code='28']")
    return original(tmpdir, *args, **kwargs)

  async_checkpointer._on_commit_callback = on_commit  # pylint: disable=protected-access


if __name__ == "__main__":
  checkpoint.Checkpointer.save = _save_then_signal
  _patch_grain_handler()  # reads its flags at save time, after app.run parsed the flags
  _patch_background_commit()
  app.run(train.main, flags_parser=train.parse_flags)  # --config.KEY=VALUE overrides
