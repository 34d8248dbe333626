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


def _off_diagonal_sum_of_squares(matrix: jax.Array) -> jax.Array:
  """sum_{i != j} m_ij^2 of a square [D, D] matrix."""
  # Masking (not total minus trace) keeps small off-diagonal sums exact next to a large diagonal.
  off_diagonal = jnp.where(jnp.eye(matrix.shape[0], dtype=bool), 0.0, matrix)
  return jnp.sum(jnp.square(off_diagonal))


def _standardize_over_batch(z: jax.Array, eps: float = 1e-5) -> jax.Array:
  """(z - mean) / sqrt(biased var + eps) per column: BatchNorm1d(affine=False) in train mode."""
  mean = jnp.mean(z, axis=0, keepdims=True)
  variance = jnp.mean(jnp.square(z - mean), axis=0, keepdims=True)
  return (z - mean) * jax.lax.rsqrt(variance + eps)


def barlow_twins(z1: ArrayLike, z2: ArrayLike, off_diagonal_weight: float = 5e-3) -> jax.Array:
  """Barlow Twins redundancy-reduction loss on the cross-correlation of two views.

  Args:
    z1: [N, D] projections of the first views.
    z2: [N, D] projections of the second views (row i pairs with z1's row i).
    off_diagonal_weight: lambda, the weight of the redundancy (off-diagonal) term.

  Returns:
    Scalar: sum_i (1 - c_ii)^2 + lambda * sum_{i != j} c_ij^2, with c = z1n^T z2n / N [D, D]
    and zkn each column of zk standardised over the batch as BatchNorm without affine does
    (batch mean, biased variance, eps 1e-5). Under `jax.jit` on a sharded global batch the
    moments and c span the whole global batch.

  References:
    Zbontar et al., "Barlow Twins: Self-Supervised Learning via Redundancy Reduction",
    ICML 2021, eq. (1)-(2).
  """
  z1 = _standardize_over_batch(jnp.asarray(z1, jnp.float32))
  z2 = _standardize_over_batch(jnp.asarray(z2, jnp.float32))
  cross_correlation = (z1.T @ z2) / z1.shape[0]
  on_diagonal = jnp.sum(jnp.square(1.0 - jnp.diagonal(cross_correlation)))
  return on_diagonal + off_diagonal_weight * _off_diagonal_sum_of_squares(cross_correlation)


def _variance_hinge(z: jax.Array, eps: float = 1e-4) -> jax.Array:
  """mean_j relu(1 - sqrt(unbiased Var_j(z) + eps)) over the D columns of z [N, D]."""
  std = jnp.sqrt(jnp.var(z, axis=0, ddof=1) + eps)
  return jnp.mean(jax.nn.relu(1.0 - std))


def _covariance_penalty(z: jax.Array) -> jax.Array:
  """sum_{i != j} C_ij^2 / D with C the unbiased [D, D] covariance of z [N, D]."""
  num_examples, dim = z.shape
  centered = z - jnp.mean(z, axis=0, keepdims=True)
  covariance = (centered.T @ centered) / (num_examples - 1)
  return _off_diagonal_sum_of_squares(covariance) / dim


def vicreg(z1: ArrayLike, z2: ArrayLike, invariance_weight: float = 25.0,
           variance_weight: float = 25.0, covariance_weight: float = 1.0) -> jax.Array:
  """VICReg: variance-invariance-covariance regularisation of two views' embeddings.

  Args:
    z1: [N, D] embeddings of the first views (N >= 2).
    z2: [N, D] embeddings of the second views (row i pairs with z1's row i).
    invariance_weight: lambda, weight of the mean-squared-error term.
    variance_weight: mu, weight of the hinge on each dimension's standard deviation.
    covariance_weight: nu, weight of the off-diagonal covariance penalty.

  Returns:
    Scalar: lambda * mean((z1 - z2)^2) + mu * (v(z1) + v(z2)) / 2 + nu * (c(z1) + c(z2)),
    with v(z) = mean_j relu(1 - sqrt(Var_j(z) + 1e-4)), c(z) = sum_{i != j} C(z)_ij^2 / D,
    and Var, C the unbiased (N - 1) variance and covariance over the (global) batch.

  References:
    Bardes, Ponce & LeCun, "VICReg: Variance-Invariance-Covariance Regularization for
    Self-Supervised Learning", ICLR 2022, eq. (1)-(6).
  """
  z1 = jnp.asarray(z1, jnp.float32)
  z2 = jnp.asarray(z2, jnp.float32)
  invariance = jnp.mean(jnp.square(z1 - z2))
  variance = 0.5 * (_variance_hinge(z1) + _variance_hinge(z2))
  covariance = _covariance_penalty(z1) + _covariance_penalty(z2)
  return (invariance_weight * invariance + variance_weight * variance
          + covariance_weight * covariance)


