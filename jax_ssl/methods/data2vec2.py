"""data2vec 2.0 for images: a student regresses an EMA teacher's contextualised targets.

Baevski et al., "Efficient Self-supervised Learning with Contextualized Target
Representations for Vision, Speech and Language", ICML 2023; reference code: fairseq
`examples/data2vec/models/data2vec2.py` (`Data2VecMultiModel.forward`),
`models/modalities/base.py` and `images.py` (masking, decoder input), `modules.py`
(`Decoder2d`, `AltBlock`), `fairseq/data/data_utils.py` (`compute_block_mask_2d`); recipe in
`config/v2/base_images_only_task.yaml` and `large_images_only_task.yaml`.

Per step, for a batch of B images (one view each):
 * Teacher: the EMA copy of the backbone (`target_modules=("backbone",)`, momentum linear
   `ema_start` -> `ema_end`: `target_momentum`) encodes the whole, unmasked image once; the
   targets are the average of its top-K blocks' FFN outputs before the residual, each
   instance-normalised over the patch tokens, then a parameter-free LayerNorm
   (`losses.data2vec_targets`; the CLS token is left out, as the reference's).
 * Multi-mask: each image is cloned `num_masks` (M) times (example-major rows b * M + m, so
   clones stay on the device of their image) and every clone gets its own inverse block
   mask (`inverse_block_mask`): the same number of kept patches in every row, so the
   student's shapes are static. The teacher's targets are reused by the M clones.
 * Student: the shared ViT on the kept patches only (each at its own position, MAE-style).
 * Decoder (`ConvDecoder`, the reference's Decoder2d): the student's patch tokens back on the
   grid, Gaussian noise (std `mask_noise_std`) at the masked positions, convolutional blocks,
   a linear map back to the encoder width.
 * Loss: `losses.data2vec` (squared error summed over channels, times 1/sqrt(D), averaged
   over the masked tokens of all rows) plus `cls_weight` times the same loss between the
   student's CLS token and the mean over tokens of the teacher's targets.
 * Collapse monitors: the reference stops training when `target_var` < `min_target_var` or
   `pred_var` < `min_pred_var`; here both are logged every step (`losses.mean_feature_std`
   of the masked targets and predictions) with `target_var_low` / `pred_var_low` (1.0 when
   below the threshold) for the log to warn on.

Where this differs from the reference (beyond what the experiment files list):
 * The shared ViT is pre-norm (timm's, as MAE's) with a final LayerNorm; the reference's
   image model uses post-norm `AltBlock`s (`layer_norm_first: false`) whose FFN target is
   mlp(norm1(x + attn(x))), here mlp(norm2(x)). The CLS token is initialised as the ViT's
   (normal 0.02; the reference: normal 1).
 * `cls_weight` is the weight of the CLS term's mean over rows. The reference multiplies
   its per-row sum by `cls_loss` * (masked tokens on the GPU) and divides by the masked
   tokens of all GPUs: `cls_loss` times the rows per GPU (16 images x 16 masks = 256 for
   ViT-B), which depends on the number of GPUs. `cls_weight` = 0.01 * 256 = 2.56 is the
   ViT-B recipe at its 16 images per GPU.
 * The EMA anneals over `ema_anneal_fraction` of the run's total_steps (the reference:
   `ema_anneal_end_step` updates, 100k of 375.3k for ViT-B) and moves after every update
   from step 0 (the reference's first update uses the step-1 momentum).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from jax_ssl import losses, masking, optim
from jax_ssl.config.typed import check, check_positive
from jax_ssl.methods import mim
from jax_ssl.methods.spec import Metrics, MethodSpec, SSLModel, StepContext
from jax_ssl.models import heads as heads_lib
from jax_ssl.models import vit

# torch's default Conv2d / Linear init (kaiming_uniform with a = sqrt(5): U(+-1/sqrt(fan_in))),
# which the reference's decoder keeps (init_bert_params touches no Conv2d; reset_parameters
# re-draws the projection with torch's default).
_TORCH_DEFAULT_INIT = nnx.initializers.variance_scaling(1 / 3, "fan_in", "uniform")
# fairseq's LayerNorm default epsilon (the decoder's LayerNorm(decoder_dim, affine=False)).
_DECODER_NORM_EPSILON = 1e-5


@dataclasses.dataclass(frozen=True)
class Args:
  """`method_args.*` of data2vec 2.0 (defaults: the reference's ViT-B image recipe,
  `config/v2/base_images_only_task.yaml`).

  Attributes:
    mask_prob: fraction of the patches masked (`mask_prob`); the kept count is
      int(N * (1 - mask_prob)) in every row (39 of 196 at 0.8).
    mask_prob_adjust: extra kept fraction the blocks are drawn for before the count is made
      exact (`mask_prob_adjust`).
    mask_length: side of the square kept blocks (`mask_length`).
    num_masks: masked clones of each image per teacher pass (`clone_batch`).
    top_k_layers: the teacher's last blocks averaged into the targets
      (`average_top_k_layers`; the reference's 10 of 12 for ViT-B).
    cls_weight: weight of the CLS regression term's mean over rows (the module docstring:
      the reference's `cls_loss` 0.01 x its 256 rows per GPU).
    loss_beta: 0: squared error; > 0: smooth-L1 with this beta (`loss_beta`).
    loss_scale: factor on every element's loss; None: 1 / sqrt(width) (`loss_scale`).
    mask_noise_std: std of the Gaussian noise the decoder gets at masked positions.
    ema_start, ema_end: the teacher's EMA momentum at step 0 and at the end of the anneal
      (`ema_decay`, `ema_end_decay`).
    ema_anneal_fraction: the anneal ends at this fraction of total_steps, then stays at
      `ema_end` (the reference's `ema_anneal_end_step` / `max_update`).
    min_target_var, min_pred_var: the collapse monitors' thresholds (the reference's
      dataclass defaults, where it stops training; its image yaml sets them to 0).
  """

  mask_prob: float = 0.8
  mask_prob_adjust: float = 0.07
  mask_length: int = 3
  num_masks: int = 16
  top_k_layers: int = 10
  cls_weight: float = 2.56
  loss_beta: float = 0.0
  loss_scale: float | None = None
  mask_noise_std: float = 0.01
  ema_start: float = 0.9998
  ema_end: float = 0.99999
  ema_anneal_fraction: float = 1.0
  min_target_var: float = 0.1
  min_pred_var: float = 0.01

  def validate(self) -> None:
    check(0 < self.mask_prob < 1,
          f"method_args.mask_prob={self.mask_prob!r}; must be in (0, 1) (the fraction of the "
          f"patches masked)")
    check(self.mask_prob_adjust >= 0,
          f"method_args.mask_prob_adjust={self.mask_prob_adjust!r}; must be >= 0")
    check(self.mask_length >= 1,
          f"method_args.mask_length={self.mask_length!r}; must be >= 1 (the side of the "
          f"kept blocks, in patches)")
    check(self.num_masks >= 1,
          f"method_args.num_masks={self.num_masks!r}; must be >= 1 (masked clones per image)")
    check(self.top_k_layers >= 1, f"method_args.top_k_layers={self.top_k_layers!r}; must be >= 1")
    for name in ("cls_weight", "loss_beta", "mask_noise_std", "min_target_var", "min_pred_var"):
      check(getattr(self, name) >= 0, f"method_args.{name}={getattr(self, name)!r}; must be >= 0")
    check(self.loss_scale is None or self.loss_scale > 0,
          f"method_args.loss_scale={self.loss_scale!r}; must be > 0 (or None: 1/sqrt(width))")
    for name in ("ema_start", "ema_end"):
      check(0 <= getattr(self, name) <= 1,
            f"method_args.{name}={getattr(self, name)!r}; must be in [0, 1] (an EMA momentum)")
    check(0 < self.ema_anneal_fraction <= 1,
          f"method_args.ema_anneal_fraction={self.ema_anneal_fraction!r}; must be in (0, 1] "
          f"(the fraction of total_steps over which the momentum moves)")


@dataclasses.dataclass(frozen=True)
class Heads:
  """`heads.*`: the convolutional decoder (defaults: ViT-B's, 768 wide, kernel 3, 6
  layers, 16 groups; ViT-L's is 1024 / 5 / 3 / 16)."""

  decoder_dim: int = 768
  decoder_kernel: int = 3
  decoder_layers: int = 6
  decoder_groups: int = 16

  def validate(self) -> None:
    check_positive("heads", self, "decoder_dim", "decoder_kernel", "decoder_layers",
                   "decoder_groups")
    check(self.decoder_dim % self.decoder_groups == 0,
          f"heads.decoder_dim={self.decoder_dim} is not divisible by heads.decoder_groups="
          f"{self.decoder_groups}; set them so that it is")


def kept_count(num_patches: int, mask_prob: float) -> int:
  """Patches each row keeps: int(N * (1 - mask_prob)), as `compute_block_mask_2d`'s
  `final_target_len` (39 of 196 at 0.8, 49 at 0.75; 9 of 49 at 0.8)."""
  return int(num_patches * (1 - mask_prob))


def num_block_centers(num_patches: int, mask_prob: float, mask_prob_adjust: float,
                      mask_length: int) -> int:
  """Block centres drawn per row: int(N * (keep + adjust) / length^2) with keep = 1 - mask_prob
  (`compute_block_mask_2d`; 5 for ViT-B/16's 196 patches at 0.8 / 0.07 / 3)."""
  return int(num_patches * ((1 - mask_prob + mask_prob_adjust) / mask_length ** 2))


def _inverse_block_mask_one(key: jax.Array, grid_h: int, grid_w: int, keep: int,
                            centers: int, mask_length: int) -> jax.Array:
  """One row's bool [grid_h * grid_w] mask (True = masked) keeping exactly `keep` patches."""
  num_patches = grid_h * grid_w
  center_key, fill_key = jax.random.split(key)
  kept = jnp.zeros((grid_h, grid_w), bool)
  if centers:
    # Uniform centres with replacement (torch.randint), each a mask_length^2 square with its
    # rows and columns clamped to the grid (blocks at the border are cut, as the reference's
    # clamp_ of the indices).
    index = jax.random.randint(center_key, (centers,), 0, num_patches)
    offsets = jnp.arange(mask_length) - mask_length // 2
    rows = jnp.clip(index[:, None, None] // grid_w + offsets[None, :, None], 0, grid_h - 1)
    cols = jnp.clip(index[:, None, None] % grid_w + offsets[None, None, :], 0, grid_w - 1)
    kept = kept.at[rows, cols].set(True)
  # require_same_masks: drop random kept patches (too many) or add random others (too few).
  # Kept patches score in [2, 3), the others in [0, 1): the `keep` best are all kept ones,
  # chosen uniformly, or every kept one plus uniform others, as torch.multinomial of the
  # reference's 0/1 weights draws them.
  score = 2.0 * kept.reshape(-1) + jax.random.uniform(fill_key, (num_patches,))
  rank = jnp.argsort(jnp.argsort(-score))
  return rank >= keep


def inverse_block_mask(rng: jax.Array, rows: int, grid_h: int, grid_w: int, *,
                       mask_prob: float, mask_length: int, mask_prob_adjust: float
                       ) -> jax.Array:
  """data2vec 2.0's inverse block masking: bool [rows, grid_h * grid_w], True = masked,
  exactly N - `kept_count(N, mask_prob)` True in every row.

  As `compute_block_mask_2d(inverse_mask=True, require_same_masks=True)`: what is drawn is
  the *kept* set, `num_block_centers` uniform centres each keeping the mask_length^2 square
  around it (clamped at the border), then made exactly `kept_count` by dropping random
  kept patches or adding random others; everything else is masked. Each row has its own key
  (split from `rng`), so a mask does not depend on the number of devices.
  """
  num_patches = grid_h * grid_w
  keep = kept_count(num_patches, mask_prob)
  centers = num_block_centers(num_patches, mask_prob, mask_prob_adjust, mask_length)
  keys = jax.random.split(rng, rows)
  return jax.vmap(lambda key: _inverse_block_mask_one(key, grid_h, grid_w, keep, centers,
                                                      mask_length))(keys)


class ConvDecoder(nnx.Module):
  """The reference's Decoder2d: [R, N, D] tokens on the grid -> [R, N, D] predictions.

  `layers` blocks of (grouped k x k convolution to `decoder_dim`, 'same' padding as the
  reference's padding k // 2 plus SamePad2d; LayerNorm over channels without scale or bias;
  exact GELU), each followed by the residual of its input where the widths match; then a
  linear map back to the encoder width D. Runs in the backbone's compute dtype; returns
  float32.
  """

  def __init__(self, backbone: vit.VisionTransformer, decoder_dim: int, kernel: int,
               layers: int, groups: int, *, rngs: nnx.Rngs):
    width, dtype = backbone.feature_dim, backbone.dtype
    self.grid_size, self.dtype = backbone.grid_size, dtype
    # torch pads k // 2 on both sides; SamePad2d then drops the last row and column for an
    # even kernel.
    low, high = kernel // 2, kernel // 2 - (1 - kernel % 2)
    # The speed backend's convolution (cpu_kernels runs the grouped ones as dense ones with a
    # block-diagonal kernel, an order of magnitude faster on XLA:CPU); the same parameters.
    conv = heads_lib.backend_conv
    self.convs = nnx.List([
        conv(width if i == 0 else decoder_dim, decoder_dim, (kernel, kernel),
                 padding=((low, high), (low, high)), feature_group_count=groups,
                 kernel_init=_TORCH_DEFAULT_INIT, dtype=dtype, rngs=rngs)
        for i in range(layers)])
    self.norms = nnx.List([
        nnx.LayerNorm(decoder_dim, epsilon=_DECODER_NORM_EPSILON, use_bias=False,
                      use_scale=False, dtype=dtype, rngs=rngs) for _ in range(layers)])
    self.proj = nnx.Linear(decoder_dim, width, kernel_init=_TORCH_DEFAULT_INIT, dtype=dtype,
                           rngs=rngs)

  def __call__(self, tokens: jax.Array) -> jax.Array:
    """tokens: [R, N, D], row-major on the backbone's token grid."""
    rows, num_tokens, width = tokens.shape
    x = tokens.reshape(rows, *self.grid_size, width).astype(self.dtype)
    residual = x
    for conv, norm in zip(self.convs, self.norms):
      x = jax.nn.gelu(norm(conv(x)), approximate=False)
      if residual.shape[-1] == x.shape[-1]:  # DecoderBase.add_residual
        x = x + residual
      residual = x
    return self.proj(x.reshape(rows, num_tokens, -1)).astype(jnp.float32)


def make_heads(backbone: vit.VisionTransformer, heads: Heads, args: Args,
               rngs: nnx.Rngs) -> dict[str, nnx.Module]:
  """{"decoder": ConvDecoder} of the sizes in `heads`; refuses, in one line, settings the
  backbone cannot carry (more target layers than blocks, a CLS term without a CLS token,
  a group count that does not divide the width)."""
  check(args.top_k_layers <= backbone.num_layers,
        f"method_args.top_k_layers={args.top_k_layers} but the ViT has {backbone.num_layers} "
        f"blocks; set method_args.top_k_layers <= {backbone.num_layers}")
  check(args.cls_weight == 0 or backbone.num_prefix_tokens > 0,
        f"method_args.cls_weight={args.cls_weight} needs a CLS token; set model.cls_token=True "
        f"or method_args.cls_weight=0")
  check(backbone.feature_dim % heads.decoder_groups == 0,
        f"heads.decoder_groups={heads.decoder_groups} does not divide the ViT's width "
        f"{backbone.feature_dim} (the decoder's first convolution is grouped over it); set "
        f"heads.decoder_groups to a divisor of it")
  return {"decoder": ConvDecoder(backbone, heads.decoder_dim, heads.decoder_kernel,
                                 heads.decoder_layers, heads.decoder_groups, rngs=rngs)}


def teacher_targets(target: SSLModel, images: jax.Array, top_k: int) -> jax.Array:
  """float32 [B, N, D]: `losses.data2vec_targets` of the EMA backbone's FFN outputs on the
  whole images (the CLS token's left out), behind a stop-gradient. One pass per image."""
  backbone = target.backbone
  _, layer_outputs = backbone.encode_tokens(backbone.embed_patches(images), ffn_outputs=True)
  prefix = backbone.num_prefix_tokens
  return jax.lax.stop_gradient(
      losses.data2vec_targets([x[:, prefix:] for x in layer_outputs], top_k))


def objective(model: SSLModel, views: Sequence[jax.Array], method_state: Any,
              context: StepContext, args: Args) -> tuple[jax.Array, Metrics, Any]:
  """The masked regression of `num_masks` differently masked clones of views[0] against the
  teacher's targets of the whole image, plus the CLS term (the module docstring)."""
  del method_state
  images, backbone = views[0], model.backbone
  batch, num_patches = images.shape[0], backbone.num_patches
  rows, prefix = batch * args.num_masks, backbone.num_prefix_tokens
  keep = kept_count(num_patches, args.mask_prob)
  mask_rng, noise_rng = jax.random.split(context.rng)
  mask = inverse_block_mask(mask_rng, rows, *backbone.grid_size, mask_prob=args.mask_prob,
                            mask_length=args.mask_length, mask_prob_adjust=args.mask_prob_adjust)
  indices = masking.mask_indices(mask, num_patches - keep)

  targets = teacher_targets(context.target, images, args.top_k_layers)  # [B, N, D]

  # The patch embedding once per image; its clones differ only in the patches they keep.
  tokens = jnp.repeat(backbone.embed_patches(images), args.num_masks, axis=0)
  encoded = backbone.encode_tokens(tokens, indices.keep)  # [R, prefix + K, D]
  visible = encoded[:, prefix:]
  noise = args.mask_noise_std * jax.random.normal(
      noise_rng, (rows, num_patches - keep, visible.shape[-1]), jnp.float32)
  on_grid = jnp.take_along_axis(
      jnp.concatenate([visible, noise.astype(visible.dtype)], axis=1),
      indices.restore[..., None], axis=1)
  predictions = mim.at_positions(model.heads["decoder"](on_grid), indices.masked)
  masked_targets = mim.at_positions(jnp.repeat(targets, args.num_masks, axis=0),
                                    indices.masked)
  regression = losses.data2vec(predictions, masked_targets, scale=args.loss_scale,
                               beta=args.loss_beta)
  loss, metrics = regression, {"regression": regression}
  if args.cls_weight > 0:
    cls_target = jnp.repeat(jnp.mean(targets, axis=1), args.num_masks, axis=0)
    cls = losses.data2vec(encoded[:, 0], cls_target, scale=args.loss_scale, beta=args.loss_beta)
    loss, metrics = regression + args.cls_weight * cls, {**metrics, "cls": cls}
  target_var = losses.mean_feature_std(jax.lax.stop_gradient(masked_targets))
  pred_var = losses.mean_feature_std(jax.lax.stop_gradient(predictions))
  metrics = {**metrics, "data2vec2": loss, "target_var": target_var, "pred_var": pred_var,
             "target_var_low": (target_var < args.min_target_var).astype(jnp.float32),
             "pred_var_low": (pred_var < args.min_pred_var).astype(jnp.float32)}
  return loss, metrics, {}


def target_momentum(args: Args, step: jax.Array, total_steps: int) -> jax.Array:
  """The teacher's EMA momentum: linear from `ema_start` at step 0 to `ema_end` at
  round(ema_anneal_fraction * total_steps), then `ema_end` (the reference's
  `get_annealed_rate`)."""
  anneal_steps = max(1, round(args.ema_anneal_fraction * total_steps))
  return optim.linear_momentum(args.ema_start, args.ema_end, step, anneal_steps)


SPEC = MethodSpec(
    name="data2vec2",
    num_views=1,
    make_heads=make_heads,
    objective=objective,
    args_type=Args,
    heads_type=Heads,
    target_modules=("backbone",),
    patch_tokens=True,
    target_momentum=target_momentum,
)
