"""3-D CNN video backbones in Flax NNX: R3D-18, R(2+1)D-18, R3D-50 and a small CPU encoder.

Clips are float [B, T, H, W, C] (time first); every backbone returns float32 [B, feature_dim]
features, the global average over time and space of its last feature map, like the image
ResNets (models/resnet.py), so every method and the evaluation take a video backbone by name.

Conventions are resnet.py's: bias-free convolutions with symmetric padding (k - 1) // 2 per
axis, as PyTorch pads, and Kaiming-normal (fan_out) kernels; every convolution is followed by
resnet.py's BatchNorm (models/batch_norm.py: global batch statistics across devices,
torchvision's momentum and epsilon, the residual add and ReLU taken in its call) from the
speed `backend`; `dtype` is the compute dtype (bfloat16 convolutions and activations with
float32 parameters, statistics and pooled features). The convolutions are XLA's 3-D
`lax.conv_general_dilated` with ("NDHWC", "DHWIO", "NDHWC"), or the same convolution as 2-D
ones (`conv3d_as_2d`, chosen at build time: `make_video_backbone`'s `conv3d`, by default on
the CPU platform), which XLA:CPU runs 5-10x faster (a (3, 3, 3) 16 -> 16 channel layer on
[32, 16, 16, 16, 16]: 0.81 s forward + backward as a 3-D convolution, 0.19 s as 2-D ones, one
core of the loaded 2-core development machine). Only the BatchNorms come from the speed
backend: the `cpu_kernels` backend's convolution kernels are 2-D layers of their own
parameters, and the parameters here are the same whatever computes them. No BatchNorm
gamma is zero-initialised (resnet.py does not; torchvision's video ResNets default to
zero_init_residual=False).

The architectures, each from its reference:

  * `r3d_18`, `r2plus1d_18`: torchvision's `r3d_18` / `r2plus1d_18`
    (torchvision/models/video/resnet.py, Tran et al. 2018) less the fc layer. Stem
    (3, 7, 7) stride (1, 2, 2), no max-pool (R(2+1)D: (1, 7, 7) to 45 channels, BN, ReLU,
    then (3, 1, 1) to 64); four stages of two basic blocks, 64-512 channels; the first
    block of stages 2-4 strides 2 in time, height and width, and its shortcut is a
    1x1x1 conv of stride (2, 2, 2) + BN. R(2+1)D factorises every 3x3x3 convolution into
    (1, 3, 3) spatial (spatial stride) -> BN -> ReLU -> (3, 1, 1) temporal (temporal
    stride) through M_i = floor(27 N_in N_out / (9 N_in + 3 N_out)) mid channels (the
    parameter count of the 3-D kernel), computed from the block's input and output widths
    and used for both of its convolutions, as torchvision's `BasicBlock` does.
  * `r3d_50`: the 3-D ResNet-50 of CVRL (Qian et al. 2021) as TF Model Garden builds it
    (official/vision/modeling/backbones/resnet_3d.py `ResNet3D`, nn_blocks_3d.py
    `BottleneckBlock3D`) with the config of official/projects/video_ssl/configs/experiments/
    cvrl_pretrain_k600_200ep.yaml: stem (5, 7, 7) stride (2, 2, 2) + BN + ReLU, max-pool
    (1, 3, 3) stride (1, 2, 2); bottleneck stages [3, 4, 6, 3] whose first convolution is
    temporal, (k, 1, 1) with k = 1, 1, 3, 3 per stage (the "temporal_kernel_sizes"
    [1]*3, [1]*4, [3]*6, [3]*3), then (1, 3, 3) with the spatial stride (2 from stage 2),
    then 1x1x1 to 4x; temporal strides 1 everywhere after the stem. Deviations: symmetric
    padding (TF's 'same' pads a stride-2 layer one more at the end), resnet.py's BatchNorm
    momentum 0.9 / epsilon 1e-5 instead of the reference's 0.99 / 1e-3 (the experiment files
    can say which); a shortcut with a strided 1x1x1 conv + BN wherever the shape changes (the
    reference's max-pool shortcut for an unchanged width with a stride is unreachable in
    ResNet-50).
  * `video_cnn_small`: for 16 x 64 x 64 x 1 Moving Fashion-MNIST clips on a 2-core CPU. An
    R(2+1)D with one basic block per stage (widths 16, 32, 64, 128 at width 16; feature
    dim 8x width; 0.78M parameters) whose stem is (3, 5, 5) stride (2, 2, 2) + BN + ReLU
    (CVRL's temporal stride 2) and a (1, 3, 3) stride (2, 2) max-pool: the stages start at
    8 x 16 x 16 and stride 2 in time and space as torchvision's, down to 1 x 2 x 2. Forward
    + backward of 32 such clips (jitted, 2-D lowering, train mode) took 0.28-0.35 s on one
    core of the 2-core AMD EPYC development machine (9-11 ms a clip; resnet_small: 0.8 ms a
    28 x 28 image, measured alike); 23 ms with a (1, 2, 2) stem stride, so the stem also
    strides in time.

`width` scales every architecture's channels (None: 64, or 16 for `video_cnn_small`); the
R(2+1)D stem's 45 mid channels scale with it (45 * width // 64).

References:
  Tran et al., "A Closer Look at Spatiotemporal Convolutions for Action Recognition", CVPR
  2018 (R3D, R(2+1)D). Hara et al., "Can Spatiotemporal 3D CNNs Retrace the History of 2D
  CNNs and ImageNet?", CVPR 2018. Qian et al., "Spatiotemporal Contrastive Video
  Representation Learning", CVPR 2021 (CVRL; R3D-50). Feichtenhofer et al., "SlowFast
  Networks for Video Recognition", ICCV 2019 (the temporal-kernel bottleneck, its "Slow"
  pathway).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax

from jax_ssl import backends
from jax_ssl.backends import Backend
from jax_ssl.models import resnet

_KAIMING = nnx.initializers.variance_scaling(2.0, "fan_out", "normal")
DTYPES = resnet.DTYPES
_DIMENSION_NUMBERS = ("NDHWC", "DHWIO", "NDHWC")


def conv3d_as_2d(x: jax.Array, kernel: jax.Array, strides: tuple[int, int, int],
                 padding: tuple[tuple[int, int], ...]) -> jax.Array:
  """The 3-D convolution `lax.conv_general_dilated(x, kernel, strides, padding,
  ("NDHWC", "DHWIO", "NDHWC"))` computed with 2-D convolutions, which XLA:CPU runs about 5-10x
  faster than its 3-D ones (tests/models/test_video.py checks the values against the 3-D
  convolution): a (kt, 1, 1) kernel with no spatial stride is a 2-D convolution over the
  (time, height * width) plane; any other kernel is the sum over dt of kt 2-D convolutions of
  the frames t * stride + dt (time-padded) with kernel[dt], the frames folded into the batch
  (one 2-D convolution when kt = 1: R(2+1)D's spatial convolutions)."""
  batch, frames, height, width, channels = x.shape
  kt, kh, kw = kernel.shape[:3]
  st, sh, sw = strides
  dimension_numbers = ("NHWC", "HWIO", "NHWC")
  if kh == kw == 1 and sh == sw == 1:
    y = lax.conv_general_dilated(x.reshape(batch, frames, height * width, channels),
                                 kernel.reshape(kt, 1, *kernel.shape[3:]), (st, 1),
                                 (padding[0], (0, 0)), dimension_numbers=dimension_numbers)
    return y.reshape(batch, y.shape[1], height, width, y.shape[-1])
  if padding[0] != (0, 0):
    x = jnp.pad(x, ((0, 0), padding[0], (0, 0), (0, 0), (0, 0)))
  out_frames = (x.shape[1] - kt) // st + 1
  y = None
  for dt in range(kt):
    frames_dt = x[:, dt:dt + st * (out_frames - 1) + 1:st]
    term = lax.conv_general_dilated(
        frames_dt.reshape(batch * out_frames, height, width, channels), kernel[dt], (sh, sw),
        padding[1:], dimension_numbers=dimension_numbers)
    y = term if y is None else y + term
  return y.reshape(batch, out_frames, *y.shape[1:])


class Conv3D(nnx.Module):
  """Bias-free 3-D convolution, symmetric padding (k - 1) // 2 per axis, float32 kernel
  [kt, kh, kw, in, out] (Kaiming fan_out: fan_out = kt * kh * kw * out, as torch's
  kaiming_normal_ on a Conv3d), computed in `dtype`; `as_2d`: through `conv3d_as_2d` (the
  same values and parameters; `make_video_backbone`'s `conv3d` chooses)."""

  def __init__(self, in_features: int, out_features: int, kernel_size: tuple[int, int, int],
               strides: tuple[int, int, int] = (1, 1, 1), *, dtype=jnp.float32,
               as_2d: bool = False, rngs: nnx.Rngs):
    self.kernel = nnx.Param(_KAIMING(rngs.params(), (*kernel_size, in_features, out_features),
                                     jnp.float32))
    self.strides = tuple(strides)
    self.padding = tuple(((k - 1) // 2, (k - 1) // 2) for k in kernel_size)
    self.dtype, self.as_2d = dtype, as_2d

  def __call__(self, x: jax.Array) -> jax.Array:
    x, kernel = x.astype(self.dtype), self.kernel[...].astype(self.dtype)
    if self.as_2d:
      return conv3d_as_2d(x, kernel, self.strides, self.padding)
    return lax.conv_general_dilated(x, kernel, self.strides, self.padding,
                                    dimension_numbers=_DIMENSION_NUMBERS)


def midplanes(in_features: int, out_features: int) -> int:
  """R(2+1)D's mid channels for a 3x3x3 conv in_features -> out_features: as many as keep
  the parameter count of the full 3-D kernel (torchvision's `BasicBlock` formula)."""
  return (in_features * out_features * 27) // (in_features * 9 + 3 * out_features)


@dataclasses.dataclass(frozen=True)
class Layers:
  """How a video backbone builds its layers: the compute `dtype`, the BatchNorms' speed
  `backend` (None: `backends.current()`) and whether convolutions run `as_2d`."""

  dtype: Any = jnp.float32
  backend: Backend | None = None
  as_2d: bool = False

  def conv(self, in_features: int, out_features: int, kernel_size: tuple[int, int, int],
           strides: tuple[int, int, int] = (1, 1, 1), *, rngs: nnx.Rngs) -> Conv3D:
    return Conv3D(in_features, out_features, kernel_size, strides, dtype=self.dtype,
                  as_2d=self.as_2d, rngs=rngs)

  def batch_norm(self, features: int, *, rngs: nnx.Rngs):
    """resnet.py's BatchNorm (global statistics; takes the residual and ReLU)."""
    return resnet.batch_norm(features, dtype=self.dtype, backend=self.backend, rngs=rngs)


class Conv2Plus1D(nnx.Module):
  """(1, 3, 3) spatial conv (spatial stride) -> BN -> ReLU -> (3, 1, 1) temporal conv
  (temporal stride): torchvision's `Conv2Plus1D`."""

  def __init__(self, in_features: int, out_features: int, mid_features: int, stride: int, *,
               layers: Layers, rngs: nnx.Rngs):
    self.spatial = layers.conv(in_features, mid_features, (1, 3, 3), (1, stride, stride),
                               rngs=rngs)
    self.bn = layers.batch_norm(mid_features, rngs=rngs)
    self.temporal = layers.conv(mid_features, out_features, (3, 1, 1), (stride, 1, 1),
                                rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.temporal(self.bn(self.spatial(x), relu=True))


def _projection(in_features: int, out_features: int, strides: tuple[int, int, int], *,
                layers: Layers, rngs: nnx.Rngs) -> nnx.Sequential | None:
  """1x1x1 conv + BatchNorm where the residual changes shape, else None."""
  if strides == (1, 1, 1) and in_features == out_features:
    return None
  return nnx.Sequential(layers.conv(in_features, out_features, (1, 1, 1), strides, rngs=rngs),
                        layers.batch_norm(out_features, rngs=rngs))


class BasicBlock3D(nnx.Module):
  """Two 3x3x3 (or R(2+1)D-factorised) convolutions with a residual connection; the first
  strides `stride` in time, height and width (torchvision's video `BasicBlock`)."""
  expansion = 1

  def __init__(self, in_features: int, features: int, stride: int, *, factorized: bool,
               layers: Layers, rngs: nnx.Rngs):
    if factorized:
      mid = midplanes(in_features, features)
      self.conv1 = Conv2Plus1D(in_features, features, mid, stride, layers=layers, rngs=rngs)
      self.conv2 = Conv2Plus1D(features, features, mid, 1, layers=layers, rngs=rngs)
    else:
      self.conv1 = layers.conv(in_features, features, (3, 3, 3), (stride,) * 3, rngs=rngs)
      self.conv2 = layers.conv(features, features, (3, 3, 3), rngs=rngs)
    self.bn1 = layers.batch_norm(features, rngs=rngs)
    self.bn2 = layers.batch_norm(features, rngs=rngs)
    self.shortcut = nnx.data(_projection(in_features, features, (stride,) * 3, layers=layers,
                                         rngs=rngs))

  def __call__(self, x: jax.Array) -> jax.Array:
    residual = x if self.shortcut is None else self.shortcut(x)
    y = self.bn1(self.conv1(x), relu=True)
    return self.bn2(self.conv2(y), residual=residual, relu=True)


class Bottleneck3D(nnx.Module):
  """(kt, 1, 1) temporal -> (1, 3, 3) spatial (strided) -> 1x1x1 to 4x, with a residual:
  TF Model Garden's `BottleneckBlock3D` (CVRL's R3D-50)."""
  expansion = 4

  def __init__(self, in_features: int, features: int, stride: int, *, temporal_kernel: int,
               temporal_stride: int = 1, layers: Layers, rngs: nnx.Rngs):
    out_features = features * self.expansion
    self.conv1 = layers.conv(in_features, features, (temporal_kernel, 1, 1),
                             (temporal_stride, 1, 1), rngs=rngs)
    self.bn1 = layers.batch_norm(features, rngs=rngs)
    self.conv2 = layers.conv(features, features, (1, 3, 3), (1, stride, stride), rngs=rngs)
    self.bn2 = layers.batch_norm(features, rngs=rngs)
    self.conv3 = layers.conv(features, out_features, (1, 1, 1), rngs=rngs)
    self.bn3 = layers.batch_norm(out_features, rngs=rngs)
    self.shortcut = nnx.data(_projection(in_features, out_features,
                                         (temporal_stride, stride, stride), layers=layers,
                                         rngs=rngs))

  def __call__(self, x: jax.Array) -> jax.Array:
    residual = x if self.shortcut is None else self.shortcut(x)
    y = self.bn1(self.conv1(x), relu=True)
    y = self.bn2(self.conv2(y), relu=True)
    return self.bn3(self.conv3(y), residual=residual, relu=True)


@dataclasses.dataclass(frozen=True)
class Architecture:
  """A video ResNet: `stem` ("r3d", "r2plus1d", "cvrl" or "small": the module docstring),
  `block` ("basic", "basic_2plus1d" or "bottleneck"), blocks per stage, the default width,
  and for bottlenecks the temporal kernel of each stage's blocks' first convolution."""

  stem: str
  block: str
  stage_sizes: tuple[int, ...]
  width: int
  temporal_kernels: tuple[int, ...] = ()


BACKBONES: dict[str, Architecture] = {
    "r3d_18": Architecture("r3d", "basic", (2, 2, 2, 2), 64),
    "r2plus1d_18": Architecture("r2plus1d", "basic_2plus1d", (2, 2, 2, 2), 64),
    # cvrl_pretrain_k600_200ep.yaml: temporal_kernel_sizes (1,)*3, (1,)*4, (3,)*6, (3,)*3
    "r3d_50": Architecture("cvrl", "bottleneck", (3, 4, 6, 3), 64, (1, 1, 3, 3)),
    "video_cnn_small": Architecture("small", "basic_2plus1d", (1, 1, 1, 1), 16),
}
CONV3D = ("auto", "native", "as_2d")


class VideoResNet(nnx.Module):
  """Backbone: stem, stages of residual blocks, global average pooling over time and space
  -> float32 [B, feature_dim] (module docstring for each architecture)."""

  def __init__(self, architecture: Architecture, *, in_channels: int, width: int,
               layers: Layers = Layers(), rngs: nnx.Rngs):
    self.architecture, self.in_channels, self.dtype = architecture, in_channels, layers.dtype
    conv, bn = functools.partial(layers.conv, rngs=rngs), functools.partial(
        layers.batch_norm, rngs=rngs)
    stem = architecture.stem
    if stem == "r3d":
      self.stem = nnx.List([conv(in_channels, width, (3, 7, 7), (1, 2, 2)), bn(width)])
    elif stem == "r2plus1d":
      stem_mid = max(1, 45 * width // 64)  # torchvision's R2Plus1dStem: 45 at width 64
      self.stem = nnx.List([conv(in_channels, stem_mid, (1, 7, 7), (1, 2, 2)), bn(stem_mid),
                            conv(stem_mid, width, (3, 1, 1)), bn(width)])
    elif stem == "cvrl":
      self.stem = nnx.List([conv(in_channels, width, (5, 7, 7), (2, 2, 2)), bn(width)])
    elif stem == "small":
      self.stem = nnx.List([conv(in_channels, width, (3, 5, 5), (2, 2, 2)), bn(width)])
    else:
      raise ValueError(f"stem={stem!r}; use 'r3d', 'r2plus1d', 'cvrl' or 'small'")
    # The max-pool after the stem: CVRL's (1, 3, 3) stride (1, 2, 2), and the small model's.
    self.stem_pool = stem in ("cvrl", "small")
    blocks = []
    in_features = width
    for stage, num_blocks in enumerate(architecture.stage_sizes):
      features = width * 2**stage
      for index in range(num_blocks):
        stride = 2 if stage > 0 and index == 0 else 1
        if architecture.block == "bottleneck":
          block = Bottleneck3D(in_features, features, stride, layers=layers, rngs=rngs,
                               temporal_kernel=architecture.temporal_kernels[stage])
        else:
          block = BasicBlock3D(in_features, features, stride, layers=layers, rngs=rngs,
                               factorized=architecture.block == "basic_2plus1d")
        blocks.append(block)
        in_features = features * block.expansion
    self.blocks = nnx.List(blocks)
    self.feature_dim = in_features

  def feature_map(self, clips: jax.Array) -> jax.Array:
    """[B, T, H, W, C] -> the last feature map [B, t, h, w, feature_dim] (compute dtype)."""
    if clips.ndim != 5 or clips.shape[-1] != self.in_channels:
      raise ValueError(f"clips of shape {clips.shape}; this video backbone takes [B, T, H, W, "
                       f"{self.in_channels}] clips (time first)")
    x = clips
    for index in range(0, len(self.stem), 2):
      x = self.stem[index + 1](self.stem[index](x), relu=True)
    if self.stem_pool:
      x = nnx.max_pool(x, (1, 3, 3), strides=(1, 2, 2), padding=((0, 0), (1, 1), (1, 1)))
    for block in self.blocks:
      x = block(x)
    return x

  def __call__(self, clips: jax.Array) -> jax.Array:
    """[B, T, H, W, C] clips -> float32 [B, feature_dim]: the mean over time and space."""
    return jnp.mean(self.feature_map(clips).astype(jnp.float32), axis=(1, 2, 3))


def make_video_backbone(name: str, *, in_channels: int, width: int | None = None,
                        dtype: Any = jnp.float32, backend: Backend | None = None,
                        conv3d: str = "auto", rngs: nnx.Rngs) -> VideoResNet:
  """Video backbone by name (`BACKBONES`: r3d_18, r2plus1d_18, r3d_50, video_cnn_small).

  `width` None: the architecture's; `dtype` the compute dtype, a jnp dtype or its name
  ("float32", "bfloat16"); `backend` the BatchNorms' (jax_ssl/backends; None:
  `backends.current()`); `conv3d` how the 3-D convolutions are computed, the same values and
  parameters either way: "native" (XLA's 3-D convolution: cuDNN's on a GPU), "as_2d"
  (`conv3d_as_2d`: 2-D convolutions, 5-10x faster on XLA:CPU) or "auto" (as_2d when
  `backends.default_platform()` is the CPU, as `backends.select` resolves its "auto")."""
  if name not in BACKBONES:
    raise ValueError(f"model.backbone={name!r} is not a video backbone; choose one of "
                     f"{sorted(BACKBONES)}")
  if isinstance(dtype, str):
    if dtype not in DTYPES:
      raise ValueError(f"model.dtype={dtype!r}; the video backbones compute in one of "
                       f"{sorted(DTYPES)}")
    dtype = DTYPES[dtype]
  if conv3d not in CONV3D:
    raise ValueError(f"conv3d={conv3d!r}; use one of {CONV3D}")
  as_2d = conv3d == "as_2d" or (conv3d == "auto" and backends.default_platform() == "cpu")
  architecture = BACKBONES[name]
  return VideoResNet(architecture, in_channels=in_channels, width=width or architecture.width,
                     layers=Layers(dtype, backend, as_2d), rngs=rngs)
