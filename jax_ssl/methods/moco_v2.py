"""MoCo v2: InfoNCE against a queue of momentum-encoder keys from earlier batches.

He et al., "Momentum Contrast for Unsupervised Visual Representation Learning", CVPR 2020
(Algorithm 1), with v2's MLP head and augmentations (Chen et al. 2020). Queries come from
the online backbone and projector, keys from their EMA copies (`target_modules`). The loss
is symmetrised over the two views as solo-learn's MoCo V2+ (solo/methods/mocov2plus.py),
with one queue per view as there: view v's keys go into queue v, and each query is
contrasted with the queue of the view its positive key comes from,
(moco_v2(q1, k2, queue of view-2 keys) + moco_v2(q2, k1, queue of view-1 keys)) / 2; the
negatives are that queue only. So, as in the original MoCo (one key per image), every past
image appears once among a query's negatives, and a queue of `queue_size` keys spans
`queue_size` images. After the optimizer step each view's keys of the global batch are
enqueued into its queue (`queue.py`), once per step whatever the device count or gradient
accumulation, so every device holds the same queues.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp

from jax_ssl import losses
from jax_ssl.config.typed import check
from jax_ssl.methods import queue
from jax_ssl.methods.byol import check_momentum
from jax_ssl.methods.spec import (Metrics, MethodSpec, ProjectorHeads, SSLModel, StepContext,
                                  embed_views, projector_heads)

NUM_VIEWS = 2


@dataclasses.dataclass(frozen=True)
class Args:
  """MoCo v2's hyper-parameters (`--config.method_args.KEY`); defaults: the paper's ImageNet
  values (K = 65536, tau = 0.2, momentum 0.999).

  Attributes:
    temperature: tau of InfoNCE, > 0.
    queue_size: K, the keys each view's queue holds (the negatives), >= 1.
    base_momentum: the key encoder's EMA momentum at step 0 (read by the step), in [0, 1].
  """

  temperature: float = 0.2
  queue_size: int = 65536
  base_momentum: float = 0.999

  def validate(self) -> None:
    check(self.temperature > 0,
          f"method_args.temperature={self.temperature!r}; must be > 0 (InfoNCE's tau)")
    queue.check_size(self.queue_size)
    check_momentum(self.base_momentum)


# The projector (`--config.heads.KEY`): ProjectorHeads' defaults are v2's MLP head, 2048 ->
# 128 (experiments/imagenet/moco_v2_resnet50.py).
Heads = ProjectorHeads


def objective(model: SSLModel, views: Sequence[jax.Array], method_state: Any,
              context: StepContext, args: Args) -> tuple[jax.Array, Metrics, dict]:
  """Each view's queries against the other view's keys and that view's queue
  (`losses.moco_v2`), averaged; the state inputs are both views' keys [B, 2, D]."""
  temperature = args.temperature
  q1, q2 = embed_views(model, views)
  k1, k2 = [jax.lax.stop_gradient(k) for k in embed_views(context.target, views)]
  view1_keys, view2_keys = [jax.lax.stop_gradient(method_state[f"view{v}"]["embeddings"])
                            for v in range(NUM_VIEWS)]
  loss = 0.5 * (losses.moco_v2(q1, k2, view2_keys, temperature)
                + losses.moco_v2(q2, k1, view1_keys, temperature))
  return loss, {"moco_v2": loss}, {"keys": jnp.stack([k1, k2], axis=1)}  # [B, 2, D]


def init_method_state(args: Args, heads: Heads) -> dict[str, Any]:
  """One queue of random unit keys per view (MoCo's initialisation), seeds 0 and 1."""
  return {f"view{v}": queue.init(args.queue_size, heads.projector_output_dim, seed=v)
          for v in range(NUM_VIEWS)}


def update_method_state(method_state: Any, state_inputs: Any, context: StepContext,
                        args: Args) -> dict[str, Any]:
  """Enqueues view v's keys [B, D] (one per image) into queue v."""
  del context, args
  return {f"view{v}": queue.enqueue(method_state[f"view{v}"], state_inputs["keys"][:, v])
          for v in range(NUM_VIEWS)}


SPEC = MethodSpec(
    name="moco_v2",
    num_views=NUM_VIEWS,
    make_heads=projector_heads,
    objective=objective,
    init_method_state=init_method_state,
    update_method_state=update_method_state,
    args_type=Args,
    heads_type=Heads,
    target_modules=("backbone", "heads/projector"),
)
