"""Shared fixtures: a small Fashion-MNIST-format dataset (real IDX format, synthetic pixels).

Tests build it into a temporary TFDS data dir through the same builder the main job uses,
so nothing here needs the Debian package or the network.
"""

from __future__ import annotations

import gzip
import os
import struct

import ml_collections
import numpy as np
import pytest
from PIL import Image

# A handful of host CPU devices for in-process sharding tests; subprocess tests set their own.
# LLVM at -O0 (the HLO passes still run): the suite's time is mostly compiling tiny steps,
# which this halves; every comparison in it is between programs compiled the same way.
TEST_XLA_FLAGS = "--xla_backend_optimization_level=0"
os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count=8 {TEST_XLA_FLAGS}")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# As every entry point does before JAX starts (the CPU platform's malloc setting and XLA
# flag: jax_ssl/backends), so in-process tests compute as the trainer's processes do.
from jax_ssl import backends  # noqa: E402  pylint: disable=g-import-not-at-top
backends.prepare_process("auto")


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


def typed(config):
  """The typed `Experiment` of a ConfigDict (what the entry point makes of it; every library
  function below train.train_and_evaluate takes one); an Experiment is returned as is."""
  from jax_ssl.config import Experiment  # pylint: disable=g-import-not-at-top
  return config if isinstance(config, Experiment) else Experiment.from_config(config)


def set_keys(config, values=None, **flat):
  """Sets dotted keys ({"eval.finetune.steps": 5}, or as keywords with the dots spelled
  "eval.finetune.steps") of a ConfigDict in place, making the sections the experiment file
  leaves at their defaults (experiment files set only what differs). Returns `config`."""
  import ml_collections  # pylint: disable=g-import-not-at-top
  for dotted, value in {**(values or {}), **flat}.items():
    *parents, key = dotted.split(".")
    node = config
    for parent in parents:
      if parent not in node:
        node[parent] = ml_collections.ConfigDict()
      node = node[parent]
    node[key] = value
  return config


def tiny_config(source_dir: str, data_dir: str, **overrides):
  """The main job's config shrunk to a tiny model and batch (seconds per run on CPU); a
  ConfigDict, as train.train_and_evaluate takes it (`typed(config)` for the library's
  functions). `overrides`: dotted keys (set_keys)."""
  import sys
  sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
  from experiments.fashion_mnist import simclr  # pylint: disable=g-import-not-at-top
  config = simclr.get_config("runlocal")
  set_keys(config, {
      "dataset.source_dir": source_dir, "dataset.data_dir": data_dir, "model.width": 4,
      "heads.projector_hidden_dim": 16, "heads.projector_output_dim": 8,
      "global_batch_size": 32, "total_steps": 6, "log_every_steps": 1,
      "checkpoint_every_steps": 3, "evaluate": False, "eval.train_limit": 256,
      "eval.test_limit": 128})
  set_keys(config, overrides)
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
  `step_options` go to make_train_step. `config`: a ConfigDict or a typed Experiment."""
  import jax  # pylint: disable=g-import-not-at-top
  from jax_ssl import config as config_lib  # pylint: disable=g-import-not-at-top
  from jax_ssl.state import create_train_state  # pylint: disable=g-import-not-at-top
  from jax_ssl.step import make_train_step  # pylint: disable=g-import-not-at-top
  config = typed(config)
  method = config_lib.build_method(config)
  spec = method.spec
  model = config_lib.build_model(config, 1, config.seed, num_classes=num_classes, method=method)
  optimizer, schedule = config_lib.build_optimizer(config)
  graphdef, state = create_train_state(
      model, optimizer, config_lib.init_method_state(config, method=method), spec.target_modules)
  step = jax.jit(make_train_step(graphdef, spec, method.args, optimizer,
                                 schedule, config_lib.view_configs(config),
                                 total_steps=config.total_steps,
                                 grad_accum_steps=config.grad_accum_steps,
                                 teacher_graphdef=method.teacher_graphdef, **step_options))
  return spec, graphdef, optimizer, state, step


def batch_images(config, seed=0):
  """A {"image": uint8 [global_batch_size, 28, 28, 1]} batch of random pixels."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  return {"image": jnp.asarray(np.random.default_rng(seed).integers(
      0, 256, (typed(config).global_batch_size, 28, 28, 1), dtype=np.uint8))}


