"""grad_accum_mode: "micro_batch" computes each micro-batch's loss on the micro-batch alone;
"exact" (GradCache) differentiates the whole batch's loss, equal to the step without
accumulation on a model without BatchNorm; configs ask for it only of methods that can."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from flax import nnx

from conftest import tiny_config, typed
from jax_ssl import config as config_lib
from jax_ssl import methods, sharding
from jax_ssl.errors import ConfigError
from jax_ssl.methods.spec import SSLModel
from jax_ssl.state import create_train_state
from jax_ssl.step import make_train_step

ARGS = {name: methods.METHODS[name].args_type(**values) for name, values in {
    "simclr": {"temperature": 0.2}, "moco_v3": {"temperature": 0.2, "base_momentum": 0.9},
    "barlow_twins": {"off_diagonal_weight": 5e-3},
    "vicreg": {"invariance_weight": 25.0, "variance_weight": 25.0,
               "covariance_weight": 1.0}}.items()}


class _Encoder(nnx.Module):
  """Flatten -> Linear -> ReLU: per-example, no BatchNorm."""

  def __init__(self, rngs: nnx.Rngs):
    self.linear = nnx.Linear(28 * 28, 16, rngs=rngs)

  def __call__(self, images):
    return nnx.relu(self.linear(images.reshape(images.shape[0], -1)))


def _model(method: str, online_probe: bool = False) -> SSLModel:
  rngs = nnx.Rngs(0)
  encoder = _Encoder(rngs)  # first: the same weights with and without the probe
  heads = {"projector": nnx.Sequential(nnx.Linear(16, 16, rngs=rngs), nnx.relu,
                                       nnx.Linear(16, 8, rngs=rngs))}
  if method == "moco_v3":
    heads["predictor"] = nnx.Linear(8, 8, rngs=rngs)
  if online_probe:
    heads["online_probe"] = nnx.Linear(16, 10, rngs=rngs)
  return SSLModel(encoder, heads)


def _record_gradients() -> optax.GradientTransformation:
  """An "optimizer" that keeps the step's gradients in its state and leaves the parameters."""
  return optax.GradientTransformation(
      lambda params: {"grads": jax.tree.map(jnp.zeros_like, params)},
      lambda grads, state, params=None: (jax.tree.map(jnp.zeros_like, grads), {"grads": grads}))


def _images(count=32, seed=0):
  return {"image": jnp.asarray(np.random.default_rng(seed).integers(
      0, 256, (count, 28, 28, 1), dtype=np.uint8))}


def _gradients(method, grad_accum_steps, grad_accum_mode, online_probe=False):
  """(loss, metrics, gradients) of one step on 32 images, 2 views of 28 px."""
  spec = methods.get_method(method)
  optimizer = _record_gradients()
  graphdef, state = create_train_state(_model(method, online_probe), optimizer, {},
                                       spec.target_modules)
  views = config_lib.view_configs(typed(tiny_config("unused", "unused")))
  step = jax.jit(make_train_step(graphdef, spec, ARGS[method], optimizer,
                                 optax.constant_schedule(1.0), views,
                                 total_steps=10, grad_accum_steps=grad_accum_steps,
                                 grad_accum_mode=grad_accum_mode, online_probe=online_probe))
  batch = _images()
  if online_probe:
    batch["label"] = jnp.arange(32, dtype=jnp.int32) % 10
  new_state, metrics = step(state, batch, jax.random.key_data(jax.random.key(0)))
  return float(metrics["loss"]), metrics, new_state.opt_state["grads"]


def _largest_relative_difference(a, b):
  scale = max(float(jnp.abs(x).max()) for x in jax.tree.leaves(b))
  return max(float(jnp.abs(x - y).max()) for x, y in zip(jax.tree.leaves(a),
                                                           jax.tree.leaves(b))) / scale


@pytest.mark.parametrize("method", ["simclr", "moco_v3", "barlow_twins", "vicreg"])
def test_exact_accumulation_is_the_full_batch_step(method):
  full_loss, _, full = _gradients(method, 1, "micro_batch")
  exact_loss, _, exact = _gradients(method, 4, "exact")
  micro_loss, _, micro = _gradients(method, 4, "micro_batch")
  assert exact_loss == pytest.approx(full_loss, rel=1e-5)
  assert _largest_relative_difference(exact, full) < 1e-5
  # Micro-batches of 8: fewer negatives, noisier statistics; another loss and gradient.
  assert abs(micro_loss - full_loss) > 1e-3 * abs(full_loss)
  assert _largest_relative_difference(micro, full) > 1e-2


