"""Jigsaw puzzles: predict which of a fixed set of permutations shuffled an image's tiles.

Noroozi & Favaro, "Unsupervised Learning of Visual Representations by Solving Jigsaw
Puzzles", ECCV 2016. The image is cut into a 3x3 grid of tiles with gaps and jitter
(`tiles.py`), each tile is normalised on its own, the tiles are shuffled by one of
`num_permutations` permutations chosen for a large Hamming distance (Algorithm 1), each
tile goes through the shared backbone (the "context-free network"), and a classifier on
the concatenated tile features predicts the permutation's index.

`layout="image"` instead puts the shuffled tiles back together into one image of the
input's size (each tile resized to its cell) and the backbone sees that whole scrambled
image; the classifier predicts the permutation from its pooled features (Carlucci et al.,
"Domain Generalization by Solving Jigsaw Puzzles", CVPR 2019, JiGen). The encoder then
learns at the scale and field of view it is evaluated at, for a quarter (2x2) or a ninth
(3x3) of the tile layout's backbone cost. JiGen also leaves a fraction of the examples in
order (its "data bias" beta; here `unshuffled_fraction`), so the encoder sees whole images
as they are evaluated; the identity permutation is their class.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jax_ssl.config.typed import check
from jax_ssl.methods import classification, tiles
from jax_ssl.methods.spec import Metrics, MethodSpec, SSLModel, StepContext


def shuffle_tiles(rng: jax.Array, images: jax.Array, permutations: jax.typing.ArrayLike, *,
                  grid: int, gap: int, jitter: int, tile_resize: int = 0,
                  tile_statistics: str = "unit", unshuffled_fraction: float = 0.0
                  ) -> tuple[jax.Array, jax.Array]:
  """-> ([B, T, s, s, C] tiles of `tiles.cut_tiles` in shuffled order, [B] permutation
  indices).

  Position j of example b holds source tile `permutations[label_b, j]`. With
  `unshuffled_fraction` > 0 each example is, with that probability, left in order (the
  label of the identity permutation, which `permutations` must hold).
  """
  tile_rng, label_rng = jax.random.split(rng)
  cut = tiles.cut_tiles(tile_rng, images, grid=grid, gap=gap, jitter=jitter,
                        tile_resize=tile_resize, tile_statistics=tile_statistics)
  permutations = np.asarray(permutations)
  if unshuffled_fraction > 0:
    label_rng, keep_rng = jax.random.split(label_rng)
  labels = jax.random.randint(label_rng, (images.shape[0],), 0, permutations.shape[0])
  if unshuffled_fraction > 0:
    keep = jax.random.bernoulli(keep_rng, unshuffled_fraction, labels.shape)
    labels = jnp.where(keep, identity_index(permutations), labels)
  order = jnp.asarray(permutations)[labels]
  return jnp.take_along_axis(cut, order[:, :, None, None, None], axis=1), labels


def _identity_rows(permutations: np.ndarray) -> np.ndarray:
  """Indices of the rows of `permutations` [P, T] that are the identity."""
  return np.flatnonzero((permutations == np.arange(permutations.shape[1])).all(axis=1))


def identity_index(permutations: np.ndarray) -> int:
  """Row of the identity permutation in `permutations` [P, T]."""
  rows = _identity_rows(permutations)
  if not len(rows):
    raise ValueError("the permutation set has no identity permutation to leave tiles in order")
  return int(rows[0])


def puzzle_permutations(num_permutations: int, num_tiles: int, seed: int,
                        unshuffled_fraction: float) -> np.ndarray:
  """The classes: `tiles.permutation_set`, plus the identity as one more (last) class when
  some examples stay in order (`unshuffled_fraction` > 0) and the set lacks it."""
  permutations = tiles.permutation_set(num_permutations, num_tiles, seed)
  if unshuffled_fraction > 0 and not len(_identity_rows(permutations)):
    permutations = np.concatenate([permutations, np.arange(num_tiles, dtype=np.int32)[None]])
  return permutations


LAYOUTS = ("tiles", "image")
GRIDS = (2, 3)  # permutation_set enumerates all (grid * grid)! orderings: at most 3x3


@dataclasses.dataclass(frozen=True)
class Args:
  """`method_args.*` of jigsaw. Defaults: a 3x3 puzzle of 100 maximal-Hamming permutations
  with a 1-pixel gap and jitter (a small image's; the ImageNet recipe,
  experiments/imagenet/jigsaw_resnet50.py, sets 1000 permutations, gap 0, jitter 11), each
  tile normalised to zero mean and unit std, every example shuffled.

  Attributes:
    grid, gap, jitter: the grid x grid tiles of `tiles.cut_tiles`.
    num_permutations, permutation_seed: the classes, `tiles.permutation_set`.
    tile_resize: each tile resized to this side (0: as cut); "tiles" layout only.
    tile_statistics: `tiles.normalize_tiles` statistics, "unit" or "images".
    layout: "tiles" (each tile through the backbone, the paper's) or "image" (the shuffled
      tiles reassembled into one image, JiGen's).
    unshuffled_fraction: the share of examples left in order (JiGen's beta), in [0, 1).
  """

  grid: int = 3
  gap: int = 1
  jitter: int = 1
  num_permutations: int = 100
  permutation_seed: int = 0
  tile_resize: int = 0
  tile_statistics: str = "unit"
  layout: str = "tiles"
  unshuffled_fraction: float = 0.0

  def validate(self) -> None:
    check(0 <= self.unshuffled_fraction < 1,
          f"method_args.unshuffled_fraction={self.unshuffled_fraction}; use a fraction in "
          f"[0, 1) (0: every example shuffled)")
    check(self.layout in LAYOUTS, f"method_args.layout={self.layout!r}; use one of {LAYOUTS}")
    check(self.layout != "image" or not self.tile_resize,
          f"method_args.tile_resize={self.tile_resize} with layout='image', which resizes "
          f"every tile to its cell; set tile_resize=0")
    check(self.grid in GRIDS, f"method_args.grid={self.grid}; use one of {GRIDS}")
    orderings = math.factorial(self.grid * self.grid)
    check(1 <= self.num_permutations <= orderings,
          f"method_args.num_permutations={self.num_permutations}; a {self.grid}x{self.grid} "
          f"grid has {orderings} permutations, use 1 to {orderings}")
    tiles.check_tile_args(self, "gap", "jitter", "tile_resize")


@dataclasses.dataclass(frozen=True)
class Heads(classification.ClassifierHeads):
  """`heads.*`: the permutation classifier on the tiles' concatenated features (defaults:
  experiments/imagenet/jigsaw_resnet50.py's 2 layers, 4096 wide)."""


def scrambled_images(rng: jax.Array, images: jax.Array, permutations: jax.typing.ArrayLike, *,
                     grid: int, gap: int, jitter: int, tile_statistics: str = "unit",
                     unshuffled_fraction: float = 0.0) -> tuple[jax.Array, jax.Array]:
  """-> ([B, H, W, C] images whose grid cells hold `shuffle_tiles`' tiles (each resized to
  the cell), [B] permutation indices): the `layout="image"` input."""
  _, height, width, _ = images.shape
  shuffled, labels = shuffle_tiles(rng, images, permutations, grid=grid, gap=gap,
                                   jitter=jitter, tile_resize=min(height, width) // grid,
                                   tile_statistics=tile_statistics,
                                   unshuffled_fraction=unshuffled_fraction)
  return tiles.assemble_tiles(shuffled, grid=grid, height=height, width=width), labels


def make_heads(feature_dim: int, heads: Heads, args: Args,
               rngs: nnx.Rngs) -> dict[str, nnx.Module]:
  """{"classifier": the grid * grid tile features side by side ("tiles"; the pooled
  features of the scrambled image with "image") -> one logit per permutation}."""
  inputs = 1 if args.layout == "image" else args.grid ** 2
  classes = len(puzzle_permutations(args.num_permutations, args.grid ** 2,
                                    args.permutation_seed, args.unshuffled_fraction))
  return classification.classifier_head(inputs * feature_dim, classes, heads, rngs)


def objective(model: SSLModel, views: Sequence[jax.Array], method_state: Any,
              context: StepContext, args: Args) -> tuple[jax.Array, Metrics, Any]:
  """Cross-entropy of the permutation classifier on views[0] shuffled by a permutation drawn
  per example from `context.rng`; logs the loss and the classifier's accuracy."""
  del method_state
  permutations = puzzle_permutations(args.num_permutations, args.grid * args.grid,
                                     args.permutation_seed, args.unshuffled_fraction)
  if args.layout == "image":
    scrambled, labels = scrambled_images(context.rng, views[0], permutations, grid=args.grid,
                                         gap=args.gap, jitter=args.jitter,
                                         tile_statistics=args.tile_statistics,
                                         unshuffled_fraction=args.unshuffled_fraction)
    logits = model.heads["classifier"](model.backbone(scrambled))
  else:
    shuffled, labels = shuffle_tiles(context.rng, views[0], permutations, grid=args.grid,
                                     gap=args.gap, jitter=args.jitter,
                                     tile_resize=args.tile_resize,
                                     tile_statistics=args.tile_statistics,
                                     unshuffled_fraction=args.unshuffled_fraction)
    batch, num_tiles = shuffled.shape[:2]
    # One backbone pass over every tile of every example (shared weights, as the paper's
    # siamese-ennead), then the tile features side by side in shuffled order.
    features = model.backbone(shuffled.reshape(batch * num_tiles, *shuffled.shape[2:]))
    logits = model.heads["classifier"](features.reshape(batch, -1))
  loss, accuracy = classification.cross_entropy_and_accuracy(logits, labels)
  return loss, {"jigsaw": loss, "jigsaw_accuracy": accuracy}, {}


SPEC = MethodSpec(
    name="jigsaw",
    num_views=1,
    make_heads=make_heads,
    objective=objective,
    args_type=Args,
    heads_type=Heads,
)