def step_losses(config, num_devices, steps=3):
  """The metrics of `steps` train steps on a mesh of `num_devices` devices (same data, same
  rng), built as the trainer builds them: the 1-vs-N-device equivalence tests' helper.
  `config`: a ConfigDict or a typed Experiment."""
  import jax  # pylint: disable=g-import-not-at-top
  from jax_ssl import config as config_lib, sharding  # pylint: disable=g-import-not-at-top
  from jax_ssl.state import create_train_state  # pylint: disable=g-import-not-at-top
  from jax_ssl.step import make_train_step  # pylint: disable=g-import-not-at-top
  config = typed(config)
  mesh = sharding.make_mesh(num_devices)
  replicated, batch_sharding = sharding.replicated(mesh), sharding.batch_sharding(mesh)
  method = config_lib.build_method(config)  # typed Args and Heads, a teacher loaded once
  spec = method.spec
  model = config_lib.build_model(config, 1, config.seed, method=method)
  optimizer, schedule = config_lib.build_optimizer(config)
  graphdef, state = create_train_state(
      model, optimizer, config_lib.init_method_state(config, method=method), spec.target_modules)
  state = sharding.replicate(state, mesh)
  step = jax.jit(make_train_step(graphdef, spec, method.args, optimizer,
                                 schedule, config_lib.view_configs(config),
                                 total_steps=config.total_steps,
                                 grad_accum_steps=config.grad_accum_steps,
                                 grad_accum_mode=config.grad_accum_mode,
                                 teacher_graphdef=method.teacher_graphdef),
                 in_shardings=(replicated, batch_sharding, replicated),
                 out_shardings=(replicated, replicated))
  rng = sharding.replicate(jax.random.key_data(jax.random.key(0)), mesh)
  return metrics_of_steps(step, state, config, steps, batch_sharding, rng)


def metrics_of_steps(step, state, config, steps, batch_sharding=None, rng=None):
  """`step_losses`' batches and rng through a step and state built elsewhere (a test's shared
  one-device step): the metrics of each of `steps` steps."""
  import jax  # pylint: disable=g-import-not-at-top
  rng = jax.random.key_data(jax.random.key(0)) if rng is None else rng
  images = np.random.default_rng(0).integers(
      0, 256, (steps, typed(config).global_batch_size, 28, 28, 1), dtype=np.uint8)
  out = []
  for k in range(steps):
    batch = {"image": jax.numpy.asarray(images[k]) if batch_sharding is None
             else jax.device_put(images[k], batch_sharding)}
    state, metrics = step(state, batch, rng)
    out.append({key: float(value) for key, value in metrics.items()})
  return out


# The EMA-target methods' tiny heads and args (tests/methods/test_teacher.py, test_multicrop.py).
TEACHER_HEADS = {"byol": dict(projector_hidden_dim=16, projector_output_dim=8, projector_num_layers=2,
                      predictor_hidden_dim=8),
         "moco_v3": dict(projector_hidden_dim=16, projector_output_dim=8, projector_num_layers=3,
                         predictor_hidden_dim=8)}
TEACHER_ARGS = {"byol": {"base_momentum": 0.9}, "moco_v3": {"temperature": 0.2, "base_momentum": 0.9}}


def teacher_config(method, **overrides):
  config = tiny_config("unused", "unused", **overrides)
  config.method = method
  config.method_args = ml_collections.ConfigDict(TEACHER_ARGS[method])
  config.heads = ml_collections.ConfigDict(TEACHER_HEADS[method])
  return config


