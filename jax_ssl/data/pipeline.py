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
from collections.abc import Mapping, Sequence
from typing import Any

import grain
import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.core.utils import tqdm_utils

from jax_ssl import fs
from jax_ssl.data import fashion_mnist_local
from jax_ssl.data import host_views as host_views_lib
from jax_ssl.data import in_memory
from jax_ssl.data import moving_fashion_mnist
from jax_ssl.data import tfds_video
from jax_ssl.data import workers
from jax_ssl.errors import ConfigError, DataError

# Our offline builders, by the name experiment files use.
LOCAL_BUILDERS = {
    "fashion_mnist": fashion_mnist_local.Builder,
    "moving_fashion_mnist": moving_fashion_mnist.Builder,
    "moving_fashion_mnist_two_objects": functools.partial(moving_fashion_mnist.Builder,
                                                          config="two_objects"),
}


def default_data_dir() -> str:
  return os.environ.get("TFDS_DATA_DIR", os.path.expanduser("~/tensorflow_datasets"))


def prepare(name: str, *, data_dir: str | None, source_dir: str | None) -> None:
  """Builds a local dataset (offline) if it is not built yet; no-op for other TFDS names.

  A data_dir in a bucket (gs://...) is read (TFDS through etils.epath, the records through
  array_record's GCS client) but not built into: array_record writes local files only
  (its writer fails with `open() failed` on a gs:// path), so an unbuilt one is one line.
  """
  if name not in LOCAL_BUILDERS:
    return
  kwargs = {"source_dir": source_dir} if source_dir else {}
  data_dir = data_dir or default_data_dir()
  builder = LOCAL_BUILDERS[name](data_dir=data_dir, file_format="array_record", **kwargs)
  if fs.is_url(data_dir) and not builder.is_prepared():
    raise DataError(
        f"dataset {name!r} is not built in --config.dataset.data_dir={data_dir}, and it cannot be "
        f"built there (array_record writes local files only): build it in a local data_dir (run "
        f"once with --config.dataset.data_dir=DIR) and copy DIR/{builder.name} to {data_dir}/ "
        f"(gcloud storage cp -r), then rerun")
  if not builder.is_prepared():
    progress = tqdm_utils._active  # pylint: disable=protected-access
    tfds.display_progress_bar(False)  # a dozen stderr lines for seconds; the line below says it
    try:
      builder.download_and_prepare()
    except FileNotFoundError as e:
      raise DataError(str(e)) from None
    finally:
      tfds.display_progress_bar(progress)
    print(f"built dataset {name!r} in {builder.data_dir} from {builder._source_dir} (once)",  # pylint: disable=protected-access
          flush=True)


def load_source(name: str, split: str, *, data_dir: str | None, encoded: bool = False,
                in_memory_max_bytes: int = 0, reads: int | None = None
                ) -> CheckedSource | in_memory.ArraySource:
  """Random-access source for `split` of dataset `name` (a TFDS name, a local builder, or an
  image folder built by `python -m jax_ssl.prepare_data`).

  `encoded`: records carry the image's encoded bytes (JPEG, PNG) rather than the decoded
  array, for the host views of variable-size datasets (`host_views`); only for an `Image`
  feature (other images are arrays either way).

  `in_memory_max_bytes` > 0: a split of fixed-size records (`in_memory.record_bytes`) of at
  most that many bytes decoded is read once into an `in_memory.ArraySource` (the same records
  in the same order, without TFDS's per-record parsing) if the caller's `reads` (records it
  will read; None: many) make it worth it (`in_memory.worth_holding`); else it stays on disk.

  Raises DataError with one line naming the fix when the dataset is not prepared: nothing is
  downloaded at run time. Records that cannot be read later raise DataError too (see
  CheckedSource).
  """
  builder = _builder(name, data_dir=data_dir)
  splits = builder.info.splits
  if splits and split.split("[")[0] not in splits:
    raise ConfigError(f"dataset {name!r} has no split {split!r} (it has {sorted(splits)}); set "
                      f"--config.dataset.train_split / test_split to one of them")
  decoders = None
  if encoded and isinstance(builder.info.features["image"], tfds.features.Image):
    decoders = {"image": tfds.decode.SkipDecoding()}
  try:
    source = builder.as_data_source(split=split, decoders=decoders)
  except (AssertionError, FileNotFoundError, NotImplementedError, ValueError) as e:
    # Not prepared, or prepared as TFRecord (no random access): never download here.
    raise DataError(
        f"dataset {name!r} split {split!r} is not available as array_record in {builder.data_dir} "
        f"({type(e).__name__}); nothing is downloaded at run time: build it where it can be fetched "
        f"(`tfds build {name} --file_format array_record`) and copy it into "
        f"--config.dataset.data_dir (now {fs.parent(fs.parent(builder.data_dir))}).") from None
  if hasattr(builder, "rendered_source"):  # records that render their video on read
    source = builder.rendered_source(source)
  checked = CheckedSource(source, name=name, split=split, rebuild=_rebuild_hint(name, builder))
  size = in_memory.record_bytes(builder.info.features)
  if (in_memory_max_bytes > 0 and decoders is None and size is not None
      and not hasattr(builder, "rendered_source") and size * len(source) <= in_memory_max_bytes
      and in_memory.worth_holding(len(source), reads)):
    return in_memory.ArraySource(source, checked=checked)
  return checked


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
    tfds_video.enable()  # TFDS's video datasets (ucf101) without TensorFlow
    return tfds.builder(name, data_dir=data_dir)
  except tfds.core.registered.DatasetNotFoundError:
    raise ConfigError(
        f"dataset.name={name!r} is not a TFDS dataset, one of ours ({sorted(LOCAL_BUILDERS)}), "
        f"nor a dataset built by `python -m jax_ssl.prepare_data` in {data_dir}; check the name "
        f"and dataset.data_dir.") from None


