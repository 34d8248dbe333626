"""The 3-D CNN video backbones: sizes against the reference implementations, the 3-D
convolution's conventions (time axis, padding, cross-correlation order) and its 2-D
lowering against XLA's 3-D convolution, BatchNorm's batch statistics over time and space,
shapes, gradients, and the refusals."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax import lax

from jax_ssl.backends import XLA
from jax_ssl.models import batch_norm as batch_norm_lib
from jax_ssl.models import video

# torchvision 0.28.0 (with torch 2.13.0+cpu, installed in a separate venv, never imported by
# the library or the tests): sum(p.numel() for p in model.parameters()) less model.fc's for
# torchvision.models.video.r3d_18() (33,371,472 - 205,200) and r2plus1d_18() (31,505,325 -
# 205,200); the totals are also torchvision's documented num_params. The same session copied
# torchvision's weights and BatchNorm statistics into these models and found equal
# evaluation-mode features (max relative difference 3e-7 on [2, 3, 8, 32, 32] clips).
TORCHVISION_R3D_18 = 33_166_272
TORCHVISION_R2PLUS1D_18 = 31_300_125
# CVRL's R3D-50 (TF Model Garden ResNet3D, cvrl_pretrain_k600_200ep.yaml), counted from the
# reference's layer shapes: torchvision's ResNet-50 without fc (23,508,032, the count
# tests/models/test_resnet.py checks) with its 7x7x3x64 stem kernel made 5x7x7x3x64
# (+4 * 9,408) and the first 1x1 conv of every stage-3 and stage-4 block made 3x1x1
# (+2 * in * out each: 512*256 + 5 * 1024*256 + 1024*512 + 2 * 2048*512).
CVRL_R3D_50 = (23_508_032 + 4 * 9_408
               + 2 * (512 * 256 + 5 * 1024 * 256 + 1024 * 512 + 2 * 2048 * 512))


def _num_params(module):
  return sum(x.size for x in jax.tree.leaves(nnx.state(module, nnx.Param)))


@pytest.mark.parametrize("name, expected", [
    ("r3d_18", TORCHVISION_R3D_18),
    ("r2plus1d_18", TORCHVISION_R2PLUS1D_18),
    ("r3d_50", CVRL_R3D_50),
])
def test_parameter_counts_match_the_references(name, expected):
  model = nnx.eval_shape(lambda: video.make_video_backbone(name, in_channels=3,
                                                           rngs=nnx.Rngs(0)))
  assert _num_params(model) == expected
  assert model.feature_dim == (2048 if name == "r3d_50" else 512)


def test_r2plus1d_mid_channels_are_torchvisions():
  # torchvision's layer2[0].conv1: Conv3d(64, 230, (1, 3, 3)) then Conv3d(230, 128, (3, 1, 1))
  assert video.midplanes(64, 128) == 230 and video.midplanes(64, 64) == 144
  model = nnx.eval_shape(lambda: video.make_video_backbone("r2plus1d_18", in_channels=3,
                                                           rngs=nnx.Rngs(0)))
  block = model.blocks[2]
  assert block.conv1.spatial.kernel.shape == (1, 3, 3, 64, 230)
  assert block.conv1.temporal.kernel.shape == (3, 1, 1, 230, 128)
  assert block.conv2.spatial.kernel.shape == (1, 3, 3, 128, 230)  # the block's M_i, twice
  assert model.stem[0].kernel.shape == (1, 7, 7, 3, 45)


def test_2d_lowering_equals_xlas_3d_convolution():
  x = jax.random.normal(jax.random.key(0), (1, 5, 9, 8, 2))
  for kernel_size, strides in (((3, 3, 3), (2, 2, 2)), ((1, 3, 3), (1, 2, 2)),
                               ((3, 1, 1), (2, 1, 1)), ((5, 7, 7), (2, 2, 2))):
    kernel = jax.random.normal(jax.random.key(1), (*kernel_size, 2, 3))
    padding = tuple(((k - 1) // 2,) * 2 for k in kernel_size)
    expected = lax.conv_general_dilated(x, kernel, strides, padding,
                                        dimension_numbers=("NDHWC", "DHWIO", "NDHWC"))
    got = jax.jit(video.conv3d_as_2d, static_argnums=(2, 3))(x, kernel, strides, padding)
    assert got.shape == expected.shape, kernel_size
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4, err_msg=str(kernel_size))


@pytest.mark.parametrize("as_2d", [False, True])
def test_conv3d_time_axis_padding_and_order(as_2d):
  conv = video.Conv3D(2, 3, (3, 3, 3), as_2d=as_2d, rngs=nnx.Rngs(0))
  kernel = conv.kernel[...]
  # One frame: zero padding in time leaves the middle temporal tap, a 2-D convolution.
  frame = jax.random.normal(jax.random.key(0), (2, 1, 6, 6, 2))
  spatial = lax.conv_general_dilated(frame[:, 0], kernel[1], (1, 1), ((1, 1), (1, 1)),
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
  np.testing.assert_allclose(conv(frame)[:, 0], spatial, rtol=1e-5, atol=1e-5)
  # A clip with one non-zero frame k: cross-correlation (torch's) puts kernel[2] at k - 1,
  # kernel[1] at k and kernel[0] at k + 1.
  clip = jnp.zeros((2, 5, 6, 6, 2)).at[:, 2].set(frame[:, 0])
  out = conv(clip)
  for t, tap in ((1, 2), (2, 1), (3, 0)):
    expected = lax.conv_general_dilated(frame[:, 0], kernel[tap], (1, 1), ((1, 1), (1, 1)),
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))
    np.testing.assert_allclose(out[:, t], expected, rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(out[:, 0], 0.0)
  np.testing.assert_array_equal(out[:, 4], 0.0)


def _abstract_features(name, clips_shape, **kwargs):
  """(feature map, features) shapes and dtypes of backbone `name` on clips of `clips_shape`,
  traced without compiling or allocating (jax.eval_shape)."""
  model = nnx.eval_shape(lambda: video.make_video_backbone(name, rngs=nnx.Rngs(0), **kwargs))
  graphdef, state = nnx.split(model)

  def run(state, clips):
    model = nnx.merge(graphdef, state)
    return model.feature_map(clips), model(clips)

  return jax.eval_shape(run, state, jax.ShapeDtypeStruct(clips_shape, jnp.float32))


def test_shapes_and_dtypes_of_every_architecture():
  # torchvision's: stem stride (1, 2, 2), stages 2-4 stride 2 in time and space; CVRL's R3D-50:
  # stem stride (2, 2, 2) and a (1, 2, 2) max-pool, then strides in space only.
  for name, expected_map in (("r3d_18", (1, 2, 14, 14, 512)),
                             ("r2plus1d_18", (1, 2, 14, 14, 512)),
                             ("r3d_50", (1, 8, 7, 7, 2048))):
    feature_map, features = _abstract_features(name, (1, 16, 224, 224, 3), in_channels=3)
    assert feature_map.shape == expected_map, name
    assert features.shape == (1, expected_map[-1]) and features.dtype == jnp.float32, name
  feature_map, features = _abstract_features("video_cnn_small", (1, 16, 64, 64, 1),
                                             in_channels=1)
  assert feature_map.shape == (1, 1, 2, 2, 128) and features.shape == (1, 128)
  # bfloat16 compute: bfloat16 activations, float32 features and parameters.
  feature_map, features = _abstract_features("video_cnn_small", (1, 16, 64, 64, 1),
                                             in_channels=1, dtype="bfloat16")
  assert feature_map.dtype == jnp.bfloat16 and features.dtype == jnp.float32
  model = nnx.eval_shape(lambda: video.make_video_backbone(
      "video_cnn_small", in_channels=1, dtype="bfloat16", rngs=nnx.Rngs(0)))
  assert {x.dtype for x in jax.tree.leaves(nnx.state(model, nnx.Param))} == {
      np.dtype(np.float32)}


def test_batchnorm_statistics_backend_and_gradients():
  class Marked(batch_norm_lib.BatchNorm):
    pass

  # Two stages of video_cnn_small's blocks (a small compile), BatchNorms from a backend.
  architecture = dataclasses.replace(video.BACKBONES["video_cnn_small"], stage_sizes=(1, 1))
  backend = dataclasses.replace(XLA, name="marked", batch_norm=Marked)
  model = video.VideoResNet(architecture, in_channels=1, width=4,
                            layers=video.Layers(backend=backend, as_2d=True), rngs=nnx.Rngs(0))
  norms = [m for _, m in nnx.iter_graph(model) if isinstance(m, batch_norm_lib.BatchNorm)]
  assert len(norms) == 1 + 2 * 4 + 1 and all(isinstance(m, Marked) for m in norms)

  x = jax.random.normal(jax.random.key(0), (4, 3, 8, 8, 1)) * 5 + 3
  model.train()
  pre = model.stem[0](x)
  out = model.stem[1](pre)
  # Train mode: normalised with the moments over (batch, time, height, width); the running
  # mean moves 10% towards them (torchvision's momentum 0.1), as resnet.py's BatchNorm.
  np.testing.assert_allclose(jnp.mean(out, axis=(0, 1, 2, 3)), 0.0, atol=1e-4)
  np.testing.assert_allclose(jnp.var(out, axis=(0, 1, 2, 3)), 1.0, atol=1e-2)
  np.testing.assert_allclose(model.stem[1].mean[...], 0.1 * jnp.mean(pre, axis=(0, 1, 2, 3)),
                             rtol=1e-4, atol=1e-6)
  model.eval()
  before = model.stem[1].mean[...]
  assert not np.allclose(model.stem[1](pre), out)
  np.testing.assert_array_equal(model.stem[1].mean[...], before)

  model.train()
  clips = jax.random.uniform(jax.random.key(1), (2, 4, 16, 16, 1))
  grads = nnx.jit(nnx.grad(lambda model, x: jnp.sum(model(x) ** 2)))(model, clips)
  kernels = [g for path, g in nnx.to_flat_state(grads) if path[-1] == "kernel"]
  assert len(kernels) == 1 + 2 * 2 * 2 + 1  # stem; 2 blocks x 2 (2+1)D convs; 1 projection
  assert all(float(jnp.max(jnp.abs(g[...]))) > 0 for g in kernels)


def test_refusals_are_one_line():
  with pytest.raises(ValueError, match="model.backbone='r3d_19' is not a video backbone"):
    video.make_video_backbone("r3d_19", in_channels=3, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="model.dtype='float16'"):
    video.make_video_backbone("r3d_18", in_channels=3, dtype="float16", rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="conv3d='cudnn'"):
    video.make_video_backbone("r3d_18", in_channels=3, conv3d="cudnn", rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match=r"takes \[B, T, H, W, 1\] clips"):
    _abstract_features("video_cnn_small", (2, 16, 16, 1), in_channels=1)
