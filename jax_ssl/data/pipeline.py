"""TFDS `data_source` -> grain -> process-local numpy batches (-> global arrays in the trainer).

Ordering is defined on the *global* stream so results do not depend on the number of
processes or devices: grain shuffles the record indices with the run's seed (a new
permutation every epoch), batches them into chunks of `local_batch_size`, and process p of
P takes chunks p, p+P, p+2P, ... Global batch k is therefore the same set of examples, in
the same order, whether it is assembled on one host or on many, and every process reads
only its own records.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import grain
import numpy as np
import tensorflow_datasets as tfds

from jax_ssl.data import fashion_mnist_local
from jax_ssl.errors import ConfigError, DataError

# Our offline builders, by the name experiment files use.
LOCAL_BUILDERS = {"fashion_mnist": fashion_mnist_local.Builder}


def default_data_dir() -> str:
  return os.environ.get("TFDS_DATA_DIR", os.path.expanduser("~/tensorflow_datasets"))


def prepare(name: str, *, data_dir: str | None, source_dir: str | None) -> None:
  """Builds a local dataset (offline) if it is not built yet; no-op for other TFDS names."""
  if name not in LOCAL_BUILDERS:
    return
  kwargs = {"source_dir": source_dir} if source_dir else {}
  builder = LOCAL_BUILDERS[name](data_dir=data_dir or default_data_dir(),
                                 file_format="array_record", **kwargs)
  if not builder.is_prepared():
    try:
      builder.download_and_prepare()
    except FileNotFoundError as e:
      raise DataError(str(e)) from None
    print(f"built dataset {name!r} in {builder.data_dir} from {builder._source_dir} (once)",  # pylint: disable=protected-access
          flush=True)


def load_source(name: str, split: str, *, data_dir: str | None) -> CheckedSource:
  """Random-access source for `split` of dataset `name` (a TFDS name, a local builder, or an
  image folder built by `python -m jax_ssl.prepare_data`).

  Raises DataError with one line naming the fix when the dataset is not prepared: nothing is
  downloaded at run time. Records that cannot be read later raise DataError too (see
  CheckedSource).
  """
  builder = _builder(name, data_dir=data_dir)
  splits = builder.info.splits
  if splits and split.split("[")[0] not in splits:
    raise ConfigError(f"dataset {name!r} has no split {split!r} (it has {sorted(splits)}); set "
                      f"--config.dataset.train_split / test_split to one of them")
  try:
    source = builder.as_data_source(split=split)
  except (AssertionError, FileNotFoundError, NotImplementedError, ValueError) as e:
    # Not prepared, or prepared as TFRecord (no random access): never download here.
    raise DataError(
        f"dataset {name!r} split {split!r} is not available as array_record in {builder.data_dir} "
        f"({type(e).__name__}); nothing is downloaded at run time: build it where it can be fetched "
        f"(`tfds build {name} --file_format array_record`) and copy it into "
        f"--config.dataset.data_dir (now {os.path.dirname(os.path.dirname(builder.data_dir))}).") from None
  return CheckedSource(source, name=name, split=split, rebuild=_rebuild_hint(name, builder))


class CheckedSource:
  """A TFDS data source whose unreadable records (truncated or garbled array_record files,
  records that fail to decode) raise one DataError line naming the dataset, the split, the
  record index, the file and the command that rebuilds the dataset."""

  def __init__(self, source, *, name: str, split: str, rebuild: str):
    self.source, self.name, self.split, self.rebuild = source, name, split, rebuild

  def __len__(self) -> int:
    return len(self.source)

  def __getitem__(self, index):
    try:
      return self.source[index]
    except IndexError:
      raise
    except Exception as e:  # pylint: disable=broad-except  # array_record / protobuf errors
      reason = (str(e).strip().splitlines() or [""])[0][:200]
      raise DataError(
          f"dataset {self.name!r} split {self.split!r}: record {int(index)}{self._where(int(index))} "
          f"is unreadable ({type(e).__name__}: {reason}); the dataset files are damaged: "
          f"{self.rebuild}") from None

  def _where(self, index: int) -> str:
    """' (record R of FILE)' from the split's TFDS file instructions, '' if unknown."""
    info = getattr(self.source, "dataset_info", None)
    if info is None:
      return ""
    for instruction in info.splits[self.split].file_instructions:
      if index < instruction.take:
        return f" (record {instruction.skip + index} of {os.fspath(instruction.filename)})"
      index -= instruction.take
    return ""


