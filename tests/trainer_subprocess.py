"""Helpers to run the trainer as a real subprocess, as users and schedulers do."""

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile

import jax
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HARNESS = os.path.join(ROOT, "tests", "harness", "run_trainer.py")

# One persistent XLA compilation cache per test process, shared by the trainer processes it
# starts: a rerun after a kill loads the executables its first run compiled (as a preempted
# job with `JAX_COMPILATION_CACHE_DIR` set would) instead of compiling them again. The same
# program either way, so exactness checks are unaffected; in-process tests never use it (the
# compile counter of test_train.py counts real compilations).
# Made on first use, not at import: grain's worker processes import test modules (spawn) and
# end with os._exit, past atexit, so a directory made at import outlived each of them.
_CACHE = []


def compilation_cache() -> str:
  """This test process's compilation cache directory (made once, removed at exit)."""
  if not _CACHE:
    _CACHE.append(tempfile.mkdtemp(prefix="jax_ssl_test_compilation_cache_"))
    atexit.register(shutil.rmtree, _CACHE[0], ignore_errors=True)
  return _CACHE[0]

TINY_OVERRIDES = {
    "model.width": 4, "heads.projector_hidden_dim": 16, "heads.projector_output_dim": 8,
    "global_batch_size": 32, "log_every_steps": 1, "evaluate": False,
}


def trainer_args(workdir, source_dir, data_dir, experiment="fashion_mnist/simclr.py", **overrides):
  flags = {**TINY_OVERRIDES, "dataset.source_dir": source_dir, "dataset.data_dir": data_dir, **overrides}
  return ["--config", os.path.join(ROOT, f"experiments/{experiment}:runlocal"),
          "--workdir", str(workdir)] + [f"--config.{k}={v}" for k, v in flags.items()]


def run(args, *, devices=8, extra_env=None, harness_flags=(), timeout=600, check=True, wait=True):
  env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices} "
                                   f"--xla_backend_optimization_level=0",  # as conftest
         "JAX_PLATFORMS": "cpu", "PYTHONPATH": ROOT, "JAX_COMPILATION_CACHE_DIR": compilation_cache(),
         "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", **(extra_env or {})}
  command = [sys.executable, HARNESS, *harness_flags, *args]
  if not wait:
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
  if check and proc.returncode != 0:
    raise AssertionError(f"trainer exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
  return proc


def losses(workdir):
  """{step: loss} from metrics.jsonl (asserting each step is logged once)."""
  records = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
  steps = [r["step"] for r in records]
  assert len(steps) == len(set(steps)), f"duplicated steps in metrics.jsonl: {steps}"
  return {r["step"]: r["loss"] for r in records}


def final_params(workdir, field="params"):
  """`field` of the latest checkpoint's TrainState (default: the parameters) as a flat
  {path: numpy array}."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  directory = os.path.join(workdir, "checkpoints")
  step = max(int(d) for d in os.listdir(directory) if d.isdigit())
  path = os.path.join(directory, str(step), "state")
  checkpointer = ocp.PyTreeCheckpointer()
  metadata = checkpointer.metadata(path).item_metadata.tree
  as_numpy = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), metadata)
  tree = checkpointer.restore(path, args=ocp.args.PyTreeRestore(restore_args=as_numpy))
  flat = {}
  def visit(prefix, node):
    if isinstance(node, dict):
      for k, v in node.items():
        visit(f"{prefix}/{k}", v)
    else:
      flat[prefix] = np.asarray(node)
  visit("", tree[field])
  return step, flat
