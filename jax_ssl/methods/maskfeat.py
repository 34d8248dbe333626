"""MaskFeat: regress the HOG features of blockwise-masked patches.

Wei et al., "Masked Feature Prediction for Self-Supervised Visual Pre-Training", CVPR 2022.
About 40% of the patches are masked in blocks (BEiT's blockwise masking, `mim.block_mask`),
their embeddings replaced by a learned mask token; a linear head on the ViT's outputs at
the masked positions predicts each one's HOG target (`hog.maskfeat_targets`: 9-bin
histograms of the `cell_size` cells in the patch, computed on the whole view, per colour
channel, each cell's histogram L2-normalised as the official code (PySlowFast's HOGLayerC),
or the whole patch with `normalization="patch"`; the paper's 8x8 cells in 16x16 patches),
and the
loss is the mean squared error there (`losses.maskfeat`). The targets are computed on
device inside the step from the same view; nothing is stored.

On video (views [B, T, S, S, C] and a video ViT backbone, `models/video_vit.VideoViT`), the
paper's video setting: a token is a t x p x p tubelet and its target is the HOG of its patch
in the tubelet's first frame (`hog.maskfeat_video_targets`, as PySlowFast's
`_get_hog_label_3d` takes every PATCH_STRIDE[0]-th frame). The mask is BEiT's blockwise
mask of the spatial grid repeated over every time slot (a tube of blocks,
`masking.repeat_over_time`), `mask_ratio` of the tokens; the official video recipe draws
"cubes" instead (PySlowFast's MaskingGenerator3D: spatial blocks of a random temporal extent),
a deviation the experiment files name.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from jax_ssl import hog, losses, masking
from jax_ssl.config.typed import check
from jax_ssl.methods import mim
from jax_ssl.methods.spec import Metrics, MethodSpec, NoHeads, SSLModel, StepContext
from jax_ssl.models import vit


@dataclasses.dataclass(frozen=True)
class Args(mim.BlockMaskArgs):
  """`method_args.*` of MaskFeat. Defaults: the paper's ImageNet setting, 40% blockwise
  masking (BEiT's blocks of >= 16 of 196 patches), 9 orientations, 8x8 cells in 16x16
  patches, each cell's histogram L2-normalised (HOGLayerC; "patch": each patch's)."""

  cell_size: int = 8
  orientations: int = 9
  normalization: str = "cell"

  def validate(self) -> None:
    super().validate()
    check(self.normalization in hog.TARGET_NORMALIZATIONS,
          f"method_args.normalization={self.normalization!r}; use one of "
          f"{hog.TARGET_NORMALIZATIONS} (each cell's histogram, as the official code, or each "
          f"patch's)")
    check(self.cell_size >= 1, f"method_args.cell_size={self.cell_size}; must be >= 1")
    check(self.orientations >= 1, f"method_args.orientations={self.orientations}; must be >= 1")


def target_dim(backbone: vit.VisionTransformer, cell_size: int, orientations: int) -> int:
  """C * (patch_size / cell_size)^2 * orientations: the HOG target size of one patch."""
  check(backbone.patch_size % cell_size == 0,
        f"method_args.cell_size={cell_size} does not divide model.patch_size="
        f"{backbone.patch_size}; use a divisor")
  return backbone.in_channels * (backbone.patch_size // cell_size) ** 2 * orientations


def make_heads(backbone: vit.VisionTransformer, heads: NoHeads, args: Args,
               rngs: nnx.Rngs) -> dict[str, nnx.Module]:
  """{"mask_token", "predictor": Linear(D -> HOG target size)}; no head keys."""
  del heads
  return mim.mask_token_heads(backbone, target_dim(backbone, args.cell_size, args.orientations),
                              rngs)


def _video_targets_and_mask(clips: jax.Array, backbone: Any, rng: jax.Array, args: Args
                            ) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
  """The video path: (HOG targets [B, N, target_dim] of each tubelet's first frame, (bool
  [B, N] mask, int32 [B, M] masked positions)), the mask BEiT's blocks on the spatial grid,
  the same in every time slot (tokens time-major: `backbone.token_grid`)."""
  slots, rows, cols = backbone.token_grid
  tubelet_size = clips.shape[1] // slots
  targets = hog.maskfeat_video_targets(clips, tubelet_size=tubelet_size,
                                       patch_size=backbone.patch_size,
                                       cell_size=args.cell_size, orientations=args.orientations,
                                       normalization=args.normalization)
  count = masking.num_masked(rows * cols, args.mask_ratio)
  spatial = masking.block_mask(rng, clips.shape[0], rows, cols, count,
                               min_block_patches=min(args.min_block_patches, count))
  mask = masking.repeat_over_time(spatial, slots)
  return targets, (mask, masking.mask_indices(mask, slots * count).masked)


def objective(model: SSLModel, views: Sequence[jax.Array], method_state: Any,
              context: StepContext, args: Args) -> tuple[jax.Array, Metrics, Any]:
  """MSE of the predicted HOG features on the blockwise-masked patches of views[0] (mask
  drawn from `context.rng`; targets computed from the same view; clips: the video path of
  the module docstring); logs the loss."""
  del method_state
  images, backbone = views[0], model.backbone
  if images.ndim == 5:  # clips [B, T, S, S, C]: a video ViT's tubelets
    targets, (mask, masked) = _video_targets_and_mask(images, backbone, context.rng, args)
  else:
    targets = hog.maskfeat_targets(images, patch_size=backbone.patch_size,
                                   cell_size=args.cell_size, orientations=args.orientations,
                                   normalization=args.normalization)
    mask, masked = mim.block_mask(context.rng, backbone, images.shape[0],
                                  mask_ratio=args.mask_ratio,
                                  min_block_patches=args.min_block_patches)
  encoded = mim.at_positions(mim.encode_masked(model, images, mask), masked)
  pred = model.heads["predictor"](encoded).astype(jnp.float32)  # [B, M, target_dim]
  target = mim.at_positions(targets, masked)
  loss = losses.maskfeat(pred, target, jnp.ones(masked.shape, bool))
  return loss, {"maskfeat": loss}, {}


SPEC = MethodSpec(
    name="maskfeat",
    num_views=1,
    make_heads=make_heads,
    objective=objective,
    args_type=Args,
    heads_type=NoHeads,
    patch_tokens=True,
)
