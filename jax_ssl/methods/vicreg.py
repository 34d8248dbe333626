"""VICReg: invariance between two views plus variance and covariance regularisation.

Bardes, Ponce & LeCun, "VICReg: Variance-Invariance-Covariance Regularization for
Self-Supervised Learning", ICLR 2022. The paper's expander is 3 layers of 8192. Under
`jax.jit` over global arrays the variances and covariances span the global batch (the paper
all-gathers the embeddings across GPUs for the same reason).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax

from jax_ssl import losses
from jax_ssl.config.typed import check
from jax_ssl.methods.spec import (Metrics, MethodSpec, ProjectorHeads, StepContext,
                                  embed_projections, objective_from_embeddings, projector_heads)


@dataclasses.dataclass(frozen=True)
class Args:
  """VICReg's hyper-parameters (`--config.method_args.KEY`): the weights lambda, mu, nu of
  the invariance, variance and covariance terms, each >= 0 (the paper's 25, 25, 1)."""

  invariance_weight: float = 25.0
  variance_weight: float = 25.0
  covariance_weight: float = 1.0

  def validate(self) -> None:
    for name in ("invariance_weight", "variance_weight", "covariance_weight"):
      value = getattr(self, name)
      check(value >= 0, f"method_args.{name}={value!r}; must be >= 0 (a term's weight)")


@dataclasses.dataclass(frozen=True)
class Heads(ProjectorHeads):
  """The expander (`--config.heads.KEY`): the paper's 3 layers of 8192
  (experiments/imagenet/vicreg_resnet50.py)."""

  projector_hidden_dim: int = 8192
  projector_output_dim: int = 8192
  projector_num_layers: int = 3


embed = embed_projections  # the projections of every view, V x [B, D]


def embedding_loss(embeddings: Sequence[jax.Array], method_state: Any, context: StepContext,
                   args: Args) -> tuple[jax.Array, Metrics, dict]:
  """`losses.vicreg` of the two views' projections [B, D]; no state."""
  del method_state, context
  z1, z2 = embeddings
  loss = losses.vicreg(z1, z2, args.invariance_weight, args.variance_weight,
                       args.covariance_weight)
  return loss, {"vicreg": loss}, {}


objective = objective_from_embeddings(embed, embedding_loss)


SPEC = MethodSpec(
    name="vicreg",
    num_views=2,
    make_heads=projector_heads,
    objective=objective,
    args_type=Args,
    heads_type=Heads,
    embed=embed,
    embedding_loss=embedding_loss,
)
