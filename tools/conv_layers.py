r"""Per-layer convolution timings of a benchmark model: forward, input gradient, weight gradient.

Where does the step's convolution time go, and which path should run it? Each distinct
convolution of the model (shape, stride) is jitted on its own and timed three ways:
`fwd` (the convolution), `dx` (its input gradient) and `dw` (its weight gradient), each
multiplied by how many times the model has that layer, on XLA's own convolution (the `xla`
backend's), on the `cpu_kernels` backend's kernels (jax_ssl/backends/cpu_kernels, every op
they apply to), for 3x3 stride-1 layers as Winograd F(4x4, 3x3) (its winograd.py) and, for
kernels larger than 1x1, as one matrix product over the patches (conv.py `conv2d_matmul`);
`*` marks the path the `cpu_kernels` backend picks (its measured rule), and the last row
totals XLA, the kernels and that choice. The table behind
`jax_ssl.backends.cpu_kernels.conv.choose`, `use_winograd` and `use_matmul`:

  python tools/conv_layers.py --model small
  python tools/conv_layers.py --model local
  python tools/conv_layers.py --model resnet18

The process is prepared as the trainer's (`jax_ssl.backends.prepare_process`: on the CPU
the XLA columns are XLA's Eigen routing); `--no-prepare` leaves XLA's default routing
(YNNPACK for eligible convs).

Models: `small` (the Fashion-MNIST default encoder, resnet_small width 16, 512 views of
28x28x1), `local` (the same encoder on the main job's 4 local crops: 1024 views of 12x12x1)
and `resnet18` (CIFAR stem, 256 views of 32x32x3), as in `tools/benchmark.py
--compare-torch`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from unittest import mock

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from jax_ssl import backends  # noqa: E402
from jax_ssl.backends.cpu_kernels import conv as kernel_conv  # noqa: E402

# name, in channels, out channels, kernel, stride, input size, layers of this shape
LAYERS = {
    "small": (512, [
        ("stem", 1, 16, 3, 1, 28, 1), ("stage1", 16, 16, 3, 1, 28, 2),
        ("stage2.conv1", 16, 32, 3, 2, 28, 1), ("stage2.conv2", 32, 32, 3, 1, 14, 1),
        ("stage2.shortcut", 16, 32, 1, 2, 28, 1), ("stage3.conv1", 32, 64, 3, 2, 14, 1),
        ("stage3.conv2", 64, 64, 3, 1, 7, 1), ("stage3.shortcut", 32, 64, 1, 2, 14, 1),
        ("stage4.conv1", 64, 128, 3, 2, 7, 1), ("stage4.conv2", 128, 128, 3, 1, 4, 1),
        ("stage4.shortcut", 64, 128, 1, 2, 7, 1)]),
    "resnet18": (256, [
        ("stem", 3, 64, 3, 1, 32, 1), ("layer1", 64, 64, 3, 1, 32, 4),
        ("layer2.0.conv1", 64, 128, 3, 2, 32, 1), ("layer2.conv", 128, 128, 3, 1, 16, 3),
        ("layer2.0.shortcut", 64, 128, 1, 2, 32, 1), ("layer3.0.conv1", 128, 256, 3, 2, 16, 1),
        ("layer3.conv", 256, 256, 3, 1, 8, 3), ("layer3.0.shortcut", 128, 256, 1, 2, 16, 1),
        ("layer4.0.conv1", 256, 512, 3, 2, 8, 1), ("layer4.conv", 512, 512, 3, 1, 4, 3),
        ("layer4.0.shortcut", 256, 512, 1, 2, 8, 1)]),
}


# The main job's 4 local crops of 12 px per image (1024 views a step): the small encoder's
# layers at the sizes a 12 px input gives (28 -> 12, 14 -> 6, 7 -> 3, 4 -> 2).
LAYERS["local"] = (1024, [(name, c_in, c_out, kernel, stride, {28: 12, 14: 6, 7: 3, 4: 2}[size],
                           count) for name, c_in, c_out, kernel, stride, size, count
                          in LAYERS["small"][1]])

OPS = ("fwd", "dx", "dw")
CHOOSE_OP = {"fwd": "forward", "dx": "input_grad", "dw": "weight_grad"}


def _conv(x, w, stride, pad):
  """`conv2d` with every op that applies on the kernels (inside `backends.xla_convolutions()`:
  on XLA's own convolution)."""
  return kernel_conv.conv2d(x, w, stride, ((pad, pad), (pad, pad)), True)


def _seconds(fn, args, repeats):
  jax.block_until_ready(fn(*args))
  start = time.perf_counter()
  for _ in range(repeats):
    out = fn(*args)
  jax.block_until_ready(out)
  return (time.perf_counter() - start) / repeats


def _matmul(x, w, stride, pad):
  return kernel_conv.conv2d_matmul(x, w, stride, ((pad, pad), (pad, pad)))


def _op_seconds(op, x, w, g, stride, pad, repeats, conv=_conv):
  if op == "fwd":
    return _seconds(jax.jit(lambda x, w: conv(x, w, stride, pad)), (x, w), repeats)
  argnum = 0 if op == "dx" else 1
  fn = jax.jit(lambda x, w, g: jax.vjp(lambda *a: conv(*a, stride, pad), x, w)[1](g)[argnum])
  return _seconds(fn, (x, w, g), repeats)


def _winograd(on: bool):
  """`conv2d` with Winograd forced on or off, to time each path on the same layer."""
  return mock.patch.object(kernel_conv, "use_winograd", lambda *args, **kwargs: on)


def layer_times(model: str, batch: int | None = None, repeats: int = 5) -> list[dict]:
  """Per distinct layer and op: seconds on XLA (`op`), on the kernels (`op_kernel`, None where
  they do not apply), as Winograd (`op_winograd`, None but for 3x3 stride-1 layers), as a
  matrix product (`op_matmul`, None for 1x1 kernels), times the layer's count in the model,
  and the path the backend's measured rule picks on this machine (`op_auto`: "xla",
  "kernel", "winograd" or "matmul")."""
  default_batch, layers = LAYERS[model]
  batch = batch or default_batch
  rows = []
  for name, c_in, c_out, kernel, stride, size, count in layers:
    rng = np.random.default_rng(0)
    pad = (kernel - 1) // 2
    x = jnp.asarray(rng.normal(size=(batch, size, size, c_in)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(kernel, kernel, c_in, c_out)) * 0.1, jnp.float32)
    g = jnp.ones(jax.eval_shape(lambda x, w: _conv(x, w, stride, pad), x, w).shape,
                 jnp.float32)
    row = dict(layer=name, count=count, shape=f"{c_in}->{c_out} k{kernel} s{stride} @{size}")
    auto_winograd = kernel_conv.use_winograd(x.shape, w.shape, stride, ((pad, pad),) * 2,
                                             every_op=False)
    auto_matmul = kernel_conv.use_matmul(x.shape, w.shape, stride, ((pad, pad),) * 2,
                                         every_op=False)
    for op in OPS:
      row[op + "_auto"] = ("winograd" if auto_winograd else "matmul" if auto_matmul else
                           "kernel" if kernel_conv.choose(CHOOSE_OP[op], x.shape, w.shape,
                                                          stride, every_op=False) else "xla")
      with _winograd(False):
        applies = kernel_conv.choose(CHOOSE_OP[op], x.shape, w.shape, stride, every_op=True)
        row[op + "_kernel"] = (count * _op_seconds(op, x, w, g, stride, pad, repeats)
                               if applies else None)
      with _winograd(True):
        row[op + "_winograd"] = (count * _op_seconds(op, x, w, g, stride, pad, repeats)
                                 if kernel == 3 and stride == 1 else None)
      row[op + "_matmul"] = (count * _op_seconds(op, x, w, g, stride, pad, repeats, _matmul)
                             if kernel > 1 else None)
      with backends.xla_convolutions():
        row[op] = count * _op_seconds(op, x, w, g, stride, pad, repeats)
    rows.append(row)
  return rows


def _cell(row, op):
  texts = []
  for key, path in ((op, "xla"), (op + "_kernel", "kernel"), (op + "_winograd", "winograd"),
                    (op + "_matmul", "matmul")):
    value = row[key]
    texts.append("-" if value is None else
                 f"{value * 1e3:.1f}" + ("*" if row[op + "_auto"] == path else ""))
  return " | ".join(texts)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--model", choices=sorted(LAYERS), default="small")
  parser.add_argument("--batch", type=int, default=0, help="views per step (0: the model's)")
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--no-prepare", action="store_true",
                      help="leave XLA_FLAGS and malloc as they are (XLA's default routing)")
  args = parser.parse_args(argv)
  if not args.no_prepare:  # before JAX starts, as the trainer's main
    backends.prepare_process("auto")
  rows = layer_times(args.model, args.batch or None, args.repeats)
  print(f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}; ms per step; * = the measured rule's "
        f"choice")
  print("| layer | x count | shape | " + " | ".join(
      f"{op} {path}" for op in OPS for path in ("XLA", "kernel", "Winograd", "matmul")) + " |\n"
      + "|---" * (3 + 4 * len(OPS)) + "|")
  for r in rows:
    print(f"| {r['layer']} | {r['count']} | {r['shape']} | " +
          " | ".join(_cell(r, op) for op in OPS) + " |")
  xla = sum(r[op] for r in rows for op in OPS)
  kernels = sum(r[op] if r[op + "_kernel"] is None else r[op + "_kernel"]
                for r in rows for op in OPS)
  auto = sum(r[{"xla": op, "kernel": op + "_kernel", "winograd": op + "_winograd",
                "matmul": op + "_matmul"}[r[op + "_auto"]]] for r in rows for op in OPS)
  print(f"\ntotal ms: XLA {xla * 1e3:.1f}, kernels {kernels * 1e3:.1f} (XLA where they do not "
        f"apply), the cpu_kernels backend's choice {auto * 1e3:.1f}")


if __name__ == "__main__":
  main()
