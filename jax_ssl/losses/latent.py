"""Latent prediction losses: a predictor regresses a target encoder's features of tokens it
did not see (I-JEPA; CNN-JEPA on a convolutional feature map), or a causal transformer the
next token's input embedding (NEPA). data2vec 2.0's targets and loss: data2vec.py.

I-JEPA's predictions and targets are per token, [..., K, D]; `valid` [..., K] marks the
tokens that count (False: the padding that keeps a varying number of tokens in a static
shape). CNN-JEPA's are feature maps [B, h, w, C] with a [B, h, w] mask of target positions.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jax_ssl.losses.contrastive import l2_normalize

LATENT_LOSSES = ("smooth_l1", "l2")


def feature_layer_norm(features: ArrayLike, epsilon: float = 1e-5) -> jax.Array:
  """A LayerNorm without parameters over the last (feature) axis, in float32.

  I-JEPA's targets: `F.layer_norm(h, (h.size(-1),))` of the target encoder's output in
  facebookresearch/ijepa src/train.py (torch's default epsilon 1e-5, biased variance).
  """
  features = jnp.asarray(features, jnp.float32)
  mean = jnp.mean(features, axis=-1, keepdims=True)
  variance = jnp.var(features, axis=-1, keepdims=True)
  return (features - mean) * jax.lax.rsqrt(variance + epsilon)


def smooth_l1(error: ArrayLike, beta: float = 1.0) -> jax.Array:
  """Elementwise Huber / smooth-L1 of `error` as torch's `F.smooth_l1_loss`: 0.5 x^2 / beta
  where |x| < beta, else |x| - 0.5 beta."""
  error = jnp.abs(jnp.asarray(error, jnp.float32))
  return jnp.where(error < beta, 0.5 * jnp.square(error) / beta, error - 0.5 * beta)


def ijepa(pred: ArrayLike, target: ArrayLike, valid: ArrayLike, loss: str = "smooth_l1",
          beta: float = 1.0) -> jax.Array:
  """I-JEPA's regression of target-encoder features, averaged over the valid tokens.

  Args:
    pred: [..., K, D] the predictor's outputs at the target tokens.
    target: [..., K, D] the target encoder's (layer-normalised) features there.
    valid: [..., K], True (1) for the tokens that count.
    loss: "smooth_l1" (the official code: `F.smooth_l1_loss`, beta 1) or "l2" (the paper's
      eq. (1): the squared error).
    beta: smooth-L1's switch from quadratic to linear.

  Returns:
    Scalar: sum_k v_k * mean_d l(pred - target) / sum_k v_k (0 if nothing is valid), with
    l = smooth_l1 or the square. With every token valid this is the mean over all elements,
    as `F.smooth_l1_loss` (mean reduction) computes it. The paper's eq. (1) sums the squared
    error over each block's tokens and features and averages over blocks: "l2" is that
    divided by the block's size and D (a per-batch constant, since one batch's target
    blocks all have one size).

  References:
    Assran et al., "Self-Supervised Learning from Images with a Joint-Embedding Predictive
    Architecture", CVPR 2023, eq. (1); facebookresearch/ijepa src/train.py (`loss_fn`).
  """
  if loss not in LATENT_LOSSES:
    raise ValueError(f"loss={loss!r}; use one of {LATENT_LOSSES}")
  error = jnp.asarray(pred, jnp.float32) - jnp.asarray(target, jnp.float32)
  per_element = smooth_l1(error, beta) if loss == "smooth_l1" else jnp.square(error)
  per_token = jnp.mean(per_element, axis=-1)
  valid = jnp.asarray(valid, jnp.float32)
  return jnp.sum(per_token * valid) / jnp.maximum(jnp.sum(valid), 1.0)


def cnn_jepa(pred: ArrayLike, target: ArrayLike, target_mask: ArrayLike,
             kind: str = "smooth_l1") -> jax.Array:
  """CNN-JEPA's loss: per position, a distance between the L2-normalised predicted and target
  feature vectors, averaged over the target positions.

  Args:
    pred: [B, h, w, C] the predictor's output.
    target: [B, h, w, C] the target encoder's feature map (no gradient is stopped here:
      the caller stops it).
    target_mask: [B, h, w], 1 = a target position (only these count).
    kind: "smooth_l1" (the reference code: torch's `smooth_l1_loss` with beta 1,
      0.5 d^2 where |d| < 1 else |d| - 0.5, summed over the C channels) or "l2" (the squared
      Euclidean distance summed over the channels, 2 - 2 cos(p, t) for unit vectors).

  Returns:
    Scalar: sum_{b,i,j} m_bij * sum_c f(p_bijc - t_bijc) / sum_{b,i,j} m_bij (0 if no position
    is a target), p and t the vectors over their L2 norms (max with 1e-12, torch's
    `F.normalize`). Under `jax.jit` on a sharded batch both sums span the global batch.

  References:
    Kalapos & Gyires-Toth, "CNN-JEPA: Self-Supervised Pretraining Convolutional Neural
    Networks Using Joint Embedding Predictive Architecture", 2024; kaland313/CNN-JEPA
    pretrain/train_ijepacnn.py `train_val_step` (normalise over channels, smooth L1 summed
    over channels, mean over the target positions).
  """
  if kind not in LATENT_LOSSES:
    raise ValueError(f"kind={kind!r}; use one of {LATENT_LOSSES}")
  p = l2_normalize(jnp.asarray(pred, jnp.float32))
  t = l2_normalize(jnp.asarray(target, jnp.float32))
  d = p - t
  per_element = jnp.square(d) if kind == "l2" else smooth_l1(d)
  per_position = jnp.sum(per_element, axis=-1)
  mask = jnp.asarray(target_mask, jnp.float32)
  return jnp.sum(per_position * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def nepa(outputs: ArrayLike, inputs: ArrayLike) -> jax.Array:
  """Negative cosine similarity of each output token with the next input embedding.

  Args:
    outputs: [B, T, D] the causal transformer's outputs (after its final norm).
    inputs: [B, T, D] the sequence's input embeddings; a stop-gradient target.

  Returns:
    Scalar: -mean_{b, t < T-1} cos(outputs[b, t], sg(inputs[b, t + 1])), over the B (T - 1)
    pairs; -1 when every output points along the next input.

  References:
    Xu et al., "Next-Embedding Prediction Makes Strong Vision Learners", 2025, eq. 2;
    `prediction_loss(h_in, h_out, shift=True)` of the reference code
    (github.com/SihanXU/nepa, models/vit_nepa/modeling_vit_nepa.py): h_in detached,
    h_out[:, :-1] against h_in[:, 1:], both L2-normalised, minus the mean dot product.
  """
  outputs = jnp.asarray(outputs, jnp.float32)
  targets = jax.lax.stop_gradient(jnp.asarray(inputs, jnp.float32))
  predicted, following = l2_normalize(outputs[:, :-1]), l2_normalize(targets[:, 1:])
  return -jnp.mean(jnp.sum(predicted * following, axis=-1))
