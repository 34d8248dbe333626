"""Self-distillation beyond DINO's CLS loss: iBOT's masked-patch loss and DINOv2's pieces.

DINO's loss and running center stay in clustering.py (`dino`, `dino_center_update`); what
is here splits that loss into its two halves so the teacher's targets can come from either
centering: the teacher's probabilities (`centered_teacher_probs`, the running center; or
`sinkhorn_teacher_probs`, DINOv2's Sinkhorn-Knopp), then a cross-entropy against the
student (`cross_view_cross_entropy` for the CLS tokens of every pair of views,
`ibot_patch` for the masked patch tokens of the same view). `koleo` is DINOv2's
nearest-neighbour entropy regulariser.

Called on global (sharded) arrays under `jax.jit`, every reduction (the batch means, the
Sinkhorn marginals, KoLeo's nearest neighbours, the centers) spans the global batch.

References:
  Zhou et al., "iBOT: Image BERT Pre-Training with Online Tokenizer", ICLR 2022
  (github.com/bytedance/ibot main_ibot.py `iBOTLoss`).
  Oquab et al., "DINOv2: Learning Robust Visual Features without Supervision", TMLR 2024
  (github.com/facebookresearch/dinov2 dinov2/loss/{dino_clstoken_loss, ibot_patch_loss,
  koleo_loss}.py).
  Sablayrolles et al., "Spreading vectors for similarity search", ICLR 2019 (KoLeo).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jax_ssl.losses.clustering import sinkhorn_knopp


def centered_teacher_probs(teacher_logits: ArrayLike, center: ArrayLike,
                           teacher_temp: ArrayLike) -> jax.Array:
  """softmax((teacher_logits - center) / teacher_temp) over the last axis, no gradient: DINO's
  and iBOT's centring and sharpening (`DINOLoss.forward`, `iBOTLoss.forward`).

  Args:
    teacher_logits: [..., K] teacher head outputs.
    center: [K] running mean of such outputs (`dino_center_update`, `patch_center_update`).
    teacher_temp: the sharpening temperature.

  Returns:
    [..., K] float32 probabilities.
  """
  logits = jnp.asarray(teacher_logits, jnp.float32) - jnp.asarray(center, jnp.float32)
  return jax.lax.stop_gradient(jax.nn.softmax(logits / teacher_temp, axis=-1))


def sinkhorn_teacher_probs(teacher_logits: ArrayLike, teacher_temp: ArrayLike,
                           num_iterations: int = 3,
                           valid: ArrayLike | None = None) -> jax.Array:
  """DINOv2's `sinkhorn_knopp_teacher`: the teacher's targets as an equal-partition
  assignment of its rows to the K prototypes, instead of centring.

  Q = exp(logits / temp).T [K, R] divided by its total, then `num_iterations` times every
  prototype's mass set to 1/K and every row's to 1/R; the result R * Q.T has rows that sum
  to 1. This is SwAV's map (`clustering.sinkhorn_knopp`, computed in the log domain) with
  epsilon = the teacher temperature; DINOv2 all-reduces the sums over the GPUs, here they run
  over the global batch.

  Args:
    teacher_logits: [..., K] teacher head outputs; all leading axes are rows of one problem
      (DINOv2 solves one for the CLS tokens of both global crops, one for the masked patch
      tokens).
    teacher_temp: the temperature (DINOv2: the teacher temperature of the step).
    num_iterations: Sinkhorn iterations (DINOv2: 3).
    valid: optional [...] booleans: rows that take part (the masked patch tokens); the
      others add nothing to the marginals, R counts the valid rows only (DINOv2's
      `n_masked_patches`), and their targets are 0. None: every row.

  Returns:
    [..., K] float32 targets with no gradient.
  """
  logits = jnp.asarray(teacher_logits, jnp.float32)
  rows = logits.reshape(-1, logits.shape[-1])
  flat_valid = None if valid is None else jnp.asarray(valid, bool).reshape(-1)
  codes = sinkhorn_knopp(rows, teacher_temp, num_iterations, flat_valid).reshape(logits.shape)
  if valid is not None:  # all rows invalid (nothing masked anywhere) would be 0 / 0 = nan
    codes = jnp.where(jnp.asarray(valid, bool)[..., None], codes, 0.0)
  return jax.lax.stop_gradient(codes)


def cross_view_cross_entropy(student_logits: ArrayLike, teacher_probs: ArrayLike,
                             student_temp: float) -> jax.Array:
  """DINO's loss given the teacher's targets: each teacher view's targets predicted from
  every *other* student view.

  Args:
    student_logits: [S, B, K] student head outputs of S views (the teacher's views first).
    teacher_probs: [T, B, K] teacher targets of the first T views (T <= S), e.g.
      `centered_teacher_probs` or `sinkhorn_teacher_probs`. Stop-gradient inside.
    student_temp: the student's softmax temperature.

  Returns:
    Scalar: mean over the T * S - T pairs (t, s != t) of
    mean_b -sum_k P_t[b, k] log softmax(student_s[b] / student_temp)[k]. With
    P = centered_teacher_probs(teacher, center, temp) it is `losses.dino(student, teacher,
    center, student_temp, temp)`; DINOv2's global + local terms divided by their number of
    pairs (ssl_meta_arch.py) is the same mean.
  """
  teacher_probs = jax.lax.stop_gradient(jnp.asarray(teacher_probs, jnp.float32))
  student_log_probs = jax.nn.log_softmax(
      jnp.asarray(student_logits, jnp.float32) / student_temp, axis=-1)
  num_teacher, batch_size = teacher_probs.shape[:2]
  cross_entropy = -jnp.einsum("tbk,sbk->ts", teacher_probs, student_log_probs) / batch_size
  other_view = (jnp.arange(num_teacher)[:, None]
                != jnp.arange(student_log_probs.shape[0])[None, :])
  return jnp.sum(jnp.where(other_view, cross_entropy, 0.0)) / jnp.sum(other_view)


def ibot_patch(student_logits: ArrayLike, teacher_probs: ArrayLike, mask: ArrayLike,
               student_temp: float) -> jax.Array:
  """iBOT's masked image modelling loss: the teacher's targets for the patch tokens of a view
  it saw whole, predicted by the student from the same view with those patches masked.

  Args:
    student_logits: [..., B, M, K] student patch-head outputs (M token slots per image: all
      N patches, or a gathered subset).
    teacher_probs: [..., B, M, K] teacher targets at the same tokens (stop-gradient inside).
    mask: [..., B, M] booleans: the tokens the student saw masked (the loss's tokens).
    student_temp: the student's softmax temperature.

  Returns:
    Scalar: per image, the mean over its masked tokens of
    -sum_k P[k] log softmax(student / student_temp)[k] (an image with none counts 0, as the
    reference's clamp(min=1) gives), then the mean over every image of every view:
    `iBOTLoss.forward`'s per-view `loss2.mean()` averaged over the global views, and DINOv2's
    `forward_masked` (masks_weight = 1 / its masked count, summed, / the number of images).
  """
  teacher_probs = jax.lax.stop_gradient(jnp.asarray(teacher_probs, jnp.float32))
  student_log_probs = jax.nn.log_softmax(
      jnp.asarray(student_logits, jnp.float32) / student_temp, axis=-1)
  per_token = -jnp.sum(teacher_probs * student_log_probs, axis=-1)  # [..., B, M]
  mask = jnp.asarray(mask, jnp.float32)
  per_image = jnp.sum(per_token * mask, axis=-1) / jnp.maximum(jnp.sum(mask, axis=-1), 1.0)
  return jnp.mean(per_image)


def patch_center_update(center: ArrayLike, token_logit_sums: ArrayLike,
                        token_counts: ArrayLike, momentum: float) -> jax.Array:
  """The patch center's EMA towards the mean teacher output over the masked tokens of the
  global batch (DINOv2's `iBOTPatchLoss.update_center`, fed the masked tokens).

  Args:
    center: [K] current patch center.
    token_logit_sums: [..., K] teacher patch outputs summed over the masked tokens of each
      image (per example, so micro-batches concatenate).
    token_counts: [...] the masked tokens behind each sum.
    momentum: m in [0, 1].

  Returns:
    [K]: m * center + (1 - m) * sum(sums) / sum(counts); the center unchanged when no token
    of the batch was masked (nothing to average).
  """
  center = jnp.asarray(center, jnp.float32)
  sums = jax.lax.stop_gradient(jnp.asarray(token_logit_sums, jnp.float32))
  sums = sums.reshape(-1, sums.shape[-1])
  count = jnp.sum(jnp.asarray(token_counts, jnp.float32))
  batch_center = jnp.sum(sums, axis=0) / jnp.maximum(count, 1.0)
  return jnp.where(count > 0, momentum * center + (1.0 - momentum) * batch_center, center)


def koleo(embeddings: ArrayLike, eps: float = 1e-8) -> jax.Array:
  """DINOv2's KoLeo regulariser: -mean_i log(||x_i - x_nn(i)|| + eps) on L2-normalised rows.

  The Kozachenko-Leonenko entropy estimator: pushing each embedding away from its nearest
  neighbour spreads the batch uniformly over the sphere. As `KoLeoLoss.forward`: rows
  normalised (x / max(||x||, eps)), nearest neighbour by the largest inner product with the
  diagonal excluded, distance torch's `PairwiseDistance(eps=1e-8)` (||x_i - x_j + eps||,
  which keeps the gradient finite for duplicate rows), then -mean log(distance + eps).
  No gradient flows through the choice of neighbour (an index).

  Args:
    embeddings: [B, D] (B >= 2) the student's CLS tokens of one global view. Under jit on a
      sharded global batch the neighbours are searched over the whole global batch: DINOv2
      searches within each GPU's batch (64 images per crop), so ours is not the same number
      unless the global batch equals that per-GPU batch, but it does not depend on the
      device count.
    eps: the normalisation, distance and log epsilon (DINOv2: 1e-8).

  Returns:
    Scalar.
  """
  x = jnp.asarray(embeddings, jnp.float32)
  x = x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), eps)
  dots = x @ x.T
  dots = jnp.where(jnp.eye(x.shape[0], dtype=bool), -1.0, dots)  # as the reference's fill_(-1)
  neighbour = jax.lax.stop_gradient(jnp.argmax(dots, axis=1))
  distances = jnp.sqrt(jnp.sum(jnp.square(x - x[neighbour] + eps), axis=-1))
  return -jnp.mean(jnp.log(distances + eps))
