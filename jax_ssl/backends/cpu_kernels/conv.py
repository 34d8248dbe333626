"""A 2-D convolution with its own CPU kernels (forward, input gradient, weight gradient).

`KernelConv` is a drop-in for `jax.lax.conv_general_dilated` (the argument `nnx.Conv`
takes; the `cpu_kernels` backend's convolutions carry one): where this module's kernels
apply and win, it runs `conv2d`, a `jax.custom_vjp` whose forward pass and two gradients
are each either a kernel of `conv2d.cc` (through the XLA FFI) or XLA's own convolution,
chosen per layer shape by `choose`; 3x3 stride-1 layers with 256 or more input and output
channels take Winograd's F(4x4, 3x3) instead for all three (`winograd.py`,
`use_winograd`); on CPUs without AVX-512, 3x3 layers whose output has 4 pixels or fewer
(multi-crop's 12 px views at the last stage) run as one matrix product over their patches
(`conv2d_matmul`, `use_matmul`); everywhere else it is `lax.conv_general_dilated` itself.

The kernels apply to: float32, NHWC activations with HWIO kernels, 2-D, equal strides, no
dilation or groups, non-negative explicit padding; on the CPU backend. Which of those ops
run on them (`every_op`, fixed when the backend is made):

  * False (the backend `select` returns): on AVX-512 CPUs with one device, each op where
    `choose` says it wins; with several devices none, since XLA's partitioner would gather
    a sharded batch onto every device for a custom call;
  * True (tests, tools/conv_layers.py): every op that applies, on any CPU and any number
    of devices.

Inside `jax_ssl.backends.xla_convolutions()` none do (XLA's cost analysis sees no FLOPs in
a custom call).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jax_ssl import backends
from jax_ssl.backends.cpu_kernels import build, winograd

LANES = 16  # the kernels' vector width: the vectorised channel count must be a multiple


def _lax_conv(x, w, stride, padding):
  return lax.conv_general_dilated(x, w, (stride, stride), padding,
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"))


def choose(op: str, x_shape: Sequence[int], w_shape: Sequence[int], stride: int, *,
           every_op: bool) -> bool:
  """Whether `op` ("forward", "input_grad", "weight_grad") of this layer runs on the kernels.

  The vectorised channels must be a multiple of 16 (output channels for the forward pass and
  the weight gradient, input channels for the input gradient). Unless `every_op`, the rule
  is where the kernels measured faster than XLA's Eigen path, layer by layer, for the small
  encoder and ResNet-18 (`python tools/conv_layers.py --model small|resnet18`): everywhere
  but the gradients of layers with outputs of 4x4 or fewer pixels and 256 or more input
  channels (ResNet-18's last stage), where XLA's are as fast or faster; and only on CPUs with
  AVX-512, the only ones measured."""
  _, h, w, cin = x_shape
  kh, kw, _, cout = w_shape
  vector = cin if op == "input_grad" else cout
  if vector % LANES or backends.xla_convolutions_forced() or build.load() is None:
    return False
  if every_op:
    return True
  if not build.has_avx512():
    return False
  if op == "forward":
    return True
  return not (-(-h // stride) * -(-w // stride) <= 16 and cin >= 256)


def use_winograd(x_shape: Sequence[int], w_shape: Sequence[int], stride: int, padding, *,
                 every_op: bool) -> bool:
  """Whether this layer's forward pass and both gradients run as Winograd F(4x4, 3x3).

  3x3 kernels, stride 1, padding of at most 2 on each side, and at least 256 input and output
  channels: where it measured faster than both the kernels and XLA's convolution
  (`python tools/conv_layers.py --model resnet18`: ResNet-18's last two stages, at 8x8 and
  4x4 pixels: 1.4-2.3x faster per op than the faster of the two); at 128 channels and 16x16
  pixels it was mixed (forward and input gradient ~15% faster, weight gradient ~7% slower:
  left on the kernels) and with fewer channels slower. On AVX-512 CPUs (the ones measured),
  any CPU with `every_op`."""
  kh, kw, cin, cout = w_shape
  if (kh, kw) != (3, 3) or stride != 1 or min(cin, cout) < 256:
    return False
  if backends.xla_convolutions_forced():
    return False
  if any(not 0 <= p <= 2 for pair in padding for p in pair):
    return False
  return every_op or build.has_avx512()


def _ffi(name, shape, *args, **attrs):
  call = jax.ffi.ffi_call(name, jax.ShapeDtypeStruct(tuple(shape), jnp.float32))
  return call(*args, **{k: np.int64(v) for k, v in attrs.items()})


def _padding_attrs(padding):
  (top, bottom), (left, right) = padding
  return dict(pad_top=top, pad_bottom=bottom, pad_left=left, pad_right=right)


def _forward(x, w, stride, padding, every_op):
  if use_winograd(x.shape, w.shape, stride, padding, every_op=every_op):
    return winograd.conv3x3(x, w, padding)
  if choose("forward", x.shape, w.shape, stride, every_op=every_op):
    shape = jax.eval_shape(lambda: _lax_conv(x, w, stride, padding)).shape
    return _ffi("JaxSslConvForward", shape, x, w, stride=stride, **_padding_attrs(padding))
  return _lax_conv(x, w, stride, padding)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def conv2d(x: jax.Array, w: jax.Array, stride: int, padding, every_op: bool = False
           ) -> jax.Array:
  """NHWC x HWIO -> NHWC convolution, stride `stride`, padding ((top, bottom), (left, right));
  each op on the kernels, Winograd or XLA as `choose` / `use_winograd` say for `every_op`."""
  return _forward(x, w, stride, padding, every_op)


def _conv2d_fwd(x, w, stride, padding, every_op):
  return _forward(x, w, stride, padding, every_op), (x, w)


def _conv2d_bwd(stride, padding, every_op, residuals, g):
  x, w = residuals
  (top, bottom), (left, right) = padding
  kh, kw = w.shape[:2]
  if use_winograd(x.shape, w.shape, stride, padding, every_op=every_op):
    # The input gradient is the convolution of g with the flipped, channel-swapped kernel.
    flipped = jnp.flip(w, (0, 1)).transpose(0, 1, 3, 2)
    dx = winograd.conv3x3(g, flipped, ((2 - top, 2 - bottom), (2 - left, 2 - right)))
    return dx, winograd.weight_grad3x3(x, g, padding)
  if not choose("input_grad", x.shape, w.shape, stride, every_op=every_op):
    dx = jax.vjp(lambda x: _lax_conv(x, w, stride, padding), x)[1](g)[0]
  elif stride == 1 and max(top, bottom) < kh and max(left, right) < kw:
    # Stride 1: the input gradient is the forward convolution of the output gradient, padded
    # by the kernel size less the padding, with the kernel flipped and its channels swapped.
    flipped = jnp.flip(w, (0, 1)).transpose(0, 1, 3, 2)
    dx = _ffi("JaxSslConvForward", x.shape, g, flipped, stride=1,
              **_padding_attrs(((kh - 1 - top, kh - 1 - bottom), (kw - 1 - left, kw - 1 - right))))
  else:
    dx = _ffi("JaxSslConvInputGrad", x.shape, g, w, stride=stride, **_padding_attrs(padding))
  if choose("weight_grad", x.shape, w.shape, stride, every_op=every_op):
    dw = _ffi("JaxSslConvWeightGrad", w.shape, x, g, kernel_h=kh, kernel_w=kw, stride=stride,
              **_padding_attrs(padding))
  else:
    dw = jax.vjp(lambda w: _lax_conv(x, w, stride, padding), w)[1](g)[0]
  return dx, dw


conv2d.defvjp(_conv2d_fwd, _conv2d_bwd)


def _plain_conv(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                dimension_numbers, feature_group_count, batch_group_count,
                preferred_element_type, out_sharding, *, any_device_count: bool) -> bool:
  """The call's shape of convolution that `conv2d` and `conv2d_matmul` compute: on the CPU
  backend outside `xla_convolutions()`, one device unless `any_device_count`, float32, 2-D
  NHWC x HWIO, equal strides, non-negative explicit padding, no dilation, groups or output
  sharding."""
  if backends.xla_convolutions_forced() or jax.default_backend() != "cpu":
    return False
  if not any_device_count and jax.device_count() != 1:
    return False
  if lhs.ndim != 4 or lhs.dtype != jnp.float32 or rhs.dtype != jnp.float32:
    return False
  nhwc = lax.conv_dimension_numbers(lhs.shape, rhs.shape, ("NHWC", "HWIO", "NHWC"))
  if dimension_numbers is None or lax.conv_dimension_numbers(
      lhs.shape, rhs.shape, dimension_numbers) != nhwc:
    return False
  if isinstance(padding, str) or any(p < 0 for pair in padding for p in pair):
    return False
  if len(set(window_strides)) != 1 or feature_group_count != 1 or batch_group_count != 1:
    return False
  if any(d != 1 for d in (lhs_dilation or ())) or any(d != 1 for d in (rhs_dilation or ())):
    return False
  return preferred_element_type in (None, jnp.float32) and out_sharding is None


def applies(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers,
            feature_group_count, batch_group_count, preferred_element_type,
            out_sharding=None, *, every_op: bool = False) -> bool:
  """Whether `conv2d` can stand in for this `lax.conv_general_dilated` call."""
  if not _plain_conv(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                     dimension_numbers, feature_group_count, batch_group_count,
                     preferred_element_type, out_sharding, any_device_count=every_op):
    return False
  if not every_op and not build.has_avx512():
    return False  # `choose` takes no kernel there: never run the compiler for nothing
  return build.load() is not None


MATMUL_MAX_OUTPUT_PIXELS = 4


def use_matmul(x_shape: Sequence[int], w_shape: Sequence[int], stride: int, padding, *,
               every_op: bool) -> bool:
  """Whether this layer runs as `conv2d_matmul` (all three ops, by autodiff).

  Kernels larger than 1x1 whose output has `MATMUL_MAX_OUTPUT_PIXELS` pixels or fewer, on
  CPUs without AVX-512, never with `every_op` (which times the kernels everywhere). XLA's
  Eigen convolution is pathological there: the small encoder's last 3x3 layer on 1024
  multi-crop views of 12 px (2x2 outputs) measured 173.8 / 183.5 / 8.2 ms (forward, input
  gradient, weight gradient) against 9.6 / 8.7 / 12.7 ms as a matrix product, its strided
  3x3 -> 2x2 layer 49.7 -> 19.1 ms in all (2-vCPU AMD EPYC with AVX2, `python
  tools/conv_layers.py --model local`); at 3x3
  outputs and larger XLA was as fast or faster. AVX-512 CPUs keep the kernels' rule (the
  only one measured there)."""
  (top, bottom), (left, right) = padding
  _, h, w, _ = x_shape
  kh, kw, _, _ = w_shape
  out_h = (h + top + bottom - kh) // stride + 1
  out_w = (w + left + right - kw) // stride + 1
  return (not every_op and kh * kw > 1 and out_h * out_w <= MATMUL_MAX_OUTPUT_PIXELS
          and not build.has_avx512())


def conv2d_matmul(x: jax.Array, w: jax.Array, stride: int, padding) -> jax.Array:
  """NHWC x HWIO -> NHWC convolution as one matrix product: the kh * kw shifted (strided)
  slices of the padded input side by side on the channel axis, [N * OH * OW, kh * kw * C]
  times the kernel as [kh * kw * C, C_out] (the same sums as the convolution, in another
  order). Differentiable as written: its gradients are a pad, slices and two products."""
  (top, bottom), (left, right) = padding
  kh, kw, c_in, c_out = w.shape
  padded = jnp.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
  n, h, wd, _ = padded.shape
  out_h, out_w = (h - kh) // stride + 1, (wd - kw) // stride + 1
  patches = jnp.concatenate(
      [padded[:, i:i + stride * (out_h - 1) + 1:stride, j:j + stride * (out_w - 1) + 1:stride]
       for i in range(kh) for j in range(kw)], axis=-1)
  out = jnp.dot(patches.reshape(n * out_h * out_w, kh * kw * c_in),
                w.reshape(kh * kw * c_in, c_out), preferred_element_type=jnp.float32)
  return out.reshape(n, out_h, out_w, c_out).astype(x.dtype)


def _matmul_applies(lhs, rhs, window_strides, padding, *args, every_op: bool) -> bool:
  """Whether `conv2d_matmul` stands in for this `lax.conv_general_dilated` call (arguments
  as `applies`, padding as ints): a plain convolution on one device (`_plain_conv`) and
  `use_matmul`."""
  if not _plain_conv(lhs, rhs, window_strides, padding, *args, any_device_count=False):
    return False
  return use_matmul(lhs.shape, rhs.shape, int(window_strides[0]), padding, every_op=every_op)


def block_diagonal_kernel(rhs: jax.Array, groups: int) -> jax.Array:
  """A grouped HWIO kernel [kh, kw, C_in / G, C_out] as the dense [kh, kw, C_in, C_out] one
  that computes the same convolution: output channel block g (C_out / G channels, in
  order) reads only input channel block g, the rest is zero. Differentiable: the gradient
  of the dense kernel's blocks flows back to `rhs`."""
  kh, kw, in_per_group, out_features = rhs.shape
  out_per_group = out_features // groups
  blocks = rhs.reshape(kh, kw, in_per_group, groups, out_per_group)  # [h, w, i, g, j]
  dense = jnp.einsum("hwigj,kg->hwkigj", blocks, jnp.eye(groups, dtype=rhs.dtype))
  return dense.reshape(kh, kw, groups * in_per_group, out_features)


