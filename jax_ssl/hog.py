"""Histograms of Oriented Gradients on device, in JAX (jit- and batch-friendly).

`hog` computes what `skimage.feature.hog(image, orientations, pixels_per_cell,
cells_per_block, block_norm, feature_vector=False)` computes, for a batch [B, H, W, C], with
skimage's conventions (scikit-image 0.26, `feature/_hog.py` and `_hoghistogram.pyx`):

* gradients: central differences [-1, 0, 1] along rows and columns, zero on the image's
  first and last row (column) — no smoothing, no padding;
* several channels: at each pixel, the channel with the largest gradient magnitude (the
  first on ties) gives the gradient (`channel_axis=-1` in skimage);
* orientation: unsigned, `degrees(arctan2(g_row, g_col)) % 180`, hard-assigned (no
  interpolation between bins) to bin i when 180 i / O <= angle < 180 (i + 1) / O;
* cell histogram: the magnitudes voting for each bin summed over the cell and divided by the
  cell's area (pixels past the last whole cell are ignored);
* blocks: every window of `cells_per_block` cells (stride one cell), normalised as a whole
  by 'L1', 'L1-sqrt', 'L2' (v / sqrt(|v|^2 + eps^2)) or 'L2-Hys' (L2, clip at 0.2, L2 again).

`maskfeat_targets` is MaskFeat's prediction target built from the same cell histograms: each
ViT patch's cells, computed on every channel separately, each cell's histogram L2-normalised
(PySlowFast's HOGLayerC; the whole patch at once as an option); `maskfeat_video_targets`
the same of each video tubelet's first frame (PySlowFast's MaskFeat on video).

References:
  Dalal & Triggs, "Histograms of Oriented Gradients for Human Detection", CVPR 2005.
  Wei et al., "Masked Feature Prediction for Self-Supervised Visual Pre-Training", CVPR 2022.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

BLOCK_NORMS = ("L1", "L1-sqrt", "L2", "L2-Hys")


def image_gradients(images: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Central differences of [B, H, W, C] images: (g_row, g_col), zero on the border rows/cols.

  g_row[b, r, c] = image[b, r + 1, c] - image[b, r - 1, c] (no 1/2), as skimage.
  """
  images = jnp.asarray(images, jnp.float32)
  g_row = jnp.zeros_like(images).at[:, 1:-1].set(images[:, 2:] - images[:, :-2])
  g_col = jnp.zeros_like(images).at[:, :, 1:-1].set(images[:, :, 2:] - images[:, :, :-2])
  return g_row, g_col


