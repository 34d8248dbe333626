"""Standalone pure loss functions: arrays in, scalar out, no config, no globals.

Each function is differentiable and jit-able. Called on global (sharded) arrays under
`jax.jit`, every reduction runs over the global batch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike


def l2_normalize(x: ArrayLike, axis: int = -1, eps: float = 1e-12) -> jax.Array:
  """x / max(||x||, eps) along `axis`."""
  x = jnp.asarray(x)
  norm = jnp.sqrt(jnp.sum(jnp.square(x), axis=axis, keepdims=True))
  return x / jnp.maximum(norm, eps)


def nt_xent(z1: ArrayLike, z2: ArrayLike, temperature: float) -> jax.Array:
  """Normalised-temperature cross-entropy (SimCLR's NT-Xent).

  Args:
    z1: [N, D] projections of the first views.
    z2: [N, D] projections of the second views (row i is the positive of z1's row i).
    temperature: softmax temperature tau > 0.

  Returns:
    Scalar: mean over the 2N anchors a of
    -log( exp(s(a, pos(a))/tau) / sum_{b != a} exp(s(a, b)/tau) ), with s the cosine
    similarity; every other view of the batch is a negative.

  References:
    Chen et al., "A Simple Framework for Contrastive Learning of Visual Representations",
    ICML 2020, eq. (1).
  """
  z1 = jnp.asarray(z1, jnp.float32)
  z2 = jnp.asarray(z2, jnp.float32)
  num_pairs = z1.shape[0]
  z = l2_normalize(jnp.concatenate([z1, z2], axis=0))
  logits = (z @ z.T) / temperature
  # An anchor is never its own negative: drop the diagonal from the softmax.
  logits = jnp.where(jnp.eye(2 * num_pairs, dtype=bool), -jnp.inf, logits)
  positive_index = jnp.concatenate(
      [jnp.arange(num_pairs) + num_pairs, jnp.arange(num_pairs)])
  positive_logit = jnp.take_along_axis(logits, positive_index[:, None], axis=1)[:, 0]
  return jnp.mean(jax.nn.logsumexp(logits, axis=1) - positive_logit)
