"""Video contrastive losses: CVRL, RSPNet, and BYOL's / MoCo's losses over rho clips.

The clips of one video are views like an image's crops: [N, D] embeddings per clip, row i
of every clip from video i. Under `jax.jit` over the global batch every reduction and every
similarity matrix spans all devices (the references' all-gathers).
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jax_ssl.losses.contrastive import l2_normalize, moco_v2, nt_xent
from jax_ssl.losses.non_contrastive import byol


def cvrl(z1: ArrayLike, z2: ArrayLike, temperature: float) -> jax.Array:
  """CVRL's InfoNCE over the global batch of two clips per video.

  Args:
    z1: [N, D] projections of each video's first clip.
    z2: [N, D] projections of its second clip (row i the positive of z1's row i).
    temperature: tau > 0 (CVRL: 0.1).

  Returns:
    Scalar: loss_a + loss_b, each the mean over the N clips of one side of
    -log( exp(s(a, pos(a))/tau) / sum_{b != a} exp(s(a, b)/tau) ) with s the cosine
    similarity and b over both clips of every video of the global batch. That is SimCLR's
    NT-Xent summed over the two directions instead of averaged: exactly
    2 * `nt_xent(z1, z2, tau)`, which computes it (the same logits; the reference masks the
    self-similarity with -1e9 where nt_xent uses -inf).

  References:
    Qian et al., "Spatiotemporal Contrastive Video Representation Learning", CVPR 2021;
    tensorflow/models official/projects/video_ssl/losses/losses.py `contrastive_loss`
    (`loss = loss_a + loss_b`; its L2 weight decay term is the optimizer's here).
  """
  return 2.0 * nt_xent(z1, z2, temperature)


def rho_byol(predictions: Sequence[ArrayLike], targets: Sequence[ArrayLike]) -> jax.Array:
  """BYOL's loss over rho clips (or crops) of each video: every clip predicts every other
  clip's target.

  Args:
    predictions: V arrays [N, D], the online predictions of every clip (rho clips, then any
      multi-crop local crops).
    targets: G arrays [N, D], 2 <= G <= V, the (stop-gradient) target projections of the
      first G clips; no stop-gradient inside.

  Returns:
    Scalar: sum over target clips v1 < G and prediction clips v2 != v1 of
    `byol(predictions[v2], targets[v1])`, divided by G - 1. G = 2: BYOL's symmetrised loss
    byol(p2, z1) + byol(p1, z2) (solo-learn's multi-crop pairs with local crops).

  References:
    Feichtenhofer et al., "A Large-Scale Study on Unsupervised Spatiotemporal Representation
    Learning", CVPR 2021 (rho-BYOL); facebookresearch/SlowFast slowfast/models/contrastive.py,
    CONTRASTIVE.SEQUENTIAL: each clip's prediction against the other clips' keys, the mean
    over those keys, summed over the clips: the division by G - 1 here.
  """
  num_targets = len(targets)
  if not 2 <= num_targets <= len(predictions):
    raise ValueError(f"rho_byol needs 2 <= targets ({num_targets}) <= predictions "
                     f"({len(predictions)})")
  total = sum(byol(predictions[v2], targets[v1])
              for v1 in range(num_targets) for v2 in range(len(predictions)) if v2 != v1)
  return total / (num_targets - 1)


def rho_moco(queries: Sequence[ArrayLike], keys: Sequence[ArrayLike],
             queues: Sequence[ArrayLike], temperature: float) -> jax.Array:
  """MoCo's InfoNCE over rho clips of each video: every clip's query against every other
  clip's key, with that clip's queue as the negatives.

  Args:
    queries: rho arrays [N, D], the online queries of each clip.
    keys: rho arrays [N, D], the momentum encoder's keys of each clip (no stop-gradient
      inside).
    queues: rho arrays [K, D], queue j holding earlier batches' keys of clip j.
    temperature: tau > 0.

  Returns:
    Scalar: the mean over the rho (rho - 1) ordered pairs i != j of
    `moco_v2(queries[i], keys[j], queues[j], tau)`. rho = 2: MoCo v2's symmetrised
    (moco_v2(q1, k2, queue2) + moco_v2(q2, k1, queue1)) / 2 (solo-learn's MoCo V2+).

  References:
    Feichtenhofer et al. 2021 (rho-MoCo); SlowFast's contrastive.py (type "moco",
    SEQUENTIAL): the same positives, but one queue shared by all clips' keys
    (MOCO_MULTI_VIEW_QUEUE) and the per-query losses summed over the rho queries (rho x
    this mean).
  """
  rho = len(queries)
  if rho < 2 or len(keys) != rho or len(queues) != rho:
    raise ValueError(f"rho_moco needs rho >= 2 queries, keys and queues alike; got "
                     f"{len(queries)}, {len(keys)}, {len(queues)}")
  pairs = [(i, j) for i in range(rho) for j in range(rho) if i != j]
  return sum(moco_v2(queries[i], keys[j], queues[j], temperature) for i, j in pairs) / len(pairs)


def rspnet_appearance(query: ArrayLike, keys: Sequence[ArrayLike], queue: ArrayLike,
                      temperature: float) -> jax.Array:
  """RSPNet's appearance task (A-VID): the query clip against each other clip of its video
  as a positive, the queue's keys as negatives.

  Args:
    query: [N, D] appearance embeddings of each video's query clip (normalised inside).
    keys: K arrays [N, D], the momentum encoder's appearance keys of the video's other clips
      (RSPNet: the same-speed and the other-speed clip); no stop-gradient inside.
    queue: [Q, D] earlier batches' keys (the negatives).
    temperature: tau > 0 (RSPNet: 0.07).

  Returns:
    Scalar: sum over the K positives of `moco_v2(query, keys[k], queue, tau)`, i.e.
    sum_k mean_i -log softmax([q_i . k_ki, q_i . n_1, ..., q_i . n_Q] / tau)[0]
    (RSPNet's ce1 + ce2: each positive with its own cross-entropy, not one softmax holding
    both).

  References:
    Chen et al., "RSPNet: Relative Speed Perception for Unsupervised Video Representation
    Learning", AAAI 2021; PeihaoChen/RSPNet moco/builder_diffspeed_diffloss.py
    `MoCoDiffLossTwoFc.forward` (logits1, logits2) and `Loss.forward` (ce1 + ce2).
  """
  return sum(moco_v2(query, key, queue, temperature) for key in keys)


def _speed_triplets(query: ArrayLike, keys: ArrayLike, same_speed: ArrayLike,
                    temperature: float) -> tuple[jax.Array, jax.Array]:
  """([N, K, K] (s_i - s_j) with s_k = cos(q, k_k) / tau, [N, K, K] bool: key i has the
  query's speed and key j does not)."""
  query = l2_normalize(jnp.asarray(query, jnp.float32))
  keys = l2_normalize(jnp.asarray(keys, jnp.float32))
  same_speed = jnp.asarray(same_speed, bool)
  scores = jnp.einsum("nd,nkd->nk", query, keys) / temperature
  gap = scores[:, :, None] - scores[:, None, :]
  valid = same_speed[:, :, None] & ~same_speed[:, None, :]
  return gap, valid


def rspnet_speed_ranking(query: ArrayLike, keys: ArrayLike, same_speed: ArrayLike,
                         temperature: float, margin: float) -> jax.Array:
  """RSPNet's relative-speed task (RSP): a clip is more similar to another clip of its video
  at the same playback speed than to one at another speed, by a margin.

  Args:
    query: [N, D] motion embeddings of each video's query clip (normalised inside).
    keys: [N, K, D] the momentum encoder's motion embeddings of the video's other K clips
      (normalised inside; no stop-gradient inside).
    same_speed: bool [N, K], whether key k was played at the query clip's speed.
    temperature: tau > 0 dividing the cosine similarities (RSPNet: the MoCo temperature,
      0.07).
    margin: the ranking margin (RSPNet: 2.0, on the similarities over tau).

  Returns:
    Scalar: the mean over the triplets (video n, same-speed key i, other-speed key j) of
    max(0, margin - (s_ni - s_nj)) with s_nk = cos(q_n, k_nk) / tau: torch's
    MarginRankingLoss(x1=s_i, x2=s_j, y=1). RSPNet has K = 2, one key of each kind, so one
    triplet per video and the mean over the batch; videos with no such triplet (every key at
    the query's speed, or none) add nothing, and 0 if there is none at all.

  References:
    Chen et al. 2021 (RSPNet), the RSP task; PeihaoChen/RSPNet
    moco/builder_diffspeed_diffloss.py (`l_pos_M`, `l_neg_M` over T) and pretrain.py
    (`Loss(margin=2.0)`: nn.MarginRankingLoss).
  """
  gap, valid = _speed_triplets(query, keys, same_speed, temperature)
  hinge = jnp.maximum(0.0, margin - gap)
  count = jnp.sum(valid)
  return jnp.sum(jnp.where(valid, hinge, 0.0)) / jnp.maximum(count, 1)


def speed_ranking_accuracy(query: ArrayLike, keys: ArrayLike, same_speed: ArrayLike
                           ) -> jax.Array:
  """The fraction of `rspnet_speed_ranking`'s triplets ranked right (same-speed key more
  similar than the other-speed key: RSPNet's acc1_M); 0 without triplets. No gradient."""
  gap, valid = _speed_triplets(jax.lax.stop_gradient(query), jax.lax.stop_gradient(keys),
                               same_speed, 1.0)
  return jnp.sum(valid & (gap > 0)) / jnp.maximum(jnp.sum(valid), 1)
