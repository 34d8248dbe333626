"""Contrastive losses: the other examples of the (global) batch or a queue are negatives."""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike


def l2_normalize(x: ArrayLike, axis: int = -1, eps: float = 1e-12) -> jax.Array:
  """x / max(||x||, eps) along `axis`."""
  x = jnp.asarray(x)
  # rsqrt of the clamped squared norm: same values as x / max(||x||, eps), and a finite
  # gradient for an all-zero row (sqrt's derivative at 0 would make it NaN).
  squared_norm = jnp.sum(jnp.square(x), axis=axis, keepdims=True)
  return x * jax.lax.rsqrt(jnp.maximum(squared_norm, eps * eps))


def nt_xent(z1: ArrayLike, z2: ArrayLike, temperature: float) -> jax.Array:
  """Normalised-temperature cross-entropy (SimCLR's NT-Xent).

  Args:
    z1: [N, D] projections of the first views.
    z2: [N, D] projections of the second views (row i is the positive of z1's row i).
    temperature: softmax temperature tau > 0.

  Returns:
    Scalar: mean over the 2N anchors a of
    -log( exp(s(a, pos(a))/tau) / sum_{b != a} exp(s(a, b)/tau) ), with s the cosine
    similarity; every other view of the batch is a negative. The 2-view case of
    `nt_xent_multi_view`, which computes it.

  References:
    Chen et al., "A Simple Framework for Contrastive Learning of Visual Representations",
    ICML 2020, eq. (1).
  """
  return nt_xent_multi_view([z1, z2], temperature)


def nt_xent_multi_view(views: Sequence[ArrayLike], temperature: float) -> jax.Array:
  """NT-Xent over V >= 2 views of the same N examples (multi-crop SimCLR, as solo-learn's).

  Args:
    views: V arrays [N, D]; row i of every view comes from example i (global crops and
      multi-crop local crops alike).
    temperature: softmax temperature tau > 0.

  Returns:
    Scalar: mean over the V*N anchors a of
    -log( sum_{p in P(a)} exp(s(a, p)/tau) / sum_{b != a} exp(s(a, b)/tau) ), with P(a) the
    V - 1 other views of a's example and s the cosine similarity; every view of every other
    example is a negative. With V = 2 this is `nt_xent`.
  """
  if len(views) < 2:
    raise ValueError(f"nt_xent_multi_view needs at least 2 views, got {len(views)}")
  num_examples = jnp.shape(views[0])[0]
  z = l2_normalize(jnp.concatenate([jnp.asarray(v, jnp.float32) for v in views], axis=0))
  logits = (z @ z.T) / temperature
  example = jnp.tile(jnp.arange(num_examples), len(views))
  self_pair = jnp.eye(z.shape[0], dtype=bool)
  logits = jnp.where(self_pair, -jnp.inf, logits)
  positive = (example[:, None] == example[None, :]) & ~self_pair
  positive_logsumexp = jax.nn.logsumexp(jnp.where(positive, logits, -jnp.inf), axis=1)
  return jnp.mean(jax.nn.logsumexp(logits, axis=1) - positive_logsumexp)


def _diagonal_cross_entropy(logits: jax.Array) -> jax.Array:
  """mean_i (logsumexp_j logits_ij - logits_ii): cross-entropy with label i for row i."""
  return jnp.mean(jax.nn.logsumexp(logits, axis=1) - jnp.diagonal(logits))


def info_nce(query: ArrayLike, key: ArrayLike, temperature: float,
             scale_by_temperature: bool = True) -> jax.Array:
  """MoCo v3's InfoNCE: every other key of the (global) batch is a negative.

  Args:
    query: [N, D] queries (predictor outputs of one view); rows are L2-normalised inside.
    key: [N, D] keys (momentum-encoder outputs of the other view), row i the positive of
      query i; rows are L2-normalised inside. No stop-gradient inside: the caller stops it.
    temperature: tau > 0.
    scale_by_temperature: multiply by 2 * tau, as MoCo v3's code does (keeps the gradient
      scale independent of tau); False gives the plain cross-entropy.

  Returns:
    Scalar: (2 tau) * mean_i -log softmax_j(q_i . k_j / tau)[i]. The method's loss is the
    symmetrised info_nce(q1, k2) + info_nce(q2, k1).

  References:
    Chen, Xie & He, "An Empirical Study of Training Self-Supervised Vision Transformers",
    ICCV 2021, Algorithm 1 (`ctr`) and facebookresearch/moco-v3 `contrastive_loss`.
  """
  query = l2_normalize(jnp.asarray(query, jnp.float32))
  key = l2_normalize(jnp.asarray(key, jnp.float32))
  loss = _diagonal_cross_entropy((query @ key.T) / temperature)
  return loss * (2.0 * temperature) if scale_by_temperature else loss


