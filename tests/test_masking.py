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
