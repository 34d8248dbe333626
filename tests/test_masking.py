"""Mask generators (exact counts, determinism, blockwise contiguity), mask indices and
patchify/unpatchify, against hand-worked values."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_ssl import masking


def _components(grid: np.ndarray) -> int:
  """4-connected components of the True cells of a 2-D bool grid (flood fill)."""
  seen = np.zeros_like(grid, bool)
  count = 0
  for start in zip(*np.nonzero(grid)):
    if seen[start]:
      continue
    count += 1
    stack = [start]
    seen[start] = True
    while stack:
      i, j = stack.pop()
      for a, b in ((i + 1, j), (i - 1, j), (i, j + 1), (i, j - 1)):
        if 0 <= a < grid.shape[0] and 0 <= b < grid.shape[1] and grid[a, b] and not seen[a, b]:
          seen[a, b] = True
          stack.append((a, b))
  return count


@pytest.mark.parametrize("num_patches, ratio, expected", [
    (196, 0.75, 147),  # MAE ViT-B/16: keeps int(196 * 0.25) = 49
    (49, 0.75, 37),    # keeps int(12.25) = 12
    (49, 0.6, 30),     # SimMIM's ceil(49 * 0.6) = 30 on its 7x7 grid of 32 px units
    (16, 0.0, 0),
])
def test_random_mask_exact_count(num_patches, ratio, expected):
  assert masking.num_masked(num_patches, ratio) == expected
  mask = np.asarray(masking.random_mask(jax.random.key(0), 64, num_patches, ratio))
  assert mask.shape == (64, num_patches) and mask.dtype == bool
  np.testing.assert_array_equal(mask.sum(axis=1), expected)


def test_random_mask_is_deterministic_per_rng_and_uniform():
  a = masking.random_mask(jax.random.key(3), 8, 49, 0.75)
  b = masking.random_mask(jax.random.key(3), 8, 49, 0.75)
  c = masking.random_mask(jax.random.key(4), 8, 49, 0.75)
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)
  assert len({tuple(row) for row in np.asarray(a)}) == 8  # examples get different masks
  # Every position is masked with probability 12/16: 4000 draws, 4 sigma ~ 0.03.
  frequency = np.asarray(masking.random_mask(jax.random.key(0), 4000, 16, 0.75)).mean(axis=0)
  np.testing.assert_allclose(frequency, 0.75, atol=0.03)


def test_mask_indices_keep_masked_and_restore():
  mask = np.array([[True, False, False, True, False, True],
                   [False, True, True, False, True, False]])
  indices = masking.mask_indices(mask, 3)
  np.testing.assert_array_equal(indices.keep, [[1, 2, 4], [0, 3, 5]])
  np.testing.assert_array_equal(indices.masked, [[0, 3, 5], [1, 2, 4]])
  # restore puts concat(keep, masked) back in token order.
  order = np.concatenate([indices.keep, indices.masked], axis=1)
  np.testing.assert_array_equal(np.take_along_axis(order, np.asarray(indices.restore), 1),
                                np.tile(np.arange(6), (2, 1)))


def test_upsample_mask_covers_units():
  coarse = np.array([[True, False, False, True]])  # 2x2 units
  fine = np.asarray(masking.upsample_mask(coarse, 2, 2, 2)).reshape(4, 4)
  np.testing.assert_array_equal(fine, [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]])


@pytest.mark.parametrize("grid_h, grid_w, count", [(7, 7, 29), (7, 7, 49), (5, 3, 0)])
def test_block_mask_exact_count(grid_h, grid_w, count):
  mask = np.asarray(masking.block_mask(jax.random.key(1), 32, grid_h, grid_w, count))
  assert mask.shape == (32, grid_h * grid_w)
  np.testing.assert_array_equal(mask.sum(axis=1), count)


def test_block_mask_is_made_of_few_contiguous_blocks():
  # BEiT's setting: 75 of 14x14 in blocks of >= 16 patches.
  block = np.asarray(masking.block_mask(jax.random.key(0), 64, 14, 14, 75,
                                        min_block_patches=16)).reshape(64, 14, 14)
  uniform = np.asarray(masking.random_mask(jax.random.key(0), 64, 196, 75 / 196)
                       ).reshape(64, 14, 14)
  np.testing.assert_array_equal(block.sum(axis=(1, 2)), 75)
  block_parts = [_components(m) for m in block]
  uniform_parts = [_components(m) for m in uniform]
  assert np.mean(block_parts) < 2.5 and max(block_parts) <= 5, block_parts
  assert np.mean(uniform_parts) > 15  # the same count at random scatters into many pieces
  # Each block is mostly filled: masked cells with a masked 4-neighbour.
  lonely = [np.sum(m & (np.asarray(masking._masked_neighbours(jnp.asarray(m))) == 0))
            for m in block]
  assert np.mean(lonely) < 0.5


def test_block_mask_top_up_grows_one_block_from_the_border():
  # No rectangle allowed (max_failures=0): the whole count comes from the top-up, which
  # starts one block and only adds cells touching it.
  mask = np.asarray(masking.block_mask(jax.random.key(2), 16, 7, 7, 20, max_failures=0))
  np.testing.assert_array_equal(mask.sum(axis=1), 20)
  assert [_components(m.reshape(7, 7)) for m in mask] == [1] * 16


def test_block_mask_is_deterministic_per_rng():
  a = masking.block_mask(jax.random.key(5), 4, 7, 7, 29)
  np.testing.assert_array_equal(a, masking.block_mask(jax.random.key(5), 4, 7, 7, 29))
  assert not np.array_equal(a, masking.block_mask(jax.random.key(6), 4, 7, 7, 29))


def test_patchify_order_and_roundtrip():
  images = np.arange(2 * 4 * 6 * 3, dtype=np.float32).reshape(2, 4, 6, 3)
  patches = np.asarray(masking.patchify(images, 2))
  assert patches.shape == (2, 6, 12)
  # Patch 4 = grid row 1, column 1: pixels rows 2-3, columns 2-3, flattened (row, col, channel).
  np.testing.assert_array_equal(patches[1, 4], images[1, 2:4, 2:4].reshape(-1))
  np.testing.assert_array_equal(masking.unpatchify(patches, 2, 2, 3), images)
  with pytest.raises(ValueError, match="do not split into 4x4 patches"):
    masking.patchify(images, 4)


# -- I-JEPA's multi-block masks (masking.multiblock_masks)

IJEPA_TARGET = dict(scale=(0.15, 0.2), aspect=(0.75, 1.5))


def test_block_size_table_gives_the_reference_sizes():
  # Hand-worked on 14x14 (the reference uses one draw u for scale and aspect): u = 0: area
  # int(196 * 0.15) = 29, aspect 0.75: h = round(sqrt(21.75)) = 5, w = round(sqrt(38.7)) = 6;
  # u = 1: area int(39.2) = 39, aspect 1.5: h = round(sqrt(58.5)) = 8, w = round(sqrt(26)) = 5.
  assert masking.reference_block_size(0.0, (14, 14), **IJEPA_TARGET) == (5, 6)
  assert masking.reference_block_size(1.0, (14, 14), **IJEPA_TARGET) == (8, 5)
  # The context block (scale 0.85-1, square): int(166.6) = 166 -> 13 x 13; at scale 1,
  # 14 x 14 is capped at the side minus one: 13 x 13 whatever the draw.
  _, heights, widths = masking.block_size_table((14, 14), (0.85, 1.0), (1.0, 1.0))
  assert set(heights) == set(widths) == {13}
  # The table is the reference's float64 formula at any draw; Kt is its largest block.
  for grid in ((14, 14), (16, 16), (7, 7)):
    edges, heights, widths = masking.block_size_table(grid, **IJEPA_TARGET)
    for u in np.random.default_rng(0).random(300):
      segment = np.searchsorted(edges, u, side="right")
      assert (heights[segment], widths[segment]) == masking.reference_block_size(
          u, grid, **IJEPA_TARGET)
  assert masking.max_block_area((14, 14), **IJEPA_TARGET) == 40  # 8 x 5
  assert masking.max_block_area((16, 16), **IJEPA_TARGET) == 54  # 9 x 6


@pytest.fixture(scope="module")
def ijepa_masks():
  """Two batches of 64 on 14x14 with the reference's ImageNet ranges, Kc = 52."""
  before = masking.multiblock_masks._cache_size()  # pylint: disable=protected-access
  batches = [masking.multiblock_masks(jax.random.key(seed), 64, (14, 14), num_context=52)
             for seed in (0, 2)]
  compiled = masking.multiblock_masks._cache_size() - before  # pylint: disable=protected-access
  return [jax.tree.map(np.asarray, m) for m in batches], compiled


