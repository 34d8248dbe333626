"""Relative patch position: which of the 8 neighbours of the centre tile is the second tile?

Doersch, Gupta & Efros, "Unsupervised Visual Representation Learning by Context
Prediction", ICCV 2015. From a 3x3 grid of tiles with gaps and jitter (`tiles.py`, each
tile normalised on its own), the centre tile and one random neighbour go through the shared
backbone; a classifier on the two feature vectors side by side predicts the neighbour's
position (8 classes, row-major: 0 = top-left ... 7 = bottom-right).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from jax_ssl.methods import classification, tiles
from jax_ssl.methods.spec import MethodSpec, SSLModel, StepContext

CENTRE = 4
NEIGHBOURS = (0, 1, 2, 3, 5, 6, 7, 8)  # cells of the 3x3 grid around the centre, row-major


def centre_and_neighbour(rng: jax.Array, images: jax.Array, *, gap: int, jitter: int,
                         tile_resize: int = 0, tile_statistics: str = "unit"
                         ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """-> (centre tiles [B, s, s, C], neighbour tiles [B, s, s, C], labels [B] in 0..7), cut
  by `tiles.cut_tiles` from a 3x3 grid."""
  tile_rng, label_rng = jax.random.split(rng)
  cut = tiles.cut_tiles(tile_rng, images, grid=3, gap=gap, jitter=jitter,
                        tile_resize=tile_resize, tile_statistics=tile_statistics)
  labels = jax.random.randint(label_rng, (images.shape[0],), 0, len(NEIGHBOURS))
  neighbour = jnp.take_along_axis(
      cut, jnp.asarray(NEIGHBOURS)[labels][:, None, None, None, None], axis=1)[:, 0]
  return cut[:, CENTRE], neighbour, labels


def make_heads(feature_dim: int, head_args: Mapping[str, Any], method_args: Mapping[str, Any],
               rngs: nnx.Rngs):
  return classification.classifier_head(2 * feature_dim, len(NEIGHBOURS), head_args, rngs)


def objective(model: SSLModel, views: Sequence[jax.Array], method_state: Any,
              context: StepContext, *, gap: int, jitter: int, tile_resize: int,
              tile_statistics: str):
  centre, neighbour, labels = centre_and_neighbour(context.rng, views[0], gap=gap,
                                                   jitter=jitter, tile_resize=tile_resize,
                                                   tile_statistics=tile_statistics)
  features = model.backbone(jnp.concatenate([centre, neighbour]))  # one pass, shared weights
  pair = jnp.concatenate(jnp.split(features, 2), axis=-1)
  logits = model.heads["classifier"](pair)
  loss, accuracy = classification.cross_entropy_and_accuracy(logits, labels)
  return loss, {"relative_position": loss, "relative_position_accuracy": accuracy}, {}


SPEC = MethodSpec(
    name="relative_position",
    num_views=1,
    make_heads=make_heads,
    objective=objective,
    default_method_args={"gap": 1, "jitter": 1, "tile_resize": 0, "tile_statistics": "unit"},
)
