"""Self-distillation and clustering losses: DINO (centred teacher) and SwAV (Sinkhorn codes)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike


def dino(student_logits: ArrayLike, teacher_logits: ArrayLike, center: ArrayLike,
         student_temp: float, teacher_temp: float) -> jax.Array:
  """DINO's cross-view cross-entropy from the centred, sharpened teacher to the student.

  Args:
    student_logits: [S, B, K] student head outputs of S views (global views first).
    teacher_logits: [T, B, K] teacher head outputs of the first T views (T <= S).
    center: [K] running mean of the teacher logits (see `dino_center_update`).
    student_temp: student softmax temperature.
    teacher_temp: teacher softmax temperature (sharpening).

  Returns:
    Scalar: mean over the T * S - T pairs (t, s != t) of
    mean_b -sum_k P_t[b, k] log softmax(student_s[b] / student_temp)[k], with
    P_t = stop_gradient(softmax((teacher_t - center) / teacher_temp)): no gradient reaches
    the teacher logits or the center. Same-view pairs are skipped.

  References:
    Caron et al., "Emerging Properties in Self-Supervised Vision Transformers", ICCV 2021,
    Algorithm 1 and facebookresearch/dino `DINOLoss`.
  """
  student_logits = jnp.asarray(student_logits, jnp.float32)
  teacher_logits = jnp.asarray(teacher_logits, jnp.float32)
  num_teacher, batch_size = teacher_logits.shape[:2]
  num_student = student_logits.shape[0]
  teacher_probs = jax.lax.stop_gradient(jax.nn.softmax(
      (teacher_logits - jnp.asarray(center, jnp.float32)) / teacher_temp, axis=-1))
  student_log_probs = jax.nn.log_softmax(student_logits / student_temp, axis=-1)
  # cross_entropy[t, s] = mean_b -sum_k P_t[b, k] log p_s[b, k]
  cross_entropy = -jnp.einsum("tbk,sbk->ts", teacher_probs, student_log_probs) / batch_size
  other_view = jnp.arange(num_teacher)[:, None] != jnp.arange(num_student)[None, :]
  return jnp.sum(jnp.where(other_view, cross_entropy, 0.0)) / jnp.sum(other_view)


def dino_center_update(center: ArrayLike, teacher_logits: ArrayLike,
                       momentum: float) -> jax.Array:
  """DINO's center EMA: m * center + (1 - m) * mean of the teacher logits.

  Args:
    center: [K] current center.
    teacher_logits: [T, B, K] teacher outputs; the mean runs over views and the (global,
      under jit) batch, as DINO's all-reduce does. No gradient flows (a buffer update).
    momentum: m in [0, 1].

  Returns:
    [K] new center.

  References:
    Caron et al. 2021, eq. (4) and `DINOLoss.update_center`.
  """
  batch_center = jnp.mean(
      jax.lax.stop_gradient(jnp.asarray(teacher_logits, jnp.float32)), axis=(0, 1))
  return momentum * jnp.asarray(center, jnp.float32) + (1.0 - momentum) * batch_center


def sinkhorn_knopp(scores: ArrayLike, epsilon: float, num_iterations: int,
                   valid: ArrayLike | None = None) -> jax.Array:
  """SwAV's equal-partition soft assignment of samples to prototypes (Sinkhorn-Knopp).

  SwAV's `distributed_sinkhorn` on Q = exp(scores / eps).T [K, B]: divide by the total, then
  `num_iterations` times make every prototype's mass 1/K (sum over the samples) and every
  sample's mass 1/B; return (B * Q).T. Computed here in the log domain on [B, K]
  (each normalisation subtracts a logsumexp), which is the same map without overflow or
  underflow for small eps. Under jit on a batch-sharded array the batch sums are global.

  Args:
    scores: [B, K] prototype scores of one view (the global batch, and the scores of a
      queue of earlier embeddings appended below it). Stop-gradient inside.
    epsilon: entropy-regularisation temperature (SwAV: 0.05).
    num_iterations: Sinkhorn iterations (SwAV: 3).
    valid: optional [B] booleans: rows that are False take no part (a queue's rows that
      hold no embedding yet): they add nothing to the prototypes' marginals, B counts only
      the valid rows, and their codes are 0. The valid rows' codes are then exactly those
      of `sinkhorn_knopp(scores[valid], ...)` (static shapes under jit). None: all valid.

  Returns:
    [B, K] codes with no gradient: (valid) rows sum to 1 (when num_iterations >= 1), and
    the columns sum towards (valid) B / K as the iterations converge.

  References:
    Caron et al., "Unsupervised Learning of Visual Features by Contrasting Cluster
    Assignments", NeurIPS 2020, sec. 3.1 and Appendix A.1 (`distributed_sinkhorn`).
  """
  log_q = jax.lax.stop_gradient(jnp.asarray(scores, jnp.float32)) / epsilon
  num_rows, num_prototypes = log_q.shape
  if valid is None:
    valid = jnp.ones((num_rows,), bool)
  valid = jnp.asarray(valid, bool)[:, None]
  # Masked rows are -inf (probability 0) in every logsumexp over samples; the per-row
  # normalisation would give -inf - -inf = nan there, so they are put back to -inf.
  mask = lambda x: jnp.where(valid, x, -jnp.inf)
  log_num_samples = jnp.log(jnp.sum(valid).astype(jnp.float32))
  log_q = mask(log_q)
  log_q = log_q - jax.nn.logsumexp(log_q)

  def iteration(_, log_q):
    log_q = log_q - jax.nn.logsumexp(log_q, axis=0, keepdims=True) - jnp.log(num_prototypes)
    return mask(log_q - jax.nn.logsumexp(log_q, axis=1, keepdims=True) - log_num_samples)

  log_q = jax.lax.fori_loop(0, num_iterations, iteration, log_q)
  return jnp.exp(log_q + log_num_samples)


def swav(scores: ArrayLike, codes: ArrayLike, temperature: float) -> jax.Array:
  """SwAV's swapped prediction: each code view's assignment is predicted from every other view.

  Args:
    scores: [V, B, K] prototype scores (normalised embedding . normalised prototype) of all
      V views (the code views first).
    codes: [C, B, K] assignments of the first C views (C <= V), e.g. from
      `sinkhorn_knopp(scores[c], ...)`. Stop-gradient inside.
    temperature: softmax temperature of the predictions (SwAV: 0.1).

  Returns:
    Scalar: mean over the C * (V - 1) pairs (c, w != c) of
    mean_b -sum_k codes[c, b, k] log softmax(scores[w, b] / temperature)[k].

  References:
    Caron et al. 2020, eq. (2)-(3) and the training loop of facebookresearch/swav.
  """
  scores = jnp.asarray(scores, jnp.float32)
  codes = jax.lax.stop_gradient(jnp.asarray(codes, jnp.float32))
  num_codes, batch_size = codes.shape[:2]
  log_probs = jax.nn.log_softmax(scores / temperature, axis=-1)
  cross_entropy = -jnp.einsum("cbk,vbk->cv", codes, log_probs) / batch_size
  other_view = jnp.arange(num_codes)[:, None] != jnp.arange(scores.shape[0])[None, :]
  return jnp.sum(jnp.where(other_view, cross_entropy, 0.0)) / jnp.sum(other_view)
