"""BYOL: the online network predicts an EMA target network's projection of the other view.

Grill et al., "Bootstrap Your Own Latent: A New Approach to Self-Supervised Learning",
NeurIPS 2020. Online: backbone -> projector -> predictor; target: EMA copies of the backbone
and projector (declared in the spec's `target_modules`, moved by the shared step after each
optimizer update with momentum `base_momentum` -> 1 on a cosine), no predictor. The loss
is symmetrised, eq. (2)-(3): byol(p1, sg(z'2)) + byol(p2, sg(z'1)).

Multi-crop (`augment.local_crops.num` = L > 0, as solo-learn's BYOL): the L local crops go
through the online network only and predict both global views' targets; the loss is
sum over global v1, every other crop v2 of byol(p_v2, sg(z'_v1)), which is eq. (2)-(3)
when L = 0. The target network sees the 2 global views only.

rho-BYOL (Feichtenhofer et al., "A Large-Scale Study on Unsupervised Spatiotemporal
Representation Learning", CVPR 2021): on a video dataset the views are clips, and
`method_args.num_clips` = rho > 2 takes rho clips of each video, every clip predicting every
other clip's target, `losses.rho_byol` (the pair sum over rho - 1, as SlowFast's
contrastive.py averages each query's loss over the other clips' keys); rho = 2 is the loss
above. On images, num_clips > 2 is that many global crops.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax

from jax_ssl import losses
from jax_ssl.config.typed import check
from jax_ssl.methods.spec import (Metrics, MethodSpec, ProjectorPredictorHeads, SSLModel,
                                  StepContext, embed_views, map_by_crop_size,
                                  projector_predictor_heads)

NUM_GLOBAL_VIEWS = 2


def check_momentum(base_momentum: float) -> None:
  """The one-line refusal of an EMA target's `method_args.base_momentum` outside [0, 1]."""
  check(0 <= base_momentum <= 1,
        f"method_args.base_momentum={base_momentum!r}; must be in [0, 1] (the target's EMA "
        f"momentum at step 0, raised to 1 on a cosine)")


@dataclasses.dataclass(frozen=True)
class Args:
  """BYOL's hyper-parameters (`--config.method_args.KEY`).

  Attributes:
    base_momentum: the target's EMA momentum at step 0 (read by the step), in [0, 1]; the
      paper's ImageNet value 0.996.
    num_clips: rho, the global views (clips of a video, crops of an image) each predicting
      every other one's target, >= 2 (rho-BYOL; 2: BYOL).
  """

  base_momentum: float = 0.996
  num_clips: int = NUM_GLOBAL_VIEWS

  def validate(self) -> None:
    check_momentum(self.base_momentum)
    check_clip_count(self.num_clips)


def check_clip_count(num_clips: int) -> None:
  """The one-line refusal of a `method_args.num_clips` below 2 (rho-BYOL, rho-MoCo)."""
  check(num_clips >= 2, f"method_args.num_clips={num_clips!r}; need an integer >= 2 (rho: "
                        f"the clips of a video, or global crops of an image, that are "
                        f"each other's positives)")


def clip_count(args: Any) -> int:
  """The spec's `num_views` of a method with a `num_clips` argument (rho-BYOL, rho-MoCo)."""
  return args.num_clips


@dataclasses.dataclass(frozen=True)
class Heads(ProjectorPredictorHeads):
  """Projector and predictor (`--config.heads.KEY`): the paper's 4096 -> 256 MLPs
  (experiments/imagenet/byol_resnet50.py)."""

  projector_hidden_dim: int = 4096
  projector_output_dim: int = 256
  projector_num_layers: int = 2
  predictor_hidden_dim: int = 4096


def predictions_and_targets(model: SSLModel, views: Sequence[jax.Array], context: StepContext,
                            num_global: int = NUM_GLOBAL_VIEWS
                            ) -> tuple[list[jax.Array], list[jax.Array]]:
  """Online predictions q_v of every view (V x [B, D], backbone -> projector -> predictor,
  one pass per crop size) and the stop-gradient target projections z'_v of the `num_global`
  global views (num_global x [B, D])."""
  predictions = map_by_crop_size(
      lambda x: model.heads["predictor"](model.heads["projector"](model.backbone(x))), views)
  targets = [jax.lax.stop_gradient(z)
             for z in embed_views(context.target, views[:num_global])]
  return predictions, targets


def cross_view_pairs(num_views: int, num_global: int = NUM_GLOBAL_VIEWS
                     ) -> list[tuple[int, int]]:
  """(target view v1, prediction view v2) pairs: each global view's target, every other crop's
  prediction (solo-learn's multi-crop loop); [(0, 1), (1, 0)] for 2 views."""
  return [(v1, v2) for v1 in range(num_global) for v2 in range(num_views) if v2 != v1]


def objective(model: SSLModel, views: Sequence[jax.Array], method_state: Any,
              context: StepContext, args: Args) -> tuple[jax.Array, Metrics, dict]:
  """Each crop's online prediction against each other global view's target projection,
  `losses.byol` summed over the pairs (`cross_view_pairs`), over num_clips - 1
  (`losses.rho_byol`); no state (`base_momentum` is the step's)."""
  del method_state
  predictions, targets = predictions_and_targets(model, views, context, args.num_clips)
  loss = losses.rho_byol(predictions, targets)
  return loss, {"byol": loss}, {}


SPEC = MethodSpec(
    name="byol",
    num_views=clip_count,
    make_heads=projector_predictor_heads,
    objective=objective,
    args_type=Args,
    heads_type=Heads,
    target_modules=("backbone", "heads/projector"),
    local_views=True,
)
