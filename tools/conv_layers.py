r"""Per-layer convolution timings of a benchmark model: forward, input gradient, weight gradient.

Where does the step's convolution time go, and which XLA:CPU path runs it? Each distinct
convolution of the model (shape, stride) is jitted on its own and timed three ways:
`fwd` (the convolution), `dx` (its input gradient) and `dw` (its weight gradient), each
multiplied by how many times the model has that layer. Run it twice to compare the routing
that `jax_ssl.xla_flags` sets (Eigen) with XLA's default (YNNPACK for eligible convs):

  python tools/conv_layers.py --model small
  JAX_SSL_XLA_DEFAULTS=0 python tools/conv_layers.py --model small

Models: `small` (the Fashion-MNIST default encoder, resnet_small width 16, 512 views of
28x28x1) and `resnet18` (CIFAR stem, 256 views of 32x32x3), as in `tools/benchmark.py
--compare-torch`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import jax_ssl  # noqa: E402,F401  (sets the library's XLA flags before JAX starts)
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax import lax  # noqa: E402

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


def _conv(x, w, stride, pad):
  return lax.conv_general_dilated(x, w, (stride, stride), ((pad, pad), (pad, pad)),
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _seconds(fn, args, repeats):
  jax.block_until_ready(fn(*args))
  start = time.perf_counter()
  for _ in range(repeats):
    out = fn(*args)
  jax.block_until_ready(out)
  return (time.perf_counter() - start) / repeats


def layer_times(model: str, batch: int | None = None, repeats: int = 5) -> list[dict]:
  """Per distinct layer: seconds of fwd, dx and dw, times the layer's count in the model."""
  default_batch, layers = LAYERS[model]
  batch = batch or default_batch
  rows = []
  for name, c_in, c_out, kernel, stride, size, count in layers:
    rng = np.random.default_rng(0)
    pad = (kernel - 1) // 2
    x = jnp.asarray(rng.normal(size=(batch, size, size, c_in)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(kernel, kernel, c_in, c_out)) * 0.1, jnp.float32)
    g = jnp.ones(jax.eval_shape(lambda x, w: _conv(x, w, stride, pad), x, w).shape, jnp.float32)
    fwd = jax.jit(lambda x, w: _conv(x, w, stride, pad))
    dx = jax.jit(lambda x, w, g: jax.vjp(lambda x_: _conv(x_, w, stride, pad), x)[1](g)[0])
    dw = jax.jit(lambda x, w, g: jax.vjp(lambda w_: _conv(x, w_, stride, pad), w)[1](g)[0])
    rows.append(dict(layer=name, count=count, shape=f"{c_in}->{c_out} k{kernel} s{stride} @{size}",
                     fwd=count * _seconds(fwd, (x, w), repeats),
                     dx=count * _seconds(dx, (x, w, g), repeats),
                     dw=count * _seconds(dw, (x, w, g), repeats)))
  return rows


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--model", choices=sorted(LAYERS), default="small")
  parser.add_argument("--batch", type=int, default=0, help="views per step (0: the model's)")
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args(argv)
  rows = layer_times(args.model, args.batch or None, args.repeats)
  print(f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
  print("| layer | x count | shape | fwd ms | dx ms | dw ms |\n|---|---|---|---|---|---|")
  for r in rows:
    print(f"| {r['layer']} | {r['count']} | {r['shape']} | {r['fwd'] * 1e3:.1f} | "
          f"{r['dx'] * 1e3:.1f} | {r['dw'] * 1e3:.1f} |")
  total = {k: sum(r[k] for r in rows) * 1e3 for k in ("fwd", "dx", "dw")}
  print(f"| total | | | {total['fwd']:.1f} | {total['dx']:.1f} | {total['dw']:.1f} |")


if __name__ == "__main__":
  main()
