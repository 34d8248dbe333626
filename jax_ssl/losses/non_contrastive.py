"""Non-contrastive losses: redundancy reduction, predictor/stop-gradient, LeJEPA, TiCo."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jax_ssl.losses.contrastive import l2_normalize


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


def tico_covariance_update(covariance: ArrayLike, z: ArrayLike, beta: float = 0.9) -> jax.Array:
  """TiCo's running covariance of the normalised embeddings, moved by one batch.

  Args:
    covariance: [D, D] the running matrix C_{t-1} (zeros before the first step, as the paper's
      Algorithm 1 and lightly's `TiCoLoss` start it).
    z: [N, D] online projections of the batch (the global batch under `jax.jit`); their rows
      are normalised to unit length here.
    beta: the EMA coefficient, in [0, 1).

  Returns:
    [D, D]: C_t = beta * C_{t-1} + (1 - beta) * B with B = zn^T zn / N, zn the rows of z over
    their L2 norms. B is behind a stop-gradient (a buffer, as lightly's `TiCoLoss` since
    lightly-ai/lightly#1484), so C_t is a constant of the step for the loss that reads it.

  References:
    Zhu et al., "TiCo: Transformation Invariance and Covariance Contrast for Self-Supervised
    Visual Representation Learning", 2022 (arXiv:2206.10698), Algorithm 1.
  """
  normalized = jax.lax.stop_gradient(l2_normalize(jnp.asarray(z, jnp.float32)))
  batch_covariance = (normalized.T @ normalized) / normalized.shape[0]
  return beta * jnp.asarray(covariance, jnp.float32) + (1.0 - beta) * batch_covariance


def tico(z_online: ArrayLike, z_target: ArrayLike, covariance: ArrayLike, beta: float = 0.9,
         rho: float = 8.0) -> jax.Array:
  """TiCo: transformation invariance plus covariance contrast against a running covariance.

  Args:
    z_online: [N, D] online projections of one view (gradients flow into them).
    z_target: [N, D] projections of the other view (row i pairs with z_online's row i); no
      stop-gradient inside: the caller passes the momentum target through
      `jax.lax.stop_gradient`.
    covariance: [D, D] the running matrix C_{t-1} before this batch (the method state); it
      is read, never written: `tico_covariance_update` moves the state after the step.
    beta: the EMA coefficient of the covariance, in [0, 1).
    rho: the weight of the covariance contrast term.

  Returns:
    Scalar: 1 - mean_i <a_i, b_i> + rho * mean_i a_i^T C_t a_i, with a, b the rows of
    z_online, z_target over their L2 norms and C_t = tico_covariance_update(covariance,
    z_online, beta). Since C_t = (1 - beta) sum_s beta^(t-s) B_s (from C = 0), the second
    term is the mean squared cosine similarity of each a_i with the embeddings of every past
    batch, weighted by beta^age: the paper reads it as MoCo with an implicit memory bank of
    unlimited size. Under `jax.jit` on a sharded global batch the means and B span the whole
    global batch.

  References:
    Zhu et al., "TiCo", 2022 (arXiv:2206.10698), the loss and Algorithm 1; lightly's
    `TiCoLoss` (lightly/loss/tico_loss.py), whose `1 -` keeps the invariance term in [0, 2].
  """
  a = l2_normalize(jnp.asarray(z_online, jnp.float32))
  b = l2_normalize(jnp.asarray(z_target, jnp.float32))
  covariance = tico_covariance_update(covariance, a, beta)
  invariance = 1.0 - jnp.mean(jnp.sum(a * b, axis=1))
  covariance_contrast = jnp.mean(jnp.sum((a @ covariance) * a, axis=1))
  return invariance + rho * covariance_contrast
