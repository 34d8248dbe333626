"""HOG on device against scikit-image's `feature.hog`, and MaskFeat's per-patch targets."""

import gzip
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from skimage import feature as skimage_feature  # the `test` extra installs scikit-image

from jax_ssl import hog

FMNIST = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
# float32 against skimage's float64 gradients and orientations: the same hard bin for every
# pixel of these images, so the descriptors agree to float32 rounding.
TOLERANCE = dict(rtol=0, atol=1e-6)


def _fashion_mnist_or_synthetic(index: int) -> np.ndarray:
  """A real Fashion-MNIST test image (Debian's dataset-fashion-mnist), or a synthetic shape."""
  if os.path.exists(FMNIST):
    with gzip.open(FMNIST) as f:
      pixels = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    return pixels[index]
  rows, cols = np.mgrid[:28, :28]
  return (255 * (((rows - 14) ** 2 + (cols - 12) ** 2) < 60 + 20 * index)).astype(np.uint8)


def _images():
  rng = np.random.default_rng(0)
  return {
      "uniform": rng.random((48, 40)).astype(np.float32),
      "uint8_odd_size": rng.integers(0, 256, (30, 37)).astype(np.uint8),
      "fashion_mnist_0": _fashion_mnist_or_synthetic(0),
      "fashion_mnist_1": _fashion_mnist_or_synthetic(1),
  }


@pytest.mark.parametrize("block_norm", ["L2", "L2-Hys", "L1", "L1-sqrt"])
@pytest.mark.parametrize("pixels_per_cell, cells_per_block", [(8, 2), (4, 2), (7, 1), (2, 3)])
def test_hog_equals_skimage(block_norm, pixels_per_cell, cells_per_block):
  for name, image in _images().items():
    expected = skimage_feature.hog(image, orientations=9,
                                   pixels_per_cell=(pixels_per_cell, pixels_per_cell),
                                   cells_per_block=(cells_per_block, cells_per_block),
                                   block_norm=block_norm, feature_vector=True)
    got = hog.hog(jnp.asarray(image, jnp.float32)[None, :, :, None], orientations=9,
                  pixels_per_cell=pixels_per_cell, cells_per_block=cells_per_block,
                  block_norm=block_norm)
    assert got.shape == (1, expected.size), name
    np.testing.assert_allclose(np.asarray(got)[0], expected, **TOLERANCE, err_msg=name)
    assert np.count_nonzero(expected) > expected.size // 10, name  # a non-trivial descriptor


def test_hog_rgb_uses_the_dominant_channel_as_skimage():
  image = np.random.default_rng(1).random((32, 24, 3)).astype(np.float32)
  expected = skimage_feature.hog(image, orientations=6, pixels_per_cell=(8, 8),
                                 cells_per_block=(2, 2), block_norm="L2", channel_axis=-1)
  got = hog.hog(jnp.asarray(image)[None], orientations=6, pixels_per_cell=8,
                cells_per_block=2, block_norm="L2")
  np.testing.assert_allclose(np.asarray(got)[0], expected, **TOLERANCE)
  # Not the mean of the channels' gradients: a per-channel image gives another descriptor.
  gray = hog.hog(jnp.asarray(image.mean(-1, keepdims=True))[None], orientations=6,
                 pixels_per_cell=8, cells_per_block=2, block_norm="L2")
  assert np.abs(np.asarray(gray) - np.asarray(got)).max() > 0.05


def test_hog_jits_and_batches():
  images = np.stack([_images()["fashion_mnist_0"], _images()["fashion_mnist_1"],
                     np.zeros((28, 28), np.uint8)]).astype(np.float32)[..., None]
  jitted = jax.jit(lambda x: hog.hog(x, pixels_per_cell=4, cells_per_block=2,
                                     block_norm="L2-Hys", feature_vector=False))
  got = np.asarray(jitted(jnp.asarray(images)))
  assert got.shape == (3, 6, 6, 2, 2, 9)
  for index in range(2):
    expected = skimage_feature.hog(images[index, ..., 0], pixels_per_cell=(4, 4),
                                   cells_per_block=(2, 2), block_norm="L2-Hys",
                                   feature_vector=False)
    np.testing.assert_allclose(got[index], expected, **TOLERANCE)
  np.testing.assert_array_equal(got[2], 0.0)  # a flat image has no gradient anywhere


