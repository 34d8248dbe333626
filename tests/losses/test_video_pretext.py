"""The temporal pretext losses (jax_ssl/losses/video_pretext.py) against hand-computed values."""

import math

import numpy as np
import pytest

from jax_ssl import losses


def test_pretext_cross_entropy_hand_computed():
  # Row 0: logits (0, log 3) -> p = (1/4, 3/4); label 1: -log(3/4) = log(4/3).
  # Row 1: logits (0, 0) -> p = (1/2, 1/2); label 0: log 2.
  logits = np.array([[0.0, math.log(3.0)], [0.0, 0.0]], np.float32)
  labels = np.array([1, 0])
  mean = (math.log(4 / 3) + math.log(2)) / 2
  assert float(losses.pretext_cross_entropy(logits, labels)) == pytest.approx(mean, rel=1e-6)
  # The label picks the class: label 0 in row 0 costs -log(1/4) = log 4.
  assert float(losses.pretext_cross_entropy(logits[:1], np.array([0]))) == pytest.approx(
      math.log(4), rel=1e-6)
  # Weights: row 1 weighted 0 -> only row 0 counts; weights 1 and 3 -> (log(4/3) + 3 log 2) / 4.
  assert float(losses.pretext_cross_entropy(logits, labels, np.array([1.0, 0.0]))) == (
      pytest.approx(math.log(4 / 3), rel=1e-6))
  assert float(losses.pretext_cross_entropy(logits, labels, np.array([1.0, 3.0]))) == (
      pytest.approx((math.log(4 / 3) + 3 * math.log(2)) / 4, rel=1e-6))
  # No clip counts: 0, not NaN.
  assert float(losses.pretext_cross_entropy(logits, labels, np.zeros(2))) == 0.0


def test_temporal_pretext_sums_the_tasks():
  # Task A: 2 classes, as above (mean (log(4/3) + log 2) / 2); task B: 3 equal logits ->
  # log 3 for any label, whatever the weights (a weight 0 on row 1 leaves row 0: log 3).
  a_logits = np.array([[0.0, math.log(3.0)], [0.0, 0.0]], np.float32)
  b_logits = np.zeros((2, 3), np.float32)
  total = losses.temporal_pretext([a_logits, b_logits], [np.array([1, 0]), np.array([2, 1])],
                                  [None, np.array([1.0, 0.0])])
  expected = (math.log(4 / 3) + math.log(2)) / 2 + math.log(3)
  assert float(total) == pytest.approx(expected, rel=1e-6)
  with pytest.raises(ValueError, match="2 logits for 1 label"):
    losses.temporal_pretext([a_logits, b_logits], [np.array([1, 0])])
