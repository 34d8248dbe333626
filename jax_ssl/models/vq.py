"""A small VQ-VAE: a conv encoder that downsamples by a ViT's patch size, a codebook, a decoder.

It is BEiT's image tokenizer trained in this project (the paper uses DALL-E's dVAE, which
cannot be downloaded here): one code id per `patch_size` x `patch_size` patch, so a ViT with
that patch size predicts one id per token. The encoder is the method's backbone (its pooled
latents are what evaluation sees); the quantizer and decoder are heads.

Codes are looked up by cosine similarity (latents and codes L2-normalised), which keeps more
of the codebook in use than Euclidean lookup (Yu et al., "Vector-quantized Image Modeling
with Improved VQGAN", ICLR 2022, sec. 3.2); the codebook moves by the VQ-VAE codebook loss
and the encoder by the straight-through estimator plus the commitment loss (van den Oord et
al., "Neural Discrete Representation Learning", NeurIPS 2017). No BatchNorm: an image's
tokens never depend on the rest of its batch.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from jax_ssl.losses import l2_normalize


def _downsamplings(patch_size: int) -> int:
  steps = int(round(math.log2(patch_size)))
  if patch_size < 1 or 2**steps != patch_size:
    raise ValueError(f"patch_size={patch_size}; the VQ encoder downsamples by powers of 2 "
                     f"(2, 4, 8, 16, ...)")
  return steps


class ResidualBlock(nnx.Module):
  """x + conv3x3(relu(conv3x3(relu(x))))."""

  def __init__(self, features: int, *, rngs: nnx.Rngs):
    self.conv1 = nnx.Conv(features, features, (3, 3), padding=1, rngs=rngs)
    self.conv2 = nnx.Conv(features, features, (3, 3), padding=1, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return x + self.conv2(nnx.relu(self.conv1(nnx.relu(x))))


class VQEncoder(nnx.Module):
  """[B, H, W, C] -> [B, H / p, W / p, width]: a 3x3 conv, log2(p) stride-2 4x4 convs, a
  residual block. `__call__` average-pools the map to [B, width] (evaluation features)."""

  def __init__(self, in_channels: int, width: int, patch_size: int, *, rngs: nnx.Rngs):
    self.patch_size, self.in_channels = patch_size, in_channels
    self.stem = nnx.Conv(in_channels, width, (3, 3), padding=1, rngs=rngs)
    self.downs = nnx.List([nnx.Conv(width, width, (4, 4), strides=(2, 2), padding=1, rngs=rngs)
                           for _ in range(_downsamplings(patch_size))])
    self.block = ResidualBlock(width, rngs=rngs)
    self.feature_dim = width

  def feature_map(self, images: jax.Array) -> jax.Array:
    x = self.stem(images)
    for down in self.downs:
      x = down(nnx.relu(x))
    return nnx.relu(self.block(x))

  def __call__(self, images: jax.Array) -> jax.Array:
    return jnp.mean(self.feature_map(images), axis=(1, 2))


class VectorQuantizer(nnx.Module):
  """Encoder features -> 1x1 projection to `code_dim` -> nearest of `num_codes` codes."""

  def __init__(self, in_features: int, num_codes: int, code_dim: int, *, rngs: nnx.Rngs):
    # A non-zero initial bias: an all-zero feature vector (a black background patch, whose
    # convolutions start from zero biases) still has a direction, so normalising it has a
    # bounded gradient.
    self.project = nnx.Linear(in_features, code_dim, bias_init=nnx.initializers.normal(0.01),
                              rngs=rngs)
    self.codebook = nnx.Param(jax.random.normal(rngs.params(), (num_codes, code_dim)))

  def latents(self, features: jax.Array) -> jax.Array:
    """[..., in_features] -> L2-normalised [..., code_dim] (z_e)."""
    return l2_normalize(self.project(features))

  def codes(self) -> jax.Array:
    return l2_normalize(self.codebook[...])

  def __call__(self, features: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(ids [...], z_e [..., code_dim], e [..., code_dim]): each latent's nearest code."""
    latents = self.latents(features)
    codes = self.codes()
    ids = jnp.argmax(latents @ jax.lax.stop_gradient(codes).T, axis=-1)
    return ids, latents, jnp.take(codes, ids, axis=0)


class VQDecoder(nnx.Module):
  """[B, h, w, code_dim] -> [B, h p, w p, C]: a 3x3 conv, a residual block, log2(p) x
  (nearest 2x upsampling + 3x3 conv), a 3x3 conv to the image channels."""

  def __init__(self, code_dim: int, width: int, patch_size: int, out_channels: int, *,
               rngs: nnx.Rngs):
    self.stem = nnx.Conv(code_dim, width, (3, 3), padding=1, rngs=rngs)
    self.block = ResidualBlock(width, rngs=rngs)
    self.ups = nnx.List([nnx.Conv(width, width, (3, 3), padding=1, rngs=rngs)
                         for _ in range(_downsamplings(patch_size))])
    self.out = nnx.Conv(width, out_channels, (3, 3), padding=1, rngs=rngs)

  def __call__(self, codes: jax.Array) -> jax.Array:
    x = self.block(self.stem(codes))
    for up in self.ups:
      x = up(nnx.relu(jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)))
    return self.out(nnx.relu(x))


BACKBONES = ("vq_encoder",)


def make_encoder(name: str, *, width: int, patch_size: int, in_channels: int,
                 rngs: nnx.Rngs) -> VQEncoder:
  """The VQ encoder backbone (`model.backbone="vq_encoder"`, `model.width`, `model.patch_size`)."""
  if name not in BACKBONES:
    raise ValueError(f"model.backbone={name!r} is not a VQ encoder; use one of {BACKBONES}")
  return VQEncoder(in_channels, width, patch_size, rngs=rngs)


class VQTokenizer(nnx.Module):
  """The frozen tokenizer BEiT evaluates: encoder + quantizer of a trained `vq_tokenizer`."""

  def __init__(self, encoder: VQEncoder, quantizer: VectorQuantizer):
    self.encoder = encoder
    self.quantizer = quantizer

  def __call__(self, images: jax.Array) -> jax.Array:
    """[B, H, W, C] -> [B, (H / p) (W / p)] int32 code ids, patches in row-major order."""
    ids = self.quantizer(self.encoder.feature_map(images))[0]
    return ids.reshape(ids.shape[0], -1).astype(jnp.int32)
