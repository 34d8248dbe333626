"""Frozen features of a dataset split, batch by batch, jitted and sharded over the mesh; and
the frozen patch tokens the attentive probe reads (`patch_tokens`, `make_token_fn`)."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.experimental import multihost_utils

from jax_ssl import sharding
from jax_ssl.data import pipeline
from jax_ssl.errors import ConfigError


def extract(feature_fn, source, *, batch_size: int, limit: int, mesh, image_size: int = 0,
            dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
  """Features and labels of `source` (first `limit` records if > 0), batch by batch.

  `feature_fn(images)` runs jitted on a global batch sharded over the mesh; every process
  gets the full feature matrix back, as `dtype` (float16 halves the host memory of the
  attentive probe's cached tokens).
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
    features.append(np.asarray(out[:num_valid], dtype))
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


def patch_tokens(backbone, images: jax.Array) -> jax.Array:
  """The frozen encoder's output tokens, float32 [B, T, D], that the attentive probe pools.

  ViTs: `encode_tokens(embed_patches(images))` without the prefix tokens (CLS, registers):
  the normalised patch tokens, as V-JEPA's probe reads its encoder's output (its ViTs have no
  CLS token). ResNets (`feature_map`): the positions of the last feature map, [B, h * w, C]
  (I-JEPA's probe idea applied to a CNN; CNN-JEPA evaluates linear probes only).

  Raises:
    ConfigError: for a backbone with neither (the VQ encoder).
  """
  if hasattr(backbone, "encode_tokens"):
    grid = (images.shape[1] // backbone.patch_size, images.shape[2] // backbone.patch_size)
    tokens = backbone.encode_tokens(backbone.embed_patches(images), grid=grid)
    return tokens[:, backbone.num_prefix_tokens:].astype(jnp.float32)
  if hasattr(backbone, "feature_map"):
    feature_map = backbone.feature_map(images)
    return feature_map.reshape(feature_map.shape[0], -1, feature_map.shape[-1]).astype(
        jnp.float32)
  raise ConfigError(f"eval.protocols 'attentive' needs patch tokens: a ViT or a ResNet "
                    f"backbone, not {type(backbone).__name__}; drop 'attentive' from "
                    f"eval.protocols")


def make_token_fn(graphdef):
  """Pure `(params, batch_stats, images) -> patch_tokens(backbone, images)` in eval mode
  (as step.make_feature_fn for the pooled features)."""

  def tokens(params, batch_stats, images):
    model = nnx.merge(graphdef, params, batch_stats)
    model.eval()
    return patch_tokens(model.backbone, images)

  return tokens
