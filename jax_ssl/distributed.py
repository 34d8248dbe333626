"""Multi-process start: `jax.distributed` from the flags or the launcher's environment.

One process per host (or per GPU) runs the same command; each must learn the coordinator's
address, the number of processes and its own index before it touches a device. They come
from, field by field, the first source that has them:

1. the flags `--coordinator_address`, `--num_processes`, `--process_id`;
2. `JAX_COORDINATOR_ADDRESS`, `JAX_NUM_PROCESSES`, `JAX_PROCESS_ID`: the documented way for
   any launcher JAX does not know (JAX itself already reads `JAX_COORDINATOR_ADDRESS`,
   `JAX_COORDINATOR_PORT` and `JAX_LOCAL_DEVICE_IDS`, so the names are JAX's own);
3. the launcher that started the process (`LAUNCHERS`, first match):
   - torchrun-style launchers (torchrun, Kubeflow's PyTorchJob, accelerate, ...):
     `MASTER_ADDR`, `MASTER_PORT`, `WORLD_SIZE`, `RANK`, `LOCAL_RANK`, `LOCAL_WORLD_SIZE`;
   - Open MPI's mpirun (JAX's `OmpiCluster`): `OMPI_MCA_orte_hnp_uri` (the launcher's
     address; its job id gives the port), `OMPI_COMM_WORLD_SIZE`/`_RANK`/`_LOCAL_RANK`;
   - SLURM's srun (JAX's `SlurmCluster`): `SLURM_JOB_ID` (the port), `SLURM_STEP_NODELIST`
     (its first host is the coordinator), `SLURM_NTASKS`, `SLURM_PROCID`, `SLURM_LOCALID`;
   Listed before SLURM because they run inside SLURM allocations (`srun torchrun`, mpirun in
   sbatch), where their variables describe the processes and SLURM's the allocation.
4. on a Cloud TPU VM with none of the above: JAX's own detection (`GceTpuCluster` reads the
   pod slice's workers from the GCE metadata server, `GkeTpuCluster` `TPU_WORKER_HOSTNAMES`
   and `TPU_WORKER_ID`), as big_vision and maxtext call `jax.distributed.initialize()`.

The coordinator's port follows JAX (jax/_src/clusters/): `JAX_COORDINATOR_PORT` if set, else
SLURM's 61440 + SLURM_JOB_ID % 4096, Open MPI's 61440 + (job id / 4096) % 4096, torchrun's
MASTER_PORT (MASTER_PORT + 1 when torchrun's agent serves its own store there,
TORCHELASTIC_USE_AGENT_STORE=True), TPU's 8482.

Devices: one process per host takes all its devices. Several processes on one host (a
launcher's local size > 1) take one GPU each, the one numbered by their local rank (JAX's
rule), unless `JAX_LOCAL_DEVICE_IDS` names them or the launcher already bound devices per
process (`CUDA_VISIBLE_DEVICES`/`ROCR_VISIBLE_DEVICES`/`HIP_VISIBLE_DEVICES` set). CPU and
TPU devices ignore these ids.

Without any of this (a laptop, one process, or a launcher's single task) `jax.distributed` is
not started, as before. `initialize` is the only function in jax_ssl that reads `os.environ`
for this: a launcher's variables are its only channel to the process, and the entry points
(train, evaluate) call `initialize` before anything else touches a device; the mapping itself
(`from_environment`) is a pure function of a dict, tested with fake environments.

A two-process imitation of SLURM on one machine (how the tests start it, and the sbatch
script's body under fake variables): SLURM_JOB_ID=<n> SLURM_STEP_NODELIST=localhost
SLURM_NTASKS=2 SLURM_PROCID=<0|1> SLURM_LOCALID=<0|1> (SLURM_STEP_TASKS_PER_NODE=2 optional),
coordinator localhost:61440 + n % 4096 (or JAX_COORDINATOR_PORT).

Stopping together (SIGTERM, preemption): see `interrupts.py`; a started runtime provides JAX's
preemption sync manager that it uses.
"""

from __future__ import annotations

import dataclasses
import os
import re
import socket
from typing import Callable, Mapping, Sequence

from jax_ssl.errors import UserInputError

# Per-process device binding already done by the launcher (or the user).
_VISIBLE_DEVICES = ("CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES")


class DistributedSetupError(UserInputError):
  """The flags and variables do not describe a complete multi-process start."""


@dataclasses.dataclass(frozen=True)
class DistributedArgs:
  """The arguments of `jax.distributed.initialize` and where they came from.

  Attributes:
    coordinator_address: "host:port" of process 0's coordination service; None only with
      `source="Cloud TPU"` (JAX's own detection fills it).
    num_processes: processes in the job (None: JAX's TPU detection).
    process_id: this process's index in [0, num_processes) (None: JAX's TPU detection).
    local_device_ids: the local devices this process takes, None for all of them.
    source: what set them ("flags", "JAX_* variables", "torchrun", "Open MPI", "SLURM",
      "Cloud TPU"; "flags + SLURM" when both contributed), for the start banner.
  """
  coordinator_address: str | None
  num_processes: int | None
  process_id: int | None
  local_device_ids: tuple[int, ...] | None
  source: str


