"""Masked image modeling against derived targets (HOG features, discrete visual tokens), and
the VQ-VAE objective that trains the tokenizer whose ids BEiT predicts.

The masked-prediction losses average over the masked positions of the whole (global) batch:
sum over (example, position) of mask * per-position loss, divided by the mask's sum.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from jax.typing import ArrayLike


def _masked_mean(per_position: jax.Array, mask: ArrayLike) -> jax.Array:
  mask = jnp.asarray(mask, jnp.float32)
  return jnp.sum(per_position * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def maskfeat(pred: ArrayLike, target: ArrayLike, mask: ArrayLike) -> jax.Array:
  """MaskFeat's regression loss: mean squared error on the masked patches' features.

  Args:
    pred: [B, N, D] predicted features of every patch.
    target: [B, N, D] target features (HOG histograms, `jax_ssl.hog.maskfeat_targets`);
      no gradient flows into them.
    mask: [B, N], 1 (True) where the patch was masked; only those count.

  Returns:
    Scalar: sum_{b,n} mask_bn * mean_d (pred_bnd - target_bnd)^2 / sum_{b,n} mask_bn.

  References:
    Wei et al., "Masked Feature Prediction for Self-Supervised Visual Pre-Training",
    CVPR 2022, sec. 3 (l2 loss on the masked patches).
  """
  pred = jnp.asarray(pred, jnp.float32)
  target = jax.lax.stop_gradient(jnp.asarray(target, jnp.float32))
  return _masked_mean(jnp.mean(jnp.square(pred - target), axis=-1), mask)


def beit(logits: ArrayLike, token_ids: ArrayLike, mask: ArrayLike) -> jax.Array:
  """BEiT's masked image modeling loss: cross-entropy over the visual-token codebook.

  Args:
    logits: [B, N, K] scores of the K codebook entries at every patch.
    token_ids: [B, N] int, the tokenizer's id of every patch (the labels).
    mask: [B, N], 1 (True) where the patch was masked; only those count.

  Returns:
    Scalar: sum_{b,n} mask_bn * (logsumexp_k logits_bnk - logits_bn[token_bn]) /
    sum_{b,n} mask_bn.

  References:
    Bao et al., "BEiT: BERT Pre-Training of Image Transformers", ICLR 2022, eq. (1).
  """
  logits = jnp.asarray(logits, jnp.float32)
  per_position = optax.softmax_cross_entropy_with_integer_labels(
      logits, jnp.asarray(token_ids, jnp.int32))
  return _masked_mean(per_position, mask)


def vq_vae(reconstruction: ArrayLike, images: ArrayLike, latents: ArrayLike,
           quantized: ArrayLike, commitment_weight: float
           ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """The VQ-VAE objective: reconstruction + codebook + commitment terms.

  Args:
    reconstruction: [B, H, W, C] decoder output (from the straight-through quantized
      latents, so its gradient reaches the encoder).
    images: [B, H, W, C] the inputs it reconstructs.
    latents: [..., D] encoder outputs z_e before quantization.
    quantized: [..., D] the codebook entries e chosen for them (not straight-through).
    commitment_weight: beta.

  Returns:
    (loss, {"reconstruction": mse, "codebook": c, "commitment": m}) with
    mse = mean (reconstruction - images)^2, c = mean (sg[z_e] - e)^2 (moves the codes),
    m = mean (z_e - sg[e])^2 (keeps the encoder near its codes), loss = mse + c + beta m.

  References:
    van den Oord et al., "Neural Discrete Representation Learning", NeurIPS 2017, eq. (3).
  """
  latents = jnp.asarray(latents, jnp.float32)
  quantized = jnp.asarray(quantized, jnp.float32)
  mse = jnp.mean(jnp.square(jnp.asarray(reconstruction, jnp.float32)
                            - jax.lax.stop_gradient(jnp.asarray(images, jnp.float32))))
  codebook = jnp.mean(jnp.square(jax.lax.stop_gradient(latents) - quantized))
  commitment = jnp.mean(jnp.square(latents - jax.lax.stop_gradient(quantized)))
  loss = mse + codebook + commitment_weight * commitment
  return loss, {"reconstruction": mse, "codebook": codebook, "commitment": commitment}


def perplexity(token_ids: ArrayLike, codebook_size: int) -> jax.Array:
  """exp(entropy) of the codebook's usage over all `token_ids` (any shape, ints in [0, K)).

  1 when a single code is used, K when all K codes are used equally often.
  """
  counts = jnp.sum(jax.nn.one_hot(jnp.ravel(token_ids), codebook_size), axis=0)
  probs = counts / jnp.maximum(jnp.sum(counts), 1.0)
  return jnp.exp(-jnp.sum(jnp.where(probs > 0, probs * jnp.log(probs), 0.0)))
