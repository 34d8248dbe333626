"""Moving Fashion-MNIST: Fashion-MNIST garments moving and bouncing in a 64x64 frame.

An embedded, offline video dataset (no download): built from the same Debian IDX files as
`fashion_mnist_local` (`apt-get install -y dataset-fashion-mnist`), train/test from the
Fashion-MNIST train/test splits (60000 / 10000 videos), array_record, built in seconds on
first use by `pipeline.prepare`.

What a record stores and what a reader gets. Storing 60000 rendered 20x64x64 clips would
take ~5 GB and minutes to write, so a record stores what renders its clip: the garment
images ("garments", uint8 [K, 28, 28]), their classes ("garment_labels", [K]), the
normalised start positions ("start", float32 [K, 2]) and velocities ("velocity", float32
[K, 2], per frame), both (row, column) as in TFDS's moving_sequence, plus the labels. The
source of `pipeline.load_source("moving_fashion_mnist", split, ...)` renders the clip on
read (`RenderedVideos`, about 0.1 ms a clip): records {"video": uint8 [20, 64, 64, 1],
"label", "motion"}.

Motion (`render`): the bounce formula of TFDS's `tfds.video.moving_sequence` (after
Srivastava et al. 2015, "Unsupervised Learning of Video Representations using LSTMs"):
position p(t) = p0 + v t in [0, 1]^2 normalised units, reflected at the borders by
x -> min(x mod 2, 2 - x mod 2), and the garment's top-left pixel is
round(p(t) * (64 - 28)) (round half to even, as tf.math.round). With two objects the frame is
the pixel-wise maximum of the two garments (TFDS's moving-MNIST example reduces with max).
TFDS draws a uniform start and a uniform direction at a fixed speed (0.1); here the start is
uniform too, and direction and speed come from the motion class (below).

Labels, for evaluations that need appearance and motion:
 - "label": the garment class (Fashion-MNIST's 10 classes). With two objects both garments
   are of that class (object 1 is another image of object 0's class, from the same split),
   so the label belongs to the whole clip.
 - "motion": one of 6 motion classes = 3 direction bins x 2 speed bins, a property of the
   whole video that every sub-clip carries despite bounces: a bounce flips the sign of one
   velocity component, so the class is defined on (|v_row|, |v_col|), which never changes.
   Direction: the angle of (|v_col|, |v_row|) from the horizontal, "horizontal" 0-20 deg,
   "diagonal" 35-55 deg, "vertical" 70-90 deg; speed |v| (normalised units per frame, times
   36 for pixels per frame): "slow" 0.04-0.07 (1.4-2.5 px), "fast" 0.10-0.14 (3.6-5.0 px;
   TFDS's default 0.1 is the slowest fast speed). The gaps between the bins keep the classes
   apart after the positions are rounded to pixels. motion = 3 * speed_bin + direction_bin;
   the classes are balanced (a seeded permutation of each split's indices, mod 6), the signs
   of the two components are uniform, so all four diagonal directions occur in each class.
   With two objects both move with the video's motion class (each its own angle, speed,
   signs and start within it).

Determinism: every number of split s comes from one generator,
np.random.default_rng((seed, s)), drawn for all records at once (`_generate_examples`),
so record i of split s is the same for every build of the same IDX files.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from jax_ssl.data.fashion_mnist_local import builder as fashion_mnist

NUM_FRAMES = 20
FRAME_SIZE = 64
GARMENT_SIZE = 28
# Normalised speed bins (fraction of the 64 - 28 = 36 free pixels per frame) and direction
# bins (degrees from the horizontal of (|v_col|, |v_row|)); see the module docstring.
SPEED_BINS = ((0.04, 0.07), (0.10, 0.14))
DIRECTION_BINS = ((0.0, 20.0), (35.0, 55.0), (70.0, 90.0))
SPEED_NAMES, DIRECTION_NAMES = ("slow", "fast"), ("horizontal", "diagonal", "vertical")
MOTION_NAMES = tuple(f"{speed}_{direction}" for speed in SPEED_NAMES
                     for direction in DIRECTION_NAMES)
_SPLIT_NUMBER = {"train": 0, "test": 1}


@dataclasses.dataclass  # (tfds.core.BuilderConfig is not frozen)
class MovingFashionMnistConfig(tfds.core.BuilderConfig):
  """num_objects garments per video, num_frames frames, records drawn from `seed`."""
  num_objects: int = 1
  num_frames: int = NUM_FRAMES
  seed: int = 0


def motion_class(velocity: np.ndarray) -> np.ndarray:
  """Motion class(es) of (row, column) velocities [..., 2] (the bins of the module docstring);
  -1 where a velocity falls between the bins. Bounces do not change it."""
  velocity = np.abs(np.asarray(velocity, np.float64))
  speed = np.linalg.norm(velocity, axis=-1)
  angle = np.degrees(np.arctan2(velocity[..., 0], velocity[..., 1]))
  speed_bin = np.full(speed.shape, -1)
  for index, (low, high) in enumerate(SPEED_BINS):
    speed_bin[(speed >= low - 1e-6) & (speed <= high + 1e-6)] = index
  direction_bin = np.full(angle.shape, -1)
  for index, (low, high) in enumerate(DIRECTION_BINS):
    direction_bin[(angle >= low - 1e-4) & (angle <= high + 1e-4)] = index
  return np.where((speed_bin >= 0) & (direction_bin >= 0), 3 * speed_bin + direction_bin, -1)


def sample_motions(rng: np.random.Generator, motions: np.ndarray, num_objects: int
                   ) -> tuple[np.ndarray, np.ndarray]:
  """(start, velocity), float32 [len(motions), num_objects, 2] each, (row, column): a uniform
  start in [0, 1)^2 (as moving_sequence), a speed and an angle uniform in each video's
  motion class's bins, random signs of the two components."""
  motions = np.asarray(motions)
  shape = (len(motions), num_objects)
  speed_bins, direction_bins = np.asarray(SPEED_BINS), np.radians(DIRECTION_BINS)
  start = rng.uniform(size=(*shape, 2))
  speed_low, speed_high = speed_bins[motions // 3].T
  angle_low, angle_high = direction_bins[motions % 3].T
  speed = rng.uniform(speed_low[:, None], speed_high[:, None], size=shape)
  angle = rng.uniform(angle_low[:, None], angle_high[:, None], size=shape)
  signs = rng.choice([-1.0, 1.0], size=(*shape, 2))
  velocity = signs * speed[..., None] * np.stack([np.sin(angle), np.cos(angle)], axis=-1)
  return start.astype(np.float32), velocity.astype(np.float32)


def trajectory(start: np.ndarray, velocity: np.ndarray, num_frames: int) -> np.ndarray:
  """Top-left pixel (row, column) of each garment in each frame, int [K, num_frames, 2].

  moving_sequence's `_get_linear_trajectory`, `_bounce_to_bbox` and the rounding of
  `image_as_moving_sequence`, in float32 as TFDS computes them."""
  t = np.arange(num_frames, dtype=np.float32)
  points = (np.asarray(start, np.float32)[:, None, :]
            + np.asarray(velocity, np.float32)[:, None, :] * t[None, :, None])
  points = points % np.float32(2)
  points = np.minimum(np.float32(2) - points, points)
  return np.round(points * np.float32(FRAME_SIZE - GARMENT_SIZE)).astype(np.int64)


def render(garments: np.ndarray, start: np.ndarray, velocity: np.ndarray,
           num_frames: int = NUM_FRAMES) -> np.ndarray:
  """The clip of one record: uint8 [num_frames, 64, 64, 1], black background, garments
  [K, 28, 28] at `trajectory`'s positions, overlaps by pixel-wise maximum."""
  positions = trajectory(start, velocity, num_frames)
  video = np.zeros((num_frames, FRAME_SIZE, FRAME_SIZE), np.uint8)
  for garment, path in zip(np.asarray(garments, np.uint8), positions):
    for frame, (row, column) in zip(video, path):
      window = frame[row:row + GARMENT_SIZE, column:column + GARMENT_SIZE]
      np.maximum(window, garment, out=window)
  return video[..., None]


class RenderedVideos:
  """A data source of records {"video": uint8 [T, 64, 64, 1], "label", "motion"} rendered on
  read from a Moving Fashion-MNIST TFDS data source (what `pipeline.load_source` returns).
  Picklable (grain's worker processes), random access like the source it wraps."""

  def __init__(self, source: Any, num_frames: int):
    self.source, self.num_frames = source, num_frames

  @property
  def dataset_info(self):  # read by pipeline.CheckedSource to name a damaged record's file
    return getattr(self.source, "dataset_info", None)

  def __len__(self) -> int:
    return len(self.source)

  def _render(self, record: dict[str, Any]) -> dict[str, Any]:
    return {"video": render(record["garments"], record["start"], record["velocity"],
                            self.num_frames),
            "label": record["label"], "motion": record["motion"]}

  def __getitem__(self, index):
    return self._render(self.source[index])

  def __getitems__(self, indices):
    return [self._render(record) for record in self.source.__getitems__(indices)]

  def __repr__(self) -> str:
    return f"RenderedVideos({self.source!r}, num_frames={self.num_frames})"


class Builder(fashion_mnist.Builder):
  """Moving Fashion-MNIST from local IDX files; registered as `moving_fashion_mnist`.

  Configs: `one_object` (the default) and `two_objects`; `pipeline.load_source` gives
  rendered videos (`rendered_source`).
  """

  name = "moving_fashion_mnist"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Built from Debian's dataset-fashion-mnist IDX files."}
  BUILDER_CONFIGS = [
      MovingFashionMnistConfig(name="one_object", num_objects=1,
                               description="One garment per video."),
      MovingFashionMnistConfig(name="two_objects", num_objects=2,
                               description="Two garments of one class per video."),
  ]

  def _info(self) -> tfds.core.DatasetInfo:
    objects = self.builder_config.num_objects
    return self.dataset_info_from_configs(
        description=__doc__.split("\n\n")[0],
        features=tfds.features.FeaturesDict({
            "garments": tfds.features.Tensor(shape=(objects, GARMENT_SIZE, GARMENT_SIZE),
                                             dtype=np.uint8),
            "garment_labels": tfds.features.Tensor(shape=(objects,), dtype=np.int64),
            "start": tfds.features.Tensor(shape=(objects, 2), dtype=np.float32),
            "velocity": tfds.features.Tensor(shape=(objects, 2), dtype=np.float32),
            "label": tfds.features.ClassLabel(names=fashion_mnist.CLASS_NAMES),
            "motion": tfds.features.ClassLabel(names=MOTION_NAMES),
        }),
        # What readers get (`rendered_source`): pipeline.is_video / video_shape read it.
        metadata=tfds.core.MetadataDict(
            video_shape=[self.builder_config.num_frames, FRAME_SIZE, FRAME_SIZE, 1]),
        homepage="https://github.com/zalandoresearch/fashion-mnist",
    )

  def rendered_source(self, source: Any) -> RenderedVideos:
    """`source` (this dataset's TFDS data source) as rendered videos (load_source's hook)."""
    return RenderedVideos(source, self.builder_config.num_frames)

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing is downloaded.
    fashion_mnist.check_source_dir(self._source_dir)
    return {split: self._generate_examples(split) for split in _SPLIT_NUMBER}

  def _generate_examples(self, split: str):
    config = self.builder_config
    image_file, label_file = fashion_mnist._FILES[split]  # pylint: disable=protected-access
    images = fashion_mnist.read_idx(os.path.join(self._source_dir, image_file))
    labels = fashion_mnist.read_idx(os.path.join(self._source_dir, label_file)).astype(np.int64)
    if len(images) != len(labels):
      raise ValueError(f"{split}: {len(images)} images but {len(labels)} labels")
    # One generator per split draws every record's numbers at once (a per-record generator
    # doubled the build time): record i of split s is the same for every build.
    rng = np.random.default_rng((config.seed, _SPLIT_NUMBER[split]))
    motions = rng.permutation(len(images)) % len(MOTION_NAMES)  # balanced
    starts, velocities = sample_motions(rng, motions, config.num_objects)
    # Objects 1..K-1: other images of object 0's class (so "label" is the whole clip's).
    same_class = [np.flatnonzero(labels == c) for c in range(len(fashion_mnist.CLASS_NAMES))]
    counts = np.array([len(members) for members in same_class])
    picks = np.floor(rng.uniform(size=(len(images), config.num_objects - 1))
                     * counts[labels][:, None]).astype(np.int64)
    for index in range(len(images)):
      members = same_class[labels[index]]
      chosen = np.concatenate([[index], members[picks[index]]]).astype(np.int64)
      yield index, {"garments": images[chosen], "garment_labels": labels[chosen],
                    "start": starts[index], "velocity": velocities[index],
                    "label": int(labels[index]), "motion": int(motions[index])}
