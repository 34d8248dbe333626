"""BatchNorm with the residual add and ReLU that follow it fused into one custom VJP.

`BatchNorm` is `nnx.BatchNorm` (same variables, same running-statistics update, same
one-pass variance E[x^2] - E[x]^2) whose call also takes the block's `residual` and `relu`:
`bn(x, residual=r, relu=True)` is `relu(bn(x) + r)`. In training mode it can run
`batch_norm_act`, a `jax.custom_vjp` that keeps the passes over the activations to the few the
maths needs:

  * forward: the two per-channel sums (x, x^2), then one pass `relu(x * a + b + r)`;
  * backward: the two per-channel sums of the masked output gradient g (g, g * x), then one
    pass `dx = a * g + c * x + d`; nothing else is materialised.

XLA's autodiff of the plain composition also writes `x - mean` in the forward pass (kept for
the backward pass) and splits the backward pass into more elementwise passes; on XLA:CPU,
where these memory-bound passes run at memory speed, that is most of a small CNN's
non-convolution time. The residuals are the BN input and the block output, which the
surrounding convolutions keep anyway.

`JAX_SSL_FUSED_BATCHNORM` chooses (read when a function is traced): `auto` (default) on the
CPU backend with one device, where it was measured faster (tools/benchmark.py); `1` always
(tests); `0` never. Evaluation mode (running averages), masks and `axis_name` always take
`nnx.BatchNorm`'s own path.

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
"""

from __future__ import annotations

import contextlib
import functools
import os
from typing import Any, Iterator

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax

MODES = ("auto", "1", "0")


def mode() -> str:
  value = os.environ.get("JAX_SSL_FUSED_BATCHNORM", "auto")
  if value not in MODES:
    raise ValueError(f"JAX_SSL_FUSED_BATCHNORM={value!r}; use one of {MODES}")
  return value


def fused_wanted() -> bool:
  value = mode()
  if value != "auto":
    return value == "1"
  return jax.default_backend() == "cpu" and jax.device_count() == 1


def _channel_sums(*arrays):
  axes = tuple(range(arrays[0].ndim - 1))
  return [jnp.sum(a, axes) for a in arrays]


@functools.lru_cache(maxsize=None)
def _batch_norm_act(epsilon: float, relu: bool, has_residual: bool):
  """The custom-VJP function for one (epsilon, relu, residual) combination. Statistics and
  arithmetic in float32 whatever the input's dtype; the output and the input gradient in the
  input's dtype (bfloat16 activations are read and written as bfloat16)."""

  def forward(x, scale, bias, residual):
    count = x.size // x.shape[-1]
    xf = x.astype(jnp.float32)
    sum_x, sum_x2 = _channel_sums(xf, jnp.square(xf))
    mean = sum_x / count
    var = jnp.maximum(0.0, sum_x2 / count - jnp.square(mean))
    rstd = lax.rsqrt(var + epsilon)
    a = scale * rstd
    y = xf * a + (bias - mean * a)
    if has_residual:
      y = y + residual.astype(jnp.float32)
    if relu:
      y = jnp.maximum(y, 0.0)
    y = y.astype(x.dtype)
    # An empty array carries the residual's dtype to the backward pass.
    return (y, mean, var), (x, y if relu else None, mean, rstd, scale,
                            jnp.zeros((0,), residual.dtype) if has_residual else None)

  def backward(saved, cotangents):
    # The cotangents of mean and var are dropped: `BatchNorm` uses them only under
    # stop_gradient, for the running statistics.
    x, y, mean, rstd, scale, residual_like = saved
    g = cotangents[0].astype(jnp.float32)
    if relu:
      g = jnp.where(y > 0, g, 0.0)
    count = x.size // x.shape[-1]
    xf = x.astype(jnp.float32)
    sum_g, sum_gx = _channel_sums(g, g * xf)
    d_bias = sum_g
    d_scale = rstd * (sum_gx - mean * sum_g)  # sum(g * x_hat)
    a = scale * rstd
    # dx = a * (g - mean(g) - x_hat * mean(g * x_hat)), as a per-channel a * g + c * x + d.
    c = -a * rstd * d_scale / count
    d = -c * mean - a * d_bias / count
    dx = (a * g + c * xf + d).astype(x.dtype)
    return dx, d_scale, d_bias, (g.astype(residual_like.dtype) if has_residual else None)

  @jax.custom_vjp
  def batch_norm_act(x, scale, bias, residual):
    return forward(x, scale, bias, residual)[0]

  batch_norm_act.defvjp(forward, backward)
  return batch_norm_act


def batch_norm_act(x, scale, bias, residual=None, *, epsilon: float, relu: bool):
  """Training-mode BatchNorm over all axes but the last, plus `residual`, then ReLU if `relu`.

  Returns (y in x's dtype, batch mean, biased batch variance), the moments float32 and
  without gradient."""
  return _batch_norm_act(float(epsilon), bool(relu), residual is not None)(
      x, scale, bias, residual)


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


class BatchNorm(nnx.BatchNorm):
  """`nnx.BatchNorm` whose call can fuse the residual add and ReLU that follow it.

  `compute_dtype`: the dtype of the output (None: the input's); the normalisation itself is
  float32 whatever it is (module docstring)."""

  def __init__(self, num_features: int, *, compute_dtype: Any = None, **kwargs):
    super().__init__(num_features, **kwargs)
    self.compute_dtype = compute_dtype

  def __call__(self, x, use_running_average: bool | None = None, *, mask=None, residual=None,
               relu: bool = False):
    use_running_average = (self.use_running_average if use_running_average is None
                           else use_running_average)
    out_dtype = self.compute_dtype or x.dtype
    plain = (mask is None and self.axis_name is None and self.scale is not None
             and self.bias is not None and self.axis in (-1, x.ndim - 1))
    if use_running_average is False and plain and _CROSS_DEVICE:
      collected = _CROSS_DEVICE[-1]
      y, mean, var = _normalize_cross_device(x, self.scale[...], self.bias[...], self.epsilon,
                                             collected.axis_name)
      for variable, batch_value in ((self.mean, mean), (self.var, var)):
        collected.write(variable, lax.stop_gradient(
            self.momentum * collected.read(variable) + (1 - self.momentum) * batch_value))
    elif (use_running_average is False and plain and x.dtype == out_dtype
          and x.dtype in (jnp.float32, jnp.bfloat16) and fused_wanted()):
      y, mean, var = batch_norm_act(x, self.scale[...], self.bias[...], residual,
                                    epsilon=self.epsilon, relu=relu)
      self.mean[...] = lax.stop_gradient(self.momentum * self.mean[...]
                                         + (1 - self.momentum) * mean)
      self.var[...] = lax.stop_gradient(self.momentum * self.var[...]
                                        + (1 - self.momentum) * var)
      return y
    else:
      # float32 parameters and statistics: nnx.BatchNorm promotes the input to float32.
      y = super().__call__(x.astype(jnp.promote_types(x.dtype, jnp.float32)),
                           use_running_average, mask=mask)
    if residual is not None:
      y = y + residual.astype(y.dtype)
    if relu:
      y = nnx.relu(y)
    return y.astype(out_dtype)
