"""The cpu_kernels backend's fused BatchNorm (+ residual + ReLU) custom VJP equals the plain
composition (values, gradients, running statistics), inside a whole ResNet too; and it runs
where the backend says."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jax_ssl import backends
from jax_ssl.backends import cpu_kernels
from jax_ssl.backends.cpu_kernels import batch_norm as fused_bn
from jax_ssl.models import resnet

# XLA's convolutions with the fused BatchNorm in every training-mode call: the BatchNorm alone.
FUSED = backends.Backend("fused batch norm", backends.XLA.conv,
                         cpu_kernels.backend(every_op=True).batch_norm)


def _plain(x, scale, bias, residual, epsilon, relu):
  """nnx.BatchNorm's training-mode maths (one-pass variance), then + residual, then ReLU."""
  mean = jnp.mean(x, (0, 1, 2))
  var = jnp.maximum(0.0, jnp.mean(jnp.square(x), (0, 1, 2)) - jnp.square(mean))
  y = (x - mean) * jax.lax.rsqrt(var + epsilon) * scale + bias
  if residual is not None:
    y = y + residual
  return jnp.maximum(y, 0.0) if relu else y


@pytest.mark.parametrize("relu,with_residual", [(True, True), (True, False), (False, True),
                                                (False, False)])
def test_values_and_gradients_equal_the_plain_composition(relu, with_residual):
  keys = jax.random.split(jax.random.key(0), 5)
  x = 2.0 * jax.random.normal(keys[0], (6, 5, 5, 16)) + 0.7
  scale = 1.0 + 0.3 * jax.random.normal(keys[1], (16,))
  bias = 0.2 * jax.random.normal(keys[2], (16,))
  residual = jax.random.normal(keys[3], x.shape) if with_residual else None
  weights = jax.random.normal(keys[4], x.shape)  # a loss whose gradient is not uniform

  def fused_loss(x, scale, bias, residual):
    y, _, _ = fused_bn.batch_norm_act(x, scale, bias, residual, epsilon=1e-5, relu=relu)
    return jnp.sum(weights * y)

  def plain_loss(x, scale, bias, residual):
    return jnp.sum(weights * _plain(x, scale, bias, residual, 1e-5, relu))

  args = (x, scale, bias, residual)
  argnums = (0, 1, 2, 3) if with_residual else (0, 1, 2)
  fused = jax.jit(jax.value_and_grad(fused_loss, argnums))(*args)
  plain = jax.jit(jax.value_and_grad(plain_loss, argnums))(*args)
  np.testing.assert_allclose(fused[0], plain[0], rtol=1e-5, atol=1e-4)
  for got, want in zip(fused[1], plain[1]):
    assert float(jnp.max(jnp.abs(want))) > 0.1  # gradients of substance, not zeros
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
  if relu:  # the mask matters: some outputs are clipped
    assert 0.1 < float(jnp.mean(_plain(*args, 1e-5, relu) == 0)) < 0.9


def test_returns_the_batch_moments():
  x = jax.random.normal(jax.random.key(1), (4, 3, 3, 16)) * 3.0 + 1.5
  _, mean, var = fused_bn.batch_norm_act(x, jnp.ones(16), jnp.zeros(16), epsilon=1e-5,
                                         relu=False)
  np.testing.assert_allclose(mean, np.mean(np.asarray(x), (0, 1, 2)), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(var, np.var(np.asarray(x), (0, 1, 2)), rtol=1e-4)


def _resnet_step(backend):
  """Loss, gradients and updated BatchNorm statistics of a small ResNet on one backend."""
  model = resnet.make_backbone("resnet_small", width=16, stem="cifar", in_channels=1,
                               backend=backend, rngs=nnx.Rngs(0))
  graphdef, params, stats = nnx.split(model, nnx.Param, nnx.BatchStat)
  images = jax.random.uniform(jax.random.key(2), (8, 16, 16, 1))
  target = jax.random.normal(jax.random.key(3), (8, 128))

  def loss_fn(params, stats):
    m = nnx.merge(graphdef, params, stats, copy=True)
    loss = jnp.mean(jnp.square(m(images) - target))
    return loss, nnx.state(m, nnx.BatchStat)

  (loss, new_stats), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(params, stats)
  return loss, jax.tree.leaves(grads), jax.tree.leaves(new_stats), jax.tree.leaves(stats)


def test_resnet_is_the_same_with_and_without_the_fused_path():
  loss_f, grads_f, stats_f, before = _resnet_step(FUSED)
  loss_p, grads_p, stats_p, _ = _resnet_step(backends.XLA)
  np.testing.assert_allclose(loss_f, loss_p, rtol=1e-5)
  for got, want in zip(grads_f, grads_p):
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5)
  changed = [not np.allclose(new, old) for new, old in zip(stats_p, before)]
  assert all(changed)  # every running statistic moved in this step...
  for got, want in zip(stats_f, stats_p):  # ... and moved the same way
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_fused_path_is_in_the_traced_step_only_where_the_backend_says():
  x = jnp.ones((2, 4, 4, 16))
  # The measured rule fuses on one CPU device only: this process has 8 (tests/conftest.py).
  assert jax.device_count() > 1
  for backend, expected in ((FUSED, True), (backends.XLA, False), (cpu_kernels.backend(), False)):
    bn = resnet.batch_norm(16, backend=backend, rngs=nnx.Rngs(0))
    graphdef, state = nnx.split(bn)
    jaxpr = str(jax.make_jaxpr(lambda s: nnx.merge(graphdef, s)(x, relu=True))(state))
    assert ("custom_vjp_call" in jaxpr) == expected, backend.name


def test_evaluation_mode_uses_the_running_averages():
  bn = resnet.batch_norm(16, backend=FUSED, rngs=nnx.Rngs(0))
  bn.mean[...] = jnp.full(16, 2.0)
  bn.var[...] = jnp.full(16, 4.0)
  bn.eval()
  y = bn(jnp.full((1, 2, 2, 16), 4.0), residual=jnp.full((1, 2, 2, 16), -3.0), relu=True)
  np.testing.assert_allclose(y, np.zeros((1, 2, 2, 16)), atol=1e-5)  # relu((4-2)/2 - 3) = 0
  y = bn(jnp.full((1, 2, 2, 16), 4.0), residual=jnp.full((1, 2, 2, 16), 1.0))
  np.testing.assert_allclose(y, np.full((1, 2, 2, 16), 2.0), rtol=1e-5)
