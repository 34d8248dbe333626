r"""The one trainer: `python -m jax_ssl.train --config experiments/<file>.py[:arg] --workdir DIR`.

Sections, in order: config, mesh, data, state, step, loop, evaluation. Every method runs
through this file unchanged; a method only contributes its spec (jax_ssl/methods/).
Rerunning the same command with the same --workdir resumes from the latest checkpoint (and
says what changed); a finished run says where its results are. SIGINT (Ctrl-C) and SIGTERM
save a checkpoint of the current step and exit 130 and 0 (interrupts.py; with several
processes, all of them stop after the same step); DIR/train.lock keeps a second training out
of the same workdir (run_lock.py). Several processes (hosts) start from their launcher's
environment: SLURM, mpirun, torchrun, a TPU pod slice (distributed.py).
"""

from __future__ import annotations

import sys
import time
from typing import Any

from absl import app, flags, logging
import jax
import numpy as np

from jax_ssl import (checkpoint, diagnostics, distributed, fs, interrupts, perf, run_lock,
                     run_report, sharding)
from jax_ssl import config as config_lib
from jax_ssl import methods
from jax_ssl.config import data_checks, paths
from jax_ssl.config import load as config_load
from jax_ssl.config.schema import Experiment
from jax_ssl.data import pipeline
from jax_ssl.errors import ConfigError, DataError, NonFiniteError, StorageError, UserInputError
from jax_ssl.metric_writer import MetricWriter
from jax_ssl.state import create_train_state, state_shardings
from jax_ssl.step import make_train_step

_CONFIG = flags.DEFINE_string(
    "config", None, "Experiment file PATH[:ARG], ARG its switches (e.g. runlocal); then "
    "--config.KEY=VALUE sets one key of its config (jax_ssl/config/load.py).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory (shared by all processes).")
# Multi-process runs usually need none of these: SLURM, mpirun, torchrun-style launchers,
# JAX_* variables and TPU pod slices are read from the environment (distributed.py).
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "host:port of process 0 (multi-host; default: from the "
    "launcher's environment, jax_ssl/distributed.py).")
_NUM_PROCESSES = flags.DEFINE_integer(
    "num_processes", None, "Number of processes (multi-host; default: from the environment).")
_PROCESS_ID = flags.DEFINE_integer(
    "process_id", None, "This process's index (multi-host; default: from the environment).")
_ALLOW_CONFIG_CHANGES = flags.DEFINE_bool(
    "allow_config_changes", False, "Resume a workdir with changed optimisation keys "
    "(global_batch_size, optimizer.*); the change is recorded in DIR/config_history.jsonl.")


def train_and_evaluate(config: Experiment | Any, workdir: str, *,
                       allow_config_changes: bool = False) -> dict[str, Any]:
  """Pretrains (resuming if `workdir` has checkpoints) and, if `config.evaluate`, evaluates.

  `config` is the typed experiment; the library's entry point also takes an experiment
  file's ConfigDict (or a dict) and types it here, once (`Experiment.from_config`).

  Holds DIR/train.lock while it runs. The first SIGINT or SIGTERM stops it after the current
  step, with a checkpoint of it; a second SIGINT exits the process at once (interrupts.py).
  `allow_config_changes` resumes a workdir whose optimisation keys changed.

  Returns a summary: {"step", "train_seconds", "results" (or None), "preempted",
  "interrupted" (the stopping signal's name or None), "state" (None if nothing ran)}.
  """
  if not isinstance(config, Experiment):
    config = Experiment.from_config(config)
  config_lib.validate(config, jax.device_count())
  _check_writable(workdir)
  lock = run_lock.lock_workdir(workdir)
  try:
    with interrupts.StopSignals(lambda: (run_report.aborted(workdir), lock.release),
                                sync_point=distributed.preemption_sync_point()) as stops:
      try:
        return _train_and_evaluate(config, workdir, stops, allow_config_changes)
      except interrupts.Interrupted as e:  # in the evaluation: nothing left to save
        step = run_report.stopped_in_evaluation(e.signal_name, workdir)
        return {"step": step, "train_seconds": None, "results": None, "preempted": True,
                "interrupted": e.signal_name, "state": None}
  finally:
    lock.release()


