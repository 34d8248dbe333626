"""TiCo: the loss and the covariance update against hand-computed values and an independent
float64 formula, the method's argument checks, the train step on 1 vs 8 devices, and a few
train steps with gradient accumulation moving the covariance once per step."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import state_and_step, step_losses, tiny_config
from jax_ssl import losses


def test_tico_loss_hand_computed():
  # Rows normalise to a = [[0.6, 0.8], [0, 1]] and b = [[1, 0], [0, 1]]:
  # invariance = 1 - mean(0.6, 1.0) = 0.2.
  z_online = np.array([[3.0, 4.0], [0.0, 2.0]], np.float32)
  z_target = np.array([[1.0, 0.0], [0.0, 5.0]], np.float32)
  # B = a^T a / 2 = [[0.18, 0.24], [0.24, 0.82]]; with C_prev = [[1, 0], [0, 0]] and
  # beta = 0.5, C_t = [[0.59, 0.12], [0.12, 0.41]]; a_0^T C_t a_0 = 0.36 * 0.59 + 2 * 0.48 *
  # 0.12 + 0.64 * 0.41 = 0.59, a_1^T C_t a_1 = 0.41: mean 0.5, times rho = 2 -> 1.0.
  covariance = np.array([[1.0, 0.0], [0.0, 0.0]], np.float32)
  loss = losses.tico(z_online, z_target, covariance, beta=0.5, rho=2.0)
  assert loss.shape == () and float(loss) == pytest.approx(1.2, rel=1e-6)
  # rho = 0: the invariance term alone; identical views: only the covariance contrast.
  assert float(losses.tico(z_online, z_target, covariance, 0.5, 0.0)) == pytest.approx(0.2,
                                                                                     rel=1e-6)
  assert float(losses.tico(z_online, z_online, covariance, 0.5, 2.0)) == pytest.approx(1.0,
                                                                                     rel=1e-6)


def _memory_bank_reference(z_online, z_target, past_batches, beta, rho):
  """float64: 1 - mean_i cos(a_i, b_i) + rho * mean_i sum_s w_s mean_j cos(a_i, x_sj)^2,
  the past batches x_s and the current one weighted (1 - beta) beta^age (the paper's reading
  of the covariance term as MoCo's negatives from an unlimited memory bank)."""
  unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)
  a, b = unit(np.asarray(z_online, np.float64)), unit(np.asarray(z_target, np.float64))
  batches = [unit(np.asarray(x, np.float64)) for x in past_batches] + [a]
  contrast = 0.0
  for age, batch in enumerate(reversed(batches)):
    weight = (1 - beta) * beta**age
    contrast += weight * np.mean(np.mean((a @ batch.T) ** 2, axis=1))
  return 1 - np.mean(np.sum(a * b, axis=1)) + rho * contrast


def test_tico_loss_is_invariance_plus_squared_similarities_to_every_past_batch():
  rng = np.random.default_rng(0)
  past = [rng.normal(size=(6, 5)).astype(np.float32) for _ in range(3)]
  z_online, z_target = (rng.normal(size=(6, 5)).astype(np.float32) for _ in range(2))
  beta, rho = 0.7, 3.0
  covariance = jnp.zeros((5, 5), jnp.float32)
  for batch in past:  # the method state as update_method_state moves it, from zeros
    covariance = losses.tico_covariance_update(covariance, batch, beta)
  loss = losses.tico(z_online, z_target, covariance, beta, rho)
  assert float(loss) == pytest.approx(
      _memory_bank_reference(z_online, z_target, past, beta, rho), rel=1e-5)


def test_tico_gradient_treats_the_running_covariance_as_a_constant():
  """B enters C_t behind a stop-gradient (lightly-ai/lightly#1484): the gradient is that of
  the loss with C_t fixed, and not that of the loss differentiated through B."""
  rng = np.random.default_rng(1)
  z_online, z_target = (rng.normal(size=(4, 3)).astype(np.float32) for _ in range(2))
  previous = np.diag([0.2, 0.1, 0.05]).astype(np.float32)
  beta, rho = 0.6, 5.0
  fixed = np.asarray(losses.tico_covariance_update(previous, z_online, beta))

  def loss_with(z, covariance_of):
    a, b = losses.l2_normalize(z), losses.l2_normalize(jnp.asarray(z_target))
    c = covariance_of(a)
    return 1 - jnp.mean(jnp.sum(a * b, axis=1)) + rho * jnp.mean(jnp.sum((a @ c) * a, axis=1))

  grad = jax.grad(losses.tico)(z_online, z_target, previous, beta, rho)
  constant = jax.grad(loss_with)(z_online, lambda a: fixed)
  through_b = jax.grad(loss_with)(z_online, lambda a: beta * previous + (1 - beta) * a.T @ a / 4)
  np.testing.assert_allclose(grad, constant, rtol=1e-5, atol=1e-6)
  assert not np.allclose(grad, through_b, rtol=1e-3, atol=1e-4)


