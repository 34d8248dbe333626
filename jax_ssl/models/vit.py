"""Vision Transformers in Flax NNX, with the patch-level API masked image modelling needs.

`VisionTransformer(images) -> [B, D]` features like every backbone (mean of the normalised
patch tokens, or the CLS token), so every method and the evaluation take a ViT by config.
Masked image modelling goes through the token API instead:

  tokens = vit.embed_patches(images)               # [B, N, D], no position yet
  encoded = vit.encode_tokens(tokens, keep)        # [B, num_prefix_tokens + K, D], normalised
  features = vit.pool(encoded)                     # [B, D]

`encode_tokens` adds each token's position embedding *before* keeping the tokens at `keep`
(MAE's encoder sees only the visible patches, at their own positions), then prepends the CLS
token and runs the blocks. Blocks are pre-norm (LayerNorm eps 1e-6, GELU MLP of ratio 4,
biases on q/k/v) as timm's ViT used by MAE, BEiT and SimMIM; linear layers are Xavier-uniform,
CLS and learned position embeddings normal(0.02).

`dtype` is the compute dtype (bfloat16 for mixed precision; parameters stay float32);
features and decoder outputs are cast back to float32. `remat` recomputes each block's
activations in the backward pass (`nnx.remat`) instead of storing them.

Views of another size (DINO's and SwAV's local crops; any side a multiple of the patch
size) get the position embeddings interpolated over the same extent, as DINO's
`interpolate_pos_encoding` does (`position_embeddings(grid)`).

Layer-wise learning-rate decay (fine-tuning) uses `num_layers` and `layer_index(path)`.

Options every method can use (`model.*`; off by default, and then the parameters and
outputs are the plain ViT's above; the block-level ones are described in vit_layers.py):
`rope` (2-D rotary embeddings on q/k; `pos_embedding="none"` then drops the absolute
ones), `qk_norm`, `mlp="swiglu"`, `layer_scale`, `causal` and `num_registers`.

  * `causal`: the token API (`encode_tokens`, what MAE, NEPA and every token method train
    through) attends causally, token t to tokens <= t in sequence order (prefix tokens,
    then the patches in the order kept). The pooled features (`__call__`: evaluation,
    fine-tuning, export) attend bidirectionally, as NEPA fine-tunes its causally pretrained
    ViT (`is_causal: false` in its sft configs).
  * `num_registers`: learned register tokens after the CLS token (Darcet et al., "Vision
    Transformers Need Registers", ICLR 2024; DINOv2's init, normal(1e-6)), with no
    position embedding and no rotation. They count in `num_prefix_tokens`, so pooling and
    every method's `[:, num_prefix_tokens:]` slice of the patch outputs drop them.

References:
  Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021 (ViT-Base: 768 wide,
  12 blocks, 12 heads; ViT-Large 1024/24/16, ViT-Huge 1280/32/16, Table 1). Touvron et al., "Training data-efficient image transformers", ICML
  2021 (ViT-Tiny 192/3 heads, ViT-Small 384/6 heads). He et al., "Masked Autoencoders Are
  Scalable Vision Learners", CVPR 2022 (fixed 2-D sin-cos position embeddings). Caron et
  al., "Emerging Properties in Self-Supervised Vision Transformers", ICCV 2021 (DINO:
  position embeddings interpolated for the local crops).
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jax_ssl.masking import patchify
# The block and its options live in vit_layers.py; re-exported here, the one import path.
from jax_ssl.models.vit_layers import (  # noqa: F401  (re-exported)
    MLP, MLPS, Attention, Block, LayerScale, SwiGLU, apply_blocks, apply_blocks_with_ffn,
    apply_blocks_with_outputs, apply_rope, attention_mask, rope_angles, rope_angles_at)

# name: (width, depth, heads)
BACKBONES = {
    "vit_tiny": (192, 12, 3),
    "vit_small": (384, 12, 6),
    "vit_base": (768, 12, 12),
    # timm's vit_large_patch16_224 (MLP 4096) and vit_huge_patch14_224 (MLP 5120): MAE's
    # ViT-L/16 and ViT-H/14 (patch 14 for ViT-H: model.patch_size)
    "vit_large": (1024, 24, 16),
    "vit_huge": (1280, 32, 16),
}
# "none": no absolute position (with `rope`, the rotary embeddings carry it: NEPA)
POSITION_EMBEDDINGS = ("sincos", "learned", "none")
POOLS = ("gap", "cls")
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}

_XAVIER = nnx.initializers.xavier_uniform()
_TOKEN_INIT = nnx.initializers.normal(0.02)
_REGISTER_INIT = nnx.initializers.normal(1e-6)  # DINOv2's register_tokens init
_LAYER_NORM_EPSILON = 1e-6


def _grid_positions(size: int, base: int | None) -> np.ndarray:
  """Positions of `size` tokens spread over a grid of `base` (None: base = size), as an
  interpolation with half-pixel centres (align_corners=False) samples them: token i sits
  at (i + 0.5) * base / size - 0.5; i itself when size == base."""
  if base is None or base == size:
    return np.arange(size, dtype=np.float64)
  return (np.arange(size, dtype=np.float64) + 0.5) * base / size - 0.5


@functools.lru_cache(maxsize=None)
def sincos_position_embedding(grid_h: int, grid_w: int, dim: int,
                              base_grid: tuple[int, int] | None = None) -> np.ndarray:
  """MAE's fixed 2-D sin-cos embedding: float32 [grid_h * grid_w, dim], rows row-major.

  Token (row i, column j): the first dim/2 values encode j, the last dim/2 encode i, each as
  [sin(x * w_k), cos(x * w_k)] for w_k = 10000^(-k / (dim/4)), k = 0 .. dim/4 - 1 (MAE's
  get_2d_sincos_pos_embed, whose "emb_h" is, by its meshgrid order, the column).

  `base_grid` (the grid the model was built for): a grid of another size (DINO's local
  crops) covers the same extent, its positions spaced as in `_grid_positions`, the sin-cos
  analogue of interpolating a learned table (which `ViT.position_embeddings` does).
  """
  if dim % 4:
    raise ValueError(f"sin-cos position embeddings need a width divisible by 4, got {dim}")
  omega = 1.0 / 10000 ** (np.arange(dim // 4, dtype=np.float64) / (dim / 4))

  def one_axis(positions):
    angles = positions.reshape(-1)[:, None] * omega[None, :]
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)

  base_h, base_w = base_grid or (None, None)
  rows, cols = np.meshgrid(_grid_positions(grid_h, base_h), _grid_positions(grid_w, base_w),
                           indexing="ij")
  return np.concatenate([one_axis(cols), one_axis(rows)], axis=1).astype(np.float32)


class MaskToken(nnx.Module):
  """A learned token that replaces the embeddings of masked patches (SimMIM, BEiT).

  Stored [1, 1, D] (decayed by the optimizer's ndim > 1 rule, as MAE/SimMIM's [1, 1, D]
  tokens are under MAE's weight-decay grouping), init normal(0.02).
  """

  def __init__(self, dim: int, *, rngs: nnx.Rngs):
    self.token = nnx.Param(_TOKEN_INIT(rngs.params(), (1, 1, dim)))

  def __call__(self, tokens: jax.Array, mask: jax.Array) -> jax.Array:
    """[B, N, D] tokens, [B, N] mask (True = masked) -> tokens with the masked ones replaced."""
    return jnp.where(mask[..., None], self.token[...].astype(tokens.dtype), tokens)


class VisionTransformer(nnx.Module):
  """ViT backbone: patch embedding, position embeddings, optional CLS and register tokens,
  blocks, final norm.

  Args:
    image_size: side of the (square) input images; a multiple of `patch_size`.
    patch_size: side of the square patches (16 for 224 px; 4 for 28-32 px images).
    in_channels: image channels.
    dim, depth, num_heads: width, blocks and attention heads.
    mlp_ratio: MLP hidden width / dim.
    pos_embedding: "sincos" (fixed 2-D sin-cos, MAE), "learned" (normal(0.02) init) or
      "none" (only with `rope`).
    cls_token: prepend a learned CLS token (its fixed position embedding is zero).
    pool: features are the mean of the patch tokens ("gap") or the CLS token ("cls"), both
      after the final LayerNorm.
    dtype: compute dtype (parameters are float32).
    remat: recompute block activations in the backward pass.
    causal: causal attention in `encode_tokens` (the module docstring).
    rope: 2-D rotary position embeddings on q and k (head width a multiple of 4).
    qk_norm: LayerNorm on each head's q and k.
    mlp: "gelu" (timm's MLP) or "swiglu" (DINOv2's SwiGLUFFNFused).
    layer_scale: LayerScale's initial gamma on both residual branches (None: none).
    num_registers: register tokens after the CLS token.
  """

  def __init__(self, *, image_size: int, patch_size: int, in_channels: int, dim: int,
               depth: int, num_heads: int, mlp_ratio: float = 4.0,
               pos_embedding: str = "sincos", cls_token: bool = True, pool: str = "gap",
               dtype=jnp.float32, remat: bool = False, causal: bool = False,
               rope: bool = False, qk_norm: bool = False, mlp: str = "gelu",
               layer_scale: float | None = None, num_registers: int = 0, rngs: nnx.Rngs):
    if image_size % patch_size:
      raise ValueError(f"image_size={image_size} is not a multiple of patch_size={patch_size}")
    if dim % num_heads:
      raise ValueError(f"width {dim} is not divisible by num_heads={num_heads}")
    if pos_embedding not in POSITION_EMBEDDINGS:
      raise ValueError(f"pos_embedding={pos_embedding!r}; use one of {POSITION_EMBEDDINGS}")
    if pos_embedding == "none" and not rope:
      raise ValueError("model.pos_embedding='none' leaves the ViT without positions; set "
                       "model.rope=True or use 'sincos' / 'learned'")
    if rope and (dim // num_heads) % 4:
      raise ValueError(f"model.rope=True needs a head width (dim / num_heads = {dim} / "
                       f"{num_heads}) divisible by 4; set model.dim / model.num_heads so it is")
    if pool not in POOLS or (pool == "cls" and not cls_token):
      raise ValueError(f"pool={pool!r} with cls_token={cls_token}; use 'gap', or 'cls' with a "
                       f"CLS token")
    if num_registers < 0:
      raise ValueError(f"model.num_registers={num_registers}; must be >= 0")
    if layer_scale is not None and layer_scale <= 0:
      raise ValueError(f"model.layer_scale={layer_scale}; must be > 0 (or None: no LayerScale)")
    self.image_size, self.patch_size, self.in_channels = image_size, patch_size, in_channels
    self.grid_size = (image_size // patch_size,) * 2
    self.num_patches, self.patch_pixels = self._token_layout()
    self.feature_dim = dim
    self.num_layers = depth
    self.num_cls_tokens = int(cls_token)
    self.num_registers = num_registers
    # Everything before the patches (CLS, registers): what pooling and the MIM methods'
    # `[:, num_prefix_tokens:]` drop.
    self.num_prefix_tokens = self.num_cls_tokens + num_registers
    self.pos_embedding_kind, self.pool_kind = pos_embedding, pool
    self.dtype, self.remat = dtype, remat
    self.causal, self.rope, self.head_dim = causal, rope, dim // num_heads
    # A linear map of each flattened patch: the same as a stride-p p x p convolution.
    self.patch_embed = nnx.Linear(self.patch_pixels, dim, kernel_init=_XAVIER, dtype=dtype,
                                  rngs=rngs)
    self.cls_token = nnx.data(
        nnx.Param(_TOKEN_INIT(rngs.params(), (1, 1, dim))) if cls_token else None)
    # The learned table covers the CLS token and the patches (registers have no position).
    self.position_embedding = nnx.data(
        nnx.Param(_TOKEN_INIT(rngs.params(), (1, self.num_cls_tokens + self.num_patches, dim)))
        if pos_embedding == "learned" else None)
    self.register_tokens = nnx.data(
        nnx.Param(_REGISTER_INIT(rngs.params(), (1, num_registers, dim)))
        if num_registers else None)
    self.blocks = nnx.List([Block(dim, num_heads, mlp_ratio, dtype=dtype, rngs=rngs,
                                  qk_norm=qk_norm, rope=rope, mlp=mlp, layer_scale=layer_scale)
                            for _ in range(depth)])
    self.norm = nnx.LayerNorm(dim, epsilon=_LAYER_NORM_EPSILON, dtype=dtype, rngs=rngs)

  def _token_layout(self) -> tuple[int, int]:
    """(tokens, input values per token) of a model-sized input: the h x w patches of p x p x C
    pixels. A hook for subclasses with other tokens (models/video_vit.py: tubelets), read
    once in `__init__`, before the learned position table and the patch embedding are made."""
    return (self.grid_size[0] * self.grid_size[1],
            self.patch_size * self.patch_size * self.in_channels)

  def _grid_of_tokens(self, num_tokens: int, grid: tuple[int, ...] | None) -> tuple[int, ...]:
    """The grid `encode_tokens` hands `position_embeddings` for `num_tokens` patch tokens:
    `grid`, else the model's, else (another N, e.g. local crops) the square one. A hook for
    subclasses whose grids have other axes (models/video_vit.py: time, rows, columns)."""
    if grid is None and num_tokens != self.num_patches:
      side = int(round(num_tokens ** 0.5))
      if side * side != num_tokens:
        raise ValueError(f"{num_tokens} tokens are not a square grid; pass grid=(h, w)")
      grid = (side, side)
    return tuple(grid or self.grid_size)

  def position_embeddings(self, grid: tuple[int, int] | None = None) -> jax.Array:
    """float32 [num_cls_tokens + h * w, D]: the CLS position (if any) first, then the
    patches of an h x w `grid` (default: the model's); zeros with pos_embedding "none".
    Another grid (e.g. DINO's local crops) gets the table interpolated over the same
    extent, as DINO does: a learned table resized bicubically (half-pixel centres, no
    antialiasing, as torch's interpolate), the sin-cos one evaluated at the same
    interpolated positions."""
    grid = tuple(grid or self.grid_size)
    prefix_count = self.num_cls_tokens
    if self.pos_embedding_kind == "none":
      return jnp.zeros((prefix_count + grid[0] * grid[1], self.feature_dim), jnp.float32)
    if self.position_embedding is not None:
      table = self.position_embedding[...][0]
      if grid == self.grid_size:
        return table
      prefix, patches = table[:prefix_count], table[prefix_count:]
      patches = jax.image.resize(patches.reshape(*self.grid_size, -1),
                                 (*grid, self.feature_dim), "bicubic", antialias=False)
      return jnp.concatenate([prefix, patches.reshape(-1, self.feature_dim)])
    table = sincos_position_embedding(*grid, self.feature_dim,
                                      None if grid == self.grid_size else self.grid_size)
    prefix = np.zeros((prefix_count, self.feature_dim), np.float32)
    return jnp.asarray(np.concatenate([prefix, table]))

  def embed_patches(self, images: jax.Array) -> jax.Array:
    """[B, H, W, C] images -> [B, N, D] patch embeddings (before position embeddings); H and
    W multiples of the patch size (the model's image_size, or another, e.g. local crops)."""
    _, height, width, channels = images.shape
    if height % self.patch_size or width % self.patch_size or channels != self.in_channels:
      raise ValueError(f"images of shape {images.shape[1:]}; this ViT takes sides that are "
                       f"multiples of {self.patch_size} and {self.in_channels} channel(s), "
                       f"e.g. {(self.image_size, self.image_size, self.in_channels)}")
    return self.patch_embed(patchify(images, self.patch_size))

  def encode_tokens(self, tokens: jax.Array, keep_indices: jax.Array | None = None,
                    grid: tuple[int, int] | None = None, key_valid: jax.Array | None = None,
                    ffn_outputs: bool = False, causal: bool | None = None,
                    block_outputs: bool = False
                    ) -> jax.Array | tuple[jax.Array, list[jax.Array]]:
    """[B, N, D] patch embeddings -> [B, num_prefix_tokens + K, D] normalised tokens.

    Each patch gets its position embedding first (of an h x w `grid`, default the model's
    or, for another N, the square one); then only the patches at `keep_indices` ([B, K]
    int, any order; None = all N in order) are kept, the CLS and register tokens are
    prepended and the blocks run on that sequence (with `rope`, each kept patch rotated by
    its own position's angles).

    `key_valid` [B, K] (the kept tokens'; False: padding that no token attends to, so a
    batch of images with different numbers of visible patches keeps one static shape; the
    prefix tokens are always valid). `ffn_outputs`: also return every block's MLP output
    before its residual, [B, prefix + K, D] each, in block order (data2vec 2.0's targets).
    `causal`: token t attends to tokens <= t only (None: the model's `causal`).
    `block_outputs`: also return every block's output through the final norm, [B, prefix +
    K, D] each, in block order (DINO's `get_intermediate_layers`; the last is the first
    return value).
    """
    grid = self._grid_of_tokens(tokens.shape[1], grid)
    x = tokens
    if self.pos_embedding_kind != "none":
      positions = self.position_embeddings(grid)
      x = tokens + positions[self.num_cls_tokens:].astype(tokens.dtype)
    if keep_indices is not None:
      x = jnp.take_along_axis(x, keep_indices[..., None], axis=1)
    prefix = []
    if self.cls_token is not None:
      cls = self.cls_token[...]
      if self.pos_embedding_kind != "none":
        cls = cls + positions[None, :1]
      prefix.append(jnp.broadcast_to(cls.astype(x.dtype), (x.shape[0], 1, x.shape[2])))
    if self.register_tokens is not None:
      prefix.append(jnp.broadcast_to(self.register_tokens[...].astype(x.dtype),
                                     (x.shape[0], self.num_registers, x.shape[2])))
    if prefix:
      x = jnp.concatenate([*prefix, x], axis=1)
    rope = self._rope_angles(grid, keep_indices) if self.rope else None
    valid = None
    if key_valid is not None:
      prefix_valid = jnp.ones((key_valid.shape[0], self.num_prefix_tokens), bool)
      valid = jnp.concatenate([prefix_valid, key_valid.astype(bool)], axis=1)
    causal = self.causal if causal is None else causal
    mask = attention_mask(valid, x.shape[1] if causal else None)
    if ffn_outputs:
      x, ffn = apply_blocks_with_ffn(self.blocks, x.astype(self.dtype), self.remat, mask, rope)
      return self.norm(x), ffn
    if block_outputs:
      x, outputs = apply_blocks_with_outputs(self.blocks, x.astype(self.dtype), self.remat,
                                             mask, rope)
      return self.norm(x), [self.norm(output) for output in outputs]
    x = apply_blocks(self.blocks, x.astype(self.dtype), self.remat, mask, rope)
    return self.norm(x)

  def _rope_angles(self, grid: tuple[int, int], keep_indices: jax.Array | None) -> jax.Array:
    """[1 or B, num_prefix_tokens + K, head_dim / 2] rotation angles of the sequence
    `encode_tokens` builds: 0 for the prefix tokens, each kept patch its own."""
    angles = jnp.asarray(rope_angles(*grid, self.head_dim))[None]
    if keep_indices is not None:
      angles = jnp.take_along_axis(angles, keep_indices[..., None], axis=1)
    prefix = jnp.zeros((angles.shape[0], self.num_prefix_tokens, angles.shape[2]), angles.dtype)
    return jnp.concatenate([prefix, angles], axis=1)

  def pool(self, encoded: jax.Array) -> jax.Array:
    """[B, num_prefix_tokens + K, D] -> float32 [B, D] features (registers never count)."""
    if self.pool_kind == "cls":
      features = encoded[:, 0]
    else:
      features = jnp.mean(encoded[:, self.num_prefix_tokens:].astype(jnp.float32), axis=1)
    return features.astype(jnp.float32)

  def __call__(self, images: jax.Array) -> jax.Array:
    """[B, H, W, C] -> float32 [B, D] pooled features, attending bidirectionally also in a
    `causal` model (NEPA fine-tunes without the causal mask; the module docstring)."""
    grid = (images.shape[1] // self.patch_size, images.shape[2] // self.patch_size)
    return self.pool(self.encode_tokens(self.embed_patches(images), grid=grid, causal=False))

  def probe_features(self, images: jax.Array, last_blocks: int = 1,
                     avgpool: bool = False) -> jax.Array:
    """[B, H, W, C] -> float32 [B, D * (last_blocks + avgpool)]: the linear probe's input as
    DINO's eval_linear.py builds it (also iBOT's and, as `use_n_blocks` / `use_avgpool`,
    DINOv2's): the pooled token (`pool`: the CLS token, or the mean patch token without
    one) of each of the last `last_blocks` blocks, each through the final norm,
    concatenated in block order; `avgpool`: then the mean patch token of the last block
    (registers never count). `last_blocks=1` without `avgpool` is `__call__`."""
    grid = (images.shape[1] // self.patch_size, images.shape[2] // self.patch_size)
    _, outputs = self.encode_tokens(self.embed_patches(images), grid=grid, causal=False,
                                    block_outputs=True)
    parts = [self.pool(output) for output in outputs[len(outputs) - last_blocks:]]
    if avgpool:
      parts.append(jnp.mean(outputs[-1][:, self.num_prefix_tokens:].astype(jnp.float32),
                            axis=1))
    return jnp.concatenate(parts, axis=-1)

  def layer_index(self, path: Sequence[str | int]) -> int:
    """Depth of a parameter for layer-wise lr decay, from its path inside this module:
    0 for the patch embedding, CLS, register tokens and position embedding; i + 1 for
    block i; num_layers + 1 for the final norm (and anything else, e.g. a head after it)."""
    if path and str(path[0]) in ("patch_embed", "cls_token", "register_tokens",
                                 "position_embedding"):
      return 0
    if len(path) > 1 and str(path[0]) == "blocks":
      return int(path[1]) + 1
    return self.num_layers + 1


def make_vit(name: str, *, image_size: int, patch_size: int, in_channels: int,
             depth: int | None = None, dim: int | None = None, num_heads: int | None = None,
             pos_embedding: str = "sincos", cls_token: bool = True, pool: str = "gap",
             dtype: str = "float32", remat: bool = False, causal: bool = False,
             rope: bool = False, qk_norm: bool = False, mlp: str = "gelu",
             layer_scale: float | None = None, num_registers: int = 0,
             rngs: nnx.Rngs) -> VisionTransformer:
  """ViT by name (`vit_tiny`, `vit_small`, `vit_base`, `vit_large`, `vit_huge`: `BACKBONES`);
  depth/dim/num_heads override the named size (a narrower or shallower model for CPU runs and
  tests); the options after `remat`: `VisionTransformer`'s."""
  if name not in BACKBONES:
    raise ValueError(f"model.backbone={name!r} is unknown; choose one of {sorted(BACKBONES)}")
  if dtype not in DTYPES:
    raise ValueError(f"model.dtype={dtype!r}; use one of {sorted(DTYPES)}")
  default_dim, default_depth, default_heads = BACKBONES[name]
  return VisionTransformer(
      image_size=image_size, patch_size=patch_size, in_channels=in_channels,
      dim=dim or default_dim, depth=default_depth if depth is None else depth,
      num_heads=num_heads or default_heads, pos_embedding=pos_embedding, cls_token=cls_token,
      pool=pool, dtype=DTYPES[dtype], remat=remat, causal=causal, rope=rope, qk_norm=qk_norm,
      mlp=mlp, layer_scale=layer_scale, num_registers=num_registers, rngs=rngs)