def _train_and_evaluate(config: Experiment, workdir: str,
                        stops: interrupts.StopSignals, allow_config_changes: bool) -> dict[str, Any]:
  run_start = time.perf_counter()  # goodput counts from here
  # ---------------------------------------------------------------- config
  spec = methods.get_method(config.method)
  resume = config_lib.check_resume_compatible(config, workdir,
                                              allow_config_changes=allow_config_changes)
  stops.starting_from(resume.step if resume else 0)  # before the setup a preemption may hit
  results = run_report.results_of(workdir, resume.step) if resume else None
  if results is not None and resume.step >= config.total_steps:  # finished and evaluated
    run_report.finished(config, workdir, resume.step, results, resume)
    return {"step": resume.step, "train_seconds": results.get("train_seconds"),
            "results": results, "preempted": False, "interrupted": None, "state": None}

  # ---------------------------------------------------------------- mesh
  mesh = sharding.make_mesh(shape=config.mesh_shape)  # () or (data, fsdp): sharding.py
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
  data_checks.check_training_data(config, info)  # before any compile: refuse or warn, one line
  # Videos: each example is the method's views as clips the host samples (data/clips.py),
  # augmented on device with one draw per clip; frames [T, H, W, C] are images to the checks.
  video = pipeline.is_video(info)
  num_frames = config.clips.num_frames if video else None
  image_shape = (pipeline.video_shape(info)[1:] if video else
                 tuple(info.features["image"].shape))
  in_channels = image_shape[-1]
  if None not in image_shape[:2]:  # variable-size datasets are resized to dataset.image_size
    config_lib.validate_against_data(config, image_shape)
  # Variable-size images: the views' crops are made on the host (data/host_views.py).
  host_views = None if video else pipeline.host_views(info, config_lib.view_configs(config),
                                                      enabled=data.host_crops,
                                                      resize=data.host_resize)
  source = pipeline.load_source(data.name, data.train_split, data_dir=data.data_dir,
                                encoded=host_views is not None,
                                in_memory_max_bytes=data.in_memory_max_bytes,
                                reads=config.total_steps * config.global_batch_size)
  data_iterator = pipeline.train_iterator(
      source, local_batch_size=sharding.local_batch_size(config.global_batch_size),
      seed=config.seed, process_index=jax.process_index(),
      process_count=jax.process_count(), image_size=data.image_size,
      read_threads=data.read_threads, host_views=host_views, channels=in_channels,
      clip_sampling=config_lib.clip_sampling(config) if video else None,
      **pipeline.worker_settings(data))

  # ---------------------------------------------------------------- state
  num_classes = info.features["label"].num_classes if "label" in info.features else None
  # The method's typed Args and Heads, and its frozen teacher read from disk, once.
  method = config_lib.build_method(config)
  model = config_lib.build_model(config, in_channels, config.seed, num_classes=num_classes,
                                 method=method, num_frames=num_frames)
  optimizer, schedule = config_lib.build_optimizer(config)
  graphdef, state = create_train_state(
      model, optimizer, config_lib.init_method_state(config, method=method),
      spec.target_modules)
  # Replicated, or (config.sharding="fsdp") the parameters, optimizer state and EMA targets
  # split over the devices by big_vision's fsdp rule (state.state_shardings); a checkpoint
  # written under either restores into these shardings (Orbax reshards on read).
  shardings = state_shardings(state, mesh, config.sharding, min_bytes=config.fsdp_min_bytes)
  state = sharding.place(state, shardings)
  if config.sharding == "fsdp" and jax.process_index() == 0:
    whole = sharding.bytes_per_device(state, state_shardings(state, mesh, "replicated"))
    print(f"fsdp: train state {sharding.bytes_per_device(state, shardings) / 2**20:.1f} MiB per "
          f"device of {whole / 2**20:.1f} MiB, sharded over {sharding.fsdp_axis(mesh)!r} of mesh "
          f"{dict(mesh.shape)}", flush=True)
  checkpointer = checkpoint.Checkpointer(fs.join(workdir, "checkpoints"),
                                         keep=config.keep_checkpoints,
                                         save_every_steps=config.checkpoint_every_steps)
  start_step, restored = checkpointer.restore_latest(
      checkpoint.abstract_like(state, shardings), data_iterator)
  if restored is not None:
    state = restored
    if start_step >= config.total_steps and not config.evaluate:  # restored: it reads back
      checkpointer.close()
      run_report.finished(config, workdir, start_step, None, resume)
      return {"step": start_step, "train_seconds": None, "results": None, "preempted": False,
              "interrupted": None, "state": state}
    run_report.resumed(config, workdir, resume, start_step, schedule)
  if jax.process_index() == 0:
    config_lib.record_config(config, workdir, start_step=start_step, resume=resume)

  # ---------------------------------------------------------------- step
  def make_step(grad_accum_steps: int, step_mesh):
    return make_train_step(graphdef, spec, method.args, optimizer, schedule,
                           config_lib.view_configs(config), total_steps=config.total_steps,
                           grad_accum_steps=grad_accum_steps,
                           grad_accum_mode=config.grad_accum_mode,
                           online_probe=config.online_probe, mesh=step_mesh,
                           teacher_graphdef=method.teacher_graphdef)
  # jit over global arrays with the state's own shardings in and out: under FSDP XLA gathers
  # each sharded parameter where it is used and reduce-scatters its gradient. The views'
  # per-device encoder passes (spec.views_per_device) split the batch over the `data` axis:
  # with a 2-D mesh the batch spans both axes, so those passes run on the global arrays.
  step_mesh = mesh if mesh.axis_names == (sharding.DATA_AXIS,) else None
  train_step = jax.jit(make_step(config.grad_accum_steps, step_mesh),
                       in_shardings=(shardings, batch_sharding, replicated),
                       out_shardings=(shardings, replicated),
                       donate_argnums=(0,))
  rng = sharding.replicate(jax.random.key_data(jax.random.key(config.seed)), mesh)
  # RankMe and the normalised std every diagnostics_every_steps, read at the next log step.
  collapse = diagnostics.TrainDiagnostics(
      graphdef, config_lib.view_configs(config)[0], every_steps=config.diagnostics_every_steps,
      encoder=config_lib.evaluation_encoder(config))

  # ---------------------------------------------------------------- loop
  writer = MetricWriter(workdir, start_step)
  progress = _progress_bar(config.total_steps, start_step)
  train_seconds = writer.last_elapsed
  # The host never waits for the device between log steps and checkpoints: the next
  # batches' copies to the devices overlap the running step (a checkpoint saves the input
  # position of the batches consumed, not of those prefetched), and each step's non-finite
  # flag stays on the device, in `unchecked`, until a log step or a save reads them all.
  device_batches = sharding.DevicePrefetch(data_iterator, mesh)
  unchecked: list[tuple[int, dict[str, jax.Array]]] = []
  peak_flops = perf.peak_flops_per_second(jax.devices(), config.model.dtype)
  if peak_flops is None:
    logging.warning("mfu is not logged: no peak FLOP/s is known for %s in %s (jax_ssl/perf.py "
                    "PEAK_FLOPS)", jax.devices()[0].device_kind, config.model.dtype)
  interval_start, interval_steps = time.perf_counter(), 0
  step = start_step
  skipped = 0
  # Compiled once, ahead of time, on the first batch: the executable accepts only these shapes
  # and shardings, so a step can never recompile silently (it would raise instead).
  compiled_step, compile_seconds, data_wait, step_flops = None, None, 0.0, None
  # Seconds of the interval not spent stepping (compile, FLOP count, checkpoint saves), and
  # of this process's run spent stepping, for `goodput`.
  interval_overhead, step_seconds = 0.0, 0.0
  try:
    # Several processes agree on the step to stop after (interrupts.py): asked every step.
    while step < config.total_steps and not stops.should_stop(step):
      wait_start = time.perf_counter()  # the host's wait for the input pipeline
      batch = next(device_batches)
      inputs = pipeline.step_inputs(batch)  # {"image"} or the host's {"views"}
      if config.online_probe:  # labels reach only the probe head (online_probe.loss)
        inputs["label"] = batch["label"]
      data_wait += time.perf_counter() - wait_start
      if compiled_step is None:
        compile_start = time.perf_counter()
        lowered = train_step.lower(state, inputs, rng)
        compiled_step = lowered.compile()
        compile_seconds = time.perf_counter() - compile_start
        # Counted on the global arrays (mesh=None: the same arithmetic; XLA counts a
        # shard_map body, the per-device encoder passes, once for all devices).
        step_flops = perf.step_flops(
            lowered, lambda: jax.jit(make_step(1, None)).lower(state, inputs, rng),
            grad_accum_steps=config.grad_accum_steps, per_device_passes=mesh.size > 1)
        interval_overhead += time.perf_counter() - compile_start
      state, metrics = compiled_step(state, inputs, rng)
      step += 1
      interval_overhead += collapse.after_step(step, state, inputs, rng)
      interval_steps += 1
      unchecked.append((step, metrics))
      log_step = step % config.log_every_steps == 0 or step == config.total_steps
      if log_step or checkpointer.manager.should_save(step):  # nothing non-finite is saved
        skipped = _check_finite(unchecked, skipped, config.skip_nonfinite_updates, workdir)
        unchecked = []
      save_start = time.perf_counter()
      checkpointer.save(step, state, device_batches)
      interval_overhead += time.perf_counter() - save_start
      if log_step:
        metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
        elapsed = time.perf_counter() - interval_start
        train_seconds += elapsed
        metrics["images_per_second"] = interval_steps * config.global_batch_size / elapsed
        metrics.update(perf.utilization(step_flops, interval_steps, elapsed, peak_flops))
        metrics["train_seconds"] = train_seconds
        metrics["skipped_updates"] = skipped
        metrics.update(collapse.read())  # warns (one line) on a collapse
        # Share of the interval the host waited for the input pipeline: an upper bound of the
        # share the device sat idle for it (the device may run queued steps meanwhile).
        metrics["data_wait_fraction"] = data_wait / elapsed
        # Share of this process's time (since it started: setup, restore, compile, data
        # waits and checkpoint saves included) spent stepping.
        step_seconds += max(elapsed - data_wait - interval_overhead, 0.0)
        metrics["goodput"] = step_seconds / (time.perf_counter() - run_start)
        if compile_seconds is not None:  # the first record after (re)starting
          metrics["compile_seconds"], compile_seconds = compile_seconds, None
          if step_flops:
            metrics["model_flops_per_step"] = step_flops
        writer.write(step, metrics)
        progress.update(interval_steps)
        progress.set_postfix(loss=f"{metrics['loss']:.4f}",
                             img_s=f"{metrics['images_per_second']:.0f}",
                             **({"mfu": f"{metrics['mfu']:.1%}"} if "mfu" in metrics else {}))
        if progress.disable and jax.process_index() == 0:
          print(f"step {step}/{config.total_steps} " + " ".join(
              f"{k}={v:.4g}" for k, v in metrics.items()), flush=True)
        interval_start, interval_steps, data_wait = time.perf_counter(), 0, 0.0
        interval_overhead = 0.0
    if step not in checkpointer.manager.all_steps() and step > start_step:
      # The final state (or the state at SIGINT/SIGTERM) is always saved, never a non-finite one.
      skipped = _check_finite(unchecked, skipped, config.skip_nonfinite_updates, workdir)
      checkpointer.save(step, state, device_batches, force=True)
    checkpointer.wait()  # a save that failed in the background raises StorageError here
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
  preempted = stops.received is not None
  if preempted:
    run_report.stopped(stops.received, workdir, step, config.total_steps)

  # ---------------------------------------------------------------- evaluation
  stops.evaluating = not preempted  # a signal now stops the evaluation at once
  results = None
  if config.evaluate and not preempted and "label" not in info.features:
    print(f"evaluation skipped: dataset {data.name!r} has no labels (an image folder without "
          f"class subfolders); the pretrained encoder is in {workdir}/checkpoints", flush=True)
  elif config.evaluate and not preempted:
    from jax_ssl.evaluate import run as evaluate_run  # pylint: disable=g-import-not-at-top
    results = evaluate_run.evaluate(config, workdir, graphdef, state, mesh,
                                    train_seconds=train_seconds)
  if not preempted:
    run_report.done(config, workdir, step, results)
  return {"step": step, "train_seconds": train_seconds, "results": results,
          "preempted": preempted, "interrupted": stops.received, "state": state}


