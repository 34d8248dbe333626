"""I-JEPA's multi-block masks on device, with static shapes (also CNN-JEPA's, on a feature map).

A context block and T target blocks per image on an h x w token grid (token n = row n // w,
column n % w, as `masking`), drawn from the step's rng: one target size and one context size
per batch (the reference draws them once per collated batch), positions per image, the
context minus the targets. Their token counts vary, so they are index lists of a fixed
length with validity flags (`MultiBlockMasks`): no recompilation from batch to batch.

References:
  Assran et al., "Self-Supervised Learning from Images with a Joint-Embedding Predictive
  Architecture", CVPR 2023; facebookresearch/ijepa src/masks/multiblock.py (`MaskCollator`).
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


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
