"""Relative patch position: which of the 8 neighbours of the centre tile is the second tile?

Doersch, Gupta & Efros, "Unsupervised Visual Representation Learning by Context
Prediction", ICCV 2015. From a 3x3 grid of tiles with gaps and jitter (`tiles.py`, each
tile normalised on its own), the centre tile and one random neighbour go through the shared
backbone; a classifier on the two feature vectors side by side predicts the neighbour's
position (8 classes, row-major: 0 = top-left ... 7 = bottom-right).

`grid=2` cuts a 2x2 grid instead (tiles of a quarter of the image, 2.25x the pixels of a
3x3 grid's): the grid has no centre, so the first tile is any cell and the second any other
(every two cells of a 2x2 grid are neighbours); the label is still the second tile's
direction from the first, one of the same 8 (12 ordered pairs: each horizontal and vertical
direction twice, each diagonal once).

`neighbours="all"` classifies every one of the 8 neighbours against the centre instead of
one drawn at random: 9 tiles through the backbone give 8 labelled pairs (one neighbour: 2
tiles, 1 pair), so each step carries 8 / 9 pairs per encoded tile instead of 1 / 2.

`min_tile_std` > 0 leaves out of the loss (and the accuracy) every pair with a blank tile:
one whose standard deviation after the per-tile normalisation is at most `min_tile_std`
(a tile of one colour normalises to all zeros; one with any structure to ~1). Fashion-MNIST's
black backgrounds leave such tiles at the grid's corners and edges, and their position
cannot be told from their pixels. `relative_position_informative` logs the share kept.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jax_ssl.config.typed import check
from jax_ssl.methods import classification, tiles
from jax_ssl.methods.spec import Metrics, MethodSpec, SSLModel, StepContext

CENTRE = 4
NEIGHBOURS = (0, 1, 2, 3, 5, 6, 7, 8)  # cells of the 3x3 grid around the centre, row-major
NEIGHBOUR_MODES = ("one", "all")
GRIDS = (2, 3)


def neighbour_pairs(grid: int) -> np.ndarray:
  """[P, 3] int: (first cell, second cell, label) for every pair the task draws from, in
  row-major cell order; label k = the second cell lies in the direction of `NEIGHBOURS[k]`
  from the 3x3 centre. grid 3: the centre and each of its 8 neighbours (label = row);
  grid 2: every ordered pair of distinct cells."""
  directions = [(cell // 3 - 1, cell % 3 - 1) for cell in NEIGHBOURS]
  firsts = [CENTRE] if grid == 3 else range(grid * grid)
  steps = {(a, b): (b // grid - a // grid, b % grid - a % grid)
           for a in firsts for b in range(grid * grid)}
  pairs = [(a, b, directions.index(step)) for (a, b), step in steps.items() if step in directions]
  return np.asarray(pairs, dtype=np.int32)


def centre_and_all_neighbours(rng: jax.Array, images: jax.Array, *, gap: int, jitter: int,
                              tile_resize: int = 0, tile_statistics: str = "unit",
                              grid: int = 3) -> tuple[jax.Array, jax.Array]:
  """-> (the grid * grid tiles [B, grid * grid, s, s, C] of `tiles.cut_tiles`, row-major,
  labels [8] = 0..7): on the 3x3 grid, neighbour `NEIGHBOURS[k]` of each image has label k."""
  tile_rng, _ = jax.random.split(rng)
  cut = tiles.cut_tiles(tile_rng, images, grid=grid, gap=gap, jitter=jitter,
                        tile_resize=tile_resize, tile_statistics=tile_statistics)
  return cut, jnp.arange(len(NEIGHBOURS))


def tile_and_neighbour(rng: jax.Array, images: jax.Array, *, gap: int, jitter: int,
                       tile_resize: int = 0, tile_statistics: str = "unit", grid: int = 3
                       ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """-> (first tiles [B, s, s, C], neighbour tiles [B, s, s, C], labels [B] in 0..7): one
  random pair of `neighbour_pairs(grid)` per image (on the 3x3 grid: the centre and one of
  its neighbours) from the tiles `centre_and_all_neighbours` cuts with `rng`."""
  cut, _ = centre_and_all_neighbours(rng, images, gap=gap, jitter=jitter, grid=grid,
                                     tile_resize=tile_resize, tile_statistics=tile_statistics)
  _, label_rng = jax.random.split(rng)
  pairs = jnp.asarray(neighbour_pairs(grid))
  drawn = pairs[jax.random.randint(label_rng, (images.shape[0],), 0, len(pairs))]

  def tile(cells):
    return jnp.take_along_axis(cut, cells[:, None, None, None, None], axis=1)[:, 0]

  return tile(drawn[:, 0]), tile(drawn[:, 1]), drawn[:, 2]


@dataclasses.dataclass(frozen=True)
class Args:
  """`method_args.*` of relative position. Defaults: the 3x3 grid with one random neighbour
  per image, as the paper, with a 1-pixel gap and jitter (a small image's; the ImageNet
  recipe, experiments/imagenet/relative_position_resnet50.py, sets gap 0, jitter 21), each
  tile normalised to zero mean and unit std, every pair in the loss.

  Attributes:
    gap, jitter, grid: the grid x grid tiles of `tiles.cut_tiles` (grid 2 or 3).
    tile_resize: each tile resized to this side (0: as cut).
    tile_statistics: `tiles.normalize_tiles` statistics, "unit" or "images".
    neighbours: "one" (a random neighbour per image) or "all" (every neighbour of the centre).
    min_tile_std: pairs with a tile at most this std after normalisation are left out of the
      loss (0: none); neighbours="one" only.
  """

  gap: int = 1
  jitter: int = 1
  tile_resize: int = 0
  tile_statistics: str = "unit"
  neighbours: str = "one"
  grid: int = 3
  min_tile_std: float = 0.0

  def validate(self) -> None:
    check(self.neighbours in NEIGHBOUR_MODES,
          f"method_args.neighbours={self.neighbours!r}; use one of {NEIGHBOUR_MODES}")
    check(self.grid in GRIDS, f"method_args.grid={self.grid!r}; use one of {GRIDS}")
    check(self.neighbours != "all" or self.grid == 3,
          "method_args.neighbours='all' needs the 3x3 grid's centre; set method_args.grid=3 "
          "or method_args.neighbours='one'")
    check(not (self.min_tile_std > 0 and self.neighbours == "all"),
          "method_args.min_tile_std applies to neighbours='one' only; set "
          "method_args.min_tile_std=0 or method_args.neighbours='one'")
    tiles.check_tile_args(self, "gap", "jitter", "tile_resize", "min_tile_std")


@dataclasses.dataclass(frozen=True)
class Heads(classification.ClassifierHeads):
  """`heads.*`: the 8-way position classifier on the two tiles' features side by side
  (defaults: experiments/imagenet/relative_position_resnet50.py's 2 layers, 4096 wide)."""


def make_heads(feature_dim: int, heads: Heads, args: Args,
               rngs: nnx.Rngs) -> dict[str, nnx.Module]:
  """{"classifier": [first tile features, second tile features] -> 8 position logits}."""
  del args  # the pair and the 8 classes are the same for every argument
  return classification.classifier_head(2 * feature_dim, len(NEIGHBOURS), heads, rngs)


def objective(model: SSLModel, views: Sequence[jax.Array], method_state: Any,
              context: StepContext, args: Args) -> tuple[jax.Array, Metrics, Any]:
  """Cross-entropy of the position classifier on pairs of tiles of views[0] (cut and drawn
  from `context.rng`); logs the loss, the accuracy and, with min_tile_std > 0, the share of
  pairs kept (`relative_position_informative`)."""
  del method_state
  min_tile_std = args.min_tile_std
  cut = dict(gap=args.gap, jitter=args.jitter, tile_resize=args.tile_resize,
             tile_statistics=args.tile_statistics, grid=args.grid)
  if args.neighbours == "all":
    all_tiles, neighbour_labels = centre_and_all_neighbours(context.rng, views[0], **cut)
    batch, num_tiles = all_tiles.shape[:2]
    # One backbone pass over every tile (shared weights).
    features = model.backbone(all_tiles.reshape(-1, *all_tiles.shape[2:]))
    features = features.reshape(batch, num_tiles, -1)
    others = features[:, jnp.asarray(NEIGHBOURS)]  # [B, 8, D]
    centre = jnp.broadcast_to(features[:, CENTRE:CENTRE + 1], others.shape)
    pair = jnp.concatenate([centre, others], axis=-1).reshape(batch * len(NEIGHBOURS), -1)
    labels = jnp.tile(neighbour_labels, batch)
  else:
    first, neighbour, labels = tile_and_neighbour(context.rng, views[0], **cut)
    features = model.backbone(jnp.concatenate([first, neighbour]))  # one pass, shared weights
    pair = jnp.concatenate(jnp.split(features, 2), axis=-1)
  logits = model.heads["classifier"](pair)
  weights = None
  if min_tile_std > 0:
    weights = ((jnp.std(first, axis=(1, 2, 3)) > min_tile_std)
               & (jnp.std(neighbour, axis=(1, 2, 3)) > min_tile_std)).astype(jnp.float32)
  loss, accuracy = classification.cross_entropy_and_accuracy(logits, labels, weights)
  metrics = {"relative_position": loss, "relative_position_accuracy": accuracy}
  if weights is not None:
    metrics["relative_position_informative"] = jnp.mean(weights)
  return loss, metrics, {}


SPEC = MethodSpec(
    name="relative_position",
    num_views=1,
    make_heads=make_heads,
    objective=objective,
    args_type=Args,
    heads_type=Heads,
)
