"""Optax optimizers from explicit arguments: LARS, AdamW or SGD, linear warmup + cosine decay."""

from __future__ import annotations

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


def make_optimizer(name: str, schedule: optax.Schedule, *, weight_decay: float,
                   momentum: float = 0.9, trust_coefficient: float = 0.001,
                   beta2: float = 0.999) -> optax.GradientTransformation:
  """`lars` (You et al. 2017, as SimCLR), `adamw` (Loshchilov & Hutter 2019) or `sgd`
  (heavy-ball momentum with L2 weight decay added to the gradient, as torch.optim.SGD and
  SimSiam). Biases and norms are excluded from decay (and from LARS adaptation)."""
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


def cosine_momentum(base_momentum: float, step: jax.Array, total_steps: int) -> jax.Array:
  """EMA momentum from `base_momentum` at step 0 up to 1.0 at `total_steps` on a cosine:
  1 - (1 - base) * (cos(pi * step / total_steps) + 1) / 2 (BYOL, Grill et al. 2020, sec. 3.2)."""
  progress = jnp.minimum(step / max(total_steps, 1), 1.0)
  return 1.0 - (1.0 - base_momentum) * (jnp.cos(jnp.pi * progress) + 1.0) / 2.0
