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
from jax_ssl.methods.spec import (MethodSpec, SSLModel, StepContext, embed_views,
                                  projector_heads)


def objective(model: SSLModel, views: Sequence[jax.Array], method_state: Any,
              context: StepContext, *,
              invariance_weight: float, variance_weight: float, covariance_weight: float):
  z1, z2 = embed_views(model, views)
  loss = losses.vicreg(z1, z2, invariance_weight, variance_weight, covariance_weight)
  return loss, {"vicreg": loss}, {}


SPEC = MethodSpec(
    name="vicreg",
    num_views=2,
    make_heads=projector_heads,
    objective=objective,
    default_method_args={"invariance_weight": 25.0, "variance_weight": 25.0,
                         "covariance_weight": 1.0},
)