def test_multiblock_masks_have_static_shapes_and_blocks_inside_the_grid(ijepa_masks):
  batches, compiled = ijepa_masks
  assert compiled == 1  # a second key reuses the compiled sampler
  sizes = set()
  for m in batches:
    assert m.context.shape == m.context_valid.shape == (64, 52)
    assert m.targets.shape == m.targets_valid.shape == (64, 4, 40)
    assert m.context.dtype == m.targets.dtype == np.int32
    assert m.context_map.shape == (64, 196) and m.target_maps.shape == (64, 4, 196)
    assert m.targets.min() >= 0 and m.targets.max() < 196
    # One block size per batch (as the reference), a size of the table, every block that
    # h x w rectangle, listed in raster order, its map the same tokens.
    counts = m.targets_valid.sum(-1)
    assert np.all(counts == counts[0, 0]) and np.all(m.targets_valid[..., :counts[0, 0]])
    _, heights, widths = masking.block_size_table((14, 14), **IJEPA_TARGET)
    assert counts[0, 0] in set(heights * widths)
    for b in range(64):
      for t in range(4):
        tokens = m.targets[b, t, :counts[0, 0]]
        rows, cols = tokens // 14, tokens % 14
        height, width = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert height * width == counts[0, 0] == len(set(tokens))
        assert (height, width) in set(zip(heights, widths))
        assert np.all(np.diff(tokens) > 0)
        assert set(tokens) == set(np.nonzero(m.target_maps[b, t])[0])
        assert np.all(m.targets[b, t, counts[0, 0]:] == tokens[-1])  # padding repeats
    sizes.add(int(counts[0, 0]))
    # The context: more than min_context tokens, none in a target block, inside one 13 x 13
    # block; the encoder gets min(count, Kc) of them, valid first, then padding that points
    # at tokens outside the context.
    union = m.target_maps.any(axis=1)
    kept = m.context_map.sum(1)
    assert np.all(kept > 10) and not np.any(m.context_map & union)
    np.testing.assert_array_equal(m.context_valid.sum(1), np.minimum(kept, 52))
    for b in range(64):
      rows, cols = np.nonzero(m.context_map[b].reshape(14, 14))
      assert rows.max() - rows.min() < 13 and cols.max() - cols.min() < 13
      valid = m.context[b][m.context_valid[b]]
      assert len(set(valid)) == len(valid) and m.context_map[b][valid].all()
      assert not m.context_map[b][m.context[b][~m.context_valid[b]]].any()
      assert np.all(np.diff(valid) > 0)
  assert len(sizes) == 2  # the two keys drew different target sizes (6 x 6, 7 x 5)
  kept = np.concatenate([m.context_map.sum(1) for m in batches])
  assert np.any(kept < 52) and np.any(kept > 52)  # both padding and a cut to Kc


