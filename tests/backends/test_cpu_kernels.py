"""The cpu_kernels backend's convolutions (jax_ssl/backends/cpu_kernels: C++ kernels,
Winograd and the matrix-product path) against XLA's own convolution, and the rules that pick
them per op."""

from __future__ import annotations

import functools
import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax import lax

from jax_ssl import backends
from jax_ssl.backends import cpu_kernels
from jax_ssl.backends.cpu_kernels import build
from jax_ssl.backends.cpu_kernels import conv as kernel_conv
from jax_ssl.backends.cpu_kernels import winograd
from jax_ssl.models import resnet

NHWC = ("NHWC", "HWIO", "NHWC")

# (batch, height, width, in channels, out channels, kernel, stride, padding)
SHAPES = [
    (4, 12, 12, 16, 16, 3, 1, ((1, 1), (1, 1))),    # the small encoder's stage 1 (row kernel)
    (3, 11, 9, 16, 32, 3, 2, ((1, 1), (1, 1))),     # stride 2, odd sizes (16 -> 32 row kernel)
    (2, 7, 7, 32, 64, 3, 2, ((1, 1), (1, 1))),      # 4 x 4 output: generic blocks only
    (2, 5, 6, 64, 48, 3, 1, ((2, 0), (1, 2))),      # asymmetric padding, 48 output channels
    (2, 9, 9, 16, 32, 1, 2, ((0, 0), (0, 0))),      # 1x1 stride-2 projection shortcut
    (3, 10, 10, 1, 16, 3, 1, ((1, 1), (1, 1))),     # stem: 1 input channel (no input gradient)
    (2, 6, 6, 3, 16, 5, 2, ((2, 2), (2, 2))),       # 5x5, 3 input channels
    (2, 16, 16, 32, 32, 3, 1, ((1, 1), (1, 1))),    # stride 1, 32 -> 32 (row kernel)
]


@pytest.fixture
def kernels_on():
  """Skips without a compiler; the tests then run every op the kernels apply to on them
  (`every_op=True`, not only where the measured rule picks them)."""
  if build.load() is None:
    pytest.skip("no C++ compiler")


def _lax(x, w, stride, padding):
  return lax.conv_general_dilated(x, w, (stride, stride), padding, dimension_numbers=NHWC)


def _kernels(x, w, stride, padding):
  """`conv2d` with every op that applies on the kernels."""
  return kernel_conv.conv2d(x, w, stride, padding, True)


def _assert_equals_xla(conv, shape):
  """`conv(x, w, stride, padding)` against `lax.conv` on random data of `shape`: values and
  the gradients of a nonlinear loss of both inputs. -> (x, w, stride, padding, loss)."""
  n, h, w_, cin, cout, k, stride, padding = shape
  x = jax.random.normal(jax.random.key(0), (n, h, w_, cin))
  w = jax.random.normal(jax.random.key(1), (k, k, cin, cout)) / np.sqrt(k * k * cin)
  probe = jax.random.normal(jax.random.key(2), _lax(x, w, stride, padding).shape)

  def loss(conv):
    return lambda x, w: jnp.sum(jnp.tanh(conv(x, w, stride, padding)) * probe)

  expected = jax.jit(jax.value_and_grad(loss(_lax), argnums=(0, 1)))(x, w)
  got = jax.jit(jax.value_and_grad(loss(conv), argnums=(0, 1)))(x, w)
  np.testing.assert_allclose(conv(x, w, stride, padding), _lax(x, w, stride, padding),
                             rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(got[0], expected[0], rtol=1e-5)
  for g, e in zip(got[1], expected[1]):
    np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5 * float(jnp.max(jnp.abs(e))))
  return x, w, stride, padding, loss


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s[:7])))
def test_conv2d_values_and_gradients_equal_xla(shape, kernels_on):
  x, w, stride, padding, loss = _assert_equals_xla(_kernels, shape)
  # The kernels ran (not XLA's convolution): their custom calls are in the compiled step.
  hlo = jax.jit(jax.grad(loss(_kernels), argnums=(0, 1))).lower(x, w).as_text()
  assert "@JaxSslConvForward(" in hlo and "@JaxSslConvWeightGrad(" in hlo
  if x.shape[-1] % 16 == 0:  # input gradient: stride 1 as a forward convolution, stride 2 its own kernel
    assert hlo.count("@JaxSslConvForward(") == 2 if stride == 1 else "@JaxSslConvInputGrad(" in hlo


