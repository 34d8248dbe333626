"""DINO: self-distillation with no labels, from a centred, sharpened EMA teacher, multi-crop.

Caron et al., "Emerging Properties in Self-Supervised Vision Transformers", ICCV 2021
(Algorithm 1; facebookresearch/dino `DINOHead`, `DINOLoss`). The student is the backbone
plus the DINO head (MLP -> L2 normalisation -> weight-normalised prototype layer, frozen for
`freeze_last_layer_steps`); the teacher is their EMA copy (`target_modules`, momentum
`base_momentum` -> 1 on a cosine). The teacher sees the 2 global views, the student every
view (the globals and `augment.local_crops.num` local crops); the loss is `losses.dino`
over all (teacher view, other student view) pairs, with the teacher temperature warmed up
linearly from `warmup_teacher_temp` to `teacher_temp` over `warmup_teacher_temp_steps`.
The center (method state) moves once per optimizer step by the mean teacher output of the
global batch: `center <- m center + (1 - m) mean`, m = `center_momentum`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from jax_ssl import losses
from jax_ssl.config.typed import check
from jax_ssl.methods.byol import check_momentum
from jax_ssl.methods.spec import Metrics, MethodSpec, SSLModel, StepContext, map_by_crop_size
from jax_ssl.models.heads import MLPHead, Prototypes

NUM_GLOBAL_VIEWS = 2


@dataclasses.dataclass(frozen=True)
class Args:
  """DINO's hyper-parameters (`--config.method_args.KEY`); defaults: facebookresearch/dino
  main_dino.py (freeze_last_layer: 1 epoch there, in steps here; 0 by default).

  Attributes:
    student_temp: the student's softmax temperature, > 0.
    teacher_temp: the teacher's temperature after the warmup, > 0.
    warmup_teacher_temp: the teacher's temperature at step 0, > 0.
    warmup_teacher_temp_steps: the steps of the linear warmup, >= 0 (0: none).
    center_momentum: m of the center's EMA, in [0, 1].
    freeze_last_layer_steps: the steps the prototype layer gets no gradient, >= 0.
    base_momentum: the teacher's EMA momentum at step 0 (read by the step), in [0, 1].
  """

  student_temp: float = 0.1
  teacher_temp: float = 0.04
  warmup_teacher_temp: float = 0.04
  warmup_teacher_temp_steps: int = 0
  center_momentum: float = 0.9
  freeze_last_layer_steps: int = 0
  base_momentum: float = 0.996

  def validate(self) -> None:
    for name in ("student_temp", "teacher_temp", "warmup_teacher_temp"):
      value = getattr(self, name)
      check(value > 0, f"method_args.{name}={value!r}; must be > 0 (a softmax temperature)")
    for name in ("warmup_teacher_temp_steps", "freeze_last_layer_steps"):
      value = getattr(self, name)
      check(value >= 0, f"method_args.{name}={value!r}; must be >= 0 (a number of steps)")
    check(0 <= self.center_momentum <= 1,
          f"method_args.center_momentum={self.center_momentum!r}; must be in [0, 1]")
    check_momentum(self.base_momentum)


@dataclasses.dataclass(frozen=True)
class Heads:
  """The DINO head (`--config.heads.KEY`); defaults: the paper's ResNet-50 head
  (experiments/imagenet/dino_resnet50.py).

  Attributes:
    projector_hidden_dim: the MLP's hidden width.
    bottleneck_dim: the MLP's output, L2-normalised before the prototypes.
    num_prototypes: K, the prototype layer's outputs (and the center's size).
    projector_num_layers: the MLP's linear layers.
    use_bn: BatchNorm between the MLP's layers.
  """

  projector_hidden_dim: int = 2048
  bottleneck_dim: int = 256
  num_prototypes: int = 65536
  projector_num_layers: int = 3
  use_bn: bool = False

  def validate(self) -> None:
    for name in ("projector_hidden_dim", "bottleneck_dim", "num_prototypes",
                 "projector_num_layers"):
      value = getattr(self, name)
      check(value >= 1, f"heads.{name}={value!r}; need an integer >= 1")


class DINOHead(nnx.Module):
  """MLP -> L2 normalisation -> Prototypes (facebookresearch/dino `DINOHead`)."""

  def __init__(self, in_features: int, hidden_dim: int, bottleneck_dim: int,
               num_prototypes: int, num_layers: int, use_bn: bool, *, rngs: nnx.Rngs):
    self.mlp = MLPHead(in_features, hidden_dim, bottleneck_dim, num_layers, use_bn=use_bn,
                       activation=nnx.gelu, rngs=rngs)
    self.last_layer = Prototypes(bottleneck_dim, num_prototypes, rngs=rngs)

  def __call__(self, x: jax.Array, freeze_last_layer: jax.Array | bool = False) -> jax.Array:
    return self.last_layer(losses.l2_normalize(self.mlp(x)), freeze_last_layer)


def make_heads(feature_dim: int, heads: Heads, args: Args,
               rngs: nnx.Rngs) -> dict[str, nnx.Module]:
  """{"projector": DINOHead} of the sizes in `heads`."""
  del args
  return {"projector": DINOHead(
      feature_dim, heads.projector_hidden_dim, heads.bottleneck_dim, heads.num_prototypes,
      heads.projector_num_layers, heads.use_bn, rngs=rngs)}


def head_logits(model: SSLModel, views: Sequence[jax.Array], freeze_last_layer) -> jax.Array:
  """[V, B, K] head outputs; one backbone pass per crop size (global, local), as DINO does."""
  return jnp.stack(map_by_crop_size(
      lambda x: model.heads["projector"](model.backbone(x), freeze_last_layer), views))


def teacher_temperature(step: jax.Array, warmup_teacher_temp: float, teacher_temp: float,
                        warmup_teacher_temp_steps: int) -> jax.Array:
  """Linear warmup from `warmup_teacher_temp` to `teacher_temp`, then constant."""
  if warmup_teacher_temp_steps <= 0:
    return jnp.asarray(teacher_temp, jnp.float32)
  fraction = jnp.minimum(step.astype(jnp.float32) / warmup_teacher_temp_steps, 1.0)
  return warmup_teacher_temp + fraction * (teacher_temp - warmup_teacher_temp)


def objective(model: SSLModel, views: Sequence[jax.Array], method_state: Any,
              context: StepContext, args: Args) -> tuple[jax.Array, Metrics, dict]:
  """`losses.dino` of the student's outputs on every view against the centred teacher's on
  the global views; the state inputs are the teacher's outputs [B, T, K] (the center's
  update). `center_momentum` and `base_momentum` are read by the state update and the step."""
  frozen = context.step < args.freeze_last_layer_steps
  student = head_logits(model, views, frozen)
  teacher = jax.lax.stop_gradient(head_logits(context.target, views[:NUM_GLOBAL_VIEWS], True))
  temperature = teacher_temperature(context.step, args.warmup_teacher_temp, args.teacher_temp,
                                    args.warmup_teacher_temp_steps)
  loss = losses.dino(student, teacher, method_state["center"], args.student_temp, temperature)
  # Per example first (the step concatenates micro-batches along axis 0): [B, T, K].
  return (loss, {"dino": loss, "teacher_temp": temperature},
          {"teacher_logits": jnp.swapaxes(teacher, 0, 1)})


def init_method_state(args: Args, heads: Heads) -> dict[str, jax.Array]:
  """The center: zeros [K], as `DINOLoss`'s center buffer starts."""
  del args
  return {"center": jnp.zeros((heads.num_prototypes,), jnp.float32)}


def update_method_state(method_state: Any, state_inputs: Any, context: StepContext,
                        args: Args) -> dict[str, jax.Array]:
  """center <- m center + (1 - m) mean teacher output of the global batch."""
  del context
  teacher = jnp.swapaxes(state_inputs["teacher_logits"], 0, 1)  # [T, B, K]
  return {"center": losses.dino_center_update(method_state["center"], teacher,
                                              args.center_momentum)}


SPEC = MethodSpec(
    name="dino",
    num_views=NUM_GLOBAL_VIEWS,
    make_heads=make_heads,
    objective=objective,
    args_type=Args,
    heads_type=Heads,
    init_method_state=init_method_state,
    update_method_state=update_method_state,
    target_modules=("backbone", "heads/projector"),
    local_views=True,
    # DINO's eval_knn.py / eval_linear.py default to the teacher (checkpoint_key="teacher"),
    # ahead of the student throughout training (Caron et al. 2021, Fig. 6).
    evaluation_encoder="target",
)
