"""Orbax checkpointing of the whole TrainState plus the grain iterator state.

One `CheckpointManager` (async, keep-N) saves two items per step: `state` (the TrainState
pytree, via Orbax's standard handler) and `data` (grain's own handler for the iterator
position, one file per process). Restoring both gives an exact resume: the same parameters
and the same next batch.
"""

from __future__ import annotations

import os

import grain
import jax
import orbax.checkpoint as ocp


class Checkpointer:
  """Thin owner of an `ocp.CheckpointManager` for (TrainState, grain iterator)."""

  def __init__(self, directory: str, *, keep: int, save_every_steps: int):
    self.manager = ocp.CheckpointManager(
        os.path.abspath(directory),
        options=ocp.CheckpointManagerOptions(
            max_to_keep=keep, save_interval_steps=save_every_steps,
            enable_async_checkpointing=True),
        item_handlers={"state": ocp.StandardCheckpointHandler(),
                       "data": grain.checkpoint.CheckpointHandler()},
    )

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
