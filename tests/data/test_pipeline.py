import gzip
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from conftest import make_idx_dataset
from jax_ssl.data import fashion_mnist_local, pipeline


def test_builder_reads_idx_exactly(fake_fmnist, tmp_path):
  source_dir, data_dir = fake_fmnist
  images = fashion_mnist_local.builder.read_idx(os.path.join(source_dir, "train-images-idx3-ubyte.gz"))
  labels = fashion_mnist_local.builder.read_idx(os.path.join(source_dir, "train-labels-idx1-ubyte.gz"))
  source = pipeline.load_source("fashion_mnist", "train", data_dir=data_dir)
  assert len(source) == 512
  # TFDS shuffles records on write; every stored record must be one of the IDX examples.
  by_bytes = {img.tobytes(): lab for img, lab in zip(images, labels)}
  for index in (0, 17, 511):
    record = source[index]
    assert record["image"].shape == (28, 28, 1) and record["image"].dtype == np.uint8
    assert by_bytes[record["image"][..., 0].tobytes()] == record["label"]
  info = pipeline.dataset_info("fashion_mnist", data_dir=data_dir)
  assert info.features["label"].num_classes == 10
  assert info.splits["test"].num_examples == 128


def test_missing_idx_files_name_the_install_command(tmp_path):
  with pytest.raises(FileNotFoundError, match="apt-get install -y dataset-fashion-mnist"):
    pipeline.prepare("fashion_mnist", data_dir=str(tmp_path / "tfds"), source_dir=str(tmp_path / "none"))


def test_truncated_idx_is_rejected(tmp_path):
  path = str(tmp_path / "x.gz")
  with gzip.open(path, "wb") as f:
    f.write(b"\x00\x00\x08\x01\x00\x00\x00\x05abc")
  with pytest.raises(ValueError, match="truncated"):
    fashion_mnist_local.builder.read_idx(path)


def test_unprepared_tfds_dataset_fails_without_download(tmp_path):
  with pytest.raises(FileNotFoundError, match="nothing is downloaded at run time"):
    pipeline.load_source("cifar10", "train", data_dir=str(tmp_path))
  with pytest.raises(ValueError, match="not a TFDS dataset"):
    pipeline.load_source("cifar_10", "train", data_dir=str(tmp_path))


def _labels_of(batches):
  return np.concatenate([b["label"] for b in batches])


def test_process_sharding_reassembles_the_global_stream(fake_fmnist):
  _, data_dir = fake_fmnist
  source = pipeline.load_source("fashion_mnist", "train", data_dir=data_dir)
  one = pipeline.train_iterator(source, local_batch_size=32, seed=3, process_index=0, process_count=1)
  procs = [pipeline.train_iterator(source, local_batch_size=16, seed=3, process_index=p, process_count=2)
           for p in range(2)]
  for _ in range(20):  # 20 x 32 > 512: crosses an epoch boundary
    global_batch = next(one)
    halves = [next(it) for it in procs]
    np.testing.assert_array_equal(global_batch["image"],
                                  np.concatenate([h["image"] for h in halves]))


def test_epochs_are_reshuffled_and_complete(fake_fmnist):
  _, data_dir = fake_fmnist
  source = pipeline.load_source("fashion_mnist", "train", data_dir=data_dir)
  it = pipeline.train_iterator(source, local_batch_size=64, seed=0, process_index=0, process_count=1)
  epoch1 = [next(it)["image"] for _ in range(8)]
  epoch2 = [next(it)["image"] for _ in range(8)]
  key = lambda batches: sorted(x.tobytes() for b in batches for x in b)
  assert key(epoch1) == key(epoch2)  # each epoch visits every record once
  assert not all(np.array_equal(a, b) for a, b in zip(epoch1, epoch2))  # in a new order


def test_iterator_state_resumes_exactly(fake_fmnist):
  _, data_dir = fake_fmnist
  source = pipeline.load_source("fashion_mnist", "train", data_dir=data_dir)
  make = lambda: pipeline.train_iterator(source, local_batch_size=32, seed=1, process_index=0, process_count=1)
  it = make()
  for _ in range(5):
    next(it)
  state = it.get_state()
  expected = [next(it)["image"] for _ in range(3)]
  resumed = make()
  resumed.set_state(state)
  for batch in expected:
    np.testing.assert_array_equal(next(resumed)["image"], batch)


def test_eval_batches_cover_split_once(fake_fmnist):
  _, data_dir = fake_fmnist
  source = pipeline.load_source("fashion_mnist", "test", data_dir=data_dir)
  seen = []
  for batch, valid in pipeline.eval_batches(source, batch_size=50):
    assert batch["image"].shape == (50, 28, 28, 1)
    seen.append(batch["label"][:valid])
  assert sum(map(len, seen)) == 128
  np.testing.assert_array_equal(np.concatenate(seen), [source[i]["label"] for i in range(128)])


def test_mock_cifar10_source_through_the_same_path():
  with tfds.testing.mock_data(num_examples=40):
    source = pipeline.load_source("cifar10", "train", data_dir=None)
    it = pipeline.train_iterator(source, local_batch_size=8, seed=0, process_index=0, process_count=1)
    batch = next(it)
  assert batch["image"].shape == (8, 32, 32, 3) and batch["image"].dtype == np.uint8
  assert batch["label"].shape == (8,)


def test_host_resize_for_variable_size_images():
  record = {"image": np.zeros((40, 60, 3), np.uint8), "label": 3}
  out = pipeline._image_and_label(record, image_size=32)
  assert out["image"].shape == (32, 32, 3)
  assert int(out["label"]) == 3


def test_building_fashion_mnist_prints_one_line_not_tfds_download_messages(tmp_path, capfd):
  from jax_ssl.data import pipeline  # pylint: disable=g-import-not-at-top
  source = make_idx_dataset(str(tmp_path / "idx"), num_train=64, num_test=16)
  pipeline.prepare("fashion_mnist", data_dir=str(tmp_path / "tfds"), source_dir=source)
  captured = capfd.readouterr()
  out = captured.out
  assert "Downloading and preparing" not in out and "downloaded and prepared" not in out
  # nor TFDS's progress bars on stderr ("Generating splits...: 100%|...", "Shuffling ...")
  assert "Generating" not in captured.err and "Shuffling" not in captured.err, captured.err
  from tensorflow_datasets.core.utils import tqdm_utils  # pylint: disable=g-import-not-at-top
  assert tqdm_utils._active  # the user's own setting is back  # pylint: disable=protected-access
  lines = [line for line in out.splitlines() if line.strip()]
  assert lines == [f"built dataset 'fashion_mnist' in {tmp_path / 'tfds'}/fashion_mnist_local/1.0.0 "
                   f"from {source} (once)"]
  pipeline.prepare("fashion_mnist", data_dir=str(tmp_path / "tfds"), source_dir=source)
  assert not capfd.readouterr().out.strip()  # already built: nothing
