"""Moving Fashion-MNIST: the bounce formula, rendering on read, labels, determinism, splits."""

import os
import pickle
import time

import numpy as np
import pytest

from conftest import make_idx_dataset
from jax_ssl.data import fashion_mnist_local, pipeline
from jax_ssl.data.moving_fashion_mnist import builder as mfm

NUM_TRAIN, NUM_TEST = 120, 30


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  """(source_dir, data_dir, seconds to build both configs) of a tiny IDX dataset."""
  root = tmp_path_factory.mktemp("mfm")
  source_dir = make_idx_dataset(str(root / "idx"), num_train=NUM_TRAIN, num_test=NUM_TEST)
  data_dir = str(root / "tfds")
  start = time.perf_counter()
  pipeline.prepare("moving_fashion_mnist", data_dir=data_dir, source_dir=source_dir)
  pipeline.prepare("moving_fashion_mnist_two_objects", data_dir=data_dir, source_dir=source_dir)
  return source_dir, data_dir, time.perf_counter() - start


def _box(frame: np.ndarray) -> tuple[int, int]:
  """Top-left (row, column) of the nonzero pixels of a [64, 64, 1] frame."""
  rows, columns = np.nonzero(frame[..., 0])
  return int(rows.min()), int(columns.min())


def test_render_follows_the_moving_sequence_bounce_by_hand():
  garment = np.random.default_rng(0).integers(1, 256, size=(1, 28, 28)).astype(np.uint8)
  # Normalised (row, column); the free range is 64 - 28 = 36 pixels.
  start, velocity = np.array([[0.25, 0.9]]), np.array([[0.0625, 0.15]])
  video = mfm.render(garment, start, velocity, num_frames=3)
  assert video.shape == (3, 64, 64, 1) and video.dtype == np.uint8
  # row: 0.25, 0.3125, 0.375 -> 9, 11.25 -> 11, 13.5 -> 14 (half to even, as tf.math.round).
  # column: 0.9 -> 32.4 -> 32; 1.05 bounces to 0.95 -> 34.2 -> 34; 1.2 -> 0.8 -> 28.8 -> 29.
  expected = [(9, 32), (11, 34), (14, 29)]
  for frame, (row, column) in zip(video, expected):
    np.testing.assert_array_equal(frame[row:row + 28, column:column + 28, 0], garment[0])
    assert int(frame.astype(int).sum()) == int(garment.astype(int).sum())  # nothing else drawn
  np.testing.assert_array_equal(mfm.trajectory(start, velocity, 3)[0], expected)
  # Two objects: frame 0 overlaps them (pixel-wise maximum); in frame 1 object 0 has bounced
  # off the top (row -0.5 -> 0.5 -> 18 px) and object 1 twice (column 2.9 -> 0.9 -> 32.4 -> 32).
  garments = np.stack([garment[0], 255 - garment[0]])
  two = mfm.render(garments, np.zeros((2, 2)), np.array([[-0.5, 0.0], [0.0, 2.9]]), num_frames=2)
  expected = np.zeros((2, 64, 64), np.uint8)
  expected[0, :28, :28] = garments.max(axis=0)
  expected[1, 18:46, :28] = garments[0]
  expected[1, :28, 32:60] = np.maximum(expected[1, :28, 32:60], garments[1])
  np.testing.assert_array_equal(two[..., 0], expected)


def test_motion_classes_survive_bounces():
  degrees = np.radians
  for speed, angle, expected in [(0.05, 10, 0), (0.05, 45, 1), (0.06, 80, 2),
                                 (0.12, 5, 3), (0.11, 50, 4), (0.13, 90, 5), (0.085, 45, -1),
                                 (0.12, 28, -1)]:
    velocity = speed * np.array([np.sin(degrees(angle)), np.cos(degrees(angle))])
    for signs in ([1, 1], [-1, 1], [1, -1], [-1, -1]):  # what bounces do to a velocity
      assert mfm.motion_class(velocity * signs) == expected, (speed, angle, signs)


