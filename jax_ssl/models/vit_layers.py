"""The transformer block of `models/vit.py` and its options: attention masks, 2-D rotary
position embeddings, QK-norm, SwiGLU, LayerScale.

With every option off a `Block` is timm's pre-norm ViT block as MAE, BEiT and SimMIM use it
(LayerNorm eps 1e-6, `nnx.MultiHeadAttention` with biases on q/k/v, a GELU MLP of ratio 4,
Xavier-uniform linear layers): its parameters and outputs are those of the plain ViT, so
saved runs keep loading. The options, for any method (`model.*` in the config):

  * `rope`: axial 2-D rotary position embeddings on q and k, as DINOv3 and the NEPA
    reference (`ViTNepaRopePositionEmbedding`, itself HF transformers' DINOv3 one): patch
    centres on [-1, 1] per axis, head_dim / 4 frequencies base^(-4k / head_dim) (base 100),
    angles 2 pi * coordinate * frequency, the first half of the rotated pairs for the row,
    the second for the column, and the pair (i, i + head_dim / 2) rotated ("rotate_half").
    Prefix tokens (CLS, registers) are not rotated (angle 0), as the reference's
    `apply_rotary_pos_emb`. q.k then depends on the two positions' offset only.
  * `qk_norm`: LayerNorm over each head's q and k (scale, no bias, eps 1e-6), applied before
    the rotation as the reference (Dehghani et al. 2023, ViT-22B).
  * `mlp="swiglu"`: DINOv2's `SwiGLUFFNFused` (Shazeer 2020): hidden width
    int(2/3 * dim * mlp_ratio) rounded up to a multiple of 8, w3(silu(x W1) * x W2) with W1,
    W2 fused in one `w12` layer, biases on.
  * `layer_scale`: a learned per-channel gamma (init this value, e.g. 1e-5) on both
    residual branches, as CaiT and DINOv2's `LayerScale`.

nnx.MultiHeadAttention has no hook for rotary embeddings, so `Attention` (q/k/v/out
`LinearGeneral` layers named and shaped as nnx.MultiHeadAttention's, optional
`query_ln`/`key_ln`, the rotation, `jax.nn.dot_product_attention` with the boolean mask)
is used when `rope` or `qk_norm` is on; without rotation it computes what
nnx.MultiHeadAttention(normalize_qk=qk_norm) computes with the same parameters.

References:
  Su et al., "RoFormer: Enhanced Transformer with Rotary Position Embedding", 2021. Heo et
  al., "Rotary Position Embedding for Vision Transformer", ECCV 2024 (axial 2-D RoPE).
  Fang et al., "EVA-02", 2023. Simeoni et al., "DINOv3", 2025 (the patch-centre
  coordinates on [-1, 1]). Touvron et al., "Going deeper with Image Transformers" (CaiT,
  LayerScale), ICCV 2021. Oquab et al., "DINOv2", TMLR 2024 (SwiGLUFFNFused, LayerScale).
  Xu et al., "Next-Embedding Prediction Makes Strong Vision Learners", 2025 (NEPA: causal
  ViT with RoPE, QK-norm, SwiGLU and LayerScale; github.com/SihanXU/nepa,
  models/vit_nepa/modeling_vit_nepa.py).
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

MLPS = ("gelu", "swiglu")
ROPE_BASE = 100.0  # the NEPA reference's rope_theta (DINOv3's base)

_XAVIER = nnx.initializers.xavier_uniform()
_LAYER_NORM_EPSILON = 1e-6


# ------------------------------------------------------------------- rotary embeddings


def rope_angles_at(coordinates: np.ndarray, head_dim: int) -> np.ndarray:
  """float32 [T, head_dim / 2] rotation angles of tokens at `coordinates` [T, 2] (row,
  column): for each axis head_dim / 4 angles 2 pi * coordinate * ROPE_BASE^(-4k / head_dim),
  the row's first, as the NEPA reference (and DINOv3) order them."""
  if head_dim % 4:
    raise ValueError(f"rotary embeddings need a head width divisible by 4, got {head_dim}")
  inverse_frequency = ROPE_BASE ** -np.arange(0, 1, 4 / head_dim, dtype=np.float64)
  angles = 2 * np.pi * np.asarray(coordinates, np.float64)[:, :, None] * inverse_frequency
  return angles.reshape(len(coordinates), head_dim // 2).astype(np.float32)


@functools.lru_cache(maxsize=None)
def rope_angles(grid_h: int, grid_w: int, head_dim: int) -> np.ndarray:
  """float32 [grid_h * grid_w, head_dim / 2]: `rope_angles_at` the patch centres of an
  h x w grid (row-major) on [-1, 1] per axis, so a grid of any size spans the same extent
  (DINO's local crops need no interpolation)."""
  rows = (np.arange(grid_h) + 0.5) / grid_h * 2 - 1
  cols = (np.arange(grid_w) + 0.5) / grid_w * 2 - 1
  coordinates = np.stack(np.meshgrid(rows, cols, indexing="ij"), axis=-1).reshape(-1, 2)
  return rope_angles_at(coordinates, head_dim)


def apply_rope(x: jax.Array, angles: jax.Array) -> jax.Array:
  """[B, T, heads, head_dim] q or k rotated by `angles` [B or 1, T, head_dim / 2]: the pair
  (i, i + head_dim / 2) by angles[..., i] (the reference's x cos + rotate_half(x) sin), in
  float32, cast back to x's dtype."""
  half = x.shape[-1] // 2
  cos = jnp.cos(angles)[:, :, None, :]
  sin = jnp.sin(angles)[:, :, None, :]
  first, second = x[..., :half].astype(jnp.float32), x[..., half:].astype(jnp.float32)
  rotated = jnp.concatenate([first * cos - second * sin, second * cos + first * sin], axis=-1)
  return rotated.astype(x.dtype)


# ---------------------------------------------------------------------------- layers


class MLP(nnx.Module):
  """Linear -> GELU (exact, as torch's nn.GELU) -> Linear."""

  def __init__(self, dim: int, hidden_dim: int, *, dtype, rngs: nnx.Rngs):
    self.fc1 = nnx.Linear(dim, hidden_dim, kernel_init=_XAVIER, dtype=dtype, rngs=rngs)
    self.fc2 = nnx.Linear(hidden_dim, dim, kernel_init=_XAVIER, dtype=dtype, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.fc2(jax.nn.gelu(self.fc1(x), approximate=False))


def swiglu_hidden_dim(hidden_dim: int) -> int:
  """DINOv2's SwiGLUFFNFused width for an MLP of `hidden_dim`: 2/3 of it (the same
  parameter count as the GELU MLP), rounded up to a multiple of 8."""
  return (int(hidden_dim * 2 / 3) + 7) // 8 * 8


class SwiGLU(nnx.Module):
  """DINOv2's SwiGLUFFNFused: w3(silu(x W1 + b1) * (x W2 + b2)), W1 and W2 one `w12` layer."""

  def __init__(self, dim: int, hidden_dim: int, *, dtype, rngs: nnx.Rngs):
    self.hidden_dim = swiglu_hidden_dim(hidden_dim)
    self.w12 = nnx.Linear(dim, 2 * self.hidden_dim, kernel_init=_XAVIER, dtype=dtype,
                          rngs=rngs)
    self.w3 = nnx.Linear(self.hidden_dim, dim, kernel_init=_XAVIER, dtype=dtype, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    gate, up = jnp.split(self.w12(x), 2, axis=-1)
    return self.w3(jax.nn.silu(gate) * up)


class LayerScale(nnx.Module):
  """x * gamma, gamma [D] learned from `init_value` (CaiT; DINOv2's LayerScale)."""

  def __init__(self, dim: int, init_value: float):
    self.gamma = nnx.Param(jnp.full((dim,), init_value, jnp.float32))

  def __call__(self, x: jax.Array) -> jax.Array:
    return x * self.gamma[...].astype(x.dtype)


class Attention(nnx.Module):
  """Multi-head self-attention with optional QK-norm and rotary embeddings.

  Parameters as nnx.MultiHeadAttention's (`query`, `key`, `value`: [D, heads, head_dim]
  kernels with biases; `out`: [heads, head_dim, D]; `query_ln`, `key_ln`: LayerNorm scales
  of head_dim with `qk_norm`), so without rotation the two compute the same function.
  """

  def __init__(self, dim: int, num_heads: int, *, qk_norm: bool, dtype, rngs: nnx.Rngs):
    self.num_heads, self.head_dim = num_heads, dim // num_heads
    linear = functools.partial(nnx.LinearGeneral, kernel_init=_XAVIER, dtype=dtype, rngs=rngs)
    self.query = linear(dim, (num_heads, self.head_dim))
    self.key = linear(dim, (num_heads, self.head_dim))
    self.value = linear(dim, (num_heads, self.head_dim))
    self.out = linear((num_heads, self.head_dim), dim, axis=(-2, -1))
    norm = functools.partial(nnx.LayerNorm, self.head_dim, epsilon=_LAYER_NORM_EPSILON,
                             use_bias=False, dtype=dtype, rngs=rngs)
    self.query_ln = nnx.data(norm() if qk_norm else None)
    self.key_ln = nnx.data(norm() if qk_norm else None)

  def __call__(self, x: jax.Array, mask: jax.Array | None = None,
               rope: jax.Array | None = None) -> jax.Array:
    """x [B, T, D]; mask as `Block`'s; rope: angles [B or 1, T, head_dim / 2] (None: no
    rotation)."""
    query, key, value = self.query(x), self.key(x), self.value(x)  # [B, T, heads, head_dim]
    if self.query_ln is not None:
      query, key = self.query_ln(query), self.key_ln(key)
    if rope is not None:
      query, key = apply_rope(query, rope), apply_rope(key, rope)
    return self.out(jax.nn.dot_product_attention(query, key, value, mask=mask))


class Block(nnx.Module):
  """Pre-norm transformer block: x + ls1(attention(norm(x))), then x + ls2(mlp(norm(x)))
  (ls: LayerScale with `layer_scale`, else the identity)."""

  def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, *, dtype,
               rngs: nnx.Rngs, qk_norm: bool = False, rope: bool = False, mlp: str = "gelu",
               layer_scale: float | None = None):
    if mlp not in MLPS:
      raise ValueError(f"model.mlp={mlp!r}; use 'gelu' or 'swiglu'")
    self.norm1 = nnx.LayerNorm(dim, epsilon=_LAYER_NORM_EPSILON, dtype=dtype, rngs=rngs)
    if qk_norm or rope:
      self.attention = Attention(dim, num_heads, qk_norm=qk_norm, dtype=dtype, rngs=rngs)
    else:
      self.attention = nnx.MultiHeadAttention(
          num_heads, dim, kernel_init=_XAVIER, dtype=dtype, decode=False, keep_rngs=False,
          rngs=rngs)
    self.rope = rope
    self.norm2 = nnx.LayerNorm(dim, epsilon=_LAYER_NORM_EPSILON, dtype=dtype, rngs=rngs)
    mlp_type = MLP if mlp == "gelu" else SwiGLU
    self.mlp = mlp_type(dim, int(dim * mlp_ratio), dtype=dtype, rngs=rngs)
    self.ls1 = nnx.data(LayerScale(dim, layer_scale) if layer_scale is not None else None)
    self.ls2 = nnx.data(LayerScale(dim, layer_scale) if layer_scale is not None else None)

  def __call__(self, x: jax.Array, mask: jax.Array | None = None,
               return_ffn: bool = False, rope: jax.Array | None = None
               ) -> jax.Array | tuple[jax.Array, jax.Array]:
    """x: [B, T, D]; mask: None, or a boolean attention mask broadcastable to [B, heads,
    T, T] (True: query t may attend to key s; `attention_mask` builds one from a key
    padding mask and/or causality); rope: rotation angles [B or 1, T, head_dim / 2] (a
    block built with `rope` only). With `return_ffn`, also what the MLP branch adds to the
    residual (after LayerScale; data2vec 2.0's "FFN targets")."""
    normed = self.norm1(x)
    if self.rope:
      attended = self.attention(normed, mask, rope)
    else:
      if rope is not None:
        raise ValueError("rotary angles passed to a block built without rope")
      attended = self.attention(normed, mask=mask)
    x = x + (self.ls1(attended) if self.ls1 is not None else attended)
    ffn = self.mlp(self.norm2(x))
    if self.ls2 is not None:
      ffn = self.ls2(ffn)
    return (x + ffn, ffn) if return_ffn else x + ffn


def attention_mask(key_valid: jax.Array | None = None, causal_length: int | None = None
                   ) -> jax.Array | None:
  """A boolean attention mask for `Block`: `key_valid` [B, T] (False: a padding token no
  query attends to) -> [B, 1, 1, T]; `causal_length` T -> [1, 1, T, T] lower-triangular
  (token t sees tokens <= t); both -> their conjunction; neither -> None."""
  mask = None
  if key_valid is not None:
    mask = jnp.asarray(key_valid, bool)[:, None, None, :]
  if causal_length is not None:
    causal = jnp.tril(jnp.ones((causal_length, causal_length), bool))[None, None]
    mask = causal if mask is None else mask & causal
  return mask


def _apply_block(block: Block, x: jax.Array, mask: jax.Array | None,
                 rope: jax.Array | None) -> jax.Array:
  return block(x, mask, rope=rope)


def _apply_block_with_ffn(block: Block, x: jax.Array, mask: jax.Array | None,
                          rope: jax.Array | None) -> tuple[jax.Array, jax.Array]:
  return block(x, mask, return_ffn=True, rope=rope)


def apply_blocks(blocks: Sequence[Block], x: jax.Array, remat: bool = False,
                 mask: jax.Array | None = None, rope: jax.Array | None = None) -> jax.Array:
  """The blocks in order; with `remat` each block's activations are recomputed in the
  backward pass (memory for compute). `mask`: the attention mask of every block (None: each
  token attends to every token); `rope`: the rotation angles of blocks built with `rope`."""
  apply = nnx.remat(_apply_block) if remat else _apply_block
  for block in blocks:
    x = apply(block, x, mask, rope)
  return x


def apply_blocks_with_outputs(blocks: Sequence[Block], x: jax.Array, remat: bool = False,
                              mask: jax.Array | None = None, rope: jax.Array | None = None
                              ) -> tuple[jax.Array, list[jax.Array]]:
  """`apply_blocks`, also returning every block's output (in block order; the last is the
  returned sequence): DINO's `get_intermediate_layers` before the final norm."""
  apply = nnx.remat(_apply_block) if remat else _apply_block
  outputs = []
  for block in blocks:
    x = apply(block, x, mask, rope)
    outputs.append(x)
  return x, outputs


def apply_blocks_with_ffn(blocks: Sequence[Block], x: jax.Array, remat: bool = False,
                          mask: jax.Array | None = None, rope: jax.Array | None = None
                          ) -> tuple[jax.Array, list[jax.Array]]:
  """`apply_blocks`, also returning each block's MLP output before its residual (in block
  order): the layer targets of data2vec 2.0."""
  apply = nnx.remat(_apply_block_with_ffn) if remat else _apply_block_with_ffn
  ffn_outputs = []
  for block in blocks:
    x, ffn = apply(block, x, mask, rope)
    ffn_outputs.append(ffn)
  return x, ffn_outputs
