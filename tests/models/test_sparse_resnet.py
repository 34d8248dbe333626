"""The ResNets' sparse (masked) mode, SparK's sparse encoder (CNN-JEPA's context encoder):
BatchNorm statistics over the visible positions only (one device and across devices),
masked positions zero and without influence through the whole network, an all-visible mask
equal to the dense forward, and the output grid the masks are drawn on."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.sharding import PartitionSpec

from jax_ssl import backends, sharding
from jax_ssl.backends import cpu_kernels
from jax_ssl.models import batch_norm, resnet


def _numpy_bn(rows, scale, bias, epsilon=1e-5):
  """BatchNorm of a [N, C] set of rows: what SparK's BatchNorm1d of the gathered visible
  rows computes (biased variance for the normalisation)."""
  rows = rows.astype(np.float64)
  mean, var = rows.mean(0), rows.var(0)
  return (rows - mean) / np.sqrt(var + epsilon) * scale + bias, mean, var


def _bn_and_inputs(seed=0, shape=(3, 4, 5, 6)):
  rng = np.random.default_rng(seed)
  x = (rng.normal(size=shape) * 2 + 0.5).astype(np.float32)
  visible = rng.random(shape[:-1]) < 0.4
  bn = resnet.batch_norm(shape[-1], rngs=nnx.Rngs(0))
  bn.scale[...] = jnp.asarray(1 + 0.3 * rng.normal(size=shape[-1]), jnp.float32)
  bn.bias[...] = jnp.asarray(0.2 * rng.normal(size=shape[-1]), jnp.float32)
  return bn, x, visible, rng


def test_masked_batchnorm_is_batchnorm_of_the_visible_rows_and_zero_elsewhere():
  bn, x, visible, rng = _bn_and_inputs()
  residual = rng.normal(size=x.shape).astype(np.float32)
  scale, bias = np.asarray(bn.scale[...]), np.asarray(bn.bias[...])
  bn.train()
  y = np.asarray(bn(jnp.asarray(x), mask=visible, residual=jnp.asarray(residual), relu=True))
  expected, mean, var = _numpy_bn(x[visible], scale, bias)
  np.testing.assert_allclose(y[visible], np.maximum(expected + residual[visible], 0),
                             rtol=1e-5, atol=1e-5)
  assert np.all(y[~visible] == 0)
  # Running averages: 10% of the way from their start (0, 1) to the visible rows' moments.
  np.testing.assert_allclose(bn.mean[...], 0.1 * mean, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(bn.var[...], 0.9 + 0.1 * var, rtol=1e-5)
  # The dense BatchNorm's moments (every position) are not those.
  assert not np.allclose(0.1 * x.reshape(-1, x.shape[-1]).mean(0), bn.mean[...], atol=1e-3)
  # Evaluation mode: normalised by the running averages, still zero where masked.
  bn.eval()
  y = np.asarray(bn(jnp.asarray(x), mask=visible))
  running = (x - np.asarray(bn.mean[...])) / np.sqrt(np.asarray(bn.var[...]) + 1e-5)
  np.testing.assert_allclose(y[visible], (running * scale + bias)[visible], rtol=1e-5,
                             atol=1e-5)
  assert np.all(y[~visible] == 0)


def test_masked_batchnorm_across_devices_counts_the_global_visible_rows():
  # 4 devices, each with its own share of rows and a different number of visible ones: the
  # statistics are those of all visible rows together (a per-device BatchNorm, SparK's
  # default, would differ), and the running averages come out of the shard_map.
  bn, x, visible, _ = _bn_and_inputs(seed=1, shape=(8, 3, 3, 5))
  visible[:2] = True  # device 0 sees every position, device 1 almost none
  visible[2:4] = False
  visible[3, 0, 0] = True
  scale, bias = np.asarray(bn.scale[...]), np.asarray(bn.bias[...])
  mesh = sharding.make_mesh(4)
  bn.train()
  graphdef, state = nnx.split(bn)

  def per_device(x, visible):
    module = nnx.merge(graphdef, state)
    with batch_norm.cross_device(sharding.DATA_AXIS) as running:
      y = module(x, mask=visible)
    return y, batch_norm.collected_values(running)

  y, (mean, var) = jax.jit(jax.shard_map(
      per_device, mesh=mesh, in_specs=PartitionSpec(sharding.DATA_AXIS),
      out_specs=(PartitionSpec(sharding.DATA_AXIS), PartitionSpec()), check_vma=False))(
          jnp.asarray(x), jnp.asarray(visible))
  expected, batch_mean, batch_var = _numpy_bn(x[visible], scale, bias)
  np.testing.assert_allclose(np.asarray(y)[visible], expected, rtol=1e-5, atol=1e-5)
  assert np.all(np.asarray(y)[~visible] == 0)
  np.testing.assert_allclose(mean, 0.1 * batch_mean, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(var, 0.9 + 0.1 * batch_var, rtol=1e-5)


# (net, image size): resnet_small (basic blocks, CIFAR stem) on Fashion-MNIST's 28 px (output
# grid 4x4 of 7 px cells) and 2 stages of bottlenecks with the ImageNet stem (its max-pool)
# and a final 1x1 conv.
NETS = [("small", 28), ("bottleneck", 64)]


def _net(net, backend=None):
  if net == "small":
    model = resnet.make_backbone("resnet_small", width=4, stem="cifar", in_channels=2,
                                 backend=backend, rngs=nnx.Rngs(0))
  else:
    model = resnet.ResNet((1, 1), resnet.Bottleneck, 4, "imagenet", 2, final_features=24,
                          backend=backend, rngs=nnx.Rngs(0))
  model.train()
  return model


@functools.partial(jax.jit, static_argnums=(0, 1))
def _apply(graphdef, method, state, x, mask):
  module = nnx.merge(graphdef, state)
  return getattr(module, method)(x, mask=mask), nnx.state(module, nnx.BatchStat)


def _jitted(model, method="feature_map"):
  """jit of `model.<method>(x, mask=mask)` in train mode from the model's initial state ->
  (output, the BatchNorms' running statistics after the call); one compilation per net,
  method and mask-or-none, shared by the tests."""
  graphdef, state = nnx.split(model)
  return lambda x, mask=None: _apply(graphdef, method, state, x, mask)


@pytest.mark.parametrize("net, size", NETS)
def test_masked_positions_are_zero_and_their_pixels_change_nothing(net, size):
  model = _net(net)
  grid = model.output_grid(size, size)
  keys = jax.random.split(jax.random.key(1), 3)
  images = jax.random.normal(keys[0], (4, size, size, 2))
  visible = jax.random.bernoulli(keys[1], 0.5, (4, *grid))
  pixels = resnet.mask_at(visible, size, size)[..., None]
  # Other content at the masked pixels only.
  other = jnp.where(pixels, images, 5.0 * jax.random.normal(keys[2], images.shape))
  run = _jitted(model)
  features, stats = run(images, visible)
  other_features, other_stats = run(other, visible)
  assert features.shape == (4, *grid, model.feature_dim)
  assert np.all(np.asarray(features)[~np.asarray(visible)] == 0)
  assert np.abs(np.asarray(features)[np.asarray(visible)]).max() > 0
  # No layer lets a masked value through: the output and every BatchNorm's running
  # statistics are the same whatever the masked pixels hold.
  np.testing.assert_array_equal(features, other_features)
  for a, b in zip(jax.tree.leaves(stats), jax.tree.leaves(other_stats)):
    np.testing.assert_array_equal(a, b)
  # The dense model does see them.
  assert not np.allclose(run(images)[0], run(other)[0])


@pytest.mark.parametrize("net, size", NETS)
def test_an_all_visible_mask_is_the_dense_forward(net, size):
  images = jax.random.normal(jax.random.key(2), (4, size, size, 2))
  model = _net(net)
  grid = model.output_grid(size, size)
  run = _jitted(model)
  (sparse, sparse_stats), (dense, dense_stats) = run(images, jnp.ones((4, *grid), bool)), run(images)
  # Equal but for float32 rounding: the masked sums add the same numbers in another order
  # (features of order 1, differences of order 1e-6 after 5 to 9 layers).
  np.testing.assert_allclose(sparse, dense, rtol=1e-5, atol=1e-5)
  for a, b in zip(jax.tree.leaves(sparse_stats), jax.tree.leaves(dense_stats)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  # Pooled under a mask: the mean over the visible positions of the sparse feature map.
  visible = jnp.zeros((4, *grid), bool).at[:, 0, 0].set(True).at[0, 1, 1].set(True)
  fmap, pooled = run(images, visible)[0], _jitted(model, "__call__")(images, visible)[0]
  np.testing.assert_allclose(pooled[1], fmap[1, 0, 0], rtol=1e-6)
  np.testing.assert_allclose(pooled[0], (fmap[0, 0, 0] + fmap[0, 1, 1]) / 2, rtol=1e-5)


def test_the_fused_batchnorm_backend_takes_the_masked_path():
  # cpu_kernels' fused BatchNorm has no mask: a masked call is the base class's sparse mode.
  fused = backends.Backend("fused batch norm", backends.XLA.conv,
                           cpu_kernels.backend(every_op=True).batch_norm)
  images = jax.random.normal(jax.random.key(1), (4, 28, 28, 2))
  visible = jax.random.bernoulli(jax.random.key(4), 0.5, (4, 4, 4))
  np.testing.assert_array_equal(_jitted(_net("small", fused))(images, visible)[0],
                                _jitted(_net("small"))(images, visible)[0])


def test_output_grid_and_mask_at():
  # Abstract modules (nnx.eval_shape): output_grid reads only the architecture.
  cifar = nnx.eval_shape(lambda: resnet.make_backbone("resnet18", width=2, stem="cifar",
                                                      in_channels=1, rngs=nnx.Rngs(0)))
  imagenet = nnx.eval_shape(lambda: resnet.make_backbone("resnet50", width=2, stem="imagenet",
                                                         in_channels=1, rngs=nnx.Rngs(0)))
  # stride 8 (CIFAR stem), 32 (ImageNet stem); 28 px rounds up at each halving
  assert cifar.output_grid(32, 32) == (4, 4) and cifar.output_grid(28, 28) == (4, 4)
  assert imagenet.output_grid(224, 224) == (7, 7) and imagenet.output_grid(96, 64) == (3, 2)
  bottleneck = _net("bottleneck")
  assert bottleneck.output_grid(64, 64) == (8, 8)  # stem 2 x max-pool 2 x one strided stage
  shape = jax.eval_shape(_jitted(bottleneck), jnp.zeros((1, 90, 66, 2)))[0].shape
  assert shape[1:3] == bottleneck.output_grid(90, 66) == (12, 9)
  mask = np.random.default_rng(0).random((2, 4, 3)) < 0.5
  # A multiple of the grid: each cell repeated (SparK's repeat_interleave).
  np.testing.assert_array_equal(resnet.mask_at(jnp.asarray(mask), 8, 9),
                                mask.repeat(2, axis=1).repeat(3, axis=2))
  # 7 rows on 4 cells: 2, 2, 2, 1; 28 rows: 7 each.
  eye = jnp.asarray(np.eye(4, dtype=bool)[None])
  np.testing.assert_array_equal(np.asarray(resnet.mask_at(eye, 7, 4))[0].argmax(1),
                                [0, 0, 1, 1, 2, 2, 3])
  np.testing.assert_array_equal(np.asarray(resnet.mask_at(eye, 28, 4))[0].argmax(1),
                                np.arange(28) // 7)
