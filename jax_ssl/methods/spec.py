"""The declarative method spec: what a self-supervised method adds to the shared trainer.

A method is data plus a pure loss. The trainer builds `SSLModel(backbone, heads)`, makes
`num_views` augmented views on device, and calls `objective(model, views, method_state,
context, **method_args)` inside the jitted, differentiated step. Everything a method keeps
between steps lives in `method_state`, a pytree inside the train state (so Orbax saves it);
`context` carries what the step knows and a loss may need (its rng, the step number).
Several specs combine into one with `jax_ssl.methods.mix` (mixing.py) (one step, one shared backbone).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from jax_ssl.models.heads import MLPHead

# (model, views, method_state, context, **method_args) -> (loss, metrics, new_method_state)
Objective = Callable[..., tuple[jax.Array, Mapping[str, jax.Array], Any]]
# (feature_dim, head_args, method_args, rngs) -> {head name: module}
HeadsFactory = Callable[[int, Mapping[str, Any], Mapping[str, Any], nnx.Rngs],
                        Mapping[str, nnx.Module]]


class StepContext(NamedTuple):
  """What the train step hands every objective besides the model, views and method state.

  Attributes:
    rng: a typed PRNG key for this step and objective (already folded with the step, so a
      resumed run draws the same randomness); the same on every device.
    step: the optimizer step being computed (int32 scalar).
  """

  rng: jax.Array
  step: jax.Array


@dataclasses.dataclass(frozen=True)
class MethodSpec:
  """What the trainer needs to know about a method.

  Attributes:
    name: registry key (`config.method`).
    num_views: augmented views of each image the objective consumes: an int, or a function
      of the method args for methods where it is a hyper-parameter (LeJEPA).
    make_heads: builds the method's trainable heads on top of the backbone features.
    objective: pure loss (see module docstring); gradients flow to the online parameters.
    init_method_state: returns the initial method state pytree (queues, centers...).
    default_method_args: keyword arguments of `objective` and their defaults (documentation
      and validation of `config.method_args`; experiment files set the values).
  """

  name: str
  num_views: int | Callable[[Mapping[str, Any]], int]
  make_heads: HeadsFactory
  objective: Objective
  init_method_state: Callable[[], Any] = dict
  default_method_args: Mapping[str, Any] = dataclasses.field(default_factory=dict)

  def views_for(self, method_args: Mapping[str, Any]) -> int:
    """The number of views under `method_args` (the defaults filled in)."""
    if callable(self.num_views):
      return self.num_views({**self.default_method_args, **method_args})
    return self.num_views


class SSLModel(nnx.Module):
  """Backbone plus named heads; `features` is what evaluation uses."""

  def __init__(self, backbone: nnx.Module, heads: Mapping[str, nnx.Module]):
    self.backbone = backbone
    self.heads = nnx.Dict(dict(heads))

  def features(self, images: jax.Array) -> jax.Array:
    return self.backbone(images)


def projector_heads(feature_dim: int, head_args: Mapping[str, Any],
                    method_args: Mapping[str, Any], rngs: nnx.Rngs) -> dict[str, nnx.Module]:
  """{"projector": MLPHead} from the head keys projector_hidden_dim / _output_dim / _num_layers."""
  del method_args  # the projector's shape is all in head_args
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
