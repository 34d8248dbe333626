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

rho-MoCo (Feichtenhofer et al., "A Large-Scale Study on Unsupervised Spatiotemporal
Representation Learning", CVPR 2021): on a video dataset the views are clips, and
`method_args.num_clips` = rho > 2 takes rho clips of each video, with one queue per clip:
every clip's queries against every other clip's keys and that clip's queue, averaged over the
rho (rho - 1) pairs (`losses.rho_moco`; rho = 2 is the loss above). SlowFast's
contrastive.py instead enqueues all clips' keys into one shared queue
(MOCO_MULTI_VIEW_QUEUE) and sums the rho queries' losses (rho x this mean: scale the
learning rate to compare).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp

from jax_ssl import losses
from jax_ssl.config.typed import check
from jax_ssl.methods import queue
from jax_ssl.methods.byol import check_clip_count, check_momentum, clip_count
from jax_ssl.methods.spec import (Metrics, MethodSpec, ProjectorHeads, SSLModel, StepContext,
                                  embed_views, projector_heads)


@dataclasses.dataclass(frozen=True)
class Args:
  """MoCo v2's hyper-parameters (`--config.method_args.KEY`); defaults: the paper's ImageNet
  values (K = 65536, tau = 0.2, momentum 0.999).

  Attributes:
    temperature: tau of InfoNCE, > 0.
    queue_size: K, the keys each view's queue holds (the negatives), >= 1.
    base_momentum: the key encoder's EMA momentum at step 0 (read by the step), in [0, 1].
    num_clips: rho, the views (clips of a video) whose queries meet every other one's keys,
      each with its own queue, >= 2 (rho-MoCo; 2: MoCo v2).
  """

  temperature: float = 0.2
  queue_size: int = 65536
  base_momentum: float = 0.999
  num_clips: int = 2

  def validate(self) -> None:
    check(self.temperature > 0,
          f"method_args.temperature={self.temperature!r}; must be > 0 (InfoNCE's tau)")
    queue.check_size(self.queue_size)
    check_momentum(self.base_momentum)
    check_clip_count(self.num_clips)


# The projector (`--config.heads.KEY`): ProjectorHeads' defaults are v2's MLP head, 2048 ->
# 128 (experiments/imagenet/moco_v2_resnet50.py).
Heads = ProjectorHeads


def objective(model: SSLModel, views: Sequence[jax.Array], method_state: Any,
              context: StepContext, args: Args) -> tuple[jax.Array, Metrics, dict]:
  """Each view's queries against every other view's keys and that view's queue
  (`losses.rho_moco`: `losses.moco_v2` averaged over the pairs); the state inputs are every
  view's keys [B, num_clips, D]."""
  queries = embed_views(model, views)
  keys = [jax.lax.stop_gradient(k) for k in embed_views(context.target, views)]
  queues = [jax.lax.stop_gradient(method_state[f"view{v}"]["embeddings"])
            for v in range(args.num_clips)]
  loss = losses.rho_moco(queries, keys, queues, args.temperature)
  return loss, {"moco_v2": loss}, {"keys": jnp.stack(keys, axis=1)}  # [B, num_clips, D]


def init_method_state(args: Args, heads: Heads) -> dict[str, Any]:
  """One queue of random unit keys per view (MoCo's initialisation), view v's from seed v."""
  return {f"view{v}": queue.init(args.queue_size, heads.projector_output_dim, seed=v)
          for v in range(args.num_clips)}


def update_method_state(method_state: Any, state_inputs: Any, context: StepContext,
                        args: Args) -> dict[str, Any]:
  """Enqueues view v's keys [B, D] (one per image) into queue v."""
  del context
  return {f"view{v}": queue.enqueue(method_state[f"view{v}"], state_inputs["keys"][:, v])
          for v in range(args.num_clips)}


SPEC = MethodSpec(
    name="moco_v2",
    num_views=clip_count,
    make_heads=projector_heads,
    objective=objective,
    init_method_state=init_method_state,
    update_method_state=update_method_state,
    args_type=Args,
    heads_type=Heads,
    target_modules=("backbone", "heads/projector"),
)
