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

from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from jax_ssl import losses
from jax_ssl.methods.spec import MethodSpec, SSLModel, StepContext, map_by_crop_size
from jax_ssl.models.heads import MLPHead, Prototypes

NUM_GLOBAL_VIEWS = 2


class DINOHead(nnx.Module):
  """MLP -> L2 normalisation -> Prototypes (facebookresearch/dino `DINOHead`)."""

  def __init__(self, in_features: int, hidden_dim: int, bottleneck_dim: int,
               num_prototypes: int, num_layers: int, use_bn: bool, *, rngs: nnx.Rngs):
    self.mlp = MLPHead(in_features, hidden_dim, bottleneck_dim, num_layers, use_bn=use_bn,
                       activation=nnx.gelu, rngs=rngs)
    self.last_layer = Prototypes(bottleneck_dim, num_prototypes, rngs=rngs)

  def __call__(self, x: jax.Array, freeze_last_layer: jax.Array | bool = False) -> jax.Array:
    return self.last_layer(losses.l2_normalize(self.mlp(x)), freeze_last_layer)


def make_heads(feature_dim: int, head_args: Mapping[str, Any], method_args: Mapping[str, Any],
               rngs: nnx.Rngs) -> dict[str, nnx.Module]:
  del method_args
  return {"projector": DINOHead(
      feature_dim, head_args["projector_hidden_dim"], head_args["bottleneck_dim"],
      head_args["num_prototypes"], head_args["projector_num_layers"],
      head_args["use_bn"], rngs=rngs)}


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
              context: StepContext, *, student_temp: float, teacher_temp: float,
              warmup_teacher_temp: float, warmup_teacher_temp_steps: int,
              center_momentum: float, freeze_last_layer_steps: int, base_momentum: float):
  del center_momentum, base_momentum  # read by update_method_state and the step
  frozen = context.step < freeze_last_layer_steps
  student = head_logits(model, views, frozen)
  teacher = jax.lax.stop_gradient(head_logits(context.target, views[:NUM_GLOBAL_VIEWS], True))
  temperature = teacher_temperature(context.step, warmup_teacher_temp, teacher_temp,
                                    warmup_teacher_temp_steps)
  loss = losses.dino(student, teacher, method_state["center"], student_temp, temperature)
  # Per example first (the step concatenates micro-batches along axis 0): [B, T, K].
  return (loss, {"dino": loss, "teacher_temp": temperature},
          {"teacher_logits": jnp.swapaxes(teacher, 0, 1)})


def update_method_state(method_state, state_inputs, context, method_args):
  del context
  teacher = jnp.swapaxes(state_inputs["teacher_logits"], 0, 1)  # [T, B, K]
  return {"center": losses.dino_center_update(method_state["center"], teacher,
                                              method_args["center_momentum"])}


SPEC = MethodSpec(
    name="dino",
    num_views=NUM_GLOBAL_VIEWS,
    make_heads=make_heads,
    objective=objective,
    init_method_state=lambda method_args, head_args: {
        "center": jnp.zeros((head_args["num_prototypes"],), jnp.float32)},
    update_method_state=update_method_state,
    # facebookresearch/dino main_dino.py defaults (freeze_last_layer: 1 epoch, in steps here).
    default_method_args={"student_temp": 0.1, "teacher_temp": 0.04, "warmup_teacher_temp": 0.04,
                         "warmup_teacher_temp_steps": 0, "center_momentum": 0.9,
                         "freeze_last_layer_steps": 0, "base_momentum": 0.996},
    target_modules=("backbone", "heads/projector"),
    local_views=True,
    # DINO's eval_knn.py / eval_linear.py default to the teacher (checkpoint_key="teacher"),
    # ahead of the student throughout training (Caron et al. 2021, Fig. 6).
    evaluation_encoder="target",
)
