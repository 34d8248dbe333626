"""LeJEPA: views predict their global views' mean embedding; SIGReg keeps them Gaussian.

Balestriero & LeCun, "LeJEPA: Provable and Scalable Self-Supervised Learning Without the
Heuristics", 2025 (arXiv:2511.08544). No EMA teacher, no stop-gradient, no predictor: the
loss is `losses.lejepa` on the projector outputs of `num_views` views, with fresh random
SIGReg directions every step (drawn from the step's rng, so identical on every device and
on a resumed run). Under `jax.jit` over global arrays the characteristic functions and the
view means are over the global batch (the reference code all-reduces them across GPUs).
Any backbone works: the objective only sees backbone features.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp

from jax_ssl import losses
from jax_ssl.methods.spec import (MethodSpec, SSLModel, StepContext, embed_views,
                                  projector_heads)


def objective(model: SSLModel, views: Sequence[jax.Array], method_state: Any,
              context: StepContext, *, num_views: int, sigreg_weight: float, num_slices: int):
  embeddings = jnp.stack(embed_views(model, views[:num_views]))  # [V, B, K]
  projections = losses.random_directions(context.rng, embeddings.shape[-1], num_slices)
  loss = losses.lejepa(embeddings, projections, sigreg_weight)
  metrics = {"lejepa": loss, "sigreg": losses.sigreg(embeddings, projections),
             "prediction": jnp.mean(jnp.square(embeddings - jnp.mean(embeddings, axis=0)))}
  return loss, metrics, {}


SPEC = MethodSpec(
    name="lejepa",
    num_views=lambda method_args: method_args["num_views"],
    make_heads=projector_heads,
    objective=objective,
    # The reference minimal example: lambda 0.02, 4 views, 256 directions.
    default_method_args={"num_views": 4, "sigreg_weight": 0.02, "num_slices": 256},
)
