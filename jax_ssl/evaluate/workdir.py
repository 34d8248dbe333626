"""Evaluate a checkpoint of a run directory: the logic of `python -m jax_ssl.evaluate`.

The run directory may be a URL (gs://...): its files are read through etils.epath
(jax_ssl/fs.py) and its checkpoints by Orbax, which takes such paths."""

from __future__ import annotations

import json

import jax
import orbax.checkpoint as ocp

from jax_ssl import checkpoint, fs, sharding
from jax_ssl import config as config_lib
from jax_ssl.data import pipeline
from jax_ssl.errors import DataError
from jax_ssl.evaluate import protocols, run
from jax_ssl.state import TrainState, create_train_state


def load_config(workdir: str) -> config_lib.Experiment:
  """The typed experiment of a run directory's config.json (of any jax_ssl version)."""
  path = fs.path(workdir) / "config.json"
  if not path.exists():
    raise DataError(f"{path} not found: --workdir must be a directory written by jax_ssl.train")
  return config_lib.read_saved(workdir)


def restore_for_evaluation(directory: str, step: int, state: TrainState,
                           sharding: jax.sharding.Sharding) -> TrainState:
  """`state` with the step, parameters and BatchNorm statistics of checkpoint `step`, and
  its EMA target's (`target_params`, `target_batch_stats`) where `state` and the checkpoint
  have one: the encoder `eval.encoder` names may be the target (DINO's teacher).

  Only what evaluation reads is restored (a partial restore), so checkpoints of older
  TrainState layouts (e.g. from before `target_params`) and of other optimizers evaluate
  too; the optimizer and method state keep their initial values. A checkpoint written before
  the target kept its own BatchNorm statistics gets the online ones at the target's paths,
  as a resumed training does (checkpoint._FIELDS_FILLED_FROM).
  """
  # Absolute: Orbax refuses a relative path (`--workdir runs/x` must work); a URL as it is.
  state_dir = fs.path(fs.absolute(directory)) / str(step) / "state"
  needed = {"step": state.step, "params": state.params, "batch_stats": state.batch_stats}
  saved = ocp.PyTreeCheckpointer().metadata(state_dir).item_metadata.tree
  if jax.tree.leaves(state.target_params) and saved.get("target_params"):
    needed["target_params"] = state.target_params
    if jax.tree.leaves(state.target_batch_stats) and saved.get("target_batch_stats"):
      needed["target_batch_stats"] = state.target_batch_stats
  abstract = checkpoint.abstract_like(needed, sharding)
  restored = ocp.PyTreeCheckpointer().restore(
      state_dir, args=ocp.args.PyTreeRestore(
          item=abstract, restore_args=ocp.checkpoint_utils.construct_restore_args(abstract),
          partial_restore=True))
  if "target_params" in needed and "target_batch_stats" not in needed:
    online = restored["batch_stats"]
    restored["target_batch_stats"] = type(online)(
        {name: online[name] for name in state.target_batch_stats})
  return state.replace(**restored)


def _train_seconds(workdir: str, step: int) -> float:
  """The training time logged with the last step <= `step` (0 if none)."""
  path = fs.path(workdir) / "metrics.jsonl"
  if not path.exists():
    return 0.0
  records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
  records = [r for r in records if r["step"] <= step]
  return records[-1].get("train_seconds", 0.0) if records else 0.0


def evaluate_workdir(workdir: str, *, protocol_names: str | None = None, step: int | None = None,
                     report: bool | None = None, export_dir: str | None = None,
                     splits: tuple[str, ...] = ("train", "test")) -> dict | None:
  """Restores step `step` of `workdir` and runs what was asked; returns the results (None
  when only features were exported).

  `report`: True writes the report (and evaluates only if results.json lacks this step),
  False never writes it, None follows the run's `eval.report`: what is given here overrides
  the saved config.
  """
  config = load_config(workdir)
  fs.check_client(config.dataset.data_dir, f"dataset.data_dir of {workdir}/config.json")
  results_path = fs.path(workdir) / "results.json"
  previous = None
  if results_path.exists():
    previous = json.loads(results_path.read_text())
  # Typos fail before anything loads.
  if protocol_names is not None:
    protocols.parse_protocols(protocol_names)
  if export_dir:
    run.check_splits(splits)
  mesh = sharding.make_mesh()
  replicated = sharding.replicated(mesh)
  info = pipeline.dataset_info(config.dataset.name, data_dir=config.dataset.data_dir)
  num_classes = info.features["label"].num_classes if "label" in info.features else None
  method = config_lib.build_method(config)  # a teacher is read once, as in training
  video = pipeline.is_video(info)  # a video run's model takes clips of clips.num_frames
  channels = pipeline.video_shape(info)[-1] if video else info.features["image"].shape[-1]
  model = config_lib.build_model(config, channels, config.seed, num_classes=num_classes,
                                 method=method,
                                 num_frames=config.clips.num_frames if video else None)
  optimizer, _ = config_lib.build_optimizer(config)
  graphdef, state = create_train_state(
      model, optimizer, config_lib.init_method_state(config, method=method),
      method.spec.target_modules)
  directory = fs.join(workdir, "checkpoints")
  checkpointer = checkpoint.Checkpointer(directory, keep=config.keep_checkpoints,
                                         save_every_steps=config.checkpoint_every_steps)
  try:
    saved = sorted(checkpointer.manager.all_steps())
    if not saved:
      raise DataError(f"no checkpoint in {directory}; train first")
    if step is None:
      step = saved[-1]
    elif step not in saved:
      raise DataError(f"--step {step}: no checkpoint of that step in {directory} (it has "
                      f"{saved}); pass one of them, or leave --step out for the latest")
  finally:
    checkpointer.close()
  state = restore_for_evaluation(directory, step, state, replicated)
  if export_dir:
    shapes = run.export_features(config, graphdef, state, mesh, export_dir, splits)
    print(f"features of step {step}: " + ", ".join(
        f"{split} {shape}" for split, shape in shapes.items()) + f" in {export_dir}", flush=True)
  if protocol_names is None:
    # Only pictures or features asked for: the protocols run only when results.json does
    # not hold this step's results yet (the report shows them).
    evaluated = previous is not None and previous.get("steps") == step
    if (report and not evaluated) or not (report or export_dir):
      protocol_names = config.eval.protocols
    else:
      protocol_names = "none"
  chosen = protocols.parse_protocols(protocol_names)
  if not (chosen.frozen or chosen.finetune or report):
    return None
  return run.evaluate(config, workdir, graphdef, state, mesh,
                      train_seconds=_train_seconds(workdir, step), protocol_names=protocol_names,
                      report_pictures=report, previous=previous)
