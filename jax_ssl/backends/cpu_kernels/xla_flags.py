"""The XLA:CPU flag of the CPU platform, in one place (read by XLA when its CPU client starts).

`--xla_cpu_experimental_ynn_fusion_type=-individual_convolution` keeps XLA:CPU's
convolutions on its Eigen path instead of YNNPACK; every other YNNPACK fusion (dots,
reductions) stays on. Measured faster for the library's CNNs on XLA's own convolutions
(`python tools/benchmark.py --config <cfg> --compare-torch`, BENCHMARKS.md) and neutral
for the ViTs, whose convolutions are few.

`apply()` appends it to XLA_FLAGS unless the user's XLA_FLAGS already set that flag (theirs
wins: `--xla_cpu_experimental_ynn_fusion_type=...` with XLA's default value keeps XLA's
routing). `jax_ssl.backends.prepare_process` calls it on the CPU platform only: it is an
XLA:CPU flag, which another platform's XLA does not know, and an unknown flag in XLA_FLAGS
aborts the process when any backend starts (a future jaxlib that renames it would abort
GPU and TPU runs too). pyproject.toml bounds jaxlib below the next minor release for that
reason. Nothing here runs at import.
"""

from __future__ import annotations

import os
from typing import MutableMapping

CPU_DEFAULTS = {"--xla_cpu_experimental_ynn_fusion_type": "-individual_convolution"}


def apply(environ: MutableMapping[str, str] = os.environ) -> str:
  """Appends CPU_DEFAULTS to `environ["XLA_FLAGS"]` where the user did not set them; returns
  XLA_FLAGS. Idempotent."""
  flags = environ.get("XLA_FLAGS", "")
  for name, value in CPU_DEFAULTS.items():
    if name + "=" not in flags:
      flags = f"{flags} {name}={value}".strip()
  environ["XLA_FLAGS"] = flags
  return flags