def _check_finite(unchecked: list[tuple[int, dict[str, jax.Array]]], skipped: int,
                  skip_nonfinite_updates: bool, workdir: str) -> int:
  """Reads the non-finite flags of the `unchecked` (step, metrics) pairs (the host's only
  wait for the device outside log steps and saves); returns the count of skipped updates.

  A non-finite step raises NonFiniteError naming the first one, unless
  `skip_nonfinite_updates`: then each is reported as a skipped update (the step kept the
  state as it was, see step.py).
  """
  flags = jax.device_get([metrics["nonfinite"] for _, metrics in unchecked])
  for (step, metrics), flag in zip(unchecked, flags):
    if not flag:
      continue
    values = {k: float(v) for k, v in jax.device_get(metrics).items()}
    bad = [k for k in ("loss", "grad_norm") if not np.isfinite(values[k])]
    if not skip_nonfinite_updates:
      raise NonFiniteError(
          f"non-finite {' and '.join(bad)} ({', '.join(f'{k}={values[k]}' for k in bad)}) at step "
          f"{step}; stopped without saving it: the last checkpoint in {workdir}/checkpoints is intact. "
          f"Lower the learning rate, or set --config.skip_nonfinite_updates=True to skip such steps.")
    skipped += 1
    logging.warning("step %d: non-finite %s; update skipped (%d so far)", step, bad, skipped)
  return skipped


