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

from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from jax_ssl import losses, masking
from jax_ssl.methods.spec import MethodSpec, SSLModel, StepContext
from jax_ssl.models import vit

MASK_STRATEGIES = ("random", "block")


def make_heads(backbone: vit.VisionTransformer, head_args: Mapping[str, Any],
               method_args: Mapping[str, Any], rngs: nnx.Rngs) -> dict[str, nnx.Module]:
  """{"mask_token": MaskToken, "decoder": Linear(D -> p * p * C)}; no head keys."""
  del head_args, method_args
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
              context: StepContext, *, mask_ratio: float, mask_unit: int, mask_strategy: str):
  images, backbone = views[0], model.backbone
  mask = make_mask(context.rng, images.shape[0], backbone.grid_size, mask_ratio=mask_ratio,
                   mask_unit=mask_unit, mask_strategy=mask_strategy)
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
    default_method_args={"mask_ratio": 0.6, "mask_unit": 2, "mask_strategy": "random"},
    patch_tokens=True,
)
