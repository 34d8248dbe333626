"""BYOL: the online network predicts an EMA target network's projection of the other view.

Grill et al., "Bootstrap Your Own Latent: A New Approach to Self-Supervised Learning",
NeurIPS 2020. Online: backbone -> projector -> predictor; target: EMA copies of the backbone
and projector (declared in the spec's `target_modules`, moved by the shared step after each
optimizer update with momentum `base_momentum` -> 1 on a cosine), no predictor. The loss
is symmetrised, eq. (2)-(3): byol(p1, sg(z'2)) + byol(p2, sg(z'1)).
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp

from jax_ssl import losses
from jax_ssl.methods.spec import (MethodSpec, SSLModel, StepContext, embed_views,
                                  projector_predictor_heads)


def predictions_and_targets(model: SSLModel, views: Sequence[jax.Array], context: StepContext
                            ) -> tuple[list[jax.Array], list[jax.Array]]:
  """Online predictions q_v and (stop-gradient) target projections z'_v of every view."""
  projections = embed_views(model, views)
  predictions = jnp.split(model.heads["predictor"](jnp.concatenate(projections)), len(views))
  targets = [jax.lax.stop_gradient(z) for z in embed_views(context.target, views)]
  return predictions, targets


def objective(model: SSLModel, views: Sequence[jax.Array], method_state: Any,
              context: StepContext, *, base_momentum: float):
  del base_momentum  # read by the step for the EMA update
  (p1, p2), (z1, z2) = predictions_and_targets(model, views, context)
  loss = losses.byol(p1, z2) + losses.byol(p2, z1)
  return loss, {"byol": loss}, {}


SPEC = MethodSpec(
    name="byol",
    num_views=2,
    make_heads=projector_predictor_heads,
    objective=objective,
    default_method_args={"base_momentum": 0.996},  # the paper's ImageNet value
    target_modules=("backbone", "heads/projector"),
)