def _normalize_rows_or_zero(x: jax.Array, eps: float = 1e-12) -> jax.Array:
  """x / ||x|| along the last axis; rows with ||x|| <= eps become 0 and pass no gradient.

  `l2_normalize` has the same values, but its gradient at an exactly-zero row is NaN
  (sqrt'(0) * 0); a predictor row of all-dead ReLUs is exactly zero (its last bias starts at 0).
  """
  sum_of_squares = jnp.sum(jnp.square(x), axis=-1, keepdims=True)
  nonzero = sum_of_squares > eps**2
  return jnp.where(nonzero, x * jax.lax.rsqrt(jnp.where(nonzero, sum_of_squares, 1.0)), 0.0)


def simsiam(p: ArrayLike, z: ArrayLike) -> jax.Array:
  """SimSiam's negative cosine similarity with a stop-gradient on the target.

  Args:
    p: [N, D] predictions (predictor outputs) of one view.
    z: [N, D] projections of the other view; no gradient flows into z.

  Returns:
    Scalar: -mean_i <p_i / ||p_i||, sg(z_i) / ||sg(z_i)||>, in [-1, 1]. The method's loss is
    the symmetrised 0.5 * simsiam(p1, z2) + 0.5 * simsiam(p2, z1). A zero row (norm <= 1e-12)
    counts as cosine 0 with zero gradient rather than NaN.

  References:
    Chen & He, "Exploring Simple Siamese Representation Learning", CVPR 2021, eq. (1)-(3).
  """
  p = _normalize_rows_or_zero(jnp.asarray(p, jnp.float32))
  z = _normalize_rows_or_zero(jax.lax.stop_gradient(jnp.asarray(z, jnp.float32)))
  return -jnp.mean(jnp.sum(p * z, axis=1))


def random_directions(rng: jax.Array, dim: int, num_slices: int) -> jax.Array:
  """[dim, num_slices] directions uniform on the unit sphere (SIGReg's sketch)."""
  directions = jax.random.normal(rng, (dim, num_slices), jnp.float32)
  return directions * jax.lax.rsqrt(jnp.sum(jnp.square(directions), axis=0, keepdims=True))


def sigreg(z: ArrayLike, projections: ArrayLike, t_max: float = 3.0,
           num_points: int = 17) -> jax.Array:
  """Sketched Isotropic Gaussian Regularization: Epps-Pulley statistics of 1-D projections.

  Each column a of `projections` gives samples x_n = <z_n, a>; their empirical
  characteristic function phi_N(t) = mean_n exp(i t x_n) is compared with the standard
  Gaussian's exp(-t^2 / 2):  T(a) = N * integral |phi_N(t) - exp(-t^2/2)|^2 exp(-t^2/2) dt,
  by the trapezoidal rule on `num_points` knots of [0, t_max], doubled (the integrand is
  even in t). Zero only when every projection's sample looks standard normal.

  Args:
    z: [..., N, K] embeddings; N is the sample axis (the global batch under jit), leading
      axes (views) are tested separately.
    projections: [K, M] unit directions (see `random_directions`); the same on every device.
    t_max: upper limit of the integral.
    num_points: trapezoid knots on [0, t_max].

  Returns:
    Scalar: the statistic T averaged over the M directions and any leading axes.

  References:
    Balestriero & LeCun, "LeJEPA: Provable and Scalable Self-Supervised Learning Without
    the Heuristics", 2025 (arXiv:2511.08544), sec. 4 and Algorithm 1.
  """
  z = jnp.asarray(z, jnp.float32)
  t = jnp.linspace(0.0, t_max, num_points)
  gaussian_cf = jnp.exp(-0.5 * jnp.square(t))
  step = t_max / (num_points - 1)
  trapezoid = jnp.full((num_points,), 2 * step).at[jnp.array([0, -1])].set(step)
  x_t = (z @ jnp.asarray(projections, jnp.float32))[..., None] * t  # [..., N, M, T]
  real = jnp.mean(jnp.cos(x_t), axis=-3)
  imaginary = jnp.mean(jnp.sin(x_t), axis=-3)
  error = jnp.square(real - gaussian_cf) + jnp.square(imaginary)  # |phi_N - phi|^2, [..., M, T]
  statistic = (error @ (trapezoid * gaussian_cf)) * z.shape[-2]
  return jnp.mean(statistic)


