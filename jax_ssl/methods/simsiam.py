"""SimSiam: predict one view's projection from the other's, with a stop-gradient target.

Chen & He, "Exploring Simple Siamese Representation Learning", CVPR 2021. The paper's
projector is 3 layers of 2048 (its last layer followed by BatchNorm) and its predictor a
2048 -> 512 -> 2048 bottleneck MLP; no negatives, no momentum encoder. Here both are
`MLPHead`s, so the projector's last layer is not followed by BatchNorm.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp

from jax_ssl import losses
from jax_ssl.methods.spec import (Metrics, MethodSpec, NoArgs, ProjectorPredictorHeads,
                                  SSLModel, StepContext, projector_predictor_heads)

Args = NoArgs  # SimSiam has no hyper-parameters of its own


@dataclasses.dataclass(frozen=True)
class Heads(ProjectorPredictorHeads):
  """Projector and predictor (`--config.heads.KEY`): the paper's 3 layers of 2048 and its
  2048 -> 512 -> 2048 bottleneck (experiments/imagenet/simsiam_resnet50.py)."""

  projector_hidden_dim: int = 2048
  projector_output_dim: int = 2048
  projector_num_layers: int = 3
  predictor_hidden_dim: int = 512


def objective(model: SSLModel, views: Sequence[jax.Array], method_state: Any,
              context: StepContext, args: Args) -> tuple[jax.Array, Metrics, dict]:
  """The symmetrised negative cosine of each view's prediction with the other view's
  stop-gradient projection (eq. 2); no state."""
  del method_state, context, args
  # One backbone pass over both views: BatchNorm statistics over all 2N global views.
  projections = model.heads["projector"](model.backbone(jnp.concatenate(views, axis=0)))
  predictions = model.heads["predictor"](projections)
  z1, z2 = jnp.split(projections, 2, axis=0)
  p1, p2 = jnp.split(predictions, 2, axis=0)
  # Symmetrised loss, eq. (2); `losses.simsiam` stops the gradient through the targets z.
  loss = 0.5 * losses.simsiam(p1, z2) + 0.5 * losses.simsiam(p2, z1)
  return loss, {"simsiam": loss}, {}


SPEC = MethodSpec(
    name="simsiam",
    num_views=2,
    make_heads=projector_predictor_heads,
    objective=objective,
    args_type=Args,
    heads_type=Heads,
)