def test_cell_histogram_by_hand():
  # A vertical step edge: g_col = 1 on the two columns beside it, g_row = 0: angle 0, bin 0.
  # A 4x4 image in one 4x4 cell: columns 1 and 2 vote 1 each on all 4 rows -> 8 / 16.
  image = np.array([[0, 0, 1, 1]] * 4, np.float32)[None, :, :, None]
  histograms = np.asarray(hog.cell_histograms(image, orientations=9, cell_size=4))
  np.testing.assert_allclose(histograms[0, 0, 0, 0], [0.5] + [0.0] * 8)
  # Its transpose (a horizontal edge): g_row = 1, angle 90 degrees, bin 4 (80-100).
  histograms = np.asarray(hog.cell_histograms(image.transpose(0, 2, 1, 3), cell_size=4))
  np.testing.assert_allclose(histograms[0, 0, 0, 0], [0.0] * 4 + [0.5] + [0.0] * 4)
  # A falling diagonal: brighter to the right and lower, angle 45 (bin 2); unsigned, so the
  # negated image votes the same bin.
  ramp = np.add.outer(np.arange(4.0), np.arange(4.0)).astype(np.float32)[None, :, :, None]
  for sign in (1.0, -1.0):
    histograms = np.asarray(hog.cell_histograms(sign * ramp, cell_size=4))[0, 0, 0, 0]
    # Only the 2x2 interior has both gradients (2, 2): 4 pixels of magnitude 2 sqrt(2);
    # the border pixels have one zero component (angle 0 or 90).
    assert histograms[2] == pytest.approx(4 * 2 * np.sqrt(2) / 16, rel=1e-6)


def _cells_of_channel(channel: np.ndarray, cell_size: int) -> np.ndarray:
  """skimage-convention cell histograms of one [H, W] channel: [Hc, Wc, 9]."""
  return np.asarray(hog.cell_histograms(channel[None, :, :, None], cell_size=cell_size))[0, :, :, 0]


def test_maskfeat_targets_normalise_each_cells_histogram_as_hoglayerc():
  rng = np.random.default_rng(2)
  images = rng.random((2, 16, 24, 3)).astype(np.float32)
  images[0, :8, :8] = 0.5  # a flat patch: its cells have empty histograms
  targets = np.asarray(jax.jit(lambda x: hog.maskfeat_targets(
      x, patch_size=8, cell_size=4, orientations=9))(images))
  assert targets.shape == (2, 2 * 3, 3 * 2 * 2 * 9)  # [B, N, C * (p / c)^2 * O]
  # The reference (PySlowFast's HOGLayerC): per channel and cell, the 9 bins divided by
  # their L2 norm (F.normalize(out, p=2, dim=2): max(norm, 1e-12)), then the cells of a
  # patch concatenated, channel-major. Patch (row 1, col 2) of image 1, channel 2:
  cells = _cells_of_channel(images[1, :, :, 2], 4)
  patch = cells[2:4, 4:6]
  expected = (patch / np.maximum(np.linalg.norm(patch, axis=-1, keepdims=True), 1e-12)).reshape(-1)
  index = 1 * 3 + 2
  np.testing.assert_allclose(targets[1, index, 2 * 36:3 * 36], expected, rtol=1e-5, atol=1e-7)
  # Every cell of every channel of a textured patch has unit norm; a flat patch's interior
  # cells (no gradient) stay zero instead of becoming noise.
  norms = np.linalg.norm(targets.reshape(2, 6, 3, 4, 9), axis=-1)
  np.testing.assert_allclose(norms[1], 1.0, rtol=1e-5)
  assert norms[0, 0, :, 0] == pytest.approx([0.0, 0.0, 0.0])  # cell (0, 0) of patch 0: flat
  # Not the whole patch normalised at once (the previous default): a patch's 4 cells of a
  # channel together have norm 2, not 1.
  np.testing.assert_allclose(np.linalg.norm(targets[1].reshape(6, 3, 36), axis=-1), 2.0, rtol=1e-5)


def test_maskfeat_targets_patch_normalisation_option():
  rng = np.random.default_rng(2)
  images = rng.random((2, 16, 24, 3)).astype(np.float32)
  targets = np.asarray(jax.jit(lambda x: hog.maskfeat_targets(
      x, patch_size=8, cell_size=4, orientations=9, normalization="patch"))(images))
  assert targets.shape == (2, 2 * 3, 3 * 2 * 2 * 9)
  # By hand for patch (row 1, col 2) of image 1, channel 2: skimage's cell histograms of that
  # channel (cells 4x4, computed on the whole image) are its building blocks.
  channel = images[1, :, :, 2]
  cells = _cells_of_channel(channel, 4)
  patch = cells[2:4, 4:6].reshape(-1)
  expected = patch / np.linalg.norm(patch)
  index = 1 * 3 + 2
  np.testing.assert_allclose(targets[1, index, 2 * 36:3 * 36], expected, rtol=1e-5, atol=1e-7)
  # skimage's own histograms agree with the cells (L2 over a 1x1 block of one cell gives
  # the histogram's shape; here we check one cell's bins against skimage's block of 1).
  skimage_cells = skimage_feature.hog(channel, orientations=9, pixels_per_cell=(4, 4),
                                      cells_per_block=(1, 1), block_norm="L2",
                                      feature_vector=False)[:, :, 0, 0]
  np.testing.assert_allclose(cells / np.sqrt(np.sum(cells**2, -1, keepdims=True) + 1e-10),
                             skimage_cells, atol=1e-6)
  # Every channel's part of every patch has unit norm.
  norms = np.linalg.norm(targets.reshape(2, 6, 3, 36), axis=-1)
  np.testing.assert_allclose(norms, 1.0, rtol=1e-5)
  with pytest.raises(ValueError, match="normalization='block'"):
    hog.maskfeat_targets(images, patch_size=8, cell_size=4, normalization="block")
