"""NNCLR: the positive of a view is the nearest neighbour of the other view in a support set.

Dwibedi et al., "With a Little Help from My Friends: Nearest-Neighbor Contrastive Learning of
Visual Representations", ICCV 2021. Projections z and predictions p of two views; each
z is replaced by its nearest neighbour (cosine) in a support set of projections of earlier
batches (`queue.py`), and the loss is InfoNCE between those neighbours and the other view's
predictions over the global batch (`losses.nnclr`, symmetrised and halved as solo-learn).
After the optimizer step the first view's projections of the global batch are enqueued.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp

from jax_ssl import losses
from jax_ssl.methods import queue
from jax_ssl.methods.spec import (MethodSpec, SSLModel, StepContext, embed_views,
                                  projector_predictor_heads)


def objective(model: SSLModel, views: Sequence[jax.Array], method_state: Any,
              context: StepContext, *, temperature: float, queue_size: int):
  del queue_size  # read by init_method_state
  z1, z2 = embed_views(model, views)
  p1, p2 = jnp.split(model.heads["predictor"](jnp.concatenate([z1, z2])), 2)
  support = jax.lax.stop_gradient(method_state["embeddings"])
  nn1, nn2 = (losses.nearest_neighbour(z, support) for z in (z1, z2))
  loss = 0.5 * (losses.nnclr(nn1, p2, temperature) + losses.nnclr(nn2, p1, temperature))
  return loss, {"nnclr": loss}, {"projections": z1}


def update_method_state(method_state, state_inputs, context, method_args):
  return queue.enqueue(method_state, state_inputs["projections"])


SPEC = MethodSpec(
    name="nnclr",
    num_views=2,
    make_heads=projector_predictor_heads,
    objective=objective,
    init_method_state=lambda method_args, head_args: queue.init(
        method_args["queue_size"], head_args["projector_output_dim"]),
    update_method_state=update_method_state,
    default_method_args={"temperature": 0.1, "queue_size": 98304},  # the paper's values
)