def dataset_info(name: str, *, data_dir: str | None) -> tfds.core.DatasetInfo:
  return _builder(name, data_dir=data_dir).info


def is_video(info: tfds.core.DatasetInfo) -> bool:
  """Whether the dataset's records are videos ("video": uint8 [N, H, W, C]), stored (TFDS's
  video datasets, video folders) or rendered on read (Moving Fashion-MNIST's metadata)."""
  return "video" in info.features or "video_shape" in (info.metadata or {})


def video_shape(info: tfds.core.DatasetInfo) -> tuple[int | None, ...]:
  """(N, H, W, C) of a video dataset's "video" (None: varies between records)."""
  if "video" in info.features:
    return tuple(info.features["video"].shape)
  return tuple(info.metadata["video_shape"])


def is_variable_size(info: tfds.core.DatasetInfo) -> bool:
  """Whether the dataset's images vary in size (ImageNet, image folders kept encoded): those
  get their views' geometry on the host (`host_views`), fixed-size ones all on device."""
  return None in tuple(info.features["image"].shape[:2])


def host_views(info: tfds.core.DatasetInfo, view_configs: Sequence[Any], *, enabled: bool = True,
               resize: str = "opencv") -> tuple[host_views_lib.HostView, ...] | None:
  """The host's share of `view_configs` (augment.AugmentConfig, one per view) for a
  variable-size dataset when `enabled` (`dataset.host_crops`); None otherwise: a fixed-size
  dataset's views are made on device from its images, a variable-size one's from the
  `dataset.image_size` squares the host makes. Each view is resized by `resize`
  (`dataset.host_resize`)."""
  if not (enabled and is_variable_size(info)):
    return None
  return host_views_lib.host_views_of(view_configs, resize)


def default_num_workers() -> int:
  """Worker processes for `dataset.num_workers=-1`: one per core but the trainer's, at most 32
  (each worker imports the data stack, a few hundred MB)."""
  return max(1, min(32, (os.cpu_count() or 2) - 1))


def worker_settings(dataset: Any) -> dict[str, int]:
  """`train_iterator`'s worker arguments from the config's `dataset` section: `num_workers`
  (-1: `default_num_workers()`; 0: threads only) and `worker_buffer_size`."""
  num_workers = dataset.num_workers
  return {"num_workers": default_num_workers() if num_workers == -1 else num_workers,
          "worker_buffer_size": dataset.worker_buffer_size}


def _image_and_label(record: dict[str, Any], image_size: int = 0) -> dict[str, np.ndarray]:
  """Record -> {"image": uint8 [H, W, C], "label": int32}; for variable-size datasets (`image`
  not already image_size x image_size, or encoded bytes) resized to the shorter side
  `image_size` and centre-cropped to a square (`host_views.evaluation_view`)."""
  image = record["image"]
  if not isinstance(image, np.ndarray):  # encoded bytes
    image = host_views_lib.full_decode(image, channels=3)
  image = np.asarray(image, np.uint8)
  if image.ndim == 2:
    image = image[..., None]
  if image_size and image.shape[:2] != (image_size, image_size):
    image = host_views_lib.evaluation_view(image, image_size)
  return {"image": image, "label": np.asarray(record.get("label", -1), np.int32)}


def _indexed(index: int, record: dict[str, Any]) -> tuple[int, dict[str, Any]]:
  """The record with its position in the global stream (the seed of its host views)."""
  return index, record


def _views_batch(items: Sequence[tuple[int, dict[str, Any]]], *,
                 views: Sequence[host_views_lib.HostView], seed: int, channels: int
                 ) -> dict[str, Any]:
  """(position in the global stream, record) pairs -> {"views": (uint8 [B, S_v, S_v, C] per
  view), "label": int32 [B]}: each example's views (host_views.make_views) written straight
  into the batch's arrays (grain's `batch_fn`; no stacking copy)."""
  out = tuple(np.empty((len(items), view.output_size, view.output_size, channels), np.uint8)
              for view in views)
  for row, (index, record) in enumerate(items):
    host_views_lib.make_views(record["image"], views, seed=seed, index=index,
                              channels=channels, out=[o[row] for o in out])
  labels = np.asarray([record.get("label", -1) for _, record in items], np.int32)
  return {"views": out, "label": labels}


