"""Tests for jax_ssl.data.augment (tiny images so the whole file stays fast on 2 CPU cores)."""

import colorsys
import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_ssl.data import augment
from jax_ssl.data.augment import AugmentConfig

# Every op off and the crop forced to the whole image: the identity view (for same-size output).
IDENTITY = AugmentConfig(output_size=8, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0),
            flip_prob=0.0, jitter_prob=0.0, grayscale_prob=0.0)
# The SimCLR default pipeline plus blur and solarize, at a tiny size.
FULL = AugmentConfig(output_size=6, blur_prob=0.5, solarize_prob=0.5)
JITTER_OFF = dict(brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0)

# Tests only check numbers, so skip XLA:CPU's expensive backend passes: compiles ~40% faster.
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}
augment_batch = jax.jit(augment.augment_batch, static_argnums=2, compiler_options=FAST_COMPILE)


def _images(batch=4, side=8, channels=3, seed=0):
  return jax.random.uniform(jax.random.key(seed), (batch, side, side, channels))


def _only(**changes):
  return dataclasses.replace(IDENTITY, **changes)


@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_dtype_and_range(channels):
  images = _images(batch=4, side=10, channels=channels)
  views = augment_batch(jax.random.key(1), images, FULL)
  assert views.shape == (4, 6, 6, channels)
  assert views.dtype == jnp.float32
  assert float(views.min()) >= 0.0 and float(views.max()) <= 1.0


def test_normalisation_applied_last():
  mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.5)
  images = _images()
  views = augment_batch(jax.random.key(0), images, _only(mean=mean, std=std))
  expected = (images - np.array(mean)) / np.array(std)
  np.testing.assert_allclose(views, expected, atol=1e-5)


def test_full_crop_is_identity_and_resize():
  images = _images(side=8)
  np.testing.assert_allclose(augment_batch(jax.random.key(3), images, IDENTITY), images,
               atol=1e-5)
  # Same crop to a smaller side equals the anti-aliased bilinear resize (= center_view).
  small = augment_batch(jax.random.key(3), images, _only(output_size=4))
  resized = jax.image.resize(images, (4, 4, 4, 3), method="linear", antialias=True)
  np.testing.assert_allclose(small, resized, atol=1e-5)
  np.testing.assert_allclose(augment.center_view(images, 4), resized, atol=1e-5)


def test_crop_area_and_ratio_honoured():
  # A ramp in x (and 2x steeper in y) is reproduced exactly by bilinear sampling, so pixel
  # steps in the view reveal the box: a quarter-area square crop of a 16-px image is 8 px,
  # upsampled 2x to 16 px, so each output step covers 0.5 input pixel.
  rows, cols = np.meshgrid(np.arange(16.0), np.arange(16.0), indexing="ij")
  ramp = jnp.asarray(np.stack([cols, 2 * rows, cols], -1)[None] / 64.0, jnp.float32)
  config = _only(output_size=16, crop_scale=(0.25, 0.25))
  for seed in range(3):
    view = augment_batch(jax.random.key(seed), ramp, config)[0] * 64.0
    np.testing.assert_allclose(np.diff(view[2:-2, 2:-2, 0], axis=1), 0.5, atol=1e-4)
    np.testing.assert_allclose(np.diff(view[2:-2, 2:-2, 1], axis=0), 1.0, atol=1e-4)
  # Ratio 4, area 1/4: width sqrt(64 * 4) = 16 and height 4 input px over 16 output px, so
  # steps of 1 in x and 0.25 input px in y (0.5 on the 2x-steep channel).
  view = augment_batch(jax.random.key(0), ramp,
            _only(output_size=16, crop_scale=(0.25, 0.25), crop_ratio=(4.0, 4.0)))
  view = view[0] * 64.0
  np.testing.assert_allclose(np.diff(view[2:-2, 2:-2, 0], axis=1), 1.0, atol=1e-4)
  np.testing.assert_allclose(np.diff(view[2:-2, 2:-2, 1], axis=0), 0.5, atol=1e-4)


def test_flip_gives_mirror():
  images = _images()
  views = augment_batch(jax.random.key(0), images, _only(flip_prob=1.0))
  np.testing.assert_allclose(views, images[:, :, ::-1], atol=1e-6)
  assert not np.allclose(views, images)


