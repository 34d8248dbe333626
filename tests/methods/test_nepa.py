"""NEPA: the loss against hand-computed values and its stop-gradient, the shifted pairs the
objective compares, the refusal of a non-causal backbone, and the train step on 1 vs 8
devices. NEPA keeps no state besides the parameters (no EMA, queue or center), so its
exact resume is the generic resume tests' (tests/test_resume.py)."""

import jax
import ml_collections
import numpy as np
import pytest
from flax import nnx

from conftest import step_losses, tiny_config, typed
from jax_ssl import config as config_lib
from jax_ssl import losses
from jax_ssl.errors import ConfigError
from jax_ssl.methods import nepa


def test_nepa_loss_hand_computed():
  # One sequence of T = 3: outputs o0, o1 are compared with inputs x1, x2 (o2 and x0 unused).
  # o0 = (3, 4) -> (0.6, 0.8), x1 = (1, 0): cos 0.6; o1 = (0, 2) -> (0, 1), x2 = (0, -5):
  # cos -1. Loss = -mean(0.6, -1) = 0.2.
  outputs = np.array([[[3.0, 4.0], [0.0, 2.0], [100.0, 100.0]]], np.float32)
  inputs = np.array([[[-7.0, 1.0], [1.0, 0.0], [0.0, -5.0]]], np.float32)
  assert float(losses.nepa(outputs, inputs)) == pytest.approx(0.2, rel=1e-6)
  # The mean runs over every (example, position) pair: a second sequence predicting
  # perfectly (cos 1, 1) gives -mean(0.6, -1, 1, 1) = -0.4.
  perfect = np.array([[[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]], np.float32)
  both = losses.nepa(np.concatenate([outputs, perfect]),
                     np.concatenate([inputs, np.array([[[9.0, 9.0], [2.0, 0.0], [0.0, 3.0]]])]))
  assert float(both) == pytest.approx(-0.4, rel=1e-6)


def test_nepa_gradient_reaches_outputs_only():
  outputs = jax.random.normal(jax.random.key(0), (2, 4, 3))
  inputs = jax.random.normal(jax.random.key(1), (2, 4, 3))
  grad_outputs, grad_inputs = jax.grad(losses.nepa, argnums=(0, 1))(outputs, inputs)
  np.testing.assert_array_equal(grad_inputs, 0.0)  # the target is a stop-gradient
  # The last output predicts nothing; the others get a gradient.
  np.testing.assert_array_equal(grad_outputs[:, -1], 0.0)
  assert np.all(np.abs(np.asarray(grad_outputs[:, :-1])).sum(-1) > 0)


def _nepa_config(**model):
  config = tiny_config("unused", "unused")
  config.method = "nepa"
  config.method_args = ml_collections.ConfigDict()
  config.heads = ml_collections.ConfigDict()
  config.model.update({**dict(backbone="vit_tiny", depth=1, dim=16, num_heads=2, causal=True,
                              rope=True, pos_embedding="none", qk_norm=True, mlp="swiglu",
                              layer_scale=1e-5), **model})
  config.augment.update(dict(crop_scale=(0.5, 1.0), jitter_prob=0.0))
  config.optimizer.base_learning_rate = 1e-2
  return config


def test_objective_compares_each_output_with_the_next_patch_embedding():
  images = jax.random.uniform(jax.random.key(0), (2, 28, 28, 1))
  # CLS and 2 registers (the reference's [CLS, patches] is the same branch with one prefix
  # token); patches alone.
  for num_registers, cls_token in ((2, True), (0, False)):
    backbone = config_lib.build_backbone(
        typed(_nepa_config(num_registers=num_registers, cls_token=cls_token)), 1,
        nnx.Rngs(0))
    tokens = backbone.embed_patches(images)
    encoded = nnx.jit(lambda b, t: b.encode_tokens(t))(backbone, tokens)
    outputs, inputs = nnx.jit(nepa.next_embedding_pairs)(backbone, images)
    prefix = backbone.num_prefix_tokens
    # Pairs (output t, input t + 1) are (last prefix token or patch t - 1, patch t):
    # the first patch is predicted by the last prefix token, never a register predicted.
    first = prefix - 1 if prefix else 0
    np.testing.assert_array_equal(outputs[:, :-1], encoded[:, first:-1])
    np.testing.assert_array_equal(inputs[:, 1:], tokens[:, 0 if prefix else 1:])
    expected = -np.mean(np.sum(
        _unit(encoded[:, first:-1]) * _unit(tokens[:, 0 if prefix else 1:]), axis=-1))
    assert float(losses.nepa(outputs, inputs)) == pytest.approx(expected, rel=1e-5)


def _unit(x):
  x = np.asarray(x, np.float64)
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_a_non_causal_backbone_is_refused():
  with pytest.raises(ConfigError, match="method='nepa' needs model.causal=True"):
    config_lib.build_model(typed(_nepa_config(causal=False)), 1, 0)


def test_step_is_the_same_on_1_and_8_devices():
  config = _nepa_config()
  one, eight = step_losses(config, 1, steps=2), step_losses(config, 8, steps=2)
  for a, b in zip(one, eight):
    assert a["loss"] == pytest.approx(b["loss"], rel=1e-4, abs=1e-5), (a, b)
    assert a["nepa"] == a["loss"]
  assert one[0]["loss"] != pytest.approx(one[-1]["loss"], rel=1e-4)  # the steps did something
