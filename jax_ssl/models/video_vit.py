"""The video Vision Transformer: the image ViT (models/vit.py) on tubelet tokens.

`VideoViT(clips) -> float32 [B, D]` like every backbone, and the same token API as the image
ViT, so the masked-modelling methods (VideoMAE, MaskFeat) reuse MAE's code on clips:

  tokens = vit.embed_patches(clips)             # [B, N, D], N = T/t * H/p * W/p
  encoded = vit.encode_tokens(tokens, keep)     # [B, num_prefix_tokens + K, D]
  features = vit.pool(encoded)                  # [B, D]
  targets = vit.tubelets(clips)                 # [B, N, t * p * p * C], token order

A token is a tubelet of t frames x p x p pixels x C channels (VideoMAE's 2 x 16 x 16), its
values flattened (frame, row, column, channel) and embedded by one linear map: VideoMAE's
`PatchEmbed` (a Conv3d of kernel = stride = (t, p, p), with bias) in another layout. Tokens
run time-major, then row, then column: what VideoMAE's `proj(x).flatten(2)` of the
[B, D, T/t, H/p, W/p] map gives, and its tube masks and pixel targets assume
(MCG-NJU/VideoMAE modeling_finetune.py `PatchEmbed`, masking_generator.py).

Position embeddings (`pos_embedding`): "sincos" is VideoMAE's fixed 1-D table over the N
flattened tokens (`get_sinusoid_encoding_table`: value 2i of token n is
sin(n / 10000^(2i / D)), value 2i + 1 its cos), which VideoMAE's encoder, decoder and
fine-tuned model all use; "learned" a [1, num_cls_tokens + N, D] table (normal(0.02), the
image ViT's). A clip with another number of tubelets in time (the same H and W) takes the
first rows of either table, or the 1-D table continued; another H or W is refused: the 1-D
table has no spatial axes to interpolate. The CLS token (if any) has a zero fixed
position, as in the image ViT. `rope` (2-D rotary) is refused: no 3-D version exists here.

Every block, the final norm, the CLS and register tokens, `pool`, `layer_index` and the
options (`qk_norm`, `mlp`, `layer_scale`, `num_registers`, `causal`, `remat`, `dtype`) are
the image ViT's. One difference from VideoMAE's block: its attention has q and v biases and
a k bias fixed at zero (`Attention.q_bias` / `v_bias`); ours has all three (timm's), 768
more parameters a ViT-B block (tests/models/test_video_vit.py counts them).

References:
  Tong et al., "VideoMAE: Masked Autoencoders are Data-Efficient Learners for
  Self-Supervised Video Pre-Training", NeurIPS 2022. Arnab et al., "ViViT: A Video Vision
  Transformer", ICCV 2021 (tubelet embedding). Feichtenhofer et al., "Masked Autoencoders As
  Spatiotemporal Learners", NeurIPS 2022.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jax_ssl.models import vit


def tubeletify(clips: jax.Array, tubelet_size: int, patch_size: int) -> jax.Array:
  """[B, T, H, W, C] -> [B, T/t * H/p * W/p, t * p * p * C]: tokens time-major, then row,
  then column; each tubelet's values flattened (frame, row, column, channel), as VideoMAE's
  targets ('b c (t p0) (h p1) (w p2) -> b (t h w) (p0 p1 p2) c')."""
  batch, frames, height, width, channels = clips.shape
  t, p = tubelet_size, patch_size
  x = clips.reshape(batch, frames // t, t, height // p, p, width // p, p, channels)
  x = jnp.transpose(x, (0, 1, 3, 5, 2, 4, 6, 7))
  return x.reshape(batch, (frames // t) * (height // p) * (width // p), t * p * p * channels)


def untubeletify(tokens: jax.Array, tubelet_size: int, patch_size: int,
                 token_grid: tuple[int, int, int]) -> jax.Array:
  """Inverse of `tubeletify`: [B, T' * h * w, t * p * p * C] -> [B, T' t, h p, w p, C]."""
  batch = tokens.shape[0]
  t, p = tubelet_size, patch_size
  grid_t, grid_h, grid_w = token_grid
  channels = tokens.shape[-1] // (t * p * p)
  x = tokens.reshape(batch, grid_t, grid_h, grid_w, t, p, p, channels)
  x = jnp.transpose(x, (0, 1, 4, 2, 5, 3, 6, 7))
  return x.reshape(batch, grid_t * t, grid_h * p, grid_w * p, channels)


@functools.lru_cache(maxsize=None)
def sinusoid_table(num_positions: int, dim: int) -> np.ndarray:
  """VideoMAE's `get_sinusoid_encoding_table(num_positions, dim)`: float32 [N, D], row n,
  column j: n / 10000^(2 (j // 2) / D), sine on even j, cosine on odd j."""
  positions = np.arange(num_positions, dtype=np.float64)[:, None]
  exponents = 2 * (np.arange(dim) // 2) / dim
  angles = positions / np.power(10000.0, exponents)[None, :]
  table = np.empty_like(angles)
  table[:, 0::2] = np.sin(angles[:, 0::2])
  table[:, 1::2] = np.cos(angles[:, 1::2])
  return table.astype(np.float32)


class VideoViT(vit.VisionTransformer):
  """ViT on [B, T, H, W, C] clips with t x p x p tubelet tokens (module docstring).

  Args (besides `vit.VisionTransformer`'s, whose `image_size` is the frames' side):
    num_frames: T of the clips the model is built for; a multiple of `tubelet_size`.
    tubelet_size: t, frames a token covers (VideoMAE's 2).
  Attributes: token_grid (T/t, H/p, W/p); num_patches, its product (N); patch_pixels,
  t * p * p * C; grid_size, the spatial (H/p, W/p).
  """

  def __init__(self, *, num_frames: int, tubelet_size: int = 2, rope: bool = False,
               **kwargs):
    if rope:
      raise ValueError("model.rope=True: the video ViT has no 3-D rotary position "
                       "embeddings; set model.rope=False (positions: model.pos_embedding)")
    if tubelet_size < 1 or num_frames < 1 or num_frames % tubelet_size:
      raise ValueError(f"clips of {num_frames} frames do not split into tubelets of "
                       f"{tubelet_size} frames; set the clips' num_frames to a multiple of "
                       f"the tubelet size {tubelet_size}")
    # Read by `_token_layout` inside the base constructor (before the patch embedding and
    # the learned position table are made), so set first.
    self.num_frames, self.tubelet_size = num_frames, tubelet_size
    super().__init__(rope=False, **kwargs)
    self.token_grid = (num_frames // tubelet_size, *self.grid_size)

  def _token_layout(self) -> tuple[int, int]:
    grid_h, grid_w = self.grid_size
    return ((self.num_frames // self.tubelet_size) * grid_h * grid_w,
            self.tubelet_size * self.patch_size * self.patch_size * self.in_channels)

  def _grid_of_tokens(self, num_tokens: int, grid: tuple[int, ...] | None
                      ) -> tuple[int, int, int]:
    """The (T', h, w) token grid of `num_tokens` tokens: `grid`, else the model's, else as
    many tubelets in time as the model's spatial grid divides into."""
    if grid is not None:
      grid = tuple(grid)
      if len(grid) != 3 or int(np.prod(grid)) != num_tokens:
        raise ValueError(f"grid={grid} for {num_tokens} tokens; the video ViT takes a "
                         f"(time, rows, columns) token grid whose product is the tokens'")
      return grid
    if num_tokens == self.num_patches:
      return self.token_grid
    spatial = self.grid_size[0] * self.grid_size[1]
    if num_tokens % spatial:
      raise ValueError(f"{num_tokens} tokens are not tubelets of {self.grid_size} spatial "
                       f"grids; pass grid=(time, rows, columns)")
    return (num_tokens // spatial, *self.grid_size)

  def position_embeddings(self, grid: tuple[int, ...] | None = None) -> jax.Array:
    """float32 [num_cls_tokens + T' * h * w, D] for a (T', h, w) token `grid` (default the
    model's): the CLS position (zero if fixed) first, then the tokens' (module docstring)."""
    grid_t, grid_h, grid_w = tuple(grid or self.token_grid)
    if (grid_h, grid_w) != tuple(self.grid_size):
      raise ValueError(f"a {grid_h}x{grid_w} spatial token grid; this video ViT's position "
                       f"embeddings cover {self.grid_size[0]}x{self.grid_size[1]} (frames of "
                       f"{self.image_size} px)")
    count = grid_t * grid_h * grid_w
    prefix_count = self.num_cls_tokens
    if self.position_embedding is not None:
      table = self.position_embedding[...][0]
      if count > self.num_patches:
        raise ValueError(f"{grid_t} tubelets in time; the learned position table covers "
                         f"{self.token_grid[0]} ({self.num_frames} frames)")
      return table[:prefix_count + count]
    prefix = np.zeros((prefix_count, self.feature_dim), np.float32)
    return jnp.asarray(np.concatenate([prefix, sinusoid_table(count, self.feature_dim)]))

  def tubelets(self, clips: jax.Array) -> jax.Array:
    """[B, T, H, W, C] -> [B, N, t * p * p * C], the tokens' values in token order (VideoMAE's
    pixel targets before normalisation)."""
    if (clips.ndim != 5 or clips.shape[1] % self.tubelet_size
        or clips.shape[2] % self.patch_size or clips.shape[3] % self.patch_size
        or clips.shape[4] != self.in_channels):
      raise ValueError(f"clips of shape {clips.shape}; this video ViT takes [B, T, H, W, "
                       f"{self.in_channels}] clips with T a multiple of {self.tubelet_size} "
                       f"and H, W multiples of {self.patch_size}, e.g. (B, {self.num_frames}, "
                       f"{self.image_size}, {self.image_size}, {self.in_channels})")
    return tubeletify(clips, self.tubelet_size, self.patch_size)

  def clip_token_grid(self, clips: jax.Array) -> tuple[int, int, int]:
    """The (T/t, H/p, W/p) token grid of `clips` [B, T, H, W, C]."""
    return (clips.shape[1] // self.tubelet_size, clips.shape[2] // self.patch_size,
            clips.shape[3] // self.patch_size)

  def embed_patches(self, clips: jax.Array) -> jax.Array:
    """[B, T, H, W, C] clips -> [B, N, D] tubelet embeddings (before position embeddings)."""
    return self.patch_embed(self.tubelets(clips))

  def __call__(self, clips: jax.Array) -> jax.Array:
    """[B, T, H, W, C] -> float32 [B, D] pooled features (bidirectional attention, as the
    image ViT's `__call__`)."""
    return self.pool(self.encode_tokens(self.embed_patches(clips),
                                        grid=self.clip_token_grid(clips), causal=False))


def make_video_vit(name: str, *, num_frames: int, tubelet_size: int = 2, image_size: int,
                   patch_size: int, in_channels: int, depth: int | None = None,
                   dim: int | None = None, num_heads: int | None = None,
                   pos_embedding: str = "sincos", cls_token: bool = True, pool: str = "gap",
                   dtype: str = "float32", remat: bool = False, causal: bool = False,
                   rope: bool = False, qk_norm: bool = False, mlp: str = "gelu",
                   layer_scale: float | None = None, num_registers: int = 0,
                   rngs: nnx.Rngs) -> VideoViT:
  """Video ViT by the image ViT's size names (`vit.BACKBONES`: vit_tiny ... vit_huge), for
  clips of `num_frames` frames of `image_size` px; the other arguments as `vit.make_vit`."""
  if name not in vit.BACKBONES:
    raise ValueError(f"model.backbone={name!r} is unknown; choose one of "
                     f"{sorted(vit.BACKBONES)}")
  if dtype not in vit.DTYPES:
    raise ValueError(f"model.dtype={dtype!r}; use one of {sorted(vit.DTYPES)}")
  default_dim, default_depth, default_heads = vit.BACKBONES[name]
  return VideoViT(
      num_frames=num_frames, tubelet_size=tubelet_size, image_size=image_size,
      patch_size=patch_size, in_channels=in_channels, dim=dim or default_dim,
      depth=default_depth if depth is None else depth, num_heads=num_heads or default_heads,
      pos_embedding=pos_embedding, cls_token=cls_token, pool=pool, dtype=vit.DTYPES[dtype],
      remat=remat, causal=causal, rope=rope, qk_norm=qk_norm, mlp=mlp,
      layer_scale=layer_scale, num_registers=num_registers, rngs=rngs)