def assert_real_png(path):
  """A valid PNG with something drawn on it: not one flat colour."""
  with Image.open(path) as image:
    assert image.format == "PNG"
    pixels = np.asarray(image.convert("RGB"), np.float32)
  assert pixels.shape[0] > 100 and pixels.shape[1] > 100
  assert pixels.std() > 0
  assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 10  # axes, text, data colours


def tiny_clip_config(method, method_args=None, heads=None, **overrides):
  """A video method's tiny config (a ConfigDict): the Moving Fashion-MNIST runlocal base
  with a width-4 video CNN on 4-frame 16 px clips, batch 16; `overrides`: dotted keys."""
  import sys  # pylint: disable=g-import-not-at-top
  sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
  from experiments.moving_fashion_mnist import _moving_fashion_mnist_base as base  # pylint: disable=g-import-not-at-top
  config = base.base_config(runlocal=True)
  config.method = method
  config.method_args = ml_collections.ConfigDict(method_args or {})
  config.heads = ml_collections.ConfigDict(heads or {})
  set_keys(config, {"model.width": 4, "augment.output_size": 16, "clips.num_frames": 4,
                    "global_batch_size": 16, "total_steps": 4})
  return set_keys(config, overrides)


def clip_step_states(config, num_devices, speeds=None, steps=2):
  """`step_losses` on video batches: (metrics of each step, the final TrainState) of `steps`
  train steps on a mesh of `num_devices`, each batch {"clips": one random uint8
  [B, T, 20, 20, 1] per view, "speeds": `speeds` int [B, V] (default all 1)}."""
  import jax  # pylint: disable=g-import-not-at-top
  from jax_ssl import config as config_lib, sharding  # pylint: disable=g-import-not-at-top
  from jax_ssl.state import create_train_state  # pylint: disable=g-import-not-at-top
  from jax_ssl.step import make_train_step  # pylint: disable=g-import-not-at-top
  config = typed(config)
  mesh = sharding.make_mesh(num_devices)
  replicated, batch_sharding = sharding.replicated(mesh), sharding.batch_sharding(mesh)
  method = config_lib.build_method(config)
  model = config_lib.build_model(config, 1, config.seed, method=method,
                                 num_frames=config.clips.num_frames)
  optimizer, schedule = config_lib.build_optimizer(config)
  graphdef, state = create_train_state(
      model, optimizer, config_lib.init_method_state(config, method=method),
      method.spec.target_modules)
  state = sharding.replicate(state, mesh)
  views = config_lib.view_configs(config)
  step = jax.jit(make_train_step(graphdef, method.spec, method.args, optimizer, schedule, views,
                                 total_steps=config.total_steps,
                                 grad_accum_steps=config.grad_accum_steps,
                                 grad_accum_mode=config.grad_accum_mode),
                 in_shardings=(replicated, batch_sharding, replicated),
                 out_shardings=(replicated, replicated))
  rng = sharding.replicate(jax.random.key_data(jax.random.key(0)), mesh)
  batch_size, frames = config.global_batch_size, config.clips.num_frames
  pixels = np.random.default_rng(0).integers(
      0, 256, (steps, len(views), batch_size, frames, 20, 20, 1), dtype=np.uint8)
  speeds = np.ones((batch_size, len(views)), np.int32) if speeds is None else speeds
  out = []
  for k in range(steps):
    batch = {"clips": tuple(pixels[k]), "speeds": np.asarray(speeds, np.int32)}
    state, metrics = step(state, jax.device_put(batch, batch_sharding), rng)
    out.append({key: float(value) for key, value in metrics.items()})
  return out, state


@pytest.fixture(scope="session")
def fake_moving_fmnist(fake_fmnist):
  """(source_dir, data_dir) with Moving Fashion-MNIST built from `fake_fmnist`'s IDX files
  (512 train and 128 test videos) into the same TFDS data dir."""
  from jax_ssl.data import pipeline  # pylint: disable=g-import-not-at-top
  source_dir, data_dir = fake_fmnist
  pipeline.prepare("moving_fashion_mnist", data_dir=data_dir, source_dir=source_dir)
  return source_dir, data_dir
