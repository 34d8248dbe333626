"""SwAV: swapped prediction of Sinkhorn-Knopp cluster assignments, multi-crop, with a queue.

Caron et al., "Unsupervised Learning of Visual Features by Contrasting Cluster
Assignments", NeurIPS 2020 (facebookresearch/swav main_swav.py). Backbone -> projector ->
L2 normalisation -> prototypes (unit columns, no gradient for `freeze_prototypes_steps`).
The codes of each global view come from `losses.sinkhorn_knopp` over the global batch (the
sums run over every device under jit), with the scores of that view's queue appended once
the step reaches `queue_start_step`; every view (globals and `augment.local_crops.num`
local crops) predicts the codes of the other global views (`losses.swav`). The queue (method
state, one per global view, `queue_size` rows) takes the global views' normalised
projections of the global batch once per optimizer step; `queue_size=0` disables it.

The queue starts empty (zeros, as main_swav.py's) and counts its real rows (`filled`, saved
with the train state); Sinkhorn masks the rows not yet written (`valid`), so they add
nothing to the marginals and the codes are exactly those of the batch plus the filled rows.
main_swav.py instead waits until its queue is full (`use_the_queue` once `queue[i, -1]` is
nonzero) and only then appends all of it; here the queue is written from step 0 and used
from `queue_start_step` with whatever it holds (the full queue whenever `queue_start_step`
x global batch >= `queue_size`, which is then main_swav.py's use with the queue started
`queue_size` / batch steps earlier).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from jax_ssl import losses
from jax_ssl.methods import queue
from jax_ssl.methods.spec import (MethodSpec, SSLModel, StepContext, embed_views,
                                  projector_heads)
from jax_ssl.models.heads import Prototypes

NUM_GLOBAL_VIEWS = 2


def make_heads(feature_dim: int, head_args: Mapping[str, Any], method_args: Mapping[str, Any],
               rngs: nnx.Rngs) -> dict[str, nnx.Module]:
  heads = projector_heads(feature_dim, head_args, method_args, rngs)
  heads["prototypes"] = Prototypes(head_args["projector_output_dim"],
                                   head_args["num_prototypes"], rngs=rngs)
  return heads


def normalized_projections(model: SSLModel, views: Sequence[jax.Array]) -> list[jax.Array]:
  """L2-normalised projections per view; one backbone pass per crop size."""
  return [losses.l2_normalize(z) for z in embed_views(model, views)]


def objective(model: SSLModel, views: Sequence[jax.Array], method_state: Any,
              context: StepContext, *, temperature: float, epsilon: float,
              sinkhorn_iterations: int, queue_size: int, queue_start_step: int,
              freeze_prototypes_steps: int):
  prototypes = model.heads["prototypes"]
  frozen = context.step < freeze_prototypes_steps
  z = normalized_projections(model, views)
  scores = jnp.stack([prototypes(zv, frozen) for zv in z])  # [V, B, K]
  batch_size = z[0].shape[0]
  codes = []
  for v in range(NUM_GLOBAL_VIEWS):
    view_scores = scores[v]
    if queue_size > 0:
      view_queue = method_state[f"view{v}"]
      queued = jax.lax.stop_gradient(view_queue["embeddings"])
      # Rows [0, filled) hold embeddings (the pointer starts at 0 and laps only when full).
      use_queue = context.step >= queue_start_step
      valid = jnp.concatenate([jnp.ones((batch_size,), bool),
                               use_queue & (jnp.arange(queued.shape[0]) < view_queue["filled"])])
      with_queue = jnp.concatenate([view_scores, queued @ prototypes.normalized_kernel()])
      codes.append(losses.sinkhorn_knopp(with_queue, epsilon, sinkhorn_iterations,
                                         valid=valid)[:batch_size])
    else:
      codes.append(losses.sinkhorn_knopp(view_scores, epsilon, sinkhorn_iterations))
  loss = losses.swav(scores, jnp.stack(codes), temperature)
  state_inputs = {"z": jax.lax.stop_gradient(jnp.stack(z[:NUM_GLOBAL_VIEWS], axis=1))}  # [B, 2, D]
  return loss, {"swav": loss}, state_inputs


def init_method_state(method_args: Mapping[str, Any], head_args: Mapping[str, Any]) -> Any:
  """Per global view: an empty queue (zero rows, as main_swav.py's) and its fill count."""
  if method_args["queue_size"] <= 0:
    return {}
  shape = (method_args["queue_size"], head_args["projector_output_dim"])
  # Separate arrays per view (the step donates the state: no buffer may appear twice).
  return {f"view{v}": {"embeddings": jnp.zeros(shape, jnp.float32),
                       "pointer": jnp.zeros((), jnp.int32), "filled": jnp.zeros((), jnp.int32)}
          for v in range(NUM_GLOBAL_VIEWS)}


def update_method_state(method_state, state_inputs, context, method_args):
  """Writes each global view's projections into its queue; `filled` counts real rows."""
  del context
  if method_args["queue_size"] <= 0:
    return method_state
  new_state = {}
  for v in range(NUM_GLOBAL_VIEWS):
    rows = state_inputs["z"][:, v]
    view_queue = method_state[f"view{v}"]
    written = queue.enqueue({"embeddings": view_queue["embeddings"],
                             "pointer": view_queue["pointer"]}, rows)
    filled = jnp.minimum(view_queue["filled"] + rows.shape[0], method_args["queue_size"])
    new_state[f"view{v}"] = {**written, "filled": filled.astype(jnp.int32)}
  return new_state


SPEC = MethodSpec(
    name="swav",
    num_views=NUM_GLOBAL_VIEWS,
    make_heads=make_heads,
    objective=objective,
    init_method_state=init_method_state,
    update_method_state=update_method_state,
    # facebookresearch/swav's 800-epoch ImageNet values (queue off at batch 4096; 313
    # iterations = 1 epoch of frozen prototypes).
    default_method_args={"temperature": 0.1, "epsilon": 0.05, "sinkhorn_iterations": 3,
                         "queue_size": 0, "queue_start_step": 0,
                         "freeze_prototypes_steps": 313},
    local_views=True,
)
