"""Patches and masks for masked image modelling, on device and jit-able.

Images are [B, H, W, C]; a patch grid of `grid_h x grid_w` patches of `p x p` pixels is
flattened row-major into N = grid_h * grid_w tokens (token n = row n // grid_w, column
n % grid_w), the same order as the ViT's patch embedding. Masks are bool [B, N], True =
masked. Every generator masks exactly the same number of tokens in every example, so the
shapes that depend on it (the visible tokens an MAE encoder sees) are static under `jax.jit`;
each is a pure function of its rng (the same key gives the same mask on every device and on
a resumed run). I-JEPA's multi-block masks, whose token counts vary per image, are in
`jax_ssl.multiblock`.

References:
  He et al., "Masked Autoencoders Are Scalable Vision Learners", CVPR 2022 (random masking
  by argsort of noise, patchify).
  Bao et al., "BEiT: BERT Pre-Training of Image Transformers", ICLR 2022 (blockwise masking,
  appendix: its MaskingGenerator).
  Xie et al., "SimMIM: A Simple Framework for Masked Image Modeling", CVPR 2022 (random
  masking of larger mask units).
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike


def patchify(images: ArrayLike, patch_size: int) -> jax.Array:
  """[B, H, W, C] -> [B, N, p * p * C]; each patch flattened (row, column, channel) as MAE's.

  H and W must be multiples of `patch_size`.
  """
  images = jnp.asarray(images)
  batch, height, width, channels = images.shape
  if height % patch_size or width % patch_size:
    raise ValueError(f"images of {height}x{width} px do not split into {patch_size}x{patch_size} "
                     f"patches; use a multiple of {patch_size}")
  grid_h, grid_w = height // patch_size, width // patch_size
  x = images.reshape(batch, grid_h, patch_size, grid_w, patch_size, channels)
  x = jnp.transpose(x, (0, 1, 3, 2, 4, 5))
  return x.reshape(batch, grid_h * grid_w, patch_size * patch_size * channels)


def unpatchify(patches: ArrayLike, patch_size: int, grid_h: int, grid_w: int) -> jax.Array:
  """Inverse of `patchify`: [B, grid_h * grid_w, p * p * C] -> [B, grid_h * p, grid_w * p, C]."""
  patches = jnp.asarray(patches)
  batch, num_patches, patch_pixels = patches.shape
  channels = patch_pixels // (patch_size * patch_size)
  if num_patches != grid_h * grid_w or channels * patch_size * patch_size != patch_pixels:
    raise ValueError(f"patches {patches.shape} do not fit a {grid_h}x{grid_w} grid of "
                     f"{patch_size}x{patch_size} patches")
  x = patches.reshape(batch, grid_h, grid_w, patch_size, patch_size, channels)
  x = jnp.transpose(x, (0, 1, 3, 2, 4, 5))
  return x.reshape(batch, grid_h * patch_size, grid_w * patch_size, channels)


def num_masked(num_patches: int, mask_ratio: float) -> int:
  """Tokens masked out of `num_patches` at `mask_ratio`: N - int(N * (1 - ratio)), as MAE
  keeps int(N * (1 - ratio)) (147 of 196 at 0.75; SimMIM's ceil(N * ratio) for its ratios)."""
  if not 0 <= mask_ratio < 1:
    raise ValueError(f"mask_ratio={mask_ratio}; must be in [0, 1)")
  return num_patches - int(num_patches * (1 - mask_ratio))


def random_mask(rng: jax.Array, batch: int, num_patches: int, mask_ratio: float) -> jax.Array:
  """MAE's random masking: bool [B, N] with exactly `num_masked(N, mask_ratio)` True per row.

  The tokens with the largest uniform noise are masked (MAE shuffles by argsort of the noise
  and keeps the first int(N * (1 - ratio))), so every subset of that size is equally likely.
  """
  noise = jax.random.uniform(rng, (batch, num_patches))
  ranks = jnp.argsort(jnp.argsort(noise, axis=1), axis=1)
  return ranks >= num_patches - num_masked(num_patches, mask_ratio)


def tube_masked_count(patches_per_slot: int, mask_ratio: float) -> int:
  """VideoMAE's masked tokens per time slot: int(mask_ratio * patches_per_slot) (176 of 196
  at 0.9; its TubeMaskingGenerator, which rounds down where MAE's `num_masked` rounds up)."""
  if not 0 <= mask_ratio < 1:
    raise ValueError(f"mask_ratio={mask_ratio}; must be in [0, 1)")
  return int(mask_ratio * patches_per_slot)


def repeat_over_time(spatial_mask: ArrayLike, time_slots: int) -> jax.Array:
  """A per-clip spatial mask [B, h * w] -> the token mask [B, time_slots * h * w] of a video
  ViT (tokens time-major), the same spatial positions masked in every time slot."""
  return jnp.tile(jnp.asarray(spatial_mask), (1, time_slots))


def tube_mask(rng: jax.Array, batch: int, time_slots: int, patches_per_slot: int,
              mask_ratio: float) -> jax.Array:
  """VideoMAE's tube masking: bool [B, time_slots * patches_per_slot], True = masked.

  Per clip, `tube_masked_count(patches_per_slot, mask_ratio)` spatial positions drawn
  uniformly without replacement (the largest uniform noise, as `random_mask`), then masked
  in every time slot (tokens time-major: token n is slot n // patches_per_slot, spatial
  position n % patches_per_slot), as VideoMAE's `TubeMaskingGenerator` tiles one shuffled
  per-frame mask over the frames: a masked patch cannot be copied from its neighbour in
  time. Tong et al., "VideoMAE", NeurIPS 2022, sec. 3.3.
  """
  count = tube_masked_count(patches_per_slot, mask_ratio)
  noise = jax.random.uniform(rng, (batch, patches_per_slot))
  ranks = jnp.argsort(jnp.argsort(noise, axis=1), axis=1)
  return repeat_over_time(ranks >= patches_per_slot - count, time_slots)


def upsample_mask(mask: ArrayLike, grid_h: int, grid_w: int, factor: int) -> jax.Array:
  """A mask over a coarse `grid_h x grid_w` grid of mask units -> the token grid with each unit
  covering `factor x factor` tokens: [B, grid_h * grid_w] -> [B, grid_h * f * grid_w * f].

  SimMIM masks 32 px units on a 16 px ViT: random_mask on the coarse grid, factor 2.
  """
  mask = jnp.asarray(mask).reshape(-1, grid_h, grid_w)
  mask = jnp.repeat(jnp.repeat(mask, factor, axis=1), factor, axis=2)
  return mask.reshape(mask.shape[0], -1)


def _masked_neighbours(mask: jax.Array) -> jax.Array:
  """Number of masked 4-neighbours of every cell of a [h, w] bool grid."""
  padded = jnp.pad(mask.astype(jnp.int32), 1)
  return padded[:-2, 1:-1] + padded[2:, 1:-1] + padded[1:-1, :-2] + padded[1:-1, 2:]


def _block_mask_one(rng: jax.Array, grid_h: int, grid_w: int, count: int, min_block: int,
                    max_block: int, log_aspect: tuple[float, float],
                    max_failures: int) -> jax.Array:
  """One example's [grid_h, grid_w] blockwise mask with exactly `count` True cells."""
  rows = jnp.arange(grid_h)[:, None]
  cols = jnp.arange(grid_w)[None, :]

  def add_rectangle(carry):
    mask, masked, failures, key = carry
    key, draw = jax.random.split(key)
    u = jax.random.uniform(draw, (4,))
    remaining = jnp.minimum(count - masked, max_block)
    # BEiT: area ~ U(min_num_patches, max_mask_patches), log aspect ~ U(log r, -log r).
    area = min_block + u[0] * (remaining - min_block)
    aspect = jnp.exp(log_aspect[0] + u[1] * (log_aspect[1] - log_aspect[0]))
    height = jnp.round(jnp.sqrt(area * aspect)).astype(jnp.int32)
    width = jnp.round(jnp.sqrt(area / aspect)).astype(jnp.int32)
    fits = (height >= 1) & (width >= 1) & (height < grid_h) & (width < grid_w)
    top = jnp.floor(u[2] * (grid_h - height + 1)).astype(jnp.int32)
    left = jnp.floor(u[3] * (grid_w - width + 1)).astype(jnp.int32)
    rect = (rows >= top) & (rows < top + height) & (cols >= left) & (cols < left + width)
    new = jnp.sum(rect & ~mask)
    # BEiT's acceptance: the rectangle adds at least one and at most `remaining` patches,
    # so the count never overshoots.
    accept = fits & (new > 0) & (new <= remaining)
    return (jnp.where(accept, mask | rect, mask), masked + jnp.where(accept, new, 0),
            jnp.where(accept, 0, failures + 1), key)

  def rectangles_left(carry):
    _, masked, failures, _ = carry
    return (masked < count) & (failures < max_failures)

  rect_rng, grow_rng = jax.random.split(rng)
  mask, masked, _, _ = jax.lax.while_loop(
      rectangles_left, add_rectangle,
      (jnp.zeros((grid_h, grid_w), bool), jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32),
       rect_rng))

  def grow(carry):
    # Top up at the blocks' borders: unmasked cells with the most masked neighbours first
    # (ties broken at random), so every added cell touches a block; with nothing masked yet,
    # one random cell starts a block.
    mask, masked, key = carry
    key, draw = jax.random.split(key)
    neighbours = _masked_neighbours(mask)
    candidate = ~mask & ((neighbours > 0) | (masked == 0))
    score = jnp.where(candidate, neighbours + jax.random.uniform(draw, mask.shape), -1.0)
    rank = jnp.argsort(jnp.argsort(-score.reshape(-1))).reshape(mask.shape)
    wanted = jnp.where(masked == 0, 1, count - masked)
    add = candidate & (rank < wanted)
    return mask | add, masked + jnp.sum(add), key

  mask, _, _ = jax.lax.while_loop(lambda carry: carry[1] < count, grow,
                                  (mask, masked, grow_rng))
  return mask.reshape(-1)


