"""data2vec 2.0's targets, regression loss and collapse monitor (Baevski et al. 2022).

Layer outputs are per token, [B, T, D] (T tokens, D channels); predictions and targets are
rows of D values, [..., D], one row per masked token (or per example for the CLS term).

Reference: fairseq `examples/data2vec/models/data2vec2.py`
(`Data2VecMultiModel.make_targets`, `.d2v_loss`, `.compute_var`), whose image recipe
(`config/v2/base_images_only_task.yaml`) turns on `instance_norm_target_layer` and
`layer_norm_targets` and leaves `layer_norm_target_layer`, `batch_norm_target_layer` and
`instance_norm_targets` off: that one combination is what `data2vec_targets` computes.
"""

from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

# torch's F.instance_norm and F.layer_norm default epsilon (make_targets passes none).
_NORM_EPSILON = 1e-5
# compute_var's epsilon inside the square root.
_VAR_EPSILON = 1e-6


def _normalize(x: jax.Array, axis: int) -> jax.Array:
  """(x - mean) / sqrt(var + eps) along `axis`, biased variance (as torch's norms)."""
  mean = jnp.mean(x, axis=axis, keepdims=True)
  variance = jnp.mean(jnp.square(x - mean), axis=axis, keepdims=True)
  return (x - mean) * jax.lax.rsqrt(variance + _NORM_EPSILON)


def data2vec_targets(layer_outputs: Sequence[ArrayLike], top_k: int) -> jax.Array:
  """The regression targets of data2vec 2.0 for images, from the teacher's layer outputs.

  Args:
    layer_outputs: the teacher's per-block outputs in block order, each [B, T, D] (data2vec
      2.0 uses each block's FFN output before the residual, `AltBlock`'s `ffn_targets`), of
      the patch tokens only (the reference drops the CLS token first).
    top_k: how many of the last blocks to average (`average_top_k_layers`).

  Returns:
    float32 [B, T, D]: each of the last `top_k` outputs instance-normalised (per example
    and channel, over the T tokens: F.instance_norm on [B, D, T]), their mean, then a
    parameter-free LayerNorm over the D channels of every token (eps 1e-5, biased variance,
    as torch's).

  References:
    Baevski et al., "Efficient Self-supervised Learning with Contextualized Target
    Representations for Vision, Speech and Language", ICML 2023, sec. 2 ("Target
    representations"); fairseq `Data2VecMultiModel.make_targets`.
  """
  if not 1 <= top_k <= len(layer_outputs):
    raise ValueError(f"top_k={top_k}; must be in [1, {len(layer_outputs)}] (the layers given)")
  normalized = [_normalize(jnp.asarray(x, jnp.float32), axis=1) for x in layer_outputs[-top_k:]]
  return _normalize(sum(normalized) / top_k, axis=-1)


def data2vec(pred: ArrayLike, target: ArrayLike, *, scale: float | None = None,
             beta: float = 0.0) -> jax.Array:
  """data2vec 2.0's regression loss: the per-row sum of squared errors, scaled, averaged.

  Args:
    pred: [..., D] predictions (one row per masked token, or per example's CLS token).
    target: [..., D] targets (`data2vec_targets` at those positions).
    scale: the factor on every element's loss (`loss_scale`); None: 1 / sqrt(D), the
      reference's default.
    beta: 0 for the squared error (`loss_beta` 0, the image recipe); > 0 for torch's
      smooth-L1 with that beta (0.5 e^2 / beta where |e| < beta, else |e| - 0.5 beta).

  Returns:
    Scalar: mean over the rows of scale * sum_d loss(pred - target). The reference sums the
    elements' losses and the trainer divides by the number of masked tokens (fairseq's
    sample_size), which is this mean. Under `jax.jit` on a sharded batch, the mean spans
    the global batch.

  References:
    fairseq `Data2VecMultiModel.d2v_loss` and `fairseq/trainer.py` (gradients divided by
    the sample size).
  """
  pred, target = jnp.asarray(pred, jnp.float32), jnp.asarray(target, jnp.float32)
  error = pred - target
  if beta > 0:
    absolute = jnp.abs(error)
    per_element = jnp.where(absolute < beta, 0.5 * jnp.square(error) / beta,
                            absolute - 0.5 * beta)
  else:
    per_element = jnp.square(error)
  factor = 1.0 / math.sqrt(pred.shape[-1]) if scale is None else scale
  return factor * jnp.mean(jnp.sum(per_element, axis=-1))


def mean_feature_std(x: ArrayLike) -> jax.Array:
  """data2vec 2.0's collapse monitor (`target_var`, `pred_var`): the mean over the D
  channels of sqrt(var + 1e-6), the variance over every row of x ([..., D], unbiased).

  The reference stops training when it falls below `min_target_var` (targets) or
  `min_pred_var` (predictions) after 5000 updates; a near-zero value means every row is
  the same vector.

  References:
    fairseq `Data2VecMultiModel.compute_var` (its all-reduced sums: the variance of the
    rows of all workers, as here over the global batch).
  """
  x = jnp.asarray(x, jnp.float32).reshape(-1, jnp.shape(x)[-1])
  return jnp.mean(jnp.sqrt(jnp.var(x, axis=0, ddof=1) + _VAR_EPSILON))
