"""The video contrastive losses (jax_ssl/losses/video.py) against hand-computed values and a
numpy transcription of CVRL's TensorFlow loss."""

import math

import numpy as np
import pytest

from jax_ssl import losses

E = math.e


def test_cvrl_hand_computed():
  # Orthogonal unit rows, tau = 1: every anchor has its positive at cos 1 and two others at
  # cos 0 among the 3 non-self clips: -log(e / (e + 2)) per anchor, each side's mean the same,
  # and CVRL adds the two sides.
  z = np.eye(2, dtype=np.float32)
  expected = 2 * (math.log(E + 2) - 1)
  assert float(losses.cvrl(z, 3 * z, 1.0)) == pytest.approx(expected, rel=1e-6)
  assert float(losses.cvrl(z, z, 1.0)) == pytest.approx(2 * float(losses.nt_xent(z, z, 1.0)))


def _tf_contrastive_loss(hidden1, hidden2, temperature):
  """numpy, float64: tensorflow/models official/projects/video_ssl/losses/losses.py
  `contrastive_loss` on one replica (normalize_hidden=True, no weight decay)."""
  unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)
  h1, h2 = unit(np.asarray(hidden1, np.float64)), unit(np.asarray(hidden2, np.float64))
  n = h1.shape[0]
  labels = np.eye(n, 2 * n)
  masks = np.eye(n)
  logits_aa = h1 @ h1.T / temperature - masks * 1e9
  logits_bb = h2 @ h2.T / temperature - masks * 1e9
  logits_ab = h1 @ h2.T / temperature
  logits_ba = h2 @ h1.T / temperature

  def softmax_cross_entropy(logits):
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return np.mean(-(labels * log_probs).sum(axis=1))

  return (softmax_cross_entropy(np.concatenate([logits_ab, logits_aa], 1))
          + softmax_cross_entropy(np.concatenate([logits_ba, logits_bb], 1)))


def test_cvrl_is_the_reference_tensorflow_loss():
  rng = np.random.default_rng(0)
  z1, z2 = (rng.normal(size=(6, 5)).astype(np.float32) for _ in range(2))
  assert float(losses.cvrl(z1, z2, 0.1)) == pytest.approx(_tf_contrastive_loss(z1, z2, 0.1),
                                                         rel=1e-5)


def test_rspnet_speed_ranking_hand_computed():
  # Video 0: cos to its same-speed key 0.6, to its other-speed key 0; over tau = 0.5: 1.2 and
  # 0, hinge max(0, 2 - 1.2) = 0.8 (ranked right). Video 1: same-speed key is key 0 at cos 0,
  # the other-speed key 1 at cos 1: 0 - 2 = -2, hinge 4 (ranked wrong). Video 2: both keys at
  # the query's speed, no triplet: not in the mean. (0.8 + 4) / 2 = 2.4.
  query = np.array([[1.0, 0.0], [0.0, 3.0], [1.0, 0.0]], np.float32)
  keys = np.array([[[0.6, 0.8], [0.0, 1.0]],
                   [[1.0, 0.0], [0.0, 2.0]],
                   [[1.0, 0.0], [0.0, 1.0]]], np.float32)
  same_speed = np.array([[True, False], [True, False], [True, True]])
  loss = losses.rspnet_speed_ranking(query, keys, same_speed, temperature=0.5, margin=2.0)
  assert loss.shape == () and float(loss) == pytest.approx(2.4, rel=1e-6)
  assert float(losses.speed_ranking_accuracy(query, keys, same_speed)) == 0.5
  # Which key is the same-speed one comes from `same_speed`, not from its position: video 1
  # with key 1 at its speed is ranked right by a gap of 2 / 0.5 = 4 > margin: hinge 0.
  same_speed[1] = [False, True]
  assert float(losses.rspnet_speed_ranking(query, keys, same_speed, 0.5, 2.0)) == pytest.approx(
      0.4, rel=1e-6)
  # No triplet at all: 0, not NaN.
  assert float(losses.rspnet_speed_ranking(query, keys, np.ones((3, 2), bool), 0.5, 2.0)) == 0.0


