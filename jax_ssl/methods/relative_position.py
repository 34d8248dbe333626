"""Relative patch position: which of the 8 neighbours of the centre tile is the second tile?

Doersch, Gupta & Efros, "Unsupervised Visual Representation Learning by Context
Prediction", ICCV 2015. From a 3x3 grid of tiles with gaps and jitter (`tiles.py`, each
tile normalised on its own), the centre tile and one random neighbour go through the shared
backbone; a classifier on the two feature vectors side by side predicts the neighbour's
position (8 classes, row-major: 0 = top-left ... 7 = bottom-right).

`neighbours="all"` classifies every one of the 8 neighbours against the centre instead of
one drawn at random: 9 tiles through the backbone give 8 labelled pairs (one neighbour: 2
tiles, 1 pair), so each step carries 8 / 9 pairs per encoded tile instead of 1 / 2.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from jax_ssl.errors import ConfigError
from jax_ssl.methods import classification, tiles
from jax_ssl.methods.spec import MethodSpec, SSLModel, StepContext

CENTRE = 4
NEIGHBOURS = (0, 1, 2, 3, 5, 6, 7, 8)  # cells of the 3x3 grid around the centre, row-major
NEIGHBOUR_MODES = ("one", "all")


def centre_and_all_neighbours(rng: jax.Array, images: jax.Array, *, gap: int, jitter: int,
                              tile_resize: int = 0, tile_statistics: str = "unit"
                              ) -> tuple[jax.Array, jax.Array]:
  """-> (the 9 tiles [B, 9, s, s, C] of `tiles.cut_tiles`' 3x3 grid, row-major, labels [8]
  = 0..7): neighbour `NEIGHBOURS[k]` of each image has label k."""
  tile_rng, _ = jax.random.split(rng)
  cut = tiles.cut_tiles(tile_rng, images, grid=3, gap=gap, jitter=jitter,
                        tile_resize=tile_resize, tile_statistics=tile_statistics)
  return cut, jnp.arange(len(NEIGHBOURS))


def centre_and_neighbour(rng: jax.Array, images: jax.Array, *, gap: int, jitter: int,
                         tile_resize: int = 0, tile_statistics: str = "unit"
                         ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """-> (centre tiles [B, s, s, C], neighbour tiles [B, s, s, C], labels [B] in 0..7): one
  random neighbour per image from the grid `centre_and_all_neighbours` cuts with `rng`."""
  cut, _ = centre_and_all_neighbours(rng, images, gap=gap, jitter=jitter,
                                     tile_resize=tile_resize, tile_statistics=tile_statistics)
  _, label_rng = jax.random.split(rng)
  labels = jax.random.randint(label_rng, (images.shape[0],), 0, len(NEIGHBOURS))
  neighbour = jnp.take_along_axis(
      cut, jnp.asarray(NEIGHBOURS)[labels][:, None, None, None, None], axis=1)[:, 0]
  return cut[:, CENTRE], neighbour, labels


def check_args(neighbours: str) -> None:
  """Raises ConfigError (one line, naming the fix) for an unknown `neighbours`."""
  if neighbours not in NEIGHBOUR_MODES:
    raise ConfigError(f"method_args.neighbours={neighbours!r}; use one of {NEIGHBOUR_MODES}")


def make_heads(feature_dim: int, head_args: Mapping[str, Any], method_args: Mapping[str, Any],
               rngs: nnx.Rngs):
  check_args(method_args["neighbours"])
  return classification.classifier_head(2 * feature_dim, len(NEIGHBOURS), head_args, rngs)


def objective(model: SSLModel, views: Sequence[jax.Array], method_state: Any,
              context: StepContext, *, gap: int, jitter: int, tile_resize: int,
              tile_statistics: str, neighbours: str):
  cut = dict(gap=gap, jitter=jitter, tile_resize=tile_resize, tile_statistics=tile_statistics)
  if neighbours == "all":
    grid, neighbour_labels = centre_and_all_neighbours(context.rng, views[0], **cut)
    batch, num_tiles = grid.shape[:2]
    features = model.backbone(grid.reshape(-1, *grid.shape[2:]))  # one pass, shared weights
    features = features.reshape(batch, num_tiles, -1)
    others = features[:, jnp.asarray(NEIGHBOURS)]  # [B, 8, D]
    centre = jnp.broadcast_to(features[:, CENTRE:CENTRE + 1], others.shape)
    pair = jnp.concatenate([centre, others], axis=-1).reshape(batch * len(NEIGHBOURS), -1)
    labels = jnp.tile(neighbour_labels, batch)
  else:
    centre, neighbour, labels = centre_and_neighbour(context.rng, views[0], **cut)
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
    default_method_args={"gap": 1, "jitter": 1, "tile_resize": 0, "tile_statistics": "unit",
                         "neighbours": "one"},
)
