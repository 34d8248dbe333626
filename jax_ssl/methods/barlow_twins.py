"""Barlow Twins: push the cross-correlation of two views' projections towards the identity.

Zbontar et al., "Barlow Twins: Self-Supervised Learning via Redundancy Reduction", ICML 2021.
The paper's projector is 3 layers of 8192. Under `jax.jit` over global arrays the batch
standardisation and the [D, D] cross-correlation span every device's and every host's
examples (the paper all-reduces c across GPUs for the same reason).
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
              off_diagonal_weight: float):
  # One backbone pass over both views: BatchNorm statistics over all 2N global views.
  projections = model.heads["projector"](model.backbone(jnp.concatenate(views, axis=0)))
  z1, z2 = jnp.split(projections, 2, axis=0)
  loss = losses.barlow_twins(z1, z2, off_diagonal_weight)
  return loss, {"barlow_twins": loss}, method_state


SPEC = MethodSpec(
    name="barlow_twins",
    num_views=2,
    make_heads=make_heads,
    objective=objective,
    default_method_args={"off_diagonal_weight": 5e-3},
)
