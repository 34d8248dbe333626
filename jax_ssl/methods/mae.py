"""MAE: a ViT encoder sees a random 25% of the patches; a light decoder rebuilds the rest.

He et al., "Masked Autoencoders Are Scalable Vision Learners", CVPR 2022. Asymmetric: the
encoder (the shared backbone) runs on the visible patches only, each at its own position;
the decoder (a head: a narrower transformer with its own fixed sin-cos position embeddings)
gets the encoded visible tokens projected to its width plus a shared learned mask token at
every masked position, and predicts each patch's pixels. The loss is the mean squared error
on the masked patches only, against per-patch normalised pixels with `norm_pix` (the paper's
default for its best results). One view per image (random resized crop + flip); the mask is
drawn from the step's rng, the same on every device. Evaluation features are the backbone's
pooled tokens of the whole, unmasked image.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jax_ssl import losses, masking
from jax_ssl.config.typed import check, check_positive
from jax_ssl.methods import mim
from jax_ssl.methods.spec import Metrics, MethodSpec, SSLModel, StepContext
from jax_ssl.models import video_vit, vit


@dataclasses.dataclass(frozen=True)
class Args:
  """`method_args.*` of MAE (defaults: the paper's): `mask_ratio` of the patches masked at
  random per image; `norm_pix`: the target is each patch's pixels normalised by its own
  mean and std (the paper's default for its best results)."""

  mask_ratio: float = 0.75
  norm_pix: bool = True

  def validate(self) -> None:
    mim.check_mask_ratio(self.mask_ratio)


@dataclasses.dataclass(frozen=True)
class Heads:
  """`heads.*`: the decoder's width, blocks and attention heads (defaults: the paper's
  ViT-B/L/H decoder, 512 / 8 / 16, experiments/imagenet/mae_vit_base.py)."""

  decoder_dim: int = 512
  decoder_depth: int = 8
  decoder_num_heads: int = 16

  def validate(self) -> None:
    check_positive("heads", self, "decoder_dim", "decoder_depth", "decoder_num_heads")
    check(self.decoder_dim % self.decoder_num_heads == 0,
          f"heads.decoder_dim={self.decoder_dim} is not divisible by heads.decoder_num_heads="
          f"{self.decoder_num_heads}; set them so that it is")


DECODER_POSITIONS = ("sincos_2d", "sinusoid_1d")


# The Transformer's 1-D sinusoid table, float32 [num_positions, dim] (VideoMAE's
# `get_sinusoid_encoding_table`, used by its encoder and decoder): the video ViT's.
sinusoid_position_table = video_vit.sinusoid_table


class MAEDecoder(nnx.Module):
  """Encoded visible tokens -> per-patch pixel predictions [B, N, p * p * C].

  Linear to `decoder_dim`, mask tokens appended and every token put back at its position,
  fixed position embeddings (zero for the CLS token, which the decoder keeps when the
  encoder has one), `depth` transformer blocks, LayerNorm, linear to the pixels (the
  backbone's `patch_pixels`: a video ViT's tubelets too). Runs in the backbone's compute
  dtype and remat setting.

  `positions`: "sincos_2d", MAE's 2-D sin-cos table of the backbone's `grid_size`; or
  "sinusoid_1d", VideoMAE's 1-D sinusoid table over its `num_patches` tokens in token
  order (`sinusoid_position_table`; VideoMAE's decoder `pos_embed`).
  """

  def __init__(self, backbone: vit.VisionTransformer, decoder_dim: int, depth: int,
               num_heads: int, *, positions: str = "sincos_2d", rngs: nnx.Rngs):
    if positions not in DECODER_POSITIONS:
      raise ValueError(f"positions={positions!r}; use one of {DECODER_POSITIONS}")
    dtype = backbone.dtype
    self.grid_size, self.num_prefix_tokens = backbone.grid_size, backbone.num_prefix_tokens
    self.positions, self.num_patches = positions, backbone.num_patches
    self.dtype, self.remat = dtype, backbone.remat
    self.embed = nnx.Linear(backbone.feature_dim, decoder_dim,
                            kernel_init=nnx.initializers.xavier_uniform(), dtype=dtype,
                            rngs=rngs)
    self.mask_token = nnx.Param(nnx.initializers.normal(0.02)(rngs.params(),
                                                              (1, 1, decoder_dim)))
    self.blocks = nnx.List([vit.Block(decoder_dim, num_heads, dtype=dtype, rngs=rngs)
                            for _ in range(depth)])
    self.norm = nnx.LayerNorm(decoder_dim, epsilon=1e-6, dtype=dtype, rngs=rngs)
    self.prediction = nnx.Linear(decoder_dim, backbone.patch_pixels,
                                 kernel_init=nnx.initializers.xavier_uniform(), dtype=dtype,
                                 rngs=rngs)

  def __call__(self, encoded: jax.Array, restore: jax.Array) -> jax.Array:
    """encoded: [B, prefix + K, D] (the backbone's `encode_tokens` of the visible patches,
    in the order of `masking.mask_indices(...).keep`); restore: [B, N] (its `restore`)."""
    x = self.embed(encoded)
    prefix, visible = x[:, :self.num_prefix_tokens], x[:, self.num_prefix_tokens:]
    batch, num_visible, width = visible.shape
    num_patches = restore.shape[1]
    mask_tokens = jnp.broadcast_to(self.mask_token[...].astype(x.dtype),
                                   (batch, num_patches - num_visible, width))
    patches = jnp.take_along_axis(jnp.concatenate([visible, mask_tokens], axis=1),
                                  restore[..., None], axis=1)
    if self.positions == "sinusoid_1d":
      table = sinusoid_position_table(self.num_patches, width)
    else:
      table = vit.sincos_position_embedding(*self.grid_size, width)
    positions = np.concatenate([np.zeros((self.num_prefix_tokens, width), np.float32), table])
    x = jnp.concatenate([prefix, patches], axis=1) + jnp.asarray(positions, x.dtype)
    x = self.norm(vit.apply_blocks(self.blocks, x.astype(self.dtype), self.remat))
    return self.prediction(x)[:, self.num_prefix_tokens:].astype(jnp.float32)


def make_heads(backbone: vit.VisionTransformer, heads: Heads, args: Args,
               rngs: nnx.Rngs) -> dict[str, nnx.Module]:
  """{"decoder": MAEDecoder} of the sizes in `heads`."""
  del args  # the decoder's shape is all in `heads`
  return {"decoder": MAEDecoder(backbone, heads.decoder_dim, heads.decoder_depth,
                                heads.decoder_num_heads, rngs=rngs)}


def objective(model: SSLModel, views: Sequence[jax.Array], method_state: Any,
              context: StepContext, args: Args) -> tuple[jax.Array, Metrics, Any]:
  """MSE of the decoder's pixels on the masked patches of views[0] (mask drawn from
  `context.rng`, the encoder on the visible patches only); logs the loss."""
  del method_state
  images, backbone = views[0], model.backbone
  count = masking.num_masked(backbone.num_patches, args.mask_ratio)
  mask = masking.random_mask(context.rng, images.shape[0], backbone.num_patches,
                             args.mask_ratio)
  indices = masking.mask_indices(mask, count)
  encoded = backbone.encode_tokens(backbone.embed_patches(images), indices.keep)
  pred = model.heads["decoder"](encoded, indices.restore)
  target = masking.patchify(images, backbone.patch_size)
  if args.norm_pix:
    target = losses.normalized_patches(target)
  loss = losses.mae(pred, target, mask)
  return loss, {"mae": loss}, {}


SPEC = MethodSpec(
    name="mae",
    num_views=1,
    make_heads=make_heads,
    objective=objective,
    args_type=Args,
    heads_type=Heads,
    patch_tokens=True,
)
