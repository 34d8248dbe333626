"""XLA flags the library sets, in one place (read by XLA when the backend starts).

`--xla_cpu_experimental_ynn_fusion_type=-individual_convolution` keeps XLA:CPU's convolutions
on its Eigen path instead of YNNPACK. It only affects the CPU backend. Measured on the 2-vCPU
Xeon (AVX-512) CI machine, jax 0.10.2, `python tools/benchmark.py --config <cfg> --compare-torch`
(model step = forward + backward + AdamW):

  * Fashion-MNIST default (residual CNN width 16, 512 views of 28x28): 0.79 -> 0.56 s/step;
  * ResNet-18 CIFAR stem, batch 128 (256 views of 32x32): 10.1 -> 4.96 s/step;
  * ViT-Tiny MAE default: 0.67 -> 0.68 s/step (no convolutions to speak of: unchanged).

Every other YNNPACK fusion (dots, reductions) stays on. Set `JAX_SSL_XLA_DEFAULTS=0`, or put
your own `--xla_cpu_experimental_ynn_fusion_type=...` in XLA_FLAGS, to keep XLA's default.
The flag must be in the environment before JAX creates its CPU client: importing `jax_ssl`
first (every entry point does) is enough.
"""

from __future__ import annotations

import os

CPU_DEFAULTS = {"--xla_cpu_experimental_ynn_fusion_type": "-individual_convolution"}


def apply_defaults(environ=os.environ) -> str:
  """Appends CPU_DEFAULTS to XLA_FLAGS unless the user set them or opted out; returns XLA_FLAGS."""
  flags = environ.get("XLA_FLAGS", "")
  if environ.get("JAX_SSL_XLA_DEFAULTS", "1") != "0":
    for name, value in CPU_DEFAULTS.items():
      if name + "=" not in flags:
        flags = f"{flags} {name}={value}".strip()
    environ["XLA_FLAGS"] = flags
  return flags
