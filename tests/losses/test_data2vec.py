"""data2vec 2.0's pure functions against hand-computed values: the targets (top-K average of
instance-normalised layer outputs, then a parameter-free LayerNorm), the scaled regression
loss, and the collapse monitor."""

import numpy as np
import pytest

from jax_ssl import losses


def _numpy_targets(layers, top_k, eps=1e-5):
  """float64 fairseq make_targets with instance_norm_target_layer and layer_norm_targets."""
  normed = []
  for x in layers[-top_k:]:
    x = np.asarray(x, np.float64)
    mean, var = x.mean(axis=1, keepdims=True), x.var(axis=1, keepdims=True)  # over tokens
    normed.append((x - mean) / np.sqrt(var + eps))
  y = sum(normed) / top_k
  mean, var = y.mean(axis=-1, keepdims=True), y.var(axis=-1, keepdims=True)  # over channels
  return (y - mean) / np.sqrt(var + eps)


def test_targets_by_hand():
  # 1 example, 2 tokens, 2 channels, 3 layers; top_k=2 leaves out the first (huge) layer.
  layers = [1e6 * np.array([[[1.0, 2.0], [7.0, -3.0]]]),
            np.array([[[1.0, 0.0], [3.0, 4.0]]]),
            np.array([[[2.0, 2.0], [2.0, 6.0]]])]
  # Instance norm over the 2 tokens, per channel: layer 1 -> channel 0 (-a, a), channel 1
  # (-b, b); layer 2 -> channel 0 constant: (0, 0), channel 1 (-b, b); a = 1/sqrt(1 + eps),
  # b = 2/sqrt(4 + eps). Mean of the two: token 0 (-a/2, -b), token 1 (a/2, b); then
  # LayerNorm over the 2 channels: +-d/sqrt(d^2 + eps), d = (b - a/2)/2.
  eps = 1e-5
  a, b = 1 / np.sqrt(1 + eps), 2 / np.sqrt(4 + eps)
  d = (b - a / 2) / 2
  v = d / np.sqrt(d * d + eps)
  got = np.asarray(losses.data2vec_targets(layers, top_k=2))
  np.testing.assert_allclose(got, [[[v, -v], [-v, v]]], rtol=1e-5)
  # Averaging all three layers instead: the first layer (instance-normed to token 0 at
  # (-1, +1)) turns token 0 to channel 0 < channel 1, so the signs flip: top_k is honoured.
  all_three = np.asarray(losses.data2vec_targets(layers, top_k=3))
  np.testing.assert_array_equal(np.sign(all_three), -np.sign(got))


def test_targets_match_the_reference_normalisations():
  rng = np.random.default_rng(0)
  # Channels on different scales and offsets: instance norm (per channel) and LayerNorm
  # (per token) both matter.
  layers = [rng.normal(size=(2, 5, 4)) * rng.uniform(0.5, 5, size=4) + rng.normal(size=4)
            for _ in range(4)]
  got = np.asarray(losses.data2vec_targets(layers, top_k=3))
  np.testing.assert_allclose(got, _numpy_targets(layers, 3), rtol=1e-5, atol=1e-5)
  # Every token has mean 0 and (biased) variance ~1 over its channels.
  np.testing.assert_allclose(got.mean(axis=-1), 0, atol=1e-5)
  np.testing.assert_allclose(got.var(axis=-1), 1, atol=1e-3)
  with pytest.raises(ValueError, match="top_k=5; must be in"):
    losses.data2vec_targets(layers, top_k=5)


def test_regression_loss_by_hand():
  pred = np.array([[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0]])
  target = np.zeros((2, 4))
  # Row sums of squared errors 30 and 0, times 1/sqrt(4), averaged over the 2 rows.
  assert float(losses.data2vec(pred, target)) == pytest.approx(30 / 2 / 2)
  assert float(losses.data2vec(pred, target, scale=1.0)) == pytest.approx(15.0)
  # Smooth-L1 (beta 1) on errors 0.5 and 2: 0.5 * 0.25 + (2 - 0.5), one row, 2 channels.
  smooth = losses.data2vec(np.array([[0.5, -2.0]]), np.zeros((1, 2)), beta=1.0)
  assert float(smooth) == pytest.approx((0.125 + 1.5) / np.sqrt(2))
  # Leading axes are rows: [R, M, D] is the mean over R * M rows.
  three = np.arange(12.0).reshape(2, 3, 2)
  expected = np.mean(np.sum(three ** 2, axis=-1)) / np.sqrt(2)
  assert float(losses.data2vec(three, np.zeros_like(three))) == pytest.approx(expected)


def test_mean_feature_std_by_hand():
  rows = np.array([[0.0, 0.0], [2.0, 4.0]])
  # Unbiased variances 2 and 8 over the rows.
  assert float(losses.mean_feature_std(rows)) == pytest.approx(
      (np.sqrt(2 + 1e-6) + np.sqrt(8 + 1e-6)) / 2, rel=1e-6)
  # Collapsed rows (all the same vector): only the epsilon is left.
  assert float(losses.mean_feature_std(np.ones((5, 3)))) == pytest.approx(1e-3, rel=1e-4)