def test_brightness_scales_constant_image_within_range():
  images = jnp.full((8, 4, 4, 3), 0.5)
  views = augment_batch(jax.random.key(0), images, _only(jitter_prob=1.0, **dict(
    JITTER_OFF, brightness=0.4)))
  factors = np.asarray(views) / 0.5
  per_example = factors[:, 0, 0, 0]
  # One factor per example, shared by all pixels and channels.
  np.testing.assert_allclose(factors, np.broadcast_to(per_example[:, None, None, None],
                            factors.shape), atol=1e-6)
  assert np.all(per_example >= 0.6 - 1e-6) and np.all(per_example <= 1.4 + 1e-6)
  assert np.ptp(per_example) > 0.05  # factors differ between examples


def test_contrast():
  constant = jnp.full((4, 8, 8, 3), 0.3)
  config = _only(jitter_prob=1.0, **dict(JITTER_OFF, contrast=0.4))
  np.testing.assert_allclose(augment_batch(jax.random.key(0), constant, config), constant,
               atol=1e-6)
  # Away from the clip: out - m = f (x - m), m the mean luma, one f in [0.6, 1.4] per example.
  images = np.asarray(0.4 + 0.2 * _images(batch=4))
  views = np.asarray(augment_batch(jax.random.key(1), images, config))
  mean_luma = (images @ np.array(augment.LUMA_WEIGHTS)).mean(axis=(1, 2))[:, None, None, None]
  centred = images - mean_luma
  factor = (np.sum((views - mean_luma) * centred, axis=(1, 2, 3), keepdims=True)
       / np.sum(centred**2, axis=(1, 2, 3), keepdims=True))
  np.testing.assert_allclose(views, mean_luma + factor * centred, atol=1e-5)
  assert np.all((factor > 0.6 - 1e-5) & (factor < 1.4 + 1e-5))
  assert np.ptp(factor) > 0.05


def test_grayscale_gives_luma_on_three_channels():
  images = _images()
  views = augment_batch(jax.random.key(0), images, _only(grayscale_prob=1.0))
  luma = 0.299 * images[..., 0] + 0.587 * images[..., 1] + 0.114 * images[..., 2]
  for channel in range(3):
    np.testing.assert_allclose(views[..., channel], luma, atol=1e-6)
  # No-op for a single channel.
  gray = _images(channels=1)
  np.testing.assert_allclose(
    augment_batch(jax.random.key(0), gray, _only(grayscale_prob=1.0, jitter_prob=1.0,
                          **dict(JITTER_OFF, saturation=0.9,
                              hue=0.5))), gray, atol=1e-5)


def test_bernoulli_rates():
  # Two pixels chosen so that every outcome is identifiable: B = (0.9, 0.9, 0.9) is its own
  # luma and solarizes to 0.1, A = (0.6, 0.8, 0.9) has luma 0.7516 != any of its channels.
  count = 400
  pixel_a, pixel_b = [0.6, 0.8, 0.9], [0.9, 0.9, 0.9]
  images = jnp.broadcast_to(jnp.asarray([[pixel_a, pixel_b]] * 2), (count, 2, 2, 3))
  config = _only(output_size=2, flip_prob=0.5, grayscale_prob=0.2, solarize_prob=0.3)
  views = np.asarray(augment_batch(jax.random.key(0), images, config))[:, 0]
  flipped = np.isclose(views[:, 0, 0], views[:, 0, 1]) & np.isclose(views[:, 0, 1],
                                   views[:, 0, 2])
  flipped &= np.isclose(views[:, 0, 0], 0.9) | np.isclose(views[:, 0, 0], 0.1)
  a_column = np.where(flipped, 1, 0)
  b_column = 1 - a_column
  view_a = views[np.arange(count), a_column]
  view_b = views[np.arange(count), b_column]
  gray = np.isclose(view_a[:, 0], view_a[:, 1])
  solarized = np.isclose(view_b[:, 0], 0.1)
  assert np.all(np.isclose(view_b, 0.1) | np.isclose(view_b, 0.9))
  # Binomial(400, p) lies within 4 standard deviations of its mean.
  for observed, prob in [(flipped, 0.5), (gray, 0.2), (solarized, 0.3)]:
    assert abs(observed.mean() - prob) < 4 * math.sqrt(prob * (1 - prob) / count)
  # The draws are independent (a shared rng slot would correlate them).
  assert abs(np.corrcoef(flipped, solarized)[0, 1]) < 0.2
  assert abs(np.corrcoef(gray, solarized)[0, 1]) < 0.2


