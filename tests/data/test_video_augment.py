"""Tests for jax_ssl.data.video_augment: one augmentation draw per clip, shared by its frames
(tiny clips; a handful of compiles, XLA's expensive passes off)."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_ssl.data import augment, video_augment
from jax_ssl.data.augment import AugmentConfig

# Everything random on, as test_augment.py's FULL view.
FULL = AugmentConfig(output_size=6, blur_prob=0.5, solarize_prob=0.5)
# Only the (linear) geometry: resampled crop and flip.
GEOMETRY = AugmentConfig(output_size=6, jitter_prob=0.0, grayscale_prob=0.0)

FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}
augment_clip_batch = jax.jit(video_augment.augment_clip_batch, static_argnums=2,
                             compiler_options=FAST_COMPILE)
augment_batch = jax.jit(augment.augment_batch, static_argnums=2, compiler_options=FAST_COMPILE)
clip_views = jax.jit(video_augment.clip_views, static_argnums=2, compiler_options=FAST_COMPILE)


def _uint8_clips(batch=4, frames=3, side=8, channels=3, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (batch, frames, side, side, channels),
                                              dtype=np.uint8)


def test_every_frame_is_the_image_view_with_the_clips_draw():
  clips = _uint8_clips()
  rng = jax.random.key(5)
  views = augment_clip_batch(rng, clips, FULL)
  assert views.shape == (4, 3, 6, 6, 3) and views.dtype == jnp.float32
  assert float(views.min()) >= 0.0 and float(views.max()) <= 1.0
  # Frame t of clip i is augment_view(fold_in(rng, i), frame t): the same crop, flip, jitter,
  # grayscale, blur and solarize draws for every frame of a clip.
  for t in range(3):
    np.testing.assert_allclose(views[:, t], augment_batch(rng, clips[:, t], FULL), atol=1e-6)
  # A 1-frame clip is the image's view.
  one_frame = augment_clip_batch(rng, clips[:, :1], FULL)
  np.testing.assert_allclose(one_frame[:, 0], augment_batch(rng, clips[:, 0], FULL), atol=1e-6)


def test_frames_related_before_are_related_after():
  image = np.random.default_rng(1).random((4, 1, 8, 8, 1)).astype(np.float32)
  # Frames: the image, the same image, the image at half brightness.
  clips = np.concatenate([image, image, 0.5 * image], axis=1)
  views = np.asarray(augment_clip_batch(jax.random.key(2), clips, FULL))
  assert views.shape == (4, 3, 6, 6, 1)
  np.testing.assert_array_equal(views[:, 0], views[:, 1])
  # Crop, resampling and flip are linear: the same geometry scales with the brightness.
  geometric = np.asarray(augment_clip_batch(jax.random.key(2), clips, GEOMETRY))
  np.testing.assert_allclose(geometric[:, 2], 0.5 * geometric[:, 0], atol=1e-6)
  # ... and the examples got different crops (the same image in each example).
  same_image = np.broadcast_to(clips[:1], clips.shape)
  per_example = np.asarray(augment_clip_batch(jax.random.key(2), same_image, GEOMETRY))
  assert all(np.abs(per_example[0] - per_example[i]).max() > 1e-3 for i in range(1, 4))


def test_clip_views_fold_the_view_index():
  clips = _uint8_clips()
  rng = jax.random.key(9)
  views = clip_views(rng, (clips, clips), (FULL, FULL))
  assert len(views) == 2 and views[0].shape == (4, 3, 6, 6, 3)
  for v in range(2):
    np.testing.assert_allclose(views[v], augment_clip_batch(jax.random.fold_in(rng, v), clips,
                                                            FULL), atol=1e-6)
  assert np.abs(np.asarray(views[0]) - np.asarray(views[1])).max() > 1e-2
  with pytest.raises(ValueError, match="2 clips per video for 1 view configs"):
    video_augment.clip_views(rng, (clips, clips), (FULL,))
  with pytest.raises(ValueError, match=r"expected clips \[B, T, H, W, 1 or 3\]"):
    video_augment.augment_clip_batch(rng, clips[:, 0], FULL)


def test_center_clip_view_is_center_view_per_frame():
  clips = _uint8_clips(batch=2, frames=3, side=10)[:, :, :, :9]   # H=10, W=9
  mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.5)
  views = video_augment.center_clip_view(clips, 4, mean, std, crop_fraction=0.8)
  assert views.shape == (2, 3, 4, 4, 3) and views.dtype == jnp.float32
  for t in range(3):
    np.testing.assert_allclose(
        views[:, t], augment.center_view(clips[:, t], 4, mean, std, crop_fraction=0.8),
        atol=1e-6)
