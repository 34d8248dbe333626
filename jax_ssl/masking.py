"""Patches and masks for masked image modelling, on device and jit-able.

Images are [B, H, W, C]; a patch grid of `grid_h x grid_w` patches of `p x p` pixels is
flattened row-major into N = grid_h * grid_w tokens (token n = row n // grid_w, column
n % grid_w), the same order as the ViT's patch embedding. Masks are bool [B, N], True =
masked. Every generator masks exactly the same number of tokens in every example, so the
shapes that depend on it (the visible tokens an MAE encoder sees) are static under `jax.jit`;
each is a pure function of its rng (the same key gives the same mask on every device and on
a resumed run).

References:
  He et al., "Masked Autoencoders Are Scalable Vision Learners", CVPR 2022 (random masking
  by argsort of noise, patchify).
  Bao et al., "BEiT: BERT Pre-Training of Image Transformers", ICLR 2022 (blockwise masking,
  appendix: its MaskingGenerator).
  Xie et al., "SimMIM: A Simple Framework for Masked Image Modeling", CVPR 2022 (random
  masking of larger mask units).
  Assran et al., "Self-Supervised Learning from Images with a Joint-Embedding Predictive
  Architecture", CVPR 2023 (I-JEPA's multi-block masks: `multiblock_masks`, whose context
  and target counts vary per image and are padded to static sizes instead).
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
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


# -- I-JEPA's multi-block masks ------------------------------------------------------------


class MultiBlockMasks(NamedTuple):
  """I-JEPA's context and target blocks as static-shape token indices (`multiblock_masks`).

  context: int32 [B, Kc], the context tokens the encoder sees (valid ones first, ascending).
  context_valid: bool [B, Kc]; False: padding (an image with fewer than Kc context tokens),
    to hide with the encoder's `key_valid`; its index is some non-context token.
  targets: int32 [B, T, Kt], each target block's tokens in raster order; Kt is the largest
    block the scale and aspect ranges allow (`max_block_area`).
  targets_valid: bool [B, T, Kt]; the first h * w of each block (the batch's block size) are
    valid, the rest repeat the block's last token.
  context_map: bool [B, N], True at every context token (before the cut to Kc).
  target_maps: bool [B, T, N], True inside target block t.
  (The maps are True = *in* the block, not the module's masked = True.)
  """

  context: jax.Array
  context_valid: jax.Array
  targets: jax.Array
  targets_valid: jax.Array
  context_map: jax.Array
  target_maps: jax.Array


def reference_block_size(u: float, grid_hw: tuple[int, int], scale: tuple[float, float],
                         aspect: tuple[float, float]) -> tuple[int, int]:
  """The block (height, width) of I-JEPA's `MaskCollator._sample_block_size` for its uniform
  draw `u`, in float64 as the reference: one `u` sets both the scale and the aspect ratio
  (the reference uses the same `_rand` for both), area int(N * scale), h = round(sqrt(area
  * aspect)), w = round(sqrt(area / aspect)), each capped at the grid side minus one."""
  grid_h, grid_w = grid_hw
  area = int(grid_h * grid_w * (scale[0] + u * (scale[1] - scale[0])))
  ratio = aspect[0] + u * (aspect[1] - aspect[0])
  height = int(round(math.sqrt(area * ratio)))
  width = int(round(math.sqrt(area / ratio)))
  return min(height, grid_h - 1), min(width, grid_w - 1)


@functools.lru_cache(maxsize=None)
def block_size_table(grid_hw: tuple[int, int], scale: tuple[float, float],
                     aspect: tuple[float, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Every block size `reference_block_size` gives, as a step function of its draw u.

  Returns (edges [S - 1] float64, heights [S] int32, widths [S] int32): for u in
  [edges[s - 1], edges[s]) the block is heights[s] x widths[s]. The size only changes where
  int(N * scale(u)) steps or sqrt(area * aspect(u)) or sqrt(area / aspect(u)) crosses a
  half-integer, so the table is exact (up to those measure-zero points): a draw on device
  looks its size up (`jnp.searchsorted`) and the largest block is known before tracing.
  """
  grid_h, grid_w = grid_hw
  num = grid_h * grid_w
  (s0, s1), (a0, a1) = scale, aspect
  points = {0.0, 1.0}
  if s1 > s0:  # where the area int(N * scale) steps
    points.update((j / num - s0) / (s1 - s0) for j in range(num + 1))
  if a1 > a0:  # where h or w would round differently for any area
    for area in range(max(int(num * s0), 1), int(num * s1) + 1):
      for k in range(max(grid_h, grid_w) + 1):
        half = (k + 0.5) ** 2
        points.update(((half / area - a0) / (a1 - a0), (area / half - a0) / (a1 - a0)))
  points = np.array(sorted(p for p in points if 0.0 <= p <= 1.0))
  middles = (points[:-1] + points[1:]) / 2
  sizes = np.array([reference_block_size(u, grid_hw, scale, aspect) for u in middles],
                   np.int32).reshape(-1, 2)
  # Merge neighbouring segments of the same size.
  change = np.concatenate([[True], np.any(sizes[1:] != sizes[:-1], axis=1)])
  edges = points[1:-1][change[1:]]
  return edges, sizes[change, 0], sizes[change, 1]


def max_block_area(grid_hw: tuple[int, int], scale: tuple[float, float],
                   aspect: tuple[float, float]) -> int:
  """The most tokens a block of these ranges covers (Kt of `multiblock_masks`)."""
  _, heights, widths = block_size_table(tuple(grid_hw), tuple(scale), tuple(aspect))
  return int(np.max(heights * widths))


def _draw_block_size(rng: jax.Array, table) -> tuple[jax.Array, jax.Array]:
  edges, heights, widths = table
  segment = jnp.searchsorted(jnp.asarray(edges, jnp.float32), jax.random.uniform(rng),
                             side="right")
  return jnp.asarray(heights)[segment], jnp.asarray(widths)[segment]


def _block_maps(rng: jax.Array, shape: tuple[int, ...], grid_hw: tuple[int, int],
                height: jax.Array, width: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """`shape` blocks of height x width at uniform positions: (bool [*shape, H, W], top, left).

  Top in [0, H - h] inclusive: the reference's `torch.randint(0, self.height - h, (1,))`
  excludes H - h, so its blocks never touch the last row or column (fixed here)."""
  grid_h, grid_w = grid_hw
  top_rng, left_rng = jax.random.split(rng)
  top = jax.random.randint(top_rng, shape, 0, grid_h - height + 1)
  left = jax.random.randint(left_rng, shape, 0, grid_w - width + 1)
  rows = jnp.arange(grid_h)[:, None]
  cols = jnp.arange(grid_w)[None, :]
  expand = lambda x: x[..., None, None]
  inside = ((rows >= expand(top)) & (rows < expand(top + height)) & (cols >= expand(left))
            & (cols < expand(left + width)))
  return inside, top, left


@functools.partial(jax.jit, static_argnames=(
    "batch", "grid_hw", "num_targets", "target_scale", "target_aspect", "context_scale",
    "context_aspect", "num_context", "allow_overlap", "min_context", "context_tries"))
def multiblock_masks(rng: jax.Array, batch: int, grid_hw: tuple[int, int], *,
                     num_context: int, num_targets: int = 4,
                     target_scale: tuple[float, float] = (0.15, 0.2),
                     target_aspect: tuple[float, float] = (0.75, 1.5),
                     context_scale: tuple[float, float] = (0.85, 1.0),
                     context_aspect: tuple[float, float] = (1.0, 1.0),
                     allow_overlap: bool = False, min_context: int = 10,
                     context_tries: int = 20) -> MultiBlockMasks:
  """I-JEPA's multi-block masking on a `grid_hw` token grid, with static shapes.

  As the reference's `MaskCollator` (facebookresearch/ijepa src/masks/multiblock.py, the
  ImageNet config's ranges as defaults): one target block size and one context block size per
  batch (`reference_block_size`: a single uniform draw sets scale and aspect, block sides
  capped at the grid side minus one); per image `num_targets` target blocks and one context
  block at uniform positions; the context is its block minus the union of the targets
  (`allow_overlap=False`), redrawn at another position (up to `context_tries` positions,
  the reference's 20) until it keeps more than `min_context` tokens (the config's min_keep).

  Differences from the reference:
   * Positions: top in [0, H - h] and left in [0, W - w] inclusive, so blocks reach the last
     row and column (the reference's `torch.randint(0, H - h)` never places one there).
   * Static shapes: the reference cuts every image's context to the batch's smallest count
     (keeping the first tokens in raster order); here it is cut to `num_context` (Kc) tokens
     chosen at random, or padded with `context_valid=False`. Targets have Kt =
     `max_block_area` slots, the batch's h * w of them valid (the reference's are h * w).
   * When none of the `context_tries` positions keeps enough tokens the reference drops the
     targets' constraints one by one (20 more tries each); here the first position's whole
     block is used (its last resort), overlapping the targets.
   * Randomness: `rng` (the step's key, the same on every device) instead of the collator's
     per-batch torch seed; the sizes come from one split of it, each image's positions from
     its own.

  Returns: `MultiBlockMasks` (Kc = num_context, Kt = max_block_area(grid_hw, target_scale,
  target_aspect)).
  """
  grid_h, grid_w = grid_hw
  num = grid_h * grid_w
  if not 1 <= num_context <= num:
    raise ValueError(f"num_context={num_context}; must be in [1, {num}] for a "
                     f"{grid_h}x{grid_w} grid")
  target_table = block_size_table(grid_hw, target_scale, target_aspect)
  context_table = block_size_table(grid_hw, context_scale, context_aspect)
  for name, block_scale, (_, heights, widths) in (("target", target_scale, target_table),
                                                  ("context", context_scale, context_table)):
    if np.min(heights) < 1 or np.min(widths) < 1:
      raise ValueError(f"{name} blocks of scale {tuple(block_scale)} can be empty on a "
                       f"{grid_h}x{grid_w} grid; use a larger scale")
  num_target_slots = int(np.max(target_table[1] * target_table[2]))
  size_rng, target_rng, context_rng, choice_rng = jax.random.split(rng, 4)
  target_size_rng, context_size_rng = jax.random.split(size_rng)
  target_h, target_w = _draw_block_size(target_size_rng, target_table)
  context_h, context_w = _draw_block_size(context_size_rng, context_table)

  target_maps, target_top, target_left = _block_maps(
      target_rng, (batch, num_targets), grid_hw, target_h, target_w)
  slot = jnp.minimum(jnp.arange(num_target_slots), target_h * target_w - 1)
  rows = target_top[..., None] + slot // target_w
  cols = target_left[..., None] + slot % target_w
  targets = (rows * grid_w + cols).astype(jnp.int32)
  targets_valid = jnp.broadcast_to(jnp.arange(num_target_slots) < target_h * target_w,
                                   targets.shape)

  candidates, _, _ = _block_maps(context_rng, (batch, context_tries), grid_hw, context_h,
                                 context_w)
  if not allow_overlap:
    covered = jnp.any(target_maps, axis=1)  # [B, H, W]
    kept = candidates & ~covered[:, None]
    counts = jnp.sum(kept, axis=(2, 3))
    enough = counts > min_context
    first = jnp.argmax(enough, axis=1)  # the first position that keeps enough
    chosen = jnp.take_along_axis(kept, first[:, None, None, None], axis=1)[:, 0]
    context_map = jnp.where(jnp.any(enough, axis=1)[:, None, None], chosen, candidates[:, 0])
  else:
    context_map = candidates[:, 0]
  context_map = context_map.reshape(batch, num)

  # Kc of the context tokens at random (uniform scores in [1, 2) beat the others' [0, 1)),
  # listed valid first, each part ascending.
  score = jax.random.uniform(choice_rng, (batch, num)) + context_map
  _, chosen = jax.lax.top_k(score, num_context)
  context_valid = jnp.take_along_axis(context_map, chosen, axis=1)
  order = jnp.argsort(jnp.where(context_valid, chosen, chosen + num), axis=1)
  context = jnp.take_along_axis(chosen, order, axis=1).astype(jnp.int32)
  context_valid = jnp.take_along_axis(context_valid, order, axis=1)
  return MultiBlockMasks(context=context, context_valid=context_valid, targets=targets,
                         targets_valid=targets_valid, context_map=context_map,
                         target_maps=target_maps.reshape(batch, num_targets, num))
