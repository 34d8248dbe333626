"""Shared fixtures: a small Fashion-MNIST-format dataset (real IDX format, synthetic pixels).

Tests build it into a temporary TFDS data dir through the same builder the main job uses,
so nothing here needs the Debian package or the network.
"""

from __future__ import annotations

import gzip
import os
import struct

import numpy as np
import pytest

# A handful of host CPU devices for in-process sharding tests; subprocess tests set their own.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")


def write_idx(path: str, array: np.ndarray) -> None:
  header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
  with gzip.open(path, "wb") as f:
    f.write(header + array.astype(np.uint8).tobytes())


def make_idx_dataset(directory: str, num_train: int = 512, num_test: int = 128, seed: int = 0):
  """Class-dependent synthetic 28x28 images (class c: a bright bar at row band c + noise)."""
  rng = np.random.default_rng(seed)
  os.makedirs(directory, exist_ok=True)
  for split, count, prefix in (("train", num_train, "train"), ("test", num_test, "t10k")):
    labels = rng.integers(0, 10, size=count)
    images = rng.integers(0, 60, size=(count, 28, 28))
    for i, label in enumerate(labels):
      images[i, 2 * label + 4: 2 * label + 8, 4:24] += 180
    write_idx(os.path.join(directory, f"{prefix}-images-idx3-ubyte.gz"), images)
    write_idx(os.path.join(directory, f"{prefix}-labels-idx1-ubyte.gz"), labels)
  return directory


@pytest.fixture(scope="session")
def fake_fmnist(tmp_path_factory):
  """(source_dir, data_dir) with IDX files and the TFDS dataset built from them."""
  from jax_ssl.data import pipeline
  root = tmp_path_factory.mktemp("fmnist")
  source_dir = make_idx_dataset(str(root / "idx"))
  data_dir = str(root / "tfds")
  pipeline.prepare("fashion_mnist", data_dir=data_dir, source_dir=source_dir)
  return source_dir, data_dir


def tiny_config(source_dir: str, data_dir: str, **overrides):
  """The main job's config shrunk to a tiny model and batch (seconds per run on CPU)."""
  import sys
  sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
  from experiments.fashion_mnist import simclr  # pylint: disable=g-import-not-at-top
  config = simclr.get_config("runlocal")
  config.dataset.source_dir = source_dir
  config.dataset.data_dir = data_dir
  config.model.width = 4
  config.heads.projector_hidden_dim = 16
  config.heads.projector_output_dim = 8
  config.global_batch_size = 32
  config.total_steps = 6
  config.log_every_steps = 1
  config.checkpoint_every_steps = 3
  config.evaluate = False
  config.eval.train_limit = 256
  config.eval.test_limit = 128
  config.update_from_flattened_dict(overrides)
  return config


def tiny_byol_config(source_dir: str = "unused", data_dir: str = "unused", **overrides):
  """tiny_config's BYOL (momentum 0.9: its EMA target moves visibly in a few steps)."""
  import ml_collections  # pylint: disable=g-import-not-at-top
  config = tiny_config(source_dir, data_dir, **overrides)
  config.method = "byol"
  config.method_args = ml_collections.ConfigDict({"base_momentum": 0.9})
  config.heads = ml_collections.ConfigDict(dict(
      projector_hidden_dim=16, projector_output_dim=8, projector_num_layers=2,
      predictor_hidden_dim=8))
  return config


def state_and_step(config, num_classes=None, **step_options):
  """(spec, graphdef, optimizer, initial TrainState, jitted train step) of a config, built as
  the trainer builds them (one input channel; `num_classes` for the online probe);
  `step_options` go to make_train_step."""
  import jax  # pylint: disable=g-import-not-at-top
  from jax_ssl import config as config_lib, methods  # pylint: disable=g-import-not-at-top
  from jax_ssl.state import create_train_state  # pylint: disable=g-import-not-at-top
  from jax_ssl.step import make_train_step  # pylint: disable=g-import-not-at-top
  spec = methods.get_method(config.method)
  model = config_lib.build_model(config, 1, config.seed, num_classes=num_classes)
  optimizer, schedule = config_lib.build_optimizer(config)
  graphdef, state = create_train_state(model, optimizer, config_lib.init_method_state(config),
                                       spec.target_modules)
  step = jax.jit(make_train_step(graphdef, spec, config_lib.method_args(config), optimizer,
                                 schedule, config_lib.view_configs(config),
                                 total_steps=config.total_steps,
                                 grad_accum_steps=config.grad_accum_steps, **step_options))
  return spec, graphdef, optimizer, state, step
