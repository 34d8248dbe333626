"""The CPU platform's malloc setting (jax_ssl/backends/cpu_kernels/host_memory.py): with it,
XLA:CPU's per-run temporary block is reused from one run to the next (no page faults);
without it every run faults it in anew. `prepare_process` applies it on the CPU platform
only, and `import jax_ssl` never does."""

import json
import os
import subprocess
import sys

import pytest

from jax_ssl import backends
from jax_ssl.backends.cpu_kernels import host_memory

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Child: import jax_ssl, call prepare_process as the entry points do (argv[1] == "prepare") or
# not, run a jitted function whose temporaries are one ~64 MB block (a [4096, 4096] f32
# product feeding a second product), and report the minor page faults per run after 10 runs
# of warm-up: the least over 5 windows of 4 runs (the heap may still grow now and then while
# its free blocks settle).
CHILD = r"""
import json, resource, sys
import jax_ssl
from jax_ssl import backends
if sys.argv[1] == "prepare":
  backends.prepare_process("auto")
from jax_ssl.backends.cpu_kernels import host_memory
import jax, jax.numpy as jnp
a = jnp.ones((4096, 64)); b = jnp.ones((64, 4096)) / 64
f = jax.jit(lambda a, b: jnp.tanh(a @ b) @ a)
for _ in range(10):
  jax.block_until_ready(f(a, b))
windows = []
for _ in range(5):
  before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  for _ in range(4):
    jax.block_until_ready(f(a, b))
  windows.append((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 4)
faults = min(windows)
print(json.dumps({"faults_per_run": faults, "applied": host_memory.retained()}))
"""


def _child(mode):
  environ = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
  proc = subprocess.run([sys.executable, "-c", CHILD, mode], env=environ, capture_output=True,
                        text=True, timeout=300, check=True)
  return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(host_memory.glibc() is None, reason="mallopt settings are glibc's")
def test_temporaries_are_reused_instead_of_faulted_in_every_run():
  pages = 4096 * 4096 * 4 // 4096  # the dot's output: 16384 pages of 4 KiB
  on, off = _child("prepare"), _child("import only")
  assert on["applied"] and not off["applied"]
  assert off["faults_per_run"] > 0.9 * pages, off
  assert on["faults_per_run"] < 0.05 * pages, on


def test_applied_on_the_cpu_platform_only(monkeypatch):
  """The platform rule (backends.default_platform), decided without starting JAX."""
  monkeypatch.setattr(backends, "_accelerator_plugins", lambda: [])
  for configured, platform in (("cpu", "cpu"), ("cuda", "gpu"), ("rocm,cpu", "gpu"),
                               ("tpu", "tpu"), ("", "cpu")):
    monkeypatch.setattr(backends, "_configured_platforms", lambda c=configured: c)
    assert backends.default_platform() == platform, configured
  monkeypatch.setattr(backends, "_accelerator_plugins", lambda: ["jax-cuda12-plugin"])
  assert backends.default_platform() == "gpu"
  monkeypatch.setattr(backends, "_accelerator_plugins", lambda: ["libtpu"])
  assert backends.default_platform() == "tpu"
  monkeypatch.setattr(host_memory, "retain_freed_memory", lambda: pytest.fail("mallopt called"))
  for platform in ("gpu", "tpu"):
    assert not backends.prepare_process("auto", platform=platform).host_malloc_retained
