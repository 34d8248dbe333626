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


def describe() -> dict[str, object]:
  """{"cpu": model name, "cpu_count": usable cores, "devices": "<count>x <device kind>",
  "processes": jax processes}."""
  try:
    cores = len(os.sched_getaffinity(0))
  except AttributeError:  # not Linux
    cores = os.cpu_count() or 0
  devices = jax.devices()
  return {"cpu": cpu_model(), "cpu_count": cores,
          "devices": f"{len(devices)}x {devices[0].device_kind}",
          "processes": jax.process_count()}