def test_kernels_are_deterministic(kernels_on):
  x = jax.random.normal(jax.random.key(0), (8, 14, 14, 16))
  w = jax.random.normal(jax.random.key(1), (3, 3, 16, 32))
  grad = jax.jit(jax.grad(lambda x, w: jnp.sum(_kernels(x, w, 1, ((1, 1), (1, 1)))**2),
                          argnums=(0, 1)))
  first, second = grad(x, w), grad(x, w)
  for a, b in zip(first, second):
    np.testing.assert_array_equal(a, b)


def test_resnet_step_equals_xla_path(kernels_on):
  """The small encoder's forward pass and every parameter gradient, kernels vs XLA (the
  plain BatchNorm in both: the convolutions alone)."""
  kernel_convs = backends.Backend("kernel convolutions", cpu_kernels.backend(every_op=True).conv,
                                  backends.XLA.batch_norm)
  images = jax.random.normal(jax.random.key(3), (6, 28, 28, 1))

  def step(backend):
    model = resnet.ResNet([1, 1, 1, 1], resnet.BasicBlock, 16, "cifar", 1, backend=backend,
                          rngs=nnx.Rngs(0))
    graphdef, state = nnx.split(model)

    def loss(state, images):
      return jnp.sum(jnp.sin(nnx.merge(graphdef, state)(images)))

    hlo = jax.jit(jax.grad(loss)).lower(state, images).as_text()
    return jax.jit(jax.value_and_grad(loss))(state, images), hlo

  (got, got_hlo), (expected, expected_hlo) = step(kernel_convs), step(backends.XLA)
  assert "JaxSslConv" in got_hlo and "JaxSslConv" not in expected_hlo
  np.testing.assert_allclose(got[0], expected[0], rtol=1e-5)
  for g, e in zip(jax.tree.leaves(got[1]), jax.tree.leaves(expected[1])):
    np.testing.assert_allclose(g, e, rtol=1e-3, atol=1e-4 * (float(jnp.max(jnp.abs(e))) + 1e-6))


