"""SimCLR: NT-Xent over the global batch of two views.

Chen et al., "A Simple Framework for Contrastive Learning of Visual Representations",
ICML 2020. Under `jax.jit` over global arrays the similarity matrix spans every device's
and every host's examples, so each anchor has 2N-1 global negatives.

Multi-crop (`augment.local_crops.num` = L > 0, Caron et al. 2020): the 2 global views and L
smaller local crops all go through the encoder and `losses.nt_xent_multi_view` takes every
other crop of the same image as a positive (solo-learn's multi-crop SimCLR).
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
  """SimCLR's hyper-parameters (`--config.method_args.KEY`).

  Attributes:
    temperature: tau of NT-Xent, > 0.
  """

  temperature: float = 0.2

  def validate(self) -> None:
    check(self.temperature > 0,
          f"method_args.temperature={self.temperature!r}; must be > 0 (NT-Xent's tau)")


# The projector g (`--config.heads.KEY`): ProjectorHeads' defaults are the paper's ImageNet
# recipe, 2048 -> 2048 -> 128 (experiments/imagenet/simclr_resnet50.py).
Heads = ProjectorHeads


embed = embed_projections  # the projections of every view, V x [B, D]


def embedding_loss(embeddings: Sequence[jax.Array], method_state: Any, context: StepContext,
                   args: Args) -> tuple[jax.Array, Metrics, dict]:
  """NT-Xent over every pair of views of an image (`losses.nt_xent_multi_view`); no state."""
  del method_state, context
  loss = losses.nt_xent_multi_view(embeddings, args.temperature)
  return loss, {"nt_xent": loss}, {}


objective = objective_from_embeddings(embed, embedding_loss)


SPEC = MethodSpec(
    name="simclr",
    num_views=2,
    make_heads=projector_heads,
    objective=objective,
    args_type=Args,
    heads_type=Heads,
    local_views=True,
    embed=embed,
    embedding_loss=embedding_loss,
)
