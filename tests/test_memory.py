"""Queues in the train state (MoCo v2 negatives, one queue per view; NNCLR support set):
written from the global batch once per optimizer step, the same on 1 and 8 devices, and
resumed exactly."""

import types

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from conftest import batch_images, state_and_step, step_losses, tiny_config, typed
from jax_ssl import config as config_lib
from jax_ssl import losses
from jax_ssl.data import augment
from jax_ssl.methods import moco_v2, queue
from jax_ssl.methods.spec import StepContext

HEADS = {"moco_v2": dict(projector_hidden_dim=16, projector_output_dim=8, projector_num_layers=2),
         "nnclr": dict(projector_hidden_dim=16, projector_output_dim=8, projector_num_layers=2,
                       predictor_hidden_dim=8)}
ARGS = {"moco_v2": {"temperature": 0.2, "queue_size": 80, "base_momentum": 0.9},
        "nnclr": {"temperature": 0.1, "queue_size": 80}}
ROWS_PER_STEP = {"moco_v2": 32, "nnclr": 32}  # into a queue: its view's keys / view 1's projections
QUEUE = {"moco_v2": lambda state: state["view0"], "nnclr": lambda state: state}


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
  spec, graphdef, _, state, step = state_and_step(config)
  rng = jax.random.key_data(jax.random.key(0))
  images = batch_images(config)
  new_state, _ = step(state, images, rng)
  # By hand: the keys are the (pre-update) target's projections of both views; view v's
  # keys, one per image, go into queue v.
  views = augment.make_views(jax.random.fold_in(jax.random.wrap_key_data(rng), 0),
                             images["image"], config_lib.view_configs(typed(config)))
  target = nnx.merge(graphdef, state.params, state.batch_stats, copy=True)
  target.train()
  keys = jnp.split(target.heads["projector"](target.backbone(jnp.concatenate(views))), 2)
  for v in range(2):
    queue_v, before = new_state.method_state[f"view{v}"], state.method_state[f"view{v}"]
    assert int(queue_v["pointer"]) == 32
    np.testing.assert_allclose(queue_v["embeddings"][:32], losses.l2_normalize(keys[v]),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(queue_v["embeddings"][32:], before["embeddings"][32:])


def _identity_model():
  """Backbone and projector that return their input: the embeddings are the views."""
  identity = lambda x: x
  return types.SimpleNamespace(backbone=identity, heads={"projector": identity})


def test_moco_v2_each_query_meets_the_queue_of_its_positive_keys_view():
  """solo-learn's MoCo V2+: q1 (positive k2) against the view-2 key queue, q2 against the
  view-1 one. One image, q = k (identity encoders), view 1 = e1, view 2 = e2, tau = 1,
  queue of view 1 = [e2], queue of view 2 = [-e1]:
    q1 = e1, k2 = e2, negative e1 . -e1 = -1: log(1 + e^-1);
    q2 = e2, k1 = e1, negative e2 . e2 = 1: log(1 + e) = 1 + log(1 + e^-1);
  the loss is their mean, 0.5 + log(1 + e^-1). Crossed (the other view's queue): log 2."""
  model = _identity_model()
  views = [jnp.array([[1.0, 0.0]]), jnp.array([[0.0, 1.0]])]
  context = StepContext(rng=jax.random.key(0), step=jnp.asarray(0), target=model)
  method_state = {"view0": {"embeddings": jnp.array([[0.0, 1.0]]), "pointer": jnp.asarray(0)},
                  "view1": {"embeddings": jnp.array([[-1.0, 0.0]]), "pointer": jnp.asarray(0)}}
  args = moco_v2.Args(temperature=1.0, queue_size=1, base_momentum=0.9)
  loss, _, inputs = moco_v2.objective(model, views, method_state, context, args)
  assert float(loss) == pytest.approx(0.5 + np.log1p(np.exp(-1.0)), rel=1e-6)
  crossed = {"view0": method_state["view1"], "view1": method_state["view0"]}
  loss, _, _ = moco_v2.objective(model, views, crossed, context, args)
  assert float(loss) == pytest.approx(np.log(2.0), rel=1e-6)
  np.testing.assert_array_equal(inputs["keys"], [[[1.0, 0.0], [0.0, 1.0]]])  # [B, view, D]


def test_moco_v2_enqueues_one_key_per_image_into_each_views_queue():
  args = moco_v2.Args(queue_size=5)
  state = moco_v2.init_method_state(args, moco_v2.Heads(projector_output_dim=2))
  assert state["view0"]["embeddings"].shape == state["view1"]["embeddings"].shape == (5, 2)
  keys = jnp.array([[[3.0, 4.0], [0.0, 2.0]], [[1.0, 0.0], [0.0, -5.0]]])  # [B=2, view, D]
  state = moco_v2.update_method_state(state, {"keys": keys}, None, args)
  np.testing.assert_allclose(state["view0"]["embeddings"][:2], [[0.6, 0.8], [1.0, 0.0]])
  np.testing.assert_allclose(state["view1"]["embeddings"][:2], [[0.0, 1.0], [0.0, -1.0]])
  assert int(state["view0"]["pointer"]) == int(state["view1"]["pointer"]) == 2


@pytest.mark.parametrize("method", ["moco_v2", "nnclr"])
def test_queue_moves_once_per_optimizer_step_under_gradient_accumulation(method):
  for accumulation in (1, 2):
    config = memory_config(method, grad_accum_steps=accumulation)
    _, _, _, state, step = state_and_step(config)
    rng = jax.random.key_data(jax.random.key(0))
    for k in range(2):
      state, metrics = step(state, batch_images(config, k), rng)
      assert np.isfinite(float(metrics["loss"]))
    assert int(QUEUE[method](state.method_state)["pointer"]) == (
        2 * ROWS_PER_STEP[method]) % 80, accumulation


@pytest.mark.parametrize("method", ["moco_v2", "nnclr"])
def test_memory_step_is_the_same_on_1_and_8_devices(method):
  config = memory_config(method)
  one, eight = step_losses(config, 1), step_losses(config, 8)
  for a, b in zip(one, eight):
    assert a["loss"] == pytest.approx(b["loss"], rel=1e-4), (a, b)
  assert one[0]["loss"] != pytest.approx(one[-1]["loss"], rel=1e-4)
