"""On-device SimCLR/BYOL-style view generation: jitted, one rng key per example.

This module is the per-view pipeline: `AugmentConfig` (one view's static recipe), the random
draws, and the batch entry points (`augment_batch`, `make_views`, `photometric_batch`,
`views_of_batch`). The deterministic ops it composes live in `jax_ssl/data/geometry.py`
(crop resampling, the evaluation's centre view) and `jax_ssl/data/photometric.py` (colour,
grayscale, blur, solarize, normalisation) and are re-exported here.

Images are float32 in [0, 1] with shape [B, H, W, C], C = 1 (grayscale) or C = 3 (RGB). The
pipeline for one view follows the torchvision recipe used by SimCLR and BYOL, in this order:

 random resized crop -> horizontal flip -> colour jitter (p) -> grayscale (p) ->
 gaussian blur (p) -> solarize (p) -> optional (x - mean) / std

Every random choice is a Bernoulli draw followed by ``jnp.where`` between the augmented and the
original image (no ``lax.cond``), so ``jax.vmap`` over examples produces branch-free code. All
random numbers of a view come from one uniform draw with a fixed slot per quantity; operations
whose probability or strength is zero are skipped at trace time (the config is static), and
switching one off never changes the randomness of the others.

Example i of a batch uses ``jax.random.fold_in(rng, i)``: its view depends neither on the batch
size nor on how the global batch is sharded. Variable-size datasets crop on the host
(`jax_ssl/data/host_views.py`); their views take only the photometric half here, with the same
slots.

Deviations from torchvision, all deliberate:
 * Random resized crop samples continuous (sub-pixel) crop boxes and clips width/height to the
  image instead of retrying up to 10 times and falling back to a centre crop: a fixed number
  of random draws per view, and no data-dependent loop under vmap. With the default ranges on
  a square image 14% of the sampled boxes clip (area fraction times ratio above 1); those
  boxes lose some area and aspect ratio (mean area fraction 0.534 instead of 0.540, a
  property of the distribution, computed by numpy Monte Carlo).
 * Resampling is bilinear with anti-aliasing when downscaling (`geometry.resized_crop`), like
  PIL's bilinear resize.
 * Colour jitter runs its 4 stages in a ``lax.fori_loop`` that evaluates the blend and the hue
  rotation at every stage and keeps the one whose turn it is; the hue (HSV round trip) is
  thus computed 4 times per jittered image, cheap next to any encoder, and the loop traces
  and compiles it once.

References:
 Chen et al., "A Simple Framework for Contrastive Learning of Visual Representations" (SimCLR),
 ICML 2020, arXiv:2002.05709, appendix A.
 Grill et al., "Bootstrap Your Own Latent" (BYOL), NeurIPS 2020, arXiv:2006.07733, table 6.
 torchvision.transforms: RandomResizedCrop, ColorJitter, RandomGrayscale, GaussianBlur,
 RandomSolarize.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

# The deterministic ops, re-exported: `augment.center_view`, `augment.LUMA_WEIGHTS`, ... are
# what the evaluations, the step and the tests import.
from jax_ssl.data.geometry import center_view, resized_crop
from jax_ssl.data.photometric import (
  LUMA_WEIGHTS,
  adjust_brightness,
  adjust_contrast,
  adjust_hue,
  adjust_saturation,
  blend,
  blur_kernel_size,
  gaussian_blur,
  hsv_to_rgb,
  normalize,
  rgb_to_hsv,
  solarize,
  to_grayscale,
  to_unit_float,
)

__all__ = [
  # this module: the per-view pipeline
  "AugmentConfig", "augment_view", "augment_batch", "make_views", "photometric_batch",
  "views_of_batch",
  # re-exported from geometry and photometric
  "center_view", "resized_crop", "LUMA_WEIGHTS", "adjust_brightness", "adjust_contrast",
  "adjust_hue", "adjust_saturation", "blend", "blur_kernel_size", "gaussian_blur", "hsv_to_rgb",
  "normalize", "rgb_to_hsv", "solarize", "to_grayscale", "to_unit_float",
]

# Slots of the one uniform vector drawn per example (a single threefry call keeps compile time
# low). The layout is fixed so that configs can switch ops off without changing the randomness
# of the others.
_SLOTS = {name: index for index, name in enumerate((
  "crop_area", "crop_ratio", "crop_top", "crop_left", "flip", "jitter_apply",
  "order_0", "order_1", "order_2", "order_3", "brightness", "contrast", "saturation", "hue",
  "grayscale", "blur_apply", "blur_sigma", "solarize"))}
_BRIGHTNESS, _CONTRAST, _SATURATION, _HUE = range(4)  # op ids in the colour-jitter permutation


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
  """Static description of one view's augmentation (hashable: usable as a jit static arg).

  Defaults are SimCLR's CIFAR-10 view: colour strength s = 0.5 (brightness, contrast,
  saturation 0.8 * s, hue 0.2 * s), no blur. SimCLR's ImageNet view uses s = 1.0 and
  blur_prob = 0.5; BYOL's two views use saturation 0.2, blur_prob 1.0 / 0.1 and
  solarize_prob 0.0 / 0.2. Sequence fields are stored as tuples so the config stays hashable.

  Attributes:
   output_size: side S of the square output view.
   crop_scale: range of the crop area as a fraction of the image area.
   crop_ratio: range of the crop aspect ratio width / height, sampled log-uniformly.
   flip_prob: probability of a horizontal flip.
   jitter_prob: probability of applying colour jitter (all four ops, random order).
   brightness: factor ~ U[max(0, 1 - b), 1 + b]; out = f * x.
   contrast: factor ~ U[max(0, 1 - c), 1 + c]; out = f * x + (1 - f) * mean(gray(x)).
   saturation: factor ~ U[max(0, 1 - s), 1 + s]; out = f * x + (1 - f) * gray(x). RGB only.
   hue: shift ~ U[-h, h] of the HSV hue (in turns, h <= 0.5). RGB only.
   grayscale_prob: probability of converting to luma replicated on 3 channels. RGB only.
   blur_prob: probability of a Gaussian blur.
   blur_sigma: range of the blur standard deviation, in output pixels.
   blur_kernel_fraction: kernel side ~ this fraction of S; as SimCLR, radius =
    int(fraction * S) // 2 (at least 1) and size = 2 * radius + 1 (23 for S = 224).
   solarize_prob: probability of solarizing: x -> where(x < threshold, x, 1 - x).
   solarize_threshold: solarize threshold.
   mean: optional per-channel mean, applied last as (x - mean) / std.
   std: optional per-channel std; given if and only if mean is.
  """

  output_size: int
  crop_scale: tuple[float, float] = (0.08, 1.0)
  crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
  flip_prob: float = 0.5
  jitter_prob: float = 0.8
  brightness: float = 0.4
  contrast: float = 0.4
  saturation: float = 0.4
  hue: float = 0.1
  grayscale_prob: float = 0.2
  blur_prob: float = 0.0
  blur_sigma: tuple[float, float] = (0.1, 2.0)
  blur_kernel_fraction: float = 0.1
  solarize_prob: float = 0.0
  solarize_threshold: float = 0.5
  mean: tuple[float, ...] | None = None
  std: tuple[float, ...] | None = None

  def __post_init__(self):
    for name in ("crop_scale", "crop_ratio", "blur_sigma", "mean", "std"):
      if getattr(self, name) is not None:
        object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
    if self.output_size < 1:
      raise ValueError(f"output_size must be positive, got {self.output_size}")
    if not 0 < self.crop_scale[0] <= self.crop_scale[1] <= 1:
      raise ValueError(f"crop_scale must satisfy 0 < lo <= hi <= 1, got {self.crop_scale}")
    if not 0 < self.crop_ratio[0] <= self.crop_ratio[1]:
      raise ValueError(f"crop_ratio must satisfy 0 < lo <= hi, got {self.crop_ratio}")
    if not 0 <= self.hue <= 0.5:
      raise ValueError(f"hue must be in [0, 0.5], got {self.hue}")
    if not 0 < self.blur_sigma[0] <= self.blur_sigma[1]:
      raise ValueError(f"blur_sigma must satisfy 0 < lo <= hi, got {self.blur_sigma}")
    if (self.mean is None) != (self.std is None):
      raise ValueError("mean and std must be given together")
    if self.mean is not None and len(self.mean) != len(self.std):
      raise ValueError(f"mean {self.mean} and std {self.std} differ in length")


# ---------------------------------------------------------------------------------------------
# Random view of one image, batches, and multiple views.
# ---------------------------------------------------------------------------------------------


def _sample_crop_box(uniforms: jax.Array, height: int, width: int,
          scale: tuple[float, float],
          ratio: tuple[float, float]) -> tuple[jax.Array, ...]:
  """(top, left, crop_height, crop_width): area ~ U[scale] * H * W, log-uniform w / h ratio.

  Width and height are clipped to [1, W] and [1, H] rather than resampled (see module doc).
  """
  def uniform(name: str, low: float, high: float) -> jax.Array:
    return low + (high - low) * uniforms[_SLOTS[name]]

  area = height * width * uniform("crop_area", *scale)
  aspect = jnp.exp(uniform("crop_ratio", math.log(ratio[0]), math.log(ratio[1])))
  crop_width = jnp.clip(jnp.sqrt(area * aspect), 1.0, width)
  crop_height = jnp.clip(jnp.sqrt(area / aspect), 1.0, height)
  top = uniforms[_SLOTS["crop_top"]] * (height - crop_height)
  left = uniforms[_SLOTS["crop_left"]] * (width - crop_width)
  return top, left, crop_height, crop_width


def _color_jitter(uniforms: jax.Array, image: jax.Array, config: AugmentConfig) -> jax.Array:
  """torchvision ColorJitter: factors drawn once, the 4 ops in a per-example random order.

  Brightness, contrast and saturation are all blends clip(f * x + (1 - f) * target) with
  target 0, mean luma and luma; each of the 4 stages does one blend with the factor and target
  of the op whose turn it is, plus the hue rotation, selected with jnp.where (not lax.switch)
  so vmap stays branch-free. Disabled ops (zero strength, or saturation/hue on one channel)
  get factor 1 / shift 0 and are identities.
  """
  def factor(name: str, strength: float) -> jax.Array:
    low = max(0.0, 1.0 - strength)
    return low + (1.0 + strength - low) * uniforms[_SLOTS[name]]

  is_rgb = image.shape[-1] == 3
  factors = jnp.stack([
    factor("brightness", config.brightness),
    factor("contrast", config.contrast),
    factor("saturation", config.saturation if is_rgb else 0.0),
    jnp.ones(()),  # the hue stage does no blend
  ])
  use_hue = is_rgb and config.hue > 0
  hue_shift = config.hue * (2.0 * uniforms[_SLOTS["hue"]] - 1.0)
  # A uniformly random permutation, as torch.randperm(4): the argsort of 4 iid uniforms.
  order = jnp.argsort(uniforms[jnp.array([_SLOTS[f"order_{k}"] for k in range(4)])])

  def stage(index: jax.Array, image: jax.Array) -> jax.Array:
    op = order[index]
    gray = to_grayscale(image)
    target = jnp.where(op == _SATURATION, gray,
             jnp.where(op == _CONTRAST, jnp.mean(gray), 0.0))
    blended = blend(image, factors[op], target)
    if use_hue:
      blended = jnp.where(op == _HUE, adjust_hue(image, hue_shift), blended)
    return blended

  # A loop rather than 4 unrolled stages: the HSV round trip is traced and compiled once.
  return jax.lax.fori_loop(0, 4, stage, image)


def augment_view(rng: jax.Array, image: ArrayLike, config: AugmentConfig) -> jax.Array:
  """One random view of ONE image.

  Args:
   rng: a PRNG key for this example.
   image: [H, W, C] float in [0, 1] (or uint8, divided by 255), C in {1, 3}.
   config: the (static) augmentation config.

  Returns:
   [S, S, C] float32 view, S = config.output_size; in [0, 1] unless mean/std are set.
  """
  image = to_unit_float(image)
  if image.ndim != 3 or image.shape[-1] not in (1, 3):
    raise ValueError(f"expected one image [H, W, 1 or 3], got shape {image.shape}")
  height, width, _ = image.shape
  uniforms = jax.random.uniform(rng, (len(_SLOTS),))
  box = _sample_crop_box(uniforms, height, width, config.crop_scale, config.crop_ratio)
  image = resized_crop(image, *box, config.output_size)
  return _photometric(uniforms, image, config)


def _photometric(uniforms: jax.Array, image: jax.Array, config: AugmentConfig) -> jax.Array:
  """Flip, colour jitter, grayscale, blur, solarize and normalisation of one [S, S, C] view
  in [0, 1], with the randomness of `uniforms` (the example's slots)."""
  channels = image.shape[-1]

  def bernoulli(name: str, prob: float) -> jax.Array:
    return uniforms[_SLOTS[name]] < prob

  if config.flip_prob > 0:
    image = jnp.where(bernoulli("flip", config.flip_prob), image[:, ::-1], image)
  if config.jitter_prob > 0:
    jittered = _color_jitter(uniforms, image, config)
    image = jnp.where(bernoulli("jitter_apply", config.jitter_prob), jittered, image)
  if channels == 3 and config.grayscale_prob > 0:
    gray = jnp.broadcast_to(to_grayscale(image), image.shape)
    image = jnp.where(bernoulli("grayscale", config.grayscale_prob), gray, image)
  if config.blur_prob > 0:
    low, high = config.blur_sigma
    sigma = low + (high - low) * uniforms[_SLOTS["blur_sigma"]]
    kernel_size = blur_kernel_size(config.output_size, config.blur_kernel_fraction)
    blurred = gaussian_blur(image, sigma, kernel_size)
    image = jnp.where(bernoulli("blur_apply", config.blur_prob), blurred, image)
  if config.solarize_prob > 0:
    solarized = solarize(image, config.solarize_threshold)
    image = jnp.where(bernoulli("solarize", config.solarize_prob), solarized, image)
  if config.mean is not None:
    if len(config.mean) != channels:
      raise ValueError(f"mean has {len(config.mean)} entries for {channels} channels")
    image = normalize(image, config.mean, config.std)
  return image


def augment_batch(rng: jax.Array, images: ArrayLike, config: AugmentConfig) -> jax.Array:
  """Independent random views of a batch: [B, H, W, C] float in [0, 1] (or uint8) ->
  [B, S, S, C] float32.

  Example i uses ``jax.random.fold_in(rng, i)``, so its view does not depend on B or on how
  the batch is sharded. Jit with ``static_argnums=2`` (the config is hashable).
  """
  images = jnp.asarray(images)
  keys = jax.vmap(lambda index: jax.random.fold_in(rng, index))(jnp.arange(images.shape[0]))
  return jax.vmap(augment_view, in_axes=(0, 0, None))(keys, images, config)


def make_views(rng: jax.Array, images: ArrayLike,
       configs: Sequence[AugmentConfig]) -> list[jax.Array]:
  """One augmented batch per config (e.g. SimCLR's two views, BYOL's asymmetric pair).

  Args:
   rng: PRNG key for the step; view v uses ``jax.random.fold_in(rng, v)``.
   images: [B, H, W, C], uint8 (divided by 255) or float in [0, 1].
   configs: one AugmentConfig per view (pass a tuple to jit it as a static argument).

  Returns:
   A list with [B, S_v, S_v, C] float32 per view.
  """
  images = to_unit_float(images)
  return [augment_batch(jax.random.fold_in(rng, view), images, config)
      for view, config in enumerate(configs)]


def photometric_batch(rng: jax.Array, views: ArrayLike, config: AugmentConfig) -> jax.Array:
  """The device half of a view the host has cropped (jax_ssl/data/host_views.py): flip,
  colour jitter, grayscale, blur, solarize, normalisation of [B, S, S, C] uint8 (or float in
  [0, 1]) -> [B, S, S, C] float32, S = config.output_size.

  Example i uses ``jax.random.fold_in(rng, i)`` and the same random slots as `augment_view`
  (the crop's slots go unused).
  """
  views = to_unit_float(views)
  if views.ndim != 4 or views.shape[1:3] != (config.output_size,) * 2 or views.shape[-1] not in (1, 3):
    raise ValueError(f"expected host views [B, {config.output_size}, {config.output_size}, 1 or 3], "
                     f"got shape {views.shape}")
  keys = jax.vmap(lambda index: jax.random.fold_in(rng, index))(jnp.arange(views.shape[0]))
  return jax.vmap(lambda key, view: _photometric(
      jax.random.uniform(key, (len(_SLOTS),)), view, config))(keys, views)


def views_of_batch(rng: jax.Array, batch: Mapping[str, ArrayLike],
                   configs: Sequence[AugmentConfig]) -> list[jax.Array]:
  """The step's views, one [B, S_v, S_v, C] float32 per config: from `batch["views"]` (one
  host-cropped uint8 [B, S_v, S_v, C] per config, variable-size datasets) by
  `photometric_batch`, else from `batch["image"]` by `make_views`. View v uses
  ``jax.random.fold_in(rng, v)`` either way. A video batch's `batch["clips"]` (one uint8
  [B, T, H, W, C] per view, the host's clip sampler's) gives one float32 [B, T, S_v, S_v, C]
  per config, each clip's crop and photometric draws shared by all its frames
  (video_augment.clip_views)."""
  if "clips" in batch:
    from jax_ssl.data import video_augment  # pylint: disable=g-import-not-at-top  (imports this)
    if len(batch["clips"]) != len(configs):
      raise ValueError(f"the batch has {len(batch['clips'])} clips per video for "
                       f"{len(configs)} view configs")
    return video_augment.clip_views(rng, batch["clips"], configs)
  if "views" not in batch:
    return make_views(rng, batch["image"], configs)
  if len(batch["views"]) != len(configs):
    raise ValueError(f"the batch has {len(batch['views'])} host views for {len(configs)} configs")
  return [photometric_batch(jax.random.fold_in(rng, view), images, config)
          for view, (images, config) in enumerate(zip(batch["views"], configs))]