def test_grouped_convolutions_reach_the_kernels_as_dense_ones(kernels_on):
  # Grouped convolutions are rewritten as dense block-diagonal ones, which the kernels run.
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.normal(size=(2, 8, 8, 16)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(3, 3, 8, 16)), jnp.float32)
  args = dict(window_strides=(1, 1), padding=((1, 1), (1, 1)), dimension_numbers=NHWC,
              feature_group_count=2)
  conv = kernel_conv.KernelConv(every_op=True)
  hlo = jax.jit(lambda x, w: conv(x, w, **args)).lower(x, w).as_text()
  assert "JaxSslConv" in hlo and "feature_group_count = 2" not in hlo
  np.testing.assert_allclose(conv(x, w, **args), lax.conv_general_dilated(x, w, **args),
                             rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("case", ["dilation", "bfloat16", "same", "nchw"])
def test_unsupported_convolutions_stay_on_xla(case, kernels_on):
  x = jnp.ones((2, 8, 8, 16))
  w = jnp.ones((3, 3, 16, 16))
  args = dict(window_strides=(1, 1), padding=((1, 1), (1, 1)), dimension_numbers=NHWC)
  if case == "dilation":
    args["rhs_dilation"] = (2, 2)
  elif case == "bfloat16":
    x, w = x.astype(jnp.bfloat16), w.astype(jnp.bfloat16)
  elif case == "same":
    args["padding"] = "SAME"
  else:
    x, args["dimension_numbers"] = jnp.ones((2, 16, 8, 8)), ("NCHW", "HWIO", "NCHW")
  conv = kernel_conv.KernelConv(every_op=True)
  hlo = jax.jit(lambda x, w: conv(x, w, **args)).lower(x, w).as_text()
  assert "JaxSslConv" not in hlo and "convolution" in hlo
  np.testing.assert_allclose(conv(x, w, **args), lax.conv_general_dilated(x, w, **args))


def test_without_a_compiler_convolutions_stay_on_xla(monkeypatch, caplog):
  monkeypatch.setenv("CXX", "no-such-compiler-jax-ssl")
  build.load.cache_clear()
  try:
    with caplog.at_level(logging.WARNING):
      assert build.load() is None
    assert "no C++ compiler" in caplog.text and "install g++" in caplog.text
    x, w = jnp.ones((2, 8, 8, 16)), jnp.ones((3, 3, 16, 16))
    hlo = jax.jit(lambda x, w: _kernels(x, w, 1, ((1, 1), (1, 1)))).lower(x, w).as_text()
    assert "JaxSslConv" not in hlo
    # so backend "auto" selects xla, but on an AVX2 CPU without AVX-512, where the backend
    # runs no kernel (its fused BatchNorm and `use_matmul` need no compiler)
    assert cpu_kernels.applies_to_this_machine() == build.has_avx2_only()
  finally:
    build.load.cache_clear()


def test_library_name_follows_source_compiler_and_cpu(monkeypatch, tmp_path):
  if build.compiler() is None:
    pytest.skip("no C++ compiler")
  monkeypatch.setenv("JAX_SSL_KERNEL_CACHE", str(tmp_path))
  path = build.library_path(build.compiler())
  assert path.startswith(str(tmp_path)) and path.endswith(".so")
  monkeypatch.setattr(build, "_cpu_id", lambda: "another cpu")
  assert build.library_path(build.compiler()) != path


def test_measured_rule_picks_the_kernels_where_they_won(monkeypatch):
  """The backend's rule: kernels where tools/conv_layers.py measured them faster, on AVX-512
  CPUs only; with `every_op` on any CPU; inside `xla_convolutions()` never."""
  if build.load() is None:
    pytest.skip("no C++ compiler")
  measured = functools.partial(kernel_conv.choose, every_op=False)
  monkeypatch.setattr(build, "has_avx512", lambda: True)
  stage1, last = ((512, 28, 28, 16), (3, 3, 16, 16)), ((256, 4, 4, 512), (3, 3, 512, 512))
  assert all(measured(op, *stage1, 1) for op in ("forward", "input_grad", "weight_grad"))
  assert measured("forward", *last, 1)
  assert not measured("input_grad", *last, 1)
  assert not measured("weight_grad", *last, 1)
  assert not measured("input_grad", (512, 28, 28, 1), (3, 3, 1, 16), 1)  # 1 channel
  monkeypatch.setattr(build, "has_avx512", lambda: False)
  assert not measured("forward", *stage1, 1)
  assert kernel_conv.choose("forward", *stage1, 1, every_op=True)
  with backends.xla_convolutions():
    assert not kernel_conv.choose("forward", *stage1, 1, every_op=True)


@pytest.mark.parametrize("shape", [(2, 9, 11, 3, 5, ((1, 1), (1, 1))),
                                   (2, 6, 5, 4, 6, ((2, 0), (1, 2))),
                                   (1, 4, 4, 8, 8, ((0, 0), (0, 0)))],
                         ids=["odd-sizes", "asymmetric-padding", "no-padding"])
def test_winograd_convolution_and_weight_gradient_equal_xla(shape):
  n, h, w_, cin, cout, padding = shape
  x = jax.random.normal(jax.random.key(0), (n, h, w_, cin))
  w = jax.random.normal(jax.random.key(1), (3, 3, cin, cout))
  y = _lax(x, w, 1, padding)
  g = jax.random.normal(jax.random.key(2), y.shape)
  scale = float(jnp.max(jnp.abs(y)))
  np.testing.assert_allclose(winograd.conv3x3(x, w, padding), y, atol=2e-5 * scale)
  dw = jax.vjp(lambda w: _lax(x, w, 1, padding), w)[1](g)[0]
  np.testing.assert_allclose(winograd.weight_grad3x3(x, g, padding), dw,
                             atol=2e-5 * float(jnp.max(jnp.abs(dw))))


def test_wide_layers_take_winograd_for_all_three_ops(kernels_on):
  x = jax.random.normal(jax.random.key(0), (2, 6, 7, 256))
  w = jax.random.normal(jax.random.key(1), (3, 3, 256, 272)) / np.sqrt(9 * 256)
  padding = ((1, 1), (1, 1))
  probe = jax.random.normal(jax.random.key(2), _lax(x, w, 1, padding).shape)

  def loss(conv):
    return lambda x, w: jnp.sum(jnp.tanh(conv(x, w, 1, padding)) * probe)

  expected = jax.jit(jax.value_and_grad(loss(_lax), argnums=(0, 1)))(x, w)
  got = jax.jit(jax.value_and_grad(loss(_kernels), argnums=(0, 1)))(x, w)
  np.testing.assert_allclose(got[0], expected[0], rtol=1e-5)
  for g, e in zip(got[1], expected[1]):
    np.testing.assert_allclose(g, e, atol=3e-5 * float(jnp.max(jnp.abs(e))))
  jaxpr = str(jax.make_jaxpr(jax.grad(loss(_kernels), argnums=(0, 1)))(x, w))
  assert "conv_general_dilated" not in jaxpr and "JaxSsl" not in jaxpr  # Winograd, all three


def test_winograd_rule(monkeypatch):
  measured = functools.partial(kernel_conv.use_winograd, every_op=False)
  monkeypatch.setattr(build, "has_avx512", lambda: True)
  same = ((1, 1), (1, 1))
  assert measured((256, 8, 8, 256), (3, 3, 256, 256), 1, same)
  assert measured((256, 4, 4, 512), (3, 3, 512, 512), 1, same)
  assert not measured((256, 16, 16, 128), (3, 3, 128, 128), 1, same)
  assert not measured((256, 8, 8, 256), (3, 3, 256, 512), 2, same)  # stride 2
  assert not measured((256, 8, 8, 256), (1, 1, 256, 256), 1, ((0, 0), (0, 0)))
  assert not measured((256, 8, 8, 256), (3, 3, 256, 256), 1, ((3, 1), (1, 1)))
  monkeypatch.setattr(build, "has_avx512", lambda: False)
  assert not measured((256, 8, 8, 256), (3, 3, 256, 256), 1, same)
  assert kernel_conv.use_winograd((256, 8, 8, 256), (3, 3, 256, 256), 1, same, every_op=True)
  with backends.xla_convolutions():
    assert not kernel_conv.use_winograd((256, 8, 8, 256), (3, 3, 256, 256), 1, same,
                                        every_op=True)


def test_grouped_convolution_runs_as_a_dense_block_diagonal_one_with_equal_values_and_grads():
  # KernelConv rewrites feature_group_count > 1 (XLA:CPU's slow path) as a dense convolution
  # with a block-diagonal kernel: the same outputs and the same gradients w.r.t. input and
  # (grouped) kernel as lax's grouped convolution; the dense kernel is zero off its blocks.
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(2, 5, 5, 8)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(3, 3, 2, 12)), jnp.float32)  # 4 groups: 2 in, 3 out each
  dims = ("NHWC", "HWIO", "NHWC")
  dense = kernel_conv.block_diagonal_kernel(w, 4)
  assert dense.shape == (3, 3, 8, 12)
  np.testing.assert_array_equal(dense[:, :, 2:4, 3:6], w[:, :, :, 3:6])
  assert float(jnp.abs(dense[:, :, 0:2, 3:6]).max()) == 0.0
  grouped = lambda x, w: jax.lax.conv_general_dilated(
      x, w, (1, 1), ((1, 1), (1, 1)), dimension_numbers=dims, feature_group_count=4)
  ours = lambda x, w: kernel_conv.KernelConv()(
      x, w, (1, 1), ((1, 1), (1, 1)), dimension_numbers=jax.lax.conv_dimension_numbers(
          x.shape, w.shape, dims), feature_group_count=4)
  np.testing.assert_allclose(ours(x, w), grouped(x, w), rtol=1e-5, atol=1e-5)
  loss = lambda f: lambda x, w: jnp.sum(jnp.sin(f(x, w)))
  for a, b in zip(jax.grad(loss(ours), (0, 1))(x, w), jax.grad(loss(grouped), (0, 1))(x, w)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
  # The lowered program has no grouped convolution left.
  assert "feature_group_count = 4" in jax.jit(grouped).lower(x, w).as_text()
  assert "feature_group_count = 4" not in jax.jit(ours).lower(x, w).as_text()


# (batch, height, width, in channels, out channels, kernel, stride, padding): tiny outputs.
MATMUL_SHAPES = [
    (5, 2, 2, 32, 16, 3, 1, ((1, 1), (1, 1))),   # the small encoder's last layer on 12 px views
    (5, 3, 3, 16, 32, 3, 2, ((1, 1), (1, 1))),   # its strided 3x3 -> 2x2 layer
    (3, 4, 3, 8, 12, 3, 2, ((2, 0), (1, 2))),    # asymmetric padding, non-square input
    (2, 2, 2, 1, 16, 5, 1, ((2, 2), (2, 2))),    # 5x5 kernel, one input channel
]


@pytest.mark.parametrize("shape", MATMUL_SHAPES, ids=lambda s: "x".join(map(str, s[:7])))
def test_matmul_convolution_values_and_gradients_equal_xla(shape):
  _assert_equals_xla(kernel_conv.conv2d_matmul, shape)


def test_matmul_rule_and_routing(monkeypatch):
  """`use_matmul`: kernels above 1x1 with outputs of 4 pixels or fewer, on CPUs without
  AVX-512, never with `every_op`; KernelConv then computes the layer as a product (no
  convolution in its HLO), inside `xla_convolutions()` never; and `applies` there never
  loads (compiles) the kernel library, which `choose` would not use. With several devices
  it stands aside, as the kernels do (measured on one)."""
  rule = functools.partial(kernel_conv.use_matmul, every_op=False)
  pad1 = ((1, 1), (1, 1))
  monkeypatch.setattr(build, "has_avx512", lambda: False)
  assert rule((1024, 2, 2, 128), (3, 3, 128, 128), 1, pad1)      # 2x2 output
  assert rule((1024, 3, 3, 64), (3, 3, 64, 128), 2, pad1)        # 3x3 -> 2x2
  assert not rule((1024, 3, 3, 64), (3, 3, 64, 64), 1, pad1)     # 3x3 output: XLA won
  assert not rule((1024, 2, 2, 64), (1, 1, 64, 64), 1, ((0, 0), (0, 0)))  # 1x1: a product already
  assert not kernel_conv.use_matmul((8, 2, 2, 8), (3, 3, 8, 8), 1, pad1, every_op=True)
  conv = nnx.Conv(16, 16, (3, 3), padding=1, rngs=nnx.Rngs(0),
                  conv_general_dilated=kernel_conv.KernelConv())
  x = jax.random.normal(jax.random.key(0), (4, 2, 2, 16))
  if jax.device_count() > 1:  # several devices (the suite's 8): it stands aside, as the kernels
    assert "convolution" in jax.jit(lambda x: conv(x)).lower(x).as_text()
  monkeypatch.setattr(jax, "device_count", lambda: 1)
  hlo = jax.jit(lambda x: conv(x)).lower(x).as_text()
  assert "convolution" not in hlo and "dot_general" in hlo
  plain = nnx.Conv(16, 16, (3, 3), padding=1, rngs=nnx.Rngs(0))
  np.testing.assert_allclose(conv(x), plain(x), rtol=1e-5, atol=1e-5)
  with backends.xla_convolutions():
    assert "convolution" in jax.jit(lambda x: conv(x)).lower(x).as_text()
  monkeypatch.setattr(build, "load", lambda: pytest.fail("the library was loaded"))
  wide = jnp.ones((4, 12, 12, 16))
  assert "convolution" in jax.jit(lambda x: conv(x)).lower(wide).as_text()
  monkeypatch.setattr(build, "has_avx512", lambda: True)
  assert not rule((1024, 2, 2, 128), (3, 3, 128, 128), 1, pad1)
