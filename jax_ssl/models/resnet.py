"""ResNets in Flax NNX: ResNet-18/50 with CIFAR or ImageNet stems, and a small CPU encoder.

Layout NHWC. Convolutions use explicit symmetric padding (as PyTorch/torchvision do) and
Kaiming-normal (fan_out) initialisation, so a plain `torch.nn` peer is the same network.

`dtype` is the compute dtype (`model.dtype`): with bfloat16 the convolutions take bfloat16
inputs and kernels (cast from the float32 parameters) and the activations between layers
are bfloat16, while parameters, BatchNorm statistics and normalisation (models/batch_norm.py)
and the pooled features stay float32, as flax's ImageNet ResNet and big_vision's BiT run
mixed precision. The `cpu_kernels` backend's convolution kernels are float32-only; bfloat16
layers take XLA's convolution there.

The convolutions and BatchNorms come from a speed backend (jax_ssl/backends): `xla` (the
default: `nnx.Conv` and the plain BatchNorm) or the one `backends.select(config.backend)`
returns (`config.build_backbone`); the parameters and their layout are the same on every
backend.

Sparse (masked) mode, `backbone(x, mask=visible)` / `backbone.feature_map(x, mask=visible)`
with `visible` bool [B, h, w] on any grid of cells (CNN-JEPA draws it on the output grid,
`output_grid`): SparK's sparse encoder (keyu-tian/SparK encoder.py, which kaland313/CNN-JEPA
models/sparse_encoder.py copies), the masked image seen by a CNN as a sparse set of
positions. The image is masked (the mask resized to pixels), and every layer's output is
zero at the masked positions of its own resolution (the mask resized there by `mask_at`):
every BatchNorm runs in its sparse mode (models/batch_norm.py: statistics of the visible
positions only, zero output at the masked ones, after the residual and the ReLU), and the
ImageNet stem's max-pool output is masked as SparK's `SparseMaxPooling`. A convolution's
output at masked positions is left as it is: the sparse BatchNorm that follows every
convolution ignores it in its statistics and writes zeros there, so SparK's zeroing after
the convolution (`SparseConv2d`) would change nothing. The convolutions are the backend's
own either way; without a mask every model computes exactly as before.

References:
  He et al., "Deep Residual Learning for Image Recognition", CVPR 2016.
  Tian et al., "Designing BERT for Convolutional Networks: Sparse and Hierarchical Masked
  Modeling", ICLR 2023 (SparK; the sparse encoder).
  Kalapos & Gyires-Toth, "CNN-JEPA: Self-Supervised Pretraining Convolutional Neural
  Networks Using Joint Embedding Predictive Architecture", 2024.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jax_ssl import backends
from jax_ssl.backends import Backend
from jax_ssl.models import batch_norm as batch_norm_lib

_KAIMING = nnx.initializers.variance_scaling(2.0, "fan_out", "normal")
# torchvision's BatchNorm momentum 0.1 is Flax's 0.9 (weight of the running value).
_BN_MOMENTUM = 0.9
_BN_EPSILON = 1e-5
# model.dtype -> compute dtype (parameters are float32 whatever it is)
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def mask_at(mask: jax.Array, height: int, width: int) -> jax.Array:
  """A bool [B, h, w] mask of cells resized to a [B, height, width] grid by nearest cell:
  row i takes cell row floor(i * h / height) (columns alike). Where height is a multiple of
  h this repeats every cell height / h times, SparK's `repeat_interleave` of its mask to
  each stage's resolution; it also maps the 4x4 output grid of a 28 px image (cells of 7
  px) to every stage (28, 14, 7, 4 rows)."""
  rows = (np.arange(height) * mask.shape[1]) // height
  cols = (np.arange(width) * mask.shape[2]) // width
  return mask[:, rows][:, :, cols]


def _sparse_bn(bn, x: jax.Array, mask: jax.Array | None, **kwargs) -> jax.Array:
  """`bn(x, **kwargs)`, in its sparse mode at x's resolution when a mask is given (the call
  without a mask is exactly the dense model's)."""
  if mask is None:
    return bn(x, **kwargs)
  return bn(x, mask=mask_at(mask, x.shape[1], x.shape[2]), **kwargs)


