"""Mesh, axis names, shardings and multi-host initialisation: the one place that knows them.

Every array that crosses the jit boundary is a *global* `jax.Array`: the batch is sharded
over the `data` axis, the train state is replicated. Losses computed under `jax.jit` on a
global batch therefore see every device's (and every host's) examples, so statistics such
as the NT-Xent negatives or BatchNorm moments are global without any hand-written
collective.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


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
