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
(tests); `0` never. Evaluation mode (running averages), masks, `axis_name` and non-float32
inputs always take `nnx.BatchNorm`'s own path.
"""

from __future__ import annotations

import functools
import os

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
  """The custom-VJP function for one (epsilon, relu, residual) combination."""

  def forward(x, scale, bias, residual):
    count = x.size // x.shape[-1]
    sum_x, sum_x2 = _channel_sums(x, jnp.square(x))
    mean = sum_x / count
    var = jnp.maximum(0.0, sum_x2 / count - jnp.square(mean))
    rstd = lax.rsqrt(var + epsilon)
    a = scale * rstd
    y = x * a + (bias - mean * a)
    if has_residual:
      y = y + residual
    if relu:
      y = jnp.maximum(y, 0.0)
    return (y, mean, var), (x, y if relu else None, mean, rstd, scale)

  def backward(saved, cotangents):
    # The cotangents of mean and var are dropped: `BatchNorm` uses them only under
    # stop_gradient, for the running statistics.
    x, y, mean, rstd, scale = saved
    g = cotangents[0]
    if relu:
      g = jnp.where(y > 0, g, 0.0)
    count = x.size // x.shape[-1]
    sum_g, sum_gx = _channel_sums(g, g * x)
    d_bias = sum_g
    d_scale = rstd * (sum_gx - mean * sum_g)  # sum(g * x_hat)
    a = scale * rstd
    # dx = a * (g - mean(g) - x_hat * mean(g * x_hat)), as a per-channel a * g + c * x + d.
    c = -a * rstd * d_scale / count
    d = -c * mean - a * d_bias / count
    dx = a * g + c * x + d
    return dx, d_scale, d_bias, (g if has_residual else None)

  @jax.custom_vjp
  def batch_norm_act(x, scale, bias, residual):
    return forward(x, scale, bias, residual)[0]

  batch_norm_act.defvjp(forward, backward)
  return batch_norm_act


def batch_norm_act(x, scale, bias, residual=None, *, epsilon: float, relu: bool):
  """Training-mode BatchNorm over all axes but the last, plus `residual`, then ReLU if `relu`.

  Returns (y, batch mean, biased batch variance); mean and variance carry no gradient."""
  return _batch_norm_act(float(epsilon), bool(relu), residual is not None)(
      x, scale, bias, residual)


class BatchNorm(nnx.BatchNorm):
  """`nnx.BatchNorm` whose call can fuse the residual add and ReLU that follow it."""

  def __call__(self, x, use_running_average: bool | None = None, *, mask=None, residual=None,
               relu: bool = False):
    use_running_average = (self.use_running_average if use_running_average is None
                           else use_running_average)
    if (use_running_average is False and mask is None and self.axis_name is None
        and self.scale is not None and self.bias is not None and x.dtype == jnp.float32
        and self.axis in (-1, x.ndim - 1) and fused_wanted()):
      y, mean, var = batch_norm_act(x, self.scale[...], self.bias[...], residual,
                                    epsilon=self.epsilon, relu=relu)
      self.mean[...] = lax.stop_gradient(self.momentum * self.mean[...]
                                         + (1 - self.momentum) * mean)
      self.var[...] = lax.stop_gradient(self.momentum * self.var[...]
                                        + (1 - self.momentum) * var)
      return y
    y = super().__call__(x, use_running_average, mask=mask)
    if residual is not None:
      y = y + residual
    return nnx.relu(y) if relu else y
