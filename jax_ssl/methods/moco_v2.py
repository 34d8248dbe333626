"""MoCo v2: InfoNCE against a queue of momentum-encoder keys from earlier batches.

He et al., "Momentum Contrast for Unsupervised Visual Representation Learning", CVPR 2020
(Algorithm 1), with v2's MLP head and augmentations (Chen et al. 2020). Queries come from
the online backbone and projector, keys from their EMA copies (`target_modules`). The loss
is symmetrised over the two views (as solo-learn's MoCo v2+): (moco_v2(q1, k2, queue) +
moco_v2(q2, k1, queue)) / 2; the negatives are the queue only. After the optimizer step
both views' keys of the global batch are enqueued (`queue.py`), once per step whatever the
device count or gradient accumulation, so every device holds the same queue.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp

from jax_ssl import losses
from jax_ssl.methods import queue
from jax_ssl.methods.spec import (MethodSpec, SSLModel, StepContext, embed_views,
                                  projector_heads)


def objective(model: SSLModel, views: Sequence[jax.Array], method_state: Any,
              context: StepContext, *, temperature: float, queue_size: int,
              base_momentum: float):
  del queue_size, base_momentum  # read by init_method_state and the step
  q1, q2 = embed_views(model, views)
  k1, k2 = [jax.lax.stop_gradient(k) for k in embed_views(context.target, views)]
  negatives = jax.lax.stop_gradient(method_state["embeddings"])
  loss = 0.5 * (losses.moco_v2(q1, k2, negatives, temperature)
                + losses.moco_v2(q2, k1, negatives, temperature))
  return loss, {"moco_v2": loss}, {"keys": jnp.stack([k1, k2], axis=1)}  # [B, 2, D]


def update_method_state(method_state, state_inputs, context, method_args):
  keys = state_inputs["keys"]
  return queue.enqueue(method_state, keys.reshape(-1, keys.shape[-1]))


SPEC = MethodSpec(
    name="moco_v2",
    num_views=2,
    make_heads=projector_heads,
    objective=objective,
    init_method_state=lambda method_args, head_args: queue.init(
        method_args["queue_size"], head_args["projector_output_dim"]),
    update_method_state=update_method_state,
    # The paper's ImageNet values: K = 65536, tau = 0.2, momentum 0.999.
    default_method_args={"temperature": 0.2, "queue_size": 65536, "base_momentum": 0.999},
    target_modules=("backbone", "heads/projector"),
)
