"""iBOT's and DINOv2's distillation losses against hand-computed values: the masked-patch
loss (masked tokens only, per-image mean), KoLeo on three hand-placed points, Sinkhorn-Knopp
against a float64 loop of DINOv2's `sinkhorn_knopp_teacher` (and on 1 vs 8 devices), the
cross-view loss against DINO's, and the patch center's update."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec

from jax_ssl import losses, sharding

LN2 = math.log(2.0)


def test_ibot_patch_loss_counts_masked_tokens_only_per_image_mean():
  # K = 2, student_temp 1. Image 0: token 0 log-probs [-ln2, -ln2] vs target [1, 0] -> ln2;
  # token 1 probs [3/4, 1/4] vs target [0, 1] -> ln4; token 2 is wildly wrong but unmasked.
  # Image 1: only token 0 masked (ln2). Per image then over images: (1.5 ln2 + ln2) / 2;
  # a mean over all masked tokens would be (ln2 + ln4 + ln2) / 3.
  student = np.array([[[0.0, 0.0], [math.log(3.0), 0.0], [100.0, -100.0]],
                      [[0.0, 0.0], [5.0, 0.0], [0.0, 7.0]]])[None]  # [V=1, B=2, M=3, K=2]
  teacher = np.array([[[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]],
                      [[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]])[None]
  mask = np.array([[[True, True, False], [True, False, False]]])
  got = float(losses.ibot_patch(student, teacher, mask, 1.0))
  assert got == pytest.approx(1.25 * LN2, rel=1e-6)
  # An image with nothing masked counts 0 in the mean over images (the reference's clamp).
  none_in_image_1 = mask.copy()
  none_in_image_1[0, 1] = False
  assert float(losses.ibot_patch(student, teacher, none_in_image_1, 1.0)) == pytest.approx(
      0.75 * LN2, rel=1e-6)
  # The temperature divides the student's logits.
  assert float(losses.ibot_patch(student / 2, teacher, mask, 0.5)) == pytest.approx(got, rel=1e-6)
  # No gradient reaches the teacher's targets.
  grad = jax.grad(lambda t: losses.ibot_patch(student, t, mask, 1.0))(jnp.asarray(teacher))
  assert not np.any(np.asarray(grad))


def test_koleo_on_three_hand_placed_points():
  # Directions 0, 60 and 180 degrees (norms 2, 0.5, 3: the rows are normalised first).
  # Nearest neighbours: 0 <-> 60 at distance 1 (chord 2 sin 30), and 180 -> 60 at 2 sin 60.
  points = np.array([[2.0, 0.0], [0.25, 0.25 * math.sqrt(3.0)], [-3.0, 0.0]])
  expected = -(0.0 + 0.0 + math.log(math.sqrt(3.0))) / 3
  assert float(losses.koleo(points)) == pytest.approx(expected, abs=1e-6)
  # Duplicate rows: distance ~0, the loss is large but its gradient stays finite (the
  # reference's PairwiseDistance adds eps to the difference).
  duplicates = jnp.asarray([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
  assert float(losses.koleo(duplicates)) > 10
  assert np.all(np.isfinite(np.asarray(jax.grad(losses.koleo)(duplicates))))


def _dinov2_sinkhorn(logits, temp, iterations):
  """facebookresearch/dinov2 DINOLoss.sinkhorn_knopp_teacher, one process, float64."""
  q = np.exp(np.asarray(logits, np.float64) / temp).T  # [K, B]
  samples, prototypes = q.shape[1], q.shape[0]
  q /= q.sum()
  for _ in range(iterations):
    q /= q.sum(axis=1, keepdims=True)
    q /= prototypes
    q /= q.sum(axis=0, keepdims=True)
    q /= samples
  return (q * samples).T


def test_sinkhorn_teacher_probs_match_dinov2_loop():
  logits = np.array([[0.3, -0.2, 0.9, 0.1], [1.2, 0.4, -0.5, 0.0], [0.0, 0.8, 0.2, -0.3]])
  got = np.asarray(losses.sinkhorn_teacher_probs(logits, 0.5, 3))
  np.testing.assert_allclose(got, _dinov2_sinkhorn(logits, 0.5, 3), rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-6)  # each row an assignment
  # The prototypes' marginals approach B / K = 0.75 (3 iterations: close, not exact).
  np.testing.assert_allclose(got.sum(axis=0), 0.75, atol=0.05)
  assert np.abs(got.sum(axis=0) - 0.75).max() < np.abs(
      _dinov2_sinkhorn(logits, 0.5, 0).sum(axis=0) - 0.75).max()
  # Leading axes are rows of one problem; invalid rows (unmasked tokens) take no part.
  stacked = np.stack([logits, logits + 5.0])  # [2, 3, 4]
  valid = np.array([[True, True, True], [False, False, False]])
  masked = np.asarray(losses.sinkhorn_teacher_probs(stacked, 0.5, 3, valid))
  np.testing.assert_allclose(masked[0], got, rtol=1e-5)
  assert not np.any(masked[1])
  # Nothing valid at all: zeros, not nan.
  assert not np.any(np.asarray(losses.sinkhorn_teacher_probs(stacked, 0.5, 3,
                                                             np.zeros((2, 3), bool))))


def test_sinkhorn_spans_the_global_batch_on_8_devices():
  # The marginals are sums over the whole (sharded) batch, as DINOv2's all-reduces make
  # them; KoLeo's global neighbours: tests/methods/test_ibot.py's 1-vs-8-device step.
  logits = jax.random.normal(jax.random.key(0), (16, 6))
  mesh = sharding.make_mesh(8)
  sharded = jax.device_put(logits, NamedSharding(mesh, PartitionSpec(sharding.DATA_AXIS)))
  fn = jax.jit(lambda x: losses.sinkhorn_teacher_probs(x, 0.1, 3))
  np.testing.assert_allclose(np.asarray(fn(sharded)), np.asarray(fn(logits)), rtol=1e-5,
                             atol=1e-6)


def test_cross_view_cross_entropy_with_centered_targets_is_dinos_loss():
  rng = np.random.default_rng(0)
  student, teacher = rng.normal(size=(4, 3, 5)), rng.normal(size=(2, 3, 5))
  center = rng.normal(size=(5,))
  targets = losses.centered_teacher_probs(teacher, center, 0.07)
  np.testing.assert_allclose(np.asarray(targets).sum(-1), 1.0, rtol=1e-6)
  assert float(losses.cross_view_cross_entropy(student, targets, 0.1)) == pytest.approx(
      float(losses.dino(student, teacher, center, 0.1, 0.07)), rel=1e-6)


def test_patch_center_moves_by_the_mean_over_masked_tokens():
  # Image 0: 2 masked tokens summing to [2, 4]; image 1: none. Mean token [1, 2].
  new = losses.patch_center_update(np.zeros(2), np.array([[2.0, 4.0], [0.0, 0.0]]),
                                   np.array([2.0, 0.0]), 0.9)
  np.testing.assert_allclose(np.asarray(new), [0.1, 0.2], rtol=1e-6)
  # Nothing masked in the batch: the center stays.
  same = losses.patch_center_update(np.array([3.0, -1.0]), np.zeros((2, 2)), np.zeros(2), 0.9)
  np.testing.assert_array_equal(np.asarray(same), [3.0, -1.0])
