"""VICReg: invariance between two views plus variance and covariance regularisation.

Bardes, Ponce & LeCun, "VICReg: Variance-Invariance-Covariance Regularization for
Self-Supervised Learning", ICLR 2022. The paper's expander is 3 layers of 8192. Under
`jax.jit` over global arrays the variances and covariances span the global batch (the paper
all-gathers the embeddings across GPUs for the same reason).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from jax_ssl import losses
from jax_ssl.methods.spec import MethodSpec, SSLModel
from jax_ssl.models.heads import MLPHead


def make_heads(feature_dim: int, head_args: Mapping[str, Any], rngs: nnx.Rngs):
  return {"projector": MLPHead(feature_dim, head_args["projector_hidden_dim"],
                               head_args["projector_output_dim"],
                               head_args["projector_num_layers"], rngs=rngs)}


def objective(model: SSLModel, views: Sequence[jax.Array], method_state: Any, *,
              invariance_weight: float, variance_weight: float, covariance_weight: float):
  # One backbone pass over both views: BatchNorm statistics over all 2N global views.
  embeddings = model.heads["projector"](model.backbone(jnp.concatenate(views, axis=0)))
  z1, z2 = jnp.split(embeddings, 2, axis=0)
  loss = losses.vicreg(z1, z2, invariance_weight, variance_weight, covariance_weight)
  return loss, {"vicreg": loss}, method_state


SPEC = MethodSpec(
    name="vicreg",
    num_views=2,
    make_heads=make_heads,
    objective=objective,
    default_method_args={"invariance_weight": 25.0, "variance_weight": 25.0,
                         "covariance_weight": 1.0},
)
