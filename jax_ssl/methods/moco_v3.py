"""MoCo v3: symmetric InfoNCE between online predictions and momentum-encoder keys.

Chen, Xie & He, "An Empirical Study of Training Self-Supervised Vision Transformers", ICCV
2021, Algorithm 1. Online: backbone -> projector -> predictor (queries q); momentum encoder:
EMA copies of the backbone and projector (keys k, `target_modules`), no queue: the negatives
are the other keys of the global batch (under jit over global arrays the logits span every
device, as the paper's all-gather). Loss: ctr(q1, k2) + ctr(q2, k1) with ctr =
`losses.info_nce` (cross-entropy scaled by 2 * temperature, as the paper's code).

Multi-crop (`augment.local_crops.num` = L > 0, as solo-learn's MoCo v3): local crops are
queries only, against both global views' keys: sum over global v1, every other crop v2 of
ctr(q_v2, k_v1) (the loss above when L = 0); the momentum encoder sees the global views only.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax

from jax_ssl import losses
from jax_ssl.methods.byol import cross_view_pairs, predictions_and_targets
from jax_ssl.methods.spec import (MethodSpec, SSLModel, StepContext, objective_from_embeddings,
                                  projector_predictor_heads)


def embed(model: SSLModel, views: Sequence[jax.Array], context: StepContext
          ) -> tuple[list[jax.Array], list[jax.Array]]:
  """(queries of every view V x [B, D], stop-gradient keys of the 2 global views [k1, k2])."""
  return predictions_and_targets(model, views, context)


def embedding_loss(embeddings, method_state: Any, context: StepContext, *, temperature: float,
                   base_momentum: float):
  del base_momentum  # read by the step for the EMA update
  queries, keys = embeddings
  loss = sum(losses.info_nce(queries[v2], keys[v1], temperature)
             for v1, v2 in cross_view_pairs(len(queries)))
  return loss, {"info_nce": loss}, {}


objective = objective_from_embeddings(embed, embedding_loss)


SPEC = MethodSpec(
    name="moco_v3",
    num_views=2,
    make_heads=projector_predictor_heads,
    objective=objective,
    default_method_args={"temperature": 0.2, "base_momentum": 0.99},  # paper: ResNet-50, 0.99
    target_modules=("backbone", "heads/projector"),
    local_views=True,
    embed=embed,
    embedding_loss=embedding_loss,
)
