"""A split of fixed-size images held in host memory: `ArraySource`.

TFDS's data sources parse every record in Python: about 200-350 us per Fashion-MNIST record on
a 2-vCPU EPYC, so the 256 records of a training batch cost the host 50-90 ms of one core per
step, and an evaluation that reads 70k records three times (the encoder, raw pixels, the
random-init baseline) a minute. A small split of fixed-size images (Fashion-MNIST 47 MB,
CIFAR-10 150 MB) that a run reads at least half of is read once, in chunks of `__getitems__`
(about 100 us per record), and then served from numpy arrays: the same records, in the same
order, so grain's sampling and the checkpointed iterator position are unchanged.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

_CHUNK = 4096  # records per __getitems__ call while loading


def record_bytes(features: Any) -> int | None:
  """Bytes of one decoded record of a TFDS FeaturesDict whose every feature has a fixed shape
  (an array feature, a class label, a scalar); None when one does not (variable-size images,
  strings, videos of any length): those splits stay on disk."""
  total = 0
  for feature in features.values():
    shape = getattr(feature, "shape", None)
    dtype = getattr(feature, "np_dtype", None)
    if shape is None or dtype is None or any(d is None for d in shape) or dtype == np.object_:
      return None
    total += math.prod(shape) * np.dtype(dtype).itemsize
  return total


def worth_holding(records: int, reads: int | None) -> bool:
  """Whether `reads` reads of a split of `records` records cost more from disk than loading
  the split once (None: reads without a known end). Loading costs about 100 us per record
  and a read from disk 250-350 us (2-vCPU EPYC), so from half the split's size on; below it,
  as in a smoke test of 20 steps (1280 of Fashion-MNIST's 60000), the split stays on disk."""
  return reads is None or 2 * reads >= records


class ArraySource:
  """Random access to the records of `source` (a TFDS data source, or anything with
  `__len__` and `__getitem__` returning dicts of arrays and numbers), read once into arrays.

  `source[i]` is `{key: array[i]}` for every key of the records; `batch(indices)` gives the
  stacked arrays of many records at once.
  """

  def __init__(self, source, *, checked=None):
    """`checked` (optional): a source over the same records whose `__getitem__` raises the
    error that names a damaged record; it is asked for each record of a chunk that fails."""
    self.arrays: dict[str, np.ndarray] = {}
    total = len(source)
    getitems = getattr(source, "__getitems__", None)
    for start in range(0, total, _CHUNK):
      indices = list(range(start, min(start + _CHUNK, total)))
      try:
        records = getitems(indices) if getitems else [source[i] for i in indices]
      except Exception:  # pylint: disable=broad-except  # find the record and name it
        if checked is None:
          raise
        records = [checked[i] for i in indices]
      self._store(records, start, total)

  def _store(self, records: list[dict[str, Any]], start: int, total: int) -> None:
    for key, value in records[0].items():
      if key not in self.arrays:
        first = np.asarray(value)
        self.arrays[key] = np.empty((total, *first.shape), first.dtype)
      self.arrays[key][start:start + len(records)] = np.stack(
          [np.asarray(record[key]) for record in records])

  def __len__(self) -> int:
    return len(next(iter(self.arrays.values()))) if self.arrays else 0

  def __getitem__(self, index) -> dict[str, np.ndarray]:
    index = int(index)
    if not 0 <= index < len(self):
      raise IndexError(f"record {index} of a split of {len(self)}")
    return {key: array[index] for key, array in self.arrays.items()}

  def batch(self, indices) -> dict[str, np.ndarray]:
    """The records `indices` (ints), stacked: {key: array[indices]}."""
    indices = np.asarray(indices, np.int64)
    return {key: array[indices] for key, array in self.arrays.items()}

  def gathers(self, image_size: int) -> bool:
    """Whether batches at `image_size` (0: as stored) are plain gathers of the held images:
    no host resize applies (the pipeline's per-record path resizes otherwise)."""
    return not image_size or self.arrays["image"].shape[1:3] == (image_size, image_size)

  def images_and_labels(self, indices) -> dict[str, np.ndarray]:
    """{"image": uint8 [n, H, W, C], "label": int32 [n] (-1 without labels)} of the records
    `indices`: what the pipeline's per-record path makes of them, stacked."""
    batch = self.batch(indices)
    images = batch["image"]
    labels = batch.get("label", np.full(len(images), -1))
    return {"image": images.reshape(*images.shape[:3], -1).astype(np.uint8, copy=False),
            "label": labels.astype(np.int32)}