def _check_writable(workdir: str) -> None:
  try:
    fs.make_dirs(workdir)
    probe = fs.path(fs.join(workdir, f".write_test_{jax.process_index()}"))
    probe.write_text("ok")
    probe.unlink()
  except OSError as e:  # a bucket that does not exist or is not ours too (gcsfs's OSErrors)
    reason = e.strerror or (str(e).strip().splitlines() or [type(e).__name__])[0]
    raise DataError(f"--workdir {workdir} is not writable ({reason}); choose a writable "
                    f"directory (nothing was changed)") from None


def _progress_bar(total: int, initial: int):
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True,
              disable=jax.process_index() != 0 or not sys.stderr.isatty())


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing (`app.run(main, flags_parser=parse_flags)`) with the
  `--config.KEY=VALUE` arguments kept out of it: they reach `main` after the program name and
  any positional arguments. A flag error (an unknown flag, a bad value) is one line, exit 1."""
  rest, overrides = config_load.split_overrides(argv[1:])
  try:
    remaining = flags.FLAGS([argv[0], *rest])
  except flags.Error as e:
    sys.exit(f"error: {e}")
  return [*remaining, *(f"--config.{key}" + ("" if value is None else f"={value}")
                        for key, value in overrides)]


def load_config(argv: list[str]) -> Experiment:
  """The typed experiment of --config with the `--config.KEY=VALUE` of `argv` (what
  parse_flags returned) applied. Raises ConfigError (one line) for any mistake in them."""
  positional, overrides = config_load.split_overrides(argv[1:])
  if positional:
    raise ConfigError(f"unexpected argument {positional[0]!r}; flags look like --name=value, "
                      f"experiment switches like --config experiments/<dataset>/<method>.py:runlocal")
  if _CONFIG.value is None or _WORKDIR.value is None:
    raise ConfigError("--config and --workdir are required, e.g. --config "
                      "experiments/fashion_mnist/simclr.py --workdir runs/simclr")
  return config_load.typed_experiment(_CONFIG.value, overrides)


def main(argv):
  """Config mistakes, bad data and full disks end in one line `error: ...` and exit code 1
  (before anything is written, for the config)."""
  from jax_ssl import backends  # pylint: disable=g-import-not-at-top
  # Orbax and TFDS log every file operation at INFO; keep the console for our progress.
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  try:
    config = load_config(argv)
    # The CPU platform's malloc setting and XLA flag (jax_ssl/backends): before anything
    # starts JAX's backends (distributed.initialize, jax.devices()), which read XLA_FLAGS once.
    backends.prepare_process(config.backend)
    distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  except UserInputError as e:
    sys.exit(f"error: {e}")
  try:
    # Paths typed on the command line are relative to this directory, wherever they are used.
    summary = train_and_evaluate(paths.with_absolute_paths(config),
                                 paths.absolute_path(_WORKDIR.value),
                                 allow_config_changes=_ALLOW_CONFIG_CHANGES.value)
  except (UserInputError, NonFiniteError) as e:
    sys.exit(f"error: {e}")
  if summary["interrupted"]:  # 130 after Ctrl-C, 0 after SIGTERM (interrupts.EXIT_CODES)
    sys.exit(interrupts.EXIT_CODES[summary["interrupted"]])


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
