"""Image tiles for the spatial pretext tasks (jigsaw, relative patch position), on device.

An image is cut into a `grid` x `grid` array of cells; each tile is a square crop inside its
cell, `gap` pixels smaller than the cell plus a random shift of up to `jitter` pixels, so
neighbouring tiles never touch (at least `gap` pixels apart) and never line up exactly:
the network cannot solve the task from continuing edges or lines (Doersch et al. 2015, sec.
3; Noroozi & Favaro 2016, sec. 3.2). Each tile is normalised on its own (zero mean, unit
std per channel), which removes the low-level shortcut of matching tile brightness.
"""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np


def tile_size(image_size: int, grid: int, gap: int, jitter: int) -> int:
  """Side of each tile: the cell side minus the gap and the jitter range."""
  return image_size // grid - gap - jitter


def grid_tiles(rng: jax.Array, images: jax.Array, *, grid: int, gap: int,
               jitter: int) -> jax.Array:
  """[B, H, W, C] -> [B, grid * grid, s, s, C] tiles in row-major cell order.

  Tile (r, c) of an example starts at (r * cell + gap // 2 + dy, c * cell + gap // 2 + dx)
  with dy, dx uniform in [0, jitter], drawn per example and tile.
  """
  batch, height, width, channels = images.shape
  cell = min(height, width) // grid
  size = tile_size(min(height, width), grid, gap, jitter)
  if size < 1:
    raise ValueError(f"grid={grid}, gap={gap}, jitter={jitter} leave no pixels for a tile "
                     f"of a {height}x{width} image")
  shifts = jax.random.randint(rng, (batch, grid * grid, 2), 0, jitter + 1)
  cells = jnp.arange(grid * grid)
  top = (cells // grid) * cell + gap // 2 + shifts[..., 0]
  left = (cells % grid) * cell + gap // 2 + shifts[..., 1]

  def crop(image, y, x):
    return jax.lax.dynamic_slice(image, (y, x, 0), (size, size, channels))

  return jax.vmap(jax.vmap(crop, in_axes=(None, 0, 0)))(images, top, left)


TILE_STATISTICS = ("unit", "images")


def check_tile_args(args, *nonnegative: str) -> None:
  """The `validate()` lines the tile tasks share: `nonnegative` keys of their Args >= 0 and
  `tile_statistics` one of TILE_STATISTICS (one-line ConfigError naming the key)."""
  from jax_ssl.config.typed import check  # pylint: disable=g-import-not-at-top
  for key in nonnegative:
    check(getattr(args, key) >= 0, f"method_args.{key}={getattr(args, key)}; must be >= 0")
  check(args.tile_statistics in TILE_STATISTICS,
        f"method_args.tile_statistics={args.tile_statistics!r}; use one of {TILE_STATISTICS}")


def normalize_tiles(tiles: jax.Array, eps: float = 1e-5, *, statistics: str = "unit",
                    images: jax.Array | None = None) -> jax.Array:
  """Each tile (and channel) to the same mean and standard deviation; [..., s, s, C].

  `statistics="unit"`: zero mean, unit standard deviation (the papers' per-tile
  normalisation: no tile can be placed by its brightness or contrast). `"images"`: the same,
  then scaled to the per-channel pixel mean and standard deviation of `images` (the batch
  the tiles were cut from, [B, H, W, C]): still one mean and std for every tile, but those of
  the whole images the encoder is evaluated on, so its first layers and BatchNorm statistics
  see inputs of the range they will be used on.
  """
  if statistics not in TILE_STATISTICS:
    raise ValueError(f"method_args.tile_statistics={statistics!r}; use one of {TILE_STATISTICS}")
  mean = jnp.mean(tiles, axis=(-3, -2), keepdims=True)
  variance = jnp.var(tiles, axis=(-3, -2), keepdims=True)
  unit = (tiles - mean) * jax.lax.rsqrt(variance + eps)
  if statistics == "unit":
    return unit
  return unit * jnp.std(images, axis=(0, 1, 2)) + jnp.mean(images, axis=(0, 1, 2))


def resize_tiles(tiles: jax.Array, size: int) -> jax.Array:
  """[..., s, s, C] -> [..., size, size, C] (bilinear; antialiased when shrinking); 0 keeps s.

  For small images (Fashion-MNIST's 7x7 tiles) the encoder can then learn at the resolution
  it is evaluated at, instead of on inputs a quarter of the size."""
  if not size or size == tiles.shape[-2]:
    return tiles
  return jax.image.resize(tiles, (*tiles.shape[:-3], size, size, tiles.shape[-1]), "bilinear")


def cut_tiles(rng: jax.Array, images: jax.Array, *, grid: int, gap: int, jitter: int,
              tile_resize: int = 0, tile_statistics: str = "unit") -> jax.Array:
  """[B, H, W, C] -> [B, grid * grid, s, s, C]: `grid_tiles`, then `normalize_tiles` to
  `tile_statistics`, then `resize_tiles` to s = `tile_resize` (when > 0)."""
  return resize_tiles(normalize_tiles(grid_tiles(rng, images, grid=grid, gap=gap, jitter=jitter),
                                      statistics=tile_statistics, images=images), tile_resize)


def assemble_tiles(tiles: jax.Array, *, grid: int, height: int, width: int) -> jax.Array:
  """[B, grid * grid, s, s, C] tiles in row-major cell order -> [B, height, width, C]: the
  tiles side by side in a grid x grid image, resized (bilinear) to height x width when
  grid * s differs from it. The inverse of cutting without gap or jitter."""
  batch, num_tiles, size, _, channels = tiles.shape
  if num_tiles != grid * grid:
    raise ValueError(f"{num_tiles} tiles do not fill a {grid}x{grid} grid")
  image = tiles.reshape(batch, grid, grid, size, size, channels).transpose(0, 1, 3, 2, 4, 5)
  image = image.reshape(batch, grid * size, grid * size, channels)
  if (grid * size, grid * size) == (height, width):
    return image
  return jax.image.resize(image, (batch, height, width, channels), "bilinear")


@functools.lru_cache(maxsize=8)
def permutation_set(count: int, num_tiles: int, seed: int) -> np.ndarray:
  """`count` permutations of `num_tiles` tiles with a large minimal Hamming distance.

  Noroozi & Favaro (2016), Algorithm 1 ("maximal" set): start from a random permutation
  (drawn with `seed`), then repeatedly add the permutation whose minimal Hamming distance
  to the chosen ones is largest (ties: the first in lexicographic order). Deterministic for
  a given (count, num_tiles, seed), so a run and its evaluation agree on the classes.

  Returns:
    int32 [count, num_tiles]; row k maps shuffled position -> source tile.
  """
  if num_tiles > 9:
    raise ValueError(f"num_tiles={num_tiles}: enumerating {num_tiles}! permutations is too "
                     "slow; use a grid of at most 3x3")
  candidates = np.array(list(itertools.permutations(range(num_tiles))), np.int8)
  if not 1 <= count <= len(candidates):
    raise ValueError(f"count={count}; {num_tiles} tiles have {len(candidates)} permutations")
  first = np.random.default_rng(seed).integers(len(candidates))
  chosen = [first]
  min_distance = np.sum(candidates != candidates[first], axis=1)
  for _ in range(count - 1):
    pick = int(np.argmax(min_distance))
    chosen.append(pick)
    min_distance = np.minimum(min_distance, np.sum(candidates != candidates[pick], axis=1))
  return candidates[chosen].astype(np.int32)
