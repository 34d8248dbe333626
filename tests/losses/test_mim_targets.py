"""MaskFeat, BEiT and VQ-VAE losses against hand-computed values."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_ssl import losses


def test_maskfeat_is_the_mse_of_the_masked_patches_only():
  pred = np.zeros((2, 3, 2), np.float32)
  target = np.array([[[1, 1], [2, 0], [9, 9]],
                     [[0, 3], [5, 5], [1, 0]]], np.float32)
  mask = np.array([[1, 1, 0], [0, 0, 1]], bool)
  # Masked patches' mean squared errors: (1 + 1) / 2 = 1, (4 + 0) / 2 = 2, (1 + 0) / 2 = 0.5.
  assert float(losses.maskfeat(pred, target, mask)) == pytest.approx((1 + 2 + 0.5) / 3)
  # Unmasked patches are free: changing them changes nothing.
  target[0, 2] = -100
  target[1, :2] = 7
  assert float(losses.maskfeat(pred, target, mask)) == pytest.approx((1 + 2 + 0.5) / 3)
  # The target gets no gradient; the prediction's is 2 (pred - target) / (D * masked count).
  grad_pred, grad_target = jax.grad(losses.maskfeat, argnums=(0, 1))(pred, target, mask)
  np.testing.assert_allclose(grad_pred[0, 0], 2 * (0 - 1) / (2 * 3) * np.ones(2), rtol=1e-6)
  np.testing.assert_array_equal(grad_pred[0, 2], 0.0)
  np.testing.assert_array_equal(grad_target, 0.0)


def test_beit_is_the_cross_entropy_of_the_masked_positions():
  logits = np.array([[[0.0, 0.0, 0.0, 0.0], [2.0, 0.0, 0.0, 0.0]],
                     [[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 50.0]]], np.float32)
  token_ids = np.array([[3, 0], [1, 2]])
  mask = np.array([[1, 1], [1, 0]])
  uniform = np.log(4.0)  # any id under equal logits
  confident = np.log(np.exp(2.0) + 3) - 2.0  # id 0 with logits (2, 0, 0, 0)
  ramp = np.log(np.sum(np.exp([1.0, 2.0, 3.0, 4.0]))) - 2.0  # id 1 with logits 1..4
  expected = (uniform + confident + ramp) / 3
  assert float(losses.beit(logits, token_ids, mask)) == pytest.approx(expected, rel=1e-6)
  # The unmasked position (a loss of 50 if it counted) is ignored.
  assert float(losses.beit(logits, token_ids, np.ones((2, 2)))) == pytest.approx(
      (uniform + confident + ramp + 50.0) / 4, rel=1e-5)


def test_vq_vae_terms_by_hand_and_where_their_gradients_go():
  images = np.zeros((1, 2, 2, 1), np.float32)
  reconstruction = np.full((1, 2, 2, 1), 0.5, np.float32)
  latents = np.array([[1.0, 0.0], [0.0, 2.0]], np.float32)
  codes = np.array([[0.0, 0.0], [0.0, 1.0]], np.float32)
  loss, terms = losses.vq_vae(reconstruction, images, latents, codes, commitment_weight=0.25)
  assert float(terms["reconstruction"]) == pytest.approx(0.25)
  # (1 + 0 + 0 + 1) / 4 for both the codebook and the commitment term.
  assert float(terms["codebook"]) == pytest.approx(0.5)
  assert float(terms["commitment"]) == pytest.approx(0.5)
  assert float(loss) == pytest.approx(0.25 + 0.5 + 0.25 * 0.5)
  # Codebook term moves the codes only, commitment the latents only (weighted by beta).
  fn = lambda z, e: losses.vq_vae(reconstruction, images, z, e, 0.25)[0]
  grad_latents, grad_codes = jax.grad(fn, argnums=(0, 1))(latents, codes)
  np.testing.assert_allclose(grad_latents, 0.25 * 2 * (latents - codes) / 4, rtol=1e-6)
  np.testing.assert_allclose(grad_codes, 2 * (codes - latents) / 4, rtol=1e-6)


def test_perplexity():
  assert float(losses.perplexity(jnp.zeros((4, 5), jnp.int32), 8)) == pytest.approx(1.0)
  assert float(losses.perplexity(jnp.arange(8), 8)) == pytest.approx(8.0, rel=1e-6)
  # Usage (1/2, 1/4, 1/4): exp(H) = exp(1.5 log 2) = 2 sqrt 2.
  assert float(losses.perplexity(jnp.array([0, 0, 1, 2]), 8)) == pytest.approx(
      2 * np.sqrt(2), rel=1e-6)
