"""NNCLR: the positive of a view is the nearest neighbour of the other view in a support set.

Dwibedi et al., "With a Little Help from My Friends: Nearest-Neighbor Contrastive Learning of
Visual Representations", ICCV 2021. Projections z and predictions p of two views; each
z is replaced by its nearest neighbour (cosine) in a support set of projections of earlier
batches (`queue.py`), and the loss is InfoNCE between those neighbours and the other view's
predictions over the global batch (`losses.nnclr`, symmetrised and halved as solo-learn).
After the optimizer step the first view's projections of the global batch are enqueued.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp

from jax_ssl import losses
from jax_ssl.config.typed import check
from jax_ssl.methods import queue
from jax_ssl.methods.spec import (Metrics, MethodSpec, ProjectorPredictorHeads, SSLModel,
                                  StepContext, embed_views, projector_predictor_heads)


@dataclasses.dataclass(frozen=True)
class Args:
  """NNCLR's hyper-parameters (`--config.method_args.KEY`); defaults: the paper's values.

  Attributes:
    temperature: tau of the InfoNCE between neighbours and predictions, > 0.
    queue_size: the rows of the support set, >= 1.
  """

  temperature: float = 0.1
  queue_size: int = 98304

  def validate(self) -> None:
    check(self.temperature > 0,
          f"method_args.temperature={self.temperature!r}; must be > 0 (InfoNCE's tau)")
    queue.check_size(self.queue_size)


@dataclasses.dataclass(frozen=True)
class Heads(ProjectorPredictorHeads):
  """Projector and predictor (`--config.heads.KEY`): the paper's 3-layer 2048 -> 256
  projector and 4096-wide predictor (experiments/imagenet/nnclr_resnet50.py)."""

  projector_hidden_dim: int = 2048
  projector_output_dim: int = 256
  projector_num_layers: int = 3
  predictor_hidden_dim: int = 4096


def objective(model: SSLModel, views: Sequence[jax.Array], method_state: Any,
              context: StepContext, args: Args) -> tuple[jax.Array, Metrics, dict]:
  """`losses.nnclr` of each view's support-set neighbours against the other view's
  predictions, averaged; the state inputs are the first view's projections [B, D]."""
  del context
  temperature = args.temperature
  z1, z2 = embed_views(model, views)
  p1, p2 = jnp.split(model.heads["predictor"](jnp.concatenate([z1, z2])), 2)
  support = jax.lax.stop_gradient(method_state["embeddings"])
  nn1, nn2 = (losses.nearest_neighbour(z, support) for z in (z1, z2))
  loss = 0.5 * (losses.nnclr(nn1, p2, temperature) + losses.nnclr(nn2, p1, temperature))
  return loss, {"nnclr": loss}, {"projections": z1}


def init_method_state(args: Args, heads: Heads) -> dict[str, jax.Array]:
  """The support set: a queue of random unit rows (`queue.init`)."""
  return queue.init(args.queue_size, heads.projector_output_dim)


def update_method_state(method_state: Any, state_inputs: Any, context: StepContext,
                        args: Args) -> dict[str, Any]:
  """Enqueues the first view's projections of the global batch."""
  del context, args
  return queue.enqueue(method_state, state_inputs["projections"])


SPEC = MethodSpec(
    name="nnclr",
    num_views=2,
    make_heads=projector_predictor_heads,
    objective=objective,
    args_type=Args,
    heads_type=Heads,
    init_method_state=init_method_state,
    update_method_state=update_method_state,
)
