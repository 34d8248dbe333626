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

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from jax_ssl import losses
from jax_ssl.config.typed import check, check_positive
from jax_ssl.methods import queue
from jax_ssl.methods.spec import (Metrics, MethodSpec, ProjectorHeads, SSLModel, StepContext,
                                  embed_views, projector_heads)
from jax_ssl.models.heads import Prototypes

NUM_GLOBAL_VIEWS = 2


@dataclasses.dataclass(frozen=True)
class Args:
  """SwAV's hyper-parameters (`--config.method_args.KEY`); defaults: facebookresearch/swav's
  800-epoch ImageNet values (queue off at batch 4096; 313 iterations = 1 epoch of frozen
  prototypes).

  Attributes:
    temperature: tau of the swapped prediction's softmax, > 0.
    epsilon: Sinkhorn-Knopp's entropic regularisation, > 0.
    sinkhorn_iterations: Sinkhorn-Knopp's iterations, >= 1.
    queue_size: rows of each global view's queue, >= 0 (0: no queue).
    queue_start_step: the step from which the queue's scores join the codes, >= 0.
    freeze_prototypes_steps: the steps the prototypes get no gradient, >= 0.
  """

  temperature: float = 0.1
  epsilon: float = 0.05
  sinkhorn_iterations: int = 3
  queue_size: int = 0
  queue_start_step: int = 0
  freeze_prototypes_steps: int = 313

  def validate(self) -> None:
    check_positive("method_args", self, "temperature", "epsilon")
    check(self.sinkhorn_iterations >= 1,
          f"method_args.sinkhorn_iterations={self.sinkhorn_iterations!r}; need an integer >= 1")
    for name in ("queue_size", "queue_start_step", "freeze_prototypes_steps"):
      value = getattr(self, name)
      check(value >= 0, f"method_args.{name}={value!r}; must be >= 0 (queue_size 0: no queue)")


@dataclasses.dataclass(frozen=True)
class Heads(ProjectorHeads):
  """Projector and prototypes (`--config.heads.KEY`): the paper's 2048 -> 128 projector and
  3000 prototypes (experiments/imagenet/swav_resnet50.py)."""

  num_prototypes: int = 3000

  def validate(self) -> None:
    super().validate()
    check(self.num_prototypes >= 1,
          f"heads.num_prototypes={self.num_prototypes!r}; need an integer >= 1")


def make_heads(feature_dim: int, heads: Heads, args: Args,
               rngs: nnx.Rngs) -> dict[str, nnx.Module]:
  """`projector_heads` plus {"prototypes": Prototypes(projector_output_dim -> num_prototypes)}."""
  modules = projector_heads(feature_dim, heads, args, rngs)
  modules["prototypes"] = Prototypes(heads.projector_output_dim, heads.num_prototypes,
                                     rngs=rngs)
  return modules


def normalized_projections(model: SSLModel, views: Sequence[jax.Array]) -> list[jax.Array]:
  """L2-normalised projections per view; one backbone pass per crop size."""
  return [losses.l2_normalize(z) for z in embed_views(model, views)]


def objective(model: SSLModel, views: Sequence[jax.Array], method_state: Any,
              context: StepContext, args: Args) -> tuple[jax.Array, Metrics, dict]:
  """`losses.swav` of every view's scores against the other global views' Sinkhorn codes
  (with the queue's scores from `queue_start_step`); the state inputs are the global views'
  normalised projections [B, 2, D]."""
  epsilon, sinkhorn_iterations = args.epsilon, args.sinkhorn_iterations
  prototypes = model.heads["prototypes"]
  frozen = context.step < args.freeze_prototypes_steps
  z = normalized_projections(model, views)
  scores = jnp.stack([prototypes(zv, frozen) for zv in z])  # [V, B, K]
  batch_size = z[0].shape[0]
  codes = []
  for v in range(NUM_GLOBAL_VIEWS):
    view_scores = scores[v]
    if args.queue_size > 0:
      view_queue = method_state[f"view{v}"]
      queued = jax.lax.stop_gradient(view_queue["embeddings"])
      # Rows [0, filled) hold embeddings (the pointer starts at 0 and laps only when full).
      use_queue = context.step >= args.queue_start_step
      valid = jnp.concatenate([jnp.ones((batch_size,), bool),
                               use_queue & (jnp.arange(queued.shape[0]) < view_queue["filled"])])
      with_queue = jnp.concatenate([view_scores, queued @ prototypes.normalized_kernel()])
      codes.append(losses.sinkhorn_knopp(with_queue, epsilon, sinkhorn_iterations,
                                         valid=valid)[:batch_size])
    else:
      codes.append(losses.sinkhorn_knopp(view_scores, epsilon, sinkhorn_iterations))
  loss = losses.swav(scores, jnp.stack(codes), args.temperature)
  state_inputs = {"z": jax.lax.stop_gradient(jnp.stack(z[:NUM_GLOBAL_VIEWS], axis=1))}  # [B, 2, D]
  return loss, {"swav": loss}, state_inputs


def init_method_state(args: Args, heads: Heads) -> Any:
  """Per global view: an empty queue (zero rows, as main_swav.py's) and its fill count."""
  if args.queue_size <= 0:
    return {}
  shape = (args.queue_size, heads.projector_output_dim)
  # Separate arrays per view (the step donates the state: no buffer may appear twice).
  return {f"view{v}": {"embeddings": jnp.zeros(shape, jnp.float32),
                       "pointer": jnp.zeros((), jnp.int32), "filled": jnp.zeros((), jnp.int32)}
          for v in range(NUM_GLOBAL_VIEWS)}


def update_method_state(method_state: Any, state_inputs: Any, context: StepContext,
                        args: Args) -> Any:
  """Writes each global view's projections into its queue; `filled` counts real rows."""
  del context
  if args.queue_size <= 0:
    return method_state
  new_state = {}
  for v in range(NUM_GLOBAL_VIEWS):
    rows = state_inputs["z"][:, v]
    view_queue = method_state[f"view{v}"]
    written = queue.enqueue({"embeddings": view_queue["embeddings"],
                             "pointer": view_queue["pointer"]}, rows)
    filled = jnp.minimum(view_queue["filled"] + rows.shape[0], args.queue_size)
    new_state[f"view{v}"] = {**written, "filled": filled.astype(jnp.int32)}
  return new_state


SPEC = MethodSpec(
    name="swav",
    num_views=NUM_GLOBAL_VIEWS,
    make_heads=make_heads,
    objective=objective,
    args_type=Args,
    heads_type=Heads,
    init_method_state=init_method_state,
    update_method_state=update_method_state,
    local_views=True,
)