def test_covariance_update_hand_computed_and_its_closed_form():
  z = np.array([[3.0, 4.0], [0.0, 2.0]], np.float32)  # B = [[0.18, 0.24], [0.24, 0.82]]
  updated = losses.tico_covariance_update(np.eye(2, dtype=np.float32), z, beta=0.9)
  np.testing.assert_allclose(updated, [[0.918, 0.024], [0.024, 0.982]], rtol=1e-6)
  # From zeros, t updates by the same batch give (1 - beta^t) B; unit rows make trace(B) = 1.
  covariance = np.zeros((2, 2), np.float32)
  for _ in range(5):
    covariance = losses.tico_covariance_update(covariance, z, beta=0.5)
  np.testing.assert_allclose(covariance, (1 - 0.5**5) * np.array([[0.18, 0.24], [0.24, 0.82]]),
                             rtol=1e-6)
  # No gradient flows into the buffer from the batch.
  grad = jax.grad(lambda x: jnp.sum(losses.tico_covariance_update(np.eye(2), x, 0.9)))(z)
  assert np.all(np.asarray(grad) == 0)


def test_args_and_heads_refuse_impossible_values_in_one_line():
  from jax_ssl.errors import ConfigError  # pylint: disable=g-import-not-at-top
  from jax_ssl.methods import tico  # pylint: disable=g-import-not-at-top
  for bad, message in ((dict(beta=1.0), r"method_args.beta=1.0; must be in \[0, 1\)"),
                       (dict(rho=-1.0), "method_args.rho=-1.0; must be >= 0"),
                       (dict(base_momentum=1.5), r"method_args.base_momentum=1.5; must be in")):
    with pytest.raises(ConfigError, match=message) as info:
      tico.Args(**bad).validate()
    assert "\n" not in str(info.value)
  with pytest.raises(ConfigError, match="heads.projector_output_dim=0"):
    tico.Heads(projector_output_dim=0).validate()


def _tiny_tico_config():
  config = tiny_config("unused", "unused")
  config.method = "tico"
  config.method_args = {"beta": 0.9, "rho": 8.0, "base_momentum": 0.9}
  config.heads = {"projector_hidden_dim": 16, "projector_output_dim": 8,
                  "projector_num_layers": 2}
  return config


def test_step_is_the_same_on_1_and_8_devices():
  # Step k's loss reads the covariance of steps < k: equal losses on 1 and 8 devices mean
  # the loss and the state both span the global batch.
  config = _tiny_tico_config()
  one, eight = step_losses(config, 1, steps=2), step_losses(config, 8, steps=2)
  for a, b in zip(one, eight):
    assert a["loss"] == pytest.approx(b["loss"], rel=1e-4), (a, b)
    assert a["tico"] == a["loss"]
  assert one[0]["loss"] != pytest.approx(one[-1]["loss"], rel=1e-4)  # the steps did something


def test_train_step_moves_the_covariance_once_per_step_by_the_whole_batch():
  # A few steps of the trainer's step, built as the trainer builds it (conftest
  # state_and_step), with two micro-batches per step and the whole batch's loss
  # (grad_accum_mode=exact, through the spec's embed / embedding_loss). Each update adds
  # (1 - beta) B with trace(B) = 1 (unit rows), so after k steps trace(C) = 1 - beta^k; moved
  # per micro-batch it would be 1 - beta^(2k), never moved 0.
  steps, beta = 3, 0.9
  config = _tiny_tico_config()
  config.grad_accum_steps = 2
  _, _, _, state, step = state_and_step(config, grad_accum_mode="exact")
  rng = jax.random.key_data(jax.random.key(0))
  images = np.random.default_rng(0).integers(0, 256, (steps, config.global_batch_size, 28, 28, 1),
                                             dtype=np.uint8)
  logged = []
  for k in range(steps):
    state, metrics = step(state, {"image": images[k]}, rng)
    logged.append(float(metrics["loss"]))
  assert np.all(np.isfinite(logged)) and logged[0] != logged[-1]
  covariance = np.asarray(state.method_state["covariance"])
  assert int(state.step) == steps and covariance.shape == (8, 8)
  np.testing.assert_allclose(np.trace(covariance), 1 - beta**steps, rtol=1e-5)
  np.testing.assert_allclose(covariance, covariance.T, atol=1e-7)
  assert np.all(np.linalg.eigvalsh(covariance) > -1e-6)  # a covariance: positive semi-definite