def test_exact_accumulation_keeps_the_online_probe_per_micro_batch():
  """The probe's loss is per example: its gradient is the mean over micro-batches, as in
  micro_batch mode, and it leaves the method's gradient alone."""
  _, exact_metrics, exact = _gradients("simclr", 4, "exact", online_probe=True)
  _, micro_metrics, micro = _gradients("simclr", 4, "micro_batch", online_probe=True)
  _, _, without_probe = _gradients("simclr", 4, "exact")
  probe = lambda g: g["heads"]["online_probe"]
  np.testing.assert_allclose(probe(exact)["kernel"][...], probe(micro)["kernel"][...],
                             rtol=1e-5, atol=1e-7)
  assert float(exact_metrics["online_probe/loss"]) == pytest.approx(
      float(micro_metrics["online_probe/loss"]), rel=1e-6)
  np.testing.assert_allclose(exact["backbone"]["linear"]["kernel"][...],
                             without_probe["backbone"]["linear"]["kernel"][...],
                             rtol=1e-5, atol=1e-7)


def test_grad_accum_mode_exact_is_refused_for_methods_without_embeddings():
  config = tiny_config("unused", "unused", grad_accum_steps=2, grad_accum_mode="exact")
  config_lib.validate(typed(config), 1)  # SimCLR declares embed / embedding_loss
  config.method = "byol"
  config.method_args = ml_collections.ConfigDict({"base_momentum": 0.9})
  config.heads.predictor_hidden_dim = 8
  with pytest.raises(ConfigError, match=r"^grad_accum_mode='exact' needs a method whose loss "
                                        r"is a function of the batch's embeddings \(barlow_"
                                        r"twins, cvrl, moco_v3, rspnet, simclr, tico, vicreg\); "
                                        r"byol does not"):
    config_lib.validate(typed(config), 1)
  config.grad_accum_mode = "whole"
  with pytest.raises(ConfigError, match="grad_accum_mode='whole'; use 'micro_batch' or 'exact'"):
    config_lib.validate(typed(config), 1)
  with pytest.raises(ValueError, match="byol does not"):
    make_train_step(None, methods.get_method("byol"), methods.METHODS["byol"].args_type(),
                    optax.sgd(0.1),
                    optax.constant_schedule(0.1), [], grad_accum_mode="exact")


def test_exact_accumulation_is_the_same_on_1_and_8_devices():
  # The tiny ResNet (BatchNorm over each micro-batch of 8, global under jit on both meshes).
  config = tiny_config("unused", "unused", grad_accum_steps=4, grad_accum_mode="exact")
  one, eight = _step_losses(config, 1), _step_losses(config, 8)
  for a, b in zip(one, eight):
    assert a["loss"] == pytest.approx(b["loss"], rel=1e-4), (a, b)
  assert one[0]["loss"] != pytest.approx(one[-1]["loss"], rel=1e-4)


def _step_losses(config, num_devices, steps=2):
  """Losses of `steps` trainer steps (the config's model and grad_accum_mode) on a mesh."""
  mesh = sharding.make_mesh(num_devices)
  replicated, batch_sharding = sharding.replicated(mesh), sharding.batch_sharding(mesh)
  config = typed(config)
  spec = methods.get_method(config.method)
  optimizer, schedule = config_lib.build_optimizer(config)
  graphdef, state = create_train_state(config_lib.build_model(config, 1, config.seed), optimizer,
                                       config_lib.init_method_state(config), spec.target_modules)
  step = jax.jit(make_train_step(graphdef, spec, config.method_args, optimizer,
                                 schedule, config_lib.view_configs(config),
                                 total_steps=config.total_steps,
                                 grad_accum_steps=config.grad_accum_steps,
                                 grad_accum_mode=config.grad_accum_mode),
                 in_shardings=(replicated, batch_sharding, replicated),
                 out_shardings=(replicated, replicated))
  state = sharding.replicate(state, mesh)
  rng = sharding.replicate(jax.random.key_data(jax.random.key(0)), mesh)
  losses = []
  for k in range(steps):
    batch = {"image": jax.device_put(_images(config.global_batch_size, k)["image"],
                                     batch_sharding)}
    state, metrics = step(state, batch, rng)
    losses.append({key: float(value) for key, value in metrics.items()})
  return losses
