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

import dataclasses
from typing import Any, Sequence

import jax

from jax_ssl import losses
from jax_ssl.config.typed import check
from jax_ssl.methods.byol import check_momentum, cross_view_pairs, predictions_and_targets
from jax_ssl.methods.spec import (Metrics, MethodSpec, ProjectorPredictorHeads, SSLModel,
                                  StepContext, objective_from_embeddings,
                                  projector_predictor_heads)


@dataclasses.dataclass(frozen=True)
class Args:
  """MoCo v3's hyper-parameters (`--config.method_args.KEY`).

  Attributes:
    temperature: tau of InfoNCE, > 0 (the paper's ViT value 0.2; its ResNet-50 recipe,
      experiments/imagenet/moco_v3_resnet50.py, sets 1.0).
    base_momentum: the momentum encoder's EMA momentum at step 0 (read by the step), in
      [0, 1]; the paper's 0.99.
  """

  temperature: float = 0.2
  base_momentum: float = 0.99

  def validate(self) -> None:
    check(self.temperature > 0,
          f"method_args.temperature={self.temperature!r}; must be > 0 (InfoNCE's tau)")
    check_momentum(self.base_momentum)


@dataclasses.dataclass(frozen=True)
class Heads(ProjectorPredictorHeads):
  """Projector and predictor (`--config.heads.KEY`): the paper's ResNet-50 MLPs, 4096 ->
  256 (experiments/imagenet/moco_v3_resnet50.py; its ViT projector has 3 layers)."""

  projector_hidden_dim: int = 4096
  projector_output_dim: int = 256
  projector_num_layers: int = 2
  predictor_hidden_dim: int = 4096


def embed(model: SSLModel, views: Sequence[jax.Array], context: StepContext
          ) -> tuple[list[jax.Array], list[jax.Array]]:
  """(queries of every view V x [B, D], stop-gradient keys of the 2 global views [k1, k2])."""
  return predictions_and_targets(model, views, context)


def embedding_loss(embeddings, method_state: Any, context: StepContext, args: Args
                   ) -> tuple[jax.Array, Metrics, dict]:
  """`losses.info_nce` of each crop's queries against each other global view's keys, summed
  over the pairs (`byol.cross_view_pairs`); no state (`base_momentum` is the step's)."""
  del method_state, context
  queries, keys = embeddings
  loss = sum(losses.info_nce(queries[v2], keys[v1], args.temperature)
             for v1, v2 in cross_view_pairs(len(queries)))
  return loss, {"info_nce": loss}, {}


objective = objective_from_embeddings(embed, embedding_loss)


SPEC = MethodSpec(
    name="moco_v3",
    num_views=2,
    make_heads=projector_predictor_heads,
    objective=objective,
    args_type=Args,
    heads_type=Heads,
    target_modules=("backbone", "heads/projector"),
    local_views=True,
    embed=embed,
    embedding_loss=embedding_loss,
)
