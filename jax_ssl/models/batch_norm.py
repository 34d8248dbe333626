"""BatchNorm that can take the residual add and ReLU after it, in mixed precision and across
a per-device shard_map: the BatchNorm of every backend (jax_ssl/backends).

`BatchNorm` is `nnx.BatchNorm` (same variables, same running-statistics update, same
one-pass variance E[x^2] - E[x]^2) whose call also takes the block's `residual` and `relu`:
`bn(x, residual=r, relu=True)` is `relu(bn(x) + r)`. Here that is the plain composition,
which XLA fuses as it can; a backend may compute it its own way in training mode by
overriding `fused_normalize` (the `cpu_kernels` backend's one custom VJP:
jax_ssl/backends/cpu_kernels/batch_norm.py).

Mixed precision (`compute_dtype`, e.g. bfloat16): the input (a bfloat16 convolution's
output) is normalised in float32 with float32 statistics, scale and bias, the residual is
added and the ReLU applied in float32, and the result is cast to `compute_dtype` for the
next convolution; running averages, parameters and gradients of scale and bias stay
float32 (as flax's ImageNet ResNet and big_vision's BiT normalise, and as PyTorch's autocast
runs batch_norm in float32). Elementwise, so XLA fuses the casts into the normalisation.

Inside a `jax.shard_map` over the batch's mesh axis (`cross_device(axis_name)`:
`methods/spec.py` runs the views' passes per device so that the gradients are reduced once),
the batch statistics are summed over that axis, so they stay those of the global batch, and
the running averages are collected instead of assigned (a value traced inside the shard_map
cannot be stored in a Variable of the trace around it): `cross_device` assigns them after.

Sparse (masked) mode, `bn(x, mask=visible)` with `visible` bool [B, H, W] (x's leading
axes): SparK's sparse BatchNorm (keyu-tian/SparK encoder.py `sp_bn_forward`, which CNN-JEPA's
kaland313/CNN-JEPA models/sparse_encoder.py copies): the batch statistics are the mean and
biased variance of the visible positions only (what a BatchNorm1d of the gathered visible
rows computes), the running averages move towards them, and the output (after the residual
and the ReLU) is zero at every masked position, so a masked position never contributes to a
later layer's statistics. SparK gathers the visible rows (a dynamic shape); here the sums are
weighted by the mask (static shapes under jit), the same numbers. Across devices the masked
sums and the visible count are summed over the data axis (one psum, as the dense path), so
the statistics are those of the global batch's visible positions; SparK's default
(`sbn=False`) keeps them per device. In evaluation mode the running averages normalise and
masked positions are still zeroed. nnx.BatchNorm's own `mask` (statistics over the True
positions, every position normalised) is this without the zeroing; no model uses that.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax


class _CrossDevice:
  """The running averages BatchNorm layers computed inside `cross_device`, by Variable."""

  def __init__(self, axis_name: str):
    self.axis_name = axis_name
    self.values: dict[int, tuple[nnx.Variable, jax.Array]] = {}

  def read(self, variable: nnx.Variable) -> jax.Array:
    return self.values[id(variable)][1] if id(variable) in self.values else variable[...]

  def write(self, variable: nnx.Variable, value: jax.Array) -> None:
    self.values[id(variable)] = (variable, value)


_CROSS_DEVICE: list[_CrossDevice] = []


@contextlib.contextmanager
def cross_device(axis_name: str) -> Iterator[_CrossDevice]:
  """Within (traced inside a `jax.shard_map` over `axis_name`): training-mode `BatchNorm`
  sums its batch statistics over `axis_name` and records its running averages in the
  yielded object instead of assigning them. Return `collected_values(collected)` out of the
  shard_map (replicated: they are equal on every device) and hand them to `assign` outside."""
  collected = _CrossDevice(axis_name)
  _CROSS_DEVICE.append(collected)
  try:
    yield collected
  finally:
    _CROSS_DEVICE.pop()


def collected_values(collected: _CrossDevice) -> list[jax.Array]:
  """The running averages recorded by `cross_device`, in a fixed order (pass them out of the
  shard_map, then to `assign`)."""
  return [value for _, value in collected.values.values()]


def assign(collected: _CrossDevice, values: list[jax.Array]) -> None:
  """Stores the values `collected_values` returned (after the shard_map) in their Variables."""
  for (variable, _), value in zip(list(collected.values.values()), values):
    variable[...] = value


def _normalize_cross_device(x, scale, bias, epsilon: float, axis_name: str):
  """Training-mode BatchNorm of this device's rows with the statistics of all devices along
  `axis_name` (one psum of [sum x, sum x^2]); float32. -> (y, mean, biased variance)."""
  xf = x.astype(jnp.float32)
  axes = tuple(range(x.ndim - 1))
  sums = lax.psum(jnp.concatenate([jnp.sum(xf, axes), jnp.sum(jnp.square(xf), axes)]),
                  axis_name)
  count = (x.size // x.shape[-1]) * lax.psum(1, axis_name)
  mean, mean_square = jnp.split(sums / count, 2)
  var = jnp.maximum(0.0, mean_square - jnp.square(mean))
  y = (xf - mean) * (lax.rsqrt(var + epsilon) * scale) + bias
  return y, mean, var


def _normalize_masked(x, visible, scale, bias, epsilon: float, axis_name: str | None):
  """Training-mode BatchNorm whose statistics count the `visible` positions only (bool,
  x's leading axes), summed over `axis_name` when given (one psum of the masked sums and the
  visible count); float32. -> (y at every position, mean, biased variance)."""
  xf = x.astype(jnp.float32)
  weight = visible.astype(jnp.float32)[..., None]
  axes = tuple(range(x.ndim - 1))
  weighted = xf * weight
  sums = jnp.concatenate([jnp.sum(weighted, axes), jnp.sum(weighted * xf, axes),
                          jnp.sum(weight, axes)])
  if axis_name is not None:
    sums = lax.psum(sums, axis_name)
  sum_x, sum_x2, count = jnp.split(sums, [x.shape[-1], 2 * x.shape[-1]])
  count = jnp.maximum(count, 1.0)  # nothing visible: zero statistics, not NaN
  mean = sum_x / count
  var = jnp.maximum(0.0, sum_x2 / count - jnp.square(mean))
  y = (xf - mean) * (lax.rsqrt(var + epsilon) * scale) + bias
  return y, mean, var


class BatchNorm(nnx.BatchNorm):
  """`nnx.BatchNorm` whose call can add the residual and apply the ReLU that follow it.

  `compute_dtype`: the dtype of the output (None: the input's); the normalisation itself is
  float32 whatever it is (module docstring)."""

  def __init__(self, num_features: int, *, compute_dtype: Any = None, **kwargs):
    super().__init__(num_features, **kwargs)
    self.compute_dtype = compute_dtype

  def fused_normalize(self, x: jax.Array, residual: jax.Array | None, relu: bool, out_dtype
                      ) -> tuple[jax.Array, jax.Array, jax.Array] | None:
    """A backend's own training-mode `relu(bn(x) + residual)`: (y in `out_dtype`, batch
    mean, biased batch variance), or None to take the plain composition (here: always)."""
    del x, residual, relu, out_dtype
    return None

  def __call__(self, x, use_running_average: bool | None = None, *, mask=None, residual=None,
               relu: bool = False):
    use_running_average = (self.use_running_average if use_running_average is None
                           else use_running_average)
    out_dtype = self.compute_dtype or x.dtype
    if mask is not None:
      return self._sparse(x, mask, use_running_average, residual, relu, out_dtype)
    plain = (mask is None and self.axis_name is None and self.scale is not None
             and self.bias is not None and self.axis in (-1, x.ndim - 1))
    training = use_running_average is False and plain
    fused = (self.fused_normalize(x, residual, relu, out_dtype)
             if training and not _CROSS_DEVICE else None)
    if fused is not None:
      y, mean, var = fused
      self.mean[...] = lax.stop_gradient(self.momentum * self.mean[...]
                                         + (1 - self.momentum) * mean)
      self.var[...] = lax.stop_gradient(self.momentum * self.var[...]
                                        + (1 - self.momentum) * var)
      return y
    if training and _CROSS_DEVICE:
      collected = _CROSS_DEVICE[-1]
      y, mean, var = _normalize_cross_device(x, self.scale[...], self.bias[...], self.epsilon,
                                             collected.axis_name)
      for variable, batch_value in ((self.mean, mean), (self.var, var)):
        collected.write(variable, lax.stop_gradient(
            self.momentum * collected.read(variable) + (1 - self.momentum) * batch_value))
    else:
      # float32 parameters and statistics: nnx.BatchNorm promotes the input to float32.
      y = super().__call__(x.astype(jnp.promote_types(x.dtype, jnp.float32)),
                           use_running_average, mask=mask)
    if residual is not None:
      y = y + residual.astype(y.dtype)
    if relu:
      y = nnx.relu(y)
    return y.astype(out_dtype)

  def _sparse(self, x, visible, use_running_average: bool, residual, relu: bool, out_dtype):
    """The sparse mode (module docstring): statistics of the `visible` positions, output zero
    at the others. No backend's `fused_normalize`: it has no mask (the cpu_kernels backend
    takes this path for masked calls, as for any masked BatchNorm)."""
    visible = jnp.broadcast_to(jnp.asarray(visible, bool), x.shape[:-1])
    features = x.shape[-1]
    scale = self.scale[...] if self.scale is not None else jnp.ones((features,), jnp.float32)
    bias = self.bias[...] if self.bias is not None else jnp.zeros((features,), jnp.float32)
    if use_running_average:
      xf = x.astype(jnp.float32)
      y = (xf - self.mean[...]) * (lax.rsqrt(self.var[...] + self.epsilon) * scale) + bias
    else:
      collected = _CROSS_DEVICE[-1] if _CROSS_DEVICE else None
      axis_name = collected.axis_name if collected is not None else self.axis_name
      y, mean, var = _normalize_masked(x, visible, scale, bias, self.epsilon, axis_name)
      for variable, batch_value in ((self.mean, mean), (self.var, var)):
        if collected is not None:
          collected.write(variable, lax.stop_gradient(
              self.momentum * collected.read(variable) + (1 - self.momentum) * batch_value))
        else:
          variable[...] = lax.stop_gradient(self.momentum * variable[...]
                                            + (1 - self.momentum) * batch_value)
    if residual is not None:
      y = y + residual.astype(y.dtype)
    if relu:
      y = nnx.relu(y)
    return jnp.where(visible[..., None], y, 0.0).astype(out_dtype)
