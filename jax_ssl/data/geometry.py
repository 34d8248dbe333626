"""Geometric image ops: they move pixels, never change their values. The random views' crop
resampling (`resized_crop`, whose box `jax_ssl.data.augment` draws) and the deterministic
evaluation view (`center_view`, used by the kNN, linear-probe and fine-tune evaluations).

Resampling is bilinear with a triangle anti-aliasing filter when downscaling
(``jax.image.scale_and_translate`` / ``jax.image.resize`` with ``antialias=True``), like PIL's
bilinear resize that torchvision's RandomResizedCrop and Resize use on PIL images; crop boxes
are continuous (sub-pixel) so their size can be traced while the output shape stays static.

References:
 torchvision.transforms: RandomResizedCrop, Resize, CenterCrop.
 jax.image.scale_and_translate (its docstring: pixel centres at i + 0.5, antialiasing).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jax_ssl.data.photometric import normalize, to_unit_float


def resized_crop(image: ArrayLike, top: ArrayLike, left: ArrayLike, crop_height: ArrayLike,
        crop_width: ArrayLike, output_size: int) -> jax.Array:
  """Bilinear resample of the box [top, top + h] x [left, left + w] to [S, S, C].

  Coordinates are continuous with pixel centres at i + 0.5 and may be traced, so the output
  shape is static. Downscaling uses a triangle anti-aliasing filter (PIL-style bilinear).
  """
  image = jnp.asarray(image)
  scale = output_size / jnp.stack([crop_height, crop_width]).astype(jnp.float32)
  translation = -jnp.stack([top, left]).astype(jnp.float32) * scale
  return jax.image.scale_and_translate(
    image, (output_size, output_size, image.shape[-1]), (0, 1), scale, translation,
    method="linear", antialias=True)


def center_view(images: ArrayLike, output_size: int, mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None, *, crop_fraction: float = 1.0) -> jax.Array:
  """Deterministic evaluation transform: [B, H, W, C] uint8/float -> [B, S, S, C] float32.

  The central square of side round(crop_fraction * min(H, W)) is cropped and bilinearly
  resized (anti-aliased) to S when its side differs. Then (x - mean) / std if given.
  ImageNet's standard view, Resize(256) + CenterCrop(224), is crop_fraction 224/256 = 0.875
  on the 256-px images the input pipeline makes (`dataset.image_size`): a crop, no resampling.
  """
  if not 0 < crop_fraction <= 1:
    raise ValueError(f"crop_fraction={crop_fraction}; must be in (0, 1]")
  images = to_unit_float(images)
  _, height, width, channels = images.shape
  side = max(1, round(crop_fraction * min(height, width)))
  top, left = (height - side) // 2, (width - side) // 2
  images = images[:, top:top + side, left:left + side]
  if side != output_size:
    images = jax.image.resize(images, (images.shape[0], output_size, output_size, channels),
                 method="linear", antialias=True)
  if (mean is None) != (std is None):
    raise ValueError("mean and std must be given together")
  if mean is not None:
    images = normalize(images, mean, std)
  return images
