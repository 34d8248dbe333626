"""TFDS builder for Fashion-MNIST that reads the IDX files shipped by Debian.

`apt-get install -y dataset-fashion-mnist` puts the four gzipped IDX files in
/usr/share/datasets/fashion-mnist/. This builder turns them into an array_record
TFDS dataset (no TensorFlow, no download): images are stored as uint8 `Tensor`
features so decoding needs no image codec.

Reference: Xiao, Rasul, Vollgraf, "Fashion-MNIST: a Novel Image Dataset for
Benchmarking Machine Learning Algorithms", arXiv:1708.07747 (2017).
"""

from __future__ import annotations

import gzip
import os
import struct

import numpy as np
import tensorflow_datasets as tfds

DEFAULT_SOURCE_DIR = "/usr/share/datasets/fashion-mnist"
INSTALL_HINT = "apt-get install -y dataset-fashion-mnist"
_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
CLASS_NAMES = (
    "t-shirt/top", "trouser", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "ankle boot",
)


def _open(path: str):
  if os.path.exists(path):
    return gzip.open(path, "rb")
  if os.path.exists(path[: -len(".gz")]):
    return open(path[: -len(".gz")], "rb")
  raise FileNotFoundError(path)


def read_idx(path: str) -> np.ndarray:
  """Reads an IDX file (optionally gzipped) into a numpy array."""
  with _open(path) as f:
    data = f.read()
  zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
  if zero != 0 or dtype_code != 0x08:
    raise ValueError(f"{path}: not an unsigned-byte IDX file")
  shape = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
  array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
  if array.size != int(np.prod(shape)):
    raise ValueError(f"{path}: truncated IDX file ({array.size} of {np.prod(shape)} values)")
  return array.reshape(shape)


def check_source_dir(source_dir: str) -> None:
  """Raises FileNotFoundError with one line naming the fix if the IDX files are missing."""
  missing = [f for pair in _FILES.values() for f in pair
             if not (os.path.exists(os.path.join(source_dir, f))
                     or os.path.exists(os.path.join(source_dir, f[:-3])))]
  if missing:
    raise FileNotFoundError(
        f"Fashion-MNIST IDX files not found in {source_dir} (missing {', '.join(missing)}); "
        f"install them with `{INSTALL_HINT}` or set --config.dataset.source_dir to a folder holding them."
    )


class Builder(tfds.core.GeneratorBasedBuilder):
  """Fashion-MNIST from local IDX files; registered as `fashion_mnist_local`."""

  name = "fashion_mnist_local"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Built from Debian's dataset-fashion-mnist IDX files."}

  def __init__(self, *, source_dir: str = DEFAULT_SOURCE_DIR, **kwargs):
    self._source_dir = source_dir
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=(28, 28, 1), dtype=np.uint8),
            "label": tfds.features.ClassLabel(names=CLASS_NAMES),
        }),
        supervised_keys=("image", "label"),
        homepage="https://github.com/zalandoresearch/fashion-mnist",
    )

  # TFDS prints "Downloading and preparing dataset ..." and "... downloaded and prepared" to
  # stdout for every build; nothing is downloaded here (pipeline.prepare says what it built).
  def _log_download_bytes(self) -> None:
    pass

  def _log_download_done(self) -> None:
    pass

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing is downloaded.
    check_source_dir(self._source_dir)
    return {split: self._generate_examples(split) for split in _FILES}

  def _generate_examples(self, split: str):
    image_file, label_file = _FILES[split]
    images = read_idx(os.path.join(self._source_dir, image_file))
    labels = read_idx(os.path.join(self._source_dir, label_file))
    if len(images) != len(labels):
      raise ValueError(f"{split}: {len(images)} images but {len(labels)} labels")
    for index, (image, label) in enumerate(zip(images, labels)):
      yield index, {"image": image[..., None], "label": int(label)}
