"""iBOT: DINO's CLS self-distillation plus masked-patch self-distillation; DINOv2's pieces
(KoLeo, Sinkhorn-Knopp centering, untied heads) as options.

Zhou et al., "iBOT: Image BERT Pre-Training with Online Tokenizer", ICLR 2022
(github.com/bytedance/ibot: main_ibot.py `iBOTLoss`, `train_one_epoch`; models/head.py
`iBOTHead`; loader.py `ImageFolderMask`). Oquab et al., "DINOv2: Learning Robust Visual
Features without Supervision", TMLR 2024 (github.com/facebookresearch/dinov2:
dinov2/train/ssl_meta_arch.py, dinov2/loss/*.py, dinov2/data/{collate,masking}.py).

The views are DINO's (jax_ssl/methods/dino.py): 2 global views and `augment.local_crops`
local ones. Each global view of each image is masked with probability `mask_probability`,
then `int(r N)` of its N patches with r ~ U(mask_ratio_range), in BEiT's blocks
(`masking.py`'s generator, with the count of each image drawn on device), the masked
patch embeddings replaced by a learned mask token (`vit.MaskToken`, as beit.py). The
student (ViT + heads) encodes the masked global views and the unmasked local views; the
teacher (EMA of the backbone and the heads: `target_modules`) encodes the global views
whole. Losses:
  * CLS: `losses.cross_view_cross_entropy` of the student's CLS outputs on every view
    against the teacher's on the other global view (DINO's loss, iBOT's lambda1);
  * patches: `losses.ibot_patch`, on the masked tokens of each global view, the student's
    patch outputs against the teacher's at the same tokens of the same view (lambda2);
  * DINOv2's KoLeo (`koleo_weight`, DINOv2: 0.1): `losses.koleo` of the student backbone's
    CLS tokens of each masked global view, summed over the two views as ssl_meta_arch.py.
The teacher's targets: softmax of its centred, sharpened outputs (`centering="running"`,
separate centers for the CLS and patch outputs, each an EMA with momentum 0.9 of the batch
mean, in the method state), or DINOv2's Sinkhorn-Knopp assignment
(`centering="sinkhorn"`; the centers are then kept but not used or moved).

Heads (one module, "heads/projector", so the EMA target covers both): `shared_head=True`
(iBOT's recipes, `--shared_head true`) applies one DINO head (MLP -> L2 -> prototypes) to
the CLS and patch tokens; `shared_head=False` gives the patch tokens a head of their own
(DINOv2's `ibot.separate_head`: its own MLP and `heads.patch_*` prototypes).

Static shapes: the heads run on M = int(max(mask_ratio_range) * N) token slots per image,
its masked tokens first (the rest flagged invalid), not on all N patches: that is what
DINOv2 does (it gathers the masked tokens, `mask_indices_list`) and what keeps the patch
logits [B, M, K] affordable at 65536+ prototypes; iBOT applies its head to all N tokens.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from jax_ssl import losses, masking
from jax_ssl.config.typed import check, check_positive
from jax_ssl.methods import mim
from jax_ssl.methods.byol import check_momentum
from jax_ssl.methods.dino import DINOHead, teacher_temperature
from jax_ssl.methods.spec import Metrics, MethodSpec, SSLModel, StepContext, stack_views
from jax_ssl.models import vit

NUM_GLOBAL_VIEWS = 2
CENTERINGS = ("running", "sinkhorn")
# BEiT's and iBOT's aspect ratios of a mask block (pred_aspect_ratio=(0.3, 1/0.3)), and
# the rejected draws in a row before the blocks are topped up (masking.block_mask).
_LOG_ASPECT = (math.log(0.3), math.log(1 / 0.3))
_MAX_FAILURES = 10


@dataclasses.dataclass(frozen=True)
class Args:
  """iBOT's hyper-parameters (`--config.method_args.KEY`); defaults: main_ibot.py's
  arguments with the ViT recipes' `--shared_head true --pred_ratio 0 0.3 --pred_ratio_var
  0 0.2` (README), i.e. half the global views unmasked, the others 10-50% masked.

  Attributes:
    student_temp: the student's softmax temperature, > 0.
    teacher_temp, warmup_teacher_temp: the teacher's CLS temperature after and at the start
      of the linear warmup, > 0.
    teacher_patch_temp, warmup_teacher_patch_temp: the same for the patch tokens (iBOT
      0.04 -> 0.07; DINOv2 uses the CLS temperatures for both).
    warmup_teacher_temp_steps: steps of both warmups, >= 0.
    center_momentum, patch_center_momentum: m of the two centers' EMA, in [0, 1].
    centering: "running" (the centers) or "sinkhorn" (DINOv2's Sinkhorn-Knopp).
    sinkhorn_iterations: Sinkhorn-Knopp iterations, >= 1 (DINOv2: 3).
    cls_loss_weight, patch_loss_weight: iBOT's lambda1 and lambda2, >= 0.
    koleo_weight: DINOv2's KoLeo weight (0.1 there; 0: off), >= 0.
    shared_head: one head for the CLS and patch tokens (iBOT) or two (DINOv2's untied).
    mask_probability: the chance a global view is masked at all, in [0, 1].
    mask_ratio_range: (low, high), 0 <= low <= high < 1: a masked view masks int(r N) of
      its N patches, r ~ U(low, high).
    min_block_patches: the smallest block BEiT's generator draws, >= 1 (iBOT:
      (grid side // 3)^2 = 16 at 14x14 tokens; DINOv2: 4).
    freeze_last_layer_steps: the steps the prototype layers get no gradient, >= 0.
    base_momentum: the teacher's EMA momentum at step 0 (read by the step), in [0, 1].
  """

  student_temp: float = 0.1
  teacher_temp: float = 0.04
  warmup_teacher_temp: float = 0.04
  teacher_patch_temp: float = 0.07
  warmup_teacher_patch_temp: float = 0.04
  warmup_teacher_temp_steps: int = 0
  center_momentum: float = 0.9
  patch_center_momentum: float = 0.9
  centering: str = "running"
  sinkhorn_iterations: int = 3
  cls_loss_weight: float = 1.0
  patch_loss_weight: float = 1.0
  koleo_weight: float = 0.0
  shared_head: bool = True
  mask_probability: float = 0.5
  mask_ratio_range: tuple[float, float] = (0.1, 0.5)
  min_block_patches: int = 16
  freeze_last_layer_steps: int = 0
  base_momentum: float = 0.996

  def validate(self) -> None:
    for name in ("student_temp", "teacher_temp", "warmup_teacher_temp", "teacher_patch_temp",
                 "warmup_teacher_patch_temp"):
      value = getattr(self, name)
      check(value > 0, f"method_args.{name}={value!r}; must be > 0 (a softmax temperature)")
    for name in ("warmup_teacher_temp_steps", "freeze_last_layer_steps"):
      value = getattr(self, name)
      check(value >= 0, f"method_args.{name}={value!r}; must be >= 0 (a number of steps)")
    for name in ("center_momentum", "patch_center_momentum", "mask_probability"):
      value = getattr(self, name)
      check(0 <= value <= 1, f"method_args.{name}={value!r}; must be in [0, 1]")
    for name in ("cls_loss_weight", "patch_loss_weight", "koleo_weight"):
      value = getattr(self, name)
      check(value >= 0, f"method_args.{name}={value!r}; must be >= 0 (a loss weight)")
    check(self.centering in CENTERINGS,
          f"method_args.centering={self.centering!r}; use one of {CENTERINGS}")
    check_positive("method_args", self, "sinkhorn_iterations", "min_block_patches")
    low, high = self.mask_ratio_range
    check(0 <= low <= high < 1,
          f"method_args.mask_ratio_range={self.mask_ratio_range!r}; need 0 <= low <= high < 1 "
          f"(fractions of the patches masked)")
    check_momentum(self.base_momentum)


@dataclasses.dataclass(frozen=True)
class Heads:
  """The heads (`--config.heads.KEY`); defaults: iBOT's (main_ibot.py: 3-layer MLP 2048
  wide, bottleneck 256, out_dim = patch_out_dim = 8192).

  Attributes:
    projector_hidden_dim: the MLPs' hidden width.
    projector_num_layers: the MLPs' linear layers.
    bottleneck_dim, num_prototypes: the CLS head's bottleneck and prototypes (and the
      patch tokens' too with `method_args.shared_head`).
    patch_bottleneck_dim, patch_num_prototypes: the patch head's, with
      `method_args.shared_head=False` (unused otherwise).
  """

  projector_hidden_dim: int = 2048
  projector_num_layers: int = 3
  bottleneck_dim: int = 256
  num_prototypes: int = 8192
  patch_bottleneck_dim: int = 256
  patch_num_prototypes: int = 8192

  def validate(self) -> None:
    check_positive("heads", self, "projector_hidden_dim", "projector_num_layers",
                   "bottleneck_dim", "num_prototypes", "patch_bottleneck_dim",
                   "patch_num_prototypes")


class IBOTHead(nnx.Module):
  """The CLS head and, unless shared, the patch head: each facebookresearch/dino's
  `DINOHead` (dino.py: MLP with GELU -> L2 normalisation -> weight-normalised prototypes)."""

  def __init__(self, in_features: int, heads: Heads, shared: bool, *, rngs: nnx.Rngs):
    self.cls = DINOHead(in_features, heads.projector_hidden_dim, heads.bottleneck_dim,
                        heads.num_prototypes, heads.projector_num_layers, use_bn=False,
                        rngs=rngs)
    self.patch = nnx.data(None if shared else DINOHead(
        in_features, heads.projector_hidden_dim, heads.patch_bottleneck_dim,
        heads.patch_num_prototypes, heads.projector_num_layers, use_bn=False, rngs=rngs))

  def cls_logits(self, x: jax.Array, freeze_last_layer: jax.Array | bool = False) -> jax.Array:
    return self.cls(x, freeze_last_layer)

  def patch_logits(self, x: jax.Array,
                   freeze_last_layer: jax.Array | bool = False) -> jax.Array:
    return (self.cls if self.patch is None else self.patch)(x, freeze_last_layer)


def patch_prototypes(heads: Heads, args: Args) -> int:
  """The patch outputs' size (and the patch center's)."""
  return heads.num_prototypes if args.shared_head else heads.patch_num_prototypes


def make_heads(backbone: vit.VisionTransformer, heads: Heads, args: Args,
               rngs: nnx.Rngs) -> dict[str, nnx.Module]:
  """{"mask_token": MaskToken, "projector": IBOTHead}; refuses (one line) a ViT without
  the CLS token the CLS loss distils."""
  check(backbone.cls_token is not None,
        "method='ibot' distils the CLS token: set model.cls_token=True (and model.pool='cls' "
        "to evaluate it, as iBOT and DINOv2 do)")
  return {"mask_token": vit.MaskToken(backbone.feature_dim, rngs=rngs),
          "projector": IBOTHead(backbone.feature_dim, heads, args.shared_head, rngs=rngs)}


def max_masked(num_patches: int, args: Args) -> int:
  """M, the token slots per image the patch heads run on: the most a view can mask."""
  return max(1, int(num_patches * args.mask_ratio_range[1]))


def draw_masks(rng: jax.Array, batch: int, num_views: int, grid_size: tuple[int, int],
               args: Args) -> tuple[jax.Array, jax.Array, jax.Array]:
  """The masks of `num_views` global views of `batch` images, drawn as iBOT's
  `ImageFolderMask` draws them: each view masked with probability `mask_probability`, then
  int(r N) patches with r ~ U(mask_ratio_range), in BEiT's blocks. Every image's count is
  exact (`masking.block_mask`'s generator tops a short draw up at the blocks' borders, where
  iBOT's may stop short after 10 rejected blocks).

  Returns:
    mask: bool [B, V, N], True = masked;
    positions: int32 [B, V, M] (M = `max_masked`): the masked tokens first, in ascending
      order, then the others;
    valid: bool [B, V, M]: which of `positions` are masked.
  """
  grid_h, grid_w = grid_size
  num_patches = grid_h * grid_w
  slots = max_masked(num_patches, args)
  apply_rng, ratio_rng, block_rng = jax.random.split(rng, 3)
  low, high = args.mask_ratio_range
  masked = jax.random.bernoulli(apply_rng, args.mask_probability, (batch, num_views))
  ratio = jax.random.uniform(ratio_rng, (batch, num_views), minval=low, maxval=high)
  counts = jnp.where(masked, jnp.floor(ratio * num_patches), 0).astype(jnp.int32)
  counts = jnp.minimum(counts, slots)  # float rounding at r = high
  keys = jax.random.split(block_rng, batch * num_views)

  def one(key, count):
    # masking.block_mask takes one static count for the batch; its per-example generator
    # takes a traced one, which is what a per-image ratio needs.
    return masking._block_mask_one(  # pylint: disable=protected-access
        key, grid_h, grid_w, count, jnp.minimum(args.min_block_patches, count), num_patches,
        _LOG_ASPECT, _MAX_FAILURES)

  mask = jax.vmap(one)(keys, counts.reshape(-1)).reshape(batch, num_views, num_patches)
  positions = jnp.argsort(~mask, axis=-1, stable=True)[..., :slots].astype(jnp.int32)
  valid = jnp.arange(slots) < counts[..., None]
  return mask, positions, valid


def _tokens(backbone: vit.VisionTransformer, images: jax.Array,
            mask_token: nnx.Module | None = None, mask: jax.Array | None = None
            ) -> tuple[jax.Array, jax.Array]:
  """[B', S, S, C] -> (float32 CLS outputs [B', D], patch outputs [B', N, D]) of the
  normalised tokens; with `mask` [B', N], the masked patch embeddings are the mask token."""
  tokens = backbone.embed_patches(images)
  if mask is not None:
    tokens = mask_token(tokens, mask)
  encoded = backbone.encode_tokens(tokens)
  return encoded[:, 0].astype(jnp.float32), encoded[:, backbone.num_prefix_tokens:]


def _per_view(x: jax.Array, num_views: int) -> jax.Array:
  """[B * V, ...] example-major (`stack_views`) -> [V, B, ...]."""
  return jnp.swapaxes(x.reshape(-1, num_views, *x.shape[1:]), 0, 1)


def objective(model: SSLModel, views: Sequence[jax.Array], method_state: Any,
              context: StepContext, args: Args) -> tuple[jax.Array, Metrics, dict]:
  """The weighted CLS, patch and KoLeo losses (module docstring); the state inputs are
  per example: the teacher's CLS outputs [B, 2, K], its patch outputs summed over each
  view's masked tokens [B, 2, K_patch] and their counts [B, 2] (the centers' updates)."""
  backbone, head = model.backbone, model.heads["projector"]
  frozen = context.step < args.freeze_last_layer_steps
  batch = views[0].shape[0]
  global_views = stack_views(views[:NUM_GLOBAL_VIEWS])  # example-major [B * 2, ...]
  grid = (global_views.shape[1] // backbone.patch_size,
          global_views.shape[2] // backbone.patch_size)
  mask, positions, valid = draw_masks(context.rng, batch, NUM_GLOBAL_VIEWS, grid, args)
  flat_positions = positions.reshape(batch * NUM_GLOBAL_VIEWS, -1)
  valid = jnp.swapaxes(valid, 0, 1)  # [2, B, M]

  # Student: the masked global views, then the local views (CLS only), one pass per size.
  student_cls, student_patches = _tokens(
      backbone, global_views, model.heads["mask_token"],
      mask.reshape(batch * NUM_GLOBAL_VIEWS, -1))
  student_cls = _per_view(student_cls, NUM_GLOBAL_VIEWS)  # [2, B, D]
  all_cls = student_cls
  num_local = len(views) - NUM_GLOBAL_VIEWS
  if num_local:
    local_cls, _ = _tokens(backbone, stack_views(views[NUM_GLOBAL_VIEWS:]))
    all_cls = jnp.concatenate([student_cls, _per_view(local_cls, num_local)])
  student_cls_logits = head.cls_logits(all_cls, frozen)  # [S, B, K]
  student_patch_logits = head.patch_logits(_per_view(
      mim.at_positions(student_patches, flat_positions), NUM_GLOBAL_VIEWS).astype(jnp.float32),
      frozen)  # [2, B, M, K_patch]

  # Teacher: the global views whole, its outputs at the same tokens.
  teacher_model = context.target
  teacher_head = teacher_model.heads["projector"]
  teacher_cls, teacher_patches = _tokens(teacher_model.backbone, global_views)
  teacher_cls_logits = jax.lax.stop_gradient(
      teacher_head.cls_logits(_per_view(teacher_cls, NUM_GLOBAL_VIEWS), True))
  teacher_patch_logits = jax.lax.stop_gradient(teacher_head.patch_logits(_per_view(
      mim.at_positions(teacher_patches, flat_positions), NUM_GLOBAL_VIEWS).astype(jnp.float32),
      True))

  temperature = teacher_temperature(context.step, args.warmup_teacher_temp, args.teacher_temp,
                                    args.warmup_teacher_temp_steps)
  patch_temperature = teacher_temperature(context.step, args.warmup_teacher_patch_temp,
                                          args.teacher_patch_temp,
                                          args.warmup_teacher_temp_steps)
  if args.centering == "sinkhorn":
    cls_targets = losses.sinkhorn_teacher_probs(teacher_cls_logits, temperature,
                                                args.sinkhorn_iterations)
    patch_targets = losses.sinkhorn_teacher_probs(teacher_patch_logits, patch_temperature,
                                                  args.sinkhorn_iterations, valid)
  else:
    cls_targets = losses.centered_teacher_probs(teacher_cls_logits, method_state["center"],
                                                temperature)
    patch_targets = losses.centered_teacher_probs(
        teacher_patch_logits, method_state["patch_center"], patch_temperature)
  cls_loss = losses.cross_view_cross_entropy(student_cls_logits, cls_targets,
                                             args.student_temp)
  patch_loss = losses.ibot_patch(student_patch_logits, patch_targets, valid, args.student_temp)
  loss = args.cls_loss_weight * cls_loss + args.patch_loss_weight * patch_loss
  metrics = {"ibot_cls": cls_loss, "ibot_patch": patch_loss, "teacher_temp": temperature,
             "teacher_patch_temp": patch_temperature,
             "masked_fraction": jnp.mean(mask.astype(jnp.float32))}
  if args.koleo_weight > 0:
    # DINOv2 sums KoLeo over the two global crops ("we don't apply koleo loss between cls
    # tokens of a same image"), each crop's over its batch.
    koleo = sum(losses.koleo(student_cls[v]) for v in range(NUM_GLOBAL_VIEWS))
    loss = loss + args.koleo_weight * koleo
    metrics["koleo"] = koleo

  valid_weights = valid.astype(jnp.float32)[..., None]
  state_inputs = {  # per example first: [B, ...]
      "teacher_cls": jnp.swapaxes(teacher_cls_logits, 0, 1),
      "teacher_patch_sum": jnp.swapaxes(jnp.sum(teacher_patch_logits * valid_weights, axis=2),
                                        0, 1),
      "teacher_patch_count": jnp.swapaxes(jnp.sum(valid, axis=2).astype(jnp.float32), 0, 1)}
  return loss, metrics, state_inputs


def init_method_state(args: Args, heads: Heads) -> dict[str, jax.Array]:
  """The two centers, zeros as iBOTLoss's `center` and `center2` buffers start."""
  return {"center": jnp.zeros((heads.num_prototypes,), jnp.float32),
          "patch_center": jnp.zeros((patch_prototypes(heads, args),), jnp.float32)}


def update_method_state(method_state: Any, state_inputs: Any, context: StepContext,
                        args: Args) -> dict[str, jax.Array]:
  """Running centering: center <- m center + (1 - m) mean teacher CLS output of the global
  batch (both views), patch_center <- m2 patch_center + (1 - m2) mean teacher output over
  the batch's masked tokens. Sinkhorn centering leaves both as they are (DINOv2 keeps no
  center then)."""
  del context
  if args.centering == "sinkhorn":
    return method_state
  teacher_cls = jnp.swapaxes(state_inputs["teacher_cls"], 0, 1)  # [2, B, K]
  return {"center": losses.dino_center_update(method_state["center"], teacher_cls,
                                              args.center_momentum),
          "patch_center": losses.patch_center_update(
              method_state["patch_center"], state_inputs["teacher_patch_sum"],
              state_inputs["teacher_patch_count"], args.patch_center_momentum)}


SPEC = MethodSpec(
    name="ibot",
    num_views=NUM_GLOBAL_VIEWS,
    make_heads=make_heads,
    objective=objective,
    args_type=Args,
    heads_type=Heads,
    init_method_state=init_method_state,
    update_method_state=update_method_state,
    target_modules=("backbone", "heads/projector"),
    local_views=True,
    patch_tokens=True,
    # iBOT's README evaluates the teacher ("teacher (generally better)"); DINOv2 saves and
    # evaluates the teacher's weights.
    evaluation_encoder="target",
)