def _rebuild_hint(name: str, builder: tfds.core.DatasetBuilder) -> str:
  if name in LOCAL_BUILDERS:
    return (f"delete them (`rm -r {builder.data_dir}`) and rerun: they are rebuilt from "
            f"--config.dataset.source_dir")
  command = (builder.info.metadata or {}).get("rebuild_command")
  if command:  # an image folder built by jax_ssl.prepare_data
    return f"rebuild them with `{command}`"
  return (f"rebuild them with `tfds build {name} --file_format array_record --overwrite` where it "
          f"can be downloaded, and copy {builder.data_dir} here")


def _builder(name: str, *, data_dir: str | None) -> tfds.core.DatasetBuilder:
  data_dir = data_dir or default_data_dir()
  if name in LOCAL_BUILDERS:
    return LOCAL_BUILDERS[name](data_dir=data_dir, file_format="array_record")
  try:
    # A name TFDS does not know is looked up as a prepared dataset in data_dir (our image folders).
    return tfds.builder(name, data_dir=data_dir)
  except tfds.core.registered.DatasetNotFoundError:
    raise ConfigError(
        f"dataset.name={name!r} is not a TFDS dataset, one of ours ({sorted(LOCAL_BUILDERS)}), "
        f"nor a dataset built by `python -m jax_ssl.prepare_data` in {data_dir}; check the name "
        f"and dataset.data_dir.") from None


def dataset_info(name: str, *, data_dir: str | None) -> tfds.core.DatasetInfo:
  return _builder(name, data_dir=data_dir).info


def _resize_center_crop(image: np.ndarray, size: int) -> np.ndarray:
  """Resizes the shorter side to `size` (bicubic) and center-crops to size x size."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  height, width = image.shape[:2]
  scale = size / min(height, width)
  new_h, new_w = max(size, round(height * scale)), max(size, round(width * scale))
  pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
  resized = np.asarray(pil.resize((new_w, new_h), Image.BICUBIC))
  if resized.ndim == 2:
    resized = resized[..., None]
  top, left = (new_h - size) // 2, (new_w - size) // 2
  return resized[top:top + size, left:left + size]


def _image_and_label(record: dict[str, Any], image_size: int = 0) -> dict[str, np.ndarray]:
  """Record -> {"image": uint8 [H, W, C], "label": int32}; resized if `image_size` > 0 and
  the image is not already image_size x image_size (variable-size datasets: ImageNet)."""
  image = np.asarray(record["image"], np.uint8)
  if image.ndim == 2:
    image = image[..., None]
  if image_size and image.shape[:2] != (image_size, image_size):
    image = _resize_center_crop(image, image_size)
  return {"image": image, "label": np.asarray(record.get("label", -1), np.int32)}


def train_iterator(source, *, local_batch_size: int, seed: int, process_index: int,
                   process_count: int, image_size: int = 0, read_threads: int = 4,
                   prefetch_buffer_size: int = 8) -> grain.DatasetIterator:
  """Infinite, checkpointable iterator of this process's `{"image", "label"}` batches.

  Its state (`get_state`/`set_state`, or grain's Orbax handler) is the position in the
  global stream, so a resumed run sees exactly the batches it would have seen.
  """
  dataset = (grain.MapDataset.source(source)
             .shuffle(seed=seed)      # a fresh permutation every epoch
             .repeat()
             .map(functools.partial(_image_and_label, image_size=image_size))
             .batch(local_batch_size, drop_remainder=True))
  dataset = dataset[process_index::process_count]
  options = grain.ReadOptions(num_threads=read_threads, prefetch_buffer_size=prefetch_buffer_size)
  return iter(dataset.to_iter_dataset(options))


def eval_batches(source, *, batch_size: int, process_index: int = 0, process_count: int = 1,
                 image_size: int = 0):
  """Yields (batch, num_valid) covering `source` once in order, padded to whole batches.

  Each batch is this process's slice of a global batch of `batch_size * process_count`
  examples; padding rows repeat the last example and are dropped by the caller via the
  returned number of valid rows of the global batch.
  """
  total = len(source)
  global_batch = batch_size * process_count
  for start in range(0, total, global_batch):
    indices = np.arange(start, start + global_batch)
    num_valid = int(min(global_batch, total - start))
    indices = np.minimum(indices, total - 1)[process_index * batch_size:(process_index + 1) * batch_size]
    records = [_image_and_label(source[int(i)], image_size) for i in indices]
    yield ({"image": np.stack([r["image"] for r in records]),
            "label": np.stack([r["label"] for r in records])}, num_valid)
