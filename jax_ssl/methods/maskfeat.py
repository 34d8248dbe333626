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
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from jax_ssl import hog, losses
from jax_ssl.errors import ConfigError
from jax_ssl.methods import mim
from jax_ssl.methods.spec import MethodSpec, SSLModel, StepContext
from jax_ssl.models import vit


def target_dim(backbone: vit.VisionTransformer, cell_size: int, orientations: int) -> int:
  """C * (patch_size / cell_size)^2 * orientations: the HOG target size of one patch."""
  if backbone.patch_size % cell_size:
    raise ValueError(f"method_args.cell_size={cell_size} does not divide "
                     f"model.patch_size={backbone.patch_size}")
  return backbone.in_channels * (backbone.patch_size // cell_size) ** 2 * orientations


def make_heads(backbone: vit.VisionTransformer, head_args: Mapping[str, Any],
               method_args: Mapping[str, Any], rngs: nnx.Rngs) -> dict[str, nnx.Module]:
  """{"mask_token", "predictor": Linear(D -> HOG target size)}; no head keys."""
  del head_args
  if method_args["normalization"] not in hog.TARGET_NORMALIZATIONS:
    raise ConfigError(f"method_args.normalization={method_args['normalization']!r}; use one of "
                      f"{hog.TARGET_NORMALIZATIONS} (each cell's histogram, as the official "
                      f"code, or each patch's)")
  return mim.mask_token_heads(
      backbone, target_dim(backbone, method_args["cell_size"], method_args["orientations"]),
      rngs)


def objective(model: SSLModel, views: Sequence[jax.Array], method_state: Any,
              context: StepContext, *, mask_ratio: float, min_block_patches: int,
              cell_size: int, orientations: int, normalization: str):
  images, backbone = views[0], model.backbone
  targets = hog.maskfeat_targets(images, patch_size=backbone.patch_size, cell_size=cell_size,
                                 orientations=orientations, normalization=normalization)
  mask, masked = mim.block_mask(context.rng, backbone, images.shape[0], mask_ratio=mask_ratio,
                                min_block_patches=min_block_patches)
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
    # The paper's ImageNet setting: 40% blockwise masking (BEiT's blocks of >= 16 of 196
    # patches), 9 orientations, 8x8 cells in 16x16 patches, each cell's histogram
    # L2-normalised (HOGLayerC).
    default_method_args={"mask_ratio": 0.4, "min_block_patches": 16, "cell_size": 8,
                         "orientations": 9, "normalization": "cell"},
    patch_tokens=True,
)
