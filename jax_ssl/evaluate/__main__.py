"""`python -m jax_ssl.evaluate --workdir DIR`: evaluate the latest checkpoint of a run.

Rebuilds the model from DIR/config.json, restores the latest TrainState and runs the same
protocols as the trainer's post-training evaluation (overwrites DIR/results.json).
"""

from __future__ import annotations

import json
import os
import sys

from absl import app, flags
import jax
import ml_collections

from jax_ssl import checkpoint, methods, sharding
from jax_ssl import config as config_lib
from jax_ssl.data import pipeline
from jax_ssl.errors import DataError, UserInputError
from jax_ssl.evaluate import run
from jax_ssl.state import create_train_state

_WORKDIR = flags.DEFINE_string("workdir", None, "A training run's output directory.", required=True)


def load_config(workdir: str) -> ml_collections.ConfigDict:
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise DataError(f"{path} not found: --workdir must be a directory written by jax_ssl.train")
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


def main(argv):
  del argv
  try:
    evaluate_workdir(_WORKDIR.value)
  except UserInputError as e:
    sys.exit(f"error: {e}")


def evaluate_workdir(workdir: str) -> None:
  config = load_config(workdir)
  mesh = sharding.make_mesh()
  replicated = sharding.replicated(mesh)
  info = pipeline.dataset_info(config.dataset.name, data_dir=config.dataset.data_dir)
  model = config_lib.build_model(config, info.features["image"].shape[-1], config.seed)
  optimizer, _ = config_lib.build_optimizer(config)
  spec = methods.get_method(config.method)
  graphdef, state = create_train_state(model, optimizer, config_lib.init_method_state(config),
                                       spec.target_modules)
  checkpointer = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"),
                                         keep=config.keep_checkpoints,
                                         save_every_steps=config.checkpoint_every_steps)
  step = checkpointer.latest_step()
  if step is None:
    raise DataError(f"no checkpoint in {workdir}/checkpoints; train first")
  state = checkpointer.restore_state(step, checkpoint.abstract_like(state, replicated))
  checkpointer.close()
  train_seconds = 0.0  # the training time logged with the last step, if any
  metrics_path = os.path.join(workdir, "metrics.jsonl")
  if os.path.exists(metrics_path):
    with open(metrics_path) as f:
      lines = [line for line in f if line.strip()]
    if lines:
      train_seconds = json.loads(lines[-1])["train_seconds"]
  run.evaluate(config, workdir, graphdef, state, mesh, train_seconds=train_seconds)


if __name__ == "__main__":
  app.run(main)