def test_records_labels_splits_and_build_time(built):
  source_dir, data_dir, seconds = built
  assert seconds < 30, seconds  # two configs of 150 videos each (~3 s on 2 busy cores)
  read_idx = fashion_mnist_local.builder.read_idx
  images = read_idx(os.path.join(source_dir, "train-images-idx3-ubyte.gz"))
  labels = read_idx(os.path.join(source_dir, "train-labels-idx1-ubyte.gz"))
  by_bytes = {image.tobytes(): int(label) for image, label in zip(images, labels)}
  info = pipeline.dataset_info("moving_fashion_mnist", data_dir=data_dir)
  assert pipeline.is_video(info) and pipeline.video_shape(info) == (20, 64, 64, 1)
  assert {s: info.splits[s].num_examples for s in info.splits} == {"train": NUM_TRAIN,
                                                                     "test": NUM_TEST}
  source = pipeline.load_source("moving_fashion_mnist", "train", data_dir=data_dir)
  stored = source.source.source  # CheckedSource -> RenderedVideos -> the TFDS data source
  motions, seen = [], set()
  for index in range(len(source)):
    record, raw = source[index], stored[index]
    assert set(record) == {"video", "label", "motion"}
    assert record["video"].shape == (20, 64, 64, 1) and record["video"].dtype == np.uint8
    garment = raw["garments"][0]
    seen.add(garment.tobytes())
    assert by_bytes[garment.tobytes()] == record["label"] == raw["garment_labels"][0]
    assert mfm.motion_class(raw["velocity"][0]) == record["motion"]
    # The rendered garment is where the bounce formula puts it, in every frame.
    path = mfm.trajectory(raw["start"], raw["velocity"], 20)[0]
    assert [_box(frame) for frame in record["video"]] == [tuple(p) for p in path]
    np.testing.assert_array_equal(record["video"][7, path[7][0]:path[7][0] + 28,
                                                  path[7][1]:path[7][1] + 28, 0], garment)
    motions.append(record["motion"])
  assert len(seen) == NUM_TRAIN  # every train image once
  assert np.bincount(motions, minlength=6).tolist() == [NUM_TRAIN // 6] * 6  # balanced
  # The source goes to grain's worker processes.
  np.testing.assert_array_equal(pickle.loads(pickle.dumps(source))[3]["video"], source[3]["video"])

  two = pipeline.load_source("moving_fashion_mnist_two_objects", "test", data_dir=data_dir)
  assert len(two) == NUM_TEST
  for index in range(len(two)):
    raw, record = two.source.source[index], two[index]
    assert raw["garments"].shape == (2, 28, 28)
    assert raw["garment_labels"].tolist() == [record["label"]] * 2  # one class per clip
    assert mfm.motion_class(raw["velocity"]).tolist() == [record["motion"]] * 2
    np.testing.assert_array_equal(record["video"],
                                  mfm.render(raw["garments"], raw["start"], raw["velocity"]))


def test_same_records_from_every_build(built, tmp_path):
  source_dir, data_dir, _ = built
  pipeline.prepare("moving_fashion_mnist", data_dir=str(tmp_path), source_dir=source_dir)
  for split in ("train", "test"):
    first = pipeline.load_source("moving_fashion_mnist", split, data_dir=data_dir)
    again = pipeline.load_source("moving_fashion_mnist", split, data_dir=str(tmp_path))
    for index in range(len(first)):
      a, b = first.source.source[index], again.source.source[index]
      assert a.keys() == b.keys()
      for key in a:
        np.testing.assert_array_equal(a[key], b[key])
  # A different seed gives different motions (the config's seed is what fixes them).
  config = mfm.MovingFashionMnistConfig(name="seed_1", num_objects=1, seed=1)
  other = mfm.Builder(data_dir=str(tmp_path / "other"), config=config, source_dir=source_dir)
  default = mfm.Builder(data_dir=str(tmp_path / "other"), source_dir=source_dir)
  # pylint: disable=protected-access
  a = [record["velocity"] for _, record in default._generate_examples("test")]
  b = [record["velocity"] for _, record in other._generate_examples("test")]
  assert not np.allclose(a, b)
