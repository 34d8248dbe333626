"""Photometric image ops: they change pixel values, never positions. Images are float in
[0, 1], one image [H, W, C] with C = 1 (grayscale) or C = 3 (RGB); the HSV conversions take
any [..., 3].

These are the deterministic building blocks of the random views (`jax_ssl.data.augment` draws
the factors and chooses which ops run): luma, the colour-jitter blends, the HSV round trip of
the hue rotation, SimCLR's Gaussian blur, solarize, per-channel normalisation, and the uint8
-> float conversion every entry point applies first. They follow torchvision's functional ops
(adjust_brightness/contrast/saturation/hue, rgb_to_grayscale, gaussian_blur, solarize,
normalize), so SimCLR/BYOL recipes written for torchvision mean the same here. One deliberate
difference: luma uses the ITU-R 601-2 weights (0.299, 0.587, 0.114) of PIL's convert("L")
(torchvision's PIL path), where torchvision's tensor rgb_to_grayscale weights red by 0.2989.

All ops are pure jnp and vmap/jit friendly; factors and sigmas may be traced, kernel sizes
and thresholds are static.

References:
 torchvision.transforms: ColorJitter, RandomGrayscale, GaussianBlur, RandomSolarize.
 Chen et al., "A Simple Framework for Contrastive Learning of Visual Representations" (SimCLR),
 ICML 2020, arXiv:2002.05709, appendix A (blur kernel 10% of the image side).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

# ITU-R 601-2 luma, as in PIL's convert("L") (torchvision's rgb_to_grayscale on PIL images).
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def to_unit_float(images: ArrayLike) -> jax.Array:
  """uint8 -> float32 / 255; floating -> float32 (assumed already in [0, 1])."""
  images = jnp.asarray(images)
  if images.dtype == jnp.uint8:
    return images.astype(jnp.float32) / 255.0
  if not jnp.issubdtype(images.dtype, jnp.floating):
    raise ValueError(f"expected uint8 or floating images, got {images.dtype}")
  return images.astype(jnp.float32)


def to_grayscale(image: ArrayLike) -> jax.Array:
  """Luma of an RGB image: [H, W, 3] -> [H, W, 1] (identity for [H, W, 1])."""
  image = jnp.asarray(image)
  if image.shape[-1] == 1:
    return image
  return jnp.tensordot(image, jnp.asarray(LUMA_WEIGHTS, image.dtype), axes=1)[..., None]


def blend(image: jax.Array, factor: ArrayLike, target: ArrayLike) -> jax.Array:
  """clip(f * x + (1 - f) * target, 0, 1): torchvision's _blend.

  The one form of brightness (target 0), contrast (mean luma) and saturation (luma); public
  because the colour jitter (`augment._color_jitter`) runs it with a per-stage target.
  """
  return jnp.clip(factor * image + (1.0 - factor) * target, 0.0, 1.0)


def adjust_brightness(image: ArrayLike, factor: ArrayLike) -> jax.Array:
  """clip(factor * x, 0, 1); [H, W, C] -> [H, W, C]."""
  return blend(jnp.asarray(image), factor, 0.0)


def adjust_contrast(image: ArrayLike, factor: ArrayLike) -> jax.Array:
  """clip(f * x + (1 - f) * mean(gray(x)), 0, 1), the mean over the whole image."""
  image = jnp.asarray(image)
  return blend(image, factor, jnp.mean(to_grayscale(image)))


def adjust_saturation(image: ArrayLike, factor: ArrayLike) -> jax.Array:
  """clip(f * x + (1 - f) * gray(x), 0, 1) for RGB [H, W, 3]."""
  image = jnp.asarray(image)
  return blend(image, factor, to_grayscale(image))


def rgb_to_hsv(image: ArrayLike) -> jax.Array:
  """RGB [..., 3] in [0, 1] -> HSV [..., 3] in [0, 1] (hue in turns), as torchvision."""
  image = jnp.asarray(image)
  red, green, blue = image[..., 0], image[..., 1], image[..., 2]
  max_c = jnp.max(image, axis=-1)
  min_c = jnp.min(image, axis=-1)
  chroma = max_c - min_c
  is_gray = max_c == min_c  # also covers black, so the divisions below are safe
  saturation = chroma / jnp.where(is_gray, 1.0, max_c)
  safe_chroma = jnp.where(is_gray, 1.0, chroma)
  red_c = (max_c - red) / safe_chroma
  green_c = (max_c - green) / safe_chroma
  blue_c = (max_c - blue) / safe_chroma
  hue = jnp.where(
    max_c == red, blue_c - green_c,
    jnp.where(max_c == green, 2.0 + red_c - blue_c, 4.0 + green_c - red_c))
  hue = jnp.where(is_gray, 0.0, hue)
  hue = jnp.mod(hue / 6.0 + 1.0, 1.0)
  return jnp.stack([hue, saturation, max_c], axis=-1)


def hsv_to_rgb(image: ArrayLike) -> jax.Array:
  """HSV [..., 3] in [0, 1] (hue in turns) -> RGB [..., 3] in [0, 1], as torchvision."""
  image = jnp.asarray(image)
  hue, saturation, value = image[..., 0], image[..., 1], image[..., 2]
  sector = jnp.floor(hue * 6.0)
  frac = hue * 6.0 - sector
  sector = jnp.mod(sector, 6.0)
  p = jnp.clip(value * (1.0 - saturation), 0.0, 1.0)
  q = jnp.clip(value * (1.0 - saturation * frac), 0.0, 1.0)
  t = jnp.clip(value * (1.0 - saturation * (1.0 - frac)), 0.0, 1.0)
  conditions = [sector == k for k in range(6)]
  red = jnp.select(conditions, [value, q, p, p, t, value])
  green = jnp.select(conditions, [t, value, value, q, p, p])
  blue = jnp.select(conditions, [p, p, t, value, value, q])
  return jnp.stack([red, green, blue], axis=-1)


def adjust_hue(image: ArrayLike, shift: ArrayLike) -> jax.Array:
  """Rotate the HSV hue of RGB [H, W, 3] by `shift` turns (shift in [-0.5, 0.5])."""
  hsv = rgb_to_hsv(image)
  hue = jnp.mod(hsv[..., 0] + shift, 1.0)
  return jnp.clip(hsv_to_rgb(hsv.at[..., 0].set(hue)), 0.0, 1.0)


def blur_kernel_size(side: int, fraction: float) -> int:
  """SimCLR's kernel size: 2 * max(int(fraction * side) // 2, 1) + 1 (odd, >= 3)."""
  return 2 * max(int(fraction * side) // 2, 1) + 1


def gaussian_blur(image: ArrayLike, sigma: ArrayLike, kernel_size: int) -> jax.Array:
  """Separable Gaussian blur with reflect padding; [H, W, C] -> [H, W, C].

  Args:
   image: [H, W, C] image.
   sigma: scalar standard deviation in pixels (may be traced).
   kernel_size: odd static kernel side; taps at -r..r with r = kernel_size // 2.

  Returns:
   The blurred image; the normalised kernel preserves constants exactly.
  """
  image = jnp.asarray(image)
  radius = kernel_size // 2
  offsets = jnp.arange(-radius, radius + 1, dtype=image.dtype)
  weights = jnp.exp(-0.5 * jnp.square(offsets / sigma))
  weights = weights / jnp.sum(weights)
  height, width = image.shape[0], image.shape[1]
  padded = jnp.pad(image, ((radius, radius), (0, 0), (0, 0)), mode="reflect")
  image = sum(weights[k] * padded[k:k + height] for k in range(kernel_size))
  padded = jnp.pad(image, ((0, 0), (radius, radius), (0, 0)), mode="reflect")
  return sum(weights[k] * padded[:, k:k + width] for k in range(kernel_size))


def solarize(image: ArrayLike, threshold: float) -> jax.Array:
  """where(x < threshold, x, 1 - x)."""
  image = jnp.asarray(image)
  return jnp.where(image < threshold, image, 1.0 - image)


def normalize(image: ArrayLike, mean: Sequence[float], std: Sequence[float]) -> jax.Array:
  """(x - mean) / std with per-channel mean/std broadcast over the last axis."""
  image = jnp.asarray(image)
  return (image - jnp.asarray(mean, image.dtype)) / jnp.asarray(std, image.dtype)
