"""Barlow Twins: push the cross-correlation of two views' projections towards the identity.

Zbontar et al., "Barlow Twins: Self-Supervised Learning via Redundancy Reduction", ICML 2021.
The paper's projector is 3 layers of 8192. Under `jax.jit` over global arrays the batch
standardisation and the [D, D] cross-correlation span every device's and every host's
examples (the paper all-reduces c across GPUs for the same reason).
"""

from __future__ import annotations

from typing import Any, Sequence

import jax

from jax_ssl import losses
from jax_ssl.methods.spec import (MethodSpec, StepContext, embed_projections,
                                  objective_from_embeddings, projector_heads)


embed = embed_projections  # the projections of every view, V x [B, D]


def embedding_loss(embeddings: Sequence[jax.Array], method_state: Any, context: StepContext, *,
                   off_diagonal_weight: float):
  z1, z2 = embeddings
  loss = losses.barlow_twins(z1, z2, off_diagonal_weight)
  return loss, {"barlow_twins": loss}, {}


objective = objective_from_embeddings(embed, embedding_loss)


SPEC = MethodSpec(
    name="barlow_twins",
    num_views=2,
    make_heads=projector_heads,
    objective=objective,
    default_method_args={"off_diagonal_weight": 5e-3},
    embed=embed,
    embedding_loss=embedding_loss,
)
