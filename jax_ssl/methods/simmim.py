"""SimMIM: the ViT encodes every patch, masked ones replaced by a learned mask token; a
linear layer predicts each patch's pixels; L1 on the masked pixels.

Xie et al., "SimMIM: A Simple Framework for Masked Image Modeling", CVPR 2022. Random
masking of square mask units of `mask_unit x mask_unit` tokens (the paper's best ViT
setting: 32 px units, ratio 0.6 on 16 px patches, i.e. mask_unit 2), or BEiT's blockwise
masking with `mask_strategy="block"`; the mask token is a head (`MaskToken`) substituted
for the masked patch embeddings before position embeddings are added (as SimMIM's
VisionTransformerForSimMIM); the decoder is one linear layer per token to its p * p * C
pixels (the paper's 1x1 convolution + pixel shuffle). One view per image; evaluation
features are the backbone's pooled tokens of the unmasked image.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from jax_ssl import losses, masking
from jax_ssl.config.typed import check
from jax_ssl.methods import mim
from jax_ssl.methods.spec import Metrics, MethodSpec, NoHeads, SSLModel, StepContext
from jax_ssl.models import vit

MASK_STRATEGIES = ("random", "block")


@dataclasses.dataclass(frozen=True)
class Args:
  """`method_args.*` of SimMIM. Defaults: the paper's best ViT setting, 60% of the mask
  units masked at random, units of 2x2 tokens (32 px on 16 px patches); or BEiT's blockwise
  masking with mask_strategy="block" (mask_unit unused then)."""

  mask_ratio: float = 0.6
  mask_unit: int = 2
  mask_strategy: str = "random"

  def validate(self) -> None:
    mim.check_mask_ratio(self.mask_ratio)
    check(self.mask_strategy in MASK_STRATEGIES,
          f"method_args.mask_strategy={self.mask_strategy!r}; use one of {MASK_STRATEGIES}")
    check(self.mask_unit >= 1,
          f"method_args.mask_unit={self.mask_unit}; must be >= 1 (1 masks single patches)")


def make_heads(backbone: vit.VisionTransformer, heads: NoHeads, args: Args,
               rngs: nnx.Rngs) -> dict[str, nnx.Module]:
  """{"mask_token": MaskToken, "decoder": Linear(D -> p * p * C)}; no head keys.

  Refuses here (the first place that knows the token grid), not at the first step, mask
  units that do not tile the grid."""
  del heads
  grid_h, grid_w = backbone.grid_size
  check(args.mask_strategy != "random" or not (grid_h % args.mask_unit
                                               or grid_w % args.mask_unit),
        f"method_args.mask_unit={args.mask_unit} does not divide the {grid_h}x{grid_w} token "
        f"grid; use a divisor (1 masks single patches)")
  return {"mask_token": vit.MaskToken(backbone.feature_dim, rngs=rngs),
          "decoder": nnx.Linear(backbone.feature_dim, backbone.patch_pixels,
                                kernel_init=nnx.initializers.xavier_uniform(),
                                dtype=backbone.dtype, rngs=rngs)}


def make_mask(rng: jax.Array, batch: int, grid_size: tuple[int, int], *, mask_ratio: float,
              mask_unit: int, mask_strategy: str) -> jax.Array:
  """bool [B, N]: random mask units of mask_unit x mask_unit tokens, or blockwise."""
  grid_h, grid_w = grid_size
  if mask_strategy == "block":
    return masking.block_mask(rng, batch, grid_h, grid_w,
                              masking.num_masked(grid_h * grid_w, mask_ratio))
  if mask_strategy != "random":
    raise ValueError(f"method_args.mask_strategy={mask_strategy!r}; use one of {MASK_STRATEGIES}")
  if grid_h % mask_unit or grid_w % mask_unit:
    raise ValueError(f"method_args.mask_unit={mask_unit} does not divide the {grid_h}x{grid_w} "
                     f"token grid; use a divisor (1 masks single patches)")
  units_h, units_w = grid_h // mask_unit, grid_w // mask_unit
  coarse = masking.random_mask(rng, batch, units_h * units_w, mask_ratio)
  return masking.upsample_mask(coarse, units_h, units_w, mask_unit)


def objective(model: SSLModel, views: Sequence[jax.Array], method_state: Any,
              context: StepContext, args: Args) -> tuple[jax.Array, Metrics, Any]:
  """L1 of the linear decoder's pixels on the masked patches of views[0] (mask drawn from
  `context.rng`, masked embeddings replaced by the mask token); logs the loss."""
  del method_state
  images, backbone = views[0], model.backbone
  mask = make_mask(context.rng, images.shape[0], backbone.grid_size,
                   mask_ratio=args.mask_ratio, mask_unit=args.mask_unit,
                   mask_strategy=args.mask_strategy)
  tokens = model.heads["mask_token"](backbone.embed_patches(images), mask)
  encoded = backbone.encode_tokens(tokens)[:, backbone.num_prefix_tokens:]
  pred = model.heads["decoder"](encoded).astype(jnp.float32)
  loss = losses.simmim(pred, masking.patchify(images, backbone.patch_size), mask)
  return loss, {"simmim": loss}, {}


SPEC = MethodSpec(
    name="simmim",
    num_views=1,
    make_heads=make_heads,
    objective=objective,
    args_type=Args,
    heads_type=NoHeads,
    patch_tokens=True,
)
