"""`model.dtype` is honoured by the ResNets (issue 25, item 6): bfloat16 convolutions with
float32 parameters, BatchNorm statistics and features; close to float32; the ResNet-50
train step lowers with no float32 convolution; a dtype a backbone cannot honour is refused."""

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jax_ssl import backends
from jax_ssl import config as config_lib
from jax_ssl.backends import cpu_kernels
from jax_ssl.backends.cpu_kernels import batch_norm as fused_bn
from jax_ssl.errors import ConfigError
from jax_ssl.models import resnet

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import benchmark  # noqa: E402


def _loss_features_grads(dtype: str, backend: backends.Backend):
  model = resnet.make_backbone("resnet18", width=16, stem="cifar", in_channels=3, dtype=dtype,
                               backend=backend, rngs=nnx.Rngs(0))
  model.train()
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  images = jax.random.uniform(jax.random.key(1), (8, 16, 16, 3))
  targets = jax.random.normal(jax.random.key(2), (8, 128))

  def loss(params):
    features = nnx.merge(graphdef, params, rest, copy=True)(images)
    return jnp.mean(jnp.square(features - targets)), features

  (value, features), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(params)
  return params, value, features, grads


@pytest.mark.parametrize("fused", [True, False])
def test_bfloat16_resnet_is_float32_within_tolerance(fused):
  # Tolerances (measured: loss 5e-4, features 2e-2, gradient cosine 0.95): bfloat16 keeps
  # 8 bits of mantissa, about 0.4% per rounding, over 18 layers of a ResNet-18.
  # XLA's convolutions with the fused BatchNorm in every training-mode call, or plain.
  backend = backends.Backend("fused batch norm", backends.XLA.conv,
                             cpu_kernels.backend(every_op=True).batch_norm
                             ) if fused else backends.XLA
  params32, loss32, features32, grads32 = _loss_features_grads("float32", backend)
  params16, loss16, features16, grads16 = _loss_features_grads("bfloat16", backend)
  for tree in (params16, grads16):  # float32 parameters and gradients
    assert {x.dtype for x in jax.tree.leaves(tree)} == {jnp.dtype(jnp.float32)}
  for a, b in zip(jax.tree.leaves(params32), jax.tree.leaves(params16)):  # same initialisation
    np.testing.assert_array_equal(a, b)
  assert features16.dtype == jnp.float32
  assert float(loss16) != float(loss32)  # computed in bfloat16 indeed
  assert abs(float(loss16) - float(loss32)) < 5e-3 * abs(float(loss32))
  assert float(jnp.linalg.norm(features16 - features32)) < 0.05 * float(
      jnp.linalg.norm(features32))
  flat32 = jnp.concatenate([g.ravel() for g in jax.tree.leaves(grads32)])
  flat16 = jnp.concatenate([g.ravel() for g in jax.tree.leaves(grads16)])
  cosine = float(flat32 @ flat16 / (jnp.linalg.norm(flat32) * jnp.linalg.norm(flat16)))
  assert cosine > 0.9, cosine
  assert 0.9 < float(jnp.linalg.norm(flat16) / jnp.linalg.norm(flat32)) < 1.1


