"""Barlow Twins: push the cross-correlation of two views' projections towards the identity.

Zbontar et al., "Barlow Twins: Self-Supervised Learning via Redundancy Reduction", ICML 2021.
The paper's projector is 3 layers of 8192. Under `jax.jit` over global arrays the batch
standardisation and the [D, D] cross-correlation span every device's and every host's
examples (the paper all-reduces c across GPUs for the same reason).
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
  """Barlow Twins' hyper-parameters (`--config.method_args.KEY`).

  Attributes:
    off_diagonal_weight: lambda, the weight of the redundancy-reduction (off-diagonal) term,
      >= 0; the paper's 5e-3.
  """

  off_diagonal_weight: float = 5e-3

  def validate(self) -> None:
    check(self.off_diagonal_weight >= 0,
          f"method_args.off_diagonal_weight={self.off_diagonal_weight!r}; must be >= 0 "
          f"(lambda of the off-diagonal term)")


@dataclasses.dataclass(frozen=True)
class Heads(ProjectorHeads):
  """The projector (`--config.heads.KEY`): the paper's 3 layers of 8192
  (experiments/imagenet/barlow_twins_resnet50.py)."""

  projector_hidden_dim: int = 8192
  projector_output_dim: int = 8192
  projector_num_layers: int = 3


embed = embed_projections  # the projections of every view, V x [B, D]


def embedding_loss(embeddings: Sequence[jax.Array], method_state: Any, context: StepContext,
                   args: Args) -> tuple[jax.Array, Metrics, dict]:
  """`losses.barlow_twins` of the two views' projections [B, D]; no state."""
  del method_state, context
  z1, z2 = embeddings
  loss = losses.barlow_twins(z1, z2, args.off_diagonal_weight)
  return loss, {"barlow_twins": loss}, {}


objective = objective_from_embeddings(embed, embedding_loss)


SPEC = MethodSpec(
    name="barlow_twins",
    num_views=2,
    make_heads=projector_heads,
    objective=objective,
    args_type=Args,
    heads_type=Heads,
    embed=embed,
    embedding_loss=embedding_loss,
)