def test_multiblock_blocks_reach_the_last_row_and_column_unlike_the_reference(ijepa_masks):
  batches, _ = ijepa_masks
  maps = np.concatenate([m.target_maps for m in batches]).reshape(-1, 14, 14)
  assert maps[:, -1, :].any() and maps[:, :, -1].any()
  assert maps[:, 0, :].any() and maps[:, :, 0].any()
  # The reference's `torch.randint(0, H - h, (1,))` excludes top = H - h: its blocks end
  # at row H - 2 at the latest (ported: numpy's integers has the same exclusive high).
  height = 5
  tops = np.random.default_rng(0).integers(0, 14 - height, 10_000)
  assert tops.max() + height == 13
  # The context block (13 x 13 on 14 x 14: top 0 or 1 here, always 0 in the reference).
  contexts = np.concatenate([m.context_map for m in batches]).reshape(-1, 14, 14)
  assert contexts[:, -1, :].any() and contexts[:, 0, :].any()


def test_multiblock_context_falls_back_to_its_whole_block_and_allows_overlap():
  # On 4x4 every context block is 3 x 3 (9 tokens) and never keeps more than min_context = 10
  # outside the targets: after the tries the first position's whole block is used.
  kwargs = dict(num_context=12, num_targets=2, target_scale=(0.25, 0.25),
                target_aspect=(1.0, 1.0))
  masks = jax.tree.map(np.asarray, masking.multiblock_masks(jax.random.key(0), 8, (4, 4),
                                                            **kwargs))
  overlap = jax.tree.map(np.asarray, masking.multiblock_masks(
      jax.random.key(0), 8, (4, 4), allow_overlap=True, min_context=0, **kwargs))
  for m in (masks, overlap):
    np.testing.assert_array_equal(m.context_map.sum(1), 9)
    np.testing.assert_array_equal(m.context_valid.sum(1), 9)
    for b in range(8):
      rows, cols = np.nonzero(m.context_map[b].reshape(4, 4))
      assert rows.max() - rows.min() == 2 and cols.max() - cols.min() == 2
  # Both keep targets inside the context (2 x 2 blocks in a 3 x 3 on 4 x 4 overlap it).
  assert np.any(masks.context_map & masks.target_maps.any(1))
  with pytest.raises(ValueError, match=r"num_context=17; must be in \[1, 16\]"):
    masking.multiblock_masks(jax.random.key(0), 8, (4, 4), num_context=17)
  with pytest.raises(ValueError, match=r"target blocks of scale \(0.01, 0.02\) can be empty"):
    masking.multiblock_masks(jax.random.key(0), 8, (4, 4), num_context=4,
                             target_scale=(0.01, 0.02))
