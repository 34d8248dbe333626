"""Tests for jax_ssl.data.clips: host clip sampling (numpy only, no compilation)."""

import math

import numpy as np
import pytest

from jax_ssl.data import clips
from jax_ssl.data.clips import ClipSampling
from jax_ssl.errors import ConfigError


def _video(num_frames=40):
  """Frame t holds the value t: a clip's pixels are its frame indices."""
  return np.broadcast_to(np.arange(num_frames, dtype=np.uint8)[:, None, None, None],
                         (num_frames, 2, 2, 1)).copy()


def _indices(sample):
  return sample["clips"][:, :, 0, 0, 0].astype(int)


def _sample(sampling, index, num_frames=40, seed=0):
  return clips.sample_clips(_video(num_frames), sampling, seed=seed, index=index)


def test_deterministic_in_seed_and_index_and_clips_hold_their_frames():
  sampling = ClipSampling(num_frames=4, stride=2, num_clips=2, speeds=(1, 2))
  first = _sample(sampling, index=7)
  again = _sample(sampling, index=7)
  for key in ("clips", "speeds", "starts"):
    np.testing.assert_array_equal(first[key], again[key])
  assert first["clips"].shape == (2, 4, 2, 2, 1) and first["clips"].dtype == np.uint8
  assert first["speeds"].dtype == np.int32 and first["starts"].dtype == np.int32
  draws = [_sample(sampling, index=i) for i in range(8)]
  assert len({tuple(d["starts"]) + tuple(d["speeds"]) for d in draws}) > 4
  other_seed = [clips.sample_clips(_video(), sampling, seed=1, index=i) for i in range(8)]
  assert [tuple(d["starts"]) for d in draws] != [tuple(d["starts"]) for d in other_seed]
  for d in draws:   # frame k of clip v is start + k * stride * speed
    expected = d["starts"][:, None] + 2 * d["speeds"][:, None] * np.arange(4)
    np.testing.assert_array_equal(_indices(d), expected)
    assert (expected[:, -1] <= 39).all()   # long video: every clip fits