def test_solarize():
  images = jnp.asarray([0.7, 0.2, 0.5, 0.49]).reshape(1, 2, 2, 1)
  views = augment_batch(jax.random.key(0), images,
             _only(output_size=2, solarize_prob=1.0, solarize_threshold=0.5))
  np.testing.assert_allclose(views.ravel(), [0.3, 0.2, 0.5, 0.49], atol=1e-6)


def test_blur():
  # One compile: a constant image, noise and an impulse, all blurred with sigma = 1.
  config = _only(output_size=32, blur_prob=1.0, blur_sigma=(1.0, 1.0))
  constant = jnp.full((1, 32, 32, 3), 0.25)
  noise = _images(batch=1, side=32)
  impulse = jnp.zeros((1, 32, 32, 3)).at[0, 10, 20].set(1.0)
  blurred = augment_batch(jax.random.key(0), jnp.concatenate([constant, noise, impulse]),
              config)
  np.testing.assert_allclose(blurred[0], constant[0], atol=1e-6)
  np.testing.assert_allclose(blurred[1].mean(axis=(0, 1)), noise[0].mean(axis=(0, 1)),
               atol=0.01)
  assert np.all(blurred[1].var(axis=(0, 1)) < 0.5 * noise[0].var(axis=(0, 1)))
  # Side 32 -> kernel 3; 1-D taps w0 = 1 / (1 + 2 e^-1/2), w1 = (1 - w0) / 2.
  assert augment.blur_kernel_size(32, 0.1) == 3 and augment.blur_kernel_size(224, 0.1) == 23
  response = blurred[2, ..., 0]
  tap = 1.0 / (1.0 + 2.0 * math.exp(-0.5))
  np.testing.assert_allclose(response[10, 20], tap**2, rtol=1e-5)
  np.testing.assert_allclose(response[9, 21], ((1 - tap) / 2) ** 2, rtol=1e-5)  # corner
  np.testing.assert_allclose(float(response.sum()), 1.0, rtol=1e-5)


def test_hsv():
  rgb = np.asarray(_images(batch=1, side=6))[0].reshape(-1, 3)
  rgb = np.concatenate([rgb, [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0.5, 0.5, 0.5], [0, 0, 0],
                [1, 1, 0], [1, 0, 1]]], axis=0).astype(np.float32)

  @functools.partial(jax.jit, compiler_options=FAST_COMPILE)
  def run(rgb):
    hsv = augment.rgb_to_hsv(rgb)
    return (hsv, augment.hsv_to_rgb(hsv), augment.adjust_hue(rgb, 0.0),
        augment.adjust_hue(rgb[-7:-6], 1 / 3), augment.adjust_hue(rgb[-7:-6], -1 / 3),
        augment.adjust_saturation(rgb, 0.0))

  hsv, round_trip, zero_shift, plus_third, minus_third, desaturated = run(rgb)
  np.testing.assert_allclose(hsv, [colorsys.rgb_to_hsv(*pixel) for pixel in rgb], atol=1e-5)
  np.testing.assert_allclose(round_trip, rgb, atol=1e-5)
  np.testing.assert_allclose(zero_shift, rgb, atol=1e-5)
  # Red rotated by a third of a turn is green, by -1/3 is blue.
  np.testing.assert_allclose(plus_third, [[0, 1, 0]], atol=1e-5)
  np.testing.assert_allclose(minus_third, [[0, 0, 1]], atol=1e-5)
  # Saturation factor 0 gives the luma on every channel.
  luma = rgb @ np.array(augment.LUMA_WEIGHTS)
  np.testing.assert_allclose(desaturated, np.repeat(luma[:, None], 3, axis=1), atol=1e-6)


def test_hue_jitter_keeps_value_and_saturation():
  images = _images()
  config = _only(jitter_prob=1.0, **dict(JITTER_OFF, hue=0.1))
  views = augment_batch(jax.random.key(0), images, config)
  hsv_in, hsv_out = augment.rgb_to_hsv(images), augment.rgb_to_hsv(views)
  np.testing.assert_allclose(hsv_out[..., 1:], hsv_in[..., 1:], atol=1e-4)
  shift = np.mod(hsv_out[..., 0] - hsv_in[..., 0] + 0.5, 1.0) - 0.5
  assert np.all(np.abs(shift) <= 0.1 + 1e-4)
  assert np.all(np.abs(shift - shift[:, :1, :1]) < 1e-3)  # one shift per example
  assert np.ptp(shift[:, 0, 0]) > 0.02  # that differs between examples