def _grouped_as_dense(lhs, rhs, dimension_numbers, feature_group_count, batch_group_count
                      ) -> bool:
  """Whether a grouped NHWC / HWIO convolution on the CPU platform should run as a dense one
  with a block-diagonal kernel: XLA:CPU computes `feature_group_count` > 1 an order of
  magnitude slower than the dense convolution of G times the FLOPs (data2vec 2.0's decoder,
  16 groups, on Fashion-MNIST: 7.6 s a step against 0.63 s with dense convolutions, 2-vCPU
  AMD EPYC, tools/benchmark.py). GPUs and TPUs keep the grouped op."""
  if feature_group_count == 1 or batch_group_count != 1 or jax.default_backend() != "cpu":
    return False
  if backends.xla_convolutions_forced() or lhs.ndim != 4:
    return False
  nhwc = lax.conv_dimension_numbers(lhs.shape, rhs.shape, ("NHWC", "HWIO", "NHWC"))
  return dimension_numbers is not None and lax.conv_dimension_numbers(
      lhs.shape, rhs.shape, dimension_numbers) == nhwc


@dataclasses.dataclass(frozen=True)
class KernelConv:
  """`lax.conv_general_dilated`, running `conv2d` where its kernels apply (module docstring).

  A frozen dataclass, not a closure: `nnx.Conv` keeps it as a static attribute, so two
  models built with the same backend have equal graphdefs (one jit cache entry)."""

  every_op: bool = False

  def __call__(self, lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
               dimension_numbers=None, feature_group_count=1, batch_group_count=1,
               precision=None, preferred_element_type=None, out_sharding=None):
    if _grouped_as_dense(lhs, rhs, dimension_numbers, feature_group_count, batch_group_count):
      rhs, feature_group_count = block_diagonal_kernel(rhs, feature_group_count), 1
    if not isinstance(padding, str):  # ((top, bottom), (left, right)) as ints, once
      padding = tuple(tuple(int(p) for p in pair) for pair in padding)
    args = (lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers,
            feature_group_count, batch_group_count, preferred_element_type, out_sharding)
    if _matmul_applies(*args, every_op=self.every_op):
      return conv2d_matmul(lhs, rhs, int(window_strides[0]), padding)
    if applies(*args, every_op=self.every_op):
      return conv2d(lhs, rhs, int(window_strides[0]), padding, self.every_op)
    return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation,
                                    rhs_dilation, dimension_numbers, feature_group_count,
                                    batch_group_count, precision, preferred_element_type,
                                    out_sharding=out_sharding)