def lejepa(embeddings: ArrayLike, projections: ArrayLike, sigreg_weight: float = 0.05,
           num_global_views: int | None = None) -> jax.Array:
  """LeJEPA: (1 - lambda) * prediction + lambda * SIGReg over every view.

  prediction = mean over views v, examples n and dimensions of
  (z_vn - mean_{g < num_global_views} z_gn)^2: every view's embedding is pulled towards the
  mean embedding of the example's global views (no stop-gradient, no predictor);
  SIGReg (`sigreg`) is computed per view over the batch and averaged.

  Args:
    embeddings: [V, N, K] projector outputs of V views of N images; the first
      `num_global_views` views are the global ones (default: all V).
    projections: [K, M] unit directions for SIGReg.
    sigreg_weight: lambda in [0, 1].
    num_global_views: how many leading views are global.

  Returns:
    Scalar loss.

  References:
    Balestriero & LeCun 2025 (arXiv:2511.08544), eq. (LeJEPA) and Algorithm 1.
  """
  embeddings = jnp.asarray(embeddings, jnp.float32)
  centres = jnp.mean(embeddings[:num_global_views], axis=0)
  prediction = jnp.mean(jnp.square(embeddings - centres))
  return (1.0 - sigreg_weight) * prediction + sigreg_weight * sigreg(embeddings, projections)


def _diagonal_cross_entropy(logits: jax.Array) -> jax.Array:
  """mean_i (logsumexp_j logits_ij - logits_ii): cross-entropy with label i for row i."""
  return jnp.mean(jax.nn.logsumexp(logits, axis=1) - jnp.diagonal(logits))


def byol(p: ArrayLike, z: ArrayLike) -> jax.Array:
  """BYOL's normalised mean-squared error between online predictions and targets.

  Args:
    p: [N, D] online predictions of one view.
    z: [N, D] target projections of the other view. No stop-gradient inside: the caller
      passes the (momentum) target through `jax.lax.stop_gradient`.

  Returns:
    Scalar: mean_i ||p_i/||p_i|| - z_i/||z_i||||^2 = mean_i (2 - 2 cos(p_i, z_i)), in [0, 4].
    The method's loss is the symmetrised byol(p1, z2) + byol(p2, z1).

  References:
    Grill et al., "Bootstrap Your Own Latent", NeurIPS 2020, eq. (2).
  """
  p = l2_normalize(jnp.asarray(p, jnp.float32))
  z = l2_normalize(jnp.asarray(z, jnp.float32))
  return jnp.mean(2.0 - 2.0 * jnp.sum(p * z, axis=1))


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


def sinkhorn_knopp(scores: ArrayLike, epsilon: float, num_iterations: int) -> jax.Array:
  """SwAV's equal-partition soft assignment of samples to prototypes (Sinkhorn-Knopp).

  SwAV's `distributed_sinkhorn` on Q = exp(scores / eps).T [K, B]: divide by the total, then
  `num_iterations` times make every prototype's mass 1/K (sum over the batch) and every
  sample's mass 1/B; return (B * Q).T. Computed here in the log domain on [B, K]
  (each normalisation subtracts a logsumexp), which is the same map without overflow or
  underflow for small eps. Under jit on a batch-sharded array the batch sums are global.

  Args:
    scores: [B, K] prototype scores of one view (the global batch). Stop-gradient inside.
    epsilon: entropy-regularisation temperature (SwAV: 0.05).
    num_iterations: Sinkhorn iterations (SwAV: 3).

  Returns:
    [B, K] codes with no gradient: rows sum to 1 (when num_iterations >= 1), and the
    columns sum towards B / K as the iterations converge.

  References:
    Caron et al., "Unsupervised Learning of Visual Features by Contrasting Cluster
    Assignments", NeurIPS 2020, sec. 3.1 and Appendix A.1 (`distributed_sinkhorn`).
  """
  log_q = jax.lax.stop_gradient(jnp.asarray(scores, jnp.float32)) / epsilon
  batch_size, num_prototypes = log_q.shape
  log_q = log_q - jax.nn.logsumexp(log_q)

  def iteration(_, log_q):
    log_q = log_q - jax.nn.logsumexp(log_q, axis=0, keepdims=True) - jnp.log(num_prototypes)
    return log_q - jax.nn.logsumexp(log_q, axis=1, keepdims=True) - jnp.log(batch_size)

  log_q = jax.lax.fori_loop(0, num_iterations, iteration, log_q)
  return jnp.exp(log_q + jnp.log(batch_size))


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
