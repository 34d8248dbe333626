"""What machine a run was evaluated on, for results.json: timings mean little without it."""

from __future__ import annotations

import os
import platform

import jax


def cpu_model() -> str:
  """The CPU's model name (/proc/cpuinfo on Linux; platform.processor() elsewhere)."""
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine() or "unknown"


def cpu_vector_isa(cpuinfo: str = "/proc/cpuinfo") -> str | None:
  """"AVX-512", "AVX2" or None (another or unknown instruction set): the widest x86 vector
  set of /proc/cpuinfo's flags. Two CPUs of one model name can differ here and run the same
  step several times apart (a 2-vCPU AMD EPYC of the Zen 4 kind, AVX-512, and of the Zen 3
  kind, AVX2 only: the main job's step ~0.37 s against ~1.2 s), so the results name it."""
  try:
    with open(cpuinfo) as f:
      for line in f:
        if line.startswith("flags"):
          flags = line.split(":", 1)[1].split()
          return "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else None
  except OSError:
    pass
  return None


def describe() -> dict[str, object]:
  """{"cpu": model name, "cpu_isa": `cpu_vector_isa()`, "cpu_count": usable cores,
  "devices": "<count>x <device kind>", "processes": jax processes}."""
  try:
    cores = len(os.sched_getaffinity(0))
  except AttributeError:  # not Linux
    cores = os.cpu_count() or 0
  devices = jax.devices()
  return {"cpu": cpu_model(), "cpu_isa": cpu_vector_isa(), "cpu_count": cores,
          "devices": f"{len(devices)}x {devices[0].device_kind}",
          "processes": jax.process_count()}
