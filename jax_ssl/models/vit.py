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
POSITION_EMBEDDINGS = ("sincos", "learned")
POOLS = ("gap", "cls")
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}

_XAVIER = nnx.initializers.xavier_uniform()
_TOKEN_INIT = nnx.initializers.normal(0.02)
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


class MLP(nnx.Module):
  """Linear -> GELU (exact, as torch's nn.GELU) -> Linear."""

  def __init__(self, dim: int, hidden_dim: int, *, dtype, rngs: nnx.Rngs):
    self.fc1 = nnx.Linear(dim, hidden_dim, kernel_init=_XAVIER, dtype=dtype, rngs=rngs)
    self.fc2 = nnx.Linear(hidden_dim, dim, kernel_init=_XAVIER, dtype=dtype, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.fc2(jax.nn.gelu(self.fc1(x), approximate=False))


class Block(nnx.Module):
  """Pre-norm transformer block: x + attention(norm(x)), then x + mlp(norm(x))."""

  def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, *, dtype,
               rngs: nnx.Rngs):
    self.norm1 = nnx.LayerNorm(dim, epsilon=_LAYER_NORM_EPSILON, dtype=dtype, rngs=rngs)
    self.attention = nnx.MultiHeadAttention(
        num_heads, dim, kernel_init=_XAVIER, dtype=dtype, decode=False, keep_rngs=False,
        rngs=rngs)
    self.norm2 = nnx.LayerNorm(dim, epsilon=_LAYER_NORM_EPSILON, dtype=dtype, rngs=rngs)
    self.mlp = MLP(dim, int(dim * mlp_ratio), dtype=dtype, rngs=rngs)

  def __call__(self, x: jax.Array, mask: jax.Array | None = None,
               return_ffn: bool = False) -> jax.Array | tuple[jax.Array, jax.Array]:
    """x: [B, T, D]; mask: None, or a boolean attention mask broadcastable to [B, heads,
    T, T] (True: query t may attend to key s; `attention_mask` builds one from a key
    padding mask and/or causality). With `return_ffn`, also the MLP's output before the
    residual is added (data2vec 2.0's "FFN targets")."""
    x = x + self.attention(self.norm1(x), mask=mask)
    ffn = self.mlp(self.norm2(x))
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


def _apply_block(block: Block, x: jax.Array, mask: jax.Array | None) -> jax.Array:
  return block(x, mask)


def _apply_block_with_ffn(block: Block, x: jax.Array, mask: jax.Array | None
                          ) -> tuple[jax.Array, jax.Array]:
  return block(x, mask, return_ffn=True)


def apply_blocks(blocks: Sequence[Block], x: jax.Array, remat: bool = False,
                 mask: jax.Array | None = None) -> jax.Array:
  """The blocks in order; with `remat` each block's activations are recomputed in the
  backward pass (memory for compute). `mask`: the attention mask of every block (None: each
  token attends to every token)."""
  apply = nnx.remat(_apply_block) if remat else _apply_block
  for block in blocks:
    x = apply(block, x, mask)
  return x


