"""TFDS video datasets by name (ucf101 under tfds.testing.mock_data, a prepared Video dataset)
through pipeline.load_source, without TensorFlow (jax_ssl/data/tfds_video.py)."""

import importlib.util
import io
import json
import os

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from jax_ssl.data import pipeline, tfds_video


def test_mock_ucf101_by_name():
  with tfds.testing.mock_data(num_examples=3):
    info = pipeline.dataset_info("ucf101", data_dir=None)
    assert pipeline.is_video(info) and pipeline.video_shape(info) == (None, 256, 256, 3)
    assert info.features["label"].num_classes == 101
    source = pipeline.load_source("ucf101", "train", data_dir="/nonexistent")
    assert len(source) == 3
    for index in range(3):
      record = source[index]
      assert record["video"].dtype == np.uint8 and record["video"].ndim == 4
      assert record["video"].shape[1:] == (256, 256, 3) and record["video"].shape[0] >= 1
      assert 0 <= int(record["label"]) < 101
    assert not pipeline.is_video(pipeline.dataset_info("cifar10", data_dir=None))


class _TinyVideos(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Two 3-frame 8x8 videos stored as tfds.features.Video stores them (a Sequence of PNG
  Images): writing a Video feature's features.json needs TensorFlow, so the test writes the
  Sequence and then names it Video in features.json, as `tfds build ucf101` does."""

  VERSION = tfds.core.Version("1.0.0")
  name = "tiny_tfds_videos"

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
        "video": tfds.features.Sequence(tfds.features.Image(shape=(8, 8, 3))),
        "label": tfds.features.ClassLabel(num_classes=2)}))

  def _split_generators(self, dl_manager):
    return {"train": self._generate_examples()}

  def _generate_examples(self):
    for label in range(2):
      frames = []
      for frame in _frames(label):  # encoded here: TFDS encodes arrays with TensorFlow
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, "PNG")
        frames.append(buffer.getvalue())
      yield label, {"video": frames, "label": label}


def _frames(label):
  return np.random.default_rng(label).integers(0, 256, size=(3, 8, 8, 3)).astype(np.uint8)


def test_prepared_tfds_video_dataset_reads_without_tensorflow(tmp_path):
  builder = _TinyVideos(data_dir=str(tmp_path), file_format="array_record")
  builder.download_and_prepare()
  path = os.path.join(builder.data_dir, "features.json")
  with open(path) as f:
    features = json.load(f)
  features["featuresDict"]["features"]["video"] = {
      "pythonClassName": "tensorflow_datasets.core.features.video_feature.Video",
      "video": {"shape": {"dimensions": ["-1", "8", "8", "3"]}, "dtype": "uint8",
                "encodingFormat": "png"}}
  with open(path, "w") as f:
    json.dump(features, f)
  # Read back by name from its files, as a prepared ucf101 copied into data_dir is.
  info = pipeline.dataset_info("tiny_tfds_videos", data_dir=str(tmp_path))
  assert isinstance(info.features["video"], tfds.features.Video)
  assert pipeline.is_video(info) and pipeline.video_shape(info) == (None, 8, 8, 3)
  source = pipeline.load_source("tiny_tfds_videos", "train", data_dir=str(tmp_path))
  records = sorted((source[i] for i in range(len(source))), key=lambda r: int(r["label"]))
  assert [int(r["label"]) for r in records] == [0, 1]
  for record in records:
    np.testing.assert_array_equal(record["video"], _frames(int(record["label"])))
  if importlib.util.find_spec("tensorflow") is None:  # the stand-in is what made it work
    # pylint: disable-next=g-import-not-at-top
    from tensorflow_datasets.core.features import video_feature
    # pylint: disable-next=protected-access
    assert isinstance(video_feature.tf, tfds_video._TensorFlowForVideo)
