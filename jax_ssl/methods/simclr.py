"""SimCLR: NT-Xent over the global batch of two views.

Chen et al., "A Simple Framework for Contrastive Learning of Visual Representations",
ICML 2020. Under `jax.jit` over global arrays the similarity matrix spans every device's
and every host's examples, so each anchor has 2N-1 global negatives.
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
              temperature: float):
  # One backbone pass over both views: BatchNorm statistics over all 2N global views.
  projections = model.heads["projector"](model.backbone(jnp.concatenate(views, axis=0)))
  z1, z2 = jnp.split(projections, 2, axis=0)
  loss = losses.nt_xent(z1, z2, temperature)
  return loss, {"nt_xent": loss}, method_state


SPEC = MethodSpec(
    name="simclr",
    num_views=2,
    make_heads=make_heads,
    objective=objective,
    default_method_args={"temperature": 0.2},
)
