"""VICReg: invariance between two views plus variance and covariance regularisation.

Bardes, Ponce & LeCun, "VICReg: Variance-Invariance-Covariance Regularization for
Self-Supervised Learning", ICLR 2022. The paper's expander is 3 layers of 8192. Under
`jax.jit` over global arrays the variances and covariances span the global batch (the paper
all-gathers the embeddings across GPUs for the same reason).
"""

from __future__ import annotations

from typing import Any, Sequence

import jax

from jax_ssl import losses
from jax_ssl.methods.spec import (MethodSpec, StepContext, embed_projections,
                                  objective_from_embeddings, projector_heads)


embed = embed_projections  # the projections of every view, V x [B, D]


def embedding_loss(embeddings: Sequence[jax.Array], method_state: Any, context: StepContext, *,
                   invariance_weight: float, variance_weight: float, covariance_weight: float):
  z1, z2 = embeddings
  loss = losses.vicreg(z1, z2, invariance_weight, variance_weight, covariance_weight)
  return loss, {"vicreg": loss}, {}


objective = objective_from_embeddings(embed, embedding_loss)


SPEC = MethodSpec(
    name="vicreg",
    num_views=2,
    make_heads=projector_heads,
    objective=objective,
    default_method_args={"invariance_weight": 25.0, "variance_weight": 25.0,
                         "covariance_weight": 1.0},
    embed=embed,
    embedding_loss=embedding_loss,
)
