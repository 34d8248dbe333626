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

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp

from jax_ssl import losses
from jax_ssl.config.typed import check
from jax_ssl.methods.spec import (Metrics, MethodSpec, ProjectorHeads, SSLModel, StepContext,
                                  embed_views, projector_heads)


@dataclasses.dataclass(frozen=True)
class Args:
  """LeJEPA's hyper-parameters (`--config.method_args.KEY`); defaults: the reference minimal
  example (lambda 0.02, 4 views, 256 directions).

  Attributes:
    num_views: the views per image (the method's `num_views`), >= 1.
    sigreg_weight: lambda in [0, 1], the weight of SIGReg against the prediction term.
    num_slices: the random SIGReg directions drawn each step, >= 1.
  """

  num_views: int = 4
  sigreg_weight: float = 0.02
  num_slices: int = 256

  def validate(self) -> None:
    check(self.num_views >= 1,
          f"method_args.num_views={self.num_views!r}; need an integer >= 1")
    check(0 <= self.sigreg_weight <= 1,
          f"method_args.sigreg_weight={self.sigreg_weight!r}; must be in [0, 1] (lambda)")
    check(self.num_slices >= 1,
          f"method_args.num_slices={self.num_slices!r}; need an integer >= 1 (SIGReg "
          f"directions)")


@dataclasses.dataclass(frozen=True)
class Heads(ProjectorHeads):
  """The projector (`--config.heads.KEY`): 3 layers, 2048 -> 512
  (experiments/imagenet/lejepa_resnet50.py)."""

  projector_hidden_dim: int = 2048
  projector_output_dim: int = 512
  projector_num_layers: int = 3


def objective(model: SSLModel, views: Sequence[jax.Array], method_state: Any,
              context: StepContext, args: Args) -> tuple[jax.Array, Metrics, dict]:
  """`losses.lejepa` of the first `num_views` views' projections with SIGReg directions
  drawn from `context.rng`; no state."""
  del method_state
  embeddings = jnp.stack(embed_views(model, views[:args.num_views]))  # [V, B, K]
  projections = losses.random_directions(context.rng, embeddings.shape[-1], args.num_slices)
  loss = losses.lejepa(embeddings, projections, args.sigreg_weight)
  metrics = {"lejepa": loss, "sigreg": losses.sigreg(embeddings, projections),
             "prediction": jnp.mean(jnp.square(embeddings - jnp.mean(embeddings, axis=0)))}
  return loss, metrics, {}


SPEC = MethodSpec(
    name="lejepa",
    num_views=lambda args: args.num_views,
    make_heads=projector_heads,
    objective=objective,
    args_type=Args,
    heads_type=Heads,
)