def test_fused_batch_norm_takes_bfloat16_and_normalises_in_float32():
  keys = jax.random.split(jax.random.key(0), 4)
  x = (2.0 * jax.random.normal(keys[0], (4, 5, 5, 16)) + 0.7).astype(jnp.bfloat16)
  residual = jax.random.normal(keys[1], x.shape).astype(jnp.bfloat16)
  scale = 1.0 + 0.3 * jax.random.normal(keys[2], (16,))
  bias = 0.2 * jax.random.normal(keys[3], (16,))
  y, mean, var = fused_bn.batch_norm_act(x, scale, bias, residual, epsilon=1e-5, relu=True)
  assert y.dtype == jnp.bfloat16 and mean.dtype == var.dtype == jnp.float32
  xf = x.astype(jnp.float32)  # the float32 maths on the bfloat16 values
  np.testing.assert_allclose(mean, jnp.mean(xf, (0, 1, 2)), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(var, jnp.var(xf, (0, 1, 2)), rtol=1e-4)
  want = jnp.maximum((xf - mean) * jax.lax.rsqrt(var + 1e-5) * scale + bias
                     + residual.astype(jnp.float32), 0.0)
  np.testing.assert_allclose(y.astype(jnp.float32), want, rtol=1e-2, atol=1e-2)

  def loss(x, scale, bias):
    out = fused_bn.batch_norm_act(x, scale, bias, residual, epsilon=1e-5, relu=True)[0]
    return jnp.sum(out.astype(jnp.float32) * jnp.arange(out.size).reshape(out.shape) / out.size)

  dx, dscale, dbias = jax.grad(loss, (0, 1, 2))(x, scale, bias)
  assert dx.dtype == jnp.bfloat16 and dscale.dtype == dbias.dtype == jnp.float32
  assert float(jnp.max(jnp.abs(dx.astype(jnp.float32)))) > 0.01


def _convolutions(hlo_text: str) -> dict[str, int]:
  return benchmark.ops_by_dtype(benchmark.parse_hlo(hlo_text))["convolution"]


def test_bfloat16_convolutions_skip_the_float32_cpu_kernels():
  # Every float32 layer that applies would take a kernel on this backend.
  model = resnet.make_backbone("resnet_small", width=16, stem="cifar", in_channels=1,
                               dtype="bfloat16", backend=cpu_kernels.backend(every_op=True),
                               rngs=nnx.Rngs(0))
  model.eval()
  text = jax.jit(lambda x: model(x)).lower(jnp.zeros((2, 16, 16, 1))).as_text(dialect="hlo")
  assert "JaxSsl" not in text
  assert _convolutions(text) == {"bf16": 1 + 4 * 2 + 3}  # stem, 4 blocks, 3 shortcuts


def test_resnet50_train_step_lowers_with_no_float32_convolution():
  # The SimCLR ResNet-50 step, lowered (never run) for 2 images of 64 x 64 on one device.
  config = benchmark.load_config(os.path.join(ROOT, "experiments/imagenet/simclr_resnet50.py"),
                                 ("model.dtype=bfloat16", "global_batch_size=2",
                                  "dataset.image_size=64", "augment.output_size=64"))
  assert (config.model.dtype, config.global_batch_size, config.augment.output_size) == (
      "bfloat16", 2, 64)
  step_fn, _, _, _, state, batch, rng, _, _ = benchmark.build_step(config, 3, 64, num_devices=1)
  assert {x.dtype for x in jax.tree.leaves(state.params)} == {jnp.dtype(jnp.float32)}
  convolutions = _convolutions(step_fn.lower(state, batch, rng).as_text(dialect="hlo"))
  # 53 forward convolutions (the stem, 16 bottlenecks x 3, 4 projection shortcuts), their
  # 53 weight gradients and 52 input gradients (none for the images): all bfloat16.
  assert convolutions == {"bf16": 53 + 53 + 52}


@pytest.mark.parametrize("backbone, dtype, message", [
    ("vq_encoder", "bfloat16", "model.dtype='bfloat16': model.backbone='vq_encoder' computes in "
                               "float32 only; set model.dtype to 'float32'"),
    ("resnet_small", "float16", "model.dtype='float16': model.backbone='resnet_small' computes "
                                "in bfloat16 or float32 only; set model.dtype to 'bfloat16' "
                                "or 'float32'"),
])
def test_a_dtype_the_backbone_cannot_honour_is_refused_in_one_line(backbone, dtype, message):
  from conftest import tiny_config, typed  # pylint: disable=g-import-not-at-top
  config = tiny_config("unused", "unused")
  config.model.backbone = backbone
  config.model.dtype = dtype
  with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")) as error:
    config_lib.build_model(typed(config), 1, 0)
  assert "\n" not in str(error.value)
  if backbone.startswith("resnet"):
    with pytest.raises(ConfigError, match="computes in bfloat16 or float32 only"):
      config_lib.validate(typed(config), 1)
