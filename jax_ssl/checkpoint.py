"""Orbax checkpointing of the whole TrainState plus the grain iterator state.

One `CheckpointManager` (async, keep-N) saves two items per step: `state` (the TrainState
pytree, via Orbax's standard handler) and `data` (grain's own handler for the iterator
position, one file per process). Restoring both gives an exact resume: the same parameters
and the same next batch.

A save that fails because the disk is full or the directory is not writable (raised in the
calling thread, or in Orbax's background thread and surfaced at the next save or `wait`)
becomes one `StorageError` line naming the step, the path and the fix; the checkpoints
already on disk are untouched, so rerunning resumes from the last complete one.

The directory may be a URL (`gs://bucket/run/checkpoints`): Orbax takes epath paths and
writes the arrays through TensorStore (jax_ssl/fs.py); only a local path is made absolute.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging as python_logging
import os
import re
import shutil
import time

from absl import logging
import grain
import jax
import orbax.checkpoint as ocp

from jax_ssl import fs
from jax_ssl.errors import StorageError, UserInputError


class CheckpointLayoutError(UserInputError):
  """A readable checkpoint whose train state has another layout than this run's (written by
  another version of jax_ssl or for another config): left in place, never called corrupt."""


# TrainState fields added after checkpoints were written, and the field whose same paths
# give their value when an older checkpoint lacks them: the EMA target's BatchNorm
# statistics were the online model's before they were kept (the target normalised with
# batch statistics, so training continues exactly as it would have).
_FIELDS_FILLED_FROM = {"target_batch_stats": "batch_stats"}

# Write failures the user fixes (a full disk, a quota, a read-only or unwritable path), by errno.
_WRITE_FIXES = {
    errno.ENOSPC: "free space on that disk",
    errno.EDQUOT: "free space within your disk quota",
    errno.EROFS: "make that file system writable",
    errno.EACCES: "make that directory writable",
    errno.EPERM: "make that directory writable",
}


class Checkpointer:
  """Thin owner of an `ocp.CheckpointManager` for (TrainState, grain iterator)."""

  def __init__(self, directory: str, *, keep: int, save_every_steps: int):
    self.directory = fs.absolute(directory)
    self._options = dict(keep=keep, save_every_steps=save_every_steps)
    self.manager = self._make_manager()
    self._pending_step = None  # the step of the last save started and not yet waited for
    absl_logger = python_logging.getLogger("absl")  # Orbax logs through absl
    if not any(isinstance(f, _DropReportedWriteErrors) for f in absl_logger.filters):
      absl_logger.addFilter(_DropReportedWriteErrors())

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
      except CheckpointLayoutError:
        raise
      except Exception as e:  # pylint: disable=broad-except  # any read failure: try older
        path = fs.join(self.directory, str(step))
        aside = fs.join(f"{self.directory}_corrupt", f"{step}-{int(time.time())}")
        logging.error("checkpoint %s is unreadable (%s: %s); moved it to %s and trying an older one",
                      path, type(e).__name__, str(e).splitlines()[0][:200], aside)
        print(f"warning: checkpoint {path} is unreadable ({type(e).__name__}); moved to {aside}; "
              f"resuming from an older checkpoint", flush=True)
        if jax.process_index() == 0:
          _move(path, aside)
        if jax.process_count() > 1:
          from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
          multihost_utils.sync_global_devices(f"moved corrupt checkpoint {step}")
        self.manager.close()
        self.manager = self._make_manager()
    return 0, None

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def save(self, step: int, state, data_iterator, *, force: bool = False) -> bool:
    """Starts an (async) save if `step` is due (or `force`); returns whether it saved.

    Raises StorageError if this save, or the previous one still finishing in the background,
    cannot be written (full disk, unwritable directory).
    """
    if not (force or self.manager.should_save(step)):
      return False
    self.wait()  # a failed background save is reported with its own step
    with self._write_errors(step):
      saved = self.manager.save(
          step,
          args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                  data=grain.checkpoint.CheckpointSave(data_iterator)),
          force=force)
    if saved:
      self._pending_step = step
    return saved

  def restore(self, step: int, abstract_state, data_iterator):
    """Restores the state into `abstract_state`'s shapes/shardings and `data_iterator` in place.

    Raises CheckpointLayoutError (one line) if the checkpoint is readable but its state has
    another layout; fields newer than the checkpoint (`_FIELDS_FILLED_FROM`) are filled in.
    """
    target, missing = self._restore_target(step, abstract_state)
    restored = self.manager.restore(
        step,
        args=ocp.args.Composite(state=ocp.args.StandardRestore(target),
                                data=grain.checkpoint.CheckpointRestore(data_iterator)))
    return _fill_missing(restored["state"], abstract_state, missing)

  def restore_state(self, step: int, abstract_state):
    """Only the TrainState (evaluation does not need the iterator)."""
    target, missing = self._restore_target(step, abstract_state)
    restored = self.manager.restore(
        step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target)))
    return _fill_missing(restored["state"], abstract_state, missing)

  def _restore_target(self, step: int, abstract_state):
    """(what to restore, the fields to fill in): `abstract_state`, or without the fields an
    older checkpoint predates. A checkpoint whose metadata cannot be read is left to the
    restore to fail on (corrupt); one whose layout differs raises CheckpointLayoutError."""
    try:
      saved = _layout(self.manager.item_metadata(step)["state"])
    except Exception:  # pylint: disable=broad-except  # unreadable metadata: a corrupt checkpoint
      return abstract_state, ()
    if not dataclasses.is_dataclass(abstract_state):
      wanted, missing = _layout(abstract_state), ()
    else:
      fields = {f.name: getattr(abstract_state, f.name) for f in dataclasses.fields(abstract_state)}
      saved_fields = {name.split(".")[0] for name in saved}
      missing = tuple(f for f in _FIELDS_FILLED_FROM if f in fields and f not in saved_fields
                      and jax.tree.leaves(fields[f]))
      if missing:
        abstract_state = {k: v for k, v in fields.items() if k not in missing}
      wanted = _layout(abstract_state)
    if saved != wanted:
      differences = sorted(set(saved.items()) ^ set(wanted.items()))
      described = []
      for name in dict.fromkeys(name for name, _ in differences):
        old, new = saved.get(name), wanted.get(name)
        described.append(f"{name}: " + (f"saved {old}, expected {new}" if old and new else
                                         "not in the checkpoint" if new else "not expected"))
      raise CheckpointLayoutError(
          f"checkpoint {fs.join(self.directory, str(step))} holds a train state of "
          f"another layout ({'; '.join(described[:3])}"
          f"{f'; {len(described) - 3} more' if len(described) > 3 else ''}): it was written by "
          f"another version of jax_ssl or another config; resume it with the version and config "
          f"that wrote it, or use a new --workdir (the checkpoint is left as it is)")
    return abstract_state, missing

  def wait(self) -> None:
    """Blocks until the last save is complete; raises StorageError if it could not be written."""
    with self._write_errors(self._pending_step):
      self.manager.wait_until_finished()
    self._pending_step = None

  def close(self) -> None:
    """Releases Orbax's threads. Call `wait` first: an error still pending here is only logged
    (close runs in `finally` blocks, where another error may already be on its way)."""
    try:
      self.manager.close()
    except Exception as e:  # pylint: disable=broad-except
      logging.warning("closing the checkpoint manager: %s: %s", type(e).__name__, e)

  @contextlib.contextmanager
  def _write_errors(self, step: int | None):
    try:
      yield
    except Exception as e:  # pylint: disable=broad-except  # anything else is re-raised as is
      message = write_failure_message(
          e, checkpoint_dir=self.directory, what=f"the checkpoint of step {step} in {self.directory}")
      if message is None:
        raise
      raise StorageError(message) from e


class _DropReportedWriteErrors(python_logging.Filter):
  """Drops Orbax's logged tracebacks of write failures: StorageError reports them in one line."""

  def filter(self, record: python_logging.LogRecord) -> bool:
    error = record.exc_info[1] if record.exc_info else None
    return error is None or storage_error(error) is None