@dataclasses.dataclass(frozen=True)
class _Launch:
  """What one launcher's variables say (any field None: it does not say)."""
  name: str
  coordinator_address: str | None
  num_processes: int
  process_id: int
  local_rank: int | None
  local_size: int | None


def _int(env: Mapping[str, str], name: str) -> int:
  value = env[name]
  try:
    return int(value)
  except ValueError:
    raise DistributedSetupError(f"environment variable {name}={value!r} is not an integer; "
                                f"fix the launcher's settings or unset it") from None


def _optional_int(env: Mapping[str, str], name: str) -> int | None:
  return _int(env, name) if env.get(name, "").strip() else None


def _port(env: Mapping[str, str], default: int) -> int:
  return _optional_int(env, "JAX_COORDINATOR_PORT") or default


def _torchrun(env: Mapping[str, str]) -> _Launch | None:
  if not all(name in env for name in ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK")):
    return None
  # torchrun's elastic agent serves its rendezvous store on MASTER_PORT of the first node
  # and tells the workers so with this variable: the coordinator takes the next port.
  agent_store = env.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() == "true"
  port = _port(env, _int(env, "MASTER_PORT") + int(agent_store))
  return _Launch("torchrun", f"{env['MASTER_ADDR']}:{port}", _int(env, "WORLD_SIZE"),
                 _int(env, "RANK"), _optional_int(env, "LOCAL_RANK"),
                 _optional_int(env, "LOCAL_WORLD_SIZE"))


def _open_mpi(env: Mapping[str, str]) -> _Launch | None:
  """JAX's OmpiCluster: mpirun (Open MPI <= 4) sets OMPI_MCA_orte_hnp_uri, e.g.
  `1531576320.0;tcp://10.96.0.1,10.148.0.1:34911`: the launcher's address and job id.
  Open MPI 5 (PMIx) sets no such variable: the ranks, with JAX_COORDINATOR_ADDRESS."""
  if "OMPI_COMM_WORLD_SIZE" not in env:
    return None
  uri = env.get("OMPI_MCA_orte_hnp_uri")
  if uri is None:
    return _Launch("Open MPI", None, _int(env, "OMPI_COMM_WORLD_SIZE"),
                   _int(env, "OMPI_COMM_WORLD_RANK"),
                   _optional_int(env, "OMPI_COMM_WORLD_LOCAL_RANK"),
                   _optional_int(env, "OMPI_COMM_WORLD_LOCAL_SIZE"))
  address = re.search(r"tcp://(.+?)[,:]|tcp6://\[(.+?)[,\]]", uri)
  job_id = uri.split(".", 1)[0]
  if address is None or not job_id.isdigit():
    raise DistributedSetupError(
        f"cannot read the coordinator from OMPI_MCA_orte_hnp_uri={uri!r}; set "
        f"JAX_COORDINATOR_ADDRESS=host:port (a port free on the rank 0 host)")
  host = next(group for group in address.groups() if group is not None)
  port = _port(env, int(job_id) // 2**12 % 2**12 + (65535 - 2**12 + 1))
  return _Launch("Open MPI", f"{host}:{port}", _int(env, "OMPI_COMM_WORLD_SIZE"),
                 _int(env, "OMPI_COMM_WORLD_RANK"),
                 _optional_int(env, "OMPI_COMM_WORLD_LOCAL_RANK"),
                 _optional_int(env, "OMPI_COMM_WORLD_LOCAL_SIZE"))


def _slurm(env: Mapping[str, str]) -> _Launch | None:
  """JAX's SlurmCluster: inside `srun` (the variables of a job step)."""
  needed = ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS", "SLURM_PROCID",
            "SLURM_LOCALID")
  if not all(name in env for name in needed):
    return None
  port = _port(env, _int(env, "SLURM_JOB_ID") % 2**12 + (65535 - 2**12 + 1))
  return _Launch("SLURM", f"{first_slurm_host(env['SLURM_STEP_NODELIST'])}:{port}",
                 _int(env, "SLURM_NTASKS"), _int(env, "SLURM_PROCID"),
                 _int(env, "SLURM_LOCALID"), _slurm_tasks_on_this_node(env))


def first_slurm_host(node_list: str) -> str:
  """The first host of a SLURM node list: `node001`, `node001,host2`, `node[001-015],host2`,
  `node[001,007-015]` -> node001 (as JAX's SlurmCluster parses it)."""
  head = re.match(r"([^,\[]*)(\[([^\],-]*))?", node_list)
  return head.group(1) + (head.group(3) or "")


def _slurm_tasks_on_this_node(env: Mapping[str, str]) -> int | None:
  """Tasks of this job step on this node: SLURM_STEP_TASKS_PER_NODE (e.g. `2(x3),1`: 2 on
  each of the first 3 nodes, 1 on the fourth) at index SLURM_NODEID."""
  value = env.get("SLURM_STEP_TASKS_PER_NODE") or env.get("SLURM_TASKS_PER_NODE")
  if not value:
    return None
  counts = []
  for part in value.split(","):
    match = re.fullmatch(r"(\d+)(?:\(x(\d+)\))?", part.strip())
    if match is None:
      return None
    counts += [int(match.group(1))] * int(match.group(2) or 1)
  node = _optional_int(env, "SLURM_NODEID") or 0
  return counts[node] if node < len(counts) else None


# Checked in this order; the first whose variables are present describes the processes.
LAUNCHERS: tuple[Callable[[Mapping[str, str]], _Launch | None], ...] = (
    _torchrun, _open_mpi, _slurm)


def from_environment(env: Mapping[str, str], *, coordinator_address: str | None = None,
                     num_processes: int | None = None, process_id: int | None = None,
                     on_cloud_tpu: bool = False) -> DistributedArgs | None:
  """The `jax.distributed.initialize` arguments for this process, or None: one process, do
  not start the distributed runtime.

  Args:
    env: the environment (os.environ; a dict in tests).
    coordinator_address, num_processes, process_id: the flags (None: not given); each wins
      over the variables.
    on_cloud_tpu: the process runs on a Cloud TPU VM (JAX's detection then fills what is
      missing).

  Raises:
    DistributedSetupError: the flags and variables name some fields but not all of them, or
      a variable is not a number.
  """
  flags = {"coordinator_address": coordinator_address or None, "num_processes": num_processes,
           "process_id": process_id}
  variables = {"coordinator_address": env.get("JAX_COORDINATOR_ADDRESS") or None,
               "num_processes": _optional_int(env, "JAX_NUM_PROCESSES"),
               "process_id": _optional_int(env, "JAX_PROCESS_ID")}
  launch = next((found for found in (launcher(env) for launcher in LAUNCHERS) if found), None)
  chosen, chosen_from = {}, {}
  for field in flags:
    for name, values in (("flags", flags), ("JAX_* variables", variables),
                         (launch and launch.name, launch and dataclasses.asdict(launch))):
      if values and values.get(field) is not None:
        chosen[field], chosen_from[field] = values[field], name
        break
  sources = [name for name in ("flags", "JAX_* variables", launch and launch.name)
             if name in chosen_from.values()]
  if not chosen and launch is None:
    return (DistributedArgs(None, None, None, None, "Cloud TPU") if on_cloud_tpu else None)
  if chosen.get("num_processes") == 1 and launch and chosen_from["num_processes"] == launch.name:
    return None  # a launcher's single task (an `srun -n1`, a 1-GPU torchrun): one process
  missing = [field for field in flags if field not in chosen]
  if missing and on_cloud_tpu:
    return DistributedArgs(chosen.get("coordinator_address"), chosen.get("num_processes"),
                           chosen.get("process_id"), None, " + ".join(sources + ["Cloud TPU"]))
  if missing:
    raise DistributedSetupError(
        f"a multi-process start needs the coordinator's address, the number of processes and "
        f"this process's index; missing: {', '.join(_FLAG_OR_VARIABLE[f] for f in missing)} "
        f"(the rest came from {' and '.join(sources)}); pass {'it' if len(missing) == 1 else 'them'} "
        f"too, or start the processes with SLURM's srun, mpirun or torchrun (docs/launch.md)")
  if not 0 <= chosen["process_id"] < chosen["num_processes"]:
    raise DistributedSetupError(
        f"process index {chosen['process_id']} is not in [0, {chosen['num_processes']}) "
        f"(from {' + '.join(sources)}); give each process an index below the process count")
  return DistributedArgs(chosen["coordinator_address"], chosen["num_processes"],
                         chosen["process_id"], _local_device_ids(env, launch),
                         " + ".join(sources))


_FLAG_OR_VARIABLE = {
    "coordinator_address": "--coordinator_address (or JAX_COORDINATOR_ADDRESS)",
    "num_processes": "--num_processes (or JAX_NUM_PROCESSES)",
    "process_id": "--process_id (or JAX_PROCESS_ID)",
}


def _local_device_ids(env: Mapping[str, str], launch: _Launch | None) -> tuple[int, ...] | None:
  """None (all local devices) unless JAX_LOCAL_DEVICE_IDS names them, or several processes of
  a launcher share this host without a per-process binding: then the local rank's GPU
  (JAX's `local_device_ids = [local process id]`, which it applies even to one process
  per node; here one process per node keeps all its GPUs)."""
  if env.get("JAX_LOCAL_DEVICE_IDS", "").strip():
    try:
      return tuple(int(i) for i in env["JAX_LOCAL_DEVICE_IDS"].split(","))
    except ValueError:
      raise DistributedSetupError(
          f"JAX_LOCAL_DEVICE_IDS={env['JAX_LOCAL_DEVICE_IDS']!r} is not a comma-separated list "
          f"of device numbers, e.g. 0,1,2,3") from None
  if launch is None or launch.local_rank is None or any(name in env for name in _VISIBLE_DEVICES):
    return None
  if launch.local_size is not None and launch.local_size <= 1:
    return None
  return (launch.local_rank,)


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None) -> DistributedArgs | None:
  """Starts `jax.distributed` as the flags and this process's environment say (see the
  module docstring) and prints this process's start banner; does nothing for one process.
  Call it before anything touches a device. Returns the arguments used (None: one process).

  The one place that reads os.environ for the multi-process start (launcher variables are
  the launcher's only channel to the process).

  Raises:
    DistributedSetupError (one line) for an incomplete or inconsistent description.
  """
  import jax  # pylint: disable=g-import-not-at-top
  from jax._src import cloud_tpu_init  # pylint: disable=g-import-not-at-top
  if jax.distributed.is_initialized():  # a second entry point in the same process (tests)
    return None
  args = from_environment(os.environ, coordinator_address=coordinator_address,
                          num_processes=num_processes, process_id=process_id,
                          on_cloud_tpu=cloud_tpu_init.running_in_cloud_tpu_vm)
  if args is None:
    return None
  if args.source.endswith("Cloud TPU"):
    try:  # JAX's detection from the TPU VM's metadata; a single host gets one process
      jax.distributed.initialize(args.coordinator_address, args.num_processes, args.process_id)
    except ValueError as e:  # JAX found no TPU pod: one process
      if args.source != "Cloud TPU":
        raise DistributedSetupError(f"{e} (JAX found no TPU pod slice to fill it in)") from None
      return None
  else:
    # Everything is resolved here: no second detection by JAX (which would, e.g., restrict a
    # one-process-per-node SLURM task to the GPU numbered SLURM_LOCALID).
    jax.distributed.initialize(args.coordinator_address, args.num_processes, args.process_id,
                               local_device_ids=(list(args.local_device_ids)
                                                 if args.local_device_ids else None),
                               cluster_detection_method="deactivate")
  print(start_banner(args), flush=True)
  return args


