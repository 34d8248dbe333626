r"""The one trainer: `python -m jax_ssl.train --config experiments/<file>.py[:arg] --workdir DIR`.

Sections, in order: config, mesh, data, state, step, loop, evaluation. Every method runs
through this file unchanged; a method only contributes its spec (jax_ssl/methods/).
Rerunning the same command with the same --workdir resumes from the latest checkpoint;
SIGTERM saves a checkpoint and exits 0.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from typing import Any

from absl import app, flags, logging
import jax
import ml_collections
import numpy as np
from ml_collections import config_flags

from jax_ssl import checkpoint, sharding
from jax_ssl import config as config_lib
from jax_ssl import methods
from jax_ssl.data import pipeline
from jax_ssl.errors import DataError, NonFiniteError, StorageError, UserInputError
from jax_ssl.state import create_train_state, split_model
from jax_ssl.step import make_train_step

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment file (path[:arg]).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory (shared by all processes).")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "host:port of process 0 (multi-host).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Number of processes (multi-host).")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index (multi-host).")


class MetricWriter:
  """metrics.jsonl + TensorBoard; only process 0 writes."""

  def __init__(self, workdir: str, resume_step: int):
    self.active = jax.process_index() == 0
    self.path = os.path.join(workdir, "metrics.jsonl")
    self.last_elapsed = 0.0
    self.tensorboard = None
    if not self.active:
      return
    # A killed run may have logged steps after its last checkpoint: drop them, the resumed
    # run logs them again.
    kept = []
    if os.path.exists(self.path):
      with open(self.path) as f:
        kept = [line for line in f if line.strip() and json.loads(line)["step"] <= resume_step]
      if kept:
        self.last_elapsed = json.loads(kept[-1]).get("train_seconds", 0.0)
    with open(self.path, "w") as f:
      f.writelines(kept)
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
    self.tensorboard = SummaryWriter(os.path.join(workdir, "tensorboard"))

  def write(self, step: int, metrics: dict[str, float]) -> None:
    if not self.active:
      return
    with open(self.path, "a") as f:
      f.write(json.dumps({"step": step, **metrics}) + "\n")
    for key, value in metrics.items():
      self.tensorboard.add_scalar(key, value, step)

  def close(self) -> None:
    if self.tensorboard is not None:
      try:
        self.tensorboard.close()
      except OSError as e:  # full disk: the error that stopped the run is the one to report
        logging.warning("TensorBoard events not flushed: %s", e)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Pretrains (resuming if `workdir` has checkpoints) and, if `config.evaluate`, evaluates.

  Returns a summary: {"step", "train_seconds", "results" (or None), "preempted"}.
  """
  # ---------------------------------------------------------------- config
  config_lib.validate(config, jax.device_count())
  spec = methods.get_method(config.method)
  _check_writable(workdir)
  config_lib.check_resume_compatible(config, workdir)
  if jax.process_index() == 0:
    with open(os.path.join(workdir, "config.json"), "w") as f:
      f.write(config.to_json(indent=2))

  # ---------------------------------------------------------------- mesh
  mesh = sharding.make_mesh()
  replicated = sharding.replicated(mesh)
  batch_sharding = sharding.batch_sharding(mesh)

  # ---------------------------------------------------------------- data
  data = config.dataset
  if jax.process_index() == 0:
    pipeline.prepare(data.name, data_dir=data.data_dir, source_dir=data.source_dir)
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices("dataset prepared")
  info = pipeline.dataset_info(data.name, data_dir=data.data_dir)
  in_channels = info.features["image"].shape[-1]
  image_shape = info.features["image"].shape
  if None not in image_shape[:2]:  # variable-size datasets are resized to dataset.image_size
    config_lib.validate_against_data(config, image_shape)
  source = pipeline.load_source(data.name, data.train_split, data_dir=data.data_dir)
  data_iterator = pipeline.train_iterator(
      source, local_batch_size=sharding.local_batch_size(config.global_batch_size),
      seed=config.seed, process_index=jax.process_index(),
      process_count=jax.process_count(), image_size=data.image_size,
      read_threads=data.read_threads)

  # ---------------------------------------------------------------- state
  num_classes = info.features["label"].num_classes if "label" in info.features else None
  model = config_lib.build_model(config, in_channels, config.seed, num_classes=num_classes)
  optimizer, schedule = config_lib.build_optimizer(config)
  graphdef, state = create_train_state(model, optimizer, config_lib.init_method_state(config),
                                       spec.target_modules)
  state = sharding.replicate(state, mesh)
  checkpointer = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"),
                                         keep=config.keep_checkpoints,
                                         save_every_steps=config.checkpoint_every_steps)
  start_step, restored = checkpointer.restore_latest(
      checkpoint.abstract_like(state, replicated), data_iterator)
  if restored is not None:
    state = restored
    logging.info("Resumed from step %d.", start_step)

  # ---------------------------------------------------------------- step
  train_step = jax.jit(
      make_train_step(graphdef, spec, config_lib.method_args(config), optimizer, schedule,
                      config_lib.view_configs(config), total_steps=config.total_steps,
                      grad_accum_steps=config.grad_accum_steps,
                      online_probe=config.online_probe),
      in_shardings=(replicated, batch_sharding, replicated),
      out_shardings=(replicated, replicated),
      donate_argnums=(0,))
  rng = sharding.replicate(jax.random.key_data(jax.random.key(config.seed)), mesh)

  # ---------------------------------------------------------------- loop
  preempted = []
  previous_handler = signal.signal(signal.SIGTERM, lambda *_: preempted.append(True))
  writer = MetricWriter(workdir, start_step)
  progress = _progress_bar(config.total_steps, start_step)
  train_seconds = writer.last_elapsed
  interval_start, interval_steps = time.perf_counter(), 0
  step = start_step
  skipped = 0
  # Compiled once, ahead of time, on the first batch: the executable accepts only these shapes
  # and shardings, so a step can never recompile silently (it would raise instead).
  compiled_step, compile_seconds, data_wait = None, None, 0.0
  try:
    while step < config.total_steps and not preempted:
      wait_start = time.perf_counter()  # the previous step has finished (nonfinite check)
      batch = sharding.to_global(next(data_iterator), mesh)
      inputs = {"image": batch["image"]}
      if config.online_probe:  # labels reach only the probe head (step.online_probe_loss)
        inputs["label"] = batch["label"]
      data_wait += time.perf_counter() - wait_start
      if compiled_step is None:
        compile_start = time.perf_counter()
        compiled_step = train_step.lower(state, inputs, rng).compile()
        compile_seconds = time.perf_counter() - compile_start
      state, metrics = compiled_step(state, inputs, rng)
      step += 1
      interval_steps += 1
      if float(metrics["nonfinite"]):  # one scalar per step: stop before saving anything
        values = {k: float(v) for k, v in jax.device_get(metrics).items()}
        bad = [k for k in ("loss", "grad_norm") if not np.isfinite(values[k])]
        if not config.skip_nonfinite_updates:
          raise NonFiniteError(
              f"non-finite {' and '.join(bad)} ({', '.join(f'{k}={values[k]}' for k in bad)}) at step "
              f"{step}; stopped without saving it: the last checkpoint in {workdir}/checkpoints is intact. "
              f"Lower the learning rate, or set --config.skip_nonfinite_updates=True to skip such steps.")
        skipped += 1
        logging.warning("step %d: non-finite %s; update skipped (%d so far)", step, bad, skipped)
      checkpointer.save(step, state, data_iterator)
      if step % config.log_every_steps == 0 or step == config.total_steps:
        metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
        elapsed = time.perf_counter() - interval_start
        train_seconds += elapsed
        metrics["images_per_second"] = interval_steps * config.global_batch_size / elapsed
        metrics["train_seconds"] = train_seconds
        metrics["skipped_updates"] = skipped
        # Share of the interval the device sat idle waiting for the input pipeline.
        metrics["data_wait_fraction"] = data_wait / elapsed
        if compile_seconds is not None:  # the first record after (re)starting
          metrics["compile_seconds"], compile_seconds = compile_seconds, None
        writer.write(step, metrics)
        progress.update(interval_steps)
        progress.set_postfix(loss=f"{metrics['loss']:.4f}",
                             img_s=f"{metrics['images_per_second']:.0f}")
        if progress.disable and jax.process_index() == 0:
          print(f"step {step}/{config.total_steps} " + " ".join(
              f"{k}={v:.4g}" for k, v in metrics.items()), flush=True)
        interval_start, interval_steps, data_wait = time.perf_counter(), 0, 0.0
    if step not in checkpointer.manager.all_steps():
      # The final state (or the state at SIGTERM) is always saved.
      checkpointer.save(step, state, data_iterator, force=True)
    checkpointer.wait()  # a save that failed in the background raises StorageError here
    if preempted:
      logging.warning("SIGTERM: saved a checkpoint at step %d and stopped.", step)
  except OSError as e:  # metrics/TensorBoard on a full or unwritable disk: one line
    if isinstance(e, UserInputError) or checkpoint.storage_error(e) is None:
      raise  # DataError is an OSError too
    checkpointer.wait()  # the message names the checkpoint a rerun resumes from: let it finish
    raise StorageError(checkpoint.write_failure_message(
        e, checkpoint_dir=checkpointer.directory, what=e.filename or workdir)) from e
  finally:
    checkpointer.close()
    progress.close()
    writer.close()
    signal.signal(signal.SIGTERM, previous_handler)

  # ---------------------------------------------------------------- evaluation
  results = None
  if config.evaluate and not preempted and "label" not in info.features:
    print(f"evaluation skipped: dataset {data.name!r} has no labels (an image folder without "
          f"class subfolders); the pretrained encoder is in {workdir}/checkpoints", flush=True)
  elif config.evaluate and not preempted:
    from jax_ssl.evaluate import run as evaluate_run  # pylint: disable=g-import-not-at-top
    results = evaluate_run.evaluate(config, workdir, graphdef, state, mesh,
                                    train_seconds=train_seconds)
  return {"step": step, "train_seconds": train_seconds, "results": results,
          "preempted": bool(preempted), "state": state}


def _check_writable(workdir: str) -> None:
  try:
    os.makedirs(workdir, exist_ok=True)
    probe = os.path.join(workdir, f".write_test_{jax.process_index()}")
    with open(probe, "w") as f:
      f.write("ok")
    os.remove(probe)
  except OSError as e:
    raise DataError(f"--workdir {workdir} is not writable ({e.strerror}); choose a writable "
                    f"directory (nothing was changed)") from None


def _progress_bar(total: int, initial: int):
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True,
              disable=jax.process_index() != 0 or not sys.stderr.isatty())


def main(argv):
  del argv
  if _CONFIG.value is None or _WORKDIR.value is None:
    raise app.UsageError("--config and --workdir are required, e.g. --config "
                         "experiments/fashion_mnist/simclr.py --workdir runs/simclr")
  # Orbax and TFDS log every file operation at INFO; keep the console for our progress.
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  sharding.initialize_distributed(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  try:
    train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except (UserInputError, NonFiniteError) as e:
    sys.exit(f"error: {e}")


if __name__ == "__main__":
  app.run(main)