def _key_name(key) -> str:
  for attribute in ("key", "name", "idx"):
    if hasattr(key, attribute):
      return str(getattr(key, attribute))
  return str(key)


def _layout(tree) -> dict[str, tuple[int, ...]]:
  """{dotted path: shape} of every leaf (Orbax's metadata tree or an abstract state)."""
  return {".".join(_key_name(k) for k in path): tuple(getattr(leaf, "shape", None) or ())
          for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _fill_missing(restored, abstract_state, missing: tuple[str, ...]):
  """The TrainState from a restore without the `missing` fields: each filled from the same
  paths of its `_FIELDS_FILLED_FROM` field."""
  if not missing:
    return restored
  fields = dict(restored)
  for name in missing:
    source = {".".join(_key_name(k) for k in path): leaf for path, leaf in
              jax.tree_util.tree_flatten_with_path(restored[_FIELDS_FILLED_FROM[name]])[0]}
    fields[name] = jax.tree_util.tree_map_with_path(
        lambda path, _: source[".".join(_key_name(k) for k in path)], getattr(abstract_state, name))
    logging.warning("checkpoint predates %s: filled from %s", name, _FIELDS_FILLED_FROM[name])
  return type(abstract_state)(**fields)


def abstract_like(tree, sharding):
  """ShapeDtypeStructs of `tree` carrying `sharding` (the restore target): one
  `jax.sharding.Sharding` for every leaf, or a pytree of them matching `tree` (per-leaf, as
  FSDP's `state.state_shardings`). Orbax reads each array into its target's sharding,
  whatever sharding, strategy or device count wrote it."""
  if isinstance(sharding, jax.sharding.Sharding):
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)
  return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                      tree, sharding)