def start_banner(args: DistributedArgs) -> str:
  """One line naming this process, its host, its devices and the whole job, e.g.
  `process 1 of 2 (host n2, pid 7): 4 local cpu devices [4-7] of 8 in all; coordinator
  n1:61497 (from SLURM)`."""
  import jax  # pylint: disable=g-import-not-at-top
  local = jax.local_devices()
  coordinator = args.coordinator_address
  if coordinator is None:  # JAX's TPU detection chose it; jax.distributed does not expose it
    from jax._src import distributed as jax_distributed  # pylint: disable=g-import-not-at-top
    coordinator = jax_distributed.global_state.coordinator_address
  return (f"process {jax.process_index()} of {jax.process_count()} (host "
          f"{socket.gethostname()}, pid {os.getpid()}): {len(local)} local "
          f"{local[0].platform} devices [{_ranges([d.id for d in local])}] of "
          f"{jax.device_count()} in all; coordinator {coordinator} (from {args.source})")


def _ranges(ids: Sequence[int]) -> str:
  """[0, 1, 2, 3, 8] -> "0-3,8"."""
  parts, ids = [], sorted(ids)
  start = previous = ids[0]
  for i in [*ids[1:], None]:
    if i is not None and i == previous + 1:
      previous = i
      continue
    parts.append(str(start) if start == previous else f"{start}-{previous}")
    if i is not None:
      start = previous = i
  return ",".join(parts)


def preemption_sync_point() -> Callable[[int], bool] | None:
  """JAX's preemption sync point (`multihost_utils.reached_preemption_sync_point`) when
  several processes run and the coordination service provides it; None otherwise (one
  process: a signal stops it alone, interrupts.py)."""
  import jax  # pylint: disable=g-import-not-at-top
  if jax.process_count() == 1:
    return None
  from absl import logging  # pylint: disable=g-import-not-at-top
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  try:  # step 0: the count every process starts with, so asking changes nothing
    multihost_utils.reached_preemption_sync_point(0)
  except RuntimeError:  # jax_enable_preemption_service is off (Orbax's test, too)
    logging.warning("jax_enable_preemption_service is off: a SIGTERM or SIGINT stops only the "
                    "process that gets it, and the others wait for it in their next step")
    return None
  return multihost_utils.reached_preemption_sync_point
