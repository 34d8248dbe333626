"""Queues in the train state (MoCo v2 negatives, NNCLR support set): written from the global
batch once per optimizer step, the same on 1 and 8 devices, and resumed exactly."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from conftest import tiny_config
from jax_ssl import config as config_lib
from jax_ssl import losses
from jax_ssl.data import augment
from jax_ssl.methods import queue
from test_lejepa import _step_losses
from test_teacher import _images, _setup

HEADS = {"moco_v2": dict(projector_hidden_dim=16, projector_output_dim=8, projector_num_layers=2),
         "nnclr": dict(projector_hidden_dim=16, projector_output_dim=8, projector_num_layers=2,
                       predictor_hidden_dim=8)}
ARGS = {"moco_v2": {"temperature": 0.2, "queue_size": 80, "base_momentum": 0.9},
        "nnclr": {"temperature": 0.1, "queue_size": 80}}
ROWS_PER_STEP = {"moco_v2": 64, "nnclr": 32}  # both views' keys / the first view's projections


def memory_config(method, **overrides):
  config = tiny_config("unused", "unused", **overrides)
  config.method = method
  config.method_args = ml_collections.ConfigDict(ARGS[method])
  config.heads = ml_collections.ConfigDict(HEADS[method])
  return config


def test_enqueue_writes_normalised_rows_at_the_pointer_and_wraps():
  state = queue.init(5, 2)
  np.testing.assert_allclose(np.linalg.norm(state["embeddings"], axis=1), 1.0, rtol=1e-6)
  rows = jnp.array([[3.0, 4.0], [0.0, 2.0], [1.0, 0.0]])
  state = queue.enqueue(state, rows)
  np.testing.assert_allclose(state["embeddings"][:3], [[0.6, 0.8], [0.0, 1.0], [1.0, 0.0]])
  assert int(state["pointer"]) == 3
  before = np.asarray(state["embeddings"])
  state = queue.enqueue(state, jnp.array([[0.0, -1.0], [-1.0, 0.0], [0.0, 5.0]]))
  assert int(state["pointer"]) == 1  # 3 + 3 wraps around 5
  np.testing.assert_allclose(state["embeddings"], [[0, 1], [0, 1], [1, 0], [0, -1], [-1, 0]])
  assert not np.allclose(before, state["embeddings"])


def test_moco_v2_queue_holds_the_global_batch_keys_after_a_step():
  config = memory_config("moco_v2")
  spec, graphdef, _, state, step = _setup(config)
  rng = jax.random.key_data(jax.random.key(0))
  images = _images(config)
  new_state, _ = step(state, images, rng)
  assert int(new_state.method_state["pointer"]) == 64
  # By hand: the keys are the (pre-update) target's projections of both views.
  views = augment.make_views(jax.random.fold_in(jax.random.wrap_key_data(rng), 0),
                             images["image"], config_lib.view_configs(config))
  target = nnx.merge(graphdef, state.params, state.batch_stats, copy=True)
  target.train()
  keys = [target.heads["projector"](target.backbone(jnp.concatenate(views)))]
  k1, k2 = jnp.split(keys[0], 2)
  expected = losses.l2_normalize(jnp.stack([k1, k2], axis=1).reshape(-1, 8))
  np.testing.assert_allclose(new_state.method_state["embeddings"][:64], expected, rtol=1e-4,
                             atol=1e-5)
  np.testing.assert_array_equal(new_state.method_state["embeddings"][64:],
                                state.method_state["embeddings"][64:])


@pytest.mark.parametrize("method", ["moco_v2", "nnclr"])
def test_queue_moves_once_per_optimizer_step_under_gradient_accumulation(method):
  for accumulation in (1, 2):
    config = memory_config(method, grad_accum_steps=accumulation)
    _, _, _, state, step = _setup(config)
    rng = jax.random.key_data(jax.random.key(0))
    for k in range(2):
      state, metrics = step(state, _images(config, k), rng)
      assert np.isfinite(float(metrics["loss"]))
    assert int(state.method_state["pointer"]) == (2 * ROWS_PER_STEP[method]) % 80, accumulation


@pytest.mark.parametrize("method", ["moco_v2", "nnclr"])
def test_memory_step_is_the_same_on_1_and_8_devices(method):
  config = memory_config(method)
  one, eight = _step_losses(config, 1), _step_losses(config, 8)
  for a, b in zip(one, eight):
    assert a["loss"] == pytest.approx(b["loss"], rel=1e-4), (a, b)
  assert one[0]["loss"] != pytest.approx(one[-1]["loss"], rel=1e-4)