def _reference_cvrl_interval(u, max_offset):
  """tensorflow/models video_ssl_preprocess_ops.sample_ssl_sequence's bisection (power=1),
  ported to numpy."""
  def cdf(k):
    return -k ** 2 / max_offset ** 2 + 2 * k / max_offset
  k_low, k_up, k = 0.0, float(max_offset), float(max_offset // 2)
  while abs(k_up - k_low) > 1.0:
    if cdf(k) > u:
      k_low, k_up, k = k_low, k, (k + k_low) // 2
    else:
      k_low, k_up, k = k, k_up, (k_up + k) // 2
  return int(k)


@pytest.mark.parametrize("max_offset", [1, 2, 5, 10, 37, 120])
def test_cvrl_interval_equals_the_reference_bisection(max_offset):
  for u in np.random.default_rng(max_offset).random(500):
    assert clips._cvrl_interval(u, max_offset) == _reference_cvrl_interval(u, max_offset)


def test_cvrl_interval_histogram_matches_the_reference_density():
  num_frames, video_frames, samples = 4, 40, 20000
  max_offset = video_frames - (num_frames - 1)     # the reference's max_offset
  sampling = ClipSampling(num_frames=num_frames, starts="cvrl")
  video = _video(video_frames)[:, :1, :1]
  starts = np.array([clips.sample_clips(video, sampling, seed=3, index=i)["starts"]
                     for i in range(samples)])
  assert starts.min() >= 0 and starts.max() <= max_offset - 1   # both clips fit
  intervals = np.abs(starts[:, 0] - starts[:, 1])
  counts = np.bincount(intervals, minlength=max_offset)
  # P(delta = j) = F(j + 1) - F(j), F(x) = 2x / M - x^2 / M^2: density 2 / M (1 - x / M).
  edges = np.arange(max_offset + 1)
  cdf = 2 * edges / max_offset - edges ** 2 / max_offset ** 2
  expected = np.diff(cdf)
  tolerance = 5 * np.sqrt(expected * (1 - expected) / samples)   # 5 binomial sigmas per bin
  np.testing.assert_array_less(np.abs(counts / samples - expected), tolerance)
  # Independent uniform starts would put 1 / M at interval 0, about half of CVRL's (2M - 1) / M^2.
  assert counts[0] / samples > 1.5 / max_offset
  # The pair is shuffled: the later clip comes first half of the time.
  later_first = np.mean(starts[intervals > 0, 0] > starts[intervals > 0, 1])
  assert abs(later_first - 0.5) < 5 * math.sqrt(0.25 / np.sum(intervals > 0))


def test_rspnet_pattern():
  stride, num_frames, samples = 2, 4, 600
  sampling = ClipSampling(num_frames=num_frames, stride=stride, num_clips=3, speeds=(1, 2, 4),
                          speed_pattern="rspnet")
  sampling.validate()
  pair_is_normal, others = [], set()
  for i in range(samples):
    d = _sample(sampling, index=i, num_frames=80)
    speeds, starts = d["speeds"], d["starts"]
    assert speeds[0] == speeds[1] != speeds[2]       # query and key share a speed
    assert 1 in (speeds[0], speeds[2])               # the pair is {normal, other}
    assert starts[1] == starts[2]                    # other-speed key: the key's raw clip
    fastest = stride * max(speeds) * (num_frames - 1)
    assert starts.max() + fastest <= 79              # starts drawn for the faster speed
    np.testing.assert_array_equal(
        _indices(d), starts[:, None] + stride * speeds[:, None] * np.arange(num_frames))
    pair_is_normal.append(speeds[0] == 1)
    others.add(int(max(speeds)))
  assert others == {2, 4}
  assert abs(np.mean(pair_is_normal) - 0.5) < 5 * math.sqrt(0.25 / samples)


def test_same_and_independent_patterns():
  same = ClipSampling(num_frames=4, num_clips=3, starts="same", speeds=(1, 3),
                      speed_pattern="same")
  independent = ClipSampling(num_frames=4, num_clips=3, speeds=(1, 3))
  mixed = 0
  for i in range(40):
    d = _sample(same, index=i)
    assert len(set(d["starts"])) == 1 and len(set(d["speeds"])) == 1
    mixed += len(set(_sample(independent, index=i)["speeds"])) > 1
  assert mixed > 10   # P(all 3 equal) = 1/4


def test_frames_past_the_end_are_clamped():
  np.testing.assert_array_equal(clips.clip_at(_video(5), 3, 4, 1)[:, 0, 0, 0], [3, 4, 4, 4])
  for starts in ("uniform", "cvrl", "same"):
    sampling = ClipSampling(num_frames=4, stride=2, starts=starts)   # span 7 > 5 frames
    for i in range(5):
      d = _sample(sampling, index=i, num_frames=5)
      np.testing.assert_array_equal(d["starts"], [0, 0])
      np.testing.assert_array_equal(_indices(d), [[0, 2, 4, 4]] * 2)


def test_eval_clip_starts():
  np.testing.assert_array_equal(clips.eval_clip_starts(40, 10, 1), [15])   # centred
  starts = clips.eval_clip_starts(40, 10, 4)
  np.testing.assert_array_equal(starts, [0, 10, 20, 30])
  assert starts[-1] + 10 - 1 == 39 and starts.dtype == np.int32            # ends at the end
  # linspace(0, 31, 3) = [0, 15.5, 31], rounded half to even as RSPNet's ndarray.round().
  np.testing.assert_array_equal(clips.eval_clip_starts(41, clips.clip_span(4, 3), 3), [0, 16, 31])
  np.testing.assert_array_equal(clips.eval_clip_starts(5, 10, 3), [0, 0, 0])


@pytest.mark.parametrize("changes, message", [
    (dict(num_frames=0), "config.clips.num_frames=0; must be > 0"),
    (dict(stride=-1), "config.clips.stride=-1; must be > 0"),
    (dict(starts="random"), "config.clips.starts='random' is unknown; use one of 'uniform'"),
    (dict(speed_pattern="fast"), "config.clips.speed_pattern='fast' is unknown"),
    (dict(speeds=(1, 1)), "config.clips.speeds=(1, 1); give distinct positive integer"),
    (dict(speeds=(1, 0.5)), "config.clips.speeds=(1, 0.5); give distinct positive integer"),
    (dict(speeds=(1, 2), speed_pattern="rspnet"),
     "the method takes 2 clips (views) per video; use a 3-view method or set "
     "config.clips.speed_pattern='independent'"),
    (dict(num_clips=3, speed_pattern="rspnet"), "set config.clips.speeds=(1, 2)"),
    (dict(num_clips=3, starts="cvrl"),
     "the method takes 3 clips (views) per video; use a 2-view method or set "
     "config.clips.starts='uniform'"),
])
def test_validate_names_the_key_and_the_fix(changes, message):
  ClipSampling().validate()
  ClipSampling(num_clips=3, speeds=(1, 2), speed_pattern="rspnet", starts="cvrl").validate()
  with pytest.raises(ConfigError) as error:
    ClipSampling(**changes).validate()
  assert message in str(error.value) and "\n" not in str(error.value)
