"""On-device, temporally consistent augmentation of clips: one random draw per clip.

A clip is [T, H, W, C] (time first; batches [B, T, H, W, C]), uint8 or float in [0, 1]. A
clip's view is the image view of `jax_ssl/data/augment.py` with ONE crop box, flip, colour
jitter (factors and op order), grayscale, blur and solarize draw per clip, applied to every
frame: the clip keeps its motion and its frames stay one video. This is what the video SSL
reference code does:
 * CVRL (tensorflow/models official/projects/video_ssl/ops/video_ssl_preprocess_ops.py,
  `random_color_jitter_3d`, `random_blur`, and official/vision/ops/preprocess_ops_3d.py
  `crop_image`/`random_flip_left_right` on the whole [T, H, W, C] tensor): one draw per clip;
  its paper (Qian et al. 2021, section 3.2) calls it "temporally consistent spatial
  augmentation" and shows per-frame-independent augmentation hurts (table 7).
 * VideoMAE / SlowFast / pytorchvideo apply torchvision transforms to the stacked clip
  tensor, which draw their parameters once per call.
Per-frame statistics stay per frame, as in both references: the contrast blend's target is
the frame's mean luma (tf.image.adjust_contrast and torchvision's adjust_contrast on a stacked
clip both take the mean over each image's H, W).

Randomness: the per-clip uniforms are exactly `augment.augment_view`'s for the same key (the
same `_SLOTS` vector, `_sample_crop_box` and `_photometric`, imported from augment.py, whose
private helpers this module reuses rather than copies), so a 1-frame clip's view equals the
image view. Example i uses ``jax.random.fold_in(rng, i)`` and view v ``fold_in(rng, v)``, as
`augment.augment_batch` / `augment.make_views`: a clip's view depends neither on the batch
size nor on the sharding. The config is static (hashable), so everything jits.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jax_ssl.data.augment import AugmentConfig, _photometric, _sample_crop_box, _SLOTS
from jax_ssl.data.geometry import center_view, resized_crop
from jax_ssl.data.photometric import to_unit_float

__all__ = ["augment_clip", "augment_clip_batch", "clip_views", "center_clip_view"]


def _check_clips(clips: jax.Array, ndim: int, what: str) -> None:
  if clips.ndim != ndim or clips.shape[-1] not in (1, 3):
    layout = "[B, T, H, W, 1 or 3]" if ndim == 5 else "[T, H, W, 1 or 3]"
    raise ValueError(f"expected {what} {layout}, got shape {clips.shape}")


def augment_clip(rng: jax.Array, clip: ArrayLike, config: AugmentConfig) -> jax.Array:
  """One random view of ONE clip: the same crop / flip / jitter / ... for all its frames.

  Args:
   rng: a PRNG key for this clip.
   clip: [T, H, W, C] float in [0, 1] (or uint8, divided by 255), C in {1, 3}.
   config: the (static) augmentation config.

  Returns:
   [T, S, S, C] float32, S = config.output_size; frame t is what `augment.augment_view(rng,
   clip[t], config)` returns (the same key for every frame, hence the same draws).
  """
  clip = to_unit_float(clip)
  _check_clips(clip, 4, "one clip")
  _, height, width, _ = clip.shape
  # augment_view's one draw, shared by the frames (vmap closes over it).
  uniforms = jax.random.uniform(rng, (len(_SLOTS),))
  box = _sample_crop_box(uniforms, height, width, config.crop_scale, config.crop_ratio)

  def frame_view(frame: jax.Array) -> jax.Array:
    return _photometric(uniforms, resized_crop(frame, *box, config.output_size), config)

  return jax.vmap(frame_view)(clip)


def augment_clip_batch(rng: jax.Array, clips: ArrayLike, config: AugmentConfig) -> jax.Array:
  """Independent random views of a batch of clips: [B, T, H, W, C] uint8 or float in [0, 1]
  -> [B, T, S, S, C] float32, one draw per clip (all its frames share it).

  Clip i uses ``jax.random.fold_in(rng, i)``. Jit with ``static_argnums=2``.
  """
  clips = to_unit_float(clips)
  _check_clips(clips, 5, "clips")
  keys = jax.vmap(lambda index: jax.random.fold_in(rng, index))(jnp.arange(clips.shape[0]))
  return jax.vmap(augment_clip, in_axes=(0, 0, None))(keys, clips, config)


def clip_views(rng: jax.Array, clips: Sequence[ArrayLike],
               configs: Sequence[AugmentConfig]) -> list[jax.Array]:
  """The step's views of a video batch: view v is `augment_clip_batch(fold_in(rng, v),
  clips[v], configs[v])`.

  Args:
   rng: PRNG key for the step.
   clips: one [B, T, H, W, C] batch per view (the host sampler's V clips per video; the
    clips of a view may differ in T between views, e.g. different num_frames).
   configs: one AugmentConfig per view (a tuple to jit it as a static argument).

  Returns:
   A list with [B, T_v, S_v, S_v, C] float32 per view.
  """
  if len(clips) != len(configs):
    raise ValueError(f"{len(clips)} clips per video for {len(configs)} view configs")
  return [augment_clip_batch(jax.random.fold_in(rng, view), view_clips, config)
          for view, (view_clips, config) in enumerate(zip(clips, configs))]


def center_clip_view(clips: ArrayLike, output_size: int, mean: Sequence[float] | None = None,
                     std: Sequence[float] | None = None, *,
                     crop_fraction: float = 1.0) -> jax.Array:
  """The evaluation's view of clips: [B, T, H, W, C] uint8/float -> [B, T, S, S, C] float32,
  each frame transformed as `augment.center_view` transforms an image (central square,
  anti-aliased bilinear resize to S, optional (x - mean) / std)."""
  clips = to_unit_float(clips)
  _check_clips(clips, 5, "clips")
  batch, frames, height, width, channels = clips.shape
  views = center_view(clips.reshape(batch * frames, height, width, channels), output_size,
                      mean, std, crop_fraction=crop_fraction)
  return views.reshape(batch, frames, *views.shape[1:])
