"""Host-side clip sampling: which frames of a video each of its V clips holds.

A video is [N, H, W, C] (time first). A clip is T = `num_frames` frames taken every
`stride * speed` frames from a start frame; it covers span = (T - 1) * stride * speed + 1
frames. `sample_clips` draws the V clips of one video (their playback speeds, then their
starts) for training, `eval_clip_starts` places evaluation clips evenly, `clip_at` gathers
the frames.

Randomness: the example at position `index` of the global stream (grain's `map_with_index`
index, epoch e position i: e * N + i) draws from
``numpy.random.default_rng([seed, _CLIP_STREAM, index])`` and from nothing else, so a resumed
run, any number of devices or processes, and any number of grain workers see the same clips
(the same scheme as `jax_ssl/data/host_views.py`). The draws are made in a fixed order and
number whatever the video's length (speeds, then starts), so a short video never shifts the
draws of the clips after it.

Starts (`ClipSampling.starts`):
 * "uniform": each clip's start independently uniform over the starts that keep it inside
  the video (RSPNet's `RandomStrideCrop`, datasets/transforms_video/transforms_temporal.py;
  SlowFast's `get_start_end_idx` with clip_idx=-1, slowfast/datasets/decoder.py; rho-BYOL
  samples its rho clips this way).
 * "cvrl": CVRL's sampler for its two clips, `sample_ssl_sequence` in tensorflow/models
  official/projects/video_ssl/ops/video_ssl_preprocess_ops.py: with M = N - (T - 1) * step
  valid starts, the interval between the two starts is delta = floor(X), X drawn with the
  linearly decreasing density p(x) = 2 / M * (1 - x / M) on [0, M) (the reference inverts
  the CDF F(x) = 2x / M - x^2 / M^2 by a bisection over integers, which returns the largest
  integer k with F(k) <= u, i.e. floor(F^-1(u)); `_cvrl_interval` computes it in closed form,
  F^-1(u) = M (1 - sqrt(1 - u)), and the tests check the two agree). The first start is
  uniform over [0, M - delta), the second is first + delta, and the pair is shuffled
  (`tf.random.shuffle`). Short clips of one video are thus more often close in time. (So
  are two independent uniform starts: their interval has P(j) = 2 (M - j) / M^2 for j >= 1
  and 1 / M at j = 0, against CVRL's (2M - 2j - 1) / M^2; the laws differ mostly at j = 0,
  where CVRL puts about twice the mass.)
 * "same": one start for all clips (e.g. clips that differ only in speed).

Speeds (`ClipSampling.speeds`, `ClipSampling.speed_pattern`):
 * "independent": each clip's speed uniform over `speeds`, independently (playback-speed
  classification; with the default speeds=(1,) every clip plays at normal speed).
 * "same": one speed, uniform over `speeds`, for all clips of the video.
 * "rspnet": RSPNet's clip triple (`MoCoDiffLoss._diff_speed`, moco/builder_diffspeed_diffloss.py
  of PeihaoChen/RSPNet). Clips 0 and 1 (the query and its positive key) share speed a, clip
  2 (the other-speed key) plays at speed b != a and starts where clip 1 starts (the
  reference subsamples the same raw key clip at the other speed). The pair {a, b} is
  {speeds[0], s} with s uniform over speeds[1:] (the reference's normal speed 1 and
  `random.choice(diff_speed)`), and a = speeds[0] with probability 1/2 (the reference puts
  a random half of the batch at each). All starts are drawn for the span of the faster
  speed, as the reference crops raw clips long enough for it. Deviations: the reference
  draws the fast speed once per batch and splits the batch exactly in half; here both are
  per video (the same marginals), so that a video's clips depend only on (seed, index).

Frames past the end: clamped to the last frame, as SlowFast (`temporal_sampling`:
``torch.clamp(index, 0, N - 1)``) and VideoMAE (its loaders stop advancing the offset at the
last frame) do. CVRL (`_sample_or_pad_sequence_indices` tiles the video) and RSPNet
(`fallback_select`: ``arange(size) % num_frames``) loop instead; a loop jumps back in time
mid-clip, which would corrupt the very motion the speed and order tasks learn. When a clip
does not fit the video every start is 0 (SlowFast: delta = max(N - span, 0)); CVRL draws
both starts uniformly over the video then, which only makes sense with looping.

References:
 Qian et al., "Spatiotemporal Contrastive Video Representation Learning" (CVRL), CVPR 2021,
 arXiv:2008.03800, section 3.2 (temporal interval sampling).
 Chen et al., "RSPNet: Relative Speed Perception for Unsupervised Video Representation
 Learning", AAAI 2021, arXiv:2011.07949.
 Feichtenhofer et al., "A Large-Scale Study on Unsupervised Spatiotemporal Representation
 Learning" (rho-BYOL), CVPR 2021, arXiv:2104.14558.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from jax_ssl.config.typed import check, check_positive

__all__ = ["ClipSampling", "STARTS", "SPEED_PATTERNS", "sample_clips", "eval_clip_starts",
           "clip_at", "clip_span"]

STARTS = ("uniform", "cvrl", "same")
SPEED_PATTERNS = ("independent", "same", "rspnet")
_CLIP_STREAM = 0x636C6970  # "clip": keeps these streams apart from any other seeded by `seed`
_SECTION = "config.clips"


@dataclasses.dataclass(frozen=True)
class ClipSampling:
  """`clips.*`: how the host cuts a video's V clips (see the module docstring).

  Attributes:
   num_frames: T, frames per clip.
   stride: frame step at speed 1; a clip at speed s takes every stride * s-th frame.
   num_clips: V, clips per video: the method's view count (config/build.py sets it, not
    the user); "rspnet" needs 3, "cvrl" 2 (with "rspnet": 2 distinct starts).
   starts: "uniform" (independent), "cvrl" (CVRL's decreasing-density interval sampler),
    "same" (one start for all clips).
   speeds: the playback speeds (distinct positive integers); "rspnet": speeds[0] is the
    normal speed, the other speed is drawn from speeds[1:].
   speed_pattern: "independent", "same" or "rspnet" (how the clips draw their speeds).
  """

  num_frames: int = 16
  stride: int = 1
  num_clips: int = 2
  starts: str = "uniform"
  speeds: tuple[int, ...] = (1,)
  speed_pattern: str = "independent"

  def __post_init__(self):
    object.__setattr__(self, "speeds", tuple(self.speeds))

  def validate(self) -> None:
    check_positive(_SECTION, self, "num_frames", "stride", "num_clips")
    check(self.starts in STARTS, f"{_SECTION}.starts={self.starts!r} is unknown; use one of "
                                 f"{', '.join(map(repr, STARTS))}")
    check(self.speed_pattern in SPEED_PATTERNS,
          f"{_SECTION}.speed_pattern={self.speed_pattern!r} is unknown; use one of "
          f"{', '.join(map(repr, SPEED_PATTERNS))}")
    integers = all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0
                   for s in self.speeds)
    check(len(self.speeds) > 0 and integers and len(set(self.speeds)) == len(self.speeds),
          f"{_SECTION}.speeds={self.speeds!r}; give distinct positive integer playback speeds, "
          f"e.g. (1,) or (1, 2)")
    if self.speed_pattern == "rspnet":
      # num_clips is the method's view count, not a key the user sets: name what they can change.
      check(self.num_clips == 3,
            f"{_SECTION}.speed_pattern='rspnet' samples RSPNet's 3 clips per video (query, "
            f"same-speed key, other-speed key) but the method takes {self.num_clips} clips "
            f"(views) per video; use a 3-view method or set "
            f"{_SECTION}.speed_pattern='independent'")
      check(len(self.speeds) >= 2,
            f"{_SECTION}.speeds={self.speeds!r} but speed_pattern='rspnet' needs a normal speed "
            f"and at least one other; set {_SECTION}.speeds=(1, 2)")
    if self.starts == "cvrl":
      check(_num_start_draws(self) == 2,
            f"{_SECTION}.starts='cvrl' places CVRL's 2 clips per video but the method takes "
            f"{self.num_clips} clips (views) per video; use a 2-view method or set "
            f"{_SECTION}.starts='uniform'")

  def steps(self, speeds: np.ndarray) -> np.ndarray:
    """Frame step of clips at `speeds`: stride * speed."""
    return self.stride * np.asarray(speeds, dtype=np.int64)


def clip_span(num_frames: int, step: int) -> int:
  """Frames a clip of `num_frames` frames every `step` frames covers: (T - 1) * step + 1
  (RSPNet's `calc_needed_frames`)."""
  return (num_frames - 1) * step + 1


def clip_at(video: np.ndarray, start: int, num_frames: int, step: int) -> np.ndarray:
  """Frames start, start + step, ... (`num_frames` of them) of `video` [N, H, W, C], indices
  past the end clamped to the last frame (module docstring): [T, H, W, C], video's dtype."""
  video = np.asarray(video)
  indices = np.clip(int(start) + int(step) * np.arange(num_frames), 0, video.shape[0] - 1)
  return video[indices]


def eval_clip_starts(num_video_frames: int, span: int, num_clips: int) -> np.ndarray:
  """Evenly spaced starts for evaluation and multi-clip test averaging: int32 [num_clips].

  RSPNet's `EvenNCrop` (and tensorflow/models' `sample_linspace_sequence`): one clip is
  centred, start (N - span) // 2; several are ``linspace(0, N - span, n)`` rounded, the first
  at the beginning and the last ending at the last frame. A video shorter than `span` gives
  start 0 (frames past the end are clamped by `clip_at`). `span` is `clip_span(T, step)`.
  """
  if num_clips < 1:
    raise ValueError(f"num_clips={num_clips}; must be >= 1")
  delta = max(int(num_video_frames) - int(span), 0)
  if num_clips == 1:
    return np.array([delta // 2], np.int32)
  return np.linspace(0, delta, num_clips).round().astype(np.int32)


def sample_clips(video: np.ndarray, sampling: ClipSampling, *, seed: int,
                 index: int) -> dict[str, np.ndarray]:
  """The V training clips of one video, deterministic in (seed, index).

  Args:
   video: [N, H, W, C] frames (uint8 from the datasets), N >= 1.
   sampling: the (validated) clip sampling.
   seed: the run's seed.
   index: the example's position in the global stream (grain's map_with_index index).

  Returns:
   {"clips": [V, T, H, W, C] (video's dtype), "speeds": int32 [V], "starts": int32 [V]};
   clip v holds frames starts[v] + k * stride * speeds[v], k < T, clamped to the last frame.
  """
  video = np.asarray(video)
  if video.ndim != 4 or video.shape[0] < 1:
    raise ValueError(f"expected a video [N >= 1, H, W, C], got shape {video.shape}")
  rng = np.random.default_rng([int(seed) % 2**63, _CLIP_STREAM, int(index)])
  speeds = _draw_speeds(rng, sampling)
  steps = sampling.steps(speeds)
  starts = _draw_starts(rng, video.shape[0], [clip_span(sampling.num_frames, int(step))
                                              for step in steps], sampling)
  clips = np.stack([clip_at(video, start, sampling.num_frames, step)
                    for start, step in zip(starts, steps)])
  return {"clips": clips, "speeds": speeds.astype(np.int32), "starts": starts.astype(np.int32)}


def _num_start_draws(sampling: ClipSampling) -> int:
  """Clips whose starts are drawn: RSPNet's third clip reuses the second's start."""
  return 2 if sampling.speed_pattern == "rspnet" else sampling.num_clips


def _draw_speeds(rng: np.random.Generator, sampling: ClipSampling) -> np.ndarray:
  speeds = np.asarray(sampling.speeds, np.int64)
  if sampling.speed_pattern == "independent":
    return speeds[rng.integers(0, len(speeds), size=sampling.num_clips)]
  if sampling.speed_pattern == "same":
    return np.full(sampling.num_clips, speeds[rng.integers(0, len(speeds))])
  if sampling.speed_pattern == "rspnet":
    other = speeds[1 + rng.integers(0, len(speeds) - 1)]
    pair, odd = (speeds[0], other) if rng.random() < 0.5 else (other, speeds[0])
    return np.array([pair, pair, odd], np.int64)
  raise ValueError(f"unknown speed_pattern {sampling.speed_pattern!r}")


def _cvrl_interval(u: float, max_offset: int) -> int:
  """CVRL's interval between its two clips' starts for the uniform draw `u` in [0, 1):
  floor(F^-1(u)) with F(x) = 2x / M - x^2 / M^2, M = max_offset (the number of valid starts),
  i.e. an integer in [0, M - 1] with linearly decreasing probability (module docstring)."""
  delta = math.floor(max_offset * (1.0 - math.sqrt(1.0 - u)))
  return min(max(delta, 0), max_offset - 1)


def _draw_starts(rng: np.random.Generator, num_video_frames: int, spans: list[int],
                 sampling: ClipSampling) -> np.ndarray:
  """Starts of the clips whose spans are `spans`. Every branch makes the same draws whatever
  the video's length (a clip that does not fit starts at 0)."""
  draws = _num_start_draws(sampling)
  if sampling.speed_pattern == "rspnet":
    spans = [max(spans)] * len(spans)   # RSPNet's raw clips cover the faster speed
  spans = spans[:draws]
  valid = [max(num_video_frames - span + 1, 0) for span in spans]  # starts that fit
  if sampling.starts == "uniform":
    starts = [int(rng.integers(0, max(n, 1))) for n in valid]
  elif sampling.starts == "same":
    starts = [int(rng.integers(0, max(min(valid), 1)))] * draws
  elif sampling.starts == "cvrl":
    max_offset = min(valid)           # the reference's max_offset = N - (T - 1) * stride
    delta = _cvrl_interval(rng.random(), max(max_offset, 1))
    first = int(rng.integers(0, max(max_offset - delta, 1)))
    starts = [first, first + delta] if max_offset >= 1 else [0, 0]
    if rng.random() < 0.5:             # tf.random.shuffle of the pair
      starts = starts[::-1]
  else:
    raise ValueError(f"unknown starts {sampling.starts!r}")
  if sampling.speed_pattern == "rspnet":
    starts = [starts[0], starts[1], starts[1]]
  return np.asarray(starts, np.int64)
