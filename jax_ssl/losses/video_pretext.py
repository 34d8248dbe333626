"""Temporal pretext losses: classify how a clip was played (frame order, direction, speed).

The labels are made by the method (jax_ssl/methods/temporal_pretext.py: shuffled or not,
reversed or not, the index of the clip's playback speed); the losses here only score a
classifier's logits against them. Under `jax.jit` on a sharded batch the means span the
global batch.

References:
  Misra, Zitnick & Hebert, "Shuffle and Learn: Unsupervised Learning using Temporal Order
  Verification", ECCV 2016 (order).
  Wei, Lim, Zisserman & Freeman, "Learning and Using the Arrow of Time", CVPR 2018 (arrow).
  Benaim et al., "SpeedNet: Learning the Speediness in Videos", CVPR 2020; Wang, Jiao & Liu,
  "Self-supervised Video Representation Learning by Pace Prediction", ECCV 2020 (speed).
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike


def pretext_cross_entropy(logits: ArrayLike, labels: ArrayLike,
                          weights: ArrayLike | None = None) -> jax.Array:
  """Softmax cross-entropy of one pretext classifier, averaged over the (weighted) clips.

  Args:
    logits: [N, K] class scores.
    labels: [N] int classes in [0, K).
    weights: [N] non-negative weights (None: all 1); e.g. 0 for the clips whose label has
      no meaning (the direction of a shuffled clip).

  Returns:
    Scalar: sum_i w_i (logsumexp(logits_i) - logits_i[labels_i]) / max(sum_i w_i, 1).
  """
  logits = jnp.asarray(logits, jnp.float32)
  labels = jnp.asarray(labels, jnp.int32)
  picked = jnp.take_along_axis(logits, labels[:, None], axis=1)[:, 0]
  per_clip = jax.nn.logsumexp(logits, axis=1) - picked
  if weights is None:
    return jnp.mean(per_clip)
  weights = jnp.asarray(weights, jnp.float32)
  return jnp.sum(weights * per_clip) / jnp.maximum(jnp.sum(weights), 1.0)


def temporal_pretext(logits: Sequence[ArrayLike], labels: Sequence[ArrayLike],
                     weights: Sequence[ArrayLike | None] | None = None) -> jax.Array:
  """The temporal pretext tasks together: the sum over tasks of `pretext_cross_entropy`.

  Args:
    logits: one [N, K_task] array per task.
    labels: one [N] int array per task, in the same order.
    weights: one [N] array (or None) per task; None: every clip counts in every task.

  Returns:
    Scalar: sum_task pretext_cross_entropy(logits_task, labels_task, weights_task) (each
    task weighted 1, as a multi-task sum of its classifiers' losses).
  """
  if len(logits) != len(labels):
    raise ValueError(f"{len(logits)} logits for {len(labels)} label arrays")
  weights = [None] * len(logits) if weights is None else list(weights)
  return sum((pretext_cross_entropy(l, y, w) for l, y, w in zip(logits, labels, weights)),
             jnp.zeros((), jnp.float32))
