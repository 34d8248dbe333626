"""Evaluation after pretraining: frozen-feature kNN and linear probes, with baselines.

Protocols (all on frozen features, accuracies as fractions):
  knn_top1          weighted kNN, cosine similarity, k=200, temperature 0.07 (Wu et al. 2018)
  linear_top1       logistic regression on all training labels
  linear_1pct_top1  the same on a fixed class-balanced 1% of the training labels
Each is also computed on raw pixels and on the randomly initialised encoder (the same
seed's initial weights), the baselines a method must beat. Results go to
`DIR/results.json` and are printed as a table.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils

from jax_ssl import config as config_lib
from jax_ssl import sharding
from jax_ssl.data import augment, pipeline
from jax_ssl.errors import DataError
from jax_ssl.evaluate import knn, linear_probe
from jax_ssl.state import split_model
from jax_ssl.step import make_feature_fn

PROTOCOL_KEYS = ("knn_top1", "linear_top1", "linear_1pct_top1")


def extract(feature_fn, source, *, batch_size: int, limit: int, mesh, image_size: int = 0
            ) -> tuple[np.ndarray, np.ndarray]:
  """Features and labels of `source` (first `limit` records if > 0), batch by batch.

  `feature_fn(images)` runs jitted on a global batch sharded over the mesh; every process
  gets the full feature matrix back.
  """
  if limit:
    source = _Head(source, limit)
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


class _Head:
  """The first `limit` records of a random-access source."""

  def __init__(self, source, limit: int):
    self.source, self.limit = source, min(limit, len(source))

  def __len__(self):
    return self.limit

  def __getitem__(self, index):
    return self.source[index]


def run_protocols(train_x, train_y, test_x, test_y, *, num_classes: int, knn_k: int,
                  knn_temperature: float, low_label_fraction: float, low_label_seed: int
                  ) -> dict[str, float]:
  subset = linear_probe.class_balanced_subset(train_y, low_label_fraction, num_classes=num_classes,
                                           seed=low_label_seed)
  return {
      "knn_top1": knn.knn_accuracy(train_x, train_y, test_x, test_y,
                                         num_classes=num_classes, k=knn_k,
                                         temperature=knn_temperature),
      "linear_top1": linear_probe.linear_probe_accuracy(train_x, train_y, test_x, test_y,
                                                     num_classes=num_classes)["top1"],
      # 60 labelled examples per class: 5-fold cross-validation picks the penalty.
      "linear_1pct_top1": linear_probe.linear_probe_accuracy(
          train_x[subset], train_y[subset], test_x, test_y, num_classes=num_classes,
          folds=5, steps=100)["top1"],
  }


def evaluate(config: ml_collections.ConfigDict, workdir: str, graphdef, state, mesh, *,
             train_seconds: float) -> dict[str, Any]:
  """Runs every protocol on the trained encoder and the baselines; writes results.json."""
  start = time.perf_counter()
  data, ev = config.dataset, config.eval
  info = pipeline.dataset_info(data.name, data_dir=data.data_dir)
  if "label" not in info.features:
    raise DataError(f"dataset {data.name!r} has no labels (an image folder without class "
                    f"subfolders): the evaluation protocols need them")
  num_classes = info.features["label"].num_classes
  in_channels = info.features["image"].shape[-1]
  train_source = pipeline.load_source(data.name, data.train_split, data_dir=data.data_dir)
  test_source = pipeline.load_source(data.name, data.test_split, data_dir=data.data_dir)
  output_size = config.augment.output_size
  batch_size = -(-ev.batch_size // jax.device_count()) * jax.device_count()
  replicated, batch_sharding = sharding.replicated(mesh), sharding.batch_sharding(mesh)
  protocol_args = dict(num_classes=num_classes, knn_k=ev.knn_k, knn_temperature=ev.knn_temperature,
                       low_label_fraction=ev.low_label_fraction, low_label_seed=ev.low_label_seed)

  features = make_feature_fn(graphdef)
  # One jitted encoder for the trained and the random-init weights (same shapes: one compile).
  encode = jax.jit(lambda p, s, images: features(p, s, augment.center_view(images, output_size)),
                   in_shardings=(replicated, replicated, batch_sharding),
                   out_shardings=batch_sharding)

  def encoder_fn(params, batch_stats):
    return lambda images: encode(params, batch_stats, images)

  def evaluate_features(feature_fn):
    train = extract(feature_fn, train_source, batch_size=batch_size, limit=ev.train_limit, mesh=mesh,
                    image_size=data.image_size)
    test = extract(feature_fn, test_source, batch_size=batch_size, limit=ev.test_limit, mesh=mesh,
                   image_size=data.image_size)
    return run_protocols(*train, *test, **protocol_args)

  results: dict[str, Any] = {
      "method": config.method, "dataset": data.name, "steps": int(jax.device_get(state.step)),
      "train_seconds": round(float(train_seconds), 1)}
  results.update(evaluate_features(encoder_fn(state.params, state.batch_stats)))
  if ev.baselines:
    pixels = jax.jit(lambda images: augment.center_view(images, output_size).reshape(images.shape[0], -1),
                     in_shardings=batch_sharding, out_shardings=batch_sharding)
    _, init_params, init_batch_stats = split_model(
        config_lib.build_model(config, in_channels, config.seed))
    results["baselines"] = {
        "raw_pixels": evaluate_features(pixels),
        "random_init": evaluate_features(encoder_fn(*sharding.replicate((init_params, init_batch_stats), mesh))),
    }
  results["eval_seconds"] = round(time.perf_counter() - start, 1)
  if jax.process_index() == 0:
    with open(os.path.join(workdir, "results.json"), "w") as f:
      json.dump(results, f, indent=2)
    print(format_table(results), flush=True)
  return results


def format_table(results: dict[str, Any]) -> str:
  """Markdown table: one row per feature source, one column per protocol."""
  rows = [(f"{results['method']} ({results['steps']} steps)", results)]
  rows += [(name, values) for name, values in results.get("baselines", {}).items()]
  lines = ["| features | " + " | ".join(PROTOCOL_KEYS) + " |",
           "|---" * (len(PROTOCOL_KEYS) + 1) + "|"]
  for name, values in rows:
    lines.append(f"| {name} | " + " | ".join(f"{values[k]:.4f}" for k in PROTOCOL_KEYS) + " |")
  return "\n".join(lines)