def _conv_bn(layers: nnx.Sequential, x: jax.Array, mask: jax.Array | None) -> jax.Array:
  """A `conv1x1_bn` (shortcut, final conv) with its BatchNorm sparse under a mask."""
  if mask is None:
    return layers(x)
  conv_layer, bn = layers.layers
  return _sparse_bn(bn, conv_layer(x), mask)


def conv(in_features: int, out_features: int, kernel: int, stride: int = 1, *,
         dtype=jnp.float32, backend: Backend | None = None, rngs: nnx.Rngs) -> nnx.Conv:
  """Bias-free conv, symmetric padding, float32 kernel, computed in `dtype`, from `backend`
  (None: `backends.current()`, `xla` unless built inside `backends.use`)."""
  pad = (kernel - 1) // 2
  return (backend or backends.current()).conv(
      in_features, out_features, (kernel, kernel), strides=(stride, stride),
      padding=((pad, pad), (pad, pad)), use_bias=False, kernel_init=_KAIMING, dtype=dtype,
      param_dtype=jnp.float32, rngs=rngs)


def batch_norm(features: int, *, dtype=None, backend: Backend | None = None,
               rngs: nnx.Rngs) -> batch_norm_lib.BatchNorm:
  """BatchNorm from `backend` (None: `backends.current()`) that can take the residual add and
  ReLU after it (models/batch_norm.py); float32 statistics, output in `dtype` (None: the
  input's). The methods' heads build theirs here too, without a backend."""
  return (backend or backends.current()).batch_norm(
      features, momentum=_BN_MOMENTUM, epsilon=_BN_EPSILON, compute_dtype=dtype, rngs=rngs)


def conv1x1_bn(in_features: int, out_features: int, stride: int = 1, *, dtype=jnp.float32,
               backend: Backend | None = None, rngs: nnx.Rngs) -> nnx.Sequential:
  """1x1 conv + BatchNorm (projection shortcuts, the optional final 1x1 conv)."""
  return nnx.Sequential(
      conv(in_features, out_features, 1, stride, dtype=dtype, backend=backend, rngs=rngs),
      batch_norm(out_features, dtype=dtype, backend=backend, rngs=rngs))


def projection_shortcut(in_features: int, out_features: int, stride: int, *,
                        dtype=jnp.float32, backend: Backend | None = None,
                        rngs: nnx.Rngs) -> nnx.Sequential | None:
  """1x1 conv + BatchNorm where the residual changes shape (ResNet option B), else None."""
  if stride == 1 and in_features == out_features:
    return None
  return conv1x1_bn(in_features, out_features, stride, dtype=dtype, backend=backend, rngs=rngs)


