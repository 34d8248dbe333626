"""CNN-JEPA: a sparse ResNet's features of the visible cells predict an EMA ResNet's features
of the masked ones, in latent space, with a convolutional predictor.

Kalapos & Gyires-Toth, "CNN-JEPA: Self-Supervised Pretraining Convolutional Neural Networks
Using Joint Embedding Predictive Architecture", 2024; the reference code is
kaland313/CNN-JEPA (pretrain/train_ijepacnn.py, pretrain/ijepa_mask.py,
models/sparse_encoder.py, configs ijepacnn_imagenet100.yaml), built on SparK's sparse
encoder and I-JEPA's multi-block masks. One view per image. Per step:

  * masks on the ResNet's output grid (`ResNet.output_grid`: 7x7 for 224 px and the
    ImageNet stem, stride 32; 4x4 for 32 px and the CIFAR stem, stride 8; 4x4 for
    Fashion-MNIST's 28 px): with probability `multiblock_prob` (the reference's "mixed"
    strategy, 0.75) I-JEPA's multi-block masks (`num_targets` target blocks of scale
    `target_scale` and aspect `target_aspect`; the context is every cell outside them, the
    reference's context block of scale 1.0), else random masking (the context keeps
    round(N * (1 - mask_ratio)) cells, the targets are the rest). One draw of the strategy
    per global batch, as the reference draws one per (per-GPU) batch; masks per example;
  * target: the EMA backbone (`target_modules=("backbone",)`, momentum `base_momentum` ->
    1 on a cosine: the reference's lightly `cosine_schedule(epoch, max_epochs, 0.996, 1)`,
    per step here) on the whole image, its last feature map before pooling, in train mode
    (batch statistics, as the reference's momentum encoder under Lightning's train mode);
  * context: the online backbone in its sparse mode (models/resnet.py: the image masked,
    BatchNorm statistics over the visible positions only, zeros at the masked ones) on
    the context cells;
  * predictor (a head): a learned mask token at every non-context cell, then
    `predictor_layers` x [depthwise k x k conv + pointwise 1x1 conv (the reference's
    `dw_sep_conv`), BatchNorm, ReLU]; no projector (the reference's `use_projection_head:
    False`);
  * loss: `losses.cnn_jepa`, smooth L1 (the reference's) or L2 between the channel-wise
    L2-normalised prediction and target, summed over channels, averaged over the target
    cells of the global batch.

Evaluation: the EMA target's backbone (`evaluation_encoder="target"`), as the reference
evaluates its momentum backbone (`backbone_for_online_eval = backbone_momentum`: its
sparse backbone "doesn't work for online eval"); `eval.encoder=online` evaluates the
online one. Deviations: the sparse BatchNorms' statistics span the global batch (the
reference's `SparseBatchNorm2d` is per GPU); the target blocks come from I-JEPA's sampler
with its off-by-one fixed (jax_ssl/multiblock.py `multiblock_masks`: a block may touch the
last row and column, which the reference's `torch.randint(0, height - h)` never reaches)
and I-JEPA's cap of a block side at the grid side minus one (the reference's copy allows
the whole side; the default target scales never reach it).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from jax_ssl import losses, multiblock
from jax_ssl.config.typed import check, check_positive
from jax_ssl.losses.latent import LATENT_LOSSES
from jax_ssl.methods.byol import check_momentum
from jax_ssl.methods.spec import Metrics, MethodSpec, SSLModel, StepContext
from jax_ssl.models import resnet

STRATEGIES = ("mixed", "multiblock", "random")


def _check_range(name: str, value: tuple[float, float], low: float, high: float,
                 what: str) -> None:
  check(low < value[0] <= value[1] <= high,
        f"method_args.{name}={tuple(value)!r}; need low <= high, both in ({low}, {high}] "
        f"({what})")


@dataclasses.dataclass(frozen=True)
class Args:
  """CNN-JEPA's hyper-parameters (`--config.method_args.KEY`); defaults: the reference's
  ImageNet-100 / ImageNet-1k configs (ijepacnn_imagenet100.yaml).

  Attributes:
    mask_strategy: "mixed" (multi-block with probability `multiblock_prob`, else random),
      "multiblock" or "random".
    multiblock_prob: the probability of multi-block masks under "mixed" (0.75).
    mask_ratio: the fraction of the cells that random masking hides from the context (and
      scores as targets), in (0, 1) (0.6).
    num_targets: target blocks per image of the multi-block masks (4).
    target_scale: (min, max) fraction of the grid one target block covers (0.15, 0.2).
    target_aspect: (min, max) height / width of a target block (0.75, 1.5).
    min_keep: the fewest cells a block may keep after the no-overlap constraint (5).
    loss: "smooth_l1" (the reference's) or "l2" (losses.cnn_jepa).
    base_momentum: the target's EMA momentum at step 0, raised to 1 on a cosine (0.996).
  """

  mask_strategy: str = "mixed"
  multiblock_prob: float = 0.75
  mask_ratio: float = 0.6
  num_targets: int = 4
  target_scale: tuple[float, float] = (0.15, 0.2)
  target_aspect: tuple[float, float] = (0.75, 1.5)
  min_keep: int = 5
  loss: str = "smooth_l1"
  base_momentum: float = 0.996

  def validate(self) -> None:
    check(self.mask_strategy in STRATEGIES,
          f"method_args.mask_strategy={self.mask_strategy!r}; use one of {STRATEGIES}")
    check(0 <= self.multiblock_prob <= 1,
          f"method_args.multiblock_prob={self.multiblock_prob!r}; must be in [0, 1]")
    check(0 < self.mask_ratio < 1,
          f"method_args.mask_ratio={self.mask_ratio!r}; must be in (0, 1) (the fraction of "
          f"the cells random masking hides)")
    check(self.num_targets >= 1,
          f"method_args.num_targets={self.num_targets!r}; need an integer >= 1")
    check(self.min_keep >= 0, f"method_args.min_keep={self.min_keep!r}; must be >= 0")
    _check_range("target_scale", self.target_scale, 0.0, 1.0, "a fraction of the grid")
    _check_range("target_aspect", self.target_aspect, 0.0, math.inf, "height / width")
    check(self.loss in LATENT_LOSSES,
          f"method_args.loss={self.loss!r}; use one of {LATENT_LOSSES}")
    check_momentum(self.base_momentum)


@dataclasses.dataclass(frozen=True)
class Heads:
  """The predictor (`--config.heads.KEY`); defaults: the reference's (3 layers of 3x3
  depthwise-separable convolutions).

  Attributes:
    predictor_layers: [conv, BatchNorm, ReLU] layers.
    predictor_kernel_size: k of the k x k (depthwise) convolutions.
    predictor_depthwise_separable: each layer's conv a depthwise k x k conv followed by a
      pointwise 1x1 conv (the reference's `dw_sep_conv: True`), or one dense k x k conv.
  """

  predictor_layers: int = 3
  predictor_kernel_size: int = 3
  predictor_depthwise_separable: bool = True

  def validate(self) -> None:
    check_positive("heads", self, "predictor_layers", "predictor_kernel_size")


def _torch_conv(in_features: int, out_features: int, kernel: int, groups: int, *,
                rngs: nnx.Rngs) -> nnx.Conv:
  """A biased 'same' conv initialised as torch's `nn.Conv2d` (the reference's predictor):
  weights and bias uniform in +-1 / sqrt(fan_in), fan_in = k * k * in / groups."""
  bound = 1.0 / math.sqrt(kernel * kernel * in_features // groups)

  def bias_init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return nnx.Conv(in_features, out_features, (kernel, kernel), padding="SAME",
                  feature_group_count=groups, use_bias=True,
                  kernel_init=nnx.initializers.variance_scaling(1 / 3, "fan_in", "uniform"),
                  bias_init=bias_init, rngs=rngs)


class ConvPredictor(nnx.Module):
  """Context feature map + mask token at the non-context cells -> predicted feature map.

  kaland313/CNN-JEPA train_ijepacnn.py: `mask_token` [C] (timm's trunc_normal_, std 0.02
  cut at +-0.02) fills the non-context cells (`torch.where(context_mask, features,
  mask_tokens)`), then per layer a depthwise k x k conv (groups = C) and a pointwise 1x1
  conv, or one k x k conv, each with a bias, then BatchNorm (over every cell of the batch:
  the predictor is dense) and ReLU; C channels throughout. Computes in float32.
  """

  def __init__(self, channels: int, num_layers: int, kernel_size: int,
               depthwise_separable: bool, *, rngs: nnx.Rngs):
    self.mask_token = nnx.Param(
        0.02 * jax.random.truncated_normal(rngs.params(), -1.0, 1.0, (channels,)))
    convs, norms = [], []
    for _ in range(num_layers):
      if depthwise_separable:
        convs.append(nnx.Sequential(
            _torch_conv(channels, channels, kernel_size, channels, rngs=rngs),
            _torch_conv(channels, channels, 1, 1, rngs=rngs)))
      else:
        convs.append(_torch_conv(channels, channels, kernel_size, 1, rngs=rngs))
      norms.append(resnet.batch_norm(channels, rngs=rngs))
    self.convs, self.norms = nnx.List(convs), nnx.List(norms)

  def __call__(self, features: jax.Array, context: jax.Array) -> jax.Array:
    """features: [B, h, w, C] (the sparse encoder's); context: bool [B, h, w]."""
    x = jnp.where(context[..., None], features.astype(jnp.float32),
                  self.mask_token[...].astype(jnp.float32))
    for conv, norm in zip(self.convs, self.norms):
      x = norm(conv(x), relu=True)
    return x


def make_heads(feature_dim: int, heads: Heads, args: Args,
               rngs: nnx.Rngs) -> dict[str, nnx.Module]:
  """{"predictor": ConvPredictor} on the backbone's `feature_dim` channels."""
  del args
  return {"predictor": ConvPredictor(feature_dim, heads.predictor_layers,
                                     heads.predictor_kernel_size,
                                     heads.predictor_depthwise_separable, rngs=rngs)}


def random_masks(rng: jax.Array, batch: int, grid: tuple[int, int], mask_ratio: float
                 ) -> tuple[jax.Array, jax.Array]:
  """The reference's random strategy: (context, targets), bool [B, h, w]; the context keeps
  round(N * (1 - mask_ratio)) cells of each example at random (argsort of uniform noise),
  the targets are the others."""
  num_cells = grid[0] * grid[1]
  keep = round(num_cells * (1 - mask_ratio))
  noise = jax.random.uniform(rng, (batch, num_cells))
  ranks = jnp.argsort(jnp.argsort(noise, axis=1), axis=1)
  context = (ranks < keep).reshape(batch, *grid)
  return context, ~context


def multiblock_masks(rng: jax.Array, batch: int, grid: tuple[int, int], args: Args
                     ) -> tuple[jax.Array, jax.Array]:
  """I-JEPA's multi-block masks as the reference configures them: (context, targets), bool
  [B, h, w]. Targets: the union of `num_targets` blocks (`multiblock.multiblock_masks`, one
  block size per batch, positions per image). Context: the reference's context block of
  scale 1.0 is the whole grid at (0, 0) (its `ijepa_mask.py` caps a block side at the grid
  side, I-JEPA's at the side minus one, so the context is taken here, not from the
  sampler's context block), minus the target blocks; where that keeps `min_keep` cells or
  fewer, the reference retries the same block 20 times and then drops the last target's
  constraint, then the next: here the context is the grid minus the first k targets, k the
  largest that keeps more than `min_keep` (0: the whole grid)."""
  masks = multiblock.multiblock_masks(
      rng, batch, grid, num_context=1, num_targets=args.num_targets,
      target_scale=args.target_scale, target_aspect=args.target_aspect, context_tries=1)
  target_maps = masks.target_maps.reshape(batch, args.num_targets, *grid)
  # covered[k]: the union of the first k target blocks, k = 0 .. T.
  covered = jnp.concatenate([jnp.zeros((batch, 1, *grid), bool),
                             jnp.cumsum(target_maps, axis=1) > 0], axis=1)
  keeps_enough = jnp.sum(~covered, axis=(2, 3)) > args.min_keep  # [B, T + 1]; k = 0: always
  k = args.num_targets - jnp.argmax(keeps_enough[:, ::-1], axis=1)
  context = ~jnp.take_along_axis(covered, k[:, None, None, None], axis=1)[:, 0]
  return context, covered[:, -1]


def sample_masks(rng: jax.Array, batch: int, grid: tuple[int, int], args: Args
                 ) -> tuple[jax.Array, jax.Array]:
  """(context, targets), bool [B, h, w], by `args.mask_strategy` (module docstring)."""
  if args.mask_strategy == "random":
    return random_masks(rng, batch, grid, args.mask_ratio)
  if args.mask_strategy == "multiblock":
    return multiblock_masks(rng, batch, grid, args)
  choice_rng, block_rng, random_rng = jax.random.split(rng, 3)
  use_blocks = jax.random.bernoulli(choice_rng, args.multiblock_prob)
  blocks = multiblock_masks(block_rng, batch, grid, args)
  uniform = random_masks(random_rng, batch, grid, args.mask_ratio)
  return tuple(jnp.where(use_blocks, a, b) for a, b in zip(blocks, uniform))


def objective(model: SSLModel, views: Sequence[jax.Array], method_state: Any,
              context: StepContext, args: Args) -> tuple[jax.Array, Metrics, dict]:
  """`losses.cnn_jepa` of the predictor's output on the sparse context encoding against the
  EMA target's feature map, at the target cells (masks from `context.rng`, the same on
  every device); logs the loss and the fractions of context and target cells."""
  del method_state
  images = views[0]
  target = jax.lax.stop_gradient(context.target.backbone.feature_map(images))
  batch, height, width = target.shape[:3]
  visible, targets = sample_masks(context.rng, batch, (height, width), args)
  features = model.backbone.feature_map(images, mask=visible)
  pred = model.heads["predictor"](features, visible)
  loss = losses.cnn_jepa(pred, target, targets, args.loss)
  return loss, {"cnn_jepa": loss,
                "context_fraction": jnp.mean(visible.astype(jnp.float32)),
                "target_fraction": jnp.mean(targets.astype(jnp.float32))}, {}


SPEC = MethodSpec(
    name="cnn_jepa",
    num_views=1,
    make_heads=make_heads,
    objective=objective,
    args_type=Args,
    heads_type=Heads,
    target_modules=("backbone",),
    backbones=tuple(resnet.BACKBONES),
    evaluation_encoder="target",
)
