"""The declarative method spec: what a self-supervised method adds to the shared trainer.

A method is data plus a pure loss. The trainer builds `SSLModel(backbone, heads)`, makes
`num_views` augmented views on device, and calls `objective(model, views, method_state,
**method_args)` inside the jitted, differentiated step. Everything a method keeps between
steps lives in `method_state`, a pytree inside the train state (so Orbax saves it).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from jax_ssl.models.heads import MLPHead

# (model, views, method_state, **method_args) -> (loss, metrics, new_method_state)
Objective = Callable[..., tuple[jax.Array, Mapping[str, jax.Array], Any]]
# (feature_dim, head_args, rngs) -> {head name: module}
HeadsFactory = Callable[[int, Mapping[str, Any], nnx.Rngs], Mapping[str, nnx.Module]]


@dataclasses.dataclass(frozen=True)
class MethodSpec:
  """What the trainer needs to know about a method.

  Attributes:
    name: registry key (`config.method`).
    num_views: augmented views of each image the objective consumes.
    make_heads: builds the method's trainable heads on top of the backbone features.
    objective: pure loss (see module docstring); gradients flow to the online parameters.
    init_method_state: returns the initial method state pytree (queues, centers...).
    default_method_args: keyword arguments of `objective` and their defaults (documentation
      and validation of `config.method_args`; experiment files set the values).
  """

  name: str
  num_views: int
  make_heads: HeadsFactory
  objective: Objective
  init_method_state: Callable[[], Any] = dict
  default_method_args: Mapping[str, Any] = dataclasses.field(default_factory=dict)


class SSLModel(nnx.Module):
  """Backbone plus named heads; `features` is what evaluation uses."""

  def __init__(self, backbone: nnx.Module, heads: Mapping[str, nnx.Module]):
    self.backbone = backbone
    self.heads = nnx.Dict(dict(heads))

  def features(self, images: jax.Array) -> jax.Array:
    return self.backbone(images)


def projector_heads(feature_dim: int, head_args: Mapping[str, Any],
                    rngs: nnx.Rngs) -> dict[str, nnx.Module]:
  """{"projector": MLPHead} from the head keys projector_hidden_dim / _output_dim / _num_layers."""
  return {"projector": MLPHead(feature_dim, head_args["projector_hidden_dim"],
                               head_args["projector_output_dim"],
                               head_args["projector_num_layers"], rngs=rngs)}


def embed_views(model: SSLModel, views: Sequence[jax.Array],
                head: str = "projector") -> list[jax.Array]:
  """backbone -> `head` in one pass over all views concatenated, split back per view.

  One pass means BatchNorm statistics over every view of the global batch, as SimCLR's
  global BN; [B, H, W, C] x V -> V x [B, D].
  """
  out = model.heads[head](model.backbone(jnp.concatenate(views, axis=0)))
  return jnp.split(out, len(views), axis=0)
