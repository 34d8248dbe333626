import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_ssl import losses


def reference_nt_xent(z1, z2, temperature):
  """Loop-by-loop NT-Xent in float64 numpy, straight from eq. (1) of SimCLR."""
  z = np.concatenate([z1, z2]).astype(np.float64)
  z /= np.linalg.norm(z, axis=1, keepdims=True)
  n = len(z1)
  total = 0.0
  for a in range(2 * n):
    positive = (a + n) % (2 * n)
    sims = {b: z[a] @ z[b] / temperature for b in range(2 * n) if b != a}
    total += -sims[positive] + math.log(sum(math.exp(s) for s in sims.values()))
  return total / (2 * n)


def test_nt_xent_known_answer_orthogonal_pairs():
  # Two identical pairs, orthogonal to each other: each anchor has positive similarity 1
  # and two negatives of similarity 0 -> loss = log(1 + 2 exp(-1/T)).
  z = jnp.eye(2)
  temperature = 0.5
  expected = math.log(1 + 2 * math.exp(-1 / temperature))
  assert float(losses.nt_xent(z, z, temperature)) == pytest.approx(expected, rel=1e-6)


def test_nt_xent_single_pair_is_zero():
  # With one pair the positive is the only other view: softmax over one logit.
  z1 = jnp.array([[1.0, 2.0, 3.0]])
  z2 = jnp.array([[-3.0, 0.5, 1.0]])
  assert float(losses.nt_xent(z1, z2, 0.1)) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("temperature", [0.07, 0.2, 1.0])
def test_nt_xent_matches_reference(temperature):
  rng = np.random.default_rng(0)
  z1, z2 = rng.normal(size=(2, 6, 5))
  assert float(losses.nt_xent(z1, z2, temperature)) == pytest.approx(
      reference_nt_xent(z1, z2, temperature), rel=1e-5)


def reference_nt_xent_multi_view(views, temperature):
  """Loop-by-loop multi-positive NT-Xent in float64: -log(sum_pos exp / sum_{b != a} exp)."""
  z = np.concatenate(views).astype(np.float64)
  z /= np.linalg.norm(z, axis=1, keepdims=True)
  n, total = len(views[0]), 0.0
  for a in range(len(z)):
    others = [b for b in range(len(z)) if b != a]
    positives = [b for b in others if b % n == a % n]
    exp = {b: math.exp(z[a] @ z[b] / temperature) for b in others}
    total += -math.log(sum(exp[b] for b in positives) / sum(exp.values()))
  return total / len(z)


@pytest.mark.parametrize("num_views", [3, 5])
def test_nt_xent_multi_view_matches_reference(num_views):
  views = list(np.random.default_rng(num_views).normal(size=(num_views, 6, 4)))
  assert float(losses.nt_xent_multi_view(views, 0.3)) == pytest.approx(
      reference_nt_xent_multi_view(views, 0.3), rel=1e-5)


def test_nt_xent_multi_view_of_two_views_is_nt_xent():
  z1, z2 = np.random.default_rng(4).normal(size=(2, 7, 5))
  assert float(losses.nt_xent_multi_view([z1, z2], 0.1)) == pytest.approx(
      float(losses.nt_xent(z1, z2, 0.1)), rel=1e-5)
  # Known answer: 3 identical views of 2 orthogonal examples. Each anchor: 2 positives of
  # similarity 1, 3 negatives of 0 -> -log(2 e^(1/T) / (2 e^(1/T) + 3)).
  z = np.eye(2)
  expected = -math.log(2 * math.exp(2) / (2 * math.exp(2) + 3))
  assert float(losses.nt_xent_multi_view([z, z, z], 0.5)) == pytest.approx(expected, rel=1e-6)
  with pytest.raises(ValueError, match="at least 2 views"):
    losses.nt_xent_multi_view([z], 0.5)


def test_nt_xent_scale_invariant():
  rng = np.random.default_rng(1)
  z1, z2 = rng.normal(size=(2, 8, 4)).astype(np.float32)
  base = losses.nt_xent(z1, z2, 0.2)
  scaled = losses.nt_xent(37.0 * z1, 0.01 * z2, 0.2)
  np.testing.assert_allclose(scaled, base, rtol=1e-5)


def test_nt_xent_gradient_pulls_positive_together():
  # One step of gradient descent on z1 must increase the positive cosine similarity.
  rng = np.random.default_rng(2)
  z1, z2 = rng.normal(size=(2, 4, 3)).astype(np.float32)
  grad = jax.grad(losses.nt_xent)(z1, z2, 0.5)
  moved = z1 - 0.1 * grad
  cos = lambda a, b: np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
  assert np.all(cos(moved, z2) > cos(z1, z2))