def apply_blocks_with_ffn(blocks: Sequence[Block], x: jax.Array, remat: bool = False,
                          mask: jax.Array | None = None) -> tuple[jax.Array, list[jax.Array]]:
  """`apply_blocks`, also returning each block's MLP output before its residual (in block
  order): the layer targets of data2vec 2.0."""
  apply = nnx.remat(_apply_block_with_ffn) if remat else _apply_block_with_ffn
  ffn_outputs = []
  for block in blocks:
    x, ffn = apply(block, x, mask)
    ffn_outputs.append(ffn)
  return x, ffn_outputs


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
  """ViT backbone: patch embedding, position embeddings, optional CLS, blocks, final norm.

  Args:
    image_size: side of the (square) input images; a multiple of `patch_size`.
    patch_size: side of the square patches (16 for 224 px; 4 for 28-32 px images).
    in_channels: image channels.
    dim, depth, num_heads: width, blocks and attention heads.
    mlp_ratio: MLP hidden width / dim.
    pos_embedding: "sincos" (fixed 2-D sin-cos, MAE) or "learned" (normal(0.02) init).
    cls_token: prepend a learned CLS token (its fixed position embedding is zero).
    pool: features are the mean of the patch tokens ("gap") or the CLS token ("cls"), both
      after the final LayerNorm.
    dtype: compute dtype (parameters are float32).
    remat: recompute block activations in the backward pass.
  """

  def __init__(self, *, image_size: int, patch_size: int, in_channels: int, dim: int,
               depth: int, num_heads: int, mlp_ratio: float = 4.0,
               pos_embedding: str = "sincos", cls_token: bool = True, pool: str = "gap",
               dtype=jnp.float32, remat: bool = False, rngs: nnx.Rngs):
    if image_size % patch_size:
      raise ValueError(f"image_size={image_size} is not a multiple of patch_size={patch_size}")
    if dim % num_heads:
      raise ValueError(f"width {dim} is not divisible by num_heads={num_heads}")
    if pos_embedding not in POSITION_EMBEDDINGS:
      raise ValueError(f"pos_embedding={pos_embedding!r}; use one of {POSITION_EMBEDDINGS}")
    if pool not in POOLS or (pool == "cls" and not cls_token):
      raise ValueError(f"pool={pool!r} with cls_token={cls_token}; use 'gap', or 'cls' with a "
                       f"CLS token")
    self.image_size, self.patch_size, self.in_channels = image_size, patch_size, in_channels
    self.grid_size = (image_size // patch_size,) * 2
    self.num_patches = self.grid_size[0] * self.grid_size[1]
    self.patch_pixels = patch_size * patch_size * in_channels
    self.feature_dim = dim
    self.num_layers = depth
    self.num_prefix_tokens = int(cls_token)
    self.pos_embedding_kind, self.pool_kind = pos_embedding, pool
    self.dtype, self.remat = dtype, remat
    # A linear map of each flattened patch: the same as a stride-p p x p convolution.
    self.patch_embed = nnx.Linear(self.patch_pixels, dim, kernel_init=_XAVIER, dtype=dtype,
                                  rngs=rngs)
    self.cls_token = nnx.data(
        nnx.Param(_TOKEN_INIT(rngs.params(), (1, 1, dim))) if cls_token else None)
    self.position_embedding = nnx.data(
        nnx.Param(_TOKEN_INIT(rngs.params(), (1, self.num_prefix_tokens + self.num_patches, dim)))
        if pos_embedding == "learned" else None)
    self.blocks = nnx.List([Block(dim, num_heads, mlp_ratio, dtype=dtype, rngs=rngs)
                            for _ in range(depth)])
    self.norm = nnx.LayerNorm(dim, epsilon=_LAYER_NORM_EPSILON, dtype=dtype, rngs=rngs)

  def position_embeddings(self, grid: tuple[int, int] | None = None) -> jax.Array:
    """float32 [num_prefix_tokens + h * w, D]: the CLS position (if any) first, then the
    patches of an h x w `grid` (default: the model's). Another grid (e.g. DINO's local
    crops) gets the table interpolated over the same extent, as DINO does: a learned table
    resized bicubically (half-pixel centres, no antialiasing, as torch's interpolate), the
    sin-cos one evaluated at the same interpolated positions."""
    grid = tuple(grid or self.grid_size)
    if self.position_embedding is not None:
      table = self.position_embedding[...][0]
      if grid == self.grid_size:
        return table
      prefix, patches = table[:self.num_prefix_tokens], table[self.num_prefix_tokens:]
      patches = jax.image.resize(patches.reshape(*self.grid_size, -1),
                                 (*grid, self.feature_dim), "bicubic", antialias=False)
      return jnp.concatenate([prefix, patches.reshape(-1, self.feature_dim)])
    table = sincos_position_embedding(*grid, self.feature_dim,
                                      None if grid == self.grid_size else self.grid_size)
    prefix = np.zeros((self.num_prefix_tokens, self.feature_dim), np.float32)
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
                    ffn_outputs: bool = False
                    ) -> jax.Array | tuple[jax.Array, list[jax.Array]]:
    """[B, N, D] patch embeddings -> [B, num_prefix_tokens + K, D] normalised tokens.

    Each patch gets its position embedding first (of an h x w `grid`, default the model's
    or, for another N, the square one); then only the patches at `keep_indices` ([B, K]
    int, any order; None = all N in order) are kept, the CLS token is prepended and the
    blocks run on that sequence.

    `key_valid` [B, K] (the kept tokens'; False: padding that no token attends to, so a
    batch of images with different numbers of visible patches keeps one static shape; the
    prefix tokens are always valid). `ffn_outputs`: also return every block's MLP output
    before its residual, [B, prefix + K, D] each, in block order (data2vec 2.0's targets).
    """
    if grid is None and tokens.shape[1] != self.num_patches:
      side = int(round(tokens.shape[1] ** 0.5))
      if side * side != tokens.shape[1]:
        raise ValueError(f"{tokens.shape[1]} tokens are not a square grid; pass grid=(h, w)")
      grid = (side, side)
    positions = self.position_embeddings(grid)
    x = tokens + positions[self.num_prefix_tokens:].astype(tokens.dtype)
    if keep_indices is not None:
      x = jnp.take_along_axis(x, keep_indices[..., None], axis=1)
    if self.cls_token is not None:
      cls = (self.cls_token[...] + positions[None, :1]).astype(x.dtype)
      x = jnp.concatenate([jnp.broadcast_to(cls, (x.shape[0], 1, x.shape[2])), x], axis=1)
    mask = None
    if key_valid is not None:
      prefix_valid = jnp.ones((key_valid.shape[0], self.num_prefix_tokens), bool)
      mask = attention_mask(jnp.concatenate([prefix_valid, key_valid.astype(bool)], axis=1))
    if ffn_outputs:
      x, ffn = apply_blocks_with_ffn(self.blocks, x.astype(self.dtype), self.remat, mask)
      return self.norm(x), ffn
    x = apply_blocks(self.blocks, x.astype(self.dtype), self.remat, mask)
    return self.norm(x)

  def pool(self, encoded: jax.Array) -> jax.Array:
    """[B, num_prefix_tokens + K, D] -> float32 [B, D] features."""
    if self.pool_kind == "cls":
      features = encoded[:, 0]
    else:
      features = jnp.mean(encoded[:, self.num_prefix_tokens:].astype(jnp.float32), axis=1)
    return features.astype(jnp.float32)

  def __call__(self, images: jax.Array) -> jax.Array:
    grid = (images.shape[1] // self.patch_size, images.shape[2] // self.patch_size)
    return self.pool(self.encode_tokens(self.embed_patches(images), grid=grid))

  def layer_index(self, path: Sequence[str | int]) -> int:
    """Depth of a parameter for layer-wise lr decay, from its path inside this module:
    0 for the patch embedding, CLS token and position embedding; i + 1 for block i;
    num_layers + 1 for the final norm (and anything else, e.g. a head after it)."""
    if path and str(path[0]) in ("patch_embed", "cls_token", "position_embedding"):
      return 0
    if len(path) > 1 and str(path[0]) == "blocks":
      return int(path[1]) + 1
    return self.num_layers + 1


def make_vit(name: str, *, image_size: int, patch_size: int, in_channels: int,
             depth: int | None = None, dim: int | None = None, num_heads: int | None = None,
             pos_embedding: str = "sincos", cls_token: bool = True, pool: str = "gap",
             dtype: str = "float32", remat: bool = False, rngs: nnx.Rngs) -> VisionTransformer:
  """ViT by name (`vit_tiny`, `vit_small`, `vit_base`, `vit_large`, `vit_huge`: `BACKBONES`);
  depth/dim/num_heads override the named size (a narrower or shallower model for CPU runs and
  tests)."""
  if name not in BACKBONES:
    raise ValueError(f"model.backbone={name!r} is unknown; choose one of {sorted(BACKBONES)}")
  if dtype not in DTYPES:
    raise ValueError(f"model.dtype={dtype!r}; use one of {sorted(DTYPES)}")
  default_dim, default_depth, default_heads = BACKBONES[name]
  return VisionTransformer(
      image_size=image_size, patch_size=patch_size, in_channels=in_channels,
      dim=dim or default_dim, depth=default_depth if depth is None else depth,
      num_heads=num_heads or default_heads, pos_embedding=pos_embedding, cls_token=cls_token,
      pool=pool, dtype=DTYPES[dtype], remat=remat, rngs=rngs)
