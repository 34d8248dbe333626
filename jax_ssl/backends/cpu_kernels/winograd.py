"""3x3 stride-1 convolution and its weight gradient by Winograd's minimal filtering F(4x4, 3x3).

Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016. Each 4x4 block
of outputs comes from a 6x6 input tile: the tiles (and the 3x3 kernel) are transformed to 36
points, multiplied channel-wise there as 36 matrix products [tiles, C_in] x [C_in, C_out], and
transformed back: 36 / 16 = 2.25 multiplies per output instead of 9, i.e. 4x fewer FLOPs in
the matrix products, for memory traffic of 2.25x the input and output. It wins where the
channels are many and the images small (ResNet-18's last two stages); `conv.py` decides
where. Every step is a plain XLA op: the transforms are matrix products with the Kronecker
products of the 1-D transforms, so XLA's matmul does the arithmetic.

The weight gradient uses the same tiles (the transposition principle): with y = A^T[(G w) *
(B^T d)], dL/dw = G^T[(A dL/dy) * (B^T d)] summed over tiles, a matrix product over the tile
axis per point. The input gradient of a stride-1 convolution is itself a convolution (of the
output gradient with the flipped kernel), so `conv3x3` serves it too.

Float32 error against XLA's direct convolution: ~2e-5 of the output's largest magnitude at
512 input channels (`tests/backends/test_cpu_kernels.py` checks values and gradients).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

# F(4, 3) with interpolation points 0, 1, -1, 2, -2 and infinity.
_BT = np.array([[4, 0, -5, 0, 1, 0],
                [0, -4, -4, 1, 1, 0],
                [0, 4, -4, -1, 1, 0],
                [0, -2, -1, 2, 1, 0],
                [0, 2, -1, -2, 1, 0],
                [0, 4, 0, -5, 0, 1]], np.float32)
_G = np.array([[1 / 4, 0, 0],
               [-1 / 6, -1 / 6, -1 / 6],
               [-1 / 6, 1 / 6, -1 / 6],
               [1 / 24, 1 / 12, 1 / 6],
               [1 / 24, -1 / 12, 1 / 6],
               [0, 0, 1]], np.float32)
_AT = np.array([[1, 1, 1, 1, 1, 0],
                [0, 1, -1, 2, -2, 0],
                [0, 1, 1, 4, 4, 0],
                [0, 1, -1, 8, -8, 1]], np.float32)
# 2-D transforms of row-major flattened tiles: [36, 36] data, [36, 9] kernel, [16, 36] output.
DATA = np.kron(_BT, _BT)
KERNEL = np.kron(_G, _G)
OUTPUT = np.kron(_AT, _AT)
OUT, TILE = 4, 6


def _blocks(height: int, width: int) -> tuple[int, int]:
  return -(-height // OUT), -(-width // OUT)


def _transformed_tiles(x: jax.Array, padding, blocks_h: int, blocks_w: int) -> jax.Array:
  """[36, N * blocks_h * blocks_w, C]: the 6x6 tiles (stride 4) of x padded by `padding` (and
  by zeros past its far edges), in the Winograd domain."""
  _, height, width, channels = x.shape
  (top, _), (left, _) = padding
  padded = jnp.pad(x, ((0, 0), (top, OUT * blocks_h + 2 - height - top),
                       (left, OUT * blocks_w + 2 - width - left), (0, 0)))
  tiles = jnp.stack([padded[:, a:a + OUT * blocks_h:OUT, b:b + OUT * blocks_w:OUT]
                     for a in range(TILE) for b in range(TILE)])
  return jnp.dot(jnp.asarray(DATA), tiles.reshape(TILE * TILE, -1)).reshape(
      TILE * TILE, -1, channels)


def _output_size(x_shape, padding) -> tuple[int, int]:
  (top, bottom), (left, right) = padding
  return x_shape[1] + top + bottom - 2, x_shape[2] + left + right - 2


def conv3x3(x: jax.Array, w: jax.Array, padding) -> jax.Array:
  """NHWC x HWIO (3x3) -> NHWC, stride 1, padding ((top, bottom), (left, right)) each <= 2."""
  batch = x.shape[0]
  c_in, c_out = w.shape[2:]
  height, width = _output_size(x.shape, padding)
  blocks_h, blocks_w = _blocks(height, width)
  data = _transformed_tiles(x, padding, blocks_h, blocks_w)
  kernel = jnp.dot(jnp.asarray(KERNEL), w.reshape(9, -1)).reshape(TILE * TILE, c_in, c_out)
  products = lax.dot_general(data, kernel, (((2,), (1,)), ((0,), (0,))))  # [36, T, C_out]
  blocks = jnp.dot(jnp.asarray(OUTPUT), products.reshape(TILE * TILE, -1))
  y = blocks.reshape(OUT, OUT, batch, blocks_h, blocks_w, c_out).transpose(2, 3, 0, 4, 1, 5)
  return y.reshape(batch, OUT * blocks_h, OUT * blocks_w, c_out)[:, :height, :width]


def weight_grad3x3(x: jax.Array, g: jax.Array, padding) -> jax.Array:
  """d/dw of sum(g * conv3x3(x, w, padding)): [3, 3, C_in, C_out]."""
  _, height, width, c_out = g.shape
  c_in = x.shape[-1]
  blocks_h, blocks_w = _blocks(height, width)
  data = _transformed_tiles(x, padding, blocks_h, blocks_w)
  g = jnp.pad(g, ((0, 0), (0, OUT * blocks_h - height), (0, OUT * blocks_w - width), (0, 0)))
  g_blocks = jnp.stack([g[:, a::OUT, b::OUT] for a in range(OUT) for b in range(OUT)])
  g_points = jnp.dot(jnp.asarray(OUTPUT.T), g_blocks.reshape(OUT * OUT, -1)).reshape(
      TILE * TILE, -1, c_out)
  products = lax.dot_general(data, g_points, (((1,), (1,)), ((0,), (0,))))  # [36, C_in, C_out]
  return jnp.dot(jnp.asarray(KERNEL.T), products.reshape(TILE * TILE, -1)).reshape(
      3, 3, c_in, c_out)
