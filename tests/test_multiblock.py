"""I-JEPA's multi-block masks (jax_ssl/multiblock.py): the reference's block sizes, static
shapes, blocks inside the grid and apart from the context, the last row and column reachable
(the reference's off-by-one), the context's fallback."""

import jax
import numpy as np
import pytest

from jax_ssl import multiblock


IJEPA_TARGET = dict(scale=(0.15, 0.2), aspect=(0.75, 1.5))


def test_block_size_table_gives_the_reference_sizes():
  # Hand-worked on 14x14 (the reference uses one draw u for scale and aspect): u = 0: area
  # int(196 * 0.15) = 29, aspect 0.75: h = round(sqrt(21.75)) = 5, w = round(sqrt(38.7)) = 6;
  # u = 1: area int(39.2) = 39, aspect 1.5: h = round(sqrt(58.5)) = 8, w = round(sqrt(26)) = 5.
  assert multiblock.reference_block_size(0.0, (14, 14), **IJEPA_TARGET) == (5, 6)
  assert multiblock.reference_block_size(1.0, (14, 14), **IJEPA_TARGET) == (8, 5)
  # The context block (scale 0.85-1, square): int(166.6) = 166 -> 13 x 13; at scale 1,
  # 14 x 14 is capped at the side minus one: 13 x 13 whatever the draw.
  _, heights, widths = multiblock.block_size_table((14, 14), (0.85, 1.0), (1.0, 1.0))
  assert set(heights) == set(widths) == {13}
  # The table is the reference's float64 formula at any draw; Kt is its largest block.
  for grid in ((14, 14), (16, 16), (7, 7)):
    edges, heights, widths = multiblock.block_size_table(grid, **IJEPA_TARGET)
    for u in np.random.default_rng(0).random(300):
      segment = np.searchsorted(edges, u, side="right")
      assert (heights[segment], widths[segment]) == multiblock.reference_block_size(
          u, grid, **IJEPA_TARGET)
  assert multiblock.max_block_area((14, 14), **IJEPA_TARGET) == 40  # 8 x 5
  assert multiblock.max_block_area((16, 16), **IJEPA_TARGET) == 54  # 9 x 6


@pytest.fixture(scope="module")
def ijepa_masks():
  """Two batches of 64 on 14x14 with the reference's ImageNet ranges, Kc = 52."""
  before = multiblock.multiblock_masks._cache_size()  # pylint: disable=protected-access
  batches = [multiblock.multiblock_masks(jax.random.key(seed), 64, (14, 14), num_context=52)
             for seed in (0, 2)]
  compiled = multiblock.multiblock_masks._cache_size() - before  # pylint: disable=protected-access
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
    _, heights, widths = multiblock.block_size_table((14, 14), **IJEPA_TARGET)
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
  masks = jax.tree.map(np.asarray, multiblock.multiblock_masks(jax.random.key(0), 8, (4, 4),
                                                            **kwargs))
  overlap = jax.tree.map(np.asarray, multiblock.multiblock_masks(
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
    multiblock.multiblock_masks(jax.random.key(0), 8, (4, 4), num_context=17)
  with pytest.raises(ValueError, match=r"target blocks of scale \(0.01, 0.02\) can be empty"):
    multiblock.multiblock_masks(jax.random.key(0), 8, (4, 4), num_context=4,
                             target_scale=(0.01, 0.02))
