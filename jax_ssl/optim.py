"""Optax optimizers from explicit arguments: LARS, AdamW or SGD, linear warmup + cosine decay."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax


def scaled_learning_rate(base_learning_rate: float, global_batch_size: int,
                         scaling: str = "linear") -> float:
  """Peak learning rate: base * B/256 ("linear", Goyal et al. 2017), base * sqrt(B/256)
  ("sqrt", SimCLR's option for small batches with LARS) or base ("none")."""
  ratio = global_batch_size / 256
  if scaling == "linear":
    return base_learning_rate * ratio
  if scaling == "sqrt":
    return base_learning_rate * ratio**0.5
  if scaling == "none":
    return base_learning_rate
  raise ValueError(f"optimizer.lr_scaling={scaling!r}; use 'linear', 'sqrt' or 'none'")


def warmup_cosine(peak_learning_rate: float, warmup_steps: int,
                  total_steps: int) -> optax.Schedule:
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=peak_learning_rate, warmup_steps=warmup_steps,
      decay_steps=max(total_steps, warmup_steps + 1), end_value=0.0)


def decay_mask(params):
  """True for weight matrices/kernels; biases and BatchNorm/LayerNorm scales are excluded
  from weight decay and from LARS adaptation, as in SimCLR, solo-learn and MAE. A leaf is
  excluded if it has ndim <= 1 or is named "bias" (attention's per-head q/k/v biases are
  [heads, head_dim])."""
  def decays(path, x):
    names = [key.key for key in path if isinstance(key, jax.tree_util.DictKey)]
    return x.ndim > 1 and not (names and names[-1] == "bias")
  return jax.tree_util.tree_map_with_path(decays, params)


class ScheduledDecayState(NamedTuple):
  count: jax.Array


def add_scheduled_decayed_weights(weight_decay: optax.Schedule, mask=None
                                  ) -> optax.GradientTransformation:
  """`optax.add_decayed_weights` with the coefficient a schedule of the step: updates +
  weight_decay(step) * params on the leaves where `mask` is True."""

  def init(params):
    del params
    return ScheduledDecayState(count=jnp.zeros([], jnp.int32))

  def update(updates, state, params=None):
    coefficient = weight_decay(state.count)
    decayed = jax.tree.map(lambda g, p: g + coefficient * p, updates, params)
    if mask is not None:
      keep = mask(params) if callable(mask) else mask
      decayed = jax.tree.map(lambda d, g, m: d if m else g, decayed, updates, keep)
    return decayed, ScheduledDecayState(count=optax.safe_increment(state.count))

  return optax.GradientTransformation(init, update)


def make_optimizer(name: str, schedule: optax.Schedule, *, weight_decay: float,
                   momentum: float = 0.9, trust_coefficient: float = 0.001,
                   beta2: float = 0.999, weight_decay_end: float | None = None,
                   total_steps: int = 0) -> optax.GradientTransformation:
  """`lars` (You et al. 2017, as SimCLR), `adamw` (Loshchilov & Hutter 2019) or `sgd`
  (heavy-ball momentum with L2 weight decay added to the gradient, as torch.optim.SGD and
  SimSiam). Biases and norms are excluded from decay (and from LARS adaptation).

  `weight_decay_end` (adamw, sgd): the decay moves from `weight_decay` to it on a cosine
  over `total_steps` (DINO, I-JEPA: 0.04 -> 0.4); None: constant."""
  if weight_decay_end is not None:
    if name == "lars":
      raise ValueError("optimizer.weight_decay_end needs optimizer.name 'adamw' or 'sgd' "
                       "(LARS folds a constant decay into its trust ratio)")
    decay = optax.cosine_decay_schedule(1.0, max(total_steps, 1))  # 1 -> 0 on a cosine
    decay_schedule = lambda step: weight_decay_end + (weight_decay - weight_decay_end) * decay(step)
    if name == "sgd":
      return optax.chain(add_scheduled_decayed_weights(decay_schedule, mask=decay_mask),
                         optax.sgd(schedule, momentum=momentum))
    return optax.chain(optax.scale_by_adam(b1=momentum, b2=beta2),
                       add_scheduled_decayed_weights(decay_schedule, mask=decay_mask),
                       optax.scale_by_learning_rate(schedule))
  if name == "sgd":
    return optax.chain(optax.add_decayed_weights(weight_decay, mask=decay_mask),
                       optax.sgd(schedule, momentum=momentum))
  if name == "lars":
    return optax.lars(schedule, weight_decay=weight_decay, weight_decay_mask=decay_mask,
                      trust_coefficient=trust_coefficient, trust_ratio_mask=decay_mask,
                      momentum=momentum)
  if name == "adamw":
    return optax.adamw(schedule, b1=momentum, b2=beta2, weight_decay=weight_decay,
                       mask=decay_mask)
  raise ValueError(f"optimizer.name={name!r}; use 'lars', 'adamw' or 'sgd'")


def linear_momentum(start: float, end: float, step: jax.Array, total_steps: int) -> jax.Array:
  """EMA momentum from `start` at step 0 to `end` at `total_steps` on a line, then `end`
  (I-JEPA: 0.996 -> 1.0 over the run; data2vec 2.0: 0.9998 -> 0.99999)."""
  progress = jnp.minimum(step / max(total_steps, 1), 1.0)
  return start + (end - start) * progress


def cosine_momentum(base_momentum: float, step: jax.Array, total_steps: int) -> jax.Array:
  """EMA momentum from `base_momentum` at step 0 up to 1.0 at `total_steps` on a cosine:
  1 - (1 - base) * (cos(pi * step / total_steps) + 1) / 2 (BYOL, Grill et al. 2020, sec. 3.2)."""
  progress = jnp.minimum(step / max(total_steps, 1), 1.0)
  return 1.0 - (1.0 - base_momentum) * (jnp.cos(jnp.pi * progress) + 1.0) / 2.0
