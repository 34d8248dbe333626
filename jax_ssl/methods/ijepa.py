"""I-JEPA: from one context block, a narrow ViT predicts an EMA target encoder's features of
four target blocks of the same image.

Assran et al., "Self-Supervised Learning from Images with a Joint-Embedding Predictive
Architecture", CVPR 2023; the official code facebookresearch/ijepa (src/train.py,
src/models/vision_transformer.py `VisionTransformerPredictor`, src/masks/multiblock.py).

One view per image (a random resized crop, no flip or colour: the reference's
`make_transforms` for ImageNet), and per step from the step's rng (the same on every device)
I-JEPA's multi-block masks (`multiblock.multiblock_masks`): 4 target blocks (scale 0.15-0.2,
aspect 0.75-1.5) and a context block (scale 0.85-1, square) minus the targets.

 * Context encoder: the shared ViT backbone on the context tokens only (`encode_tokens` with
   the context indices; the padding that keeps Kc static is hidden by `key_valid`).
 * Target encoder: the backbone's EMA copy (`target_modules=("backbone",)`) on the whole
   image, its patch tokens normalised by a LayerNorm without parameters
   (`losses.feature_layer_norm`, the reference's `F.layer_norm`), then gathered at each
   target block; the EMA momentum moves linearly from `ema_start` to `ema_end` over the run
   (the reference's `momentum_scheduler`).
 * Predictor (`IJEPAPredictor`): linear to `predictor_dim`, fixed sin-cos positions of the
   context tokens added, then per target block (the context repeated, as the reference's
   `x.repeat(len(masks), 1, 1)`) a learned mask token plus the sin-cos position of every
   target token appended; `predictor_depth` blocks (padding tokens masked out of the keys),
   LayerNorm, linear back to the encoder width, read at the target tokens.
 * Loss: `losses.ijepa` (smooth-L1 as the code, or L2 as the paper: `Args.loss`), averaged
   over the valid target tokens of every block.

Evaluation: the target encoder (`evaluation_encoder="target"`: the paper evaluates it,
average-pooling its last layer's patch tokens for the linear probe), with the experiment
files' `cls_token=False` as I-JEPA's ViT has none.

Where this differs from the reference, besides the masks' (multiblock.multiblock_masks):
 * the predictor's layers use the ViT's init (Xavier-uniform linears, `vit.Block`), not
   trunc-normal(0.02) with the reference's depth rescaling (`fix_init_weight`); its mask
   token is trunc-normal(0.02) as the reference's;
 * the context of each image is cut to a fixed `context_fraction` of the tokens at random
   (the reference cuts every image to the batch's smallest count, in raster order).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from jax_ssl import losses, multiblock, optim
from jax_ssl.config.typed import check, check_positive
from jax_ssl.losses.latent import LATENT_LOSSES
from jax_ssl.methods.spec import Metrics, MethodSpec, SSLModel, StepContext
from jax_ssl.models import vit

# The reference's `trunc_normal_(self.mask_token, std=0.02)`.
_MASK_TOKEN_INIT = nnx.initializers.truncated_normal(stddev=0.02)


def _check_range(name: str, pair: tuple[float, float], upper: float | None) -> None:
  low, high = pair
  check(0 < low <= high and (upper is None or high <= upper),
        f"method_args.{name}={tuple(pair)}; need 0 < low <= high"
        + (f" <= {upper:g}" if upper is not None else ""))


@dataclasses.dataclass(frozen=True)
class Args:
  """I-JEPA's hyper-parameters (`--config.method_args.KEY`); defaults: the reference's
  configs/in1k_vith14_ep300.yaml.

  Attributes:
    num_targets: target blocks per image (`num_pred_masks`, 4).
    target_scale, target_aspect: the target blocks' fraction of the grid and height / width
      ranges (`pred_mask_scale`, `aspect_ratio`).
    context_scale, context_aspect: the context block's (`enc_mask_scale`; square).
    context_fraction: Kc, the context tokens the encoder sees, as a fraction of the N
      patches (int(fraction * N), at least 1): 0.27, the mean of the reference's per-batch
      count (its batch minimum, batch 128 per GPU) on ViT-H/14's 16x16 grid and (0.26) on
      ViT-B/16's 14x14 one (tests/methods/test_ijepa.py simulates the reference's sampler).
    min_context: a context keeps more than this many tokens or is redrawn (`min_keep`, 10).
    allow_overlap: the context block keeps the target tokens it covers (the reference's
      `allow_overlap`, False).
    loss: "smooth_l1" (the code: `F.smooth_l1_loss`) or "l2" (the paper's eq. (1)).
    ema_start, ema_end: the target encoder's EMA momentum at step 0 and at the last step,
      linear in between (the config's `ema: [0.996, 1.0]`).
  """

  num_targets: int = 4
  target_scale: tuple[float, float] = (0.15, 0.2)
  target_aspect: tuple[float, float] = (0.75, 1.5)
  context_scale: tuple[float, float] = (0.85, 1.0)
  context_aspect: tuple[float, float] = (1.0, 1.0)
  context_fraction: float = 0.27
  min_context: int = 10
  allow_overlap: bool = False
  loss: str = "smooth_l1"
  ema_start: float = 0.996
  ema_end: float = 1.0

  def validate(self) -> None:
    check(self.num_targets >= 1, f"method_args.num_targets={self.num_targets}; need an "
                                 f"integer >= 1 (target blocks per image)")
    _check_range("target_scale", self.target_scale, 1.0)
    _check_range("context_scale", self.context_scale, 1.0)
    _check_range("target_aspect", self.target_aspect, None)
    _check_range("context_aspect", self.context_aspect, None)
    check(0 < self.context_fraction <= 1,
          f"method_args.context_fraction={self.context_fraction}; must be in (0, 1] (the "
          f"context tokens the encoder sees, as a fraction of the patches)")
    check(self.min_context >= 0, f"method_args.min_context={self.min_context}; must be >= 0")
    check(self.loss in LATENT_LOSSES,
          f"method_args.loss={self.loss!r}; use one of {LATENT_LOSSES} (the code's or the "
          f"paper's)")
    for name in ("ema_start", "ema_end"):
      value = getattr(self, name)
      check(0 <= value <= 1, f"method_args.{name}={value!r}; must be in [0, 1] (an EMA "
                             f"momentum)")


@dataclasses.dataclass(frozen=True)
class Heads:
  """`heads.*`: the predictor's width, blocks and attention heads; defaults: the
  reference's ViT-H/14 predictor (`pred_emb_dim` 384, `pred_depth` 12, and the encoder's
  16 heads: `init_model` passes `num_heads=encoder.num_heads`)."""

  predictor_dim: int = 384
  predictor_depth: int = 12
  predictor_num_heads: int = 16

  def validate(self) -> None:
    check_positive("heads", self, "predictor_dim", "predictor_depth", "predictor_num_heads")
    check(self.predictor_dim % self.predictor_num_heads == 0,
          f"heads.predictor_dim={self.predictor_dim} is not divisible by "
          f"heads.predictor_num_heads={self.predictor_num_heads}; set them so that it is")
    check(self.predictor_dim % 4 == 0,
          f"heads.predictor_dim={self.predictor_dim}; must be a multiple of 4 (its 2-D sin-cos "
          f"positions)")


def num_context(args: Args, num_patches: int) -> int:
  """Kc: the context tokens per image, int(context_fraction * N), at least 1."""
  return max(1, int(args.context_fraction * num_patches))


def make_masks(rng: jax.Array, batch: int, grid: tuple[int, int], args: Args
               ) -> multiblock.MultiBlockMasks:
  """This step's multi-block masks for a `grid` of patches (`multiblock.multiblock_masks`)."""
  return multiblock.multiblock_masks(
      rng, batch, tuple(grid), num_context=num_context(args, grid[0] * grid[1]),
      num_targets=args.num_targets, target_scale=tuple(args.target_scale),
      target_aspect=tuple(args.target_aspect), context_scale=tuple(args.context_scale),
      context_aspect=tuple(args.context_aspect), allow_overlap=args.allow_overlap,
      min_context=args.min_context)


def _gather_tokens(x: jax.Array, positions: jax.Array) -> jax.Array:
  """x [B, N, D] at positions [B, ...] -> [B, ..., D]."""
  flat = positions.reshape(positions.shape[0], -1)
  gathered = jnp.take_along_axis(x, flat[..., None], axis=1)
  return gathered.reshape(*positions.shape, x.shape[-1])


class IJEPAPredictor(nnx.Module):
  """Encoded context tokens -> predicted target-encoder features at the target tokens.

  The reference's `VisionTransformerPredictor`: `predictor_embed` (linear to `dim`), fixed
  2-D sin-cos positions (`predictor_pos_embed`, the same table as the ViT's), the context
  repeated once per target block with that block's mask tokens appended, `depth` pre-norm
  blocks, LayerNorm, `predictor_proj` back to the encoder width. Runs in the backbone's
  compute dtype and remat setting.
  """

  def __init__(self, backbone: vit.VisionTransformer, dim: int, depth: int, num_heads: int,
               *, rngs: nnx.Rngs):
    dtype = backbone.dtype
    self.grid_size, self.dtype, self.remat = backbone.grid_size, dtype, backbone.remat
    self.embed = nnx.Linear(backbone.feature_dim, dim,
                            kernel_init=nnx.initializers.xavier_uniform(), dtype=dtype,
                            rngs=rngs)
    self.mask_token = nnx.Param(_MASK_TOKEN_INIT(rngs.params(), (1, 1, dim)))
    self.blocks = nnx.List([vit.Block(dim, num_heads, dtype=dtype, rngs=rngs)
                            for _ in range(depth)])
    self.norm = nnx.LayerNorm(dim, epsilon=1e-6, dtype=dtype, rngs=rngs)
    self.projection = nnx.Linear(dim, backbone.feature_dim,
                                 kernel_init=nnx.initializers.xavier_uniform(), dtype=dtype,
                                 rngs=rngs)

  def __call__(self, context_tokens: jax.Array, context: jax.Array, context_valid: jax.Array,
               targets: jax.Array, targets_valid: jax.Array) -> jax.Array:
    """context_tokens [B, Kc, D] (the encoder's outputs at `context` [B, Kc]); targets
    [B, T, Kt] token positions -> float32 [B, T, Kt, D] predictions."""
    batch, num_targets, target_slots = targets.shape
    num_context = context.shape[1]
    x = self.embed(context_tokens)
    width = x.shape[-1]
    table = jnp.asarray(vit.sincos_position_embedding(*self.grid_size, width))
    x = x + table[context].astype(x.dtype)
    # One sequence per (example, target block), example-major (row b * T + t), so an
    # example's sequences stay on the device that holds it.
    x = jnp.repeat(x, num_targets, axis=0)
    queries = self.mask_token[...] + table[targets.reshape(batch * num_targets, target_slots)]
    x = jnp.concatenate([x, queries.astype(x.dtype)], axis=1)
    key_valid = jnp.concatenate([
        jnp.repeat(context_valid, num_targets, axis=0),
        targets_valid.reshape(batch * num_targets, target_slots)], axis=1)
    x = vit.apply_blocks(self.blocks, x.astype(self.dtype), self.remat,
                         vit.attention_mask(key_valid))
    predictions = self.projection(self.norm(x)[:, num_context:])
    return predictions.reshape(batch, num_targets, target_slots, -1).astype(jnp.float32)


def make_heads(backbone: vit.VisionTransformer, heads: Heads, args: Args,
               rngs: nnx.Rngs) -> dict[str, nnx.Module]:
  """{"predictor": IJEPAPredictor} of the sizes in `heads`."""
  del args  # the predictor's shape is all in `heads`
  return {"predictor": IJEPAPredictor(backbone, heads.predictor_dim, heads.predictor_depth,
                                      heads.predictor_num_heads, rngs=rngs)}


def target_features(target_backbone: vit.VisionTransformer, images: jax.Array,
                    targets: jax.Array) -> jax.Array:
  """The EMA encoder's patch tokens of the whole image, LayerNorm'd without parameters,
  at the target positions [B, T, Kt] -> [B, T, Kt, D] (no gradient)."""
  encoded = target_backbone.encode_tokens(target_backbone.embed_patches(images))
  patches = losses.feature_layer_norm(encoded[:, target_backbone.num_prefix_tokens:])
  return jax.lax.stop_gradient(_gather_tokens(patches, targets))


def predict(model: SSLModel, images: jax.Array, masks: multiblock.MultiBlockMasks) -> jax.Array:
  """The context encoder on the context tokens, then the predictor: [B, T, Kt, D]."""
  backbone = model.backbone
  encoded = backbone.encode_tokens(backbone.embed_patches(images), masks.context,
                                   key_valid=masks.context_valid)
  return model.heads["predictor"](encoded[:, backbone.num_prefix_tokens:], masks.context,
                                  masks.context_valid, masks.targets, masks.targets_valid)


def objective(model: SSLModel, views: Sequence[jax.Array], method_state: Any,
              context: StepContext, args: Args) -> tuple[jax.Array, Metrics, Any]:
  """`losses.ijepa` of the predictions against the target encoder's features at the target
  blocks of views[0] (masks from `context.rng`); logs the loss and the mean number of valid
  context tokens and target tokens per block."""
  del method_state
  images = views[0]
  masks = make_masks(context.rng, images.shape[0], model.backbone.grid_size, args)
  pred = predict(model, images, masks)
  target = target_features(context.target.backbone, images, masks.targets)
  loss = losses.ijepa(pred, target, masks.targets_valid, args.loss)
  metrics = {"ijepa": loss,
             "context_tokens": jnp.mean(jnp.sum(masks.context_valid, axis=1, dtype=jnp.float32)),
             "target_tokens": jnp.sum(masks.targets_valid[0, 0], dtype=jnp.float32)}
  return loss, metrics, {}


def target_momentum(args: Args, step: jax.Array, total_steps: int) -> jax.Array:
  """The reference's `momentum_scheduler`: ema_start -> ema_end linearly over the run."""
  return optim.linear_momentum(args.ema_start, args.ema_end, step, total_steps)


SPEC = MethodSpec(
    name="ijepa",
    num_views=1,
    make_heads=make_heads,
    objective=objective,
    args_type=Args,
    heads_type=Heads,
    target_modules=("backbone",),
    patch_tokens=True,
    # The paper evaluates the target encoder (average-pooled patch tokens for the linear
    # probe), as DINO its teacher.
    evaluation_encoder="target",
    target_momentum=target_momentum,
    base_momentum=lambda args: args.ema_start,
)
