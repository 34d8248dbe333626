"""Multi-process start from the launcher's environment (jax_ssl/distributed.py).

The mapping environment -> `jax.distributed.initialize` arguments is checked on fake
environments (SLURM, Open MPI, torchrun-style, JAX_* variables, none, flags winning), with
JAX's own cluster classes as the reference for the coordinator addresses. The real start (2
trainer processes x 4 CPU devices from fake SLURM variables alone, both start banners, the
losses of a 1-process 8-device run) is the first half of tests/test_interrupts.py:
a separate uninterrupted run would cost the suite another three trainer processes (~25 s of
CPU) for no check that one lacks.
"""

import re

import jax
import pytest
from jax._src.clusters import OmpiCluster, SlurmCluster

from jax_ssl import distributed
from jax_ssl.distributed import DistributedArgs, DistributedSetupError, from_environment

SLURM_TWO_TASKS = {"SLURM_JOB_ID": "123456", "SLURM_STEP_NODELIST": "localhost",
                   "SLURM_NTASKS": "2", "SLURM_PROCID": "1", "SLURM_LOCALID": "1",
                   "SLURM_STEP_TASKS_PER_NODE": "2", "SLURM_NODEID": "0"}
SLURM_PORT = 61440 + 123456 % 4096  # JAX's rule: the ephemeral range's last 4096 ports


def test_no_launcher_and_no_flags_is_one_process():
  assert from_environment({}) is None
  assert from_environment({"HOME": "/root", "PATH": "/bin", "CUDA_VISIBLE_DEVICES": "0"}) is None
  # A launcher's single task (srun -n1, a 1-GPU torchrun) is one process too.
  assert from_environment({**SLURM_TWO_TASKS, "SLURM_NTASKS": "1", "SLURM_PROCID": "0"}) is None
  assert from_environment({"MASTER_ADDR": "h", "MASTER_PORT": "1", "WORLD_SIZE": "1",
                           "RANK": "0"}) is None
  # sbatch's batch shell has the allocation's variables but no job step's: not a process group.
  assert from_environment({k: v for k, v in SLURM_TWO_TASKS.items()
                           if k != "SLURM_STEP_NODELIST"}) is None


