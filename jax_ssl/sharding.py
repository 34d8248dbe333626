"""Mesh, axis names and shardings: the one place that knows them (the multi-process start
is distributed.py).

Every array that crosses the jit boundary is a *global* `jax.Array`: the batch is sharded
over the `data` axis, the train state is replicated (`config.sharding="replicated"`) or, with
`"fsdp"`, its large arrays are split over the devices (`state_shardings`). Losses computed
under `jax.jit` on a global batch therefore see every device's (and every host's) examples,
so statistics such as the NT-Xent negatives or BatchNorm moments are global without any
hand-written collective; with FSDP, XLA gathers each sharded parameter where the step uses
it and reduce-scatters its gradient (the step itself is unchanged). `DevicePrefetch` moves
the next batches to the devices while a step runs.

Meshes (`make_mesh(shape=config.mesh_shape)`): `()` is one `data` axis over all devices
(FSDP then shards over `data`, as big_vision's `fsdp(axis="data")`); `(data, fsdp)` is a 2-D
mesh whose batch is split over both axes and whose state is sharded over `fsdp` only and
replicated over `data` (hybrid sharding: maxtext's `dcn_data_parallelism` x
`ici_fsdp_parallelism`; `jax.make_mesh` puts the last axis on the fastest interconnect).
"""

from __future__ import annotations

import collections
import copy
import json
import math
from typing import Any, Iterator, Sequence

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"
# The second axis of a 2-D mesh (`config.mesh_shape = (data, fsdp)`): the state is sharded over it.
FSDP_AXIS = "fsdp"
# `config.sharding`: every device holds the whole train state, or FSDP (`state_shardings`).
SHARDINGS = ("replicated", "fsdp")
# Arrays of at most this many bytes stay replicated under FSDP: a bias or a norm scale costs
# more as a collective than as memory. big_vision's `fsdp` rule uses 4 MiB
# (min_size_to_shard_mb=4, compared with <=), which would leave ViT-L's 1024 x 1024
# attention kernels (exactly 4 MiB) replicated: MAE ViT-L's state would shrink 2.5x on 64
# chips instead of ~60x. 64 KiB shards every kernel of a ViT-S or larger.
FSDP_MIN_BYTES = 64 * 2**10

# Global batches transferred to the devices ahead of the step that consumes them.
DEVICE_PREFETCH_BATCHES = 2


def make_mesh(num_devices: int | None = None, shape: Sequence[int] = ()) -> Mesh:
  """A 1-D mesh over all (global) devices with the `data` axis; with `shape` = (data, fsdp)
  (`config.mesh_shape`, see `resolve_mesh_shape`) a 2-D mesh with the `data` and `fsdp` axes."""
  num_devices = num_devices or jax.device_count()
  if not shape:
    return jax.make_mesh((num_devices,), (DATA_AXIS,), axis_types=(AxisType.Auto,))
  return jax.make_mesh(resolve_mesh_shape(shape, num_devices), (DATA_AXIS, FSDP_AXIS),
                       axis_types=(AxisType.Auto,) * 2)


def resolve_mesh_shape(shape: Sequence[int], device_count: int) -> tuple[int, ...]:
  """`config.mesh_shape` -> the mesh's axis sizes: () is (device_count,); (data, fsdp) may
  hold one -1, the devices left (big_vision's `("data", -1)`). Raises ValueError (one line
  naming the fix) unless the sizes multiply to the device count."""
  shape = tuple(shape)
  if not shape:
    return (device_count,)
  divisors = [d for d in range(1, device_count + 1) if device_count % d == 0]
  fix = (f"use (data, fsdp) sizes whose product is {device_count}, e.g. (1, {device_count}) "
         f"or ({device_count // divisors[len(divisors) // 2]}, {divisors[len(divisors) // 2]}) "
         f"(-1 for one of them: the devices left), or () for one data axis")
  if (len(shape) != 2 or not all(isinstance(s, int) and (s >= 1 or s == -1) for s in shape)
      or shape.count(-1) > 1):
    raise ValueError(f"mesh_shape={shape} is not a (data, fsdp) pair of sizes; {fix}")
  known = math.prod(s for s in shape if s != -1)
  if device_count % known:
    raise ValueError(f"mesh_shape={shape} does not divide the {device_count} devices; {fix}")
  resolved = tuple(device_count // known if s == -1 else s for s in shape)
  if math.prod(resolved) != device_count:
    raise ValueError(f"mesh_shape={shape} covers {math.prod(resolved)} of the {device_count} "
                     f"devices; {fix}")
  return resolved


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) dimension split over every device: the `data` axis, or both axes of a
  2-D mesh (each device holds B / devices examples either way)."""
  if mesh.axis_names == (DATA_AXIS,):
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))
  return NamedSharding(mesh, PartitionSpec(tuple(mesh.axis_names)))


def fsdp_axis(mesh: Mesh) -> str:
  """The mesh axis FSDP shards the state over: `fsdp` in a 2-D mesh, else `data`."""
  return FSDP_AXIS if FSDP_AXIS in mesh.axis_names else DATA_AXIS


def fsdp_spec(shape: Sequence[int], itemsize: int, axis: str, axis_size: int,
              min_bytes: int = FSDP_MIN_BYTES) -> PartitionSpec:
  """big_vision's `fsdp` sharding rule for one array: its largest dimension divisible by
  `axis_size` split over `axis` (ties: the last such dimension, as big_vision's
  argsort order), if the array is larger than `min_bytes`; otherwise (small, or no
  divisible dimension) replicated, P().

  Reference: big_vision/sharding.py, `shardings.fsdp(axis, min_size_to_shard_mb=4)`.
  """
  if math.prod(shape) * itemsize <= min_bytes:
    return PartitionSpec()
  for i in sorted(range(len(shape)), key=lambda i: (shape[i], i), reverse=True):
    if shape[i] % axis_size == 0:
      return PartitionSpec(*(None,) * i, axis)
  return PartitionSpec()


def tree_shardings(tree, mesh: Mesh, strategy: str, *, min_bytes: int = FSDP_MIN_BYTES):
  """Per-leaf NamedShardings of `tree` (arrays or ShapeDtypeStructs): all replicated, or
  (`strategy="fsdp"`) by `fsdp_spec` over `fsdp_axis(mesh)`."""
  if strategy not in SHARDINGS:
    raise ValueError(f"sharding={strategy!r}; use one of {SHARDINGS}")
  if strategy == "replicated":
    return jax.tree.map(lambda _: replicated(mesh), tree)
  axis = fsdp_axis(mesh)
  return jax.tree.map(lambda x: NamedSharding(mesh, fsdp_spec(
      x.shape, np.dtype(x.dtype).itemsize, axis, mesh.shape[axis], min_bytes)), tree)


def place(tree, shardings):
  """Host values (identical on every process) -> global `jax.Array`s with the per-leaf
  `shardings` (a matching pytree): each device receives only its shard."""
  def put(x, sharding):
    host = np.asarray(x)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])
  return jax.tree.map(put, tree, shardings)


def bytes_per_device(tree, shardings) -> int:
  """Bytes of `tree` (arrays or ShapeDtypeStructs) each device holds under `shardings`."""
  return sum(math.prod(s.shard_shape(x.shape)) * np.dtype(x.dtype).itemsize
             for x, s in zip(jax.tree.leaves(tree), jax.tree.leaves(shardings)))


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