def moco_v2(query: ArrayLike, key: ArrayLike, queue: ArrayLike,
            temperature: float) -> jax.Array:
  """MoCo (v1/v2) InfoNCE: one positive key per query, negatives only from a queue.

  Args:
    query: [N, D] queries; rows are L2-normalised inside.
    key: [N, D] keys, row i the positive of query i; L2-normalised inside. No stop-gradient
      inside: the caller stops the key (and the queue, if it is a traced array).
    queue: [K, D] keys of earlier batches (the negatives); L2-normalised inside (a no-op on
      MoCo's queue, which stores normalised keys). In-batch keys are not negatives.
    temperature: tau > 0 (MoCo v2: 0.2).

  Returns:
    Scalar: mean_i -log softmax([q_i . k_i, q_i . n_1, ..., q_i . n_K] / tau)[0], i.e. the
    cross-entropy of [N, 1 + K] logits with label 0.

  References:
    He et al., "Momentum Contrast for Unsupervised Visual Representation Learning", CVPR 2020,
    eq. (1) and Algorithm 1; Chen et al., "Improved Baselines with Momentum Contrastive
    Learning", 2020 (MoCo v2: the same loss).
  """
  query = l2_normalize(jnp.asarray(query, jnp.float32))
  key = l2_normalize(jnp.asarray(key, jnp.float32))
  queue = l2_normalize(jnp.asarray(queue, jnp.float32))
  positive = jnp.sum(query * key, axis=1, keepdims=True)
  logits = jnp.concatenate([positive, query @ queue.T], axis=1) / temperature
  return jnp.mean(jax.nn.logsumexp(logits, axis=1) - logits[:, 0])


def nearest_neighbour(z: ArrayLike, support: ArrayLike) -> jax.Array:
  """NNCLR's nearest neighbour: for each row of z, the most cosine-similar support row.

  Args:
    z: [N, D] projections (rows L2-normalised inside for the search).
    support: [Q, D] support set (NNCLR's queue of earlier projections).

  Returns:
    [N, D] the selected support rows, as stored (not re-normalised), with no gradient.
    Ties go to the lowest support index.

  References:
    Dwibedi et al., "With a Little Help from My Friends: Nearest-Neighbor Contrastive Learning
    of Visual Representations", ICCV 2021, eq. (2); solo-learn `NNCLR.find_nn`.
  """
  z = jax.lax.stop_gradient(jnp.asarray(z, jnp.float32))
  support = jax.lax.stop_gradient(jnp.asarray(support, jnp.float32))
  index = jnp.argmax(l2_normalize(z) @ l2_normalize(support).T, axis=1)
  return support[index]


def nnclr(nn: ArrayLike, p: ArrayLike, temperature: float) -> jax.Array:
  """NNCLR's InfoNCE between nearest neighbours of one view and predictions of the other.

  Args:
    nn: [N, D] nearest neighbours NN(z1_i) (see `nearest_neighbour`); stop-gradient inside.
    p: [N, D] predictions of the second views, row i the positive of nn row i.
    temperature: tau > 0.

  Returns:
    Scalar: mean_i -log softmax_j(nn_i . p_j / tau)[i] with rows L2-normalised: the other
    predictions of the (global) batch are the negatives. The method's loss is
    0.5 * nnclr(NN(z1), p2) + 0.5 * nnclr(NN(z2), p1).

  References:
    Dwibedi et al. 2021, eq. (2)-(3); solo-learn `nnclr_loss_func`.
  """
  nn = l2_normalize(jax.lax.stop_gradient(jnp.asarray(nn, jnp.float32)))
  p = l2_normalize(jnp.asarray(p, jnp.float32))
  return _diagonal_cross_entropy((nn @ p.T) / temperature)