def test_rspnet_appearance_hand_computed():
  # tau = 1, one video; positives at cos 1 and 0, negatives [0, 1] and [-1, 0] at cos 0, -1:
  # ce1 = -log(e / (e + 1 + 1/e)), ce2 = -log(1 / (1 + 1 + 1/e)); RSPNet adds them.
  query = np.array([[2.0, 0.0]], np.float32)
  keys = [np.array([[1.0, 0.0]], np.float32), np.array([[0.0, 5.0]], np.float32)]
  queue = np.array([[0.0, 1.0], [-1.0, 0.0]], np.float32)
  expected = (math.log(E + 1 + 1 / E) - 1) + math.log(2 + 1 / E)
  assert float(losses.rspnet_appearance(query, keys, queue, 1.0)) == pytest.approx(expected,
                                                                                  rel=1e-6)


def test_rho_byol_hand_computed():
  # byol(p, z) = 2 - 2 cos(p, z). Targets z0, z1, z2 each predicted by the two other clips:
  # (z0: p1 -> 2, p2 -> 2 - sqrt2), (z1: p0 -> 2, p2 -> 2 - sqrt2), (z2: p0 -> 4, p1 -> 2):
  # 14 - 2 sqrt2, over rho - 1 = 2.
  p = [np.array([[1.0, 0.0]], np.float32), np.array([[0.0, 1.0]], np.float32),
       np.array([[1.0, 1.0]], np.float32)]
  z = [np.array([[1.0, 0.0]], np.float32), np.array([[0.0, 1.0]], np.float32),
       np.array([[-1.0, 0.0]], np.float32)]
  assert float(losses.rho_byol(p, z)) == pytest.approx(7 - math.sqrt(2), rel=1e-6)
  # Two targets: BYOL's symmetrised loss; with a third (local) prediction, its two pairs added.
  assert float(losses.rho_byol(p[:2], z[:2])) == pytest.approx(
      float(losses.byol(p[1], z[0]) + losses.byol(p[0], z[1])), rel=1e-6)
  assert float(losses.rho_byol(p, z[:2])) == pytest.approx(8 - 2 * math.sqrt(2), rel=1e-6)


def test_rho_moco_hand_computed():
  # tau = 1, every key [1, 0]; queue j holds one negative n_j: n0 = n1 = [0, 1], n2 = [-1, 0].
  # Pair (query i, key j) has logits [q_i . k, q_i . n_j], cross-entropy with label 0:
  # (0,1) [1, 0], (0,2) [1, -1], (1,0) [0, 1], (1,2) [0, 0], (2,0) [1, 0], (2,1) [1, 0].
  queries = [np.array([[1.0, 0.0]], np.float32), np.array([[0.0, 1.0]], np.float32),
             np.array([[1.0, 0.0]], np.float32)]
  keys = [np.array([[1.0, 0.0]], np.float32)] * 3
  queues = [np.array([[0.0, 1.0]], np.float32), np.array([[0.0, 1.0]], np.float32),
            np.array([[-1.0, 0.0]], np.float32)]
  ce_10 = math.log(E + 1) - 1
  expected = (3 * ce_10 + (math.log(E + 1 / E) - 1) + math.log(1 + E) + math.log(2)) / 6
  assert float(losses.rho_moco(queries, keys, queues, 1.0)) == pytest.approx(expected, rel=1e-6)
  # rho = 2: MoCo v2's symmetrised loss, each query against the other clip's queue.
  assert float(losses.rho_moco(queries[:2], keys[:2], queues[:2], 0.2)) == pytest.approx(
      0.5 * float(losses.moco_v2(queries[0], keys[1], queues[1], 0.2)
                  + losses.moco_v2(queries[1], keys[0], queues[0], 0.2)), rel=1e-6)