def _dominant_channel(g_row: jax.Array, g_col: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Per pixel, the gradient of the channel with the largest magnitude: [B, H, W, 1] each."""
  index = jnp.argmax(jnp.hypot(g_row, g_col), axis=-1)[..., None]
  return (jnp.take_along_axis(g_row, index, axis=-1),
          jnp.take_along_axis(g_col, index, axis=-1))


def cell_histograms(images: jax.Array, *, orientations: int = 9, cell_size: int = 8,
                    per_channel: bool = False) -> jax.Array:
  """Orientation histograms of the cells of [B, H, W, C] images.

  Args:
    images: [B, H, W, C] float (any scale; uint8 is cast to float32).
    orientations: bins over 0-180 degrees.
    cell_size: cells are `cell_size` x `cell_size` pixels, from the top-left corner.
    per_channel: False: one histogram per cell from each pixel's dominant channel (skimage);
      True: one histogram per cell and channel (MaskFeat).

  Returns:
    [B, H // cell_size, W // cell_size, C', orientations], C' = C if per_channel else 1;
    each entry the mean over the cell's pixels of magnitude x [orientation in the bin].
  """
  g_row, g_col = image_gradients(images)
  if not per_channel:
    g_row, g_col = _dominant_channel(g_row, g_col)
  batch, height, width, channels = g_row.shape
  cells_row, cells_col = height // cell_size, width // cell_size
  g_row = g_row[:, :cells_row * cell_size, :cells_col * cell_size]
  g_col = g_col[:, :cells_row * cell_size, :cells_col * cell_size]
  magnitude = jnp.hypot(g_row, g_col)
  angle = jnp.mod(jnp.degrees(jnp.arctan2(g_row, g_col)), 180.0)
  # Bin i holds lower_i <= angle < lower_{i+1}, compared against the boundaries as skimage
  # does (not floor(angle / width), which can round across a boundary). An angle that the
  # modulo rounds up to 180.0 falls in no bin, as in skimage.
  lower = jnp.arange(orientations, dtype=jnp.float32) * (180.0 / orientations)
  upper = jnp.arange(1, orientations + 1, dtype=jnp.float32) * (180.0 / orientations)
  in_bin = (angle[..., None] >= lower) & (angle[..., None] < upper)
  votes = jnp.where(in_bin, magnitude[..., None], 0.0)  # [B, H, W, C, O]
  votes = votes.reshape(batch, cells_row, cell_size, cells_col, cell_size, channels,
                        orientations)
  return jnp.sum(votes, axis=(2, 4)) / (cell_size * cell_size)


def normalize_blocks(histograms: jax.Array, *, cells_per_block: int = 3,
                     block_norm: str = "L2-Hys", eps: float = 1e-5) -> jax.Array:
  """[B, Hc, Wc, O] cell histograms -> [B, Hc - k + 1, Wc - k + 1, k, k, O] normalised blocks.

  Each k x k window of cells (stride one cell) is normalised as one vector (skimage's
  `_hog_normalize_block`).
  """
  if block_norm not in BLOCK_NORMS:
    raise ValueError(f"block_norm={block_norm!r}; use one of {BLOCK_NORMS}")
  _, cells_row, cells_col, _ = histograms.shape
  k = cells_per_block
  blocks_row, blocks_col = cells_row - k + 1, cells_col - k + 1
  if blocks_row <= 0 or blocks_col <= 0:
    raise ValueError(f"{cells_row}x{cells_col} cells are fewer than one block of {k}x{k}")
  rows = jnp.stack([histograms[:, i:i + blocks_row] for i in range(k)], axis=3)
  blocks = jnp.stack([rows[:, :, j:j + blocks_col] for j in range(k)], axis=4)
  axes = (3, 4, 5)
  if block_norm == "L1":
    return blocks / (jnp.sum(jnp.abs(blocks), axis=axes, keepdims=True) + eps)
  if block_norm == "L1-sqrt":
    return jnp.sqrt(blocks / (jnp.sum(jnp.abs(blocks), axis=axes, keepdims=True) + eps))
  l2 = lambda v: v / jnp.sqrt(jnp.sum(v**2, axis=axes, keepdims=True) + eps**2)
  blocks = l2(blocks)
  return l2(jnp.minimum(blocks, 0.2)) if block_norm == "L2-Hys" else blocks


def hog(images: jax.Array, *, orientations: int = 9, pixels_per_cell: int = 8,
        cells_per_block: int = 3, block_norm: str = "L2-Hys", eps: float = 1e-5,
        feature_vector: bool = True) -> jax.Array:
  """HOG descriptors of [B, H, W, C] images, as skimage.feature.hog computes them per image.

  Args:
    images: [B, H, W, C]; several channels use each pixel's dominant channel (skimage with
      `channel_axis=-1`); C = 1 is skimage's grayscale case.
    orientations, pixels_per_cell, cells_per_block, block_norm: skimage's arguments (square
      cells and blocks); eps: skimage's 1e-5.
    feature_vector: True: [B, D] (each row skimage's `.ravel()`); False:
      [B, blocks_row, blocks_col, cells_per_block, cells_per_block, orientations].
  """
  histograms = cell_histograms(images, orientations=orientations, cell_size=pixels_per_cell)
  blocks = normalize_blocks(histograms[..., 0, :], cells_per_block=cells_per_block,
                            block_norm=block_norm, eps=eps)
  return blocks.reshape(blocks.shape[0], -1) if feature_vector else blocks


TARGET_NORMALIZATIONS = ("cell", "patch")


def maskfeat_targets(images: jax.Array, *, patch_size: int, cell_size: int,
                     orientations: int = 9, normalization: str = "cell",
                     eps: float = 1e-12) -> jax.Array:
  """MaskFeat's HOG target of every ViT patch: [B, H, W, C] -> [B, N, C * (p / c)^2 * O].

  HOG is computed on the whole image (gradients cross patch borders, so a patch's target
  does not depend on how it is padded), on each channel separately; then, with
  `normalization="cell"` (the official code, PySlowFast's `HOGLayerC`:
  `F.normalize(out, p=2, dim=2)` over the bins), each cell's `orientations`-bin histogram of
  each channel is divided by its L2 norm (max(norm, eps), as `F.normalize`; an empty cell
  stays zero); with "patch", a patch's (p / c)^2 cell histograms of a channel are
  flattened and L2-normalised together (what this library did before, a reading of the
  paper's "local contrast normalisation"). Wei et al. 2022, sec. 3 and 4.1: 9 bins, 8x8
  cells, 16x16 patches. Patches are in row-major order, as a ViT's patch tokens.
  Differences from the official code: central differences instead of Sobel filters, no
  Gaussian spatial weighting, zero instead of reflected borders, cell means instead of
  sums (the same after normalisation).

  Returns:
    [B, (H / p) (W / p), C * (p / c)^2 * orientations], ordered (channel, cell row, cell
    column, bin) within a patch.
  """
  if patch_size % cell_size:
    raise ValueError(f"patch_size={patch_size} is not a multiple of cell_size={cell_size}")
  if normalization not in TARGET_NORMALIZATIONS:
    raise ValueError(f"normalization={normalization!r}; use one of {TARGET_NORMALIZATIONS}")
  histograms = cell_histograms(images, orientations=orientations, cell_size=cell_size,
                               per_channel=True)
  l2_normalize = lambda x: x / jnp.maximum(
      jnp.sqrt(jnp.sum(x**2, axis=-1, keepdims=True)), eps)
  if normalization == "cell":
    histograms = l2_normalize(histograms)
  batch, cells_row, cells_col, channels, _ = histograms.shape
  per_side = patch_size // cell_size
  patches = histograms.reshape(batch, cells_row // per_side, per_side, cells_col // per_side,
                               per_side, channels, orientations)
  # -> [B, patch row, patch col, C, cell row, cell col, O]
  patches = patches.transpose(0, 1, 3, 5, 2, 4, 6)
  patches = patches.reshape(batch, patches.shape[1] * patches.shape[2], channels, -1)
  if normalization == "patch":
    patches = l2_normalize(patches)
  return patches.reshape(batch, patches.shape[1], -1)


def maskfeat_video_targets(clips: jax.Array, *, tubelet_size: int, patch_size: int,
                           cell_size: int, orientations: int = 9,
                           normalization: str = "cell") -> jax.Array:
  """MaskFeat's HOG target of every video ViT token: [B, T, H, W, C] clips ->
  [B, (T / t) (H / p) (W / p), C * (p / c)^2 * O], tokens time-major (slot, row, column).

  A tubelet's target is `maskfeat_targets` of its patch in the tubelet's FIRST frame: the
  official video code (PySlowFast `MaskMViT._get_hog_label_3d`) takes
  `input_frames[:, :, ::PATCH_STRIDE[0]]`, one frame per temporal patch stride, and
  computes HOGLayerC on each of those frames. T must be a multiple of `tubelet_size`.
  """
  batch, frames, height, width, channels = clips.shape
  if frames % tubelet_size:
    raise ValueError(f"clips of {frames} frames do not split into tubelets of {tubelet_size}")
  first_frames = clips[:, ::tubelet_size]  # [B, T / t, H, W, C]
  slots = first_frames.shape[1]
  targets = maskfeat_targets(first_frames.reshape(batch * slots, height, width, channels),
                             patch_size=patch_size, cell_size=cell_size,
                             orientations=orientations, normalization=normalization)
  return targets.reshape(batch, slots * targets.shape[1], targets.shape[2])