def test_per_example_determinism_and_batch_independence():
  images = _images(batch=8, side=10)
  images = images.at[1].set(images[0])  # the same image in two slots
  rng = jax.random.key(42)
  full = augment_batch(rng, images, FULL)
  np.testing.assert_allclose(augment_batch(rng, images[:4], FULL), full[:4], atol=1e-6)
  np.testing.assert_array_equal(augment_batch(rng, images, FULL), full)
  other = augment_batch(jax.random.key(43), images, FULL)
  assert np.abs(np.asarray(other) - np.asarray(full)).max() > 0.1
  assert np.abs(np.asarray(full[0]) - np.asarray(full[1])).max() > 0.1


def test_make_views_uint8_and_fold_in():
  configs = (_only(output_size=6, crop_scale=(0.2, 1.0), flip_prob=0.5),
       _only(output_size=4, crop_scale=(0.2, 1.0), solarize_prob=0.5))
  pixels = jax.random.randint(jax.random.key(0), (4, 10, 10, 3), 0, 256).astype(jnp.uint8)
  rng = jax.random.key(7)
  make_views = jax.jit(augment.make_views, static_argnums=2, compiler_options=FAST_COMPILE)
  views = make_views(rng, pixels, configs)
  assert [v.shape for v in views] == [(4, 6, 6, 3), (4, 4, 4, 3)]
  floats = pixels.astype(jnp.float32) / 255.0
  for index, config in enumerate(configs):
    expected = augment_batch(jax.random.fold_in(rng, index), floats, config)
    np.testing.assert_allclose(views[index], expected, atol=1e-5)


def test_center_view():
  pixels = jnp.arange(2 * 6 * 8, dtype=jnp.uint8).reshape(2, 6, 8, 1)
  out = augment.center_view(pixels, 6, mean=(0.5,), std=(0.25,))
  assert out.shape == (2, 6, 6, 1) and out.dtype == jnp.float32
  expected = (pixels[:, :, 1:7].astype(np.float32) / 255.0 - 0.5) / 0.25  # centre 6x6 crop
  np.testing.assert_allclose(out, expected, atol=1e-6)


def test_config_validation():
  with pytest.raises(ValueError):
    AugmentConfig(output_size=8, mean=(0.5,))
  with pytest.raises(ValueError):
    AugmentConfig(output_size=8, crop_scale=(0.5, 1.5))
  with pytest.raises(ValueError):
    augment.augment_view(jax.random.key(0), jnp.zeros((8, 8, 2)), AugmentConfig(8))


def test_imagenet_evaluation_view_is_resize_256_center_crop_224():
  """ImageNet's standard evaluation view: of the 256 px images the input pipeline makes,
  the central 224 x 224 pixels, unresampled (not the whole square shrunk to 224)."""
  from conftest import typed  # pylint: disable=g-import-not-at-top
  from experiments.imagenet import simclr_resnet50  # pylint: disable=g-import-not-at-top
  config = typed(simclr_resnet50.get_config())
  assert (config.dataset.image_size, config.augment.output_size) == (256, 224)
  images = np.random.default_rng(0).integers(0, 256, (2, 256, 256, 3), dtype=np.uint8)
  view = np.asarray(augment.center_view(images, config.augment.output_size,
                                        crop_fraction=config.eval.crop_fraction))
  np.testing.assert_allclose(view, images[:, 16:240, 16:240] / 255.0, atol=1e-6)
  # Fashion-MNIST evaluates the whole image.
  whole = np.asarray(augment.center_view(images[:, :28, :28], 28, crop_fraction=1.0))
  np.testing.assert_allclose(whole, images[:, :28, :28] / 255.0, atol=1e-6)
  # A fraction of a non-square image: the central square of the shorter side, then the crop.
  wide = np.random.default_rng(1).random((1, 40, 60, 1)).astype(np.float32)
  np.testing.assert_allclose(np.asarray(augment.center_view(wide, 20, crop_fraction=0.5)),
                             wide[:, 10:30, 20:40], atol=1e-6)
  with pytest.raises(ValueError, match="crop_fraction=0"):
    augment.center_view(wide, 20, crop_fraction=0)
