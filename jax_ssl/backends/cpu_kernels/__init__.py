"""The `cpu_kernels` speed backend: the library's own CPU convolutions and fused BatchNorm.

What it holds (docs/backends.md):

  * conv.py, conv2d.cc, build.py, winograd.py: C++ convolution kernels (forward, input
    gradient, weight gradient; NHWC float32) called through the XLA FFI from a
    `jax.custom_vjp`, built with the machine's g++ the first time one is traced, and
    Winograd F(4x4, 3x3) for wide 3x3 layers; per layer, the faster of them and XLA's own;
  * batch_norm.py: BatchNorm, residual add and ReLU as one custom VJP;
  * host_memory.py, xla_flags.py: the process settings of the CPU platform, applied by
    `jax_ssl.backends.prepare_process` (not by this package, and never at import).

`backend()` is what `jax_ssl.backends.select("cpu_kernels")` returns; `auto` selects it on
the CPU platform when `applies_to_this_machine()`.
"""

from __future__ import annotations

import functools

from flax import nnx

from jax_ssl import backends
from jax_ssl.backends.cpu_kernels import batch_norm, build, conv


def applies_to_this_machine() -> bool:
  """Whether the backend is worth selecting here, as measured: an AVX-512 CPU (the
  instruction set the kernels were tuned and measured on) with a C++ compiler to build them
  (looked up, not run); or an AVX2 CPU without AVX-512, where the backend's fused BatchNorm
  and its matrix-product path for the tiniest convolutions (conv.py `use_matmul`) run, its
  kernels never (no compiler needed)."""
  return (build.has_avx512() and build.compiler() is not None) or build.has_avx2_only()


@functools.cache
def backend(every_op: bool = False) -> backends.Backend:
  """The backend: convolutions through `conv.KernelConv`, BatchNorm `batch_norm.FusedBatchNorm`.

  `every_op` False (the default): each op where it measured faster, on one CPU device
  (conv.py `choose`, batch_norm.py); True: every op the kernels can run and every
  training-mode BatchNorm, on any CPU and any number of devices (tests, tools)."""
  return backends.Backend(
      "cpu_kernels",
      functools.partial(nnx.Conv, conv_general_dilated=conv.KernelConv(every_op)),
      functools.partial(batch_norm.FusedBatchNorm, every_call=every_op))