class BasicBlock(nnx.Module):
  """Two 3x3 convolutions with a residual connection (ResNet-18/34)."""
  expansion = 1

  def __init__(self, in_features: int, features: int, stride: int, *, dtype=jnp.float32,
               backend: Backend | None = None, rngs: nnx.Rngs):
    out_features = features * self.expansion
    layer = dict(dtype=dtype, backend=backend, rngs=rngs)
    self.conv1 = conv(in_features, features, 3, stride, **layer)
    self.bn1 = batch_norm(features, **layer)
    self.conv2 = conv(features, out_features, 3, **layer)
    self.bn2 = batch_norm(out_features, **layer)
    self.shortcut = nnx.data(projection_shortcut(in_features, out_features, stride, **layer))

  def __call__(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    residual = x if self.shortcut is None else _conv_bn(self.shortcut, x, mask)
    y = _sparse_bn(self.bn1, self.conv1(x), mask, relu=True)
    return _sparse_bn(self.bn2, self.conv2(y), mask, residual=residual, relu=True)


class Bottleneck(nnx.Module):
  """1x1 -> 3x3 (strided, as torchvision's ResNet v1.5) -> 1x1, expansion 4 (ResNet-50)."""
  expansion = 4

  def __init__(self, in_features: int, features: int, stride: int, *, dtype=jnp.float32,
               backend: Backend | None = None, rngs: nnx.Rngs):
    out_features = features * self.expansion
    layer = dict(dtype=dtype, backend=backend, rngs=rngs)
    self.conv1 = conv(in_features, features, 1, **layer)
    self.bn1 = batch_norm(features, **layer)
    self.conv2 = conv(features, features, 3, stride, **layer)
    self.bn2 = batch_norm(features, **layer)
    self.conv3 = conv(features, out_features, 1, **layer)
    self.bn3 = batch_norm(out_features, **layer)
    self.shortcut = nnx.data(projection_shortcut(in_features, out_features, stride, **layer))

  def __call__(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    residual = x if self.shortcut is None else _conv_bn(self.shortcut, x, mask)
    y = _sparse_bn(self.bn1, self.conv1(x), mask, relu=True)
    y = _sparse_bn(self.bn2, self.conv2(y), mask, relu=True)
    return _sparse_bn(self.bn3, self.conv3(y), mask, residual=residual, relu=True)


class ResNet(nnx.Module):
  """Backbone: stem, stages of residual blocks, global average pooling -> [B, feature_dim].

  Args:
    stage_sizes: blocks per stage; stage s has width `width * 2**s`, stride 2 from stage 1 on.
    block: `BasicBlock` or `Bottleneck`.
    width: channels of the stem and first stage (64 for ResNet-18/50).
    stem: "cifar" (3x3 stride-1 conv, no max-pool; for 28-64 px images), "stride2" (3x3
      stride-2 conv, no max-pool: the stages run at half the side, about a quarter of the
      cifar stem's cost; the Fashion-MNIST default's, sized for 2 CPU cores) or "imagenet"
      (7x7 stride-2 conv + 3x3 stride-2 max-pool).
    in_channels: image channels (1 for Fashion-MNIST, 3 for RGB).
    final_features: 0, or the channels of a 1x1 conv + BatchNorm + ReLU after the last stage
      (MobileNetV2's and EfficientNet's final 1x1 conv): a wider representation for a
      fraction of the cost of widening the stages. Kolesnikov et al., "Revisiting
      Self-Supervised Visual Representation Learning" (CVPR 2019), found representation
      width to matter most for the pretext tasks (rotation, relative position, exemplar).
    dtype: compute dtype of the convolutions and activations (module docstring); the
      features [B, feature_dim] are float32.
    backend: the speed backend the convolutions and BatchNorms come from (jax_ssl/backends;
      None: `backends.current()`, `xla` unless built inside `backends.use`).
  """

  def __init__(self, stage_sizes: Sequence[int], block: type, width: int, stem: str,
               in_channels: int, final_features: int = 0, *, dtype=jnp.float32,
               backend: Backend | None = None, rngs: nnx.Rngs):
    if stem not in STEM_STRIDES:
      raise ValueError(f"stem={stem!r}; use one of {sorted(STEM_STRIDES)}")
    self.stem_kind = stem
    self.num_strided_stages = max(0, len(stage_sizes) - 1)
    self.dtype = dtype
    layer = dict(dtype=dtype, backend=backend, rngs=rngs)
    self.stem_conv = conv(in_channels, width, 7 if stem == "imagenet" else 3,
                          STEM_STRIDES[stem], **layer)
    self.stem_bn = batch_norm(width, **layer)
    blocks = []
    in_features = width
    for stage, num_blocks in enumerate(stage_sizes):
      features = width * 2**stage
      for index in range(num_blocks):
        stride = 2 if stage > 0 and index == 0 else 1
        blocks.append(block(in_features, features, stride, **layer))
        in_features = features * block.expansion
    self.blocks = nnx.List(blocks)
    self.final = nnx.data(conv1x1_bn(in_features, final_features, **layer)
                          if final_features else None)
    self.feature_dim = final_features or in_features

  def output_grid(self, height: int, width: int) -> tuple[int, int]:
    """The (h, w) of the last feature map for height x width images: every stride-2 layer
    (the ImageNet stem's conv and max-pool, the stride2 stem, the first block of stages 1,
    2, ...) maps n to ceil(n / 2) with its padding (k - 1) // 2; so 224 -> 7 (stride 32),
    32 -> 4 (CIFAR stem, stride 8), 28 -> 4 (CIFAR stem) or 2 (stride2 stem)."""
    halvings = self.num_strided_stages + STEM_HALVINGS[self.stem_kind]
    for _ in range(halvings):
      height, width = -(-height // 2), -(-width // 2)
    return height, width

  def feature_map(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """The last feature map before pooling, [B, h, w, feature_dim] in the compute dtype;
    with `mask` (bool [B, h', w'] cells, True = visible) the sparse encoder's (module
    docstring), zero at the masked positions."""
    if mask is not None:
      x = x * mask_at(mask, x.shape[1], x.shape[2])[..., None].astype(x.dtype)
    x = _sparse_bn(self.stem_bn, self.stem_conv(x), mask, relu=True)
    if self.stem_kind == "imagenet":
      x = nnx.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
      if mask is not None:
        x = x * mask_at(mask, x.shape[1], x.shape[2])[..., None].astype(x.dtype)
    for block in self.blocks:
      x = block(x) if mask is None else block(x, mask)
    if self.final is not None:
      x = nnx.relu(_conv_bn(self.final, x, mask))
    return x

  def __call__(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """Global average pooling of `feature_map` -> float32 [B, feature_dim]; with `mask`, the
    mean over each image's visible positions."""
    x = self.feature_map(x, mask).astype(jnp.float32)
    if mask is None:
      return jnp.mean(x, axis=(1, 2))
    visible = mask_at(mask, x.shape[1], x.shape[2]).astype(jnp.float32)[..., None]
    return jnp.sum(x * visible, axis=(1, 2)) / jnp.maximum(jnp.sum(visible, axis=(1, 2)), 1.0)


STEM_STRIDES = {"cifar": 1, "stride2": 2, "imagenet": 2}  # the stem conv's stride
STEM_HALVINGS = {"cifar": 0, "stride2": 1, "imagenet": 2}  # the stem's (imagenet: + max-pool)

BACKBONES = {
    # name: (stage_sizes, block, default width)
    "resnet_small": ((1, 1, 1, 1), BasicBlock, 16),
    "resnet18": ((2, 2, 2, 2), BasicBlock, 64),
    "resnet50": ((3, 4, 6, 3), Bottleneck, 64),
}


def make_backbone(name: str, *, width: int | None, stem: str, in_channels: int,
                  final_features: int = 0, dtype: str = "float32",
                  backend: Backend | None = None, rngs: nnx.Rngs) -> ResNet:
  """Backbone by name: `resnet_small` (4 stages x 1 basic block), `resnet18`, `resnet50`;
  `final_features` > 0 adds a final 1x1 conv to that many channels (see `ResNet`); `dtype`
  ("float32" or "bfloat16") the compute dtype; `backend` the convolutions' and BatchNorms'
  (jax_ssl/backends; None: `backends.current()`, `xla` unless built inside `backends.use`)."""
  if name not in BACKBONES:
    raise ValueError(f"model.backbone={name!r} is unknown; choose one of {sorted(BACKBONES)}")
  if dtype not in DTYPES:
    raise ValueError(f"model.dtype={dtype!r}; the ResNets compute in one of {sorted(DTYPES)}")
  stage_sizes, block, default_width = BACKBONES[name]
  return ResNet(stage_sizes, block, width or default_width, stem, in_channels, final_features,
                dtype=DTYPES[dtype], backend=backend, rngs=rngs)
