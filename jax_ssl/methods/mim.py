"""What the mask-token ViT methods share (BEiT, MaskFeat; SimMIM's wiring): blockwise masks
with a fixed count per example (their `BlockMaskArgs`), masked patch embeddings replaced by
a learned mask token before the encoder, and a linear head applied to the encoded masked
positions only.

The encoder sees every position (unlike MAE's): `encode_masked` substitutes the `MaskToken`
head for the masked patches' embeddings, then adds position embeddings and runs the ViT
(`models/vit.py` `embed_patches` / `encode_tokens`). Since every example masks the same
number M of patches, the masked positions are a static [B, M] index and the head runs on
[B, M, D] only.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jax_ssl import masking
from jax_ssl.config.typed import check
from jax_ssl.models import vit

# BEiT's linear LM head and MaskFeat's prediction head: truncated normal(0.02) as their
# `_init_weights`.
_HEAD_INIT = nnx.initializers.truncated_normal(stddev=0.02)


def check_mask_ratio(mask_ratio: float) -> None:
  """The one-line refusal of a `method_args.mask_ratio` outside [0, 1) (what
  `masking.num_masked` accepts)."""
  check(0 <= mask_ratio < 1,
        f"method_args.mask_ratio={mask_ratio}; must be in [0, 1) (the fraction of the "
        f"patches masked)")


@dataclasses.dataclass(frozen=True)
class BlockMaskArgs:
  """The `method_args.*` of BEiT's blockwise masking (BEiT, MaskFeat). Defaults: the
  papers' ImageNet setting, 40% of the patches (BEiT masks 75 of 196; 0.4 masks 79) in
  blocks of at least 16 patches."""

  mask_ratio: float = 0.4
  min_block_patches: int = 16

  def validate(self) -> None:
    check_mask_ratio(self.mask_ratio)
    check(self.min_block_patches >= 1,
          f"method_args.min_block_patches={self.min_block_patches}; must be >= 1")


def mask_token_heads(backbone: vit.VisionTransformer, out_features: int,
                     rngs: nnx.Rngs) -> dict[str, nnx.Module]:
  """{"mask_token": MaskToken(D), "predictor": Linear(D -> out_features)}."""
  return {"mask_token": vit.MaskToken(backbone.feature_dim, rngs=rngs),
          "predictor": nnx.Linear(backbone.feature_dim, out_features, kernel_init=_HEAD_INIT,
                                  dtype=backbone.dtype, rngs=rngs)}


def block_mask(rng: jax.Array, backbone: vit.VisionTransformer, batch: int, *,
               mask_ratio: float, min_block_patches: int) -> tuple[jax.Array, jax.Array]:
  """BEiT's blockwise mask of `masking.num_masked(N, mask_ratio)` patches per example.

  Returns:
    (bool [B, N] mask, int32 [B, M] masked positions in ascending order).
  """
  count = masking.num_masked(backbone.num_patches, mask_ratio)
  mask = masking.block_mask(rng, batch, *backbone.grid_size, count,
                            min_block_patches=min(min_block_patches, count))
  return mask, masking.mask_indices(mask, count).masked


def encode_masked(model: Any, images: jax.Array, mask: jax.Array) -> jax.Array:
  """[B, S, S, C] images -> [B, N, D] encoded patch tokens, the masked patches' embeddings
  replaced by heads["mask_token"] (the CLS token, if any, dropped)."""
  backbone = model.backbone
  tokens = model.heads["mask_token"](backbone.embed_patches(images), mask)
  return backbone.encode_tokens(tokens)[:, backbone.num_prefix_tokens:]


def at_positions(x: jax.Array, positions: jax.Array) -> jax.Array:
  """x [B, N, ...] at positions [B, M] -> [B, M, ...]."""
  index = positions.reshape(positions.shape + (1,) * (x.ndim - 2))
  return jnp.take_along_axis(x, index, axis=1)