@functools.partial(jax.jit, static_argnames=(
    "batch", "grid_h", "grid_w", "num_masked", "min_block_patches", "max_block_patches",
    "min_aspect", "max_aspect", "max_failures"))
def block_mask(rng: jax.Array, batch: int, grid_h: int, grid_w: int, num_masked: int, *,
               min_block_patches: int = 4, max_block_patches: int | None = None,
               min_aspect: float = 0.3, max_aspect: float | None = None,
               max_failures: int = 10) -> jax.Array:
  """BEiT's blockwise masking (one of SimMIM's ablated strategies): bool [B, grid_h * grid_w],
  exactly `num_masked` True per row, in contiguous rectangles.

  Per example (its own key, split from `rng`), as BEiT's MaskingGenerator: rectangles of
  area ~ U(min_block_patches, min(remaining, max_block_patches)), aspect ratio log-uniform
  in [min_aspect, max_aspect] (default 1 / min_aspect), strictly smaller than the grid, at a
  uniform position, each kept if it adds between 1 and the remaining count of new patches.
  (BEiT's pre-training masks 75 of 196 patches, blocks of at least 16, aspect 0.3 to 1/0.3.)
  BEiT stops after `max_failures` rejected rectangles in a row and may fall short; here the
  shortfall is topped up at the blocks' borders (cells with the most masked neighbours
  first), so the count is exact and every added patch touches a block. The acceptance rule
  never overshoots, so nothing needs trimming.
  """
  size = grid_h * grid_w
  if not 0 <= num_masked <= size:
    raise ValueError(f"num_masked={num_masked}; must be in [0, {size}] for a "
                     f"{grid_h}x{grid_w} grid")
  max_aspect = max_aspect or 1 / min_aspect
  log_aspect = (math.log(min_aspect), math.log(max_aspect))
  max_block = max_block_patches or num_masked
  keys = jax.random.split(rng, batch)
  return jax.vmap(lambda key: _block_mask_one(key, grid_h, grid_w, num_masked,
                                              min_block_patches, max_block, log_aspect,
                                              max_failures))(keys)


class MaskIndices(NamedTuple):
  """Token positions of a mask with a fixed count per example (all int32).

  keep: [B, N - M] visible positions, ascending: what an MAE encoder sees.
  masked: [B, M] masked positions, ascending.
  restore: [B, N]: token n sits at `restore[:, n]` in concat(keep, masked), so
    take_along_axis(concat([visible, mask_tokens]), restore) puts every token back in place
    (MAE's ids_restore).
  """

  keep: jax.Array
  masked: jax.Array
  restore: jax.Array


def mask_indices(mask: ArrayLike, num_masked: int) -> MaskIndices:
  """Keep/masked/restore indices of a bool [B, N] mask with exactly `num_masked` per row.

  A stable argsort of the mask (as MAE's argsort of the noise) lists the visible tokens
  first, then the masked ones, each in ascending order.
  """
  mask = jnp.asarray(mask)
  order = jnp.argsort(mask.astype(jnp.int32), axis=1, stable=True).astype(jnp.int32)
  keep_count = mask.shape[1] - num_masked
  restore = jnp.argsort(order, axis=1).astype(jnp.int32)
  return MaskIndices(keep=order[:, :keep_count], masked=order[:, keep_count:], restore=restore)
