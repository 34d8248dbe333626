"""How much of the hardware a run uses: a step's model FLOPs, the devices' peak FLOP/s, MFU.

`mfu = model_flops_per_second / peak_flops_per_second`, where the model FLOPs of a step come
from XLA's cost analysis of the step's program (counted once per run, see `lowered_flops`)
and the peak is the sum over the devices of their dense peak rate for the model's compute
dtype (`PEAK_FLOPS`), or on a CPU the rate of a measured matmul (`cpu_peak_flops_per_second`,
the "matmul ceiling" of tools/benchmark.py). The trainer logs `model_flops_per_second` and
`mfu` (train.py). On a CPU shared with other work the MFU moves with the load: the peak is
measured once, when the run starts.
"""

from __future__ import annotations

import functools
import re
import time
from typing import Callable, Sequence

import jax
import numpy as np

from jax_ssl import backends

# Dense (no sparsity) peak FLOP/s of one chip or GPU, from the vendors' datasheets, by
# compute dtype. "float32" is the rate of float32 dots and convolutions at JAX's default
# precision: TF32 tensor cores on NVIDIA GPUs (A100 and later), one bfloat16 pass on TPUs.
# Patterns are matched in order against `device.device_kind` (case-insensitive).
PEAK_FLOPS: tuple[tuple[str, dict[str, float]], ...] = (
    (r"h100.*nvl", {"bfloat16": 835e12, "float32": 417.5e12}),
    (r"h100.*pcie", {"bfloat16": 756e12, "float32": 378e12}),
    (r"h100", {"bfloat16": 989.4e12, "float32": 494.7e12}),        # SXM5
    (r"h200.*nvl", {"bfloat16": 835e12, "float32": 417.5e12}),
    (r"h200", {"bfloat16": 989.4e12, "float32": 494.7e12}),        # SXM
    (r"a100", {"bfloat16": 312e12, "float32": 156e12}),            # SXM4 and PCIe
    (r"^tpu v4$", {"bfloat16": 275e12, "float32": 275e12}),
    (r"^tpu v5 ?(lite|e)$", {"bfloat16": 197e12, "float32": 197e12}),
    (r"^tpu v5p?$", {"bfloat16": 459e12, "float32": 459e12}),
    (r"^tpu v6 ?(lite|e)$", {"bfloat16": 918e12, "float32": 918e12}),  # Trillium
)


def device_peak_flops_per_second(device_kind: str, dtype: str) -> float | None:
  """The dense peak FLOP/s of one device of `device_kind` (e.g. "NVIDIA H100 80GB HBM3",
  "TPU v5 lite") computing in `dtype` ("bfloat16" or "float32"); None if not in PEAK_FLOPS."""
  kind = device_kind.strip().lower()
  for pattern, peaks in PEAK_FLOPS:
    if re.search(pattern, kind):
      return peaks.get(dtype)
  return None


@functools.cache
def cpu_peak_flops_per_second(size: int = 2048, repeats: int = 5) -> float:
  """FLOP/s of a jitted float32 [size, size] @ [size, size] on this host's first CPU device,
  best of `repeats`, measured once per process (one compile). A CPU has no datasheet peak
  that its load and clock allow: XLA's own matmul, on the cores the step shares, is the
  ceiling its dots and convolutions could reach (the "matmul ceiling" of tools/benchmark.py
  and BENCHMARKS.md)."""
  device = jax.local_devices(backend="cpu")[0]
  rng = np.random.default_rng(0)
  a, b = (jax.device_put(rng.standard_normal((size, size), dtype=np.float32), device)
          for _ in range(2))
  matmul = jax.jit(lambda x, y: x @ y)
  jax.block_until_ready(matmul(a, b))  # compile, warm up the threads
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(matmul(a, b))
    best = min(best, time.perf_counter() - start)
  return 2.0 * size**3 / best


def peak_flops_per_second(devices: Sequence[jax.Device], dtype: str) -> float | None:
  """The summed peak FLOP/s of `devices` (all of a run's, on every host) in `dtype`.

  CPU devices share their host's cores, however many `--xla_force_host_platform_device_count`
  makes: the peak is the measured matmul rate of this host times the number of processes.
  None if a device's kind is not in PEAK_FLOPS (the trainer then logs no `mfu`).
  """
  if not devices:
    return None
  if all(d.platform == "cpu" for d in devices):
    return cpu_peak_flops_per_second() * len({d.process_index for d in devices})
  peaks = [device_peak_flops_per_second(d.device_kind, dtype) for d in devices]
  return None if None in peaks else float(sum(peaks))


def lowered_flops(lowered: jax.stages.Lowered) -> float | None:
  """FLOPs of one call of the whole program `lowered` (all devices together), by XLA's cost
  analysis of the program as lowered, before the backend's rewrites.

  Not the compiled program's analysis: after compilation each device's share is counted,
  GPU dots and convolutions become library calls whose FLOPs the analysis misreports
  (jax-ml/jax#22249, #16008), and the `cpu_kernels` backend's convolutions are custom calls
  it cannot see into. Loops count their body once (lower a loop-free program to count one).
  None if the backend gives no count.
  """
  cost = lowered.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) and cost else cost
  flops = cost.get("flops") if cost else None
  return float(flops) if flops is not None and flops > 0 else None


def step_flops(lowered: jax.stages.Lowered, lower_in_one_batch: Callable[[], jax.stages.Lowered],
               *, grad_accum_steps: int, per_device_passes: bool = False) -> float | None:
  """The model FLOPs of one train step: `lowered_flops(lowered)`, the step's program, or where
  that one hides FLOPs from XLA's count (on a CPU the `cpu_kernels` backend's convolutions
  are custom calls and Winograd does fewer multiplies; a micro-batch loop is counted once; with
  `per_device_passes`, the encoder passes in a shard_map body are counted for one device),
  of the same step on the global arrays without gradient accumulation,
  `lower_in_one_batch()`, lowered (not compiled) with XLA's own convolutions
  (`backends.xla_convolutions()`): the same model arithmetic."""
  if grad_accum_steps == 1 and not per_device_passes and jax.default_backend() != "cpu":
    return lowered_flops(lowered)
  with backends.xla_convolutions():
    return lowered_flops(lower_in_one_batch())


def utilization(flops_per_step: float | None, steps: int, seconds: float,
                peak: float | None) -> dict[str, float]:
  """{"model_flops_per_second", "mfu"} of `steps` steps in `seconds` (either key left out
  when its inputs are unknown)."""
  if not flops_per_step or seconds <= 0:
    return {}
  rate = flops_per_step * steps / seconds
  return {"model_flops_per_second": rate, **({"mfu": rate / peak} if peak else {})}
