"""Orbax checkpointing of the whole TrainState plus the grain iterator state.

One `CheckpointManager` (async, keep-N) saves two items per step: `state` (the TrainState
pytree, via Orbax's standard handler) and `data` (grain's own handler for the iterator
position, one file per process). Restoring both gives an exact resume: the same parameters
and the same next batch.
"""

from __future__ import annotations

import os
import shutil
import time

from absl import logging
import grain
import jax
import orbax.checkpoint as ocp


class Checkpointer:
  """Thin owner of an `ocp.CheckpointManager` for (TrainState, grain iterator)."""

  def __init__(self, directory: str, *, keep: int, save_every_steps: int):
    self.directory = os.path.abspath(directory)
    self._options = dict(keep=keep, save_every_steps=save_every_steps)
    self.manager = self._make_manager()

  def _make_manager(self) -> ocp.CheckpointManager:
    # A save interrupted by a kill leaves only a `*.orbax-checkpoint-tmp*` folder: Orbax
    # never lists it as a step, and cleans it up here.
    return ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            max_to_keep=self._options["keep"], save_interval_steps=self._options["save_every_steps"],
            enable_async_checkpointing=True, cleanup_tmp_directories=True),
        item_handlers={"state": ocp.StandardCheckpointHandler(),
                       "data": grain.checkpoint.CheckpointHandler()},
    )

  def restore_latest(self, abstract_state, data_iterator):
    """Restores the newest checkpoint that reads back; returns (step, state) or (0, None).

    A checkpoint that fails to restore (truncated or garbled files) is reported by path and
    moved aside to `<directory>_corrupt/` (kept, not deleted); the next older one is tried.
    """
    for step in sorted(self.manager.all_steps(), reverse=True):
      try:
        return step, self.restore(step, abstract_state, data_iterator)
      except Exception as e:  # pylint: disable=broad-except  # any read failure: try older
        path = os.path.join(self.directory, str(step))
        aside = os.path.join(f"{self.directory}_corrupt", f"{step}-{int(time.time())}")
        logging.error("checkpoint %s is unreadable (%s: %s); moved it to %s and trying an older one",
                      path, type(e).__name__, str(e).splitlines()[0][:200], aside)
        print(f"warning: checkpoint {path} is unreadable ({type(e).__name__}); moved to {aside}; "
              f"resuming from an older checkpoint", flush=True)
        if jax.process_index() == 0:
          os.makedirs(os.path.dirname(aside), exist_ok=True)
          shutil.move(path, aside)
        if jax.process_count() > 1:
          from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
          multihost_utils.sync_global_devices(f"moved corrupt checkpoint {step}")
        self.manager.close()
        self.manager = self._make_manager()
    return 0, None

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def save(self, step: int, state, data_iterator, *, force: bool = False) -> bool:
    """Starts an (async) save if `step` is due (or `force`); returns whether it saved."""
    return self.manager.save(
        step,
        args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                data=grain.checkpoint.CheckpointSave(data_iterator)),
        force=force)

  def restore(self, step: int, abstract_state, data_iterator):
    """Restores the state into `abstract_state`'s shapes/shardings and `data_iterator` in place."""
    restored = self.manager.restore(
        step,
        args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state),
                                data=grain.checkpoint.CheckpointRestore(data_iterator)))
    return restored["state"]

  def restore_state(self, step: int, abstract_state):
    """Only the TrainState (evaluation does not need the iterator)."""
    restored = self.manager.restore(
        step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state)))
    return restored["state"]

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.close()


def abstract_like(tree, sharding: jax.sharding.Sharding):
  """ShapeDtypeStructs of `tree` carrying `sharding` (the restore target)."""
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)