def test_single_process_never_calls_jax_distributed(monkeypatch):
  for name in ("SLURM_JOB_ID", "OMPI_MCA_orte_hnp_uri", "MASTER_ADDR", "JAX_COORDINATOR_ADDRESS",
               "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
    monkeypatch.delenv(name, raising=False)
  monkeypatch.setattr(jax.distributed, "initialize",
                      lambda *a, **k: pytest.fail("jax.distributed.initialize was called"))
  assert distributed.initialize() is None


def test_initialize_passes_what_it_resolved_and_prints_the_banner(monkeypatch, capsys):
  for name in ("OMPI_MCA_orte_hnp_uri", "OMPI_COMM_WORLD_SIZE", "MASTER_ADDR",
               "JAX_COORDINATOR_ADDRESS", "JAX_LOCAL_DEVICE_IDS", "CUDA_VISIBLE_DEVICES"):
    monkeypatch.delenv(name, raising=False)
  for name, value in SLURM_TWO_TASKS.items():
    monkeypatch.setenv(name, value)
  calls = []
  monkeypatch.setattr(jax.distributed, "initialize", lambda *a, **k: calls.append((a, k)))
  monkeypatch.setattr(jax.distributed, "is_initialized", lambda: False)
  distributed.initialize(process_id=0)  # the flag wins over SLURM_PROCID
  # No second detection by JAX: it would narrow one task per node to one GPU.
  assert calls == [((f"localhost:{SLURM_PORT}", 2, 0),
                    {"local_device_ids": [1], "cluster_detection_method": "deactivate"})]
  assert re.fullmatch(rf"process 0 of 1 \(host [^,]+, pid \d+\): 8 local cpu devices \[0-7\] of "
                      rf"8 in all; coordinator localhost:{SLURM_PORT} \(from flags \+ SLURM\)\n",
                      capsys.readouterr().out)


def test_slurm_variables_as_jax_reads_them(monkeypatch):
  args = from_environment(SLURM_TWO_TASKS)
  assert args == DistributedArgs(f"localhost:{SLURM_PORT}", 2, 1, (1,), "SLURM")
  for name, value in SLURM_TWO_TASKS.items():
    monkeypatch.setenv(name, value)
  assert args.coordinator_address == SlurmCluster.get_coordinator_address(None, None)
  for node_list in ("node001", "node001,host2", "node[001-015],host2", "node[001,007-015]"):
    monkeypatch.setenv("SLURM_STEP_NODELIST", node_list)
    expected = SlurmCluster.get_coordinator_address(None, None)
    assert from_environment({**SLURM_TWO_TASKS, "SLURM_STEP_NODELIST": node_list}
                            ).coordinator_address == expected == f"node001:{SLURM_PORT}"
  # JAX's port override.
  assert from_environment({**SLURM_TWO_TASKS, "JAX_COORDINATOR_PORT": "7777"}
                          ).coordinator_address == "localhost:7777"


def test_local_devices_one_gpu_per_task_only_when_tasks_share_a_node():
  # One task per node (2 nodes): all of the node's GPUs, unlike JAX's [SLURM_LOCALID].
  one_per_node = {**SLURM_TWO_TASKS, "SLURM_LOCALID": "0", "SLURM_NODEID": "1",
                  "SLURM_STEP_TASKS_PER_NODE": "1(x2)"}
  assert from_environment(one_per_node).local_device_ids is None
  assert from_environment({**one_per_node, "SLURM_STEP_TASKS_PER_NODE": "3,1"}
                          ).local_device_ids is None
  assert from_environment({**one_per_node, "SLURM_STEP_TASKS_PER_NODE": "1,3",
                           "SLURM_LOCALID": "2"}).local_device_ids == (2,)
  # Devices already bound per task by the launcher, or named by JAX's own variable.
  assert from_environment({**SLURM_TWO_TASKS, "CUDA_VISIBLE_DEVICES": "5"}).local_device_ids is None
  assert from_environment({**SLURM_TWO_TASKS, "JAX_LOCAL_DEVICE_IDS": "0,1,2,3"}
                          ).local_device_ids == (0, 1, 2, 3)


def test_open_mpi_variables_as_jax_reads_them(monkeypatch):
  env = {"OMPI_MCA_orte_hnp_uri": "1531576320.0;tcp://10.96.0.1,10.148.0.1:34911",
         "OMPI_COMM_WORLD_SIZE": "16", "OMPI_COMM_WORLD_RANK": "9",
         "OMPI_COMM_WORLD_LOCAL_RANK": "1", "OMPI_COMM_WORLD_LOCAL_SIZE": "8"}
  for name, value in env.items():
    monkeypatch.setenv(name, value)
  args = from_environment(env)
  assert args.coordinator_address == OmpiCluster.get_coordinator_address(None, None)
  assert args == DistributedArgs(args.coordinator_address, 16, 9, (1,), "Open MPI")
  assert args.coordinator_address.startswith("10.96.0.1:")
  # mpirun inside a SLURM allocation: Open MPI's ranks describe the processes.
  assert from_environment({**SLURM_TWO_TASKS, **env}).source == "Open MPI"


def test_torchrun_style_variables():
  env = {"MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500", "WORLD_SIZE": "8", "RANK": "3",
         "LOCAL_RANK": "3", "LOCAL_WORLD_SIZE": "4"}
  assert from_environment(env) == DistributedArgs("10.0.0.1:29500", 8, 3, (3,), "torchrun")
  # torchrun's agent serves its store on MASTER_PORT: the coordinator takes the next port.
  assert from_environment({**env, "TORCHELASTIC_USE_AGENT_STORE": "True"}
                          ).coordinator_address == "10.0.0.1:29501"
  # One process per node (a Kubernetes PyTorchJob pod): all local devices.
  assert from_environment({**env, "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1"}).local_device_ids is None
  # `srun torchrun ...`: torchrun's workers, not SLURM's tasks.
  assert from_environment({**SLURM_TWO_TASKS, **env}).process_id == 3


def test_jax_variables_and_flags_win_field_by_field():
  jax_vars = {"JAX_COORDINATOR_ADDRESS": "head:1234", "JAX_NUM_PROCESSES": "4",
              "JAX_PROCESS_ID": "2"}
  assert from_environment(jax_vars) == DistributedArgs("head:1234", 4, 2, None, "JAX_* variables")
  assert from_environment({**SLURM_TWO_TASKS, **jax_vars}).source == "JAX_* variables"
  flags = {"coordinator_address": "flag-host:99", "num_processes": 3, "process_id": 0}
  assert from_environment({**SLURM_TWO_TASKS, **jax_vars}, **flags) == DistributedArgs(
      "flag-host:99", 3, 0, (1,), "flags")
  # A flag for one field, the rest from SLURM.
  assert from_environment(SLURM_TWO_TASKS, coordinator_address="flag-host:99") == DistributedArgs(
      "flag-host:99", 2, 1, (1,), "flags + SLURM")
  # Open MPI 5 has no OMPI_MCA_orte_hnp_uri: the address from JAX's variable, ranks from mpirun.
  open_mpi_5 = {"OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "1"}
  assert from_environment({**open_mpi_5, "JAX_COORDINATOR_ADDRESS": "head:1234"}) == (
      DistributedArgs("head:1234", 2, 1, None, "JAX_* variables + Open MPI"))
  with pytest.raises(DistributedSetupError, match=r"missing: --coordinator_address \(or JAX_"
                     r"COORDINATOR_ADDRESS\) \(the rest came from Open MPI\)"):
    from_environment(open_mpi_5)


def test_incomplete_or_bad_descriptions_are_one_line_errors():
  with pytest.raises(DistributedSetupError) as info:
    from_environment({}, coordinator_address="host:1234")
  assert str(info.value) == (
      "a multi-process start needs the coordinator's address, the number of processes and this "
      "process's index; missing: --num_processes (or JAX_NUM_PROCESSES), --process_id (or "
      "JAX_PROCESS_ID) (the rest came from flags); pass them too, or start the processes with "
      "SLURM's srun, mpirun or torchrun (docs/launch.md)")
  with pytest.raises(DistributedSetupError, match=r"SLURM_NTASKS='two' is not an integer"):
    from_environment({**SLURM_TWO_TASKS, "SLURM_NTASKS": "two"})
  with pytest.raises(DistributedSetupError, match=r"process index 2 is not in \[0, 2\)"):
    from_environment(SLURM_TWO_TASKS, process_id=2)
  # A Cloud TPU VM: JAX's own detection fills what is missing.
  assert from_environment({}, on_cloud_tpu=True) == DistributedArgs(None, None, None, None,
                                                                    "Cloud TPU")