def _move(path: str, aside: str) -> None:
  """Moves the folder `path` to `aside` (a new folder in a new parent): `shutil.move` locally,
  a copy of every object and a delete on an object store (fsspec's recursive `mv`)."""
  if not fs.is_url(path):
    os.makedirs(os.path.dirname(aside), exist_ok=True)
    shutil.move(path, aside)
    return
  import fsspec  # pylint: disable=g-import-not-at-top
  filesystem, key = fsspec.core.url_to_fs(path)
  filesystem.mv(key, fsspec.core.url_to_fs(aside)[1], recursive=True)


def last_complete_step(checkpoint_dir: str) -> int | None:
  """The newest finalized checkpoint step in `checkpoint_dir` (temporary folders excluded)."""
  if not fs.path(checkpoint_dir).is_dir():
    return None
  return max(ocp.path.step.checkpoint_steps(checkpoint_dir), default=None)


def storage_error(error: BaseException) -> tuple[int, str | None] | None:
  """(errno, path or None) if `error`, or an exception it chains, is a full disk or an
  unwritable path; None for anything else.

  Python raises these as OSError; TensorStore (Orbax's array writer) as a ValueError such as
  `RESOURCE_EXHAUSTED: Error writing local file "P": ... No space left on device
  [os_error_code='28']`.
  """
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    if isinstance(error, OSError) and error.errno in _WRITE_FIXES:
      return error.errno, error.filename
    code = re.search(r"\[os_error_code='(\d+)'\]", str(error))
    if code and int(code.group(1)) in _WRITE_FIXES:
      path = re.search(r'file "([^"]+)"', str(error))
      return int(code.group(1)), path.group(1) if path else None
    error = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
  return None


def write_failure_message(error: BaseException, *, checkpoint_dir: str, what: str) -> str | None:
  """One line naming what failed, the path, the fix and the step a rerun resumes from, if
  `error` is a full disk or an unwritable path (see `storage_error`); None otherwise."""
  found = storage_error(error)
  if found is None:
    return None
  code, path = found
  step = last_complete_step(checkpoint_dir)
  resume = (f"step {step}, the last complete checkpoint" if step is not None
            else "step 0 (no checkpoint was completed)")
  workdir = fs.parent(fs.absolute(checkpoint_dir))
  where = f" ({path})" if path and path not in what else ""
  return (f"cannot write {what}: {os.strerror(code)}{where}; {_WRITE_FIXES[code]} (or copy "
          f"{workdir} to a disk that has room and is writable, and pass the copy as --workdir), "
          f"then rerun the same command: it resumes from {resume}")
