"""Frozen features of a dataset split, batch by batch, jitted and sharded over the mesh."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np
from jax.experimental import multihost_utils

from jax_ssl import sharding
from jax_ssl.data import pipeline


def extract(feature_fn, source, *, batch_size: int, limit: int, mesh, image_size: int = 0
            ) -> tuple[np.ndarray, np.ndarray]:
  """Features and labels of `source` (first `limit` records if > 0), batch by batch.

  `feature_fn(images)` runs jitted on a global batch sharded over the mesh; every process
  gets the full feature matrix back.
  """
  if limit:
    source = Subset(source, np.arange(min(limit, len(source))))
  features, labels = [], []
  for batch, num_valid in pipeline.eval_batches(
      source, batch_size=batch_size // jax.process_count(),
      process_index=jax.process_index(), process_count=jax.process_count(),
      image_size=image_size):
    batch = sharding.to_global(batch, mesh)
    out = feature_fn(batch["image"])
    out, label = multihost_utils.process_allgather((out, batch["label"]), tiled=True)
    features.append(np.asarray(out[:num_valid], np.float32))
    labels.append(np.asarray(label[:num_valid]))
  return np.concatenate(features), np.concatenate(labels)


class Subset:
  """The records `indices` of a random-access source (a low-label subset, a split's head)."""

  def __init__(self, source, indices: Sequence[int]):
    self.source, self.indices = source, np.asarray(indices, np.int64)

  def __len__(self):
    return len(self.indices)

  def __getitem__(self, index):
    return self.source[int(self.indices[index])]
