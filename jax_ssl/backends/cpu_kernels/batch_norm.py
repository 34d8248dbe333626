"""BatchNorm with the residual add and ReLU that follow it fused into one custom VJP.

`FusedBatchNorm` is the `cpu_kernels` backend's BatchNorm: `models.batch_norm.BatchNorm`
(same variables, same running-statistics update, same one-pass variance E[x^2] - E[x]^2)
whose training-mode call `bn(x, residual=r, relu=True)` = `relu(bn(x) + r)` can run
`batch_norm_act`, a `jax.custom_vjp` that keeps the passes over the activations to the few
the maths needs:

  * forward: the two per-channel sums (x, x^2), then one pass `relu(x * a + b + r)`;
  * backward: the two per-channel sums of the masked output gradient g (g, g * x), then one
    pass `dx = a * g + c * x + d`; nothing else is materialised.

XLA's autodiff of the plain composition also writes `x - mean` in the forward pass (kept for
the backward pass) and splits the backward pass into more elementwise passes; on XLA:CPU,
where these memory-bound passes run at memory speed, that is most of a small CNN's
non-convolution time. The residuals are the BN input and the block output, which the
surrounding convolutions keep anyway.

Where it runs (fixed when the backend is made, `every_op`): False (the backend `select`
returns) on the CPU backend with one device, where it was measured faster
(tools/benchmark.py); True (tests) in every training-mode call. Evaluation mode (running
averages), masks, `axis_name` and `cross_device` take the base class's path. Mixed
precision as the base class: float32 statistics and arithmetic, output in the input's dtype
(bfloat16 activations are read and written as bfloat16).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from jax_ssl.models import batch_norm as batch_norm_lib


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
    # The cotangents of mean and var are dropped: `FusedBatchNorm` uses them only under
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


class FusedBatchNorm(batch_norm_lib.BatchNorm):
  """`models.batch_norm.BatchNorm` whose training-mode call runs `batch_norm_act` (module
  docstring); `every_call`: in every such call, else on one CPU device only."""

  def __init__(self, num_features: int, *, every_call: bool = False, **kwargs):
    super().__init__(num_features, **kwargs)
    self.every_call = every_call

  def fused_normalize(self, x, residual, relu, out_dtype):
    if x.dtype != out_dtype or x.dtype not in (jnp.float32, jnp.bfloat16):
      return None
    if not (self.every_call or (jax.default_backend() == "cpu" and jax.device_count() == 1)):
      return None
    return batch_norm_act(x, self.scale[...], self.bias[...], residual, epsilon=self.epsilon,
                          relu=relu)
