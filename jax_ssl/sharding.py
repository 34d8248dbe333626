"""Mesh, axis names, shardings and multi-host initialisation: the one place that knows them.

Every array that crosses the jit boundary is a *global* `jax.Array`: the batch is sharded
over the `data` axis, the train state is replicated. Losses computed under `jax.jit` on a
global batch therefore see every device's (and every host's) examples, so statistics such
as the NT-Xent negatives or BatchNorm moments are global without any hand-written
collective. `DevicePrefetch` moves the next batches to the devices while a step runs.
"""

from __future__ import annotations

import collections
import copy
import json
from typing import Any, Iterator

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"

# Global batches transferred to the devices ahead of the step that consumes them.
DEVICE_PREFETCH_BATCHES = 2


def initialize_distributed(coordinator_address: str | None, num_processes: int | None,
                           process_id: int | None) -> None:
  """Starts JAX's multi-controller runtime when a coordinator is given (no-op otherwise)."""
  if not coordinator_address:
    return
  jax.distributed.initialize(coordinator_address=coordinator_address,
                             num_processes=num_processes, process_id=process_id)


def make_mesh(num_devices: int | None = None) -> Mesh:
  """A 1-D mesh over all (global) devices with the `data` axis."""
  num_devices = num_devices or jax.device_count()
  return jax.make_mesh((num_devices,), (DATA_AXIS,), axis_types=(AxisType.Auto,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) dimension split over the `data` axis."""
  return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def local_batch_size(global_batch_size: int) -> int:
  """This process's share of the global batch; the split must be exact."""
  if global_batch_size % jax.device_count():
    raise ValueError(
        f"global_batch_size={global_batch_size} is not divisible by the {jax.device_count()} devices; "
        f"set --config.global_batch_size to a multiple of {jax.device_count()}.")
  return global_batch_size // jax.process_count()


def to_global(local_batch, mesh: Mesh):
  """Process-local numpy batch (a pytree) -> global `jax.Array`s sharded over `data`."""
  sharding = batch_sharding(mesh)
  return jax.tree.map(
      lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), local_batch)


def replicate(tree, mesh: Mesh):
  """Host values (identical on every process) -> replicated global `jax.Array`s."""
  sharding = replicated(mesh)
  return jax.tree.map(
      lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), tree)


class DevicePrefetch:
  """Global batches of a host iterator, `size` of them already on their way to the devices.

  `host_iterator` yields this process's batches (pytrees of numpy arrays [B / processes, ...]);
  each `next` returns the oldest one fetched as global `jax.Array`s [B, ...] sharded over
  `data`, after fetching another and starting its host-to-device copy (`to_global`,
  asynchronous): with JAX's asynchronous dispatch, the copies of the next `size` batches
  overlap the steps the devices are running.

  It stands in for the host iterator in checkpoints (grain's Orbax handler): `get_state` is
  the host iterator's state after the last batch *returned*, not after the last one fetched,
  so the checkpoint of step k resumes at batch k + 1 whatever was prefetched. `set_state`
  (restore) drops the prefetched batches. Single-threaded: it runs in the training loop.
  """

  def __init__(self, host_iterator: Iterator[Any], mesh: Mesh, *,
               size: int = DEVICE_PREFETCH_BATCHES):
    if size < 1:
      raise ValueError(f"device prefetch size={size}; must be >= 1")
    self.host_iterator = host_iterator
    self.mesh = mesh
    self.size = size
    self._queue: collections.deque = collections.deque()  # (global batch, host state after it)
    self._state = None  # the host state after the last returned batch; None: nothing returned

  def __iter__(self) -> DevicePrefetch:
    return self

  def __next__(self):
    while len(self._queue) <= self.size:  # the batch returned now plus `size` in flight
      local = next(self.host_iterator, None)
      if local is None:  # a finite host iterator: return what is left
        break
      self._queue.append((to_global(local, self.mesh), copy.deepcopy(self.host_iterator.get_state())))
    if not self._queue:
      raise StopIteration
    batch, self._state = self._queue.popleft()
    return batch

  def get_state(self) -> bytes:
    """The host iterator's state after the last returned batch, as grain's handler writes it
    (JSON bytes; the same file a checkpoint of the host iterator itself holds)."""
    state = self.host_iterator.get_state() if self._state is None else self._state
    return state if isinstance(state, bytes) else json.dumps(state, indent=4).encode()

  def set_state(self, state: bytes | dict) -> None:
    import grain  # pylint: disable=g-import-not-at-top
    if isinstance(state, bytes) and isinstance(self.host_iterator, grain.DatasetIterator):
      state = json.loads(state)
    self._queue.clear()
    self._state = None
    self.host_iterator.set_state(state)

  def start_prefetch(self) -> None:
    """Called by grain's handler after a restore."""
    if hasattr(self.host_iterator, "start_prefetch"):
      self.host_iterator.start_prefetch()
