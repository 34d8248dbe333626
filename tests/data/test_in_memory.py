"""The in-memory split (data/in_memory.py): the same records, the same stream, one line for a
damaged record, and only for splits of fixed-size records that fit."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from jax_ssl.data import in_memory, pipeline
from jax_ssl.errors import DataError


def _both(data_dir, split="train"):
  on_disk = pipeline.load_source("fashion_mnist", split, data_dir=data_dir)
  held = pipeline.load_source("fashion_mnist", split, data_dir=data_dir,
                              in_memory_max_bytes=2**30)
  return on_disk, held


def test_fixed_size_split_is_held_with_the_same_records(fake_fmnist):
  _, data_dir = fake_fmnist
  on_disk, held = _both(data_dir)
  assert isinstance(held, in_memory.ArraySource) and not isinstance(on_disk, in_memory.ArraySource)
  assert len(held) == len(on_disk) == 512
  assert held.arrays["image"].shape == (512, 28, 28, 1) and held.arrays["image"].dtype == np.uint8
  for index in (0, 1, 255, 511):
    np.testing.assert_array_equal(held[index]["image"], on_disk[index]["image"])
    assert int(held[index]["label"]) == int(on_disk[index]["label"])
  with pytest.raises(IndexError):
    held[512]  # pylint: disable=pointless-statement
  with pytest.raises(IndexError):
    held[-1]  # pylint: disable=pointless-statement
  np.testing.assert_array_equal(held.batch([3, 1])["image"],
                                np.stack([on_disk[3]["image"], on_disk[1]["image"]]))


def test_the_training_stream_and_its_resume_are_unchanged(fake_fmnist):
  _, data_dir = fake_fmnist
  make = lambda source: pipeline.train_iterator(source, local_batch_size=48, seed=4,
                                                process_index=0, process_count=1)
  on_disk, held = (make(source) for source in _both(data_dir))
  for _ in range(12):  # 12 x 48 > 512: across an epoch boundary
    a, b = next(on_disk), next(held)
    np.testing.assert_array_equal(a["image"], b["image"])
    np.testing.assert_array_equal(a["label"], b["label"])
  state = held.get_state()
  resumed = make(_both(data_dir)[0])  # a checkpoint of one resumes on the other
  resumed.set_state(state)
  np.testing.assert_array_equal(next(resumed)["image"], next(held)["image"])


def test_eval_batches_are_the_same(fake_fmnist):
  _, data_dir = fake_fmnist
  batches = [list(pipeline.eval_batches(source, batch_size=50))
             for source in _both(data_dir, "test")]
  assert len(batches[0]) == len(batches[1]) == 3
  for (a, valid_a), (b, valid_b) in zip(*batches):
    assert valid_a == valid_b and b["label"].dtype == np.int32
    np.testing.assert_array_equal(a["image"], b["image"])
    np.testing.assert_array_equal(a["label"], b["label"])


def test_too_large_or_variable_size_splits_stay_on_disk(fake_fmnist):
  _, data_dir = fake_fmnist
  small = pipeline.load_source("fashion_mnist", "test", data_dir=data_dir,
                               in_memory_max_bytes=128 * (28 * 28 + 8) - 1)
  assert isinstance(small, pipeline.CheckedSource)
  fits = pipeline.load_source("fashion_mnist", "test", data_dir=data_dir,
                              in_memory_max_bytes=128 * (28 * 28 + 8))
  assert isinstance(fits, in_memory.ArraySource)
  with tfds.testing.mock_data(num_examples=8):
    info = pipeline.dataset_info("imagenet2012", data_dir=None)
    assert in_memory.record_bytes(info.features) is None
    assert isinstance(pipeline.load_source("imagenet2012", "train", data_dir=None,
                                           in_memory_max_bytes=2**30), pipeline.CheckedSource)


def test_a_damaged_record_is_named_in_one_line():
  class Source:  # record 5000 fails in __getitems__ and alone
    def __len__(self):
      return 5002

    def __getitem__(self, index):
      if index == 5000:
        raise RuntimeError("bad protobuf")
      return {"image": np.full((2, 2, 1), index % 256, np.uint8), "label": index % 3}

    def __getitems__(self, indices):
      return [self[i] for i in indices]

  class Checked(Source):
    def __getitem__(self, index):
      try:
        return super().__getitem__(index)
      except RuntimeError:
        raise DataError(f"record {index} is unreadable") from None

  with pytest.raises(DataError, match="record 5000 is unreadable"):
    in_memory.ArraySource(Source(), checked=Checked())
  with pytest.raises(RuntimeError):  # no checked source: the source's own error
    in_memory.ArraySource(Source())


def test_records_across_load_chunks_keep_their_order():
  class Source:
    def __len__(self):
      return 5002  # more than one chunk of __getitems__

    def __getitem__(self, index):
      return {"image": np.full((2, 2), index % 251, np.uint8), "label": index % 7}

    def __getitems__(self, indices):
      return [self[i] for i in indices]

  held = in_memory.ArraySource(Source())
  assert held.arrays["image"].shape == (5002, 2, 2)
  np.testing.assert_array_equal(held.arrays["image"][:, 0, 0], np.arange(5002) % 251)
  np.testing.assert_array_equal(held.arrays["label"], np.arange(5002) % 7)
  # 2-D images come out of eval_batches with their channel axis, as from disk
  batch, valid = next(pipeline.eval_batches(held, batch_size=4))
  assert batch["image"].shape == (4, 2, 2, 1) and valid == 4


def test_processes_share_the_held_stream_as_on_disk(fake_fmnist):
  _, data_dir = fake_fmnist
  on_disk, held = _both(data_dir)
  one = pipeline.train_iterator(on_disk, local_batch_size=32, seed=3, process_index=0,
                                process_count=1)
  procs = [pipeline.train_iterator(held, local_batch_size=16, seed=3, process_index=p,
                                   process_count=2, num_workers=workers)
           for p, workers in ((0, 0), (1, 1))]  # a grain worker process gathers too
  for _ in range(18):
    global_batch = next(one)
    halves = [next(it) for it in procs]
    np.testing.assert_array_equal(global_batch["image"],
                                  np.concatenate([h["image"] for h in halves]))
    np.testing.assert_array_equal(global_batch["label"],
                                  np.concatenate([h["label"] for h in halves]))


def test_a_resize_on_the_host_still_applies_to_held_records(fake_fmnist):
  _, data_dir = fake_fmnist
  batches = [next(pipeline.train_iterator(source, local_batch_size=8, seed=0, process_index=0,
                                          process_count=1, image_size=14))
             for source in _both(data_dir)]
  assert batches[1]["image"].shape == (8, 14, 14, 1)
  np.testing.assert_array_equal(batches[0]["image"], batches[1]["image"])


def test_a_split_read_less_than_half_stays_on_disk(fake_fmnist):
  # A smoke test's 20 steps of 64 read 1280 of Fashion-MNIST's 60000 records: loading the
  # split would cost more than the reads.
  assert not in_memory.worth_holding(60000, 20 * 64)
  assert in_memory.worth_holding(60000, 30000) and in_memory.worth_holding(60000, None)
  _, data_dir = fake_fmnist
  load = lambda reads: pipeline.load_source("fashion_mnist", "train", data_dir=data_dir,
                                            in_memory_max_bytes=2**30, reads=reads)
  assert isinstance(load(255), pipeline.CheckedSource)
  assert isinstance(load(256), in_memory.ArraySource)  # half of the 512


def test_the_evaluation_holds_what_it_reads_in_full(fake_fmnist):
  from conftest import tiny_config, typed  # pylint: disable=g-import-not-at-top
  from jax_ssl.evaluate import run as evaluate_run  # pylint: disable=g-import-not-at-top
  source_dir, data_dir = fake_fmnist
  # runlocal's limits: 100 of the 512 training records, once (no baselines): from disk; all
  # 128 test records: held.
  config = typed(tiny_config(source_dir, data_dir, **{"eval.train_limit": 100,
                                                      "eval.test_limit": 0}))
  sources = evaluate_run.EvalData(config).sources
  assert isinstance(sources["train"], pipeline.CheckedSource)
  assert isinstance(sources["test"], in_memory.ArraySource)
  # 100 records read three times (the encoder, raw pixels, the random init): held.
  config = typed(tiny_config(source_dir, data_dir, **{"eval.train_limit": 100,
                                                      "eval.baselines": True}))
  assert isinstance(evaluate_run.EvalData(config).sources["train"], in_memory.ArraySource)
