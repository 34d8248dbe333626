"""Masked image modelling losses: pixel reconstruction on the masked patches only.

Predictions and targets are per patch, [B, N, P] with P = p * p * C pixel values
(`jax_ssl.masking.patchify` order); masks are [B, N], 1 (True) = masked.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike


def normalized_patches(patches: ArrayLike, epsilon: float = 1e-6) -> jax.Array:
  """MAE's `norm_pix_loss` target: every patch standardised by its own pixels.

  Args:
    patches: [..., P] pixel values of each patch.
    epsilon: added to the variance.

  Returns:
    [..., P]: (x - mean) / sqrt(var + epsilon), mean and the unbiased (ddof 1, torch's
    default `Tensor.var`) variance over the P values of each patch.

  References:
    He et al., "Masked Autoencoders Are Scalable Vision Learners", CVPR 2022, sec. 4
    ("Reconstruction target"); `MaskedAutoencoderViT.forward_loss` of the official code.
  """
  patches = jnp.asarray(patches, jnp.float32)
  mean = jnp.mean(patches, axis=-1, keepdims=True)
  variance = jnp.var(patches, axis=-1, ddof=1, keepdims=True)
  return (patches - mean) * jax.lax.rsqrt(variance + epsilon)


def _mean_over_masked(per_patch: jax.Array, mask: ArrayLike) -> jax.Array:
  mask = jnp.asarray(mask, jnp.float32)
  return jnp.sum(per_patch * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def mae(pred: ArrayLike, target: ArrayLike, mask: ArrayLike) -> jax.Array:
  """MAE's reconstruction loss: mean squared error per patch, averaged over masked patches.

  Args:
    pred: [B, N, P] predicted pixels.
    target: [B, N, P] target pixels (raw or `normalized_patches`).
    mask: [B, N], 1 = masked (only these count).

  Returns:
    Scalar: sum_{b,n} m_bn * mean_p (pred - target)^2 / sum_{b,n} m_bn (0 if nothing is
    masked). Under `jax.jit` on a sharded batch both sums span the global batch.

  References:
    He et al., "Masked Autoencoders Are Scalable Vision Learners", CVPR 2022, sec. 3.
  """
  pred, target = jnp.asarray(pred, jnp.float32), jnp.asarray(target, jnp.float32)
  return _mean_over_masked(jnp.mean(jnp.square(pred - target), axis=-1), mask)


def simmim(pred: ArrayLike, target: ArrayLike, mask: ArrayLike) -> jax.Array:
  """SimMIM's reconstruction loss: L1, averaged over the pixel values of masked patches.

  Args:
    pred: [B, N, P] predicted pixels.
    target: [B, N, P] target pixels.
    mask: [B, N], 1 = masked.

  Returns:
    Scalar: sum_{b,n} m_bn * mean_p |pred - target| / sum_{b,n} m_bn, i.e. the mean of |error|
    over every pixel value of every masked patch (SimMIM divides the sum over masked pixels
    and channels by their count: the same number, as every patch has P values).

  References:
    Xie et al., "SimMIM: A Simple Framework for Masked Image Modeling", CVPR 2022, eq. (1).
  """
  pred, target = jnp.asarray(pred, jnp.float32), jnp.asarray(target, jnp.float32)
  return _mean_over_masked(jnp.mean(jnp.abs(pred - target), axis=-1), mask)