def _clips_and_label(index: int, record: dict[str, Any], *, sampling: Any, seed: int
                     ) -> dict[str, Any]:
  """Video record at position `index` of the global stream -> {"clips": (uint8 [T, H, W, C],
  ...) one per view, "speeds": int32 [V], "label": int32} (clips.sample_clips: seeded by
  (seed, index), so a resumed run or another device count samples the same clips)."""
  from jax_ssl.data import clips  # pylint: disable=g-import-not-at-top
  video = np.asarray(record["video"], np.uint8)
  if video.ndim == 3:  # [N, H, W]: one channel
    video = video[..., None]
  sampled = clips.sample_clips(video, sampling, seed=seed, index=index)
  return {"clips": tuple(sampled["clips"]),
          "speeds": np.asarray(sampled["speeds"], np.int32),
          "label": np.asarray(record.get("label", -1), np.int32)}


def step_inputs(batch: Mapping[str, Any]) -> dict[str, Any]:
  """What the train step takes of a batch: its clips and their speeds ("clips", "speeds":
  video), its host views ("views") or its images ("image")."""
  if "clips" in batch:
    return {"clips": batch["clips"], "speeds": batch["speeds"]}
  return {"views": batch["views"]} if "views" in batch else {"image": batch["image"]}


def train_iterator(source, *, local_batch_size: int, seed: int, process_index: int,
                   process_count: int, image_size: int = 0, read_threads: int = 4,
                   prefetch_buffer_size: int = 8,
                   host_views: Sequence[host_views_lib.HostView] | None = None,
                   channels: int = 3, num_workers: int = 0, worker_buffer_size: int = 2,
                   clip_sampling: Any = None) -> grain.DatasetIterator:
  """Infinite, checkpointable iterator of this process's batches: `{"image", "label"}`, or
  with `host_views` `{"views": (one uint8 [B, S_v, S_v, channels] per view), "label"}`, or
  for a video dataset with `clip_sampling` (data/clips.py ClipSampling) `{"clips": (one
  uint8 [B, T, H, W, C] per view), "speeds": int32 [B, V], "label"}`.

  Its state (`get_state`/`set_state`, or grain's Orbax handler) is the position in the
  global stream, so a resumed run sees exactly the batches it would have seen.

  Args:
   host_views: for variable-size datasets (records with encoded bytes, `load_source(...,
     encoded=True)`), the views' geometry made here (host_views.make_views); None: the image
     (resized to `image_size` if set) is shipped whole.
   read_threads: threads reading and transforming batches in each process that does the
     work (this one with num_workers=0, each worker otherwise).
   prefetch_buffer_size: batches read ahead with num_workers=0; each worker reads
     `read_threads` batches ahead.
   num_workers: grain worker processes (`mp_prefetch`); 0: threads of this process only.
     Worker w makes this process's batches w, w + num_workers, ...; they come back in order,
     so the stream (and a checkpoint's position in it) is the same for any count.
   worker_buffer_size: finished batches each worker keeps ready.
  """
  if (isinstance(source, in_memory.ArraySource) and clip_sampling is None and not host_views
      and source.gathers(image_size)):
    # The same permutation of the same records, gathered a batch at a time (no per-record work)
    dataset = (grain.MapDataset.range(len(source)).shuffle(seed=seed).repeat()
               .batch(local_batch_size, drop_remainder=True).map(source.images_and_labels))
    return workers.iterate(dataset[process_index::process_count], read_threads, prefetch_buffer_size,
                    num_workers, worker_buffer_size)
  dataset = (grain.MapDataset.source(source)
             .shuffle(seed=seed)      # a fresh permutation every epoch
             .repeat())
  if clip_sampling is not None:
    dataset = dataset.map_with_index(functools.partial(
        _clips_and_label, sampling=clip_sampling, seed=seed)).batch(local_batch_size,
                                                                    drop_remainder=True)
  elif host_views:
    dataset = dataset.map_with_index(_indexed).batch(
        local_batch_size, drop_remainder=True, batch_fn=functools.partial(
            _views_batch, views=tuple(host_views), seed=seed, channels=channels))
  else:
    dataset = dataset.map(functools.partial(_image_and_label, image_size=image_size)).batch(
        local_batch_size, drop_remainder=True)
  return workers.iterate(dataset[process_index::process_count], read_threads, prefetch_buffer_size,
                  num_workers, worker_buffer_size)


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
    if isinstance(source, in_memory.ArraySource) and source.gathers(image_size):  # one gather
      yield source.images_and_labels(indices), num_valid
      continue
    records = [_image_and_label(source[int(i)], image_size) for i in indices]
    yield ({"image": np.stack([r["image"] for r in records]),
            "label": np.stack([r["label"] for r in records])}, num_valid)
